package inference

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Message roles.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleTool      = "tool"
	// RoleDeveloper is the newer OpenAI name for system instructions,
	// which some providers accept.
	RoleDeveloper = "developer"
)

// Message is one turn of a conversation.
type Message struct {
	// Role is RoleSystem, RoleDeveloper, RoleUser, RoleAssistant or
	// RoleTool; any other is refused before sending.
	Role string
	// Content is the text of the turn. It may be empty on an assistant
	// turn that only calls tools. In an answer whose content came as parts,
	// it is their text joined.
	Content string
	// Parts, when set, is the content as parts (text and images, see
	// [TextPart] and [ImagePart]) and is sent instead of Content, as the
	// OpenAI-compatible array. Answers that came as parts keep them here.
	Parts []ContentPart
	// Reasoning is the reasoning text some providers send beside the
	// answer (reasoning or reasoning_content); it is never part of Content
	// and is not sent back in requests.
	Reasoning string
	// Name optionally names the author of the turn.
	Name string
	// ToolCalls are the calls an assistant turn asks for.
	ToolCalls []ToolCall
	// ToolCallID links a RoleTool turn to the call it answers.
	ToolCallID string
}

// ContentPart is one part of a multimodal message: Type "text" with Text,
// or "image_url" with ImageURL.
type ContentPart struct {
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	ImageURL *ImageURL `json:"image_url,omitempty"`
}

// ImageURL is an image given by URL: https, or a data URL for an inline
// image. Detail is "auto", "low" or "high" where the provider supports it.
type ImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

// TextPart is a text part of a multimodal message.
func TextPart(text string) ContentPart { return ContentPart{Type: "text", Text: text} }

// ImagePart is an image part given by URL.
func ImagePart(url string) ContentPart {
	return ContentPart{Type: "image_url", ImageURL: &ImageURL{URL: url}}
}

// ImageDataPart is an inline image, sent as a base64 data URL; mediaType is
// such as "image/png".
func ImageDataPart(mediaType string, data []byte) ContentPart {
	return ImagePart("data:" + mediaType + ";base64," + base64.StdEncoding.EncodeToString(data))
}

// SystemMessage builds a system turn.
func SystemMessage(text string) Message { return Message{Role: RoleSystem, Content: text} }

// UserMessage builds a user turn.
func UserMessage(text string) Message { return Message{Role: RoleUser, Content: text} }

// UserParts builds a multimodal user turn, such as text and an image.
func UserParts(parts ...ContentPart) Message { return Message{Role: RoleUser, Parts: parts} }

// AssistantMessage builds an assistant turn, for replaying a conversation.
func AssistantMessage(text string) Message { return Message{Role: RoleAssistant, Content: text} }

// ToolResultMessage builds the turn that answers a tool call.
func ToolResultMessage(toolCallID, result string) Message {
	return Message{Role: RoleTool, Content: result, ToolCallID: toolCallID}
}

// MarshalJSON encodes the message as a request carries it (content as a
// string, or as an array of parts; none on an assistant turn that only
// calls tools), plus its reasoning, so that a decoded answer survives a
// round trip.
func (m Message) MarshalJSON() ([]byte, error) {
	type withReasoning struct {
		wireMessage
		Reasoning string `json:"reasoning,omitempty"`
	}
	return json.Marshal(withReasoning{wireMessage: toWire(&m), Reasoning: m.Reasoning})
}

// UnmarshalJSON accepts content as a string, null, or an array of parts
// (kept in Parts, their text joined in Content), and reasoning under
// "reasoning" or "reasoning_content".
func (m *Message) UnmarshalJSON(data []byte) error {
	var w struct {
		Role             string          `json:"role"`
		Content          json.RawMessage `json:"content"`
		Reasoning        string          `json:"reasoning"`
		ReasoningContent string          `json:"reasoning_content"`
		Name             string          `json:"name"`
		ToolCalls        []ToolCall      `json:"tool_calls"`
		ToolCallID       string          `json:"tool_call_id"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*m = Message{Role: w.Role, Reasoning: cmp.Or(w.ReasoningContent, w.Reasoning), Name: w.Name, ToolCalls: w.ToolCalls, ToolCallID: w.ToolCallID}
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

func (p ContentPart) validate() error {
	switch p.Type {
	case "text":
		return nil
	case "image_url":
		if p.ImageURL == nil {
			return errors.New("an image_url part has no ImageURL")
		}
		u := p.ImageURL.URL
		if strings.HasPrefix(u, "data:") {
			if !strings.Contains(u, ";base64,") {
				return errors.New("an inline image must be a base64 data URL (data:image/png;base64,...)")
			}
			return nil
		}
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			return fmt.Errorf("image URL %.60q is neither http(s) nor a data URL", u)
		}
		return nil
	}
	return fmt.Errorf("unknown part type %q (want \"text\" or \"image_url\")", p.Type)
}

// ToolCall is a model's request to call a function.
type ToolCall struct {
	// Index orders the calls of a streamed answer; it is not sent.
	Index    int          `json:"-"`
	ID       string       `json:"id"`
	Type     string       `json:"type"` // "function"
	Function FunctionCall `json:"function"`
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

// FunctionCall names the function and carries its arguments as JSON text.
type FunctionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// Tool is a function the model may call.
type Tool struct {
	Type     string      `json:"type"` // "function"
	Function FunctionDef `json:"function"`
}

// FunctionDef describes a callable function. Parameters is a JSON Schema
// object.
type FunctionDef struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      bool            `json:"strict,omitempty"`
}

// FunctionTool builds a function tool from a name, a description and a JSON
// Schema for its parameters.
func FunctionTool(name, description string, parameters json.RawMessage) Tool {
	return Tool{Type: "function", Function: FunctionDef{Name: name, Description: description, Parameters: parameters}}
}

// ToolChoice says whether and which tool the model must call: Mode "auto",
// "none" or "required", or Function set to force that function.
type ToolChoice struct {
	Mode     string
	Function string
}

// validate checks the choice against the tools the request offers.
func (t *ToolChoice) validate(tools []Tool) error {
	if t == nil {
		return nil
	}
	if t.Function != "" {
		if t.Mode != "" {
			return fmt.Errorf("both Mode %q and Function %q are set: use one", cleanText(t.Mode, 32), cleanText(t.Function, 64))
		}
		for _, tool := range tools {
			if tool.Function.Name == t.Function {
				return nil
			}
		}
		return fmt.Errorf("the Function %q is not among the request's Tools", cleanText(t.Function, 64))
	}
	switch t.Mode {
	case "auto", "none":
		return nil
	case "required":
		if len(tools) == 0 {
			return errors.New("the Mode \"required\" needs Tools, and the request has none")
		}
		return nil
	}
	return fmt.Errorf("the Mode %q is not one of auto, none, required", cleanText(t.Mode, 32))
}

// MarshalJSON encodes the string form for a mode and the object form for a
// function.
func (t ToolChoice) MarshalJSON() ([]byte, error) {
	if t.Function != "" {
		return json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": t.Function}})
	}
	return json.Marshal(t.Mode)
}

// ResponseFormat asks for JSON output: Type "json_object", or
// "json_schema" with JSONSchema set.
type ResponseFormat struct {
	Type       string      `json:"type"`
	JSONSchema *JSONSchema `json:"json_schema,omitempty"`
}

// JSONSchema names and gives the schema the reply must follow.
type JSONSchema struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema"`
	Strict      bool            `json:"strict,omitempty"`
}

// ChatRequest is one chat completion call.
type ChatRequest struct {
	// Model is the Hub id of the model, such as
	// "meta-llama/Llama-3.3-70B-Instruct". It may end in ":provider" when
	// Provider is empty.
	Model string
	// Provider is "" or "auto" for the router's choice, a provider name
	// such as "together", or a policy: "fastest", "cheapest", "preferred".
	Provider string
	// Messages is the conversation so far; it must not be empty.
	Messages []Message

	MaxTokens        int      // max_tokens; 0 leaves it to the provider
	Temperature      *float64 // temperature, 0 to 2
	TopP             *float64 // top_p, in (0, 1]
	Stop             []string // stop sequences
	Seed             *int64   // seed, for reproducible sampling where supported
	FrequencyPenalty *float64 // frequency_penalty
	PresencePenalty  *float64 // presence_penalty

	Tools          []Tool          // tools the model may call
	ToolChoice     *ToolChoice     // tool_choice
	ResponseFormat *ResponseFormat // response_format

	// IncludeUsage asks a stream for a last chunk that carries the token
	// usage (stream_options.include_usage). Chat answers always carry it.
	IncludeUsage bool

	// Extra holds further body fields a provider accepts, sent as given.
	// A key that the fields above already set is an error.
	Extra map[string]any

	// Fallbacks, when not nil, replace the client's WithFallback list for
	// this call.
	Fallbacks []Candidate
}

// Float64 and Int64 return a pointer to v, for the optional fields of
// ChatRequest.
func Float64(v float64) *float64 { return &v }

// Int64 returns a pointer to v; see [Float64].
func Int64(v int64) *int64 { return &v }

// primary is the request's own model and provider.
func (r *ChatRequest) primary() Candidate { return Candidate{Model: r.Model, Provider: r.Provider} }

// validate reports the first thing wrong with the request, before anything
// is sent.
func (r *ChatRequest) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, args...))
	}
	if err := r.primary().validate(); err != nil {
		return bad("%s", err)
	}
	if len(r.Messages) == 0 {
		return bad("no messages")
	}
	for i, m := range r.Messages {
		switch m.Role {
		case RoleSystem, RoleUser, RoleAssistant, RoleTool, RoleDeveloper:
		case "":
			return bad("message %d has no role (Role is empty)", i)
		default:
			return bad("message %d: Role %q is not one of system, developer, user, assistant, tool", i, cleanText(m.Role, 32))
		}
		for j, p := range m.Parts {
			if err := p.validate(); err != nil {
				return bad("message %d, part %d: %s", i, j, err)
			}
		}
	}
	switch {
	case r.MaxTokens < 0:
		return bad("MaxTokens %d is negative", r.MaxTokens)
	case r.Temperature != nil && (*r.Temperature < 0 || *r.Temperature > 2):
		return bad("Temperature %v is outside [0, 2]", *r.Temperature)
	case r.TopP != nil && (*r.TopP <= 0 || *r.TopP > 1):
		return bad("TopP %v is outside (0, 1]", *r.TopP)
	case r.ResponseFormat != nil && r.ResponseFormat.Type == "json_schema" && r.ResponseFormat.JSONSchema == nil:
		return bad("ResponseFormat json_schema needs JSONSchema")
	}
	if f := r.ResponseFormat; f != nil {
		switch f.Type {
		case "text", "json_object", "json_schema":
		default:
			return bad("ResponseFormat.Type %q is not one of text, json_object, json_schema", cleanText(f.Type, 32))
		}
	}
	if err := r.ToolChoice.validate(r.Tools); err != nil {
		return bad("ToolChoice: %s", err)
	}
	for i, c := range r.Fallbacks {
		if err := c.validate(); err != nil {
			return bad("fallback %d: %s", i, err)
		}
	}
	return nil
}

// chatBody is the wire form of a request.
type chatBody struct {
	Model            string          `json:"model"`
	Messages         []wireMessage   `json:"messages"`
	MaxTokens        int             `json:"max_tokens,omitempty"`
	Temperature      *float64        `json:"temperature,omitempty"`
	TopP             *float64        `json:"top_p,omitempty"`
	Stop             []string        `json:"stop,omitempty"`
	Seed             *int64          `json:"seed,omitempty"`
	FrequencyPenalty *float64        `json:"frequency_penalty,omitempty"`
	PresencePenalty  *float64        `json:"presence_penalty,omitempty"`
	Tools            []Tool          `json:"tools,omitempty"`
	ToolChoice       *ToolChoice     `json:"tool_choice,omitempty"`
	ResponseFormat   *ResponseFormat `json:"response_format,omitempty"`
	Stream           bool            `json:"stream,omitempty"`
	StreamOptions    *streamOptions  `json:"stream_options,omitempty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// wireMessage is a Message as sent. It has no custom encoder, so that
// encoding a request is one pass of encoding/json. Content holds a *string
// or the []ContentPart, and is left out of an assistant turn that only
// calls tools.
type wireMessage struct {
	Role       string     `json:"role"`
	Content    any        `json:"content,omitempty"`
	Name       string     `json:"name,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

func toWire(m *Message) wireMessage {
	w := wireMessage{Role: m.Role, Name: m.Name, ToolCalls: m.ToolCalls, ToolCallID: m.ToolCallID}
	switch {
	case len(m.Parts) > 0:
		w.Content = m.Parts
	case m.Content != "" || len(m.ToolCalls) == 0:
		w.Content = &m.Content
	}
	return w
}

func wireMessages(msgs []Message) []wireMessage {
	out := make([]wireMessage, len(msgs))
	for i := range msgs {
		out[i] = toWire(&msgs[i])
	}
	return out
}

// encode builds the JSON body for one candidate.
func (r *ChatRequest) encode(c Candidate, stream bool) ([]byte, error) {
	wire := chatBody{
		Model:            c.wireModel(),
		Messages:         wireMessages(r.Messages),
		MaxTokens:        r.MaxTokens,
		Temperature:      r.Temperature,
		TopP:             r.TopP,
		Stop:             r.Stop,
		Seed:             r.Seed,
		FrequencyPenalty: r.FrequencyPenalty,
		PresencePenalty:  r.PresencePenalty,
		Tools:            r.Tools,
		ToolChoice:       r.ToolChoice,
		ResponseFormat:   r.ResponseFormat,
		Stream:           stream,
	}
	if stream && r.IncludeUsage {
		wire.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	body, err := json.Marshal(wire)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding the request: %v", ErrInvalidRequest, err)
	}
	if len(r.Extra) == 0 {
		return body, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, err
	}
	for k, v := range r.Extra {
		if _, taken := fields[k]; taken || k == "stream" || k == "stream_options" {
			return nil, fmt.Errorf("%w: Extra key %q is set by the request's own fields", ErrInvalidRequest, k)
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("%w: encoding Extra[%q]: %v", ErrInvalidRequest, k, err)
		}
		fields[k] = raw
	}
	return json.Marshal(fields)
}

// ChatResponse is a chat completion.
type ChatResponse struct {
	ID      string `json:"id"`
	Created int64  `json:"created"`
	// Model is the model as the provider names it (without ":provider").
	Model string `json:"model"`
	// Provider is who served the answer, from X-Inference-Provider; empty
	// when the router did not say.
	Provider          string   `json:"provider,omitempty"`
	Choices           []Choice `json:"choices"`
	Usage             Usage    `json:"usage"`
	SystemFingerprint string   `json:"system_fingerprint,omitempty"`
	// RequestID is the id to quote to support, when the answer had one.
	RequestID string `json:"request_id,omitempty"`
	// Attempts lists every attempt of the call in order; the last one
	// served the answer.
	Attempts []Attempt `json:"-"`
	// Skipped are the candidates not tried because they were cooling down
	// after failing in an earlier call.
	Skipped []Candidate `json:"-"`
}

// Text returns the content of the first choice, or "" when there is none.
func (r *ChatResponse) Text() string {
	if r == nil || len(r.Choices) == 0 {
		return ""
	}
	return r.Choices[0].Message.Content
}

// Choice is one of the answers of a completion.
type Choice struct {
	Index        int     `json:"index"`
	Message      Message `json:"message"`
	FinishReason string  `json:"finish_reason"`
}

// Usage counts the tokens of a call.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// Attempt is one candidate tried during a call, and how it ended.
type Attempt struct {
	Candidate
	// Err is nil for the attempt that served the answer.
	Err error
	// StatusCode is the final HTTP status, or 0 when none arrived.
	StatusCode int
	// RequestID is the request id of the final answer, if any.
	RequestID string
	// TokenSource is the source of the token sent.
	TokenSource string
	// Retries is how many times the attempt was repeated.
	Retries int
	// Duration is the time the attempt took, retries and waits included.
	Duration time.Duration
}
