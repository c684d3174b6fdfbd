package main

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

func TestOAuthOffline(t *testing.T) {
	t.Setenv("HF_TOKEN", "") // restored after the test; offline sets it
	var out bytes.Buffer
	require.NoError(t, offline(t.Context(), &out))
	text := out.String()
	for _, want := range []string{
		"https://huggingface-proxy-6ci.pages.dev/oauth/authorize?client_id=your-space-client-id",
		"code_challenge_method=S256", "scope=openid+profile+inference-api",
		`level=WARN msg="inference: the call's OAuth token (oauth) lacks the inference-api scope; using the client's token (HF_TOKEN)"`,
		"Hello! I answered with the Space's HF_TOKEN.",
		"attempt 1 with the token from call's oauth: HTTP 403, inference: the token may not call Inference Providers",
		"attempt 2 with the token from HF_TOKEN: HTTP 200, served",
	} {
		assert.Contains(t, text, want)
	}
	assert.NotContains(t, text, "UserLoggedInWithoutInferenceScope")
}

// TestOAuthWebFlow logs a user in through the app against a fake Hub OAuth
// server, then chats; the user's token lacks the scope, so HF_TOKEN serves.
func TestOAuthWebFlow(t *testing.T) {
	const userToken = "hf_oauth_WebUserTokenWithoutScopeXXXXXXXX"
	var gotVerifier string
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/oauth/authorize":
			q := r.URL.Query()
			assert.Equal(t, "openid profile inference-api", q.Get("scope"))
			assert.Equal(t, "S256", q.Get("code_challenge_method"))
			http.Redirect(w, r, q.Get("redirect_uri")+"?code=abc&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
		case "/oauth/token":
			require.NoError(t, r.ParseForm())
			assert.Equal(t, "abc", r.PostForm.Get("code"))
			gotVerifier = r.PostForm.Get("code_verifier")
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"access_token":"`+userToken+`","token_type":"bearer","expires_in":28800}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer hub.Close()
	router := inferencetest.NewRouter()
	defer router.Close()
	router.ForToken(userToken, inferencetest.MissingScope())
	router.On(model, inferencetest.Reply("hi <there>"))
	t.Setenv("HF_TOKEN", inferencetest.Token)

	var logs bytes.Buffer
	appSrv := httptest.NewUnstartedServer(nil)
	cfg := inference.OAuthConfig("client-1", "secret-1", "")
	cfg.Endpoint = inference.HubOAuthEndpoint(hub.URL)
	a, err := newApp(cfg, slog.New(slog.NewTextHandler(&logs, nil)), inference.WithBaseURL(router.URL()))
	require.NoError(t, err)
	appSrv.Config.Handler = a.routes()
	appSrv.Start()
	defer appSrv.Close()
	cfg.RedirectURL = appSrv.URL + "/login/callback"

	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	browser := &http.Client{Jar: jar}
	get := func(path string) (int, string) {
		resp, err := browser.Get(appSrv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	_, body := get("/")
	assert.Contains(t, body, "Sign in with Hugging Face")
	status, body := get("/login") // follows authorize and callback back to /
	require.Equal(t, 200, status, body)
	assert.Contains(t, body, "<form")
	assert.NotEmpty(t, gotVerifier, "PKCE verifier sent")

	status, body = get("/chat?q=hello")
	require.Equal(t, 200, status, body)
	assert.Equal(t, "<p>hi &lt;there&gt;</p>", body)
	assert.Contains(t, logs.String(), "lacks the inference-api scope; using the client's token (HF_TOKEN)")
	assert.NotContains(t, logs.String(), userToken[9:])

	status, _ = get("/login/callback?state=forged&code=x")
	assert.Equal(t, http.StatusBadRequest, status)
}
