package inferencetest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// The fake Hub's OAuth server, driven as a user's own login code would
// drive it: with golang.org/x/oauth2 directly, and with the library.

func oauthConfig(r *inferencetest.Router, clientID string) *oauth2.Config {
	return &oauth2.Config{ClientID: clientID, Endpoint: oauth2.Endpoint{
		TokenURL: r.URL() + "/oauth/token", DeviceAuthURL: r.URL() + "/oauth/device", AuthStyle: oauth2.AuthStyleInParams}}
}

func TestFakeHubDeviceFlowWithOAuth2(t *testing.T) {
	r := inferencetest.NewRouter()
	defer r.Close()
	r.OnDeviceLogin(inferencetest.DeviceLogin{User: inferencetest.HubUser{Name: "alice", Orgs: []string{"acme"}},
		Polls: []inferencetest.DevicePoll{inferencetest.DevicePending, inferencetest.DeviceApprove}})
	cfg := oauthConfig(r, "my-cli")
	da, err := cfg.DeviceAuth(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "ABCD-EFGH", da.UserCode)
	assert.Equal(t, int64(1), da.Interval)
	assert.WithinDuration(t, time.Now().Add(15*time.Minute), da.Expiry, time.Minute)
	tok, err := cfg.DeviceAccessToken(t.Context(), da)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(tok.AccessToken, "hf_oauth_"))
	assert.NotEmpty(t, tok.RefreshToken)
	assert.Equal(t, "openid profile inference-api", tok.Extra("scope"))
	assert.WithinDuration(t, time.Now().Add(30*24*time.Hour), tok.Expiry, time.Minute)

	// The token is the user's, for the Hub and the router.
	c, err := r.Client(inference.WithToken(tok.AccessToken))
	require.NoError(t, err)
	who, err := c.Whoami(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "alice", who.Name)
	assert.Equal(t, []string{"acme"}, who.Orgs)
	assert.True(t, who.OAuth())

	reqs := r.OAuthRequests()
	require.Len(t, reqs, 3)
	assert.Equal(t, inferencetest.OAuthRequest{Path: "/oauth/device", ClientID: "my-cli", Status: 200, Time: reqs[0].Time}, reqs[0])
	assert.Equal(t, "authorization_pending", reqs[1].Error)
	assert.Equal(t, inferencetest.GrantDeviceCode, reqs[2].Grant)

	// A code serves once.
	_, err = cfg.DeviceAccessToken(t.Context(), &oauth2.DeviceAuthResponse{DeviceCode: da.DeviceCode, Interval: 1})
	assert.Equal(t, "invalid_grant", oauthCode(err))
}

func oauthCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return fmt.Sprint(err)
}

// TestFakeHubRenewsRotatesAndRevokes: renewing rotates the refresh token
// (the old one is retired), or keeps it with KeepRefreshTokens; a revoked
// one is invalid_grant.
func TestFakeHubRenewsRotatesAndRevokes(t *testing.T) {
	r := inferencetest.NewRouter()
	defer r.Close()
	r.AddLogin("hf_oauth_aliceAAAAAAAAAAAAAAAAAAAAAAAAAAA", "rt-1", inferencetest.HubUser{Name: "alice"})
	r.SetOAuth(inferencetest.HubOAuth{TokenLifetime: time.Hour})
	cfg := oauthConfig(r, inference.DeviceLoginClientID)
	renew := func(rt string) (*oauth2.Token, error) {
		return cfg.TokenSource(t.Context(), &oauth2.Token{RefreshToken: rt}).Token()
	}
	first, err := renew("rt-1")
	require.NoError(t, err)
	assert.NotEqual(t, "rt-1", first.RefreshToken)
	assert.WithinDuration(t, time.Now().Add(time.Hour), first.Expiry, time.Minute)
	_, err = renew("rt-1")
	assert.Equal(t, "invalid_grant", oauthCode(err), "a rotated refresh token is retired")
	second, err := renew(first.RefreshToken)
	require.NoError(t, err)
	assert.NotEqual(t, first.AccessToken, second.AccessToken)

	r.SetOAuth(inferencetest.HubOAuth{KeepRefreshTokens: true})
	for range 2 {
		kept, err := renew(second.RefreshToken)
		require.NoError(t, err)
		// oauth2 keeps the refresh token it sent when the answer has none.
		assert.Equal(t, second.RefreshToken, kept.RefreshToken)
	}
	r.RevokeLogin(second.RefreshToken)
	_, err = renew(second.RefreshToken)
	assert.Equal(t, "invalid_grant", oauthCode(err))

	c, err := r.Client(inference.WithToken(second.AccessToken))
	require.NoError(t, err)
	who, err := c.Whoami(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "alice", who.Name, "renewed tokens are the user's")
}

// TestFakeHubExchangesTrustedPublisherTokens: the token exchange, in
// huggingface_hub's JSON body or a form.
func TestFakeHubExchangesTrustedPublisherTokens(t *testing.T) {
	r := inferencetest.NewRouter()
	defer r.Close()
	r.AddTrustedPublisher("ci-id-token", "acme/model", inferencetest.HubUser{Name: "acme-ci", Role: "write"})
	exchange := func(body, contentType string) (int, map[string]any) {
		resp, err := http.Post(r.URL()+"/oauth/token", contentType, strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}
	status, out := exchange(`{"grant_type":"urn:ietf:params:oauth:grant-type:token-exchange","subject_token_type":"urn:ietf:params:oauth:token-type:id_token","subject_token":"ci-id-token","resource":"acme/model"}`, "application/json")
	require.Equal(t, 200, status, out)
	assert.Equal(t, float64(3600), out["expires_in"])
	token, _ := out["access_token"].(string)
	assert.True(t, strings.HasPrefix(token, "hf_jwt_"))
	c, err := r.Client(inference.WithToken(token))
	require.NoError(t, err)
	who, err := c.Whoami(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "acme-ci", who.Name)

	form := url.Values{"grant_type": {inferencetest.GrantTokenExchange}, "subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"},
		"subject_token": {"ci-id-token"}, "resource": {"acme/other"}}
	status, out = exchange(form.Encode(), "application/x-www-form-urlencoded")
	assert.Equal(t, 401, status)
	assert.Equal(t, "invalid_grant", out["error"])
	assert.Equal(t, inferencetest.GrantTokenExchange, r.OAuthRequests()[1].Grant)
}

func TestFakeHubOAuthErrors(t *testing.T) {
	r := inferencetest.NewRouter()
	defer r.Close()
	post := func(path string, form url.Values) (int, string, string) {
		resp, err := http.PostForm(r.URL()+path, form)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var answer struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &answer)
		return resp.StatusCode, answer.Error, resp.Header.Get("Content-Type")
	}
	for _, tc := range []struct {
		name   string
		path   string
		form   url.Values
		status int
		code   string
	}{
		{"no client_id", "/oauth/device", url.Values{}, 400, "invalid_request"},
		{"unknown grant", "/oauth/token", url.Values{"client_id": {"c"}, "grant_type": {"password"}}, 400, "unsupported_grant_type"},
		{"unknown device code", "/oauth/token", url.Values{"client_id": {"c"}, "grant_type": {inferencetest.GrantDeviceCode}, "device_code": {"nope"}}, 400, "invalid_grant"},
		{"unknown refresh token", "/oauth/token", url.Values{"client_id": {"c"}, "grant_type": {"refresh_token"}, "refresh_token": {"nope"}}, 400, "invalid_grant"},
	} {
		status, code, _ := post(tc.path, tc.form)
		assert.Equal(t, tc.status, status, tc.name)
		assert.Equal(t, tc.code, code, tc.name)
	}

	r.SetOAuth(inferencetest.HubOAuth{ClientID: "only-me"})
	status, code, _ := post("/oauth/device", url.Values{"client_id": {"someone-else"}})
	assert.Equal(t, 401, status)
	assert.Equal(t, "invalid_client", code)
	r.SetOAuth(inferencetest.HubOAuth{})

	// Scripted polls, each answered as the Hub (or what stands in front
	// of it) would.
	r.OnDeviceLogin(inferencetest.DeviceLogin{Polls: []inferencetest.DevicePoll{inferencetest.DeviceSlowDown,
		inferencetest.DeviceServerError, inferencetest.DeviceNotOAuth, inferencetest.DeviceDenied}})
	cfg := oauthConfig(r, "c")
	da, err := cfg.DeviceAuth(t.Context())
	require.NoError(t, err)
	poll := url.Values{"client_id": {"c"}, "grant_type": {inferencetest.GrantDeviceCode}, "device_code": {da.DeviceCode}}
	for _, want := range []struct {
		status      int
		code, ctype string
	}{
		{400, "slow_down", "application/json; charset=utf-8"},
		{503, "", "text/html; charset=utf-8"},
		{200, "", "text/html; charset=utf-8"},
		{400, "access_denied", "application/json; charset=utf-8"},
		{400, "access_denied", "application/json; charset=utf-8"}, // the last answer repeats
	} {
		status, code, ctype := post("/oauth/token", poll)
		assert.Equal(t, want, struct {
			status      int
			code, ctype string
		}{status, code, ctype})
	}

	// A code past its lifetime is expired_token whatever the script.
	r.OnDeviceLogin(inferencetest.DeviceLogin{CodeLifetime: time.Second, Polls: []inferencetest.DevicePoll{inferencetest.DevicePending}})
	short, err := cfg.DeviceAuth(t.Context())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return time.Now().After(short.Expiry.Add(100 * time.Millisecond)) }, 5*time.Second, 10*time.Millisecond)
	_, code, _ = post("/oauth/token", url.Values{"client_id": {"c"}, "grant_type": {inferencetest.GrantDeviceCode}, "device_code": {short.DeviceCode}})
	assert.Equal(t, "expired_token", code)

	// Faults take the next requests, one each, then the Hub answers again.
	r.FailOAuth(inferencetest.ProviderError(502), inferencetest.RateLimited(time.Second))
	status, _, _ = post("/oauth/device", url.Values{"client_id": {"c"}})
	assert.Equal(t, 502, status)
	status, _, _ = post("/oauth/device", url.Values{"client_id": {"c"}})
	assert.Equal(t, 429, status)
	status, _, _ = post("/oauth/device", url.Values{"client_id": {"c"}})
	assert.Equal(t, 200, status)
	last := r.OAuthRequests()
	assert.Equal(t, 0, last[len(last)-2].Status, "a fault's status is not known to the log")
}

// TestFakeRouterRefusesTokensWithoutInferenceScope: a token issued
// without inference-api cannot call Inference Providers, as on the Hub.
func TestFakeRouterRefusesTokensWithoutInferenceScope(t *testing.T) {
	r := inferencetest.NewRouter()
	defer r.Close()
	r.On("m/a", inferencetest.Reply("hello"))
	r.AddLogin("hf_oauth_scopelessAAAAAAAAAAAAAAAAAAAAAAA", "rt", inferencetest.HubUser{Name: "bob"}, "openid", "profile")
	renewed, err := oauthConfig(r, "c").TokenSource(t.Context(), &oauth2.Token{RefreshToken: "rt"}).Token()
	require.NoError(t, err)
	assert.Equal(t, "openid profile", renewed.Extra("scope"))
	c, err := r.Client(inference.WithToken(renewed.AccessToken))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), chat("m/a", ""))
	require.ErrorIs(t, err, inference.ErrMissingScope)
}

// ExampleRouter_OnDeviceLogin tests a command's login offline: the fake
// Hub answers one poll "pending", then approves.
func ExampleRouter_OnDeviceLogin() {
	r := inferencetest.NewRouter()
	defer r.Close()
	r.OnDeviceLogin(inferencetest.DeviceLogin{
		User:  inferencetest.HubUser{Name: "alice"},
		Polls: []inferencetest.DevicePoll{inferencetest.DevicePending, inferencetest.DeviceApprove},
	})
	login, err := inference.DeviceLogin(context.Background(), inference.DeviceLoginOptions{
		HubURL: r.URL(),
		Prompt: func(code inference.DeviceCode) error {
			fmt.Println("enter", code.UserCode)
			return nil
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("logged in as", login.User.Name, "- may call Inference Providers:", login.CanCallInference)
	// Output:
	// enter ABCD-EFGH
	// logged in as alice - may call Inference Providers: yes
}
