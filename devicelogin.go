package inference

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"golang.org/x/oauth2"
)

// Errors of a device login that ended without a token.
var (
	// ErrLoginExpired means the device code expired before the user
	// authorized the login: start again. It is of the kind
	// [ErrUnauthorized]: errors.Is(err, ErrUnauthorized) is true too.
	ErrLoginExpired error = &loginFailure{"inference: the login code expired before it was authorized: start the login again"}
	// ErrLoginDenied means the user refused the login in the browser. It
	// is of the kind [ErrUnauthorized].
	ErrLoginDenied error = &loginFailure{"inference: the login was denied in the browser"}
)

// loginFailure is a device login that did not end in a token: a failure
// of the kind ErrUnauthorized, as every error the library returns is of
// one kind.
type loginFailure struct{ msg string }

func (e *loginFailure) Error() string        { return e.msg }
func (e *loginFailure) Is(target error) bool { return target == ErrUnauthorized }

// Defaults of the device flow (RFC 8628, as huggingface_hub reads them).
const (
	deviceDefaultInterval = 5
	deviceDefaultLifetime = 900 * time.Second
	// slowDownStep is what "slow_down" adds to the polling interval.
	slowDownStep = 5
)

// DeviceCode is what the user needs to authorize a device login: a CLI
// prints it, a GUI shows it (and may open VerificationURIComplete).
// [DeviceLogin] checks it before Prompt sees it: UserCode is a short code
// of printable characters, and both pages are web addresses on the Hub's
// own host; a Hub's answer that is not is refused, nothing shown.
type DeviceCode struct {
	// UserCode is the short code the user checks or types, such as
	// "ABCD-EFGH".
	UserCode string
	// VerificationURI is the page where the user enters the code.
	VerificationURI string
	// VerificationURIComplete is that page with the code filled in;
	// VerificationURI when the Hub gives none.
	VerificationURIComplete string
	// Expiry is when the code expires; the login fails with
	// [ErrLoginExpired] if it is not authorized by then.
	Expiry time.Time
}

// DeviceLoginOptions configure [DeviceLogin].
type DeviceLoginOptions struct {
	// Prompt is given the code to show the user, once, before polling
	// starts; an error it returns ends the login with that error.
	// Required.
	Prompt func(DeviceCode) error
	// HubURL is the Hub to log in to; empty means HF_ENDPOINT, else
	// https://huggingface-proxy-6ci.pages.dev. It must be https, or http on a loopback address.
	HubURL string
	// ClientID is the OAuth app; empty means
	// HF_DEVICE_CODE_OAUTH_CLIENT_ID, else [DeviceLoginClientID]
	// (huggingface_hub's, as `hf auth login`).
	ClientID string
	// Scopes are asked for (space separated in the request); nil asks for
	// none, as `hf auth login` does: the login then gets the app's
	// scopes.
	Scopes []string
	// Save stores the login where huggingface_hub keeps it, as `hf auth
	// login` does: a section "oauth-NAME" in stored_tokens (with its
	// refresh token and expiry) and the active token file, both 0600.
	// `hf whoami` and [EnvToken] then find it, and whichever renews it
	// first writes it back for the other.
	Save bool
	// HTTPClient sends the requests; nil means one with a 30 s timeout
	// per request.
	HTTPClient *http.Client
	// Logger hears the polls that failed and were tried again (debug),
	// and, later, the returned source's warning if renewing fails; nil
	// means slog.Default().
	Logger *slog.Logger
}

// Login is a finished device login and what its token may do.
type Login struct {
	// Tokens yields the login's access token and renews it when less
	// than a day remains, as [EnvToken] renews a stored login (in the
	// files when saved, in memory otherwise). Give it to a Client with
	// WithTokenSource, or to a call with WithUserTokenSource.
	Tokens TokenSource
	// User is the Hub's whoami for the new token.
	User *WhoAmI
	// Scopes are the scopes the Hub granted, from the token answer
	// ("scope"), or those asked for when it does not say; nil when
	// neither is known.
	Scopes []string
	// Expiry is when the access token expires; zero when the Hub does not
	// say.
	Expiry time.Time
	// Renewable reports whether the login came with a refresh token and
	// an expiry, so that Tokens renews it.
	Renewable bool
	// CanCallInference says whether the token may call Inference
	// Providers: for an OAuth token, whether the "inference-api" scope
	// was granted (CapabilityUnknown when the Hub does not say); for an
	// access token, its permission (see [WhoAmI]).
	CanCallInference Capability
	// Missing says exactly what the token lacks when CanCallInference is
	// CapabilityNo, and how to get it; "" otherwise.
	Missing string
	// SavedAs is the login's name in stored_tokens when Save was set.
	SavedAs string
	// TokenFile and StoredTokensFile are the files written when Save was
	// set.
	TokenFile, StoredTokensFile string
	// Warnings are what the user should know, such as an HF_TOKEN that
	// EnvToken and `hf` use before the saved login.
	Warnings []string
}

// DeviceLogin logs a user in with the OAuth device flow (RFC 8628), the
// browser login of `hf auth login`, through golang.org/x/oauth2's device
// support: it asks the Hub for a code (POST /oauth/device), gives it to
// opts.Prompt to show the user, and polls the token endpoint at the
// interval the Hub asks for until the user authorizes it in a browser:
// "authorization_pending" waits, "slow_down" polls 5 s less often from
// then on, a 5xx or an answer that is not OAuth's (a proxy's page, a
// network failure) is tried again, "expired_token" (or the code's expiry)
// is [ErrLoginExpired], "access_denied" is [ErrLoginDenied]. Cancelling
// ctx stops it at once, polls in flight included.
//
// The new token is then checked with the Hub's whoami, and whether it may
// call Inference Providers is said in the Login (CanCallInference and
// Missing): an OAuth login without the "inference-api" scope is the most
// common cause of a 403. With opts.Save the login is stored where
// huggingface_hub keeps it.
func DeviceLogin(ctx context.Context, opts DeviceLoginOptions) (*Login, error) {
	if err := contextDone(ctx); err != nil {
		return nil, err
	}
	if opts.Prompt == nil {
		return nil, invalidRequest("DeviceLoginOptions.Prompt is nil: give a function that shows the user the code")
	}
	h := hubOAuth{hub: strings.TrimSpace(opts.HubURL), clientID: strings.TrimSpace(opts.ClientID), http: opts.HTTPClient, logger: opts.Logger}
	hub, err := parseBase("DeviceLoginOptions.HubURL (or HF_ENDPOINT)", h.hubURL())
	if err != nil {
		return nil, err
	}
	if err := checkTransportSecurity("DeviceLoginOptions.HubURL (or HF_ENDPOINT)", hub, false); err != nil {
		return nil, err
	}
	h.hub = hub.String()
	base := h.httpClient()
	h.http = base
	scopes := mergeScopes(nil, opts.Scopes)
	cfg := h.config(scopes)

	// oauth2 polls and applies slow_down itself, but stops at the first
	// answer it does not know; the login goes on after those (a 5xx, a
	// proxy's page), so the polls are watched to resume at the interval
	// the Hub last asked for.
	timeout := base.Timeout
	if timeout <= 0 {
		timeout = loginHTTPTimeout
	}
	watch := &pollWatch{tokenURL: cfg.Endpoint.TokenURL, timeout: timeout}
	polling := *base
	polling.Transport, polling.Timeout = watch.wrap(base.Transport), 0
	octx := context.WithValue(ctx, oauth2.HTTPClient, &polling)

	da, err := cfg.DeviceAuth(octx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("inference: device login: %w", ctx.Err())
		}
		return nil, fmt.Errorf("inference: device login: the Hub did not start it (POST %s)%s", cfg.Endpoint.DeviceAuthURL, oauthErrorDetail(err))
	}
	if da.DeviceCode == "" || da.UserCode == "" || da.VerificationURI == "" {
		return nil, fmt.Errorf("inference: device login: the Hub's answer to POST %s lacks device_code, user_code or verification_uri", cfg.Endpoint.DeviceAuthURL)
	}
	if da.Interval <= 0 {
		da.Interval = deviceDefaultInterval
	}
	if da.Expiry.IsZero() {
		da.Expiry = time.Now().Add(deviceDefaultLifetime)
	}
	code := DeviceCode{UserCode: da.UserCode, VerificationURI: da.VerificationURI,
		VerificationURIComplete: da.VerificationURIComplete, Expiry: da.Expiry}
	if code.VerificationURIComplete == "" {
		code.VerificationURIComplete = code.VerificationURI
	}
	if err := checkDeviceCode(code, hub); err != nil {
		return nil, fmt.Errorf("inference: device login: the Hub's answer to POST %s %v: nothing is shown", cfg.Endpoint.DeviceAuthURL, err)
	}
	if err := opts.Prompt(code); err != nil {
		return nil, fmt.Errorf("inference: device login: %w", err)
	}

	interval := da.Interval
	var ot *oauth2.Token
	for {
		da.Interval = interval + slowDownStep*watch.slowDowns.Load()
		ot, err = cfg.DeviceAccessToken(octx, da)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("inference: device login: %w", ctx.Err())
		}
		// oauth2 polls under a deadline at the code's expiry.
		if time.Until(da.Expiry) < time.Second {
			return nil, ErrLoginExpired
		}
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode != "" && (re.Response == nil || re.Response.StatusCode < 500) {
			switch re.ErrorCode {
			case "expired_token":
				return nil, ErrLoginExpired
			case "access_denied":
				return nil, ErrLoginDenied
			}
			return nil, fmt.Errorf("inference: device login: the Hub refused it%s", oauthErrorDetail(err))
		}
		h.log().LogAttrs(ctx, slog.LevelDebug, "inference: device login: a poll failed; polling goes on",
			slog.String("reason", strings.TrimPrefix(oauthErrorDetail(err), ": ")))
	}
	return finishLogin(ctx, h, ot, scopes, opts.Save)
}

// maxUserCode bounds a user code: RFC 8628's is short, for a person to
// type or compare (the Hub's: "ABCD-EFGH").
const maxUserCode = 64

// checkDeviceCode refuses a code that cannot be shown to a person as it
// is, since a Prompt prints or displays it untouched: a user_code that is
// no short printable code (a terminal's escape sequence, a line break
// forging the text after it), a page that is not a web page on the Hub's
// own host.
func checkDeviceCode(c DeviceCode, hub *url.URL) error {
	if len(c.UserCode) > maxUserCode || !printable(c.UserCode) {
		return errors.New("has a user_code that is no short printable code")
	}
	for _, page := range []struct{ field, uri string }{{"verification_uri", c.VerificationURI}, {"verification_uri_complete", c.VerificationURIComplete}} {
		u, err := url.Parse(page.uri)
		web := err == nil && printable(page.uri) && u.User == nil && u.Host != "" &&
			(u.Scheme == "https" || u.Scheme == "http" && hub.Scheme == "http")
		if !web {
			return fmt.Errorf("has a %s that is not a web page's address", page.field)
		}
		if !strings.EqualFold(u.Hostname(), hub.Hostname()) {
			return fmt.Errorf("has a %s on another host (%s) than the Hub's (%s)", page.field, cleanText(u.Hostname(), 64), hub.Hostname())
		}
	}
	return nil
}

// printable reports a text of printable characters alone (spaces
// included, no control, format or line-breaking character).
func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// finishLogin checks the new token with whoami, saves it when asked, and
// makes its source.
func finishLogin(ctx context.Context, h hubOAuth, ot *oauth2.Token, asked []string, save bool) (*Login, error) {
	rec := tokenRecord(ot, "", time.Now())
	if _, err := normalizeToken(rec.access); err != nil {
		return nil, fmt.Errorf("inference: device login: the Hub's token is not a valid token: %v", err)
	}
	who, err := whoamiFor(ctx, h, rec.access)
	if err != nil {
		return nil, fmt.Errorf("inference: device login: the Hub does not accept the new token: %w", err)
	}
	l := &Login{User: who, Expiry: rec.expires, Renewable: rec.renewable()}
	if s, ok := ot.Extra("scope").(string); ok {
		l.Scopes = strings.Fields(s)
	} else if len(asked) > 0 {
		// RFC 6749 5.1: no scope in the answer means those asked for.
		l.Scopes = asked
	}
	l.CanCallInference, l.Missing = loginCapability(who, l.Scopes, hubLinks(h.hubURL()))

	if !save {
		l.Tokens = &loginSource{login: newLoginRefresher(h, false), mem: rec}
		return l, nil
	}
	files, ok := userTokenFiles()
	if !ok {
		return nil, errors.New("inference: device login: the login cannot be saved: no token file path (set HF_TOKEN_PATH or HF_HOME)")
	}
	rec.name = who.TokenName
	if rec.name == "" {
		rec.name = "oauth-" + who.Name
	}
	if err := saveLogin(ctx, files, rec); err != nil {
		return nil, fmt.Errorf("inference: device login: the login cannot be saved: %w", err)
	}
	l.SavedAs, l.TokenFile, l.StoredTokensFile = rec.name, files.tokenPath, files.storedPath()
	for _, name := range []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"} {
		if strings.TrimSpace(os.Getenv(name)) != "" {
			l.Warnings = append(l.Warnings, name+" is set: EnvToken and `hf` use it before the saved login; unset it to use the login")
			break
		}
	}
	l.Tokens = &loginSource{login: newLoginRefresher(h, true), files: files, name: rec.name}
	return l, nil
}

// whoamiFor asks the Hub about token through a client of its own.
func whoamiFor(ctx context.Context, h hubOAuth, token string) (*WhoAmI, error) {
	c, err := NewClient(WithHubURL(h.hubURL()), WithToken(token), WithHTTPClient(h.httpClient()),
		WithRetry(RetryPolicy{MaxRetries: 2, MinWait: 200 * time.Millisecond, MaxWait: 2 * time.Second}))
	if err != nil {
		return nil, err
	}
	if h.http == nil || h.http.Transport == nil {
		// Its transport is its own: nothing else uses it afterwards.
		defer c.CloseIdleConnections()
	}
	return c.Whoami(ctx)
}

// loginCapability says whether a new login may call Inference Providers,
// and what it lacks when it may not.
func loginCapability(who *WhoAmI, scopes []string, hub hubLinks) (Capability, string) {
	if !who.OAuth() {
		if who.CanCallInference == CapabilityNo {
			return CapabilityNo, "the token lacks the fine-grained permission \"Make calls to Inference Providers\" (" +
				PermissionInferenceProviders + "): add it at " + hub.tokens() + ", or create a token with it: " + hub.fineGrainedToken()
		}
		return who.CanCallInference, ""
	}
	switch {
	case scopes == nil:
		return CapabilityUnknown, ""
	case slices.Contains(scopes, ScopeInferenceAPI):
		return CapabilityYes, ""
	}
	return CapabilityNo, fmt.Sprintf("the login was granted the scopes %q but not %q, so its token cannot call Inference Providers: "+
		"log in again asking for it (DeviceLoginOptions.Scopes), with an OAuth app allowed to grant it (%s)",
		strings.Join(scopes, " "), ScopeInferenceAPI, hub.base()+"/settings/applications")
}

// saveLogin stores rec as `hf auth login` does, under the lock a renewal
// takes: its section in stored_tokens (others kept), then the token file.
// A stored_tokens that cannot be read is not overwritten: its other
// tokens would be lost.
func saveLogin(ctx context.Context, files tokenFiles, rec loginRecord) error {
	if err := os.MkdirAll(filepath.Dir(files.tokenPath), 0o700); err != nil {
		return err
	}
	unlock, err := lockStoredTokens(ctx, files.lockPath(), nil)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := files.readStored()
	if err != nil {
		return fmt.Errorf("%w (fix or remove it, then log in again)", err)
	}
	st.putLogin(rec)
	if err := files.writeStored(st); err != nil {
		return err
	}
	return files.writeToken(rec.access)
}

// pollWatch is the device flow's transport: it bounds each request by
// timeout, reads each answer whole (at most 1 MiB, an OAuth answer is
// small) and closes it, so that the connection is free whatever oauth2
// does with the body (its DeviceAuth does not close it), and counts the
// token endpoint's "slow_down" answers.
type pollWatch struct {
	tokenURL  string
	timeout   time.Duration
	slowDowns atomic.Int64
}

func (p *pollWatch) wrap(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
		ctx, cancel := context.WithTimeout(r.Context(), p.timeout)
		defer cancel()
		resp, err := next.RoundTrip(r.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && r.URL.String() == p.tokenURL {
			var answer struct {
				Error string `json:"error"`
			}
			if json.Unmarshal(body, &answer) == nil && answer.Error == "slow_down" {
				p.slowDowns.Add(1)
			}
		}
		return resp, nil
	})
}
