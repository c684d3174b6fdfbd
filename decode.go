package inference

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hfkit/inference/internal/jsonread"
)

// Decoding an answer happens on every call and every stream chunk, so it
// has two tiers. The fast one, decodeCompletionFast and decodeChunkFast,
// reads the usual shapes in one pass with internal/jsonread, without
// reflection. Anything it declines goes to encoding/json, straight into the
// public types (decodeCompletionStd, decodeChunkStd), whose own decoders
// (Message.UnmarshalJSON, ToolCall.UnmarshalJSON) read the shapes the fast
// tier leaves out, such as content given as parts. The fast tier either
// gives exactly what encoding/json gives or declines; FuzzDecodeCompletion
// and FuzzDecodeChunk check that on arbitrary bodies. On a 1 KiB completion
// it takes about a seventh of the time and a sixth of the allocations
// (BenchmarkDecodeCompletion).
//
// A field of Message is read in two places: its tagged field in Message,
// which encoding/json reads, and its case in readMessage with its name in
// messageKeys.

// chatWire is what a success body is decoded into; Error catches providers
// that answer 200 with an error object.
type chatWire struct {
	ChatResponse
	Error json.RawMessage `json:"error"`
	// RequestID shadows ChatResponse's: the request id comes from the
	// answer's headers, never from its body.
	RequestID json.RawMessage `json:"request_id"`
}

// decodeCompletion decodes a success body. model is the model asked for:
// an answer naming the same model shares its string.
func decodeCompletion(data []byte, model string) (chatWire, error) {
	if w, ok := decodeCompletionFast(data, model); ok {
		return w, nil
	}
	return decodeCompletionStd(data)
}

// decodeCompletionStd decodes a success body with encoding/json.
func decodeCompletionStd(data []byte) (chatWire, error) {
	var w chatWire
	if err := json.Unmarshal(data, &w); err != nil {
		return chatWire{}, err
	}
	w.RequestID = nil
	if len(w.Choices) == 0 {
		w.Choices = nil // as the fast tier gives it: "no choices" either way
	}
	return w, nil
}

// The member names each object of an answer has, in the order of the bits
// that mark them seen. chunkKeys begins with what every chunk carries; the
// last three name the stream and are read until a chunk carries an id.
var (
	completionKeys  = []string{"id", "created", "model", "provider", "system_fingerprint", "choices", "usage", "error"}
	choiceKeys      = []string{"index", "message", "finish_reason"}
	messageKeys     = []string{"role", "content", "reasoning", "reasoning_content", "tool_calls", "name", "tool_call_id"}
	usageKeys       = []string{"prompt_tokens", "completion_tokens", "total_tokens"}
	chunkKeys       = []string{"choices", "usage", "error", "id", "created", "model"}
	chunkChoiceKeys = []string{"index", "delta", "finish_reason"}
)

// member reads the next member name of an object whose known names are
// keys and returns the index of the name, or -1 for a name to skip. It
// declines (fails the reader) where encoding/json would do something the
// fast path does not: a repeated name, whose values encoding/json merges,
// or a name that matches a known one only case-insensitively.
func member(r *jsonread.Reader, keys []string, seen *uint16) int {
	key := r.Key()
	for i, k := range keys {
		if string(key) == k {
			if *seen&(1<<i) != 0 {
				r.Fail()
				return -1
			}
			*seen |= 1 << i
			return i
		}
	}
	for _, k := range keys {
		if bytes.EqualFold(key, []byte(k)) {
			r.Fail()
			return -1
		}
	}
	return -1
}

// optString reads a string field: null leaves it empty, as encoding/json
// does; any other kind fails the reader.
func optString(r *jsonread.Reader) string {
	if r.Null() {
		return ""
	}
	return r.String()
}

// optInt reads an int field the same way.
func optInt(r *jsonread.Reader) int {
	if r.Null() {
		return 0
	}
	v := r.Int64()
	if int64(int(v)) != v {
		r.Fail()
	}
	return int(v)
}

// usual returns one of the values answers repeat (roles, finish reasons,
// the model asked for) without allocating, and a copy of anything else.
func usual(b []byte, model string) string {
	if string(b) == model { // compared in place: no conversion is made
		return model
	}
	switch string(b) {
	case RoleAssistant:
		return RoleAssistant
	case "stop":
		return "stop"
	case "length":
		return "length"
	case "tool_calls":
		return "tool_calls"
	}
	return string(b)
}

// optUsual is optString through usual.
func optUsual(r *jsonread.Reader, model string) string {
	if r.Null() {
		return ""
	}
	return usual(r.StringBytes(), model)
}

// decodeCompletionFast decodes a completion of the usual shape. ok is false
// for anything else (content as parts, a field of an unexpected kind,
// invalid JSON), which the caller then decodes with encoding/json.
func decodeCompletionFast(data []byte, model string) (w chatWire, ok bool) {
	var r jsonread.Reader
	r.Reset(data)
	if !r.Object() {
		return chatWire{}, false
	}
	var seen uint16
	for r.More('}') {
		switch member(&r, completionKeys, &seen) {
		case 0:
			w.ID = optString(&r)
		case 1:
			if !r.Null() {
				w.Created = r.Int64()
			}
		case 2:
			w.Model = optUsual(&r, model)
		case 3:
			w.Provider = optString(&r)
		case 4:
			w.SystemFingerprint = optString(&r)
		case 5:
			w.Choices = readChoices(&r, model)
		case 6:
			w.Usage = readUsage(&r)
		case 7:
			if raw := r.Skip(); raw != nil {
				w.Error = json.RawMessage(bytes.Clone(raw))
			}
		default:
			r.Skip()
		}
	}
	if !r.End() {
		return chatWire{}, false
	}
	return w, true
}

// readArray reads an array whose elements readElem reads; null and an
// empty array are nil, as encoding/json gives them here.
func readArray[T any](r *jsonread.Reader, readElem func(*T)) []T {
	if r.Null() || !r.Array() {
		return nil
	}
	var out []T
	for r.More(']') {
		if out == nil {
			// Nearly every answer has one choice.
			out = make([]T, 0, 1)
		}
		out = append(out, *new(T))
		readElem(&out[len(out)-1])
	}
	return out
}

func readChoices(r *jsonread.Reader, model string) []Choice {
	return readArray(r, func(c *Choice) {
		readChoice(r, choiceKeys, &c.Index, &c.Message, messageKeys, &c.FinishReason, model)
	})
}

// readChoice reads a choice of a completion or of a chunk: the same three
// members (keys), whose message (a chunk's delta) has the members
// messageKeys.
func readChoice(r *jsonread.Reader, keys []string, index *int, m *Message, messageKeys []string, finish *string, model string) {
	if r.Null() || !r.Object() {
		return
	}
	var seen uint16
	for r.More('}') {
		switch member(r, keys, &seen) {
		case 0:
			*index = optInt(r)
		case 1:
			readMessage(r, m, messageKeys, model)
		case 2:
			*finish = optUsual(r, model)
		default:
			r.Skip()
		}
	}
}

// readMessage reads a message or a chunk's delta.
func readMessage(r *jsonread.Reader, m *Message, keys []string, model string) {
	if r.Null() || !r.Object() {
		return
	}
	var seen uint16
	var reasoning, reasoningContent string
	for r.More('}') {
		switch member(r, keys, &seen) {
		case 0:
			m.Role = optUsual(r, model)
		case 1:
			// Content as parts is left to the tolerant decoder.
			m.Content = optString(r)
		case 2:
			reasoning = optString(r)
		case 3:
			reasoningContent = optString(r)
		case 4:
			raw := r.Skip()
			if r.OK() && json.Unmarshal(raw, &m.ToolCalls) != nil {
				r.Fail()
			}
		case 5:
			m.Name = optString(r)
		case 6:
			m.ToolCallID = optString(r)
		default:
			r.Skip()
		}
	}
	m.Reasoning = cmp.Or(reasoningContent, reasoning)
}

func readUsage(r *jsonread.Reader) (u Usage) {
	if r.Null() || !r.Object() {
		return u
	}
	var seen uint16
	for r.More('}') {
		switch member(r, usageKeys, &seen) {
		case 0:
			u.PromptTokens = optInt(r)
		case 1:
			u.CompletionTokens = optInt(r)
		case 2:
			u.TotalTokens = optInt(r)
		default:
			r.Skip()
		}
	}
	return u
}

// chunkState is what decoding a stream keeps from chunk to chunk: the
// stream's meta.
type chunkState struct {
	chunkMeta
}

// chunkMeta names the stream. It is decoded until a chunk carries an id,
// then kept as the stream's: decoding it again on every chunk cost about a
// fifth of the decoding time.
type chunkMeta struct {
	ID      string `json:"id"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
}

// chunkFields is what each chunk adds.
type chunkFields struct {
	Choices []ChunkChoice   `json:"choices"`
	Usage   *Usage          `json:"usage"`
	Error   json.RawMessage `json:"error"`
}

// decodeChunk decodes one event's JSON, fast when it can; see
// decodeChunkStd for what it returns. model is the model asked for.
func decodeChunk(data []byte, st *chunkState, model string) (ChatChunk, bool, error) {
	if c, isError, ok := decodeChunkFast(data, &st.chunkMeta, model); ok {
		return c, isError, nil
	}
	return decodeChunkStd(data, st)
}

// decodeChunkStd decodes one event's JSON with encoding/json, reporting
// whether it is an error event ({"error": ...}). Until st holds the
// stream's id, the chunk's meta is read into st (a field the chunk lacks
// keeps its earlier value); then only what the chunk adds is read, and the
// chunk carries st's meta.
func decodeChunkStd(data []byte, st *chunkState) (ChatChunk, bool, error) {
	var f chunkFields
	if st.ID != "" {
		if err := json.Unmarshal(data, &f); err != nil {
			return ChatChunk{}, false, err
		}
	} else {
		w := struct {
			chunkMeta
			chunkFields
		}{chunkMeta: st.chunkMeta}
		if err := json.Unmarshal(data, &w); err != nil {
			return ChatChunk{}, false, err
		}
		st.chunkMeta, f = w.chunkMeta, w.chunkFields
	}
	if len(f.Choices) == 0 {
		f.Choices = nil // as the fast tier gives it
	}
	c := ChatChunk{ID: st.ID, Created: st.Created, Model: st.Model, Choices: f.Choices, Usage: f.Usage}
	return c, isJSONError(f.Error), nil
}

// decodeChunkFast decodes a chunk of the usual shape as decodeChunkStd
// does: the stream's meta is read (into meta, whose fields a chunk only
// overwrites) until it has an id, and every chunk carries it. ok is false
// where it declines; meta is then untouched.
func decodeChunkFast(data []byte, meta *chunkMeta, model string) (c ChatChunk, isError, ok bool) {
	var r jsonread.Reader
	r.Reset(data)
	if !r.Object() {
		return ChatChunk{}, false, false
	}
	keys := chunkKeys
	if meta.ID != "" {
		keys = chunkKeys[:3]
	}
	m := *meta
	var seen uint16
	for r.More('}') {
		switch member(&r, keys, &seen) {
		case 0:
			c.Choices = readChunkChoices(&r)
		case 1:
			if !r.Null() {
				c.Usage = new(Usage)
				*c.Usage = readUsage(&r)
			}
		case 2:
			isError = isJSONError(r.Skip())
		case 3:
			if !r.Null() {
				m.ID = r.String()
			}
		case 4:
			if !r.Null() {
				m.Created = r.Int64()
			}
		case 5:
			if !r.Null() {
				m.Model = usual(r.StringBytes(), model)
			}
		default:
			r.Skip()
		}
	}
	if !r.End() {
		return ChatChunk{}, false, false
	}
	*meta = m
	c.ID, c.Created, c.Model = m.ID, m.Created, m.Model
	return c, isError, true
}

func readChunkChoices(r *jsonread.Reader) []ChunkChoice {
	return readArray(r, func(c *ChunkChoice) {
		readChoice(r, chunkChoiceKeys, &c.Index, &c.Delta, messageKeys, &c.FinishReason, "")
	})
}

// UnmarshalJSON accepts content as a string, null, or an array of parts
// (kept in Parts, their text joined in Content), and reasoning under
// "reasoning" or "reasoning_content". The other fields are read by their
// tags.
func (m *Message) UnmarshalJSON(data []byte) error {
	type fields Message // the tagged fields, without this method
	*m = Message{}
	w := struct {
		*fields
		Content          json.RawMessage `json:"content"`
		ReasoningContent string          `json:"reasoning_content"`
	}{fields: (*fields)(m)}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	m.Reasoning = cmp.Or(w.ReasoningContent, m.Reasoning)
	c := bytes.TrimSpace(w.Content)
	switch {
	case len(c) == 0 || string(c) == "null":
	case c[0] == '"':
		return json.Unmarshal(c, &m.Content)
	case c[0] == '[':
		if err := json.Unmarshal(c, &m.Parts); err != nil {
			return fmt.Errorf("message content: %w", err)
		}
		var b strings.Builder
		for _, p := range m.Parts {
			b.WriteString(p.Text)
		}
		m.Content = b.String()
	default:
		return fmt.Errorf("message content: unexpected JSON %.20s", c)
	}
	return nil
}

// UnmarshalJSON reads the index that streamed tool call pieces carry.
func (t *ToolCall) UnmarshalJSON(data []byte) error {
	type plain ToolCall
	var w struct {
		plain
		Index int `json:"index"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*t = ToolCall(w.plain)
	t.Index = w.Index
	return nil
}

func isJSONError(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }
