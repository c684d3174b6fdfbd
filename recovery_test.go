package inference_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// sixtyWords is the answer of the recovery tests, as failoverbench's wall
// sends it: sixty distinct words.
var sixtyWords = func() string {
	words := make([]string, 60)
	for i := range words {
		words[i] = "w" + string(rune('A'+i/26)) + string(rune('a'+i%26))
	}
	return strings.Join(words, " ")
}()

// read reads a stream as a consumer that honours Restarted: it drops what
// it showed and starts again. It returns the text shown and how many
// chunks were Restarted.
func read(t *testing.T, s *inference.ChatStream) (shown string, restarted int) {
	t.Helper()
	var b strings.Builder
	for s.Next() {
		c := s.Current()
		if c.Restarted {
			restarted++
			b.Reset()
		}
		b.WriteString(c.Text())
	}
	return b.String(), restarted
}

func recoveryClient(t *testing.T, r *inferencetest.Router, opts ...inference.Option) *inference.Client {
	t.Helper()
	c, err := r.Client(append([]inference.Option{inference.WithStreamRecovery(),
		inference.WithRetry(inference.RetryPolicy{MaxRetries: 2, MinWait: time.Millisecond, MaxWait: 10 * time.Millisecond})}, opts...)...)
	require.NoError(t, err)
	return c
}

func TestRecoverySeamlessWhenTheRetryReproduces(t *testing.T) {
	verifyNoLeaks(t)
	r := newRouter(t)
	r.On("org/m", inferencetest.StreamScript{Text: sixtyWords, CutAfter: 40}.Answer(), inferencetest.StreamScript{Text: sixtyWords}.Answer())
	c := recoveryClient(t, r)
	s, err := c.ChatStream(t.Context(), chatReq("org/m", ""))
	require.NoError(t, err)
	defer s.Close()
	shown, restarted := read(t, s)
	require.NoError(t, s.Err())
	assert.Equal(t, sixtyWords, shown, "exactly the 60 words, none repeated")
	assert.Zero(t, restarted)
	assert.Equal(t, sixtyWords, s.Response().Text())
	assert.Equal(t, []string{"org/m", "org/m"}, r.Models(), "the same candidate again, unchanged")
	for _, q := range r.Requests() {
		assert.NotContains(t, string(q.Body), `"role":"assistant"`, "never a prefill")
	}
	atts := s.Attempts()
	require.Len(t, atts, 2)
	assert.ErrorIs(t, atts[0].Err, inference.ErrStream)
	assert.NoError(t, atts[1].Err)
}

func TestRecoveryRestartsWhenTheRetryDiverges(t *testing.T) {
	verifyNoLeaks(t)
	r := newRouter(t)
	other := "a different answer entirely, word for word"
	r.On("org/m", inferencetest.StreamScript{Text: sixtyWords, CutAfter: 10}.Answer(), inferencetest.StreamScript{Text: other}.Answer())
	c := recoveryClient(t, r)
	s, err := c.ChatStream(t.Context(), chatReq("org/m", ""))
	require.NoError(t, err)
	defer s.Close()
	shown, restarted := read(t, s)
	require.NoError(t, s.Err())
	assert.Equal(t, 1, restarted, "one Restarted chunk")
	assert.Equal(t, other, shown)
	assert.Equal(t, other, s.Response().Text(), "the abandoned text is dropped")
}

func TestRecoveryRestartsWhenTheRetryIsShorter(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", inferencetest.StreamScript{Text: sixtyWords, CutAfter: 40}.Answer(),
		inferencetest.StreamScript{Text: strings.Join(strings.Fields(sixtyWords)[:20], " ")}.Answer())
	s, err := recoveryClient(t, r).ChatStream(t.Context(), chatReq("org/m", ""))
	require.NoError(t, err)
	defer s.Close()
	shown, restarted := read(t, s)
	require.NoError(t, s.Err())
	assert.Equal(t, 1, restarted)
	assert.Equal(t, strings.Join(strings.Fields(sixtyWords)[:20], " "), shown)
}

func TestRecoveryMovesOnAfterAStallAtOnce(t *testing.T) {
	verifyNoLeaks(t)
	r := newRouter(t)
	r.On("org/stall", inferencetest.StreamScript{Text: sixtyWords, StallAfter: 20}.Answer())
	r.On("org/ok", inferencetest.StreamScript{Text: sixtyWords}.Answer())
	c := recoveryClient(t, r, inference.WithStreamIdleTimeout(150*time.Millisecond),
		inference.WithFallback(inference.Candidate{Model: "org/ok"}))
	start := time.Now()
	s, err := c.ChatStream(t.Context(), chatReq("org/stall", ""))
	require.NoError(t, err)
	defer s.Close()
	shown, restarted := read(t, s)
	require.NoError(t, s.Err())
	assert.Less(t, time.Since(start), 3*time.Second)
	assert.Equal(t, sixtyWords, shown)
	assert.Zero(t, restarted)
	assert.Equal(t, []string{"org/stall", "org/ok"}, r.Models(), "a silent provider is not asked again")
	atts := s.Attempts()
	require.Len(t, atts, 2)
	assert.Equal(t, inference.TimeoutStreamIdle, atts[0].TimedOut)
	assert.ErrorIs(t, atts[0].Err, inference.ErrStream)
	assert.Equal(t, "org/ok", s.Response().Model)
}

func TestRecoveryRetriesAMalformedEventThenFallsBack(t *testing.T) {
	r := newRouter(t)
	r.On("org/bad", inferencetest.StreamScript{Text: sixtyWords, MalformedAfter: 10}.Answer())
	r.On("org/ok", inferencetest.StreamScript{Text: sixtyWords}.Answer())
	c := recoveryClient(t, r, inference.WithFallback(inference.Candidate{Model: "org/ok"}))
	s, err := c.ChatStream(t.Context(), chatReq("org/bad", ""))
	require.NoError(t, err)
	defer s.Close()
	shown, _ := read(t, s)
	require.NoError(t, s.Err())
	assert.Equal(t, sixtyWords, shown)
	assert.Equal(t, []string{"org/bad", "org/bad", "org/bad", "org/ok"}, r.Models(), "two restarts, then the next candidate")
	// The candidate given up on cools down like any failed one.
	s2, err := c.ChatStream(t.Context(), chatReq("org/bad", ""))
	require.NoError(t, err)
	s2.Close()
	assert.Equal(t, []inference.Candidate{{Model: "org/bad"}}, s2.Response().Skipped)
}

func TestRecoveryFailsWithTheWalksErrorWhenNothingServes(t *testing.T) {
	verifyNoLeaks(t)
	r := newRouter(t)
	r.On("org/cut", inferencetest.StreamScript{Text: sixtyWords, CutAfter: 5}.Answer())
	r.On("org/down", inferencetest.ProviderError(503))
	c := recoveryClient(t, r, inference.WithFallback(inference.Candidate{Model: "org/down"}))
	s, err := c.ChatStream(t.Context(), chatReq("org/cut", ""))
	require.NoError(t, err)
	defer s.Close()
	_, _ = read(t, s)
	err = s.Err()
	require.Error(t, err)
	assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(err), "%v", err)
	var fe *inference.FallbackError
	require.ErrorAs(t, err, &fe)
	assert.ErrorIs(t, fe.Attempts[0].Err, inference.ErrStream)
	assert.Equal(t, "org/cut", fe.Attempts[0].Model)
}

func TestRecoveryRestartsOnToolCallsAfterToolCalls(t *testing.T) {
	r := newRouter(t)
	toolChunk := func(args string) string {
		return `{"id":"x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":` + `"` + args + `"}}]}}]}`
	}
	first := func(w http.ResponseWriter, req *inferencetest.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("data: " + toolChunk(`{\"a\":`) + "\n\n"))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	second := func(w http.ResponseWriter, req *inferencetest.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("data: " + toolChunk(`{\"a\":1}`) + "\n\n" +
			`data: {"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}` + "\n\ndata: [DONE]\n\n"))
	}
	r.On("org/m", first, second)
	s, err := recoveryClient(t, r).ChatStream(t.Context(), chatReq("org/m", ""))
	require.NoError(t, err)
	defer s.Close()
	_, restarted := read(t, s)
	require.NoError(t, s.Err())
	assert.Equal(t, 1, restarted, "tool-call pieces cannot be matched: the answer restarts")
	calls := s.Response().Choices[0].Message.ToolCalls
	require.Len(t, calls, 1)
	assert.Equal(t, `{"a":1}`, calls[0].Function.Arguments)
}

func TestStreamTimeoutsWithoutRecovery(t *testing.T) {
	verifyNoLeaks(t)
	r := newRouter(t)
	r.On("org/stall", inferencetest.StreamScript{Text: sixtyWords, StallAfter: 3}.Answer())
	r.On("org/slow", inferencetest.StreamScript{Text: sixtyWords, FirstTokenAfter: 5 * time.Second}.Answer())
	r.On("org/ok", inferencetest.StreamScript{Text: sixtyWords}.Answer())
	c, err := r.Client(inference.WithStreamIdleTimeout(100 * time.Millisecond))
	require.NoError(t, err)
	slowStart, err := r.Client(inference.WithFirstTokenTimeout(300 * time.Millisecond))
	require.NoError(t, err)

	t.Run("a stall after content ends the stream, bounded", func(t *testing.T) {
		start := time.Now()
		s, err := c.ChatStream(t.Context(), chatReq("org/stall", ""))
		require.NoError(t, err)
		defer s.Close()
		shown, _ := read(t, s)
		assert.Less(t, time.Since(start), 2*time.Second)
		assert.ErrorIs(t, s.Err(), inference.ErrStream)
		assert.Contains(t, s.Err().Error(), "stream idle timeout")
		assert.Equal(t, strings.Join(strings.Fields(sixtyWords)[:3], " "), shown, "what arrived stays")
		assert.Equal(t, inference.TimeoutStreamIdle, s.Attempts()[0].TimedOut)
	})
	t.Run("a slow first token moves to the next candidate without a retry", func(t *testing.T) {
		req := chatReq("org/slow", "")
		req.Fallbacks = []inference.Candidate{{Model: "org/ok"}}
		r.Reset()
		start := time.Now()
		s, err := slowStart.ChatStream(t.Context(), req)
		require.NoError(t, err)
		defer s.Close()
		shown, _ := read(t, s)
		require.NoError(t, s.Err())
		assert.Equal(t, sixtyWords, shown)
		assert.Less(t, time.Since(start), 2*time.Second)
		assert.Equal(t, []string{"org/slow", "org/ok"}, r.Models())
		atts := s.Attempts()
		require.Len(t, atts, 2)
		assert.Equal(t, inference.TimeoutFirstToken, atts[0].TimedOut)
		assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(atts[0].Err))
		assert.False(t, errors.Is(atts[0].Err, errContextCanceled()), "a limit, not a cancel")
	})
}

func TestStreamEndsWellAfterAFinishReason(t *testing.T) {
	r := newRouter(t)
	r.On("org/nodone", inferencetest.StreamScript{Text: "all here", NoDone: true}.Answer())
	r.On("org/cutafterfinish", func(w http.ResponseWriter, req *inferencetest.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte(`data: {"id":"x","choices":[{"index":0,"delta":{"content":"all here"},"finish_reason":"stop"}]}` + "\n\n"))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // no final zero-length chunk
	})
	c, err := r.Client()
	require.NoError(t, err)
	for _, model := range []string{"org/nodone", "org/cutafterfinish"} {
		s, err := c.ChatStream(t.Context(), chatReq(model, ""))
		require.NoError(t, err)
		shown, _ := read(t, s)
		assert.NoError(t, s.Err(), model)
		assert.Equal(t, "all here", shown, model)
		s.Close()
	}
}

func TestContextLengthMovesOnAndContentPolicyStops(t *testing.T) {
	r := newRouter(t)
	r.On("org/small", inferencetest.ContextLengthExceeded())
	r.On("org/large", inferencetest.Reply("fits"))
	r.On("org/strict", inferencetest.ContentPolicy())
	c, err := r.Client(inference.WithFallback(inference.Candidate{Model: "org/large"}))
	require.NoError(t, err)

	resp, err := c.Chat(t.Context(), chatReq("org/small", ""))
	require.NoError(t, err)
	assert.Equal(t, "fits", resp.Text())
	assert.Equal(t, []string{"org/small", "org/large"}, r.Models(), "never a retry of the same model")
	assert.Equal(t, inference.ErrContextLength, resp.Attempts[0].Kind())

	r.Reset()
	_, err = c.Chat(t.Context(), chatReq("org/strict", ""))
	assert.Equal(t, []error{inference.ErrInvalidRequest}, matchedKinds(err))
	assert.Contains(t, err.Error(), "safety system", "the provider's reason")
	assert.Equal(t, []string{"org/strict"}, r.Models(), "refused anywhere: the walk stops")

	r.Reset()
	_, err = c.Chat(t.Context(), inference.ChatRequest{Model: "org/small", Messages: []inference.Message{inference.UserMessage("x")}, Fallbacks: []inference.Candidate{}})
	assert.ErrorIs(t, err, inference.ErrContextLength)
	assert.Contains(t, err.Error(), "Shorten the conversation")
}

func errContextCanceled() error { return context.Canceled }
