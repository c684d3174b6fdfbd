package inference_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// These tests exchange a CI's OIDC id token (Trusted Publishers) on the
// fake Hub, whose router refuses a repo's token (it may not call
// Inference Providers) and takes a user's.

const ciModel = "m/a"

// oidcEnv is a CI job's environment: HF_OIDC_RESOURCE, HF_OIDC_ID_TOKEN
// and HF_TOKEN as given ("" unsets), no token file.
func oidcEnv(t *testing.T, resource, idToken, hfToken string) *inferencetest.Router {
	t.Helper()
	noTokenEnv(t)
	for k, v := range map[string]string{"HF_OIDC_RESOURCE": resource, "HF_OIDC_ID_TOKEN": idToken, "HF_TOKEN": hfToken,
		"GITHUB_ACTIONS": "", "ACTIONS_ID_TOKEN_REQUEST_URL": "", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": ""} {
		t.Setenv(k, v)
	}
	r := inferencetest.NewRouter()
	t.Cleanup(r.Close)
	r.On(ciModel, inferencetest.Reply("ok"))
	return r
}

func exchanges(r *inferencetest.Router) int {
	n := 0
	for _, q := range r.OAuthRequests() {
		if q.Grant == inferencetest.GrantTokenExchange {
			n++
		}
	}
	return n
}

// TestOIDCTokenComesFirstInTheDefaultSource: with HF_OIDC_RESOURCE set, a
// client given no token option exchanges the CI's id token on its Hub and
// calls with it, before HF_TOKEN; the token is kept while it is good.
func TestOIDCTokenComesFirstInTheDefaultSource(t *testing.T) {
	r := oidcEnv(t, "alice", "ci-id-token", inferencetest.Token)
	r.AddTrustedPublisher("ci-id-token", "alice", inferencetest.HubUser{Name: "alice"})
	c, err := inference.NewClient(inference.WithBaseURL(r.URL()), inference.WithHubURL(r.URL()))
	require.NoError(t, err)
	assert.Contains(t, c.String(), "tokens: ChainTokens(OIDCToken, EnvToken)")
	for range 3 {
		resp, err := c.Chat(t.Context(), chatReq(ciModel, ""))
		require.NoError(t, err)
		assert.Equal(t, "OIDC alice", resp.Attempts[0].TokenSource)
	}
	assert.Equal(t, "hf_jw…", r.Requests()[0].TokenPrefix, "the exchanged token (hf_jwt_...) is sent")
	assert.Equal(t, 1, exchanges(r), "the exchanged token is kept")
	who, err := c.Whoami(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "alice", who.Name)

	// Without HF_OIDC_RESOURCE, the default is EnvToken alone.
	t.Setenv("HF_OIDC_RESOURCE", "")
	plain, err := inference.NewClient(inference.WithBaseURL(r.URL()))
	require.NoError(t, err)
	assert.Contains(t, plain.String(), "tokens: EnvToken}")
}

// TestOIDCRepoTokenRefusedWalksOnToHFToken: a repo's token may not call
// Inference Providers; the call goes on with HF_TOKEN, as a chain does.
func TestOIDCRepoTokenRefusedWalksOnToHFToken(t *testing.T) {
	r := oidcEnv(t, "acme/model", "ci-id-token", inferencetest.Token)
	r.AddTrustedPublisher("ci-id-token", "acme/model", inferencetest.HubUser{Name: "acme-ci"})
	c, err := inference.NewClient(inference.WithBaseURL(r.URL()), inference.WithHubURL(r.URL()))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq(ciModel, ""))
	require.NoError(t, err)
	require.Len(t, resp.Attempts, 2)
	assert.ErrorIs(t, resp.Attempts[0].Err, inference.ErrMissingScope)
	assert.Equal(t, "OIDC acme/model", resp.Attempts[0].TokenSource)
	assert.Equal(t, "HF_TOKEN", resp.Attempts[1].TokenSource)
}

// TestOIDCExchangeRefused: alone, a refused exchange is ErrUnauthorized
// whose fix says what to check; in the default source the chain goes on
// to HF_TOKEN with a warning, and names the failure when nothing else has
// a token.
func TestOIDCExchangeRefused(t *testing.T) {
	r := oidcEnv(t, "alice", "not-trusted", inferencetest.Token)
	src := inference.OIDCToken(inference.OIDCOptions{HubURL: r.URL()})
	_, err := src.Token(t.Context())
	require.ErrorIs(t, err, inference.ErrUnauthorized)
	var apiErr *inference.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 401, apiErr.StatusCode)
	assert.Contains(t, err.Error(), "the OIDC token exchange for alice was refused: invalid_grant")
	assert.Contains(t, apiErr.Fix(), "Check the trusted publisher of alice")
	assert.Contains(t, apiErr.Fix(), "audience must be "+r.URL())
	assert.NotContains(t, err.Error(), "not-trusted", "the id token is not shown")

	var logs bytes.Buffer
	c, err := inference.NewClient(inference.WithBaseURL(r.URL()), inference.WithHubURL(r.URL()),
		inference.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq(ciModel, ""))
	require.NoError(t, err)
	assert.Equal(t, "HF_TOKEN", resp.Attempts[0].TokenSource)
	assert.Contains(t, logs.String(), "token source skipped")
	assert.Contains(t, logs.String(), "OIDC token exchange for alice was refused")

	t.Setenv("HF_TOKEN", "")
	_, err = c.Chat(t.Context(), chatReq(ciModel, ""))
	require.ErrorIs(t, err, inference.ErrNoToken)
	assert.Contains(t, err.Error(), "OIDCToken: inference: the token was refused")
}

// TestOIDCWithoutAnIDToken: HF_OIDC_RESOURCE alone, outside GitHub
// Actions, says what is missing.
func TestOIDCWithoutAnIDToken(t *testing.T) {
	r := oidcEnv(t, "alice", "", "")
	_, err := inference.OIDCToken(inference.OIDCOptions{HubURL: r.URL()}).Token(t.Context())
	require.ErrorIs(t, err, inference.ErrNoToken)
	assert.Contains(t, err.Error(), "HF_OIDC_ID_TOKEN is unset")
	t.Setenv("HF_OIDC_RESOURCE", "")
	_, err = inference.OIDCToken(inference.OIDCOptions{}).Token(t.Context())
	require.ErrorIs(t, err, inference.ErrNoToken)
	assert.Contains(t, err.Error(), "HF_OIDC_RESOURCE is unset")
	assert.Empty(t, r.OAuthRequests())
}

// TestOIDCMintsTheIDTokenInGitHubActions: in GitHub Actions the id token
// is minted for the Hub's audience with the runtime's request token, and
// the exchanged token is exchanged again 5 minutes before it expires
// (a given HF_OIDC_ID_TOKEN's, only when it has expired).
func TestOIDCMintsTheIDTokenInGitHubActions(t *testing.T) {
	r := oidcEnv(t, "alice", "", "")
	r.AddTrustedPublisher("gh-id-token", "alice", inferencetest.HubUser{Name: "alice"})
	var minted atomic.Int32
	github := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Authorization") != "Bearer runtime-token" || req.URL.Query().Get("audience") != r.URL() ||
			req.URL.Query().Get("api-version") != "2.0" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		minted.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]string{"value": "gh-id-token"})
	}))
	t.Cleanup(github.Close)
	t.Setenv("GITHUB_ACTIONS", "true")
	t.Setenv("ACTIONS_ID_TOKEN_REQUEST_URL", github.URL+"/token?api-version=2.0")
	t.Setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "runtime-token")

	src := inference.OIDCToken(inference.OIDCOptions{HubURL: r.URL()})
	now := newClock(time.Now())
	inference.SetLoginClock(src, now.now)
	tok, err := src.Token(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "hf_jw…", tok.Redacted())
	assert.Equal(t, "OIDC alice", tok.Source)
	now.add(54 * time.Minute)
	_, err = src.Token(t.Context())
	require.NoError(t, err)
	assert.Equal(t, int32(1), minted.Load())
	assert.Equal(t, 1, exchanges(r))
	now.add(time.Minute + time.Second) // 5 minutes before the hour
	_, err = src.Token(t.Context())
	require.NoError(t, err)
	assert.Equal(t, int32(2), minted.Load())
	assert.Equal(t, 2, exchanges(r))

	given := inference.OIDCToken(inference.OIDCOptions{HubURL: r.URL(), IDToken: "gh-id-token"})
	inference.SetLoginClock(given, now.now)
	_, err = given.Token(t.Context())
	require.NoError(t, err)
	now.add(59 * time.Minute)
	_, err = given.Token(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 3, exchanges(r), "a given id token's exchange is kept for its hour")
	now.add(time.Minute)
	_, err = given.Token(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 4, exchanges(r))

	t.Setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")
	_, err = inference.OIDCToken(inference.OIDCOptions{HubURL: r.URL()}).Token(t.Context())
	require.ErrorIs(t, err, inference.ErrNoToken)
	assert.Contains(t, err.Error(), "id-token: write")
}

// TestOIDCErrorsHideTheIDToken: a Hub that quotes the id token in its
// refusal has it removed.
func TestOIDCErrorsHideTheIDToken(t *testing.T) {
	r := oidcEnv(t, "alice", "eyJhbGciOiJSUzI1NiJ9.secret-claims.signature", "")
	r.FailOAuth(inferencetest.Raw(400, http.Header{"Content-Type": {"application/json"}},
		`{"error":"invalid_grant","error_description":"untrusted eyJhbGciOiJSUzI1NiJ9.secret-claims.signature"}`))
	_, err := inference.OIDCToken(inference.OIDCOptions{HubURL: r.URL()}).Token(t.Context())
	require.ErrorIs(t, err, inference.ErrUnauthorized)
	assert.Contains(t, err.Error(), "untrusted [redacted]")
	assert.NotContains(t, err.Error(), "secret-claims")
}

// TestOIDCExchangeFailureIsNeverSilent: huggingface_hub raises when the
// exchange fails, so that a job never runs as another identity unawares;
// the default source goes on to HF_TOKEN instead, and the README promises
// a warning for it. A client given no logger warns on slog.Default(), as
// for a login that cannot be renewed, once however many calls fall back.
func TestOIDCExchangeFailureIsNeverSilent(t *testing.T) {
	r := oidcEnv(t, "alice", "not-trusted", inferencetest.Token)
	logs := &syncBuffer{}
	previous := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, nil)))
	t.Cleanup(func() { slog.SetDefault(previous) })

	c, err := inference.NewClient(inference.WithBaseURL(r.URL()), inference.WithHubURL(r.URL()))
	require.NoError(t, err)
	for range 3 {
		resp, err := c.Chat(t.Context(), chatReq(ciModel, ""))
		require.NoError(t, err)
		assert.Equal(t, "HF_TOKEN", resp.Attempts[0].TokenSource)
	}
	warned := 0
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "OIDC token exchange for alice was refused") {
			warned++
			assert.Contains(t, line, "HF_OIDC_RESOURCE", "the warning says how to stop it")
			assert.NotContains(t, line, "not-trusted", "the id token is not shown")
		}
	}
	assert.Equal(t, 1, warned, "one warning, not one per call: %s", logs.String())
}
