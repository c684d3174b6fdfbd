package inferencetest_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// Every Responses API answer of the fake, as a user's client sees it, once
// whole (Respond) and once streamed (RespondStream).

func respond(model string) inference.ResponseRequest {
	return inference.ResponseRequest{Model: model, InputText: "hi"}
}

// streamed reads a response stream to its end: the event types, the text
// of each kind of delta, and the stream's response.
type streamed struct {
	types  []string
	deltas map[string]string
	resp   *inference.Response
	err    error
}

func readStream(t *testing.T, c *inference.Client, model string) streamed {
	t.Helper()
	s, err := c.RespondStream(t.Context(), respond(model))
	require.NoError(t, err)
	defer s.Close()
	out := streamed{deltas: map[string]string{}}
	for s.Next() {
		ev := s.Current()
		out.types = append(out.types, ev.Type)
		if strings.HasSuffix(ev.Type, ".delta") {
			out.deltas[ev.Type] += ev.Delta
		}
	}
	out.resp, out.err = s.Response(), s.Err()
	return out
}

func responseRouter(t *testing.T) (*inferencetest.Router, *inference.Client) {
	t.Helper()
	r := inferencetest.NewRouter()
	t.Cleanup(r.Close)
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)
	return r, c
}

func TestResponseReplyAndReply(t *testing.T) {
	r, c := responseRouter(t)
	r.On("org/m", inferencetest.ResponseReply("Hello there, friend"))
	r.On("org/any", inferencetest.Reply("Reply serves the Responses API too"))
	for model, text := range map[string]string{"org/m": "Hello there, friend", "org/any": "Reply serves the Responses API too"} {
		resp, err := c.Respond(t.Context(), respond(model))
		require.NoError(t, err)
		assert.Equal(t, text, resp.OutputText())
		assert.Equal(t, "completed", resp.Status)
		assert.Equal(t, "resp_fake", resp.ID)
		assert.Equal(t, model, resp.Model)
		assert.Equal(t, "together", resp.Provider)
		words := len(strings.Fields(text))
		assert.Equal(t, inference.ResponseUsage{InputTokens: 10, OutputTokens: words, TotalTokens: 10 + words}, resp.Usage)

		got := readStream(t, c, model)
		require.NoError(t, got.err)
		assert.Equal(t, text, got.deltas["response.output_text.delta"])
		assert.Equal(t, []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"}, got.types[:4])
		assert.Equal(t, []string{"response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"}, got.types[len(got.types)-4:])
		assert.Equal(t, text, got.resp.OutputText())
	}
	reqs := r.Requests()
	require.Len(t, reqs, 4)
	for _, q := range reqs {
		assert.Equal(t, "responses", q.API)
	}
	assert.False(t, reqs[0].Stream)
	assert.True(t, reqs[1].Stream)
}

func TestResponsePinnedProviderServes(t *testing.T) {
	r, c := responseRouter(t)
	r.On("org/m:groq", inferencetest.ResponseReply("from groq"))
	req := respond("org/m")
	req.Provider = "groq"
	resp, err := c.Respond(t.Context(), req)
	require.NoError(t, err)
	assert.Equal(t, "groq", resp.Provider)
	assert.Equal(t, "org/m:groq", resp.Model)
	assert.Equal(t, []string{"org/m:groq"}, r.Models())
}

func TestResponseIncomplete(t *testing.T) {
	r, c := responseRouter(t)
	r.On("org/m", inferencetest.ResponseIncomplete("The answer was cut"))
	resp, err := c.Respond(t.Context(), respond("org/m"))
	require.NoError(t, err)
	assert.Equal(t, "incomplete", resp.Status)
	assert.Equal(t, "max_output_tokens", resp.IncompleteReason)
	assert.Equal(t, "The answer was cut", resp.OutputText())
	assert.Equal(t, "incomplete", resp.Output[0].Status)

	got := readStream(t, c, "org/m")
	require.NoError(t, got.err, "an answer cut by max_output_tokens is whole")
	assert.Equal(t, "response.incomplete", got.types[len(got.types)-1])
	assert.Equal(t, "incomplete", got.resp.Status)
	assert.Equal(t, "max_output_tokens", got.resp.IncompleteReason)
	assert.Equal(t, "The answer was cut", got.resp.OutputText())
}

func TestResponseReasoningAndUsage(t *testing.T) {
	r, c := responseRouter(t)
	usage := inference.ResponseUsage{InputTokens: 900, CachedInputTokens: 512, OutputTokens: 30, ReasoningTokens: 20, TotalTokens: 930}
	r.On("org/m", inferencetest.ResponseUsage(usage, inferencetest.ResponseReasoning("Recall the capital.", "Paris")))
	r.On("org/plain", inferencetest.ResponseReasoning("Think briefly.", "Yes"))
	resp, err := c.Respond(t.Context(), respond("org/m"))
	require.NoError(t, err)
	require.Len(t, resp.Output, 2)
	assert.Equal(t, "Recall the capital.", resp.Output[0].ReasoningSummary)
	assert.Equal(t, "Paris", resp.OutputText())
	assert.Equal(t, usage, resp.Usage)

	got := readStream(t, c, "org/m")
	require.NoError(t, got.err)
	assert.Equal(t, "Recall the capital.", got.deltas["response.reasoning_summary_text.delta"])
	assert.Contains(t, got.types, "response.reasoning_summary_part.added")
	assert.Contains(t, got.types, "response.reasoning_summary_text.done")
	assert.Equal(t, "Recall the capital.", got.resp.Output[0].ReasoningSummary)
	assert.Equal(t, usage, got.resp.Usage)

	resp, err = c.Respond(t.Context(), respond("org/plain"))
	require.NoError(t, err)
	assert.Equal(t, inference.ResponseUsage{InputTokens: 10, OutputTokens: 3, ReasoningTokens: 2, TotalTokens: 13}, resp.Usage,
		"without ResponseUsage the words are counted, the summary's as reasoning")
}

func TestResponseFunctionCall(t *testing.T) {
	r, c := responseRouter(t)
	r.On("org/m", inferencetest.ResponseFunctionCall("weather", `{"city":"Paris"}`))
	resp, err := c.Respond(t.Context(), respond("org/m"))
	require.NoError(t, err)
	calls := resp.FunctionCalls()
	require.Len(t, calls, 1)
	assert.Equal(t, inference.OutputItem{Type: "function_call", ID: "fc_fake", Status: "completed", CallID: "call_fake", Name: "weather",
		Arguments: `{"city":"Paris"}`, Raw: calls[0].Raw}, calls[0])

	got := readStream(t, c, "org/m")
	require.NoError(t, got.err)
	assert.Equal(t, `{"city":"Paris"}`, got.deltas["response.function_call_arguments.delta"])
	calls = got.resp.FunctionCalls()
	require.Len(t, calls, 1)
	assert.Equal(t, "call_fake", calls[0].CallID)
}

// Item 8 of issue 32: ResponseItems panicked on a message item (an
// interface conversion), and the client saw the connection drop.
func TestResponseItemsServesAMessage(t *testing.T) {
	r, c := responseRouter(t)
	r.On("org/m", inferencetest.ResponseItems(
		`{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"Hello from an item","annotations":[]}]}`))
	resp, err := c.Respond(t.Context(), respond("org/m"))
	require.NoError(t, err)
	assert.Equal(t, "Hello from an item", resp.OutputText())
	assert.Equal(t, 4, resp.Usage.OutputTokens)

	got := readStream(t, c, "org/m")
	require.NoError(t, got.err)
	assert.Equal(t, "Hello from an item", got.deltas["response.output_text.delta"])
	assert.Equal(t, "Hello from an item", got.resp.OutputText())
}

// ResponseItems streams each kind of item as the router's Responses server
// does; the client sees every item whole at the end.
func TestResponseItemsStreamsEveryKind(t *testing.T) {
	r, c := responseRouter(t)
	r.On("org/m", inferencetest.ResponseItems(
		`{"type":"mcp_list_tools","id":"mcpl_1","server_label":"docs","tools":[{"name":"search","description":"Search","input_schema":{"type":"object"}}]}`,
		`{"type":"mcp_list_tools","id":"mcpl_2","server_label":"down","tools":[],"error":"connection refused"}`,
		`{"type":"reasoning","id":"rs_1","content":[{"type":"reasoning_text","text":"Search first."}],"summary":[{"type":"summary_text","text":"Searching."}]}`,
		`{"type":"mcp_call","id":"mcp_1","name":"search","server_label":"docs","arguments":"{\"q\":\"go\"}","output":"3 hits"}`,
		`{"type":"mcp_call","id":"mcp_2","name":"search","server_label":"down","arguments":"{}","error":"timeout"}`,
		`{"type":"mcp_approval_request","id":"mcpr_1","name":"delete","server_label":"docs","arguments":"{}"}`,
		`{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"Found three."},{"type":"refusal","refusal":"Not that."}]}`,
		`{"type":"web_search_call","id":"ws_1","status":"completed","action":{"query":"go"}}`,
	))
	check := func(t *testing.T, out []inference.OutputItem) {
		t.Helper()
		require.Len(t, out, 8)
		assert.Equal(t, []inference.MCPTool{{Name: "search", Description: "Search", InputSchema: []byte(`{"type":"object"}`)}}, out[0].Tools)
		assert.Equal(t, "connection refused", out[1].Error)
		assert.Equal(t, "Search first.", out[2].Reasoning)
		assert.Equal(t, "Searching.", out[2].ReasoningSummary)
		assert.Equal(t, "3 hits", out[3].Output)
		assert.Equal(t, "timeout", out[4].Error)
		assert.Equal(t, "delete", out[5].Name)
		assert.Equal(t, []inference.OutputContent{{Type: "output_text", Text: "Found three."}, {Type: "refusal", Refusal: "Not that."}}, out[6].Content)
		assert.Equal(t, "web_search_call", out[7].Type)
		assert.Contains(t, string(out[7].Raw), `"query":"go"`)
	}
	resp, err := c.Respond(t.Context(), respond("org/m"))
	require.NoError(t, err)
	check(t, resp.Output)
	assert.Equal(t, "Found three.", resp.OutputText())

	got := readStream(t, c, "org/m")
	require.NoError(t, got.err, "a failed MCP call or listing is an item of the answer")
	check(t, got.resp.Output)
	assert.Equal(t, "Search first.", got.deltas["response.reasoning_text.delta"])
	assert.Equal(t, "Searching.", got.deltas["response.reasoning_summary_text.delta"])
	assert.Equal(t, `{"q":"go"}{}`, got.deltas["response.mcp_call_arguments.delta"])
	assert.Equal(t, "Found three.", got.deltas["response.output_text.delta"])
	assert.Equal(t, "Not that.", got.deltas["response.refusal.delta"])
	for _, typ := range []string{"response.mcp_list_tools.completed", "response.mcp_list_tools.failed", "response.mcp_call.completed",
		"response.mcp_call.failed", "response.mcp_call.in_progress", "response.mcp_list_tools.in_progress"} {
		assert.Contains(t, got.types, typ)
	}
	assert.Equal(t, 8, strings.Count(strings.Join(got.types, " "), "response.output_item.added"))
}

// An item being added is shown in progress: its text and arguments come
// after, as the protocol streams them.
func TestResponseItemsAddsItemsInProgress(t *testing.T) {
	r, c := responseRouter(t)
	r.On("org/m", inferencetest.ResponseItems(
		`{"type":"function_call","id":"fc_1","call_id":"call_1","name":"f","arguments":"{\"a\":1}","status":"completed"}`,
		`{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"ok"}]}`))
	s, err := c.RespondStream(t.Context(), respond("org/m"))
	require.NoError(t, err)
	defer s.Close()
	var added, done []inference.OutputItem
	for ev, err := range s.All() {
		require.NoError(t, err)
		switch ev.Type {
		case "response.output_item.added":
			added = append(added, *ev.Item)
		case "response.output_item.done":
			done = append(done, *ev.Item)
		}
	}
	require.Len(t, added, 2)
	assert.Equal(t, "in_progress", added[0].Status)
	assert.Empty(t, added[0].Arguments)
	assert.Equal(t, "f", added[0].Name)
	assert.Empty(t, added[1].Content)
	require.Len(t, done, 2)
	assert.Equal(t, `{"a":1}`, done[0].Arguments)
	assert.Equal(t, "ok", done[1].Content[0].Text)
}

func TestResponseItemsRefusesWhatIsNotAnObject(t *testing.T) {
	for _, bad := range []string{`not json`, `null`, `["a"]`} {
		assert.PanicsWithValue(t, `inferencetest: ResponseItems: "`+strings.ReplaceAll(bad, `"`, `\"`)+`" is not a JSON object`, func() {
			inferencetest.ResponseItems(`{"type":"message"}`, bad)
		}, bad)
	}
}

func TestResponseFailedAndValidation(t *testing.T) {
	r, c := responseRouter(t)
	r.On("org/scope", inferencetest.ResponseFailed("403 This authentication method does not have sufficient permissions to call Inference Providers on behalf of user alice"))
	r.On("org/invalid", inferencetest.ResponseValidationError("input.0.content", "Required"))
	_, err := c.Respond(t.Context(), respond("org/scope"))
	require.ErrorIs(t, err, inference.ErrMissingScope)
	var apiErr *inference.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 200, apiErr.StatusCode, "a failure inside a 200")
	assert.Equal(t, "server_error", apiErr.Code)

	_, err = c.RespondStream(t.Context(), respond("org/scope"))
	require.ErrorIs(t, err, inference.ErrMissingScope, "a response.failed before content is the call's error")

	_, err = c.Respond(t.Context(), respond("org/invalid"))
	require.ErrorIs(t, err, inference.ErrInvalidRequest)
	assert.Contains(t, err.Error(), "input.0.content: Required")
}

// The HTTP failures answer Responses API requests as they answer chat.
func TestHTTPFailuresAnswerResponses(t *testing.T) {
	for name, tt := range map[string]struct {
		answer inferencetest.Answer
		kind   error
	}{
		"gated":         {inferencetest.Gated(), inference.ErrGatedModel},
		"missing scope": {inferencetest.MissingScope(), inference.ErrMissingScope},
		"credits":       {inferencetest.PaymentRequired(), inference.ErrPaymentRequired},
		"provider 503":  {inferencetest.ProviderError(503), inference.ErrProvider},
	} {
		t.Run(name, func(t *testing.T) {
			r, c := responseRouter(t)
			r.On("org/m", tt.answer)
			_, err := c.Respond(t.Context(), respond("org/m"))
			require.ErrorIs(t, err, tt.kind)
			_, err = c.RespondStream(t.Context(), respond("org/m"))
			require.ErrorIs(t, err, tt.kind)
		})
	}
}
