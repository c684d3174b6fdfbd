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

// hedgeReq is a call whose walk is a slow primary on together, then a
// fallback on groq.
func hedgeReq() inference.ChatRequest {
	req := chatReq("org/m", "together")
	req.Fallbacks = []inference.Candidate{{Model: "org/m", Provider: "groq"}}
	return req
}

func TestHedgeChatTakesTheFirstAnswer(t *testing.T) {
	verifyNoLeaks(t)
	r := newRouter(t)
	r.On("org/m:together", inferencetest.Delay(time.Second, inferencetest.Reply("slow")), inferencetest.Reply("primary again"))
	r.On("org/m:groq", inferencetest.Reply("from the hedge"))
	rec := &recorder{}
	c, err := r.Client(inference.WithHedge(50*time.Millisecond), inference.WithObserver(rec))
	require.NoError(t, err)
	start := time.Now()
	resp, err := c.Chat(t.Context(), hedgeReq())
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 500*time.Millisecond, "the hedge answered; the slow primary was not waited for")
	assert.Equal(t, "from the hedge", resp.Text())
	require.Len(t, resp.Attempts, 2)
	lost, won := resp.Attempts[0], resp.Attempts[1]
	assert.Equal(t, "org/m:together", lost.Candidate.String())
	assert.True(t, lost.Lost)
	assert.NoError(t, lost.Err, "the loser is not a failure")
	assert.True(t, won.Hedge)
	assert.False(t, won.Lost)

	// The loser cooled nothing: the next call goes to the primary first.
	resp, err = c.Chat(t.Context(), hedgeReq())
	require.NoError(t, err)
	assert.Equal(t, "primary again", resp.Text())
	assert.Empty(t, resp.Skipped)
	assert.Len(t, resp.Attempts, 1)
	assert.Contains(t, strings.Join(rec.events, "\n"), "end attempt org/m:together: served", "the observer heard the loser end")
}

func TestHedgeStreamLoserNeverDelivers(t *testing.T) {
	verifyNoLeaks(t)
	r := newRouter(t)
	r.On("org/m:together", inferencetest.StreamScript{Text: "slow primary words", FirstTokenAfter: time.Second}.Answer())
	r.On("org/m:groq", inferencetest.StreamScript{Text: "hedge words here", Every: time.Millisecond}.Answer())
	c, err := r.Client(inference.WithHedge(50 * time.Millisecond))
	require.NoError(t, err)
	s, err := c.ChatStream(t.Context(), hedgeReq())
	require.NoError(t, err)
	shown, restarted := read(t, s)
	require.NoError(t, s.Err())
	s.Close()
	assert.Zero(t, restarted)
	assert.Equal(t, "hedge words here", shown, "only the winner's chunks")
	require.Len(t, s.Attempts(), 2)
	assert.True(t, s.Attempts()[0].Lost)
	assert.True(t, s.Attempts()[1].Hedge)
}

// A hedge never goes to the primary's provider: with the next candidate
// on the same provider, the call waits for the primary.
func TestHedgeNeverToTheSameProvider(t *testing.T) {
	r := newRouter(t)
	r.On("org/m:together", inferencetest.Delay(200*time.Millisecond, inferencetest.Reply("primary")))
	r.On("org/other:together", inferencetest.Reply("same provider"))
	c, err := r.Client(inference.WithHedge(20 * time.Millisecond))
	require.NoError(t, err)
	req := chatReq("org/m", "together")
	req.Fallbacks = []inference.Candidate{{Model: "org/other", Provider: "together"}}
	resp, err := c.Chat(t.Context(), req)
	require.NoError(t, err)
	assert.Equal(t, "primary", resp.Text())
	assert.Equal(t, []string{"org/m:together"}, r.Models())
}

// Both attempts carry the call's user token, bill-to and headers.
func TestHedgeCarriesTheCallsTokenAndBilling(t *testing.T) {
	const userTok = "hf_oauth_Hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"
	r := newRouter(t)
	r.On("org/m:together", inferencetest.Delay(time.Second, inferencetest.Reply("slow")))
	r.On("org/m:groq", inferencetest.Reply("hedge"))
	c, err := r.Client()
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), hedgeReq(), inference.WithHedge(30*time.Millisecond), inference.WithBillTo("acme-corp"),
		inference.WithHeader("X-Trace", "t7"),
		inference.WithUserTokenSource(inference.OAuthToken(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: userTok}))))
	require.NoError(t, err)
	assert.Equal(t, "hedge", resp.Text())
	reqs := r.Requests()
	require.Len(t, reqs, 2)
	for _, q := range reqs {
		assert.Equal(t, redact.Prefix(userTok), q.TokenPrefix)
		assert.Equal(t, "acme-corp", q.Header.Get("X-Hf-Bill-To"))
		assert.Equal(t, "t7", q.Header.Get("X-Trace"))
	}
}

// An attempt that failed before the other answered is a failure as
// usual: it cools its candidate.
func TestHedgeFailureBeforeTheWinnerCools(t *testing.T) {
	r := newRouter(t)
	r.On("org/m:together", inferencetest.Delay(100*time.Millisecond, inferencetest.ProviderError(503)))
	r.On("org/m:groq", inferencetest.Delay(300*time.Millisecond, inferencetest.Reply("hedge")))
	c, err := r.Client(inference.WithHedge(20*time.Millisecond), inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), hedgeReq())
	require.NoError(t, err)
	assert.Equal(t, "hedge", resp.Text())
	require.Len(t, resp.Attempts, 2)
	assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(resp.Attempts[0].Err))
	assert.False(t, resp.Attempts[0].Lost)

	resp, err = c.Chat(t.Context(), hedgeReq())
	require.NoError(t, err)
	assert.Equal(t, []inference.Candidate{{Model: "org/m", Provider: "together"}}, resp.Skipped, "the failed primary cools")
}

// Both failing: the walk goes on past both, as without a hedge.
func TestHedgeBothFailWalksOn(t *testing.T) {
	r := newRouter(t)
	r.On("org/m:together", inferencetest.Delay(100*time.Millisecond, inferencetest.ProviderError(503)))
	r.On("org/m:groq", inferencetest.Delay(100*time.Millisecond, inferencetest.ProviderError(502)))
	r.On("org/last", inferencetest.Reply("last"))
	c, err := r.Client(inference.WithHedge(20*time.Millisecond), inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	req := hedgeReq()
	req.Fallbacks = append(req.Fallbacks, inference.Candidate{Model: "org/last"})
	resp, err := c.Chat(t.Context(), req)
	require.NoError(t, err)
	assert.Equal(t, "last", resp.Text())
	assert.Len(t, resp.Attempts, 3)
}

// The budget bounds the fraction of calls that hedge.
func TestHedgeBudget(t *testing.T) {
	r := newRouter(t)
	r.On("org/m:together", inferencetest.Delay(40*time.Millisecond, inferencetest.Reply("primary")))
	r.On("org/m:groq", inferencetest.Reply("hedge"))
	c, err := r.Client(inference.WithHedge(5*time.Millisecond), inference.WithHedgeBudget(10))
	require.NoError(t, err)
	hedged := 0
	for range 40 {
		resp, err := c.Chat(t.Context(), hedgeReq())
		require.NoError(t, err)
		if len(resp.Attempts) == 2 {
			hedged++
		}
	}
	t.Logf("%d of 40 calls hedged with a 10 %% budget", hedged)
	assert.LessOrEqual(t, hedged, 4)
	assert.Positive(t, hedged)
	_, err = c.Chat(t.Context(), hedgeReq(), inference.WithHedgeBudget(5))
	assert.ErrorIs(t, err, inference.ErrInvalidRequest, "the budget is the client's")
}

func TestHedgeOptions(t *testing.T) {
	_, err := inference.NewClient(inference.WithHedge(-time.Second))
	assert.Error(t, err)
	_, err = inference.NewClient(inference.WithHedgeBudget(0))
	assert.Error(t, err)
	_, err = inference.NewClient(inference.WithHedgeBudget(101))
	assert.Error(t, err)
}

// A stream that goes silent after its first words, with recovery and a
// hedge, is hedged on the next candidate after the delay; the hedge that
// reproduces the text takes over seamlessly, long before the idle limit.
func TestHedgeStalledStream(t *testing.T) {
	verifyNoLeaks(t)
	r := newRouter(t)
	r.On("org/stall", inferencetest.StreamScript{Text: sixtyWords, StallAfter: 20, StallFor: 5 * time.Second}.Answer())
	r.On("org/ok", inferencetest.StreamScript{Text: sixtyWords}.Answer())
	c := recoveryClient(t, r, inference.WithHedge(100*time.Millisecond), inference.WithStreamIdleTimeout(3*time.Second))
	req := chatReq("org/stall", "")
	req.Fallbacks = []inference.Candidate{{Model: "org/ok"}}
	start := time.Now()
	s, err := c.ChatStream(t.Context(), req)
	require.NoError(t, err)
	shown, restarted := read(t, s)
	require.NoError(t, s.Err())
	s.Close()
	assert.Less(t, time.Since(start), 2*time.Second, "the hedge took over before the idle limit")
	assert.Zero(t, restarted, "the hedge reproduced the delivered text")
	assert.Equal(t, sixtyWords, shown)
	require.Len(t, s.Attempts(), 2)
	assert.True(t, s.Attempts()[0].Lost)
	assert.NoError(t, s.Attempts()[0].Err)
	assert.True(t, s.Attempts()[1].Hedge)

	// The stalled candidate cooled nothing: a lost attempt is not a failure.
	r.On("org/stall", inferencetest.StreamScript{Text: sixtyWords}.Answer())
	s, err = c.ChatStream(t.Context(), req)
	require.NoError(t, err)
	read(t, s)
	s.Close()
	assert.Empty(t, s.Response().Skipped)
}

// A stalled stream that speaks again before its hedge answers keeps
// going; the hedge is cancelled and recorded as lost.
func TestHedgeStalledStreamResumes(t *testing.T) {
	verifyNoLeaks(t)
	r := newRouter(t)
	words := strings.SplitAfter(sixtyWords, " ")
	r.On("org/pause", func(w http.ResponseWriter, req *inferencetest.Request) {
		var events []string
		for i, word := range words {
			if i == 20 {
				sse(events...)(w, req)
				events = nil
				time.Sleep(300 * time.Millisecond) // a pause, not a stall
			}
			events = append(events, textChunk(0, word))
		}
		events = append(events, finish(0, "stop"), "[DONE]")
		for _, e := range events {
			fmt.Fprintf(w, "data: %s\n\n", e)
		}
	})
	r.On("org/slowfb", inferencetest.StreamScript{Text: "fallback words", FirstTokenAfter: 2 * time.Second}.Answer())
	c := recoveryClient(t, r, inference.WithHedge(50*time.Millisecond))
	req := chatReq("org/pause", "")
	req.Fallbacks = []inference.Candidate{{Model: "org/slowfb"}}
	s, err := c.ChatStream(t.Context(), req)
	require.NoError(t, err)
	shown, restarted := read(t, s)
	require.NoError(t, s.Err())
	s.Close()
	assert.Zero(t, restarted)
	assert.Equal(t, sixtyWords, shown, "the first attempt spoke again first and was read to its end")
	require.Len(t, s.Attempts(), 2)
	assert.False(t, s.Attempts()[0].Lost)
	assert.True(t, s.Attempts()[1].Hedge)
	assert.True(t, s.Attempts()[1].Lost, "the hedge was cancelled: not a failure")
	assert.Equal(t, []string{"org/pause", "org/slowfb"}, r.Models())
}
