package inference

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// modelRouter scripts answers per model as sent ("model" or
// "model:provider"): a queue per model, the last answer repeating. It
// records the order in which models were asked and with which token.
type modelRouter struct {
	mu      sync.Mutex
	scripts map[string][]http.HandlerFunc
	served  map[string]int
	order   []string
	srv     *httptest.Server
}

func newModelRouter(t testing.TB, scripts map[string][]http.HandlerFunc) *modelRouter {
	t.Helper()
	mr := &modelRouter{scripts: scripts, served: map[string]int{}}
	mr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Model string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		mr.mu.Lock()
		mr.order = append(mr.order, body.Model)
		script, ok := mr.scripts[body.Model]
		n := mr.served[body.Model]
		mr.served[body.Model]++
		mr.mu.Unlock()
		if !ok {
			status(400, `{"error":{"message":"The requested model '`+body.Model+`' does not exist.","code":"model_not_found"}}`)(w, r)
			return
		}
		script[min(n, len(script)-1)](w, r)
	}))
	t.Cleanup(mr.srv.Close)
	return mr
}

func (mr *modelRouter) requests() []string {
	mr.mu.Lock()
	defer mr.mu.Unlock()
	return append([]string(nil), mr.order...)
}

func newWalkClient(t testing.TB, mr *modelRouter, opts ...Option) *Client {
	t.Helper()
	base := []Option{
		WithBaseURL(mr.srv.URL), WithHubURL("https://hub.example"), WithToken(testToken),
		WithRetry(RetryPolicy{MaxRetries: 1, MinWait: time.Millisecond, MaxWait: 5 * time.Millisecond}),
	}
	c, err := NewClient(append(base, opts...)...)
	require.NoError(t, err)
	return c
}

func TestWalkRateLimitLongerThanMaxWaitMovesOnAndCools(t *testing.T) {
	mr := newModelRouter(t, map[string][]http.HandlerFunc{
		"m/a:groq": {func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "30")
			w.Header().Set("X-Inference-Provider", "groq")
			w.WriteHeader(429)
		}},
		"m/a:together": {completion("second provider")},
	})
	c := newWalkClient(t, mr, WithRetry(RetryPolicy{MaxRetries: 3, MinWait: time.Millisecond, MaxWait: 5 * time.Millisecond}),
		WithCooldown(time.Second), WithFallback(Candidate{Model: "m/a", Provider: "together"}))
	start := time.Now()
	resp, err := c.Chat(t.Context(), chatReq("m/a", "groq"))
	require.NoError(t, err)
	assert.Less(t, time.Since(start), time.Second, "no 30 s sleep")
	assert.Equal(t, []string{"m/a:groq", "m/a:together"}, mr.requests())
	assert.Equal(t, "second provider", resp.Text())

	// The cooldown is at least the server's 30 s, though WithCooldown is 1 s.
	until := c.cool.Until(candidateKey(Candidate{Model: "m/a", Provider: "groq"}), time.Now())
	assert.Greater(t, time.Until(until), 29*time.Second)
}

func TestCooldownSkipsFailedCandidateInLaterCalls(t *testing.T) {
	mr := newModelRouter(t, map[string][]http.HandlerFunc{
		"m/a": {fromFixture(t, "F05-provider-502.http")},
		"m/b": {completion("fallback")},
	})
	c := newWalkClient(t, mr, WithRetry(RetryPolicy{}), WithFallback(Candidate{Model: "m/b"}))
	for i := 0; i < 3; i++ {
		resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
		require.NoError(t, err)
		assert.Equal(t, "fallback", resp.Text())
	}
	assert.Equal(t, []string{"m/a", "m/b", "m/b", "m/b"}, mr.requests(), "m/a is not contacted while cooling")

	// When the failure does not cool (a 422), the next call tries it again.
	mr2 := newModelRouter(t, map[string][]http.HandlerFunc{"m/a": {fromFixture(t, "F08-validation-422.http")}, "m/b": {completion("ok")}})
	c2 := newWalkClient(t, mr2, WithRetry(RetryPolicy{}), WithFallback(Candidate{Model: "m/b"}))
	for i := 0; i < 2; i++ {
		_, err := c2.Chat(t.Context(), chatReq("m/a", ""))
		require.NoError(t, err)
	}
	assert.Equal(t, []string{"m/a", "m/b", "m/a", "m/b"}, mr2.requests())
}

func TestCooldownExpiresAndZeroDisables(t *testing.T) {
	mr := newModelRouter(t, map[string][]http.HandlerFunc{
		"m/a": {fromFixture(t, "F05-provider-502.http"), completion("a is back")},
		"m/b": {completion("fallback")},
	})
	c := newWalkClient(t, mr, WithRetry(RetryPolicy{}), WithCooldown(40*time.Millisecond), WithFallback(Candidate{Model: "m/b"}))
	_, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	time.Sleep(60 * time.Millisecond)
	resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "a is back", resp.Text())

	mr2 := newModelRouter(t, map[string][]http.HandlerFunc{"m/a": {fromFixture(t, "F05-provider-502.http")}, "m/b": {completion("ok")}})
	c2 := newWalkClient(t, mr2, WithRetry(RetryPolicy{}), WithCooldown(0), WithFallback(Candidate{Model: "m/b"}))
	for i := 0; i < 2; i++ {
		_, err := c2.Chat(t.Context(), chatReq("m/a", ""))
		require.NoError(t, err)
	}
	assert.Equal(t, []string{"m/a", "m/b", "m/a", "m/b"}, mr2.requests())
	assert.Equal(t, 0, c2.cool.(*memoryCooldown).len())
}

func TestAllCoolingTriesTheOneThatEndsFirst(t *testing.T) {
	mr := newModelRouter(t, map[string][]http.HandlerFunc{
		"m/a": {completion("a")},
		"m/b": {completion("b")},
	})
	c := newWalkClient(t, mr, WithFallback(Candidate{Model: "m/b"}))
	now := time.Now()
	c.cool.CoolDown(candidateKey(Candidate{Model: "m/a"}), now.Add(time.Hour))
	c.cool.CoolDown(candidateKey(Candidate{Model: "m/b"}), now.Add(time.Minute))
	resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "b", resp.Text())
	assert.Equal(t, []string{"m/b"}, mr.requests())
}

func TestSkippedCandidatesAreNamedInTheError(t *testing.T) {
	mr := newModelRouter(t, map[string][]http.HandlerFunc{
		"m/a": {completion("never")},
		"m/b": {fromFixture(t, "F05-provider-502.http")},
	})
	c := newWalkClient(t, mr, WithRetry(RetryPolicy{}), WithFallback(Candidate{Model: "m/b"}))
	c.cool.CoolDown(candidateKey(Candidate{Model: "m/a"}), time.Now().Add(time.Hour))
	_, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.ErrorIs(t, err, ErrProvider)
	assert.Contains(t, err.Error(), "skipped while cooling down after earlier failures: m/a")
	var fe *FallbackError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, []Candidate{{Model: "m/a"}}, fe.Skipped)
}

func TestDeadlineEndsTheWalkPromptly(t *testing.T) {
	hang := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	mr := newModelRouter(t, map[string][]http.HandlerFunc{"m/a": {hang}, "m/b": {completion("never")}})
	c := newWalkClient(t, mr, WithFallback(Candidate{Model: "m/b"}))
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Chat(ctx, chatReq("m/a", ""))
	late := time.Since(start) - 40*time.Millisecond
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, late, 30*time.Millisecond, "the walk ends within a few ms of the deadline")
	assert.Equal(t, []string{"m/a"}, mr.requests(), "no candidate is tried after the deadline")
	assert.Nil(t, kindsMatched(err), "a deadline is not a provider failure")
}

func TestAttemptTimeoutMovesOn(t *testing.T) {
	hang := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	mr := newModelRouter(t, map[string][]http.HandlerFunc{"m/a": {hang}, "m/b": {completion("b")}})
	c := newWalkClient(t, mr, WithAttemptTimeout(50*time.Millisecond), WithFallback(Candidate{Model: "m/b"}))
	resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "b", resp.Text())
	first := resp.Attempts[0]
	assert.Equal(t, ErrProvider, first.Kind())
	assert.NotErrorIs(t, first.Err, context.DeadlineExceeded, "the caller's deadline did not pass")
	assert.Contains(t, first.Err.Error(), "attempt timeout of 50ms")
}

func TestTokenChainExhaustedStops(t *testing.T) {
	mr := newModelRouter(t, map[string][]http.HandlerFunc{"m/a": {fromFixture(t, "F04-invalid-token.http")}, "m/b": {completion("never")}})
	chain := ChainTokens(StaticToken("hf_FirstTokenAAAAAAAAAAAAAAAAAAAAAAAAAA"), StaticToken("hf_SecondTokenBBBBBBBBBBBBBBBBBBBBBBBBB"))
	c, err := NewClient(WithBaseURL(mr.srv.URL), WithTokenSource(chain), WithFallback(Candidate{Model: "m/b"}))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), chatReq("m/a", ""))
	require.ErrorIs(t, err, ErrUnauthorized)
	assert.Equal(t, []string{"m/a", "m/a"}, mr.requests())
	var fe *FallbackError
	require.ErrorAs(t, err, &fe)
	assert.Len(t, fe.Attempts, 2)
	assert.NotContains(t, err.Error(), "FirstTokenAAAA")
}

func TestCustomFallbackPolicy(t *testing.T) {
	mr := newModelRouter(t, map[string][]http.HandlerFunc{"m/a": {fromFixture(t, "F06-credits-depleted.http")}, "m/b": {completion("b")}})
	var seen []error
	c := newWalkClient(t, mr, WithFallback(Candidate{Model: "m/b"}), WithFallbackPolicy(func(err error) Decision {
		seen = append(seen, err)
		return DecisionNextCandidate // this app pays per provider: move on even on 402
	}))
	resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "b", resp.Text())
	require.Len(t, seen, 1)
	assert.ErrorIs(t, seen[0], ErrPaymentRequired)

	_, err = NewClient(WithFallbackPolicy(nil))
	assert.Error(t, err)
	_, err = NewClient(WithAttemptTimeout(-1))
	assert.Error(t, err)
}

func TestDefaultFallbackPolicyTable(t *testing.T) {
	tests := []struct {
		err  error
		want Decision
	}{
		{&APIError{Kind: ErrGatedModel}, DecisionNextCandidate},
		{&APIError{Kind: ErrModelNotFound}, DecisionNextCandidate},
		{&APIError{Kind: ErrModelNotSupported}, DecisionNextCandidate},
		{&APIError{Kind: ErrProvider}, DecisionNextCandidate},
		{&APIError{Kind: ErrRateLimited}, DecisionNextCandidate},
		{&APIError{Kind: ErrInvalidRequest, StatusCode: 422}, DecisionNextCandidate},
		{&APIError{Kind: ErrInvalidRequest, StatusCode: 400, FromProvider: true}, DecisionNextCandidate},
		{&APIError{Kind: ErrInvalidRequest, StatusCode: 400}, DecisionStop},
		{&APIError{Kind: ErrUnauthorized}, DecisionNextToken},
		{&APIError{Kind: ErrMissingScope}, DecisionNextToken},
		{&APIError{Kind: ErrPaymentRequired}, DecisionStop},
		{ErrNoToken, DecisionStop},
		{ErrInvalidToken, DecisionStop},
		{errors.New("something else"), DecisionStop},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, DefaultFallbackPolicy(tt.err), "%v", tt.err)
	}
	assert.Equal(t, "next token source", DecisionNextToken.String())
	assert.Equal(t, "stop", DecisionStop.String())
	assert.Equal(t, "next candidate", DecisionNextCandidate.String())
	assert.Equal(t, "Decision(9)", Decision(9).String())
}

func TestMemoryCooldown(t *testing.T) {
	m := newMemoryCooldown()
	now := time.Now()
	assert.True(t, m.Until(coolKey{subject: "a"}, now).IsZero())
	m.CoolDown(coolKey{subject: "a"}, now.Add(time.Minute))
	m.CoolDown(coolKey{subject: "a"}, now.Add(time.Second)) // an earlier end does not shorten it
	assert.Equal(t, now.Add(time.Minute), m.Until(coolKey{subject: "a"}, now))
	assert.True(t, m.Until(coolKey{subject: "a"}, now.Add(2*time.Minute)).IsZero(), "expired")

	for i := 0; i < sweepAt; i++ {
		m.CoolDown(coolKey{subject: fmt.Sprintf("old-%d", i)}, now.Add(-time.Second))
	}
	m.CoolDown(coolKey{subject: "b"}, now.Add(time.Minute))
	assert.LessOrEqual(t, m.len(), 3, "expired entries are swept")
}

// TestConcurrentCallsWithRandomFailures runs 200 goroutines through one
// client against a router that fails at random in every way the walk
// handles; every call must end in an answer or a typed error.
func TestConcurrentCallsWithRandomFailures(t *testing.T) {
	// Registered first, so it runs after the router and client are closed.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	failures := []http.HandlerFunc{
		fromFixture(t, "F02-gated-403.http"), fromFixture(t, "F05-provider-502.http"),
		fromFixture(t, "F07b-rate-limit-no-retry-after.http"), fromFixture(t, "F08-validation-422.http"),
		fromFixture(t, "F10-html-gateway-504.http"), fromFixture(t, "F09b-model-not-supported.http"),
		fromFixture(t, "F06-credits-depleted.http"),
		func(w http.ResponseWriter, r *http.Request) { // a dropped connection
			hj, ok := w.(http.Hijacker)
			if !ok {
				w.WriteHeader(500)
				return
			}
			conn, _, err := hj.Hijack()
			if err == nil {
				conn.Close()
			}
		},
	}
	random := func(w http.ResponseWriter, r *http.Request) {
		if rand.IntN(10) < 4 {
			completion("ok")(w, r)
			return
		}
		failures[rand.IntN(len(failures))](w, r)
	}
	scripts := map[string][]http.HandlerFunc{}
	for _, m := range []string{"m/a", "m/b:together", "m/c:groq"} {
		scripts[m] = []http.HandlerFunc{random}
	}
	mr := newModelRouter(t, scripts)
	c := newWalkClient(t, mr, WithCooldown(5*time.Millisecond),
		WithFallback(Candidate{Model: "m/b", Provider: "together"}, Candidate{Model: "m/c", Provider: "groq"}))

	var ok, failed atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
			if err == nil {
				if resp.Text() == "ok" && len(resp.Attempts) > 0 {
					ok.Add(1)
				}
				return
			}
			failed.Add(1)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		var fe *FallbackError
		require.ErrorAs(t, err, &fe, "every failure is a typed walk error: %v", err)
		require.NotEmpty(t, fe.Attempts)
		for _, a := range fe.Attempts {
			assert.NotNil(t, a.Kind(), "every failed attempt has a kind: %v", a.Err)
		}
	}
	assert.Equal(t, int32(200), ok.Load()+failed.Load())
	assert.Positive(t, ok.Load())
	c.CloseIdleConnections()
}
