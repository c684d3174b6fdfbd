package inference

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClassifyFixtures(t *testing.T) {
	tests := []struct {
		fixture      string
		model        string
		provider     string
		kind         error
		status       int
		requestID    string
		wantProvider string
		retryAfter   time.Duration
		fromProvider bool
		inMessage    string
		inText       string
	}{
		{fixture: "F01-missing-scope.http", model: "Qwen/Qwen3-Next-80B-A3B-Thinking", provider: "nebius", kind: ErrMissingScope, status: 403, requestID: "Xb3kP0aQ9mZt2LcV", wantProvider: "nebius", inMessage: "sufficient permissions", inText: "inference-api"},
		{fixture: "F01b-missing-scope-openai-envelope.http", model: "m/a", kind: ErrMissingScope, status: 403, requestID: "mock-scope-1", inText: "Make calls to Inference Providers"},
		{fixture: "F01c-missing-scope-org.http", model: "m/a", provider: "auto", kind: ErrMissingScope, status: 403, requestID: "orgScope42", inMessage: "org acme-corp"},
		{fixture: "F02-gated-403.http", model: "ardent-figment/gated-model", kind: ErrGatedModel, status: 403, requestID: "ViT1Bf7O_026LGSQuVqfa", inText: "https://hub.example/ardent-figment/gated-model"},
		{fixture: "F02b-gated-401.http", model: "ardent-figment/gated-model", kind: ErrGatedModel, status: 401, requestID: "ViT1Bf7O_026LGSQuVqfb", inMessage: "Please log in"},
		{fixture: "F02c-gated-router-text.http", model: "m/gated", provider: "together", kind: ErrGatedModel, status: 403, requestID: "gatedRouter1", wantProvider: "together", inText: "https://hub.example/m/gated"},
		{fixture: "F02d-gated-text-no-header.http", model: "ardent-figment/gated-model", kind: ErrGatedModel, status: 403, requestID: "gatedText1"},
		{fixture: "F03-repo-not-found.http", model: "nobody/nothing", kind: ErrModelNotFound, status: 404, requestID: "123", inMessage: "Repository not found"},
		{fixture: "F03b-not-found-plain.http", model: "nobody/nothing", kind: ErrModelNotFound, status: 404, inMessage: "Not Found"},
		{fixture: "F04-invalid-token.http", model: "m/a", kind: ErrUnauthorized, status: 401, requestID: "TtpPGx80uP3e6pgl", inMessage: "Invalid credentials in Authorization header", inText: "settings/tokens"},
		{fixture: "F04b-resource-disabled.http", model: "m/a", kind: ErrUnauthorized, status: 403, requestID: "disabled-7", inMessage: "Access to this resource is disabled"},
		{fixture: "F04c-fine-grained-required.http", model: "m/a", kind: ErrUnauthorized, status: 403, requestID: "fgOnly-1", inText: "fine-grained"},
		{fixture: "F05-provider-502.http", model: "m/a", provider: "together", kind: ErrProvider, status: 502, wantProvider: "together", fromProvider: true, inMessage: "Upstream service unavailable"},
		{fixture: "F05b-provider-500.http", model: "m/a", kind: ErrProvider, status: 500, requestID: "hyp-500", wantProvider: "hyperbolic", fromProvider: true, inMessage: "Internal Error"},
		{fixture: "F05c-model-loading-503.http", model: "HuggingFaceH4/zephyr-7b-beta", provider: "hf-inference", kind: ErrProvider, status: 503, requestID: "loading-1", wantProvider: "hf-inference", inMessage: "currently loading"},
		{fixture: "F05d-plain-text-500.http", model: "m/a", kind: ErrProvider, status: 500, inMessage: "upstream connect error"},
		{fixture: "F06-credits-depleted.http", model: "m/a", kind: ErrPaymentRequired, status: 402, requestID: "Root=1-6839ce97-12d449495e45e4c62490dedf;18f53311-5a51-4487-a338-41bf195d401d", inText: "credits are depleted"},
		{fixture: "F06b-credits-exceeded-2025.http", model: "m/a", kind: ErrPaymentRequired, status: 402, requestID: "Root=1-6839ce97-aaaaaaaaaaaaaaaaaaaaaaaa", inMessage: "exceeded your monthly"},
		{fixture: "F07-rate-limit-groq.http", model: "meta-llama/Llama-3.3-70B-Instruct", provider: "groq", kind: ErrRateLimited, status: 429, requestID: "req_01kvh68nxjf999kg21vp9nv4gs", wantProvider: "groq", retryAfter: time.Second, fromProvider: true, inMessage: "Rate limit reached"},
		{fixture: "F07b-rate-limit-no-retry-after.http", model: "m/a", provider: "groq", kind: ErrRateLimited, status: 429, requestID: "req_01kvh68nxjf999kg21vp9nv4gt", wantProvider: "groq", fromProvider: true},
		{fixture: "F07c-hub-rate-limit.http", model: "m/a", kind: ErrRateLimited, status: 429, requestID: "hubRL-1", retryAfter: 55 * time.Second, inText: "Wait 55s"},
		{fixture: "F07d-rate-limit-ms.http", model: "m/a", kind: ErrRateLimited, status: 429, requestID: "rlms-1", retryAfter: 1500 * time.Millisecond},
		{fixture: "F07e-rate-limit-misleading-body.http", model: "m/a", kind: ErrRateLimited, status: 429, requestID: "rl-odd"},
		{fixture: "F08-validation-422.http", model: "m/a", kind: ErrContextLength, status: 422, inMessage: "Input validation error", inText: "Shorten the conversation"},
		{fixture: "F08b-fastapi-detail-422.http", model: "m/a", kind: ErrInvalidRequest, status: 422, wantProvider: "featherless-ai", fromProvider: true, inMessage: "field required"},
		{fixture: "F09-model-not-found.http", model: "nobody/bad-model", kind: ErrModelNotFound, status: 400, requestID: "fohf8hz3jMMmVCP8", inMessage: "does not exist"},
		{fixture: "F09b-model-not-supported.http", model: "HuggingFaceH4/zephyr-7b-beta", kind: ErrModelNotSupported, status: 400, requestID: "notSupp-1", inMessage: "not supported by any provider"},
		{fixture: "F09c-not-supported-by-provider.http", model: "m/a", provider: "hf-inference", kind: ErrModelNotSupported, status: 400, wantProvider: "hf-inference"},
		{fixture: "F09d-provider-native-400.http", model: "m/a", provider: "novita", kind: ErrInvalidRequest, status: 400, requestID: "2cc3c5e741689ba673540eef4722106e", wantProvider: "novita", fromProvider: true, inMessage: "vision not support"},
		{fixture: "F09e-deprecated-410.http", model: "m/a", provider: "cerebras", kind: ErrModelNotSupported, status: 410, requestID: "gone-1", wantProvider: "cerebras"},
		{fixture: "F09f-router-400-plain.http", model: "m/a", kind: ErrInvalidRequest, status: 400, requestID: "bad-1"},
		{fixture: "F14-context-length-exceeded.http", model: "m/a", provider: "together", kind: ErrContextLength, status: 400, wantProvider: "together", fromProvider: true, inMessage: "maximum context length", inText: "ErrContextLength"},
		{fixture: "F14b-vllm-prompt-too-long.http", model: "m/a", provider: "nebius", kind: ErrContextLength, status: 400, wantProvider: "nebius", fromProvider: true, inMessage: "longer than the maximum model length"},
		{fixture: "F15-content-policy.http", model: "m/a", provider: "together", kind: ErrInvalidRequest, status: 400, wantProvider: "together", fromProvider: true, inMessage: "safety system"},
		{fixture: "F10-html-gateway-504.http", model: "m/a", kind: ErrProvider, status: 504, requestID: "4s1eHdlzCZ-srTxUzxwoVRp6n3FItjfsWZgw7jqnOAy-wBm8Fdc8hQ=="},
		{fixture: "F10b-html-unlabelled-502.http", model: "m/a", kind: ErrProvider, status: 502},
		{fixture: "F11-hub-errors-array.http", model: "m/a", kind: ErrInvalidRequest, status: 400, requestID: "hubErr-1", inMessage: "Invalid expand parameter"},
		{fixture: "F12-oauth-invalid-grant.http", model: "m/a", kind: ErrInvalidRequest, status: 400, inMessage: "refresh token is invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			rt := newRouter(t, fromFixture(t, tt.fixture))
			c := newTestClient(t, rt)
			_, err := c.Chat(t.Context(), chatReq(tt.model, tt.provider))
			require.Error(t, err)

			assert.Equal(t, []error{tt.kind}, kindsMatched(err), "exactly one kind")
			var apiErr *APIError
			require.True(t, errors.As(err, &apiErr))
			assert.Equal(t, tt.status, apiErr.StatusCode)
			assert.Equal(t, tt.requestID, apiErr.RequestID)
			assert.Equal(t, tt.wantProvider, apiErr.Provider)
			assert.Equal(t, tt.model, apiErr.Model)
			assert.Equal(t, tt.retryAfter, apiErr.RetryAfter)
			assert.Equal(t, tt.fromProvider, apiErr.FromProvider)
			assert.Contains(t, apiErr.Message, tt.inMessage)

			text := err.Error()
			assert.Contains(t, text, tt.inText)
			assert.True(t, strings.HasPrefix(text, "inference: "), text)
			if tt.requestID != "" {
				assert.Contains(t, text, "(request id "+tt.requestID+")")
			}
			assert.NotContains(t, strings.ToLower(text), "<html", "HTML is never shown")
			assert.NotContains(t, text, "secret()")
			assert.Less(t, len(text), 16<<10)
			assert.Len(t, rt.reqs(), 1, "one request, no retry")
		})
	}
}

func TestErrorTextNamesTheFix(t *testing.T) {
	tests := []struct {
		kind error
		want []string
	}{
		{ErrMissingScope, []string{`"inference-api"`, `"Make calls to Inference Providers"`, "inference.serverless.write"}},
		{ErrGatedModel, []string{"https://hub.example/org/model"}},
		{ErrPaymentRequired, []string{"credits are depleted"}},
		{ErrModelNotSupported, []string{`"auto"`, "/settings/inference-providers"}},
		{ErrModelNotFound, []string{"Check the model id"}},
		{ErrRateLimited, []string{"Slow down"}},
		{ErrProvider, []string{"another provider"}},
		{ErrInvalidRequest, []string{"parameters"}},
		{ErrUnauthorized, []string{"invalid or expired"}},
		{ErrContextLength, []string{"Shorten the conversation", "errors.Is(err, ErrContextLength)"}},
	}
	for _, tt := range tests {
		t.Run(tt.kind.Error(), func(t *testing.T) {
			e := &APIError{Kind: tt.kind, StatusCode: 400, Model: "org/model", hubURL: "https://hub.example"}
			for _, w := range tt.want {
				assert.Contains(t, e.Error(), w)
			}
		})
	}
	assert.Contains(t, ErrNoToken.Error(), "HF_TOKEN")
	assert.Contains(t, ErrNoToken.Error(), "hf auth login")
}

func TestAPIErrorFormsAndUnwrap(t *testing.T) {
	cause := errors.New("dial tcp: connection refused")
	e := &APIError{Kind: ErrProvider, Model: "m/a", Cause: cause}
	assert.ErrorIs(t, e, cause)
	assert.ErrorIs(t, e, ErrProvider)
	assert.NotErrorIs(t, e, ErrRateLimited)
	assert.Contains(t, e.Error(), "no response")
	assert.Contains(t, e.Error(), "model m/a")
	var nilKind APIError
	assert.Equal(t, "inference: request failed (no response)", nilKind.Error())
	assert.False(t, nilKind.Is(nil))
	wrapped := fmt.Errorf("outer: %w", e)
	var got *APIError
	require.ErrorAs(t, wrapped, &got)
	assert.Same(t, e, got)
}

func TestRetryAfterForms(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"seconds", h("Retry-After", "30"), 30 * time.Second},
		{"fractional seconds", h("Retry-After", "0.5"), 500 * time.Millisecond},
		{"http date", h("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat)), 90 * time.Second},
		{"past date", h("Retry-After", now.Add(-time.Minute).Format(http.TimeFormat)), 0},
		{"ms wins", h("Retry-After-Ms", "250", "Retry-After", "9"), 250 * time.Millisecond},
		{"bad ms falls back", h("Retry-After-Ms", "soon", "Retry-After", "3"), 3 * time.Second},
		{"negative", h("Retry-After", "-4"), 0},
		{"garbage", h("Retry-After", "tomorrow"), 0},
		{"hub ratelimit exhausted", h("RateLimit", `"api";r=0;t=55`), 55 * time.Second},
		{"hub ratelimit remaining", h("RateLimit", `"api";r=12;t=55`), 0},
		{"none", h(), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, retryAfter(tt.header, now))
		})
	}
}

func TestCleanText(t *testing.T) {
	assert.Equal(t, "a b [31mc", cleanText("a\n\tb \x1b[31mc", 100), "ESC removed")
	assert.Equal(t, "", cleanText("", 10))
	got := cleanText(strings.Repeat("é", 100), 11)
	assert.Equal(t, strings.Repeat("é", 5)+"…", got)
	assert.Equal(t, "\uFFFDx", cleanText("\xffx", 10))
	assert.Equal(t, "together gnirts", cleanText("together\u202egnirts\u2069", 64), "bidirectional controls removed")
}

func TestAPIErrorFixIsTheHintAlone(t *testing.T) {
	for _, name := range []string{"F02-gated-403.http", "F01-missing-scope.http", "F05-provider-502.http"} {
		rt := newRouter(t, fromFixture(t, name))
		c := newTestClient(t, rt, WithRetry(RetryPolicy{}))
		_, err := c.Chat(t.Context(), chatReq("m/a", ""))
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr, name)
		fix := apiErr.Fix()
		require.NotEmpty(t, fix, name)
		assert.Contains(t, apiErr.Error(), ". "+fix, name)
		assert.NotContains(t, fix, "HTTP", name)
	}
}
