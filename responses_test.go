package inference_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
	"github.com/hfkit/inference/internal/redact"
)

func respReq(model string) inference.ResponseRequest {
	return inference.ResponseRequest{Model: model, InputText: "hi"}
}

func TestRespondText(t *testing.T) {
	verifyNoLeaks(t)
	r := newRouter(t)
	r.On("openai/gpt-oss-120b:groq", inferencetest.Reply("Hello from the Responses API"))
	c, err := r.Client()
	require.NoError(t, err)
	req := respReq("openai/gpt-oss-120b")
	req.Provider = "groq"
	resp, err := c.Respond(t.Context(), req)
	require.NoError(t, err)
	assert.Equal(t, "Hello from the Responses API", resp.OutputText())
	assert.Equal(t, "completed", resp.Status)
	assert.Equal(t, "groq", resp.Provider)
	assert.Equal(t, "resp_fake", resp.ID)
	assert.Equal(t, inference.ResponseUsage{InputTokens: 10, OutputTokens: 5, TotalTokens: 15}, resp.Usage)
	require.Len(t, resp.Attempts, 1)
	q := r.Requests()[0]
	assert.Equal(t, "responses", q.API)
	assert.JSONEq(t, `{"model":"openai/gpt-oss-120b:groq","input":"hi"}`, string(q.Body))
}

func TestRespondEncodesTheRequest(t *testing.T) {
	r := newRouter(t)
	r.Otherwise(inferencetest.Reply("ok"))
	c, err := r.Client()
	require.NoError(t, err)
	req := inference.ResponseRequest{
		Model:        "org/m",
		Instructions: "Be brief.",
		Input: []inference.InputItem{
			inference.UserInput("What is the weather in Paris?"),
			{Type: "function_call", CallID: "call_1", Name: "weather", Arguments: `{"city":"Paris"}`},
			inference.FunctionCallOutput("call_1", `{"temp":21}`),
			{Role: inference.RoleUser, Parts: []inference.InputPart{{Type: "input_text", Text: "and this?"}, {Type: "input_image", ImageURL: "https://example.com/a.png"}}},
		},
		Tools: []inference.ResponseTool{
			{Type: "function", Name: "weather", Description: "Weather of a city", Parameters: map[string]any{"type": "object"}},
			{Type: "mcp", ServerLabel: "docs", ServerURL: "https://mcp.example.com", RequireApproval: "never"},
		},
		ToolChoice:      &inference.ResponseToolChoice{Mode: "auto"},
		Text:            &inference.ResponseText{Format: inference.ResponseFormatSpec{Type: "json_schema", Name: "answer", Schema: map[string]any{"type": "object"}}},
		Reasoning:       &inference.ReasoningConfig{Effort: "low"},
		MaxOutputTokens: 256,
		Temperature:     inference.Float64(0.3),
		Metadata:        map[string]string{"user": "u1"},
	}
	_, err = c.Respond(t.Context(), req)
	require.NoError(t, err)
	assert.JSONEq(t, `{
		"model":"org/m","instructions":"Be brief.",
		"input":[
			{"type":"message","role":"user","content":"What is the weather in Paris?"},
			{"type":"function_call","call_id":"call_1","name":"weather","arguments":"{\"city\":\"Paris\"}"},
			{"type":"function_call_output","call_id":"call_1","output":"{\"temp\":21}"},
			{"type":"message","role":"user","content":[{"type":"input_text","text":"and this?"},{"type":"input_image","image_url":"https://example.com/a.png"}]}
		],
		"tools":[
			{"type":"function","name":"weather","description":"Weather of a city","parameters":{"type":"object"},"strict":false},
			{"type":"mcp","server_label":"docs","server_url":"https://mcp.example.com","require_approval":"never"}
		],
		"tool_choice":"auto",
		"text":{"format":{"type":"json_schema","name":"answer","schema":{"type":"object"},"strict":false}},
		"reasoning":{"effort":"low"},
		"max_output_tokens":256,"temperature":0.3,"metadata":{"user":"u1"}
	}`, string(r.Requests()[0].Body))
}

// Reasoning, function calls and MCP items are typed; a type this client
// does not know is kept raw.
func TestRespondKeepsEveryItem(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", inferencetest.ResponseItems(
		`{"type":"reasoning","id":"rs_1","status":"completed","content":[{"type":"reasoning_text","text":"The user wants "},{"type":"reasoning_text","text":"the weather."}],"summary":[]}`,
		`{"type":"mcp_list_tools","id":"mcpl_1","server_label":"docs","tools":[{"name":"search","input_schema":{"type":"object"},"description":"Search the docs"}]}`,
		`{"type":"mcp_call","id":"mcp_1","name":"search","server_label":"docs","arguments":"{\"q\":\"go\"}","output":"3 results"}`,
		`{"type":"mcp_approval_request","id":"mcpr_1","name":"delete","server_label":"docs","arguments":"{}"}`,
		`{"type":"function_call","id":"fc_1","call_id":"call_7","name":"weather","arguments":"{\"city\":\"Paris\"}","status":"completed"}`,
		`{"type":"web_search_call","id":"ws_1","status":"completed","action":{"query":"go"}}`,
	))
	c, err := r.Client()
	require.NoError(t, err)
	resp, err := c.Respond(t.Context(), respReq("org/m"))
	require.NoError(t, err)
	require.Len(t, resp.Output, 6)
	assert.Equal(t, "The user wants the weather.", resp.Output[0].Reasoning)
	assert.Equal(t, "search", resp.Output[1].Tools[0].Name)
	assert.Equal(t, "docs", resp.Output[2].ServerLabel)
	assert.Equal(t, "3 results", resp.Output[2].Output)
	assert.Equal(t, "delete", resp.Output[3].Name)
	calls := resp.FunctionCalls()
	require.Len(t, calls, 1)
	assert.Equal(t, "call_7", calls[0].CallID)
	assert.JSONEq(t, `{"city":"Paris"}`, calls[0].Arguments)
	unknown := resp.Output[5]
	assert.Equal(t, "web_search_call", unknown.Type)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(unknown.Raw, &raw))
	assert.Equal(t, map[string]any{"query": "go"}, raw["action"], "kept as received")
	assert.Empty(t, resp.OutputText())
}

// A response the server reports failed in a 200 is an error of the kind
// its words have; the walk moves on or stops as for chat.
func TestRespondFailedInA200(t *testing.T) {
	tests := []struct {
		name    string
		message string
		kind    error
	}{
		{"missing scope", "403 This authentication method does not have sufficient permissions to call Inference Providers on behalf of user alice", inference.ErrMissingScope},
		{"gated", "403 Access to model org/m is restricted and you are not in the authorized list. Visit https://huggingface-proxy-6ci.pages.dev/org/m to ask for access.", inference.ErrGatedModel},
		{"context length", "400 This model's maximum context length is 8192 tokens. However, you requested 9000 tokens.", inference.ErrContextLength},
		{"provider down", "502 Bad Gateway", inference.ErrProvider},
		{"no status", "Connection error.", inference.ErrProvider},
		{"not supported", "400 The requested model 'org/m' is not supported by any provider you have enabled.", inference.ErrModelNotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRouter(t)
			r.On("org/m", inferencetest.ResponseFailed(tt.message))
			c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
			require.NoError(t, err)
			_, err = c.Respond(t.Context(), respReq("org/m"))
			require.Error(t, err)
			assert.Equal(t, []error{tt.kind}, matchedKinds(err), "%v", err)
			var apiErr *inference.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, 200, apiErr.StatusCode)
			assert.Equal(t, "server_error", apiErr.Code)
			assert.Contains(t, apiErr.Message, tt.message[4:])
		})
	}
}

// The walk after failures in a 200: a scope-less token moves to the next
// source, a gated model to the next candidate.
func TestRespondWalksAfterFailuresInA200(t *testing.T) {
	const oauthTok = "hf_oauth_Ssssssssssssssssssssssssssssssssss"
	r := newRouter(t)
	r.ForToken(oauthTok, inferencetest.ResponseFailed("403 This authentication method does not have sufficient permissions to call Inference Providers on behalf of user alice"))
	r.On("org/gated", inferencetest.ResponseFailed("403 Access to model org/gated is restricted and you are not in the authorized list."))
	r.On("org/backup", inferencetest.Reply("from the backup"))
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}), inference.WithFallback(inference.Candidate{Model: "org/backup"}))
	require.NoError(t, err)
	user := inference.WithUserTokenSource(inference.OAuthToken(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: oauthTok})))
	resp, err := c.Respond(t.Context(), respReq("org/gated"), user, inference.WithBillTo("acme-corp"))
	require.NoError(t, err)
	assert.Equal(t, "from the backup", resp.OutputText())
	require.Len(t, resp.Attempts, 3)
	assert.Equal(t, []error{inference.ErrMissingScope}, matchedKinds(resp.Attempts[0].Err))
	assert.Equal(t, []error{inference.ErrGatedModel}, matchedKinds(resp.Attempts[1].Err))
	reqs := r.Requests()
	assert.Equal(t, redact.Prefix(oauthTok), reqs[0].TokenPrefix)
	for _, q := range reqs {
		assert.Equal(t, "acme-corp", q.Header.Get("X-Hf-Bill-To"), "bill-to on every attempt")
	}
}

func TestRespondValidationErrorNamesTheField(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", inferencetest.ResponseValidationError("temperature", "Number must be less than or equal to 2"))
	c, err := r.Client()
	require.NoError(t, err)
	_, err = c.Respond(t.Context(), respReq("org/m"))
	require.Error(t, err)
	assert.Equal(t, []error{inference.ErrInvalidRequest}, matchedKinds(err))
	assert.Contains(t, err.Error(), "temperature: Number must be less than or equal to 2")
	assert.Len(t, r.Requests(), 1, "a refused request is not sent elsewhere")
}

func TestRespondIncompleteIsASuccess(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", inferencetest.ResponseIncomplete("cut sh"))
	c, err := r.Client()
	require.NoError(t, err)
	resp, err := c.Respond(t.Context(), respReq("org/m"))
	require.NoError(t, err)
	assert.Equal(t, "incomplete", resp.Status)
	assert.Equal(t, "max_output_tokens", resp.IncompleteReason)
	assert.Equal(t, "cut sh", resp.OutputText())
}

func TestRespondFallsBackOnHTTPFailures(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", inferencetest.ProviderError(503))
	r.On("org/b", inferencetest.Reply("b"))
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	req := respReq("org/m")
	req.Fallbacks = []inference.Candidate{{Model: "org/b"}}
	resp, err := c.Respond(t.Context(), req)
	require.NoError(t, err)
	assert.Equal(t, "b", resp.OutputText())
	assert.Equal(t, []string{"org/m", "org/b"}, r.Models())
}

func TestRespondRefusesBadRequests(t *testing.T) {
	r := newRouter(t)
	c, err := r.Client()
	require.NoError(t, err)
	for name, req := range map[string]inference.ResponseRequest{
		"no input":        {Model: "org/m"},
		"both inputs":     {Model: "org/m", InputText: "a", Input: []inference.InputItem{inference.UserInput("b")}},
		"bad role":        {Model: "org/m", Input: []inference.InputItem{{Role: "robot", Text: "x"}}},
		"empty message":   {Model: "org/m", Input: []inference.InputItem{{Role: "user"}}},
		"unknown item":    {Model: "org/m", Input: []inference.InputItem{{Type: "item_reference"}}},
		"output no id":    {Model: "org/m", Input: []inference.InputItem{{Type: "function_call_output", Output: "x"}}},
		"tool type":       {Model: "org/m", InputText: "a", Tools: []inference.ResponseTool{{Type: "web_search"}}},
		"mcp without url": {Model: "org/m", InputText: "a", Tools: []inference.ResponseTool{{Type: "mcp", ServerLabel: "x"}}},
		"schema no name":  {Model: "org/m", InputText: "a", Text: &inference.ResponseText{Format: inference.ResponseFormatSpec{Type: "json_schema", Schema: map[string]any{}}}},
		"format type":     {Model: "org/m", InputText: "a", Text: &inference.ResponseText{Format: inference.ResponseFormatSpec{Type: "xml"}}},
		"too much meta":   {Model: "org/m", InputText: "a", Metadata: map[string]string{"a": "1", "b": "1", "c": "1", "d": "1", "e": "1", "f": "1", "g": "1", "h": "1", "i": "1", "j": "1", "k": "1", "l": "1", "m": "1", "n": "1", "o": "1", "p": "1", "q": "1"}},
		"negative max":    {Model: "org/m", InputText: "a", MaxOutputTokens: -1},
		"no model":        {InputText: "a"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := c.Respond(t.Context(), req)
			require.Error(t, err)
			assert.Equal(t, []error{inference.ErrInvalidRequest}, matchedKinds(err), "%v", err)
			assert.Contains(t, err.Error(), "the request is invalid")
		})
	}
	assert.Empty(t, r.Requests())
}

type weather struct {
	City string `json:"city"`
	Temp int    `json:"temp"`
}

func TestResponseJSON(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", inferencetest.Reply(`{"city":"Paris","temp":21}`))
	c, err := r.Client()
	require.NoError(t, err)
	v, resp, err := inference.ResponseJSON[weather](t.Context(), c, respReq("org/m"))
	require.NoError(t, err)
	assert.Equal(t, weather{"Paris", 21}, v)
	assert.Len(t, resp.Attempts, 1)
	var body struct {
		Text struct {
			Format struct {
				Type   string          `json:"type"`
				Name   string          `json:"name"`
				Schema json.RawMessage `json:"schema"`
			} `json:"format"`
		} `json:"text"`
	}
	require.NoError(t, json.Unmarshal(r.Requests()[0].Body, &body))
	assert.Equal(t, "json_schema", body.Text.Format.Type)
	assert.Equal(t, "weather", body.Text.Format.Name)
	assert.Contains(t, string(body.Text.Format.Schema), `"city"`)
}

func TestResponseJSONAsksOnceMore(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", inferencetest.Reply("Sure! The weather is nice."), inferencetest.Reply(`{"city":"Paris","temp":21}`))
	c, err := r.Client()
	require.NoError(t, err)
	v, resp, err := inference.ResponseJSON[weather](t.Context(), c, respReq("org/m"))
	require.NoError(t, err)
	assert.Equal(t, weather{"Paris", 21}, v)
	assert.Len(t, resp.Attempts, 2)
	var retry struct {
		Input []map[string]any `json:"input"`
	}
	require.NoError(t, json.Unmarshal(r.Requests()[1].Body, &retry))
	require.Len(t, retry.Input, 3, "the question, the first output, and what was wrong")
	assert.Equal(t, "assistant", retry.Input[1]["role"])
	assert.Equal(t, "Sure! The weather is nice.", retry.Input[1]["content"])

	r.On("org/bad", inferencetest.Reply("no"), inferencetest.Reply("still no"))
	_, _, err = inference.ResponseJSON[weather](t.Context(), c, respReq("org/bad"))
	var de *inference.JSONDecodeError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(err))
}
