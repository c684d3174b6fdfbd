package inference_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// What servers of the Responses protocol send beyond the shapes the first
// client was written for: item types with object fields, a stream cut by
// max_output_tokens, reasoning summaries, cached tokens.

// objectFieldItems are output items whose output, arguments or tools are
// JSON objects: types this client does not know, and known types whose
// arguments or output a server sent as an object.
var objectFieldItems = []string{
	`{"type":"shell_call_output","id":"sh_1","call_id":"call_1","output":{"stdout":"ok\n","exit_code":0}}`,
	`{"type":"computer_call","id":"cc_1","status":"completed","arguments":{"x":10},"tools":{"screen":"main"}}`,
	`{"type":"function_call","id":"fc_1","call_id":"call_2","name":"weather","arguments":{"city":"Paris"},"status":"completed"}`,
	`{"type":"mcp_call","id":"mcp_1","name":"search","server_label":"docs","arguments":"{}","output":{"hits":3}}`,
	`{"type":"mcp_list_tools","id":"mcpl_1","server_label":"docs","tools":{"not":"a list"}}`,
}

// checkObjectFieldItems checks the items of objectFieldItems as the
// client reads them.
func checkObjectFieldItems(t *testing.T, items []inference.OutputItem) {
	t.Helper()
	require.Len(t, items, len(objectFieldItems))
	for i, item := range items {
		assert.JSONEq(t, objectFieldItems[i], string(item.Raw), "item %d is kept whole", i)
	}
	assert.Equal(t, "shell_call_output", items[0].Type)
	assert.Equal(t, "sh_1", items[0].ID)
	assert.Empty(t, items[0].Output, "a field of a type the client does not know is left to Raw")
	assert.Empty(t, items[0].CallID)
	assert.Equal(t, "computer_call", items[1].Type)
	assert.Empty(t, items[1].Arguments)
	assert.Nil(t, items[1].Tools)
	assert.Equal(t, "call_2", items[2].CallID)
	assert.JSONEq(t, `{"city":"Paris"}`, items[2].Arguments, "arguments sent as an object are kept as JSON text")
	assert.JSONEq(t, `{"hits":3}`, items[3].Output)
	assert.Equal(t, "docs", items[4].ServerLabel)
	assert.Nil(t, items[4].Tools, "a tools member that is not a list is left to Raw")
}

// Item 4 of issue 32: an output item with an object output (or arguments,
// tools) made Respond fail with ErrProvider ("cannot unmarshal object").
func TestRespondKeepsItemsWithObjectFields(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", inferencetest.ResponseItems(objectFieldItems...))
	c, err := r.Client()
	require.NoError(t, err)
	resp, err := c.Respond(t.Context(), respReq("org/m"))
	require.NoError(t, err)
	checkObjectFieldItems(t, resp.Output)
	require.Len(t, resp.FunctionCalls(), 1)
}

// Item 4 of issue 32, streamed: the same items in output_item.added and
// .done events made RespondStream fail with ErrStream ("a chunk is not
// valid JSON").
func TestRespondStreamKeepsItemsWithObjectFields(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", inferencetest.ResponseItems(objectFieldItems...))
	c, err := r.Client()
	require.NoError(t, err)
	s, err := c.RespondStream(t.Context(), respReq("org/m"))
	require.NoError(t, err)
	defer s.Close()
	var done []inference.OutputItem
	added := 0
	for s.Next() {
		switch ev := s.Current(); ev.Type {
		case "response.output_item.added":
			require.NotNil(t, ev.Item)
			added++
		case "response.output_item.done":
			require.NotNil(t, ev.Item)
			done = append(done, *ev.Item)
		}
	}
	require.NoError(t, s.Err())
	assert.Equal(t, len(objectFieldItems), added)
	checkObjectFieldItems(t, done)
	checkObjectFieldItems(t, s.Response().Output)
}

// incompleteStream is a stream cut by max_output_tokens as the protocol
// sends it (OpenAI's Responses API and servers that follow it): event
// lines, the message item done with status incomplete, and
// response.incomplete, with the reason, the usage and the items, ending
// the stream in place of response.completed.
func incompleteStream(w http.ResponseWriter, _ *inferencetest.Request) {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("X-Inference-Provider", "together")
	item := `{"id":"msg_1","type":"message","status":"incomplete","role":"assistant","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Once upon a"}]}`
	events := [][2]string{
		{"response.created", `{"type":"response.created","sequence_number":0,"response":{"id":"resp_9","object":"response","created_at":1765840584,"status":"in_progress","incomplete_details":null,"max_output_tokens":3,"model":"org/m","output":[],"usage":null}}`},
		{"response.in_progress", `{"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_9","object":"response","created_at":1765840584,"status":"in_progress","incomplete_details":null,"max_output_tokens":3,"model":"org/m","output":[],"usage":null}}`},
		{"response.output_item.added", `{"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"msg_1","type":"message","status":"in_progress","content":[],"role":"assistant"}}`},
		{"response.content_part.added", `{"type":"response.content_part.added","sequence_number":3,"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","annotations":[],"logprobs":[],"text":""}}`},
		{"response.output_text.delta", `{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Once","logprobs":[],"obfuscation":"x1"}`},
		{"response.output_text.delta", `{"type":"response.output_text.delta","sequence_number":5,"item_id":"msg_1","output_index":0,"content_index":0,"delta":" upon","logprobs":[],"obfuscation":"x2"}`},
		{"response.output_text.delta", `{"type":"response.output_text.delta","sequence_number":6,"item_id":"msg_1","output_index":0,"content_index":0,"delta":" a","logprobs":[],"obfuscation":"x3"}`},
		{"response.output_text.done", `{"type":"response.output_text.done","sequence_number":7,"item_id":"msg_1","output_index":0,"content_index":0,"text":"Once upon a","logprobs":[]}`},
		{"response.content_part.done", `{"type":"response.content_part.done","sequence_number":8,"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","annotations":[],"logprobs":[],"text":"Once upon a"}}`},
		{"response.output_item.done", `{"type":"response.output_item.done","sequence_number":9,"output_index":0,"item":` + item + `}`},
		{"response.incomplete", `{"type":"response.incomplete","sequence_number":10,"response":{"id":"resp_9","object":"response","created_at":1765840584,"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"max_output_tokens":3,"model":"org/m","output":[` + item + `],"usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":0},"output_tokens":3,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":15}}}`},
	}
	for _, e := range events {
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e[0], e[1])
	}
}

// Item 5 of issue 32: response.incomplete ends a stream cut by
// max_output_tokens. It was read as a broken stream: ErrStream "the
// stream ended without [DONE] or a finish reason", and Response() with
// status "failed", no id, no usage, no items.
func TestRespondStreamIncompleteIsAWholeAnswer(t *testing.T) {
	verifyNoLeaks(t)
	for _, recovery := range []bool{false, true} {
		t.Run(fmt.Sprintf("recovery=%v", recovery), func(t *testing.T) {
			r := newRouter(t)
			r.On("org/m", incompleteStream, inferencetest.Reply("a second answer must not be asked for"))
			var opts []inference.Option
			if recovery {
				opts = append(opts, inference.WithStreamRecovery())
			}
			c, err := r.Client(opts...)
			require.NoError(t, err)
			req := respReq("org/m")
			req.MaxOutputTokens = 3
			s, err := c.RespondStream(t.Context(), req)
			require.NoError(t, err)
			defer s.Close()
			shown, types, restarted := readResponse(t, s)
			require.NoError(t, s.Err())
			assert.Zero(t, restarted)
			assert.Equal(t, "Once upon a", shown)
			assert.Equal(t, "response.incomplete", types[len(types)-1])
			resp := s.Response()
			assert.Equal(t, "resp_9", resp.ID)
			assert.Equal(t, "incomplete", resp.Status)
			assert.Equal(t, "max_output_tokens", resp.IncompleteReason)
			assert.Equal(t, inference.ResponseUsage{InputTokens: 12, OutputTokens: 3, TotalTokens: 15}, resp.Usage)
			require.Len(t, resp.Output, 1)
			assert.Equal(t, "incomplete", resp.Output[0].Status)
			assert.Equal(t, "Once upon a", resp.OutputText())
			assert.Len(t, s.Attempts(), 1)
			assert.Len(t, r.Requests(), 1, "never sent again")
		})
	}
}

// Item 5 of issue 32, through the fake: inferencetest.ResponseIncomplete
// ends its stream with response.incomplete, as the protocol does (it sent
// response.completed).
func TestResponseIncompleteStreamsResponseIncomplete(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", inferencetest.ResponseIncomplete("cut sh"))
	c := recoveryClient(t, r)
	s, err := c.RespondStream(t.Context(), respReq("org/m"))
	require.NoError(t, err)
	defer s.Close()
	shown, types, _ := readResponse(t, s)
	require.NoError(t, s.Err())
	assert.Equal(t, "cut sh", shown)
	assert.Equal(t, "response.incomplete", types[len(types)-1])
	assert.NotContains(t, types, "response.completed")
	resp := s.Response()
	assert.Equal(t, "incomplete", resp.Status)
	assert.Equal(t, "max_output_tokens", resp.IncompleteReason)
	assert.Equal(t, 2, resp.Usage.OutputTokens)
	assert.Len(t, r.Requests(), 1)
}

// Item 6 of issue 32: a reasoning item's summary (summary_text parts) and
// the input tokens served from a cache were invisible.
func TestRespondReasoningSummaryAndCachedTokens(t *testing.T) {
	r := newRouter(t)
	r.On("org/summary", inferencetest.ResponseUsage(
		inference.ResponseUsage{InputTokens: 2048, CachedInputTokens: 1536, OutputTokens: 40, ReasoningTokens: 32, TotalTokens: 2088},
		inferencetest.ResponseReasoning("**Weighing the options**\n\nThe user asks for a short answer.", "Paris.")))
	r.On("org/parts", inferencetest.ResponseItems(
		`{"type":"reasoning","id":"rs_1","content":[{"type":"reasoning_text","text":"Step one. "},{"type":"reasoning_text","text":"Step two."}],`+
			`"summary":[{"type":"summary_text","text":"First part."},{"type":"summary_text","text":"Second part."}]}`,
		`{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"Done."}]}`))
	c, err := r.Client()
	require.NoError(t, err)

	resp, err := c.Respond(t.Context(), respReq("org/summary"))
	require.NoError(t, err)
	require.Len(t, resp.Output, 2)
	assert.Equal(t, "reasoning", resp.Output[0].Type)
	assert.Equal(t, "**Weighing the options**\n\nThe user asks for a short answer.", resp.Output[0].ReasoningSummary)
	assert.Empty(t, resp.Output[0].Reasoning)
	assert.Equal(t, "Paris.", resp.OutputText())
	assert.Equal(t, inference.ResponseUsage{InputTokens: 2048, CachedInputTokens: 1536, OutputTokens: 40, ReasoningTokens: 32, TotalTokens: 2088}, resp.Usage)

	resp, err = c.Respond(t.Context(), respReq("org/parts"))
	require.NoError(t, err)
	assert.Equal(t, "Step one. Step two.", resp.Output[0].Reasoning)
	assert.Equal(t, "First part.\n\nSecond part.", resp.Output[0].ReasoningSummary, "summary parts are separated by a blank line")
	assert.Equal(t, 8, resp.Usage.ReasoningTokens, "the fake counts the words of reasoning and summary as reasoning tokens")
}

// Item 6 of issue 32, streamed: summary deltas arrive as events with
// their part's index, and the final response has the summary and the
// cached tokens.
func TestRespondStreamReasoningSummary(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", inferencetest.ResponseUsage(inference.ResponseUsage{InputTokens: 100, CachedInputTokens: 64, OutputTokens: 9, ReasoningTokens: 7, TotalTokens: 109},
		inferencetest.ResponseItems(
			`{"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"Look it up."},{"type":"summary_text","text":"Then answer."}]}`,
			`{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"Paris."}]}`)))
	c, err := r.Client()
	require.NoError(t, err)
	s, err := c.RespondStream(t.Context(), respReq("org/m"))
	require.NoError(t, err)
	defer s.Close()
	var summary [2]strings.Builder
	for s.Next() {
		if ev := s.Current(); ev.Type == "response.reasoning_summary_text.delta" {
			assert.Equal(t, "rs_1", ev.ItemID)
			summary[ev.SummaryIndex].WriteString(ev.Delta)
		}
	}
	require.NoError(t, s.Err())
	assert.Equal(t, "Look it up.", summary[0].String())
	assert.Equal(t, "Then answer.", summary[1].String())
	resp := s.Response()
	assert.Equal(t, "Look it up.\n\nThen answer.", resp.Output[0].ReasoningSummary)
	assert.Equal(t, 64, resp.Usage.CachedInputTokens)
	assert.Equal(t, "Paris.", resp.OutputText())
}

// summaryThenCut streams a reasoning summary in two parts and the start of
// the answer, then stops: no response.completed.
func summaryThenCut(w http.ResponseWriter, _ *inferencetest.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	for _, e := range []string{
		`{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","model":"org/m","output":[]}}`,
		`{"type":"response.reasoning_summary_part.added","sequence_number":1,"item_id":"rs_1","output_index":0,"summary_index":0,"part":{"type":"summary_text","text":""}}`,
		`{"type":"response.reasoning_summary_text.delta","sequence_number":2,"item_id":"rs_1","output_index":0,"summary_index":0,"delta":"Check "}`,
		`{"type":"response.reasoning_summary_text.delta","sequence_number":3,"item_id":"rs_1","output_index":0,"summary_index":0,"delta":"the map."}`,
		`{"type":"response.reasoning_summary_text.delta","sequence_number":4,"item_id":"rs_1","output_index":0,"summary_index":1,"delta":"Answer."}`,
		`{"type":"response.output_text.delta","sequence_number":5,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"Par"}`,
	} {
		fmt.Fprintf(w, "data: %s\n\n", e)
	}
}

// Item 6 of issue 32: summary deltas count in a partial Response (they
// were not), and they are content: a stream cut after them has delivered
// part of the answer, so it fails with ErrStream instead of moving, unseen,
// to the next candidate.
func TestRespondStreamPartialResponseKeepsTheSummary(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", summaryThenCut)
	r.On("org/b", inferencetest.Reply("from b"))
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	req := respReq("org/m")
	req.Fallbacks = []inference.Candidate{{Model: "org/b"}}
	s, err := c.RespondStream(t.Context(), req)
	require.NoError(t, err)
	defer s.Close()
	for s.Next() {
	}
	require.ErrorIs(t, s.Err(), inference.ErrStream)
	resp := s.Response()
	assert.Equal(t, "failed", resp.Status)
	require.Len(t, resp.Output, 2)
	assert.Equal(t, "reasoning", resp.Output[0].Type)
	assert.Equal(t, "Check the map.\n\nAnswer.", resp.Output[0].ReasoningSummary)
	assert.Equal(t, "Par", resp.OutputText())
	assert.Equal(t, []string{"org/m"}, r.Models(), "content was delivered: no fallback")
}

// A summary alone, cut, is content: RespondStream returns it, and the cut
// is ErrStream, not a provider failure the walk would hide.
func TestRespondStreamSummaryIsContent(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", func(w http.ResponseWriter, _ *inferencetest.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, `data: {"type":"response.reasoning_summary_text.delta","sequence_number":0,"item_id":"rs_1","output_index":0,"summary_index":0,"delta":"Thinking."}`+"\n\n")
	})
	r.On("org/b", inferencetest.Reply("from b"))
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	req := respReq("org/m")
	req.Fallbacks = []inference.Candidate{{Model: "org/b"}}
	s, err := c.RespondStream(t.Context(), req)
	require.NoError(t, err)
	defer s.Close()
	require.True(t, s.Next())
	assert.Equal(t, "Thinking.", s.Current().Delta)
	assert.False(t, s.Next())
	require.ErrorIs(t, s.Err(), inference.ErrStream)
	assert.Equal(t, "Thinking.", s.Response().Output[0].ReasoningSummary)
	assert.Equal(t, []string{"org/m"}, r.Models())
}

// An output item's Raw is the item as sent, field for field, whatever
// the client reads of it.
func TestOutputItemRawIsTheItemAsSent(t *testing.T) {
	item := `{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"hi","annotations":[{"type":"url_citation","url":"https://example.com"}]},{"type":"refusal","refusal":"no"}],"extra":{"k":[1,2]}}`
	r := newRouter(t)
	r.On("org/m", inferencetest.ResponseItems(item))
	c, err := r.Client()
	require.NoError(t, err)
	resp, err := c.Respond(t.Context(), respReq("org/m"))
	require.NoError(t, err)
	require.Len(t, resp.Output, 1)
	var got, want map[string]any
	require.NoError(t, json.Unmarshal(resp.Output[0].Raw, &got))
	require.NoError(t, json.Unmarshal([]byte(item), &want))
	assert.Equal(t, want, got)
	assert.Equal(t, []inference.OutputContent{{Type: "output_text", Text: "hi"}, {Type: "refusal", Refusal: "no"}}, resp.Output[0].Content)
	assert.Equal(t, "hi", resp.OutputText())
}

// Bodies in a 200 that are not a response: a provider failure that says
// why, or, for an error object in any shape, a failure in its words.
func TestRespondOddBodies(t *testing.T) {
	tests := []struct {
		name, body string
		kind       error
		text       string
	}{
		{"an array", `[{"id":"resp_1"}]`, inference.ErrProvider, "not a JSON response"},
		{"null", `null`, inference.ErrProvider, "not a JSON response"},
		{"no response object", `{"id":"x"}`, inference.ErrProvider, "no response object"},
		{"an item that is not an object", `{"object":"response","status":"completed","output":["text"]}`, inference.ErrProvider, "an output item"},
		{"invalid JSON", `{"object":"response",`, inference.ErrProvider, "not a JSON response"},
		{"error as a string", `{"object":"response","status":"failed","error":"403 This authentication method does not have sufficient permissions to call Inference Providers on behalf of user alice"}`, inference.ErrMissingScope, "inference-api"},
		{"failed without a reason", `{"object":"response","status":"failed","error":null}`, inference.ErrProvider, "the response failed without a reason"},
		{"numeric code", `{"object":"response","status":"failed","error":{"code":500,"message":"502 Bad Gateway"}}`, inference.ErrProvider, "Bad Gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRouter(t)
			r.On("org/m", inferencetest.Raw(200, http.Header{"Content-Type": {"application/json"}}, tt.body))
			c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
			require.NoError(t, err)
			_, err = c.Respond(t.Context(), respReq("org/m"))
			require.Error(t, err)
			assert.Equal(t, []error{tt.kind}, matchedKinds(err), "%v", err)
			assert.Contains(t, err.Error(), tt.text)
		})
	}
}

// Fields of odd shapes in a response the client can read: counts that
// are not integers are 0, metadata of strings is kept, the rest is left.
func TestRespondToleratesOddFields(t *testing.T) {
	body := `{"object":"response","id":"resp_1","status":"completed","created_at":1.5,"metadata":{"user":"u1"},` +
		`"usage":{"input_tokens":"12","output_tokens":3,"total_tokens":15,"input_tokens_details":null,"output_tokens_details":{"reasoning_tokens":1}},` +
		`"output":[{"type":"reasoning","content":"not parts","summary":[{"type":"summary_text","text":7},{"type":"summary_text","text":"kept"}]},` +
		`{"type":"message","role":"assistant","content":[{"type":"output_text","text":"hi"},"a string part"]}]}`
	r := newRouter(t)
	r.On("org/m", inferencetest.Raw(200, http.Header{"Content-Type": {"application/json"}}, body))
	c, err := r.Client()
	require.NoError(t, err)
	resp, err := c.Respond(t.Context(), respReq("org/m"))
	require.NoError(t, err)
	assert.Zero(t, resp.CreatedAt)
	assert.Equal(t, map[string]string{"user": "u1"}, resp.Metadata)
	assert.Equal(t, inference.ResponseUsage{OutputTokens: 3, TotalTokens: 15, ReasoningTokens: 1}, resp.Usage)
	require.Len(t, resp.Output, 2)
	assert.Empty(t, resp.Output[0].Reasoning)
	assert.Equal(t, "kept", resp.Output[0].ReasoningSummary)
	assert.Equal(t, []inference.OutputContent{{Type: "output_text", Text: "hi"}}, resp.Output[1].Content)
	assert.Equal(t, "hi", resp.OutputText())
}

// Events that report a failure in other shapes than the protocol's
// response.failed, before any content: the call fails in their words.
func TestRespondStreamOddFailureEvents(t *testing.T) {
	tests := []struct {
		name, event string
		text        string
	}{
		{"response.failed without a response", `{"type":"response.failed","sequence_number":1}`, "the response failed without a reason"},
		{"an error body without a type", `{"error":{"message":"Model is overloaded, retry later"}}`, "Model is overloaded"},
		{"an event without a type or an error", `{"sequence_number":1}`, "the stream sent an event without a type"},
		{"an error event whose message is an object", `{"type":"error","sequence_number":1,"code":null,"message":{"message":"upstream timeout"}}`, "upstream timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRouter(t)
			r.On("org/m", func(w http.ResponseWriter, _ *inferencetest.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprintf(w, "data: %s\n\ndata: %s\n\n", `{"type":"response.created","sequence_number":0,"response":{"object":"response","status":"in_progress","output":[]}}`, tt.event)
			})
			c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
			require.NoError(t, err)
			_, err = c.RespondStream(t.Context(), respReq("org/m"))
			require.Error(t, err)
			assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(err), "%v", err)
			assert.Contains(t, err.Error(), tt.text)
		})
	}
}

// An output item goes back into a later request's Input as the item it
// was: a function call with its id, name and arguments, a message with its
// text; others have no input form.
func TestOutputItemsAsInput(t *testing.T) {
	call := inference.OutputItem{Type: "function_call", CallID: "call_1", Name: "weather", Arguments: `{"city":"Paris"}`}
	in, ok := call.Input()
	require.True(t, ok)
	assert.Equal(t, inference.InputItem{Type: "function_call", CallID: "call_1", Name: "weather", Arguments: `{"city":"Paris"}`}, in)
	msg := inference.OutputItem{Type: "message", Content: []inference.OutputContent{{Type: "output_text", Text: "It is "}, {Type: "refusal", Refusal: "no"}, {Type: "output_text", Text: "sunny"}}}
	in, ok = msg.Input()
	require.True(t, ok)
	assert.Equal(t, inference.InputItem{Type: "message", Role: inference.RoleAssistant, Text: "It is sunny"}, in)
	_, ok = inference.OutputItem{Type: "reasoning", Reasoning: "hmm"}.Input()
	assert.False(t, ok)
}
