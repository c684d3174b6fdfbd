package inference_test

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// These tests drive the fallback walk through the public API and the
// project's own fake router, as a user's tests would.

func chatReq(model, provider string) inference.ChatRequest {
	return inference.ChatRequest{Model: model, Provider: provider, Messages: []inference.Message{inference.UserMessage("hi")}}
}

func newRouter(t *testing.T) *inferencetest.Router {
	r := inferencetest.NewRouter()
	t.Cleanup(r.Close)
	return r
}

func TestWalkGatedThenRetriedProviderThenServed(t *testing.T) {
	r := newRouter(t)
	r.On("ardent-figment/gated-model", inferencetest.Gated())
	r.On("meta-llama/Llama-3.3-70B:hyperbolic", inferencetest.ProviderError(502))
	r.On("Qwen/Qwen3-8B:together", inferencetest.Reply("served by the third"))
	var logs bytes.Buffer
	c, err := r.Client(
		inference.WithRetry(inference.RetryPolicy{MaxRetries: 1, MinWait: time.Millisecond, MaxWait: 5 * time.Millisecond}),
		inference.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
		inference.WithFallback(inference.Candidate{Model: "meta-llama/Llama-3.3-70B", Provider: "hyperbolic"}, inference.Candidate{Model: "Qwen/Qwen3-8B", Provider: "together"}))
	require.NoError(t, err)

	resp, err := c.Chat(t.Context(), chatReq("ardent-figment/gated-model", ""))
	require.NoError(t, err)
	assert.Equal(t, "served by the third", resp.Text())
	assert.Equal(t, []string{
		"ardent-figment/gated-model",
		"meta-llama/Llama-3.3-70B:hyperbolic", "meta-llama/Llama-3.3-70B:hyperbolic", // one retry, then left
		"Qwen/Qwen3-8B:together",
	}, r.Models())

	require.Len(t, resp.Attempts, 3)
	a := resp.Attempts
	assert.Equal(t, inference.ErrGatedModel, a[0].Kind())
	assert.Equal(t, 403, a[0].StatusCode)
	assert.Equal(t, "ViT1Bf7O_026LGSQuVqfa", a[0].RequestID)
	assert.Equal(t, inference.ErrProvider, a[1].Kind())
	assert.Equal(t, 1, a[1].Retries)
	assert.Equal(t, 502, a[1].StatusCode)
	assert.NoError(t, a[2].Err)
	assert.Equal(t, inference.Candidate{Model: "Qwen/Qwen3-8B", Provider: "together"}, a[2].Candidate)

	out := logs.String()
	assert.Contains(t, out, `msg="inference: trying the next candidate" from=ardent-figment/gated-model to=meta-llama/Llama-3.3-70B:hyperbolic reason="the model is gated" status=403`)
	assert.Contains(t, out, `from=meta-llama/Llama-3.3-70B:hyperbolic to=Qwen/Qwen3-8B:together reason="the provider failed" status=502`)
}

func TestWalkStopKindsSendNothingMore(t *testing.T) {
	tests := []struct {
		name    string
		primary inferencetest.Answer
		kind    error
	}{
		{"payment required", inferencetest.PaymentRequired(), inference.ErrPaymentRequired},
		{"router 400", inferencetest.ModelNotFound(), inference.ErrModelNotFound},
		{"unauthorized, one token", inferencetest.InvalidToken(), inference.ErrUnauthorized},
		{"missing scope, one token", inferencetest.MissingScope(), inference.ErrMissingScope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRouter(t)
			r.On("m/a", tt.primary)
			r.On("m/b", inferencetest.Reply("never"))
			c, err := r.Client(inference.WithFallback(inference.Candidate{Model: "m/b"}), inference.WithFallbackPolicy(stopOnRouter400))
			require.NoError(t, err)
			_, err = c.Chat(t.Context(), chatReq("m/a", ""))
			require.ErrorIs(t, err, tt.kind)
			assert.Equal(t, []string{"m/a"}, r.Models())
			var fe *inference.FallbackError
			require.ErrorAs(t, err, &fe)
			assert.Len(t, fe.Attempts, 1)
		})
	}
}

// stopOnRouter400 is the default policy, except that a model the router
// does not know stops the walk: a policy an app may choose when its list
// holds only models it knows exist.
func stopOnRouter400(err error) inference.Decision {
	var apiErr *inference.APIError
	if errors.As(err, &apiErr) && apiErr.Kind == inference.ErrModelNotFound {
		return inference.DecisionStop
	}
	return inference.DefaultFallbackPolicy(err)
}

func TestWalkMovesOn(t *testing.T) {
	for name, answer := range map[string]inferencetest.Answer{
		"422":           inferencetest.Validation(),
		"provider 400":  inferencetest.ProviderBadRequest(),
		"not supported": inferencetest.NotSupported(),
		"not found":     inferencetest.ModelNotFound(),
		"rate limited":  inferencetest.RateLimited(time.Second),
		"gateway page":  inferencetest.GatewayTimeout(),
		"dropped":       inferencetest.Drop(),
	} {
		t.Run(name, func(t *testing.T) {
			r := newRouter(t)
			r.On("m/a", answer)
			r.On("m/b", inferencetest.Reply("second"))
			c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}), inference.WithFallback(inference.Candidate{Model: "m/b"}))
			require.NoError(t, err)
			resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
			require.NoError(t, err)
			assert.Equal(t, "second", resp.Text())
			assert.Equal(t, []string{"m/a", "m/b"}, r.Models())
		})
	}
}

func TestWalkRetryThenSuccessStaysOnCandidate(t *testing.T) {
	r := newRouter(t)
	r.On("m/a", inferencetest.ProviderError(503), inferencetest.Reply("first, after a retry"))
	r.On("m/b", inferencetest.Reply("never"))
	c, err := r.Client(inference.WithFallback(inference.Candidate{Model: "m/b"}))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "first, after a retry", resp.Text())
	assert.Equal(t, []string{"m/a", "m/a"}, r.Models())
	require.Len(t, resp.Attempts, 1)
	assert.Equal(t, 1, resp.Attempts[0].Retries)
}

func TestWalkRateLimitLongerThanMaxWaitMovesOnAtOnce(t *testing.T) {
	r := newRouter(t)
	r.On("m/a:groq", inferencetest.RateLimited(30*time.Second))
	r.On("m/a:together", inferencetest.Reply("second provider"))
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{MaxRetries: 3, MinWait: time.Millisecond, MaxWait: 5 * time.Millisecond}),
		inference.WithFallback(inference.Candidate{Model: "m/a", Provider: "together"}))
	require.NoError(t, err)
	start := time.Now()
	resp, err := c.Chat(t.Context(), chatReq("m/a", "groq"))
	require.NoError(t, err)
	assert.Less(t, time.Since(start), time.Second, "no 30 s sleep")
	assert.Equal(t, []string{"m/a:groq", "m/a:together"}, r.Models())
	assert.Equal(t, "second provider", resp.Text())

	// The next call skips groq: it is cooling for the 30 s it asked for.
	_, err = c.Chat(t.Context(), chatReq("m/a", "groq"))
	require.NoError(t, err)
	assert.Equal(t, []string{"m/a:groq", "m/a:together", "m/a:together"}, r.Models())
}

func TestRequestFallbacksReplaceClientList(t *testing.T) {
	r := newRouter(t)
	r.On("m/a", inferencetest.NotSupported())
	r.On("m/client", inferencetest.Reply("client list"))
	r.On("m/req:novita", inferencetest.Reply("request list"))
	c, err := r.Client(inference.WithFallback(inference.Candidate{Model: "m/client"}))
	require.NoError(t, err)
	req := chatReq("m/a", "")
	req.Fallbacks = []inference.Candidate{{Model: "m/a", Provider: "auto"}, {Model: "m/req", Provider: "novita"}, {Model: "m/req", Provider: "novita"}}
	resp, err := c.Chat(t.Context(), req)
	require.NoError(t, err)
	assert.Equal(t, "request list", resp.Text())
	assert.Equal(t, []string{"m/a", "m/req:novita"}, r.Models(), "duplicates dropped, client list not used")

	// An empty, non-nil list means no fallback at all.
	req.Fallbacks = []inference.Candidate{}
	_, err = c.Chat(t.Context(), req)
	require.ErrorIs(t, err, inference.ErrModelNotSupported)
}

func TestTokenChainRetriesWithSecondToken(t *testing.T) {
	const oauthTok = "hf_oauth_UserTokenWithoutInferenceScope0123"
	t.Setenv("HF_TOKEN", inferencetest.Token)
	r := newRouter(t)
	r.ForToken(oauthTok, inferencetest.MissingScope())
	r.On("m/a", inferencetest.Reply("answered with HF_TOKEN"))
	var logs bytes.Buffer
	chain := inference.ChainTokens(inference.OAuthToken(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: oauthTok})), inference.EnvToken())
	c, err := inference.NewClient(inference.WithBaseURL(r.URL()), inference.WithTokenSource(chain),
		inference.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)

	resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "answered with HF_TOKEN", resp.Text())
	reqs := r.Requests()
	require.Len(t, reqs, 2, "same candidate, next token")
	assert.Equal(t, "hf_oauth_Us…", reqs[0].TokenPrefix)
	assert.Equal(t, "hf_in…", reqs[1].TokenPrefix)
	require.Len(t, resp.Attempts, 2)
	assert.Equal(t, "oauth", resp.Attempts[0].TokenSource)
	assert.Equal(t, inference.ErrMissingScope, resp.Attempts[0].Kind())
	assert.Equal(t, "HF_TOKEN", resp.Attempts[1].TokenSource)
	assert.Contains(t, logs.String(), `level=WARN msg="inference: the client's OAuth token (oauth) lacks the inference-api scope; using the client's token (HF_TOKEN)"`)
	assert.NotContains(t, logs.String(), oauthTok[9:])

	// The refused source is skipped by the next call during its cooldown.
	_, err = c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	reqs = r.Requests()
	require.Len(t, reqs, 3)
	assert.Equal(t, "hf_in…", reqs[2].TokenPrefix)
}

func TestFallbackErrorAccount(t *testing.T) {
	r := newRouter(t)
	r.On("ardent-figment/gated-model", inferencetest.Gated())
	r.On("m/b:together", inferencetest.ProviderError(502))
	r.On("m/c:groq", inferencetest.RateLimited(time.Second))
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}),
		inference.WithFallback(inference.Candidate{Model: "m/b", Provider: "together"}, inference.Candidate{Model: "m/c", Provider: "groq"}))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), chatReq("ardent-figment/gated-model", ""))
	require.Error(t, err)
	// The call matches the kind of the failure that ended it, only; the
	// others stay readable in Attempts.
	assert.ErrorIs(t, err, inference.ErrRateLimited)
	for _, k := range []error{inference.ErrGatedModel, inference.ErrProvider, inference.ErrPaymentRequired} {
		assert.NotErrorIs(t, err, k)
	}
	var apiErr *inference.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, inference.ErrRateLimited, apiErr.Kind, "As finds the last attempt's error")
	var fe *inference.FallbackError
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Attempts, 3)
	assert.Equal(t, []error{inference.ErrGatedModel, inference.ErrProvider, inference.ErrRateLimited},
		[]error{fe.Attempts[0].Kind(), fe.Attempts[1].Kind(), fe.Attempts[2].Kind()})

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
