package inference

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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
	Role string `json:"role"`
	// Content is the text of the turn. It may be empty on an assistant
	// turn that only calls tools. In an answer whose content came as parts,
	// it is their text joined.
	Content string `json:"-"`
	// Parts, when set, is the content as parts (text and images, see
	// [TextPart] and [ImagePart]) and is sent instead of Content, as the
	// OpenAI-compatible array. Answers that came as parts keep them here.
	Parts []ContentPart `json:"-"`
	// Reasoning is the reasoning text some providers send beside the
	// answer (reasoning or reasoning_content); it is never part of Content
	// and is not sent back in requests.
	Reasoning string `json:"reasoning"`
	// Name optionally names the author of the turn.
	Name string `json:"name"`
	// ToolCalls are the calls an assistant turn asks for.
	ToolCalls []ToolCall `json:"tool_calls"`
	// ToolCallID links a RoleTool turn to the call it answers.
	ToolCallID string `json:"tool_call_id"`
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

// FunctionCall names the function and carries its arguments as JSON text.
type FunctionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// UnmarshalJSON reads arguments given as a JSON string, as the OpenAI
// format has them, or as a JSON object, as some providers send them
// through the router: an object is kept as its compact JSON text, so that
// Arguments is always JSON text.
func (f *FunctionCall) UnmarshalJSON(data []byte) error {
	var w struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*f = FunctionCall{Name: w.Name}
	args := bytes.TrimSpace(w.Arguments)
	switch {
	case len(args) == 0 || string(args) == "null":
	case args[0] == '"':
		return json.Unmarshal(args, &f.Arguments)
	case args[0] == '{' || args[0] == '[':
		var b bytes.Buffer
		if err := json.Compact(&b, args); err != nil {
			return err
		}
		f.Arguments = b.String()
	default:
		return fmt.Errorf("function arguments: unexpected JSON %.20s", args)
	}
	return nil
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
