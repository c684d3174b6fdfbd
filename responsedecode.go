package inference

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/hfkit/inference/internal/jsonread"
)

// Reading the Responses API's objects. Servers of this protocol add item
// types and fields as they go (shell_call_output with an object output,
// custom tool calls with object arguments, ...), and the README promises
// that a type this client does not know is never dropped. So an object's
// members are first picked as raw JSON (pickMembers: what decoding into a
// map[string]json.RawMessage gives, without the map), and then only the
// fields of the types that define them are given their Go shape; a field
// with another shape than the protocol's stays empty, and Raw keeps the
// item whole. Only JSON that is not valid, or an item that is not an
// object, fails the answer.

// responseFailure is the error object of a failed response.
type responseFailure struct {
	Code    string
	Message string
}

// The members of a response object decodeResponse reads.
var responseKeys = []string{"id", "object", "created_at", "model", "status", "error", "incomplete_details", "output", "usage", "metadata"}

// decodeResponse reads a response object; failure is set for one whose
// status is "failed" or that carries an error.
func decodeResponse(data []byte) (*Response, *responseFailure, error) {
	var m [10]json.RawMessage
	if !pickMembers(data, responseKeys, m[:]) {
		return nil, nil, notAnObject(data)
	}
	id, object, createdAt, model, status, errObj, incomplete, output, usage, metadata := m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9]
	st := stringOf(status)
	if f := failureOf(errObj); st == "failed" || f.Message != "" {
		if f.Message == "" {
			f.Message = "the response failed without a reason"
		}
		return nil, &f, nil
	}
	if stringOf(object) != "response" && st == "" {
		return nil, nil, errNoResponseObject
	}
	out := &Response{ID: stringOf(id), CreatedAt: int64(intOf(createdAt)), Model: stringOf(model), Status: st, Usage: usageOf(usage)}
	if len(metadata) > 0 && metadata[0] == '{' {
		_ = json.Unmarshal(metadata, &out.Metadata) // string values, as the protocol has them; Raw of the response is not kept
	}
	var reason [1]json.RawMessage
	if pick(incomplete, []string{"reason"}, reason[:]) {
		out.IncompleteReason = stringOf(reason[0])
	}
	items := arrayItems(output)
	out.Output = make([]OutputItem, 0, len(items))
	for _, raw := range items {
		item, err := decodeOutputItem(raw)
		if err != nil {
			return nil, nil, err
		}
		out.Output = append(out.Output, item)
	}
	return out, nil, nil
}

// errNoResponseObject is the error of JSON that is an object, but neither
// a response nor a failure.
var errNoResponseObject = jsonShapeError("no response object")

type jsonShapeError string

func (e jsonShapeError) Error() string { return string(e) }

// notAnObject says why data is not a JSON object, in encoding/json's words.
func notAnObject(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	return jsonShapeError("null where an object was expected")
}

// pick is pickMembers for a member's value, which is an object or not,
// without the fallback's cost for one that is not (absent, null, a
// string).
func pick(raw json.RawMessage, names []string, out []json.RawMessage) bool {
	if len(raw) == 0 || raw[0] != '{' {
		clear(out)
		return false
	}
	return pickMembers(raw, names, out)
}

// failureOf reads a response's error object: its code and message as
// text, whatever their JSON; an error given as a string is its message.
func failureOf(raw json.RawMessage) responseFailure {
	var m [2]json.RawMessage
	if !pick(raw, []string{"code", "message"}, m[:]) {
		return responseFailure{Message: jsonText(raw)}
	}
	return responseFailure{Code: jsonText(m[0]), Message: jsonText(m[1])}
}

var usageKeysResponses = []string{"input_tokens", "output_tokens", "total_tokens", "input_tokens_details", "output_tokens_details"}

// usageOf reads a response's usage; a count that is not an integer is 0.
func usageOf(raw json.RawMessage) ResponseUsage {
	var m [5]json.RawMessage
	if !pick(raw, usageKeysResponses, m[:]) {
		return ResponseUsage{}
	}
	var cached, reasoning [1]json.RawMessage
	pick(m[3], []string{"cached_tokens"}, cached[:])
	pick(m[4], []string{"reasoning_tokens"}, reasoning[:])
	return ResponseUsage{InputTokens: intOf(m[0]), OutputTokens: intOf(m[1]), TotalTokens: intOf(m[2]),
		ReasoningTokens: intOf(reasoning[0]), CachedInputTokens: intOf(cached[0])}
}

// The members of an output item decodeOutputItem reads.
var outputItemKeys = []string{"type", "id", "status", "role", "content", "summary", "call_id", "name", "arguments", "server_label", "output", "error", "tools"}

// decodeOutputItem reads one output item, keeping it raw; it fails only
// for an item that is not a JSON object.
func decodeOutputItem(raw json.RawMessage) (OutputItem, error) {
	var m [13]json.RawMessage
	if !pickMembers(raw, outputItemKeys, m[:]) {
		err := notAnObject(raw)
		return OutputItem{}, jsonShapeError("an output item: " + err.Error())
	}
	typ, id, status, role, content, summary, callID, name, args, serverLabel, output, errObj, tools := m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], m[10], m[11], m[12]
	item := OutputItem{Type: stringOf(typ), ID: stringOf(id), Status: stringOf(status), Raw: append(json.RawMessage(nil), raw...)}
	switch item.Type {
	case "message":
		item.Role = stringOf(role)
		item.Content = contentParts(content)
	case "reasoning":
		item.Reasoning = partsText(content, "")
		item.ReasoningSummary = partsText(summary, "\n\n")
	case "function_call":
		item.CallID, item.Name, item.Arguments = stringOf(callID), stringOf(name), valueText(args)
	case "mcp_call":
		item.Name, item.ServerLabel, item.Arguments = stringOf(name), stringOf(serverLabel), valueText(args)
		item.Output, item.Error = valueText(output), jsonText(errObj)
	case "mcp_list_tools":
		item.ServerLabel, item.Error, item.Tools = stringOf(serverLabel), jsonText(errObj), mcpTools(tools)
	case "mcp_approval_request":
		item.Name, item.ServerLabel, item.Arguments = stringOf(name), stringOf(serverLabel), valueText(args)
	}
	return item, nil
}

// contentParts reads a message's content parts; a part that is not an
// object is skipped (Raw has it).
func contentParts(raw json.RawMessage) []OutputContent {
	var out []OutputContent
	for _, p := range arrayItems(raw) {
		var m [3]json.RawMessage
		if pick(p, []string{"type", "text", "refusal"}, m[:]) {
			out = append(out, OutputContent{Type: stringOf(m[0]), Text: stringOf(m[1]), Refusal: stringOf(m[2])})
		}
	}
	return out
}

// mcpTools reads an mcp_list_tools item's tools; one that is not an object
// is skipped (Raw has it).
func mcpTools(raw json.RawMessage) []MCPTool {
	var out []MCPTool
	for _, t := range arrayItems(raw) {
		var m [3]json.RawMessage
		if pick(t, []string{"name", "description", "input_schema"}, m[:]) {
			tool := MCPTool{Name: stringOf(m[0]), Description: stringOf(m[1])}
			if len(m[2]) > 0 && string(m[2]) != "null" {
				tool.InputSchema = append(json.RawMessage(nil), m[2]...)
			}
			out = append(out, tool)
		}
	}
	return out
}

// partsText joins the text of content or summary parts ([{"type", "text"}]),
// sep between them; parts without a text string are skipped.
func partsText(raw json.RawMessage, sep string) string {
	var b strings.Builder
	for _, p := range arrayItems(raw) {
		var text [1]json.RawMessage
		if !pick(p, []string{"text"}, text[:]) {
			continue
		}
		t := stringOf(text[0])
		if t == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(sep)
		}
		b.WriteString(t)
	}
	return b.String()
}

// arrayItems returns the elements of a JSON array as raw JSON (views of
// raw), or nil when raw is not an array.
func arrayItems(raw json.RawMessage) []json.RawMessage {
	var r jsonread.Reader
	r.Reset(raw)
	if r.Peek() != jsonread.Array {
		return nil
	}
	r.Array()
	var out []json.RawMessage
	for r.More(']') {
		out = append(out, r.Skip())
	}
	if r.End() {
		return out
	}
	out = nil // nested too deep for the reader: encoding/json decides
	if json.Unmarshal(raw, &out) != nil {
		return nil
	}
	return out
}

// stringOf is the value of a JSON string, "" for anything else.
func stringOf(raw json.RawMessage) string { return jsonString(raw) }

// intOf is the value of a JSON integer that fits an int, as encoding/json
// reads one into an int, and 0 for anything else.
func intOf(raw json.RawMessage) int {
	var r jsonread.Reader
	r.Reset(raw)
	n := r.Int64()
	if !r.End() || int64(int(n)) != n {
		return 0
	}
	return int(n)
}

// valueText is a JSON value as text: a string as itself, null or nothing
// as "", anything else (an object of arguments, say) as its compact JSON.
func valueText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return ""
	case raw[0] == '"':
		return stringOf(raw)
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return ""
	}
	return b.String()
}
