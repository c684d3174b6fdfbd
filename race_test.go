package inference_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// The race (race.go) launches every extra attempt; these tests hold what
// it owes the hedge budget, for first tokens and stalls alike.

// pausingStream streams words, pausing for pause after the third, as a
// provider that stalls for a while and then goes on.
func pausingStream(words []string, pause time.Duration) inferencetest.Answer {
	return func(w http.ResponseWriter, req *inferencetest.Request) {
		var events []string
		for i, word := range words {
			if i == 3 {
				sse(events...)(w, req)
				events = nil
				select {
				case <-time.After(pause):
				case <-req.HTTP.Context().Done():
					return
				}
			}
			events = append(events, textChunk(0, word))
		}
		events = append(events, finish(0, "stop"), "[DONE]")
		for _, e := range events {
			fmt.Fprintf(w, "data: %s\n\n", e)
		}
	}
}

// A stall hedge is an extra launch like any other: it takes from
// WithHedgeBudget. On ac8b712 every stalled stream sent its stall hedge,
// whatever the budget.
func TestStallHedgesTakeFromTheBudget(t *testing.T) {
	verifyNoLeaks(t)
	words := strings.SplitAfter("one two three four five six seven eight", " ")
	r := newRouter(t)
	r.On("org/stall", pausingStream(words, 150*time.Millisecond))
	r.On("org/fb", inferencetest.Stream(words...))
	c := recoveryClient(t, r, inference.WithHedge(20*time.Millisecond), inference.WithHedgeBudget(20))
	req := chatReq("org/stall", "")
	req.Fallbacks = []inference.Candidate{{Model: "org/fb"}}
	const calls = 20
	var mu sync.Mutex
	hedged := 0
	var wg sync.WaitGroup
	sem := make(chan struct{}, 5)
	for range calls {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			s, err := c.ChatStream(t.Context(), req)
			if !assert.NoError(t, err) {
				return
			}
			shown, _ := read(t, s)
			assert.NoError(t, s.Err())
			s.Close()
			assert.Equal(t, strings.Join(words, ""), shown)
			for _, a := range s.Attempts() {
				if a.Hedge {
					mu.Lock()
					hedged++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d of %d stalled streams hedged with a 20 %% budget", hedged, calls)
	assert.Positive(t, hedged, "the budget allows some")
	assert.LessOrEqual(t, hedged, calls*20/100, "no more than the budget")
}

// A call is counted once by the budget, however many candidates it walks:
// the budget is a fraction of calls. On ac8b712 a call was counted once
// per candidate it tried, so that calls that walked far let others hedge
// beyond the budget (here 8 of 10 instead of at most 4).
func TestTheBudgetCountsACallOnce(t *testing.T) {
	r := newRouter(t)
	for _, m := range []string{"org/a", "org/b"} {
		r.On(m+":together", inferencetest.ProviderError(503))
		r.On(m+":groq", inferencetest.ProviderError(503))
	}
	r.On("org/c:together", inferencetest.Reply("walked"))
	r.On("org/slow:together", inferencetest.Delay(200*time.Millisecond, inferencetest.Reply("slow")))
	r.On("org/slow:groq", inferencetest.Reply("hedge"))
	c, err := r.Client(inference.WithHedgeBudget(20), inference.WithRetry(inference.RetryPolicy{}), inference.WithCooldown(0))
	require.NoError(t, err)
	// The walkers' failures come long before their hedge delay: they
	// never hedge, however busy the machine; the slow calls want to.
	walkerHedge, slowHedge := inference.WithHedge(5*time.Second), inference.WithHedge(10*time.Millisecond)
	walker := chatReq("org/a", "together")
	walker.Fallbacks = []inference.Candidate{{Model: "org/a", Provider: "groq"}, {Model: "org/b", Provider: "together"},
		{Model: "org/b", Provider: "groq"}, {Model: "org/c", Provider: "together"}}
	for range 10 {
		resp, err := c.Chat(t.Context(), walker, walkerHedge)
		require.NoError(t, err)
		require.Len(t, resp.Attempts, 5, "the walk went through five candidates")
	}
	slow := chatReq("org/slow", "together")
	slow.Fallbacks = []inference.Candidate{{Model: "org/slow", Provider: "groq"}}
	hedged := 0
	for range 10 {
		resp, err := c.Chat(t.Context(), slow, slowHedge)
		require.NoError(t, err)
		if len(resp.Attempts) == 2 {
			hedged++
		}
	}
	t.Logf("%d of 10 slow calls hedged after 10 calls that walked five candidates each", hedged)
	assert.LessOrEqual(t, hedged, 4, "20 %% of 20 calls")
	assert.Positive(t, hedged)
}

// After a hedge won, the walk goes on from the winner: a stream that then
// fails restarts on the next candidate, never on the primary the hedge
// beat. Found by trying the library as a new user: the walk was a, b, a, c.
func TestARestartAfterAHedgeGoesOnFromTheWinner(t *testing.T) {
	verifyNoLeaks(t)
	r := newRouter(t)
	r.On("org/a", inferencetest.StreamScript{Text: sixtyWords, FirstTokenAfter: 2 * time.Second}.Answer())
	r.On("org/b", inferencetest.StreamScript{Text: sixtyWords, StallAfter: 5}.Answer())
	r.On("org/c", inferencetest.StreamScript{Text: sixtyWords}.Answer())
	c := recoveryClient(t, r, inference.WithHedge(50*time.Millisecond), inference.WithStreamIdleTimeout(300*time.Millisecond))
	req := chatReq("org/a", "")
	req.Fallbacks = []inference.Candidate{{Model: "org/b"}, {Model: "org/c"}}
	s, err := c.ChatStream(t.Context(), req)
	require.NoError(t, err)
	shown, _ := read(t, s)
	require.NoError(t, s.Err())
	s.Close()
	assert.Equal(t, sixtyWords, shown)
	assert.Equal(t, []string{"org/a", "org/b", "org/c"}, r.Models())
}
