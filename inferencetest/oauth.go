package inferencetest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// The fake Hub's OAuth server: the device login of `hf auth login` and
// inference.DeviceLogin (POST /oauth/device, then polls of POST
// /oauth/token), the renewal of a login (grant refresh_token) and the
// token exchange of a CI's OIDC id token (RFC 8693), answering as the Hub
// does, with every error the flows know, so that login code is tested
// offline:
//
//	r := inferencetest.NewRouter()
//	r.OnDeviceLogin(inferencetest.DeviceLogin{
//		User:  inferencetest.HubUser{Name: "alice"},
//		Polls: []inferencetest.DevicePoll{inferencetest.DevicePending, inferencetest.DeviceApprove},
//	})
//	login, err := inference.DeviceLogin(ctx, inference.DeviceLoginOptions{HubURL: r.URL(), Prompt: show})

// Grant types of the Hub's token endpoint.
const (
	// GrantDeviceCode polls for a device login's token.
	GrantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"
	// GrantRefreshToken renews a login.
	GrantRefreshToken = "refresh_token"
	// GrantTokenExchange exchanges a CI's OIDC id token (Trusted
	// Publishers).
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// HubOAuth is how the fake Hub's OAuth server behaves; the zero value is
// the Hub's behaviour.
type HubOAuth struct {
	// TokenLifetime is the expires_in of every access token issued;
	// 0 means 30 days.
	TokenLifetime time.Duration
	// KeepRefreshTokens makes a renewal answer without a new refresh
	// token, the old one staying valid. By default each renewal rotates
	// it, as the Hub does: the answer carries a new one and the old one
	// is retired (renewing with it again is invalid_grant).
	KeepRefreshTokens bool
	// ClientID, when set, is the only OAuth client accepted; others get
	// 401 invalid_client.
	ClientID string
}

// DevicePoll is the fake Hub's answer to one poll of a device login.
type DevicePoll int

const (
	// DeviceApprove issues the tokens: the user authorized the login.
	DeviceApprove DevicePoll = iota
	// DevicePending is "authorization_pending": the user has not
	// answered yet.
	DevicePending
	// DeviceSlowDown is "slow_down": the client must poll 5 s less often.
	DeviceSlowDown
	// DeviceExpired is "expired_token": the code expired first.
	DeviceExpired
	// DeviceDenied is "access_denied": the user refused.
	DeviceDenied
	// DeviceServerError is a 503 gateway page: a client keeps polling.
	DeviceServerError
	// DeviceNotOAuth is a 200 HTML page (a proxy's), not an OAuth
	// answer: a client keeps polling.
	DeviceNotOAuth
)

// DeviceLogin scripts the device logins the fake Hub starts after
// OnDeviceLogin: each device code gets its own copy of the script.
type DeviceLogin struct {
	// User is who logs in: the access tokens issued answer whoami as this
	// user, with an OAuth token.
	User HubUser
	// Scopes are the scopes granted, sent as the token answer's "scope";
	// nil means openid, profile and inference-api. Without
	// inference-api, the router refuses the token (MissingScope), as the
	// real one does.
	Scopes []string
	// Polls are the answers to the code's polls in order, the last
	// repeating; nil means DeviceApprove at once. A code that was
	// approved answers invalid_grant afterwards.
	Polls []DevicePoll
	// UserCode is the code shown to the user; "" means "ABCD-EFGH".
	UserCode string
	// Interval is the polling interval asked for, in whole seconds; 0
	// means 1 (the Hub asks for 5; 1 keeps tests quick).
	Interval int
	// CodeLifetime is the device code's expires_in; 0 means 15 minutes.
	// A poll after it is expired_token.
	CodeLifetime time.Duration
	// NoRefreshToken issues the access token alone.
	NoRefreshToken bool
}

// OAuthRequest is one request to the fake Hub's /oauth/device or
// /oauth/token, for assertions; it holds no token.
type OAuthRequest struct {
	// Path is "/oauth/device" or "/oauth/token".
	Path string
	// Grant is the grant_type of a token request (GrantDeviceCode,
	// GrantRefreshToken, GrantTokenExchange), "" for /oauth/device.
	Grant string
	// ClientID is the client_id sent.
	ClientID string
	// Status is the HTTP status answered.
	Status int
	// Error is the OAuth error answered ("authorization_pending",
	// "invalid_grant", ...), "" for a success or a non-OAuth answer.
	Error string
	// Time is when the request arrived.
	Time time.Time
}

// oauthServer is the OAuth state of a fake Hub.
type oauthServer struct {
	mu       sync.Mutex
	settings HubOAuth
	script   *DeviceLogin
	codes    map[string]*deviceCode
	// grants maps a live refresh token to its login.
	grants    map[string]*grant
	publisher map[[2]string]HubUser
	faults    []Answer
	requests  []OAuthRequest
	// scopeless are the access tokens issued without inference-api,
	// which the router refuses as the real one does.
	scopeless map[string]bool
}

// lacksInference reports an access token issued without the
// inference-api scope.
func (o *oauthServer) lacksInference(token string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.scopeless[token]
}

type deviceCode struct {
	login   DeviceLogin
	expires time.Time
	polls   int
	done    bool
}

// grant is a login the Hub may renew.
type grant struct {
	user   HubUser
	scopes []string
}

// SetOAuth sets how the fake Hub's OAuth server behaves.
func (r *Router) SetOAuth(o HubOAuth) *Router {
	r.oauth.mu.Lock()
	defer r.oauth.mu.Unlock()
	r.oauth.settings = o
	return r
}

// OnDeviceLogin scripts the device logins started from now on.
func (r *Router) OnDeviceLogin(l DeviceLogin) *Router {
	r.oauth.mu.Lock()
	defer r.oauth.mu.Unlock()
	r.oauth.script = &l
	return r
}

// AddLogin makes the fake Hub know a login made earlier (by `hf auth
// login`, say): accessToken answers whoami as u with an OAuth token, and
// refreshToken renews it, granting scopes (nil: openid, profile and
// inference-api; without inference-api the router refuses the renewed
// tokens).
func (r *Router) AddLogin(accessToken, refreshToken string, u HubUser, scopes ...string) *Router {
	u.OAuth = true
	r.AddUser(accessToken, u)
	r.oauth.mu.Lock()
	defer r.oauth.mu.Unlock()
	if r.oauth.grants == nil {
		r.oauth.grants = map[string]*grant{}
	}
	r.oauth.grants[refreshToken] = &grant{user: u, scopes: scopes}
	return r
}

// RevokeLogin retires a refresh token, as logging out on the Hub or its
// expiry does: renewing with it is invalid_grant.
func (r *Router) RevokeLogin(refreshToken string) *Router {
	r.oauth.mu.Lock()
	defer r.oauth.mu.Unlock()
	delete(r.oauth.grants, refreshToken)
	return r
}

// AddTrustedPublisher makes the fake Hub exchange idToken (the OIDC id
// token a CI job mints) for a token scoped to resource (a repo such as
// "org/model", or a user name), as the Hub's Trusted Publishers do; the
// token answers whoami as u. A repo's token may not call Inference
// Providers (the router answers MissingScope); a user's may (a CI/CD
// identity allowed to). Other pairs get 401 invalid_grant.
func (r *Router) AddTrustedPublisher(idToken, resource string, u HubUser) *Router {
	r.oauth.mu.Lock()
	defer r.oauth.mu.Unlock()
	if r.oauth.publisher == nil {
		r.oauth.publisher = map[[2]string]HubUser{}
	}
	r.oauth.publisher[[2]string{idToken, resource}] = u
	return r
}

// FailOAuth answers the next requests to /oauth/device and /oauth/token
// with answers, one each in order (ProviderError(503), Hang(), Drop(),
// Delay(d, a), ...); then the Hub answers normally again.
func (r *Router) FailOAuth(answers ...Answer) *Router {
	r.oauth.mu.Lock()
	defer r.oauth.mu.Unlock()
	r.oauth.faults = append(r.oauth.faults, answers...)
	return r
}

// OAuthRequests returns the requests the OAuth endpoints received, in
// order.
func (r *Router) OAuthRequests() []OAuthRequest {
	r.oauth.mu.Lock()
	defer r.oauth.mu.Unlock()
	return append([]OAuthRequest(nil), r.oauth.requests...)
}

// oauthAnswer is what the OAuth server decided to send.
type oauthAnswer struct {
	status int
	body   any
	// html is a non-OAuth page, sent instead of body.
	html  string
	error string
}

func oauthError(status int, code, description string) oauthAnswer {
	return oauthAnswer{status: status, error: code, body: map[string]string{"error": code, "error_description": description}}
}

// serveOAuth answers the OAuth endpoints; it reports false for other
// paths.
func (r *Router) serveOAuth(w http.ResponseWriter, hr *http.Request) bool {
	if hr.Method != http.MethodPost || hr.URL.Path != "/oauth/device" && hr.URL.Path != "/oauth/token" {
		return false
	}
	form := readOAuthForm(hr)
	rec := OAuthRequest{Path: hr.URL.Path, ClientID: form.Get("client_id"), Time: time.Now()}
	if hr.URL.Path == "/oauth/token" {
		rec.Grant = form.Get("grant_type")
	}
	r.oauth.mu.Lock()
	var fault Answer
	if len(r.oauth.faults) > 0 {
		fault, r.oauth.faults = r.oauth.faults[0], r.oauth.faults[1:]
	}
	var a oauthAnswer
	if fault == nil {
		a = r.oauth.decide(hr.URL.Path, form, r.URL(), func(token string, u HubUser) { r.AddUser(token, u) })
		rec.Status, rec.Error = a.status, a.error
	}
	r.oauth.requests = append(r.oauth.requests, rec)
	r.oauth.mu.Unlock()

	if fault != nil {
		req := newRequest(hr, "", "", nil)
		req.HTTP = hr
		fault(w, &req)
		return true
	}
	w.Header().Set("Cache-Control", "no-store")
	if a.html != "" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.html)
		return true
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(a.status)
	_ = json.NewEncoder(w).Encode(a.body)
	return true
}

// readOAuthForm reads the request's form, or its JSON object (the token
// exchange of huggingface_hub sends JSON), as one set of values.
func readOAuthForm(hr *http.Request) url.Values {
	body, _ := io.ReadAll(io.LimitReader(hr.Body, 1<<20))
	if mt, _, _ := mime.ParseMediaType(hr.Header.Get("Content-Type")); mt == "application/json" {
		var fields map[string]any
		out := url.Values{}
		if json.Unmarshal(body, &fields) == nil {
			for k, v := range fields {
				if s, ok := v.(string); ok {
					out.Set(k, s)
				}
			}
		}
		return out
	}
	v, _ := url.ParseQuery(string(body))
	return v
}

// decide answers one OAuth request; issue registers a token's user with
// the fake Hub's whoami. It runs under o.mu.
func (o *oauthServer) decide(path string, form url.Values, hubURL string, issue func(string, HubUser)) oauthAnswer {
	client := form.Get("client_id")
	grantType := form.Get("grant_type")
	if path == "/oauth/device" || grantType != GrantTokenExchange {
		switch {
		case client == "":
			return oauthError(http.StatusBadRequest, "invalid_request", "client_id is required")
		case o.settings.ClientID != "" && client != o.settings.ClientID:
			return oauthError(http.StatusUnauthorized, "invalid_client", "unknown client")
		}
	}
	if path == "/oauth/device" {
		return o.startDevice(hubURL)
	}
	switch grantType {
	case GrantDeviceCode:
		return o.poll(form.Get("device_code"), issue)
	case GrantRefreshToken:
		return o.renew(form.Get("refresh_token"), issue)
	case GrantTokenExchange:
		return o.exchange(form, issue)
	}
	return oauthError(http.StatusBadRequest, "unsupported_grant_type", "grant_type is not supported")
}

func (o *oauthServer) startDevice(hubURL string) oauthAnswer {
	script := DeviceLogin{}
	if o.script != nil {
		script = *o.script
	}
	if script.UserCode == "" {
		script.UserCode = "ABCD-EFGH"
	}
	if script.Interval <= 0 {
		script.Interval = 1
	}
	if script.CodeLifetime <= 0 {
		script.CodeLifetime = 15 * time.Minute
	}
	code := "device_" + randomHex(16)
	if o.codes == nil {
		o.codes = map[string]*deviceCode{}
	}
	o.codes[code] = &deviceCode{login: script, expires: time.Now().Add(script.CodeLifetime)}
	return oauthAnswer{status: http.StatusOK, body: map[string]any{
		"device_code":               code,
		"user_code":                 script.UserCode,
		"verification_uri":          hubURL + "/oauth/device",
		"verification_uri_complete": hubURL + "/oauth/device?user_code=" + url.QueryEscape(script.UserCode),
		"interval":                  script.Interval,
		"expires_in":                int(script.CodeLifetime / time.Second),
	}}
}

func (o *oauthServer) poll(code string, issue func(string, HubUser)) oauthAnswer {
	dc := o.codes[code]
	switch {
	case dc == nil:
		return oauthError(http.StatusBadRequest, "invalid_grant", "unknown device code")
	case dc.done:
		return oauthError(http.StatusBadRequest, "invalid_grant", "the device code was already used")
	case time.Now().After(dc.expires):
		return oauthError(http.StatusBadRequest, "expired_token", "the device code expired")
	}
	answer := DeviceApprove
	if n := len(dc.login.Polls); n > 0 {
		answer = dc.login.Polls[min(dc.polls, n-1)]
	}
	dc.polls++
	switch answer {
	case DevicePending:
		return oauthError(http.StatusBadRequest, "authorization_pending", "the user has not authorized the device yet")
	case DeviceSlowDown:
		return oauthError(http.StatusBadRequest, "slow_down", "polling too fast")
	case DeviceExpired:
		return oauthError(http.StatusBadRequest, "expired_token", "the device code expired")
	case DeviceDenied:
		return oauthError(http.StatusBadRequest, "access_denied", "the user denied the authorization")
	case DeviceServerError:
		return oauthAnswer{status: http.StatusServiceUnavailable, html: "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"}
	case DeviceNotOAuth:
		return oauthAnswer{status: http.StatusOK, html: "<html><body>Please wait while we check your connection</body></html>"}
	}
	dc.done = true
	u := dc.login.User
	u.OAuth = true
	return o.issue(&grant{user: u, scopes: dc.login.Scopes}, !dc.login.NoRefreshToken, issue)
}

func (o *oauthServer) renew(refreshToken string, issue func(string, HubUser)) oauthAnswer {
	g := o.grants[refreshToken]
	if g == nil {
		return oauthError(http.StatusBadRequest, "invalid_grant", "the refresh token is invalid, expired or revoked")
	}
	rotate := !o.settings.KeepRefreshTokens
	if rotate {
		delete(o.grants, refreshToken)
	}
	return o.issue(g, rotate, issue)
}

// issue answers with a new access token for g and, when withRefresh, a
// new refresh token.
func (o *oauthServer) issue(g *grant, withRefresh bool, issue func(string, HubUser)) oauthAnswer {
	lifetime := o.settings.TokenLifetime
	if lifetime <= 0 {
		lifetime = 30 * 24 * time.Hour
	}
	scopes := g.scopes
	if scopes == nil {
		scopes = []string{"openid", "profile", "inference-api"}
	}
	access := "hf_oauth_" + randomHex(16)
	issue(access, g.user)
	if !slices.Contains(scopes, "inference-api") {
		if o.scopeless == nil {
			o.scopeless = map[string]bool{}
		}
		o.scopeless[access] = true
	}
	body := map[string]any{
		"access_token": access,
		"token_type":   "bearer",
		"expires_in":   int(lifetime / time.Second),
		"scope":        strings.Join(scopes, " "),
	}
	if withRefresh {
		rt := "hf_oauth_refresh_" + randomHex(16)
		if o.grants == nil {
			o.grants = map[string]*grant{}
		}
		o.grants[rt] = g
		body["refresh_token"] = rt
	}
	return oauthAnswer{status: http.StatusOK, body: body}
}

func (o *oauthServer) exchange(form url.Values, issue func(string, HubUser)) oauthAnswer {
	if form.Get("subject_token_type") != "urn:ietf:params:oauth:token-type:id_token" {
		return oauthError(http.StatusBadRequest, "invalid_request", "subject_token_type must be an id token")
	}
	u, ok := o.publisher[[2]string{form.Get("subject_token"), form.Get("resource")}]
	if !ok {
		return oauthError(http.StatusUnauthorized, "invalid_grant", "the id token is not trusted for this resource")
	}
	access := "hf_jwt_" + randomHex(16)
	issue(access, u)
	if strings.Contains(form.Get("resource"), "/") {
		if o.scopeless == nil {
			o.scopeless = map[string]bool{}
		}
		o.scopeless[access] = true
	}
	return oauthAnswer{status: http.StatusOK, body: map[string]any{
		"access_token":      access,
		"token_type":        "bearer",
		"expires_in":        3600,
		"issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
	}}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
