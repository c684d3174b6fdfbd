package inference_test

import (
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

// These tests hold what a call owes a store that gives probes (one with
// Release, see CooldownStore) beside the other features of the walk: a
// probe is given only for an attempt the call makes, and each probe given
// is released once, whoever launched the attempt.

// A stream's stall hedge is given the probe of the candidate it tries,
// and releases it once it is settled: served when the hedge took the
// stream over, not served when the first attempt spoke again first and
// the hedge was cancelled. At 9c954e7 neither was released: the store
// held every other call (and, through Redis, the fleet) off the
// candidate until the probe's lease ran out (ProbeTimeout, two minutes
// by default), although it served the stream, or was never heard of.
func TestAStallHedgeReleasesTheProbeItWasGiven(t *testing.T) {
	t.Run("it took the stream over", func(t *testing.T) {
		verifyNoLeaks(t)
		r := newRouter(t)
		r.On("org/stall", inferencetest.StreamScript{Text: sixtyWords, StallAfter: 20, StallFor: 5 * time.Second}.Answer())
		r.On("org/ok", inferencetest.StreamScript{Text: sixtyWords}.Answer())
		store := newReleaseStore()
		c := recoveryClient(t, r, inference.WithCooldownStore(store), inference.WithHedge(100*time.Millisecond),
			inference.WithStreamIdleTimeout(3*time.Second))
		req := chatReq("org/stall", "")
		req.Fallbacks = []inference.Candidate{{Model: "org/ok"}}
		s, err := c.ChatStream(t.Context(), req)
		require.NoError(t, err)
		shown, _ := read(t, s)
		require.NoError(t, s.Err())
		s.Close()
		require.Equal(t, sixtyWords, shown)
		require.Len(t, s.Attempts(), 2)
		require.True(t, s.Attempts()[1].Hedge, "the stall hedge took over")
		assert.Equal(t, []string{"give org/stall", "release org/stall (served)", "give org/ok", "release org/ok (served)"}, store.take())
		assert.Empty(t, store.held, "no probe is held once the stream is over")
	})

	// The first attempt pauses past the hedge delay, then speaks again;
	// the stall hedge's candidate answers late, or fails.
	for _, tc := range []struct {
		name, fallback string
		answer         inferencetest.Answer
		hedgeEnded     func(inference.Attempt) bool
		want           []string
		why            string
	}{
		{"the first spoke again first", "org/slowfb",
			inferencetest.StreamScript{Text: "fallback words", FirstTokenAfter: 2 * time.Second}.Answer(),
			func(a inference.Attempt) bool { return a.Lost },
			[]string{"give org/pause", "release org/pause (served)", "give org/slowfb", "release org/slowfb"},
			"no verdict: released unserved, for the next call to probe"},
		{"it failed", "org/downfb", inferencetest.ProviderError(503),
			func(a inference.Attempt) bool { return errors.Is(a.Err, inference.ErrProvider) },
			[]string{"give org/pause", "release org/pause (served)", "give org/downfb", "cool org/downfb", "release org/downfb"},
			"released after its cooldown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			verifyNoLeaks(t)
			r := newRouter(t)
			r.On("org/pause", pausingStream(strings.SplitAfter(sixtyWords, " "), 300*time.Millisecond))
			r.On(tc.fallback, tc.answer)
			store := newReleaseStore()
			c := recoveryClient(t, r, inference.WithCooldownStore(store), inference.WithHedge(50*time.Millisecond))
			req := chatReq("org/pause", "")
			req.Fallbacks = []inference.Candidate{{Model: tc.fallback}}
			s, err := c.ChatStream(t.Context(), req)
			require.NoError(t, err)
			shown, _ := read(t, s)
			require.NoError(t, s.Err())
			s.Close()
			require.Equal(t, sixtyWords, shown)
			require.Len(t, s.Attempts(), 2)
			require.True(t, tc.hedgeEnded(s.Attempts()[1]), "the stall hedge: %+v", s.Attempts()[1])
			assert.Equal(t, tc.want, store.take(), tc.why)
			assert.Empty(t, store.held)
		})
	}
}

// A call is given the probe of a hedge's candidate only when it sends
// the hedge: a call the hedge budget (or a context already done) stops
// from hedging never tries the candidate. At 9c954e7 the store was asked
// first and the budget after: a call past its budget was given the probe
// of its fallback each time its hedge delay passed, and held the fleet
// off it while its primary ran (two minutes, for a provider that hangs),
// the very thing giving a probe only to a call that tries the candidate
// is for.
func TestACallThatMayNotHedgeIsGivenNoProbe(t *testing.T) {
	t.Run("a call", func(t *testing.T) {
		r := newRouter(t)
		r.On("org/slow", inferencetest.Delay(150*time.Millisecond, inferencetest.Reply("slow")))
		store := newReleaseStore()
		c, err := r.Client(inference.WithCooldownStore(store), inference.WithRetry(inference.RetryPolicy{}),
			inference.WithHedge(10*time.Millisecond), inference.WithHedgeBudget(1),
			inference.WithFallback(inference.Candidate{Model: "org/fb"}))
		require.NoError(t, err)
		resp, err := c.Chat(t.Context(), chatReq("org/slow", ""))
		require.NoError(t, err)
		require.Len(t, resp.Attempts, 1, "the budget allowed no hedge")
		assert.Equal(t, []string{"give org/slow", "release org/slow (served)"}, store.take(), "the fallback never tried, never given")
	})

	t.Run("a stall", func(t *testing.T) {
		verifyNoLeaks(t)
		words := strings.SplitAfter(sixtyWords, " ")
		r := newRouter(t)
		r.On("org/pause", pausingStream(words, 150*time.Millisecond))
		store := newReleaseStore()
		c := recoveryClient(t, r, inference.WithCooldownStore(store), inference.WithHedge(10*time.Millisecond), inference.WithHedgeBudget(1),
			inference.WithFallback(inference.Candidate{Model: "org/fb"}))
		s, err := c.ChatStream(t.Context(), chatReq("org/pause", ""))
		require.NoError(t, err)
		shown, _ := read(t, s)
		require.NoError(t, s.Err())
		s.Close()
		require.Equal(t, sixtyWords, shown)
		require.Len(t, s.Attempts(), 1, "the budget allowed no stall hedge")
		assert.Equal(t, []string{"give org/pause", "release org/pause (served)"}, store.take(), "the fallback never tried, never given")
		assert.Empty(t, store.held)
	})
}

// A hedge the budget allowed but the store refused (every candidate it
// could go to is probed elsewhere) is not sent, and counts for nothing in
// the budget: the next call may hedge as if it had not been tried.
func TestAHedgeTheStoreRefusedIsGivenBackToTheBudget(t *testing.T) {
	r := newRouter(t)
	store := newReleaseStore()
	slow := inferencetest.Delay(100*time.Millisecond, inferencetest.Reply("slow"))
	r.On("org/fast", inferencetest.Reply("fast"))
	r.On("org/slow", func(w http.ResponseWriter, req *inferencetest.Request) {
		// Another replica begins to probe the fallback while this call's
		// primary runs.
		store.mu.Lock()
		store.held["org/fb"] = true
		store.mu.Unlock()
		slow(w, req)
	}, slow)
	r.On("org/fb", inferencetest.Reply("hedge"))
	c, err := r.Client(inference.WithCooldownStore(store), inference.WithRetry(inference.RetryPolicy{}),
		inference.WithHedge(10*time.Millisecond), inference.WithHedgeBudget(50),
		inference.WithFallback(inference.Candidate{Model: "org/fb"}))
	require.NoError(t, err)

	_, err = c.Chat(t.Context(), chatReq("org/fast", ""))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq("org/slow", ""))
	require.NoError(t, err)
	require.Len(t, resp.Attempts, 1, "the fallback is probed elsewhere: no hedge")
	assert.Equal(t, []inference.Candidate{{Model: "org/fb"}}, resp.Skipped)
	store.mu.Lock()
	delete(store.held, "org/fb") // that probe is over
	store.mu.Unlock()
	resp, err = c.Chat(t.Context(), chatReq("org/slow", ""))
	require.NoError(t, err)
	assert.Equal(t, "hedge", resp.Text(), "one hedge in three calls is within a 50 % budget")
}

// A call whose first candidate is skipped for its account alone (gated
// for the client's own token: the fleet's store knows nothing of it) asks
// the store for the candidate it then tries first, so that it probes it
// only when the store gives it the probe. At 9c954e7 the store was asked
// once, with the skipped candidate first: it gave that one (released at
// once), and the candidate tried first was never asked for, so every such
// call of the process went to it while its probe was to be one call's.
func TestACallAsksForTheCandidateItTriesFirstPastOneSkippedForItsAccount(t *testing.T) {
	r := newRouter(t)
	r.On("org/gated", inferencetest.Gated())
	r.On("org/up", inferencetest.Reply("ok"))
	store := newReleaseStore()
	c, err := r.Client(inference.WithCooldownStore(store), inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), chatReq("org/gated", ""))
	require.ErrorIs(t, err, inference.ErrGatedModel)
	require.Empty(t, store.until, "gated for the account: not shared")
	store.take()

	req := chatReq("org/gated", "")
	req.Fallbacks = []inference.Candidate{{Model: "org/up"}}
	resp, err := c.Chat(t.Context(), req)
	require.NoError(t, err)
	assert.Equal(t, []inference.Candidate{{Model: "org/gated"}}, resp.Skipped)
	assert.Equal(t, []string{"give org/gated", "release org/gated", "give org/up", "release org/up (served)"}, store.take())
}
