package inference

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hfkit/inference/internal/redact"
	"golang.org/x/oauth2"
)

// A browser login (`hf auth login`, or [DeviceLogin]) gives an OAuth
// access token that expires, and a refresh token that renews it. This
// file keeps such a login fresh the way huggingface_hub does
// (utils/_auth.py): renew it when less than loginRefreshMargin remains,
// look again at most every loginRecheck otherwise, renew it once at a time
// in the process and, for a stored login, under the cross-process lock
// after reading the files again (another process may have renewed it),
// keep the old refresh token when the Hub sends no new one, and write both
// files back in huggingface_hub's format. A renewal that fails is warned
// about once; the current token is used while it is valid, then the source
// fails with ErrUnauthorized, whose fix says how to log in again.

// DeviceLoginClientID is the public OAuth client of huggingface_hub's
// browser login (`hf auth login`), which [DeviceLogin] uses and with which
// a login stored by either is renewed, unless HF_DEVICE_CODE_OAUTH_CLIENT_ID
// names another, as huggingface_hub reads it.
const DeviceLoginClientID = "26be6b09-91c5-47da-9861-d2d2bb7a7e36"

// huggingface_hub's renewal policy.
const (
	// loginRefreshMargin: renew when less than a day of validity remains.
	loginRefreshMargin = 24 * time.Hour
	// loginRecheck: look again at most this often when there is nothing
	// to renew yet, after a failed renewal, and after a renewal whose
	// token lives less than the margin (else it would be renewed on every
	// call).
	loginRecheck = 5 * time.Minute
	// loginHTTPTimeout bounds one request to the Hub's OAuth endpoints:
	// a renewal runs on a call's path.
	loginHTTPTimeout = 30 * time.Second
	// renewalBudget bounds a renewal that goes on after its caller left:
	// the wait for the cross-process lock, then the Hub's answer.
	renewalBudget = lockTimeout + loginHTTPTimeout
)

// loginRecord is one login: its name in stored_tokens (when stored), its
// access token, and for a browser login its refresh token and expiry.
type loginRecord struct {
	name    string
	access  string
	refresh string
	expires time.Time
}

// renewable reports whether the login carries what a renewal needs; a
// token without it (an access token pasted into `hf auth login`) is used
// as it is.
func (r loginRecord) renewable() bool { return r.refresh != "" && !r.expires.IsZero() }

// hubOAuth is the Hub that renews a login, the OAuth client it was made
// with, the HTTP client that asks, and the logger that hears a failure.
// Empty fields take their defaults when used.
type hubOAuth struct {
	hub      string
	clientID string
	http     *http.Client
	logger   *slog.Logger
}

// hubURL is the Hub given, else HF_ENDPOINT, else https://huggingface-proxy-6ci.pages.dev, as
// huggingface_hub's ENDPOINT.
func (h hubOAuth) hubURL() string {
	hub := h.hub
	if hub == "" {
		hub = strings.TrimSpace(os.Getenv("HF_ENDPOINT"))
	}
	if hub == "" {
		hub = defaultHubURL
	}
	return strings.TrimRight(hub, "/")
}

// client is the OAuth client id given, else HF_DEVICE_CODE_OAUTH_CLIENT_ID,
// else huggingface_hub's.
func (h hubOAuth) client() string {
	if h.clientID != "" {
		return h.clientID
	}
	if id := strings.TrimSpace(os.Getenv("HF_DEVICE_CODE_OAUTH_CLIENT_ID")); id != "" {
		return id
	}
	return DeviceLoginClientID
}

// config is the oauth2 configuration of the Hub's device flow and token
// endpoint for a public client: client_id goes in the form, as
// huggingface_hub sends it, and no secret.
func (h hubOAuth) config(scopes []string) *oauth2.Config {
	hub := h.hubURL()
	return &oauth2.Config{
		ClientID: h.client(),
		Scopes:   scopes,
		Endpoint: oauth2.Endpoint{
			TokenURL:      hub + "/oauth/token",
			DeviceAuthURL: hub + "/oauth/device",
			AuthStyle:     oauth2.AuthStyleInParams,
		},
	}
}

// httpClient is the client given, else one whose requests end after
// loginHTTPTimeout. Either way it follows no redirect to another origin:
// a 307 or 308 sends a request's form again where it points, with the
// refresh token, the device code or the id token it carries.
func (h hubOAuth) httpClient() *http.Client {
	c := &http.Client{Timeout: loginHTTPTimeout}
	if h.http != nil {
		copied := *h.http
		c = &copied
	}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if to, from := origin(req.URL), origin(via[0].URL); to != from {
			return fmt.Errorf("%s redirected to another origin (%s): nothing is sent there", from, to)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return c
}

// oauthContext hands oauth2 the HTTP client, the only way it takes one.
func (h hubOAuth) oauthContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, h.httpClient())
}

func (h hubOAuth) log() *slog.Logger {
	if h.logger != nil {
		return h.logger
	}
	return slog.Default()
}

// renew exchanges a refresh token for a new access token (grant
// refresh_token, through oauth2). The Hub may rotate the refresh token;
// when it sends none, the old one stays. The expiry is now plus the
// answer's expires_in, none when it has none. An access token that cannot
// be a token fails the renewal: saved, it would replace a working login
// in the files.
func (h hubOAuth) renew(ctx context.Context, refreshToken string, now time.Time) (loginRecord, error) {
	ot, err := h.config(nil).TokenSource(h.oauthContext(ctx), &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		return loginRecord{}, err
	}
	rec := tokenRecord(ot, refreshToken, now)
	if rec.access, err = normalizeToken(rec.access); err != nil {
		return loginRecord{}, fmt.Errorf("the Hub's answer holds no valid access token: %v", err)
	}
	return rec, nil
}

// tokenRecord reads an OAuth token answer as a login.
func tokenRecord(ot *oauth2.Token, oldRefresh string, now time.Time) loginRecord {
	rec := loginRecord{access: ot.AccessToken, refresh: ot.RefreshToken}
	if rec.refresh == "" {
		rec.refresh = oldRefresh
	}
	if secs, ok := expiresIn(ot); ok {
		rec.expires = time.Unix(now.Unix()+secs, 0)
	} else if !ot.Expiry.IsZero() {
		rec.expires = ot.Expiry.Truncate(time.Second)
	}
	return rec
}

// expiresIn is the answer's expires_in in whole seconds, as Python's int().
func expiresIn(ot *oauth2.Token) (int64, bool) {
	switch v := ot.Extra("expires_in").(type) {
	case float64:
		if v >= 0 && v < math.MaxInt32 {
			return int64(v), true
		}
	case string:
		var n int64
		if _, err := fmt.Sscan(v, &n); err == nil && n >= 0 {
			return n, true
		}
	}
	return 0, false
}

// isInvalidGrant reports the Hub's answer for a refresh token that is
// expired or revoked: only logging in again helps.
func isInvalidGrant(err error) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == "invalid_grant"
}

// loginRefresher keeps one login fresh for one token source: what it
// served last (memo), and a slot that lets one goroutine at a time look
// at the files or the Hub.
type loginRefresher struct {
	oauth hubOAuth
	// stored says the login lives in huggingface_hub's files, which
	// `hf auth login` made (else it is a DeviceLogin's, in memory).
	stored bool
	now    func() time.Time
	slot   chan struct{}

	mu   sync.Mutex
	memo loginMemo
	// warnedRetry and warnedRelogin make each kind of failure warned
	// about once.
	warnedRetry, warnedRelogin bool

	// Seen by tests: goroutines waiting for the slot, and a call when
	// the cross-process lock is held by someone else.
	waiting    atomic.Int32
	onLockWait func()
}

func newLoginRefresher(h hubOAuth, stored bool) *loginRefresher {
	return &loginRefresher{oauth: h, stored: stored, now: time.Now, slot: make(chan struct{}, 1)}
}

// loginMemo is what a refresher decided about a login, good until
// recheckAt for the same key (the token file's token, or the login's
// name): the login to serve and, after a failed renewal, why, which the
// source returns once the token has expired.
type loginMemo struct {
	key string
	// replaced is the key of the token a renewal replaced: callers that
	// read the token file before the renewal rewrote it get the new
	// token too.
	replaced  string
	rec       loginRecord
	recheckAt time.Time
	failure   error
	// relogin marks a failure only logging in again mends
	// (invalid_grant).
	relogin bool
}

// serve is the token of m's login at now, or the failure of its renewal
// once it has expired.
func (m loginMemo) serve(now time.Time, source string) (Token, error) {
	if m.failure != nil && !now.Before(m.rec.expires) {
		return Token{}, m.failure
	}
	tok, err := NewToken(m.rec.access, source)
	if err != nil {
		return Token{}, err
	}
	tok.Expiry = m.rec.expires
	tok.OAuth = tok.OAuth || m.rec.renewable()
	return tok, nil
}

// last is the memo, good or not.
func (r *loginRefresher) last() loginMemo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.memo
}

// fresh is the memo for key while it is good.
func (r *loginRefresher) fresh(key string, now time.Time) (loginMemo, bool) {
	r.mu.Lock()
	m := r.memo
	r.mu.Unlock()
	return m, (m.key == key || m.replaced != "" && m.replaced == key) && m.rec.access != "" && now.Before(m.recheckAt)
}

// token serves the login named by key: from the memo while it is good,
// else from decide, which runs in the slot (one at a time; those waiting
// then find the memo it left). A caller waits for the slot and for decide
// only as long as its ctx; decide itself goes on when the caller leaves,
// within renewalBudget: the Hub may already have renewed the login and
// retired its refresh token, and dropping its answer would log the user
// out, in `hf` too.
func (r *loginRefresher) token(ctx context.Context, key, source string, decide func(ctx context.Context, now time.Time) (loginMemo, error)) (Token, error) {
	if m, ok := r.fresh(key, r.now()); ok {
		return m.serve(r.now(), source)
	}
	r.waiting.Add(1)
	select {
	case r.slot <- struct{}{}:
		r.waiting.Add(-1)
	case <-ctx.Done():
		r.waiting.Add(-1)
		return Token{}, ctx.Err()
	}
	now := r.now()
	if m, ok := r.fresh(key, now); ok {
		<-r.slot
		return m.serve(now, source)
	}
	type decision struct {
		m   loginMemo
		err error
	}
	done := make(chan decision, 1)
	go func() {
		defer func() { <-r.slot }()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), renewalBudget)
		defer cancel()
		m, err := decide(dctx, now)
		if err == nil {
			r.mu.Lock()
			r.memo = m
			r.mu.Unlock()
		}
		done <- decision{m, err}
	}()
	select {
	case d := <-done:
		if d.err != nil {
			return Token{}, d.err
		}
		return d.m.serve(now, source)
	case <-ctx.Done():
		return Token{}, ctx.Err()
	}
}

// decideRenewal decides about rec at now: serve it as it is while more
// than the margin remains (or when it cannot be renewed), else renew it
// with renew. On failure the current token stays, with why.
func (r *loginRefresher) decideRenewal(ctx context.Context, key string, rec loginRecord, now time.Time,
	renew func(ctx context.Context) (loginRecord, error)) (loginMemo, error) {
	m := loginMemo{key: key, rec: rec}
	switch {
	case !rec.renewable():
		m.recheckAt = now.Add(loginRecheck)
		return m, nil
	case rec.expires.Sub(now) > loginRefreshMargin:
		m.recheckAt = rec.expires.Add(-loginRefreshMargin)
		return m, nil
	}
	fresh, err := renew(ctx)
	if err != nil {
		// ctx is the renewal's own (see token): its end is a Hub that
		// did not answer within renewalBudget, a failure like another.
		relogin := isInvalidGrant(err)
		m.failure, m.relogin = r.expiredError(rec, err, relogin), relogin
		m.recheckAt = now.Add(loginRecheck)
		if relogin {
			// Nothing changes until the user logs in again, which
			// changes the key.
			m.recheckAt = time.Unix(1<<62, 0)
		}
		r.warn(ctx, rec, err, relogin)
		return m, nil
	}
	m.rec = fresh
	m.recheckAt = now.Add(loginRecheck)
	if !fresh.expires.IsZero() && fresh.expires.Add(-loginRefreshMargin).After(m.recheckAt) {
		m.recheckAt = fresh.expires.Add(-loginRefreshMargin)
	}
	return m, nil
}

// fromFile serves the token read from the token file: as it is when it is
// not a browser login stored beside it, renewed when it is one near its
// expiry. key is the token as read.
func (r *loginRefresher) fromFile(ctx context.Context, files tokenFiles, token, source string) (Token, error) {
	return r.token(ctx, token, source, func(ctx context.Context, now time.Time) (loginMemo, error) {
		return r.decideFile(ctx, files, token, now, true)
	})
}

// decideFile decides about the token read from the token file. When
// stored_tokens no longer knows it because a renewal in another process
// replaced it since it was read, it decides about the token file's new
// token instead (once: again is a user who switched tokens meanwhile).
func (r *loginRefresher) decideFile(ctx context.Context, files tokenFiles, token string, now time.Time, again bool) (loginMemo, error) {
	plain := loginMemo{key: token, rec: loginRecord{access: token}, recheckAt: now.Add(loginRecheck)}
	st, err := files.readStored()
	if err != nil {
		r.oauth.log().LogAttrs(ctx, slog.LevelDebug, "inference: the stored tokens file is not readable; the token file's token is used as it is",
			slog.String("reason", err.Error()))
		return plain, nil
	}
	sec := st.withToken(token)
	if sec == nil {
		if cur, err := files.readToken(); again && err == nil && cur != "" && cur != token {
			m, err := r.decideFile(ctx, files, cur, now, false)
			m.replaced = token
			return m, err
		}
		return plain, nil
	}
	rec := sec.login()
	m, err := r.decideRenewal(ctx, token, rec, now, func(ctx context.Context) (loginRecord, error) {
		return r.renewStored(ctx, files, rec)
	})
	if m.failure == nil && m.rec.access != token {
		// Renewed here or by another process: the token file now holds
		// the new token.
		m.key, m.replaced = m.rec.access, token
	}
	return m, err
}

// renewStored renews a stored login under the cross-process lock, after
// reading stored_tokens again: when another process renewed it meanwhile,
// its result is adopted and nothing is sent. Else the Hub renews it, the
// login's section is rewritten, and the token file too while it still
// holds the old token (the user may have switched to another).
func (r *loginRefresher) renewStored(ctx context.Context, files tokenFiles, rec loginRecord) (loginRecord, error) {
	unlock, err := lockStoredTokens(ctx, files.lockPath(), r.onLockWait)
	if err != nil {
		return loginRecord{}, err
	}
	defer unlock()
	st, err := files.readStored()
	if err != nil {
		return loginRecord{}, err
	}
	sec := st.section(rec.name)
	if sec == nil {
		// Logged out meanwhile: what was read is all there is.
		return loginRecord{name: rec.name, access: rec.access}, nil
	}
	if current := sec.login(); current.access != rec.access {
		return current, nil
	}
	now := r.now()
	fresh, err := r.oauth.renew(ctx, sec.login().refresh, now)
	if err != nil {
		return loginRecord{}, err
	}
	fresh.name = rec.name
	st.putLogin(fresh)
	if err := files.writeStored(st); err != nil {
		// The new token works, but the files still hold the old login,
		// whose refresh token the Hub may have retired.
		r.oauth.log().LogAttrs(ctx, slog.LevelWarn, "inference: the Hugging Face login was renewed but could not be saved; `hf auth login` may be needed again later",
			slog.String("login", rec.name), slog.String("reason", err.Error()))
		return fresh, nil
	}
	if cur, err := files.readToken(); err == nil && cur == rec.access {
		if err := files.writeToken(fresh.access); err != nil {
			r.oauth.log().LogAttrs(ctx, slog.LevelWarn, "inference: the renewed Hugging Face login could not be made the active token",
				slog.String("login", rec.name), slog.String("file", files.tokenPath), slog.String("reason", err.Error()))
		}
	}
	r.oauth.log().LogAttrs(ctx, slog.LevelDebug, "inference: the Hugging Face login was renewed",
		slog.String("login", rec.name), slog.Time("expires", fresh.expires))
	return fresh, nil
}

// reloginFix is what to do once a login can no longer be renewed.
func (r *loginRefresher) reloginFix() string {
	if r.stored {
		return "Run `hf auth login` again (or `hfdoctor login`) to log in, or set HF_TOKEN to an access token from " + hubLinks(r.oauth.hubURL()).tokens()
	}
	return "Log the user in again (DeviceLogin)"
}

// fixFor is what to do after a renewal failed with err: log in again
// when the Hub refused it (an OAuth error), name the Hub when the client
// refused to send a login to a Hub nobody named, see to the lock when
// another process held it too long, let the program use the login's
// files when they refused, else make the Hub reachable (a network down, a
// 5xx or a page that is not OAuth's is not a login to redo).
func (r *loginRefresher) fixFor(err error) string {
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &re) && re.ErrorCode != "" && (re.Response == nil || re.Response.StatusCode < 500):
		return r.reloginFix()
	case errors.Is(err, ErrInvalidRequest):
		return fmt.Sprintf("Give the client the Hub to renew the login on: WithHubURL (a fake's URL in tests), or WithHubURL(%q)", defaultHubURL)
	}
	var held *lockHeldError
	if errors.As(err, &held) {
		return "Another process has held " + held.path + " for more than " + lockTimeout.String() +
			" while renewing the login (`hf`, or a program of this library): if none is running, remove the file. If it has expired meanwhile: " + r.reloginFix()
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		// The files, or their lock, refused: the Hub was not asked, since
		// a renewal that cannot be saved would be lost for `hf`.
		return "Let this program read and write " + filepath.Dir(pe.Path) + ", where the login's files and their lock are: the login is renewed as soon as it can be saved. If it has expired meanwhile: " + r.reloginFix()
	}
	return "Check that the Hub at " + r.oauth.hubURL() + " can be reached: the login is renewed as soon as it answers. If it has expired meanwhile: " + r.reloginFix()
}

func (r *loginRefresher) describe(rec loginRecord) string {
	if r.stored && rec.name != "" {
		return fmt.Sprintf("the browser login %q stored by `hf auth login`", rec.name)
	}
	return "the browser login"
}

// expiredError is what the source returns once the token has expired
// after a failed renewal: ErrUnauthorized (the token would be refused),
// with the renewal's answer and how to log in again.
func (r *loginRefresher) expiredError(rec loginRecord, err error, relogin bool) error {
	e := &APIError{Kind: ErrUnauthorized, hubURL: r.oauth.hubURL(), fix: r.fixFor(err)}
	why := "could not be renewed"
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.Response != nil {
			e.StatusCode = re.Response.StatusCode
			e.RequestID = requestID(re.Response.Header)
		}
		e.Code = cleanText(redact.String(re.ErrorCode, rec.access, rec.refresh), 64)
		why = "the Hub would not renew it" + redact.String(oauthErrorDetail(err), rec.access, rec.refresh)
		if relogin {
			why += " (the refresh token expired or was revoked)"
		}
	} else {
		e.Cause = err
		why += ": " + cleanText(redact.String(err.Error(), rec.access, rec.refresh), 256)
	}
	e.Message = fmt.Sprintf("%s expired at %s and %s", r.describe(rec), rec.expires.UTC().Format(time.RFC3339), why)
	return e
}

// warn says once per kind that a renewal failed: that it will be tried
// again, or that only logging in again helps.
func (r *loginRefresher) warn(ctx context.Context, rec loginRecord, err error, relogin bool) {
	r.mu.Lock()
	first := relogin && !r.warnedRelogin || !relogin && !r.warnedRetry
	if relogin {
		r.warnedRelogin = true
	} else {
		r.warnedRetry = true
	}
	r.mu.Unlock()
	if !first {
		return
	}
	msg := "inference: the Hugging Face login could not be renewed; its token is used until it expires, and renewing is tried again every 5 minutes"
	if relogin {
		msg = "inference: the Hugging Face login has expired or was revoked and cannot be renewed; its token is used until it expires, then calls fail until you log in again"
	}
	r.oauth.log().LogAttrs(ctx, slog.LevelWarn, msg,
		slog.String("login", r.describe(rec)), slog.Time("expires", rec.expires),
		slog.String("reason", redact.String(strings.TrimPrefix(oauthErrorDetail(err), ": "), rec.access, rec.refresh)), slog.String("fix", r.fixFor(err)))
}

// EnvTokenOptions say how [EnvTokenWith] renews a browser login that
// `hf auth login` stored. The zero value is [EnvToken]'s.
type EnvTokenOptions struct {
	// HubURL is the Hub that renews the login. Empty: the Hub of the
	// Client the source is given to by NewClient (WithHubURL, else
	// HF_ENDPOINT), and otherwise (outside a Client, or given for one
	// call) HF_ENDPOINT, else https://huggingface-proxy-6ci.pages.dev.
	HubURL string
	// ClientID is the OAuth client the login was made with. Empty:
	// HF_DEVICE_CODE_OAUTH_CLIENT_ID, else [DeviceLoginClientID].
	ClientID string
	// HTTPClient sends the renewal. Nil: the transport of the Client the
	// source is given to, without its middleware (so no token and no log
	// line goes with it), with a 30 s timeout; outside a Client, a client
	// with that timeout.
	HTTPClient *http.Client
	// Logger hears the one warning of a failed renewal. Nil: the Client's
	// logger when WithLogger gave one, else slog.Default(): the user
	// must hear that their login will stop working.
	Logger *slog.Logger
}

// EnvTokenWith is [EnvToken] with the renewal of a stored browser login
// configured by opts.
func EnvTokenWith(opts EnvTokenOptions) TokenSource {
	hub := strings.TrimRight(strings.TrimSpace(opts.HubURL), "/")
	return &envSource{login: newLoginRefresher(hubOAuth{hub: hub, clientID: opts.ClientID, http: opts.HTTPClient, logger: opts.Logger}, true)}
}

// clientLogin is what a Client lends the login sources it binds: its Hub,
// its transport (without middleware) and its logger; and refuse, when its
// router is on this machine and its Hub was not named, the HTTP client
// that refuses to send a login to that Hub (hubNotNamed), for the sources
// that name no Hub of their own.
type clientLogin struct {
	hubOAuth
	refuse *http.Client
}

// lentBy is h with what c lends where h leaves it unset.
func (h hubOAuth) lentBy(c clientLogin) hubOAuth {
	if h.hub == "" {
		h.hub = c.hub
		if h.http == nil && c.refuse != nil {
			h.http = c.refuse
		}
	}
	if h.http == nil {
		h.http = c.http
	}
	if h.logger == nil {
		h.logger = c.logger
	}
	return h
}

// boundTo is the source renewing through a client's Hub, transport and
// logger where its options leave them unset. A Client binds its own
// EnvToken sources when it is made (bindLoginSources).
func (s *envSource) boundTo(client clientLogin) *envSource {
	bound := newLoginRefresher(s.login.oauth.lentBy(client), true)
	bound.now, bound.onLockWait = s.login.now, s.login.onLockWait
	return &envSource{login: bound}
}

// bindLoginSources binds the EnvToken and OIDCToken sources of ts, in a
// chain too, to the client's Hub: a stored login is renewed, and an OIDC
// token exchanged, where the client sends its Hub calls.
func bindLoginSources(ts TokenSource, client clientLogin) TokenSource {
	bound, _ := bindLogin(ts, client)
	return bound
}

func bindLogin(ts TokenSource, client clientLogin) (TokenSource, bool) {
	switch s := ts.(type) {
	case *envSource:
		if s != nil {
			return s.boundTo(client), true
		}
	case *oidcSource:
		if s != nil {
			return s.boundTo(client), true
		}
	case chainSource:
		out := make([]TokenSource, len(s.sources))
		changed := false
		for i, m := range s.sources {
			var ok bool
			out[i], ok = bindLogin(m, client)
			changed = changed || ok
		}
		if changed {
			return chainSource{sources: out}, true
		}
	}
	return ts, false
}

// loginSource yields a DeviceLogin's token, renewed as a stored login's
// is: in huggingface_hub's files under its name when it was saved there,
// else in memory.
type loginSource struct {
	login *loginRefresher
	// files and name locate a saved login.
	files tokenFiles
	name  string
	// mem is an unsaved login, changed only in the refresher's slot.
	mem loginRecord
}

func (s *loginSource) String() string { return "DeviceLogin" }

// Token is the login's access token, renewed when less than a day
// remains.
func (s *loginSource) Token(ctx context.Context) (Token, error) {
	if err := contextDone(ctx); err != nil {
		return Token{}, err
	}
	if !s.login.stored {
		return s.login.token(ctx, "", "device login", func(ctx context.Context, now time.Time) (loginMemo, error) {
			return s.login.decideRenewal(ctx, "", s.mem, now, func(ctx context.Context) (loginRecord, error) {
				fresh, err := s.login.oauth.renew(ctx, s.mem.refresh, s.login.now())
				if err == nil {
					s.mem = fresh
				}
				return fresh, err
			})
		})
	}
	source := "stored login " + s.name
	return s.login.token(ctx, s.name, source, func(ctx context.Context, now time.Time) (loginMemo, error) {
		st, err := s.files.readStored()
		if err != nil {
			return loginMemo{}, fmt.Errorf("%w (the login %q cannot be read: %v)", ErrNoToken, s.name, err)
		}
		sec := st.section(s.name)
		if sec == nil {
			return loginMemo{}, fmt.Errorf("%w (the login %q is no longer in %s: it was logged out)", ErrNoToken, s.name, s.files.storedPath())
		}
		rec := sec.login()
		// The name stays when the user logs in again, so a login the
		// Hub will no longer renew is looked at again every 5 minutes,
		// and renewed only once it is another login.
		if prev := s.login.last(); prev.relogin && prev.key == s.name && prev.rec.access == rec.access {
			prev.recheckAt = now.Add(loginRecheck)
			return prev, nil
		}
		m, err := s.login.decideRenewal(ctx, s.name, rec, now, func(ctx context.Context) (loginRecord, error) {
			return s.login.renewStored(ctx, s.files, rec)
		})
		if m.relogin {
			m.recheckAt = now.Add(loginRecheck)
		}
		return m, err
	})
}
