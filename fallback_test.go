package inference

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"
)

// modelRouter scripts answers per model as sent ("model" or
// "model:provider"): a queue per model, the last answer repeating. It
// records the order in which models were asked and with which token.
type modelRouter struct {
	mu      sync.Mutex
	scripts map[string][]http.HandlerFunc
	served  map[string]int
	order   []string
	auth    []string
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
		mr.auth = append(mr.auth, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
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

func (mr *modelRouter) tokens() []string {
	mr.mu.Lock()
	defer mr.mu.Unlock()
	return append([]string(nil), mr.auth...)
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

func TestWalkGatedThenRetriedProviderThenServed(t *testing.T) {
	mr := newModelRouter(t, map[string][]http.HandlerFunc{
		"ardent-figment/gated-model":   {fromFixture(t, "F02-gated-403.http")},
		"meta-llama/Llama-3.3-70B:hyp": {fromFixture(t, "F05-provider-502.http")},
		"Qwen/Qwen3-8B:together":       {completion("served by the third")},
	})
	var logs bytes.Buffer
	c := newWalkClient(t, mr, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
		WithFallback(Candidate{Model: "meta-llama/Llama-3.3-70B", Provider: "hyp"}, Candidate{Model: "Qwen/Qwen3-8B", Provider: "together"}))

	resp, err := c.Chat(t.Context(), chatReq("ardent-figment/gated-model", ""))
	require.NoError(t, err)
	assert.Equal(t, "served by the third", resp.Text())
	assert.Equal(t, []string{
		"ardent-figment/gated-model",
		"meta-llama/Llama-3.3-70B:hyp", "meta-llama/Llama-3.3-70B:hyp", // one retry, then left
		"Qwen/Qwen3-8B:together",
	}, mr.requests())

	require.Len(t, resp.Attempts, 3)
	a := resp.Attempts
	assert.Equal(t, ErrGatedModel, a[0].Kind())
	assert.Equal(t, 403, a[0].StatusCode)
	assert.Equal(t, "ViT1Bf7O_026LGSQuVqfa", a[0].RequestID)
	assert.Equal(t, ErrProvider, a[1].Kind())
	assert.Equal(t, 1, a[1].Retries)
	assert.Equal(t, 502, a[1].StatusCode)
	assert.NoError(t, a[2].Err)
	assert.Nil(t, a[2].Kind())
	assert.Equal(t, Candidate{Model: "Qwen/Qwen3-8B", Provider: "together"}, a[2].Candidate)
	assert.Equal(t, "static", a[2].TokenSource)

	out := logs.String()
	assert.Contains(t, out, `msg="inference: trying the next candidate" from=ardent-figment/gated-model to=meta-llama/Llama-3.3-70B:hyp reason="the model is gated" status=403`)
	assert.Contains(t, out, `from=meta-llama/Llama-3.3-70B:hyp to=Qwen/Qwen3-8B:together reason="the provider failed" status=502`)
}

func TestWalkStopKindsSendNothingMore(t *testing.T) {
	tests := []struct {
		name    string
		primary http.HandlerFunc
		kind    error
	}{
		{"payment required", fromFixture(t, "F06-credits-depleted.http"), ErrPaymentRequired},
		{"router 400", fromFixture(t, "F09f-router-400-plain.http"), ErrInvalidRequest},
		{"unauthorized, one token", fromFixture(t, "F04-invalid-token.http"), ErrUnauthorized},
		{"missing scope, one token", fromFixture(t, "F01-missing-scope.http"), ErrMissingScope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mr := newModelRouter(t, map[string][]http.HandlerFunc{"m/a": {tt.primary}, "m/b": {completion("never")}})
			c := newWalkClient(t, mr, WithFallback(Candidate{Model: "m/b"}))
			_, err := c.Chat(t.Context(), chatReq("m/a", ""))
			require.ErrorIs(t, err, tt.kind)
			assert.Equal(t, []string{"m/a"}, mr.requests())
			var fe *FallbackError
			require.ErrorAs(t, err, &fe)
			assert.Len(t, fe.Attempts, 1)
		})
	}
	t.Run("no token", func(t *testing.T) {
		clearTokenEnv(t)
		mr := newModelRouter(t, map[string][]http.HandlerFunc{"m/a": {completion("never")}})
		c, err := NewClient(WithBaseURL(mr.srv.URL), WithFallback(Candidate{Model: "m/b"}))
		require.NoError(t, err)
		_, err = c.Chat(t.Context(), chatReq("m/a", ""))
		require.ErrorIs(t, err, ErrNoToken)
		assert.Empty(t, mr.requests())
	})
}

func TestWalkMovesOnFor422AndProvider400(t *testing.T) {
	for _, fx := range []string{"F08-validation-422.http", "F09d-provider-native-400.http", "F09b-model-not-supported.http", "F03-repo-not-found.http", "F07-rate-limit-groq.http"} {
		t.Run(fx, func(t *testing.T) {
			mr := newModelRouter(t, map[string][]http.HandlerFunc{"m/a": {fromFixture(t, fx)}, "m/b": {completion("second")}})
			c := newWalkClient(t, mr, WithFallback(Candidate{Model: "m/b"}), WithRetry(RetryPolicy{}))
			resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
			require.NoError(t, err)
			assert.Equal(t, "second", resp.Text())
			assert.Equal(t, []string{"m/a", "m/b"}, mr.requests())
		})
	}
}

func TestWalkRetryThenSuccessStaysOnCandidate(t *testing.T) {
	mr := newModelRouter(t, map[string][]http.HandlerFunc{
		"m/a": {status(503, `{"error":"busy"}`), completion("first, after a retry")},
		"m/b": {completion("never")},
	})
	c := newWalkClient(t, mr, WithFallback(Candidate{Model: "m/b"}))
	resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "first, after a retry", resp.Text())
	assert.Equal(t, []string{"m/a", "m/a"}, mr.requests())
	require.Len(t, resp.Attempts, 1)
	assert.Equal(t, 1, resp.Attempts[0].Retries)
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

func TestRequestFallbacksReplaceClientList(t *testing.T) {
	mr := newModelRouter(t, map[string][]http.HandlerFunc{
		"m/a":          {fromFixture(t, "F09b-model-not-supported.http")},
		"m/client":     {completion("client list")},
		"m/req:novita": {completion("request list")},
	})
	c := newWalkClient(t, mr, WithFallback(Candidate{Model: "m/client"}))
	req := chatReq("m/a", "")
	req.Fallbacks = []Candidate{{Model: "m/a", Provider: "auto"}, {Model: "m/req", Provider: "novita"}, {Model: "m/req", Provider: "novita"}}
	resp, err := c.Chat(t.Context(), req)
	require.NoError(t, err)
	assert.Equal(t, "request list", resp.Text())
	assert.Equal(t, []string{"m/a", "m/req:novita"}, mr.requests(), "duplicates dropped, client list not used")

	// An empty, non-nil list means no fallback at all.
	req.Fallbacks = []Candidate{}
	_, err = c.Chat(t.Context(), req)
	require.ErrorIs(t, err, ErrModelNotSupported)
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

func TestTokenChainRetriesWithSecondToken(t *testing.T) {
	const oauthTok = "hf_oauth_UserTokenWithoutInferenceScope0123"
	clearTokenEnv(t)
	t.Setenv("HF_TOKEN", testToken)
	scoped := func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer "+oauthTok {
			fromFixture(t, "F01-missing-scope.http")(w, r)
			return
		}
		completion("answered with HF_TOKEN")(w, r)
	}
	mr := newModelRouter(t, map[string][]http.HandlerFunc{"m/a": {scoped}, "m/b": {scoped}})
	var logs bytes.Buffer
	chain := ChainTokens(OAuthToken(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: oauthTok})), EnvToken())
	c, err := NewClient(WithBaseURL(mr.srv.URL), WithTokenSource(chain),
		WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), WithFallback(Candidate{Model: "m/b"}))
	require.NoError(t, err)

	resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "answered with HF_TOKEN", resp.Text())
	assert.Equal(t, []string{"m/a", "m/a"}, mr.requests(), "same candidate, next token")
	assert.Equal(t, []string{oauthTok, testToken}, mr.tokens())
	require.Len(t, resp.Attempts, 2)
	assert.Equal(t, "oauth", resp.Attempts[0].TokenSource)
	assert.Equal(t, ErrMissingScope, resp.Attempts[0].Kind())
	assert.Equal(t, "HF_TOKEN", resp.Attempts[1].TokenSource)
	assert.Contains(t, logs.String(), `level=WARN msg="inference: OAuth token from oauth lacks the inference-api scope; using HF_TOKEN"`)
	assert.NotContains(t, logs.String(), oauthTok[9:])

	// The refused source is skipped by the next call during its cooldown.
	_, err = c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, []string{oauthTok, testToken, testToken}, mr.tokens())
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

func TestFallbackErrorAccount(t *testing.T) {
	mr := newModelRouter(t, map[string][]http.HandlerFunc{
		"ardent-figment/gated-model": {fromFixture(t, "F02-gated-403.http")},
		"m/b:together":               {fromFixture(t, "F05-provider-502.http")},
		"m/c:groq":                   {fromFixture(t, "F07-rate-limit-groq.http")},
	})
	c := newWalkClient(t, mr, WithRetry(RetryPolicy{}),
		WithFallback(Candidate{Model: "m/b", Provider: "together"}, Candidate{Model: "m/c", Provider: "groq"}))
	_, err := c.Chat(t.Context(), chatReq("ardent-figment/gated-model", ""))
	require.Error(t, err)
	for _, k := range []error{ErrGatedModel, ErrProvider, ErrRateLimited} {
		assert.ErrorIs(t, err, k)
	}
	assert.NotErrorIs(t, err, ErrPaymentRequired)
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, ErrGatedModel, apiErr.Kind, "As finds the first attempt's error")

	text := err.Error()
	for _, want := range []string{
		"no candidate answered after 3 attempts",
		"1) ardent-figment/gated-model (token from static): the model is gated, HTTP 403, Access to model",
		"request id ViT1Bf7O_026LGSQuVqfa",
		"2) m/b:together (token from static): the provider failed, HTTP 502, Upstream service unavailable",
		"3) m/c:groq (token from static): rate limited, HTTP 429, Rate limit reached",
		"Last failure: Wait 1s before retrying",
	} {
		assert.Contains(t, text, want)
	}
	assert.NotContains(t, text, "\n")
	assert.Less(t, len(text), 4<<10)
}

func TestCustomFallbackPolicy(t *testing.T) {
	mr := newModelRouter(t, map[string][]http.HandlerFunc{"m/a": {fromFixture(t, "F06-credits-depleted.http")}, "m/b": {completion("b")}})
	var seen []error
	c := newWalkClient(t, mr, WithFallback(Candidate{Model: "m/b"}), WithFallbackPolicy(func(err error) Decision {
		seen = append(seen, err)
		return NextCandidate // this app pays per provider: move on even on 402
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
		{&APIError{Kind: ErrGatedModel}, NextCandidate},
		{&APIError{Kind: ErrModelNotFound}, NextCandidate},
		{&APIError{Kind: ErrModelNotSupported}, NextCandidate},
		{&APIError{Kind: ErrProvider}, NextCandidate},
		{&APIError{Kind: ErrRateLimited}, NextCandidate},
		{&APIError{Kind: ErrInvalidRequest, StatusCode: 422}, NextCandidate},
		{&APIError{Kind: ErrInvalidRequest, StatusCode: 400, FromProvider: true}, NextCandidate},
		{&APIError{Kind: ErrInvalidRequest, StatusCode: 400}, Stop},
		{&APIError{Kind: ErrUnauthorized}, NextToken},
		{&APIError{Kind: ErrMissingScope}, NextToken},
		{&APIError{Kind: ErrPaymentRequired}, Stop},
		{ErrNoToken, Stop},
		{ErrInvalidToken, Stop},
		{errors.New("something else"), Stop},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, DefaultFallbackPolicy(tt.err), "%v", tt.err)
	}
	assert.Equal(t, "next token source", NextToken.String())
	assert.Equal(t, "stop", Stop.String())
	assert.Equal(t, "next candidate", NextCandidate.String())
	assert.Equal(t, "Decision(9)", Decision(9).String())
}

func TestMemoryCooldown(t *testing.T) {
	m := newMemoryCooldown()
	now := time.Now()
	assert.True(t, m.Until("a", now).IsZero())
	m.CoolDown("a", now.Add(time.Minute))
	m.CoolDown("a", now.Add(time.Second)) // an earlier end does not shorten it
	assert.Equal(t, now.Add(time.Minute), m.Until("a", now))
	assert.True(t, m.Until("a", now.Add(2*time.Minute)).IsZero(), "expired")

	for i := 0; i < sweepAt; i++ {
		m.CoolDown(fmt.Sprintf("old-%d", i), now.Add(-time.Second))
	}
	m.CoolDown("b", now.Add(time.Minute))
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
