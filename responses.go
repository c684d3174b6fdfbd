package inference

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ResponseRequest is one call of the router's Responses API
// (POST {router}/v1/responses, "Responses API (beta)"): typed output
// items, function and remote MCP tools run by the router, reasoning
// effort, structured output through Text.Format. The router keeps no
// state: there is no previous response to continue, nothing stored, no
// response to fetch or delete later; a conversation is sent whole in
// Input, as with chat.
type ResponseRequest struct {
	// Model is the Hub id, such as "openai/gpt-oss-120b"; it may end in
	// ":provider" when Provider is empty.
	Model string
	// Provider is "" or "auto" for the router's choice, or a provider's
	// name.
	Provider string
	// Instructions is the system message.
	Instructions string
	// Input is the conversation: messages (with text or content parts,
	// images included), earlier function calls and their outputs, MCP
	// approvals. InputText is a shorter way to send one user message;
	// give one of the two.
	Input     []InputItem
	InputText string

	// Tools the model may call: functions the caller runs, and remote
	// MCP servers the router calls itself.
	Tools      []ResponseTool
	ToolChoice *ResponseToolChoice
	// Text.Format asks for JSON (json_object) or for JSON that follows a
	// schema (json_schema).
	Text *ResponseText
	// Reasoning sets the reasoning effort of models that reason.
	Reasoning *ReasoningConfig

	MaxOutputTokens int      // max_output_tokens; 0 leaves it to the server
	Temperature     *float64 // 0 to 2
	TopP            *float64 // 0 to 1
	// Metadata is kept on the response: at most 16 keys of at most 64
	// characters, values of at most 512.
	Metadata map[string]string

	// Fallbacks, when not nil, replace the client's WithFallback list for
	// this call.
	Fallbacks []Candidate
}

// InputItem is one item of a response request's input. Type is "message"
// (the default), "function_call" (an earlier call of the model),
// "function_call_output" (its result) or "mcp_approval_response".
type InputItem struct {
	Type string
	// Role and Text, or Parts, for a message; Role is "user", "assistant",
	// "system" or "developer".
	Role  string
	Text  string
	Parts []InputPart
	// CallID, Name and Arguments for a function_call; CallID and Output
	// for a function_call_output.
	CallID, Name, Arguments, Output string
	// ApprovalRequestID, Approve and Reason for an mcp_approval_response.
	ApprovalRequestID string
	Approve           bool
	Reason            string
}

// InputPart is a part of a message's content: Type "input_text" with
// Text, or "input_image" with ImageURL (https or a data: URL).
type InputPart struct {
	Type     string
	Text     string
	ImageURL string
}

// UserInput is a user message with text.
func UserInput(text string) InputItem { return InputItem{Type: "message", Role: RoleUser, Text: text} }

// Input is the item as an item of a later request's Input, so that a
// conversation goes on with what the model said: a function_call (sent
// back before its [FunctionCallOutput]), or an assistant message with its
// text. ok is false for an item that has no input form (reasoning, MCP
// items).
func (o OutputItem) Input() (item InputItem, ok bool) {
	switch o.Type {
	case "function_call":
		return InputItem{Type: "function_call", CallID: o.CallID, Name: o.Name, Arguments: o.Arguments}, true
	case "message":
		var text strings.Builder
		for _, c := range o.Content {
			if c.Type == "output_text" {
				text.WriteString(c.Text)
			}
		}
		return InputItem{Type: "message", Role: RoleAssistant, Text: text.String()}, text.Len() > 0
	}
	return InputItem{}, false
}

// FunctionCallOutput is the result of a function call the model made, to
// send back in the next request's Input.
func FunctionCallOutput(callID, output string) InputItem {
	return InputItem{Type: "function_call_output", CallID: callID, Output: output}
}

// ResponseTool is a tool: Type "function" (Name, Description, Parameters
// as a JSON schema, Strict) or "mcp" (ServerLabel, ServerURL, and
// optionally AllowedTools, Headers, RequireApproval "always" or "never").
type ResponseTool struct {
	Type        string
	Name        string
	Description string
	Parameters  any
	Strict      bool

	ServerLabel     string
	ServerURL       string
	AllowedTools    []string
	Headers         map[string]string
	RequireApproval string
}

// ResponseToolChoice is "auto", "none" or "required" in Mode, or a
// function the model must call, by Name.
type ResponseToolChoice struct {
	Mode string
	Name string
}

// ResponseText shapes the text output.
type ResponseText struct {
	Format ResponseFormatSpec
}

// ResponseFormatSpec is Type "text", "json_object", or "json_schema" with
// Name (letters, digits, '_' and '-', at most 64), Schema, Description and
// Strict.
type ResponseFormatSpec struct {
	Type        string
	Name        string
	Description string
	Schema      any
	Strict      bool
}

// ReasoningConfig sets a reasoning model's Effort ("low", "medium",
// "high") and Summary ("auto", "concise", "detailed").
type ReasoningConfig struct {
	Effort  string
	Summary string
}

// Response is the answer of the Responses API.
type Response struct {
	ID        string `json:"id"`
	CreatedAt int64  `json:"created_at"`
	// Model is the model as the request named it.
	Model string `json:"model"`
	// Status is "completed", or "incomplete" (IncompleteReason says why,
	// such as max_output_tokens). A failed response is an error, never a
	// Response.
	Status           string       `json:"status"`
	IncompleteReason string       `json:"-"`
	Output           []OutputItem `json:"output"`
	// Usage may be all zeros when the provider does not report it.
	Usage    ResponseUsage     `json:"usage"`
	Metadata map[string]string `json:"metadata,omitempty"`

	// Provider served the answer, when the router said; RequestID is the
	// id to quote to support.
	Provider  string `json:"-"`
	RequestID string `json:"-"`
	// Attempts lists every attempt of the call; Skipped, the candidates
	// cooling down.
	Attempts []Attempt   `json:"-"`
	Skipped  []Candidate `json:"-"`
}

// ResponseUsage counts a response's tokens.
type ResponseUsage struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
	TotalTokens  int `json:"total_tokens"`
	// ReasoningTokens is the part of OutputTokens spent reasoning
	// (output_tokens_details.reasoning_tokens).
	ReasoningTokens int `json:"-"`
	// CachedInputTokens is the part of InputTokens the provider served
	// from its prompt cache (input_tokens_details.cached_tokens), often
	// billed for less.
	CachedInputTokens int `json:"-"`
}

// OutputItem is one item of a response's output. Type says which fields
// are set: they are read only for the types that define them (message,
// reasoning, function_call, mcp_call, mcp_list_tools,
// mcp_approval_request), and a field whose JSON has another shape than
// the protocol's is left empty rather than failing the call. Raw holds the
// item as received, so that a type this client does not know, or a field
// it does not read, is kept, never dropped.
type OutputItem struct {
	Type   string
	ID     string
	Status string

	// A message: Role and Content.
	Role    string
	Content []OutputContent
	// A reasoning item: Reasoning is its reasoning text (the text of its
	// content parts, joined), as open models served through the router
	// give it; ReasoningSummary is its summary (the text of its
	// summary_text parts, separated by a blank line), the visible
	// reasoning of models that keep the rest hidden. Either may be empty.
	Reasoning        string
	ReasoningSummary string

	// A function_call, mcp_call or mcp_approval_request: CallID (function
	// calls), Name, Arguments (JSON text; arguments sent as a JSON object
	// are kept as its compact text) and ServerLabel (MCP).
	CallID      string
	Name        string
	Arguments   string
	ServerLabel string
	// An mcp_call's Output (its text; other JSON as compact text) or
	// Error, and an mcp_list_tools item's Error.
	Output string
	Error  string
	// An mcp_list_tools item's tools.
	Tools []MCPTool

	Raw json.RawMessage
}

// OutputContent is a part of an output message: Type "output_text" with
// Text, or "refusal" with Refusal.
type OutputContent struct {
	Type    string `json:"type"`
	Text    string `json:"text,omitempty"`
	Refusal string `json:"refusal,omitempty"`
}

// MCPTool is a tool an MCP server lists.
type MCPTool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
}

// OutputText joins the output_text parts of every output message: the
// field the router does not send.
func (r *Response) OutputText() string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	for _, item := range r.Output {
		if item.Type != "message" {
			continue
		}
		for _, c := range item.Content {
			if c.Type == "output_text" {
				b.WriteString(c.Text)
			}
		}
	}
	return b.String()
}

// FunctionCalls returns the output's function calls, in order.
func (r *Response) FunctionCalls() []OutputItem {
	var out []OutputItem
	for _, item := range r.Output {
		if item.Type == "function_call" {
			out = append(out, item)
		}
	}
	return out
}

// maxResponseBody bounds a response's body.
const maxResponseBody = 32 << 20

// Respond sends a request to the Responses API and returns its answer,
// with the walk, kinds, retries, cooldowns, per-call options and observer
// of [Client.Chat]. A response the server reports failed (HTTP 200 with
// "status": "failed", its error's text the upstream failure's, such as
// "403 ... inference-api") is an error of the kind the same words have in
// an error status, and the walk moves on or stops as for chat. A request
// the server cannot validate is [ErrInvalidRequest] naming each field.
func (c *Client) Respond(ctx context.Context, req ResponseRequest, opts ...Option) (*Response, error) {
	w := &respondCall{req: req}
	ctx, err := c.begin(ctx, &w.call, "response from", opts, w.req.validate, func() CallInfo { return w.req.callInfo(false) })
	if err != nil {
		return nil, err
	}
	var room [4]Candidate
	cands := w.cfg.candidatesOf(Candidate{Model: req.Model, Provider: req.Provider}, req.Fallbacks, room[:0])
	resp, err := runRace[*Response](ctx, &w.call, cands, w)
	if err != nil {
		w.end(CallResult{}, err)
		return nil, err
	}
	resp.Attempts, resp.Skipped = w.attempts, w.skipped
	if w.obs != nil {
		w.end(resp.callResult(), nil)
	}
	return resp, nil
}

// respondCall is a Respond call in flight, its own attempter.
type respondCall struct {
	call
	req ResponseRequest
}

func (w *respondCall) attempt(ctx context.Context, cand Candidate, tok Token, hooks tryHooks) (*Response, Attempt, error) {
	return w.respond(ctx, &w.req, cand, tok, hooks)
}

// callResult is a response as an observer hears of it: its status is its
// finish.
func (r *Response) callResult() CallResult {
	res := CallResult{ID: r.ID, Model: r.Model, Provider: r.Provider, Attempts: r.Attempts, Skipped: r.Skipped,
		Usage: Usage{PromptTokens: r.Usage.InputTokens, CompletionTokens: r.Usage.OutputTokens, TotalTokens: r.Usage.TotalTokens}}
	if r.Status != "" {
		res.FinishReasons = []string{r.Status}
	}
	return res
}

// callInfo describes the call to an observer: a generation, like chat.
func (r *ResponseRequest) callInfo(stream bool) CallInfo {
	info := CallInfo{Operation: "chat", Model: r.Model, Provider: r.Provider, Stream: stream, MaxTokens: r.MaxOutputTokens,
		Temperature: r.Temperature, TopP: r.TopP, ChoiceCount: 1}
	if r.Text != nil && strings.HasPrefix(r.Text.Format.Type, "json") {
		info.OutputType = "json"
	}
	return info
}

// respond sends the request to one candidate and reads its answer.
func (w *call) respond(ctx context.Context, req *ResponseRequest, cand Candidate, tok Token, hooks tryHooks) (out *Response, att Attempt, err error) {
	c := w.c
	start := time.Now()
	att = Attempt{Candidate: cand, TokenSource: tok.Source}
	defer func() {
		att.Err, att.Duration, att.TimedOut = err, time.Since(start), timedOut(err)
	}()
	actx, cancel := boundAttempt(ctx, w.cfg)
	defer cancel()
	x := exchange{method: http.MethodPost, url: c.base.String() + "/v1/responses", accept: "application/json", about: cand, tok: tok, cfg: w.cfg, op: w.op, race: hooks}
	if x.body, err = req.encode(cand); err != nil {
		return nil, att, err
	}
	resp, err := c.send(ctx, actx, x, &att)
	if err != nil {
		return nil, att, c.validationIssues(err)
	}
	defer resp.Body.Close()
	data, err := c.read(ctx, actx, resp, x, maxResponseBody)
	if err != nil {
		return nil, att, err
	}
	if isHTML(resp.Header, data) {
		return nil, att, c.notWhatWasAsked(resp.StatusCode, resp.Header, data, x, "the answer is a web page, not a response")
	}
	out, failure, err := decodeResponse(data)
	if err != nil {
		return nil, att, c.notWhatWasAsked(resp.StatusCode, resp.Header, data, x, "the answer is not a JSON response: "+err.Error())
	}
	if failure != nil {
		return nil, att, c.failedResponse(resp.StatusCode, resp.Header, x, failure.Code, failure.Message)
	}
	out.Provider, out.RequestID = cand.Provider, att.RequestID
	if p := servedBy(resp.Header, tok); p != "" {
		out.Provider = p
	}
	return out, att, nil
}

// failedResponse is a response the server reported failed in a 200 (or a
// response.failed event): classified from its message, which is the
// upstream failure's text, as the same words would be in an error status
// ("403 ... sufficient permissions to call Inference Providers" is
// ErrMissingScope, a context-length text ErrContextLength, an unknown text
// ErrProvider).
func (c *Client) failedResponse(status int, header http.Header, x exchange, code, message string) *APIError {
	e := c.classify(status, header, nil, x)
	e.Kind = failureKind(serverText{message: message})
	e.Message = cleanText(message, maxMessageLen)
	e.Code = cleanText(code, 128)
	e.FromProvider = true
	return e
}

// embeddedStatus splits an upstream error's text into its leading HTTP
// status ("403 You do not have ...", as openai-node writes it) and the
// rest; 0 when it has none.
func embeddedStatus(message string) (int, string) {
	head, rest, ok := strings.Cut(strings.TrimSpace(message), " ")
	if !ok || len(head) != 3 {
		return 0, message
	}
	n, err := strconv.Atoi(head)
	if err != nil || n < 100 || n > 599 {
		return 0, message
	}
	return n, rest
}

// validationIssues rewrites the router's 400 for a request it could not
// validate ({"success": false, "error": [zod issues]}) so that its text
// names each field: "input: Required; temperature: Number must be less
// than or equal to 2". Other errors pass through.
func (c *Client) validationIssues(err error) error {
	e, ok := err.(*APIError)
	if !ok || e.StatusCode != http.StatusBadRequest || e.zod == nil {
		return err
	}
	var issues []struct {
		Path    []any  `json:"path"`
		Message string `json:"message"`
	}
	if json.Unmarshal(e.zod, &issues) != nil || len(issues) == 0 {
		return err
	}
	parts := make([]string, 0, len(issues))
	for _, is := range issues {
		path := make([]string, len(is.Path))
		for i, p := range is.Path {
			path[i] = fmt.Sprint(p)
		}
		if len(path) > 0 {
			parts = append(parts, strings.Join(path, ".")+": "+is.Message)
		} else {
			parts = append(parts, is.Message)
		}
	}
	e.Kind = ErrInvalidRequest
	e.Message = cleanText(strings.Join(parts, "; "), maxMessageLen)
	return e
}

// validate reports the first thing wrong with the request.
func (r *ResponseRequest) validate() error {
	if err := (Candidate{Model: r.Model, Provider: r.Provider}).validate(); err != nil {
		return invalidRequest("%s", err)
	}
	switch {
	case len(r.Input) == 0 && r.InputText == "":
		return invalidRequest("no input: give Input or InputText")
	case len(r.Input) > 0 && r.InputText != "":
		return invalidRequest("give Input or InputText, not both")
	}
	for i, it := range r.Input {
		switch it.Type {
		case "", "message":
			switch it.Role {
			case RoleUser, RoleAssistant, RoleSystem, RoleDeveloper:
			default:
				return invalidRequest("Input[%d]: role %q is not user, assistant, system or developer", i, it.Role)
			}
			if it.Text == "" && len(it.Parts) == 0 {
				return invalidRequest("Input[%d]: a message with neither Text nor Parts", i)
			}
		case "function_call":
			if it.CallID == "" || it.Name == "" {
				return invalidRequest("Input[%d]: a function_call needs CallID and Name", i)
			}
		case "function_call_output":
			if it.CallID == "" {
				return invalidRequest("Input[%d]: a function_call_output needs the CallID of its call", i)
			}
		case "mcp_approval_response":
			if it.ApprovalRequestID == "" {
				return invalidRequest("Input[%d]: an mcp_approval_response needs ApprovalRequestID", i)
			}
		default:
			return invalidRequest("Input[%d]: type %q is not one the router takes", i, it.Type)
		}
	}
	for i, t := range r.Tools {
		switch {
		case t.Type == "function" && t.Name == "":
			return invalidRequest("Tools[%d]: a function needs a Name", i)
		case t.Type == "mcp" && (t.ServerLabel == "" || t.ServerURL == ""):
			return invalidRequest("Tools[%d]: an MCP tool needs ServerLabel and ServerURL", i)
		case t.Type != "function" && t.Type != "mcp":
			return invalidRequest("Tools[%d]: type %q is not function or mcp", i, t.Type)
		}
	}
	if t := r.Text; t != nil {
		switch t.Format.Type {
		case "text", "json_object":
		case "json_schema":
			if t.Format.Name == "" || len(t.Format.Name) > 64 || t.Format.Schema == nil {
				return invalidRequest("Text.Format: json_schema needs a Name of 1 to 64 characters and a Schema")
			}
		default:
			return invalidRequest("Text.Format.Type %q is not text, json_object or json_schema", t.Format.Type)
		}
	}
	switch {
	case r.Temperature != nil && (*r.Temperature < 0 || *r.Temperature > 2):
		return invalidRequest("Temperature %v is outside [0, 2]", *r.Temperature)
	case r.TopP != nil && (*r.TopP < 0 || *r.TopP > 1):
		return invalidRequest("TopP %v is outside [0, 1]", *r.TopP)
	case r.MaxOutputTokens < 0:
		return invalidRequest("MaxOutputTokens %d is negative", r.MaxOutputTokens)
	}
	if len(r.Metadata) > 16 {
		return invalidRequest("Metadata has %d keys; the router keeps at most 16", len(r.Metadata))
	}
	for k, v := range r.Metadata {
		if len(k) > 64 || len(v) > 512 {
			return invalidRequest("Metadata %q: keys are at most 64 characters, values at most 512", k)
		}
	}
	if r.MaxOutputTokens < 0 {
		return invalidRequest("MaxOutputTokens is negative")
	}
	for _, f := range r.Fallbacks {
		if err := f.validate(); err != nil {
			return invalidRequest("Fallbacks: %s", err)
		}
	}
	return nil
}

// encode builds the JSON body for one candidate, for a stream or not.
func (r *ResponseRequest) encode(cand Candidate, stream ...bool) ([]byte, error) {
	type part struct {
		Type     string `json:"type"`
		Text     string `json:"text,omitempty"`
		ImageURL string `json:"image_url,omitempty"`
	}
	w := map[string]any{"model": cand.wireModel()}
	if r.InputText != "" {
		w["input"] = r.InputText
	} else {
		items := make([]map[string]any, len(r.Input))
		for i, it := range r.Input {
			m := map[string]any{}
			switch it.Type {
			case "", "message":
				m["type"], m["role"] = "message", it.Role
				if len(it.Parts) == 0 {
					m["content"] = it.Text
				} else {
					parts := make([]part, len(it.Parts))
					for j, p := range it.Parts {
						parts[j] = part(p)
					}
					m["content"] = parts
				}
			case "function_call":
				m["type"], m["call_id"], m["name"], m["arguments"] = it.Type, it.CallID, it.Name, it.Arguments
			case "function_call_output":
				m["type"], m["call_id"], m["output"] = it.Type, it.CallID, it.Output
			case "mcp_approval_response":
				m["type"], m["approval_request_id"], m["approve"] = it.Type, it.ApprovalRequestID, it.Approve
				if it.Reason != "" {
					m["reason"] = it.Reason
				}
			}
			items[i] = m
		}
		w["input"] = items
	}
	if r.Instructions != "" {
		w["instructions"] = r.Instructions
	}
	if len(r.Tools) > 0 {
		tools := make([]map[string]any, len(r.Tools))
		for i, t := range r.Tools {
			m := map[string]any{"type": t.Type}
			if t.Type == "function" {
				m["name"], m["strict"] = t.Name, t.Strict
				m["parameters"] = t.Parameters
				if t.Parameters == nil {
					m["parameters"] = map[string]any{"type": "object", "properties": map[string]any{}}
				}
				if t.Description != "" {
					m["description"] = t.Description
				}
			} else {
				m["server_label"], m["server_url"] = t.ServerLabel, t.ServerURL
				if len(t.AllowedTools) > 0 {
					m["allowed_tools"] = t.AllowedTools
				}
				if len(t.Headers) > 0 {
					m["headers"] = t.Headers
				}
				if t.RequireApproval != "" {
					m["require_approval"] = t.RequireApproval
				}
			}
			tools[i] = m
		}
		w["tools"] = tools
	}
	if tc := r.ToolChoice; tc != nil {
		if tc.Name != "" {
			w["tool_choice"] = map[string]string{"type": "function", "name": tc.Name}
		} else {
			w["tool_choice"] = tc.Mode
		}
	}
	if t := r.Text; t != nil {
		f := map[string]any{"type": t.Format.Type}
		if t.Format.Type == "json_schema" {
			f["name"], f["schema"], f["strict"] = t.Format.Name, t.Format.Schema, t.Format.Strict
			if t.Format.Description != "" {
				f["description"] = t.Format.Description
			}
		}
		w["text"] = map[string]any{"format": f}
	}
	if r.Reasoning != nil {
		m := map[string]string{}
		if r.Reasoning.Effort != "" {
			m["effort"] = r.Reasoning.Effort
		}
		if r.Reasoning.Summary != "" {
			m["summary"] = r.Reasoning.Summary
		}
		w["reasoning"] = m
	}
	if r.MaxOutputTokens > 0 {
		w["max_output_tokens"] = r.MaxOutputTokens
	}
	if r.Temperature != nil {
		w["temperature"] = *r.Temperature
	}
	if r.TopP != nil {
		w["top_p"] = *r.TopP
	}
	if len(r.Metadata) > 0 {
		w["metadata"] = r.Metadata
	}
	if len(stream) > 0 && stream[0] {
		w["stream"] = true
	}
	body, err := json.Marshal(w)
	if err != nil {
		return nil, invalidRequest("encoding the request: %v", err)
	}
	return body, nil
}
