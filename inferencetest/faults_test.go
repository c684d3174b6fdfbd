package inferencetest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// The faults of the fake, as a user's client sees them.

const script = "one two three four five six"

// chatStream reads a chat stream to its end and returns its text and
// error.
func chatStream(t *testing.T, c *inference.Client, model string) (*inference.ChatStream, string) {
	t.Helper()
	s, err := c.ChatStream(t.Context(), chat(model, ""))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	var b strings.Builder
	for s.Next() {
		b.WriteString(s.Current().Text())
	}
	return s, b.String()
}

func TestStreamScriptWhole(t *testing.T) {
	r, c := responseRouter(t)
	r.On("org/m", inferencetest.StreamScript{Text: script, Every: time.Millisecond}.Answer())
	s, text := chatStream(t, c, "org/m")
	require.NoError(t, s.Err())
	assert.Equal(t, script, text)
	assert.Equal(t, 6, s.Response().Usage.CompletionTokens)
	assert.Equal(t, "stop", s.Response().Choices[0].FinishReason)

	resp, err := c.Chat(t.Context(), chat("org/m", ""))
	require.NoError(t, err, "a request without stream gets the text whole")
	assert.Equal(t, script, resp.Text())
}

func TestStreamScriptCut(t *testing.T) {
	r, c := responseRouter(t)
	r.On("org/m", inferencetest.StreamScript{Text: script, CutAfter: 2}.Answer())
	s, text := chatStream(t, c, "org/m")
	require.ErrorIs(t, s.Err(), inference.ErrStream)
	assert.Equal(t, "one two", text, "what arrived before the cut")
}

func TestStreamScriptMalformed(t *testing.T) {
	r, c := responseRouter(t)
	r.On("org/m", inferencetest.StreamScript{Text: script, MalformedAfter: 3}.Answer())
	s, text := chatStream(t, c, "org/m")
	require.ErrorIs(t, s.Err(), inference.ErrStream)
	assert.Contains(t, s.Err().Error(), "not valid JSON")
	assert.Equal(t, "one two three", text)
}

func TestStreamScriptNoDone(t *testing.T) {
	r, c := responseRouter(t)
	r.On("org/m", inferencetest.StreamScript{Text: script, NoDone: true}.Answer())
	s, text := chatStream(t, c, "org/m")
	require.NoError(t, s.Err(), "the finish reason ends the answer")
	assert.Equal(t, script, text)
}

func TestStreamScriptStall(t *testing.T) {
	r, c := responseRouter(t)
	r.On("org/silent", inferencetest.StreamScript{Text: script, StallAfter: 2}.Answer())
	r.On("org/pause", inferencetest.StreamScript{Text: script, StallAfter: 2, StallFor: 20 * time.Millisecond}.Answer())
	c2, err := r.Client(inference.WithStreamIdleTimeout(100 * time.Millisecond))
	require.NoError(t, err)
	defer c2.CloseIdleConnections()
	s, text := chatStream(t, c2, "org/silent")
	require.ErrorIs(t, s.Err(), inference.ErrStream)
	assert.Equal(t, inference.TimeoutStreamIdle, s.Attempts()[0].TimedOut, "silent until the client gives up")
	assert.Equal(t, "one two", text)

	s, text = chatStream(t, c, "org/pause")
	require.ErrorIs(t, s.Err(), inference.ErrStream, "a stall with StallFor ends in a cut")
	assert.Equal(t, "one two", text)
}

func TestStreamScriptSlowFirstToken(t *testing.T) {
	r, _ := responseRouter(t)
	r.On("org/slow", inferencetest.StreamScript{Text: script, FirstTokenAfter: 5 * time.Second}.Answer())
	r.On("org/fast", inferencetest.Reply("in time"))
	c, err := r.Client(inference.WithFirstTokenTimeout(50*time.Millisecond), inference.WithFallback(inference.Candidate{Model: "org/fast"}))
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	s, text := chatStream(t, c, "org/slow")
	require.NoError(t, s.Err())
	assert.Equal(t, "in time", text)
	assert.Equal(t, inference.TimeoutFirstToken, s.Attempts()[0].TimedOut)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	req := chat("org/slow", "")
	req.Fallbacks = []inference.Candidate{}
	_, err = c.Chat(ctx, req)
	require.ErrorIs(t, err, context.DeadlineExceeded, "a request without stream waits FirstTokenAfter too, until the client gives up")
}

func TestReset(t *testing.T) {
	r, c := responseRouter(t)
	r.On("org/m", inferencetest.Reset())
	_, err := c.Chat(t.Context(), chat("org/m", ""))
	require.ErrorIs(t, err, inference.ErrProvider)
	var apiErr *inference.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Zero(t, apiErr.StatusCode, "no answer at all")
}

func TestRejectPrefill(t *testing.T) {
	r, c := responseRouter(t)
	r.On("org/m", inferencetest.RejectPrefill(inferencetest.Reply("continued")))
	req := chat("org/m", "")
	req.Messages = append(req.Messages, inference.Message{Role: inference.RoleAssistant, Content: "Once upon"})
	_, err := c.Chat(t.Context(), req)
	require.ErrorIs(t, err, inference.ErrInvalidRequest)
	var apiErr *inference.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "invalid_prefill", apiErr.Code)

	resp, err := c.Chat(t.Context(), chat("org/m", ""))
	require.NoError(t, err, "a conversation that ends with the user is answered")
	assert.Equal(t, "continued", resp.Text())
}

func TestBadRequestAnswers(t *testing.T) {
	tests := []struct {
		name   string
		answer inferencetest.Answer
		kind   error
		code   string
		walk   []string
	}{
		{"bad request", inferencetest.BadRequest("unsupported_parameter", "logit_bias is not supported"), inference.ErrInvalidRequest, "unsupported_parameter", []string{"org/m"}},
		{"content policy", inferencetest.ContentPolicy(), inference.ErrInvalidRequest, "content_policy_violation", []string{"org/m"}},
		// A longer context may be elsewhere: the walk moves on.
		{"context length", inferencetest.ContextLengthExceeded(), inference.ErrContextLength, "context_length_exceeded", []string{"org/m", "org/b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, c := responseRouter(t)
			r.On("org/m", tt.answer)
			r.On("org/b", tt.answer)
			req := chat("org/m", "")
			req.Fallbacks = []inference.Candidate{{Model: "org/b"}}
			_, err := c.Chat(t.Context(), req)
			require.ErrorIs(t, err, tt.kind)
			var apiErr *inference.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, 400, apiErr.StatusCode)
			assert.Equal(t, tt.code, apiErr.Code)
			assert.Equal(t, tt.walk, r.Models())
		})
	}
}
