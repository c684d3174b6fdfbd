package inference_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
	"github.com/hfkit/inference/internal/redact"
)

// readResponse reads a response stream as a consumer that honours
// Restarted; it returns the text shown, the event types, and how many
// events were Restarted.
func readResponse(t *testing.T, s *inference.ResponseStream) (shown string, types []string, restarted int) {
	t.Helper()
	var b strings.Builder
	for s.Next() {
		ev := s.Current()
		types = append(types, ev.Type)
		if ev.Restarted {
			restarted++
			b.Reset()
		}
		if ev.Type == "response.output_text.delta" {
			b.WriteString(ev.Delta)
		}
	}
	return b.String(), types, restarted
}

func TestRespondStreamText(t *testing.T) {
	verifyNoLeaks(t)
	r := newRouter(t)
	r.On("org/m", inferencetest.Reply("Hello from a streamed response"))
	c, err := r.Client()
	require.NoError(t, err)
	s, err := c.RespondStream(t.Context(), respReq("org/m"))
	require.NoError(t, err)
	defer s.Close()
	shown, types, restarted := readResponse(t, s)
	require.NoError(t, s.Err())
	assert.Zero(t, restarted)
	assert.Equal(t, "Hello from a streamed response", shown)
	assert.Equal(t, []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
		"response.output_text.delta", "response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
		"response.output_text.delta", "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"}, types)
	resp := s.Response()
	assert.Equal(t, "completed", resp.Status)
	assert.Equal(t, "Hello from a streamed response", resp.OutputText())
	assert.Equal(t, 5, resp.Usage.OutputTokens)
	assert.Equal(t, "together", resp.Provider)
	assert.Contains(t, string(r.Requests()[0].Body), `"stream":true`)
}

func TestRespondStreamFunctionCall(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", inferencetest.ResponseFunctionCall("weather", `{"city":"Paris"}`))
	c, err := r.Client()
	require.NoError(t, err)
	s, err := c.RespondStream(t.Context(), respReq("org/m"))
	require.NoError(t, err)
	defer s.Close()
	var args strings.Builder
	for ev, err := range s.All() {
		require.NoError(t, err)
		if ev.Type == "response.function_call_arguments.delta" {
			args.WriteString(ev.Delta)
		}
	}
	assert.Equal(t, `{"city":"Paris"}`, args.String())
	calls := s.Response().FunctionCalls()
	require.Len(t, calls, 1)
	assert.Equal(t, "weather", calls[0].Name)
}

// A response.failed before any content moves to the next candidate, by
// the kind of its words.
func TestRespondStreamFailedBeforeContentFallsBack(t *testing.T) {
	r := newRouter(t)
	r.On("org/gated", inferencetest.ResponseFailed("403 Access to model org/gated is restricted and you are not in the authorized list."))
	r.On("org/b", inferencetest.Reply("from b"))
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	req := respReq("org/gated")
	req.Fallbacks = []inference.Candidate{{Model: "org/b"}}
	s, err := c.RespondStream(t.Context(), req)
	require.NoError(t, err)
	defer s.Close()
	shown, _, _ := readResponse(t, s)
	require.NoError(t, s.Err())
	assert.Equal(t, "from b", shown)
	require.Len(t, s.Attempts(), 2)
	assert.Equal(t, []error{inference.ErrGatedModel}, matchedKinds(s.Attempts()[0].Err))

	// Alone, it is the call's error, of that kind.
	_, err = c.RespondStream(t.Context(), respReq("org/gated"))
	assert.Equal(t, []error{inference.ErrGatedModel}, matchedKinds(err))
}

// failMidway streams two deltas of "Hello world", then response.failed.
func failMidway(w http.ResponseWriter, req *inferencetest.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Inference-Provider", "together")
	events := []string{
		`{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","model":"org/m","output":[]}}`,
		`{"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"id":"msg_1","type":"message","role":"assistant","status":"in_progress","content":[]}}`,
		`{"type":"response.output_text.delta","sequence_number":2,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hello "}`,
		`{"type":"response.output_text.delta","sequence_number":3,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"wor"}`,
		`{"type":"response.failed","sequence_number":4,"response":{"id":"resp_1","object":"response","status":"failed","model":"org/m","output":[],"error":{"code":"server_error","message":"500 upstream connection reset"}}}`,
	}
	for _, e := range events {
		fmt.Fprintf(w, "data: %s\n\n", e)
	}
}

func TestRespondStreamFailedMidway(t *testing.T) {
	verifyNoLeaks(t)
	t.Run("typed without recovery", func(t *testing.T) {
		r := newRouter(t)
		r.On("org/m", failMidway)
		c, err := r.Client()
		require.NoError(t, err)
		s, err := c.RespondStream(t.Context(), respReq("org/m"))
		require.NoError(t, err)
		defer s.Close()
		shown, _, _ := readResponse(t, s)
		assert.Equal(t, "Hello wor", shown)
		require.Error(t, s.Err())
		assert.Equal(t, []error{inference.ErrStream}, matchedKinds(s.Err()))
		assert.Contains(t, s.Err().Error(), "500 upstream connection reset")
		assert.Equal(t, "failed", s.Response().Status)
		assert.Equal(t, "Hello wor", s.Response().OutputText(), "what arrived is kept")
	})
	t.Run("recovered", func(t *testing.T) {
		r := newRouter(t)
		r.On("org/m", failMidway, inferencetest.Reply("Hello world, again"))
		c := recoveryClient(t, r)
		s, err := c.RespondStream(t.Context(), respReq("org/m"))
		require.NoError(t, err)
		defer s.Close()
		shown, types, restarted := readResponse(t, s)
		require.NoError(t, s.Err())
		assert.Zero(t, restarted, "the new answer reproduces the delivered text: seamless")
		assert.Equal(t, "Hello world, again", shown)
		assert.Len(t, s.Attempts(), 2)
		assert.Equal(t, 1, strings.Count(strings.Join(types, " "), "response.created"), "the new attempt's lifecycle events are withheld")
		assert.Equal(t, "Hello world, again", s.Response().OutputText())
	})
	t.Run("recovered with another answer", func(t *testing.T) {
		r := newRouter(t)
		r.On("org/m", failMidway, inferencetest.Reply("Goodbye"))
		c := recoveryClient(t, r)
		s, err := c.RespondStream(t.Context(), respReq("org/m"))
		require.NoError(t, err)
		defer s.Close()
		shown, _, restarted := readResponse(t, s)
		require.NoError(t, s.Err())
		assert.Equal(t, 1, restarted)
		assert.Equal(t, "Goodbye", shown)
	})
}

func TestRespondStreamFirstTokenTimeoutMovesOn(t *testing.T) {
	verifyNoLeaks(t)
	r := newRouter(t)
	r.On("org/slow", inferencetest.Delay(2*time.Second, inferencetest.Reply("late")))
	r.On("org/b", inferencetest.Reply("in time"))
	c, err := r.Client(inference.WithFirstTokenTimeout(100 * time.Millisecond))
	require.NoError(t, err)
	req := respReq("org/slow")
	req.Fallbacks = []inference.Candidate{{Model: "org/b"}}
	s, err := c.RespondStream(t.Context(), req)
	require.NoError(t, err)
	defer s.Close()
	shown, _, _ := readResponse(t, s)
	require.NoError(t, s.Err())
	assert.Equal(t, "in time", shown)
	assert.Equal(t, inference.TimeoutFirstToken, s.Attempts()[0].TimedOut)
}

func TestRespondStreamPerUserTokenAndBillTo(t *testing.T) {
	const userTok = "hf_oauth_Vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
	r := newRouter(t)
	r.On("org/m", inferencetest.ProviderError(502))
	r.On("org/b", inferencetest.Reply("ok"))
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	req := respReq("org/m")
	req.Fallbacks = []inference.Candidate{{Model: "org/b"}}
	s, err := c.RespondStream(t.Context(), req, inference.WithBillTo("acme-corp"),
		inference.WithUserTokenSource(inference.OAuthToken(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: userTok}))))
	require.NoError(t, err)
	readResponse(t, s)
	s.Close()
	require.NoError(t, s.Err())
	for _, q := range r.Requests() {
		assert.Equal(t, redact.Prefix(userTok), q.TokenPrefix)
		assert.Equal(t, "acme-corp", q.Header.Get("X-Hf-Bill-To"))
	}
	assert.Len(t, r.Requests(), 2)
}

// Reasoning deltas and an event type this client does not know are
// delivered, the latter with its JSON.
func TestRespondStreamReasoningAndUnknownEvents(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", func(w http.ResponseWriter, req *inferencetest.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, e := range []string{
			`{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","model":"org/m","output":[]}}`,
			`{"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"id":"rs_1","type":"reasoning","status":"in_progress","content":[],"summary":[]}}`,
			`{"type":"response.reasoning_text.delta","sequence_number":2,"item_id":"rs_1","output_index":0,"content_index":0,"delta":"Think "}`,
			`{"type":"response.reasoning_text.delta","sequence_number":3,"item_id":"rs_1","output_index":0,"content_index":0,"delta":"first."}`,
			`{"type":"response.web_search_call.searching","sequence_number":4,"item_id":"ws_1","output_index":1,"query":"go"}`,
			`{"type":"response.output_text.delta","sequence_number":5,"item_id":"msg_1","output_index":2,"content_index":0,"delta":"Done."}`,
			`{"type":"response.completed","sequence_number":6,"response":{"id":"resp_1","object":"response","status":"completed","model":"org/m","output":[]}}`,
		} {
			fmt.Fprintf(w, "data: %s\n\n", e)
		}
	})
	c, err := r.Client()
	require.NoError(t, err)
	s, err := c.RespondStream(t.Context(), respReq("org/m"))
	require.NoError(t, err)
	defer s.Close()
	var reasoning strings.Builder
	var unknown inference.ResponseEvent
	for s.Next() {
		ev := s.Current()
		switch ev.Type {
		case "response.reasoning_text.delta":
			reasoning.WriteString(ev.Delta)
		case "response.web_search_call.searching":
			unknown = ev
		}
	}
	require.NoError(t, s.Err())
	assert.Equal(t, "Think first.", reasoning.String())
	assert.Equal(t, 4, unknown.SequenceNumber)
	assert.Contains(t, string(unknown.Raw), `"query":"go"`)
}
