package inference

import (
	"encoding/json"
)

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
		return invalidRequest(format, args...)
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
		return nil, invalidRequest("encoding the request: %v", err)
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
			return nil, invalidRequest("Extra key %q is set by the request's own fields", k)
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, invalidRequest("encoding Extra[%q]: %v", k, err)
		}
		fields[k] = raw
	}
	return json.Marshal(fields)
}

// choiceCount is how many choices the request asks for: Extra["n"] when
// it is a whole number above 1, else 1. A stream is whole once that many
// have finished.
func (r *ChatRequest) choiceCount() int {
	switch n := r.Extra["n"].(type) {
	case int:
		return max(n, 1)
	case int64:
		return int(max(n, 1))
	case float64:
		if n >= 1 && n <= 1024 {
			return int(n)
		}
	case json.Number:
		if v, err := n.Int64(); err == nil && v >= 1 && v <= 1024 {
			return int(v)
		}
	}
	return 1
}
