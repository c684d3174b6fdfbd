package inference_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// These tests renew a browser login stored by `hf auth login` against the
// fake Hub, with huggingface_hub's files in a temporary HF_HOME.

const (
	oldAccess  = "hf_oauth_aliceOldTokenAAAAAAAAAAAAAAAAAA"
	oldRefresh = "rt_with_%_inside"
	ciToken    = "hf_ciWriteTokenAAAAAAAAAAAAAAAAAAAAAAAAAA"
)

// hfHome is huggingface_hub's files in a temporary HF_HOME, and a fake Hub
// that knows the stored login.
type hfHome struct {
	r                     *inferencetest.Router
	dir                   string
	tokenPath, storedPath string
	logs                  *syncBuffer
	logger                *slog.Logger
}

// newHFHome stores the fixture (testdata/hfhub/stored_tokens: an access
// token and the browser login "oauth-alice", as huggingface_hub writes
// them) with the login expiring at expires, and makes it the active token.
func newHFHome(t *testing.T, expires time.Time) *hfHome {
	t.Helper()
	h := &hfHome{dir: t.TempDir(), logs: &syncBuffer{}}
	for _, k := range []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_ENDPOINT", "HF_DEVICE_CODE_OAUTH_CLIENT_ID"} {
		t.Setenv(k, "")
	}
	t.Setenv("HF_HOME", h.dir)
	h.tokenPath, h.storedPath = filepath.Join(h.dir, "token"), filepath.Join(h.dir, "stored_tokens")
	fixture, err := os.ReadFile(filepath.Join("testdata", "hfhub", "stored_tokens"))
	require.NoError(t, err)
	fixture = bytes.Replace(fixture, []byte("expires_at = 1752192000"), []byte("expires_at = "+strconv.FormatInt(expires.Unix(), 10)), 1)
	require.NoError(t, os.WriteFile(h.storedPath, fixture, 0o600))
	require.NoError(t, os.WriteFile(h.tokenPath, []byte(oldAccess), 0o600))
	h.r = inferencetest.NewRouter()
	t.Cleanup(h.r.Close)
	h.r.AddLogin(oldAccess, oldRefresh, inferencetest.HubUser{Name: "alice"})
	h.logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return h
}

// source is EnvToken renewing through the fake Hub.
func (h *hfHome) source() inference.TokenSource {
	return inference.EnvTokenWith(inference.EnvTokenOptions{HubURL: h.r.URL(), Logger: h.logger})
}

func (h *hfHome) renewals() int {
	n := 0
	for _, q := range h.r.OAuthRequests() {
		if q.Grant == inferencetest.GrantRefreshToken {
			n++
		}
	}
	return n
}

// login is the stored section "oauth-alice", as read here.
func (h *hfHome) login(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(h.storedPath)
	require.NoError(t, err)
	var sections [][]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(inference.StoredTokensAsJSON(data)), &sections))
	for _, s := range sections {
		var name string
		require.NoError(t, json.Unmarshal(s[0], &name))
		if name != "oauth-alice" {
			continue
		}
		var fields [][2]string
		require.NoError(t, json.Unmarshal(s[1], &fields))
		out := map[string]string{}
		for _, f := range fields {
			out[f[0]] = f[1]
		}
		return out
	}
	t.Fatal("no oauth-alice section")
	return nil
}

func (h *hfHome) activeToken(t *testing.T) string {
	data, err := os.ReadFile(h.tokenPath)
	require.NoError(t, err)
	return string(data)
}

func (h *hfHome) warnings() int { return strings.Count(h.logs.String(), "level=WARN") }

// syncBuffer is a bytes.Buffer safe for the goroutines that log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// clock is a settable time for a source's renewal.
type clock struct{ t atomic.Int64 }

func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }
func (c *clock) set(t time.Time)  { c.t.Store(t.UnixNano()) }
func (c *clock) add(d time.Duration) {
	c.t.Add(int64(d))
}
func (c *clock) now() time.Time { return time.Unix(0, c.t.Load()) }

func assertSecret(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), path)
}

// TestStoredLoginRenewedAsHuggingfaceHubDoes reads huggingface_hub's own
// files (the fixture is in the shapes of its tests, expired since 2025),
// renews the login once through the Hub, and leaves both files as
// huggingface_hub would: 0600, the other token untouched, the rotated
// refresh token saved, readable by huggingface_hub's reader.
func TestStoredLoginRenewedAsHuggingfaceHubDoes(t *testing.T) {
	h := newHFHome(t, time.Unix(1752192000, 0))
	src := h.source()
	tok, err := src.Token(t.Context())
	require.NoError(t, err)

	assert.NotEqual(t, "hf_oauth_al…", tok.Redacted(), "a new token is served")
	assert.True(t, tok.OAuth)
	assert.Equal(t, "token file "+h.tokenPath, tok.Source)
	assert.WithinDuration(t, time.Now().Add(30*24*time.Hour), tok.Expiry, time.Minute)
	reqs := h.r.OAuthRequests()
	require.Len(t, reqs, 1)
	assert.Equal(t, inferencetest.GrantRefreshToken, reqs[0].Grant)
	assert.Equal(t, inference.DeviceLoginClientID, reqs[0].ClientID)
	assert.Equal(t, 200, reqs[0].Status)

	login := h.login(t)
	assert.Equal(t, h.activeToken(t), login["hf_token"], "the active token is the renewed one")
	assert.NotEqual(t, oldAccess, login["hf_token"])
	assert.True(t, strings.HasPrefix(login["refresh_token"], "hf_oauth_refresh_"), "the rotated refresh token is kept")
	expires, err := strconv.ParseInt(login["expires_at"], 10, 64)
	require.NoError(t, err)
	assert.Equal(t, tok.Expiry.Unix(), expires)
	assertSecret(t, h.tokenPath)
	assertSecret(t, h.storedPath)

	// What huggingface_hub reads: the same, the access token untouched.
	data, err := os.ReadFile(h.storedPath)
	require.NoError(t, err)
	mine := inference.StoredTokensAsJSON(data)
	assert.Contains(t, mine, `["ci-write",[["hf_token","`+ciToken+`"]]]`)
	assert.JSONEq(t, mine, inference.PythonReadsStoredTokens(t, h.storedPath))

	// The renewed token is served from memory: no second renewal.
	again, err := src.Token(t.Context())
	require.NoError(t, err)
	assert.Equal(t, fingerprint(inference.TokenValue(tok)), fingerprint(inference.TokenValue(again)))
	assert.Equal(t, 1, h.renewals())
	assert.Zero(t, h.warnings())
}

func TestStoredLoginFarFromExpiryIsServedAsItIs(t *testing.T) {
	expires := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)
	h := newHFHome(t, expires)
	before, err := os.ReadFile(h.storedPath)
	require.NoError(t, err)
	src := h.source()
	now := newClock(time.Now())
	inference.SetLoginClock(src, now.now)
	for range 3 {
		tok, err := src.Token(t.Context())
		require.NoError(t, err)
		assert.Equal(t, expires, tok.Expiry)
		assert.True(t, tok.OAuth)
		now.add(10 * 24 * time.Hour) // 30, 20, 10 days left: still more than a day
	}
	assert.Empty(t, h.r.OAuthRequests())
	after, err := os.ReadFile(h.storedPath)
	require.NoError(t, err)
	assert.Equal(t, before, after)

	now.set(expires.Add(-23 * time.Hour)) // less than a day left
	_, err = src.Token(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, h.renewals())
}

// TestTokenFileWithoutRenewalMetadataBehavesAsBefore: a token file with
// no stored_tokens, with a section without refresh metadata, or with a
// stored_tokens huggingface_hub could not read, is served as it is, and
// nothing is sent or written.
func TestTokenFileWithoutRenewalMetadataBehavesAsBefore(t *testing.T) {
	for _, tc := range []struct{ name, stored string }{
		{"no stored_tokens", ""},
		{"an access token's section", "[ci-write]\nhf_token = " + ciToken + "\n\n"},
		{"a login without expires_at", "[oauth-alice]\nhf_token = " + ciToken + "\nrefresh_token = rt\n\n"},
		{"a login whose expires_at is not a number", "[oauth-alice]\nhf_token = " + ciToken + "\nrefresh_token = rt\nexpires_at = soon\n\n"},
		{"a file configparser refuses", "hf_token = " + ciToken + "\n[oauth-alice]\nhf_token = " + ciToken + "\nrefresh_token = rt\nexpires_at = 1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHFHome(t, time.Now())
			require.NoError(t, os.Remove(h.tokenPath))
			require.NoError(t, os.WriteFile(h.tokenPath, []byte(ciToken+"\n"), 0o644))
			require.NoError(t, os.Remove(h.storedPath))
			if tc.stored != "" {
				require.NoError(t, os.WriteFile(h.storedPath, []byte(tc.stored), 0o644))
			}
			tok, err := h.source().Token(t.Context())
			require.NoError(t, err)
			assert.Equal(t, "token file "+h.tokenPath, tok.Source)
			assert.Equal(t, "hf_ci…", tok.Redacted())
			assert.False(t, tok.OAuth)
			assert.True(t, tok.Expiry.IsZero())
			assert.Empty(t, h.r.OAuthRequests())
			assert.Equal(t, ciToken+"\n", h.activeToken(t), "the token file is not rewritten")
			fi, err := os.Stat(h.tokenPath)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
		})
	}
}

func TestRenewalRotatesOrKeepsTheRefreshToken(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep=%v", keep), func(t *testing.T) {
			h := newHFHome(t, time.Now().Add(time.Hour))
			h.r.SetOAuth(inferencetest.HubOAuth{KeepRefreshTokens: keep})
			_, err := h.source().Token(t.Context())
			require.NoError(t, err)
			login := h.login(t)
			if keep {
				assert.Equal(t, oldRefresh, login["refresh_token"], "no new refresh token was sent: the old one stays")
				return
			}
			assert.NotEqual(t, oldRefresh, login["refresh_token"])
			// The Hub retired the old one: renewing with the saved one
			// works, with the old one it would not.
			require.NoError(t, os.WriteFile(h.storedPath, []byte(strings.Replace(mustRead(t, h.storedPath), login["refresh_token"], oldRefresh, 1)), 0o600))
			stale := newHFHomeSource(h, time.Now().Add(time.Hour))
			_, err = stale.Token(t.Context())
			require.NoError(t, err, "the current token is used while it is valid")
			last := h.r.OAuthRequests()
			assert.Equal(t, "invalid_grant", last[len(last)-1].Error)
		})
	}
}

// newHFHomeSource rewrites the login's expiry and returns a fresh source.
func newHFHomeSource(h *hfHome, expires time.Time) inference.TokenSource {
	data, _ := os.ReadFile(h.storedPath)
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "expires_at = ") {
			lines[i] = "expires_at = " + strconv.FormatInt(expires.Unix(), 10)
		}
	}
	_ = os.WriteFile(h.storedPath, []byte(strings.Join(lines, "\n")), 0o600)
	return h.source()
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(data)
}

// TestInvalidGrantServesTheTokenWhileValidThenUnauthorized: the Hub
// revoked the login. One warning; the current token is used until it
// expires; then ErrUnauthorized whose fix says to run `hf auth login`
// again, through a Client too, with nothing sent to the router.
func TestInvalidGrantServesTheTokenWhileValidThenUnauthorized(t *testing.T) {
	expires := time.Now().Add(time.Hour).Truncate(time.Second)
	h := newHFHome(t, expires)
	h.r.RevokeLogin(oldRefresh)
	h.r.On("m/a", inferencetest.Reply("ok"))
	src := h.source()
	now := newClock(time.Now())
	inference.SetLoginClock(src, now.now)
	c, err := inference.NewClient(inference.WithBaseURL(h.r.URL()), inference.WithHubURL(h.r.URL()), inference.WithTokenSource(src),
		inference.WithLogger(h.logger))
	require.NoError(t, err)

	for range 3 {
		tok, err := src.Token(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "hf_oauth_al…", tok.Redacted())
		now.add(10 * time.Minute)
	}
	assert.Equal(t, 1, h.renewals(), "invalid_grant is not asked again")
	assert.Equal(t, 1, h.warnings())
	assert.Contains(t, h.logs.String(), "hf auth login")
	_, err = c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err, "the client's own copy renews through its Hub and serves the valid token")

	now.set(expires.Add(time.Second))
	_, err = src.Token(t.Context())
	require.ErrorIs(t, err, inference.ErrUnauthorized)
	var apiErr *inference.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Contains(t, apiErr.Fix(), "Run `hf auth login` again")
	assert.Equal(t, 400, apiErr.StatusCode)
	assert.Equal(t, "invalid_grant", apiErr.Code)
	assert.Contains(t, err.Error(), `the browser login "oauth-alice" stored by `+"`hf auth login`"+` expired at `+expires.UTC().Format(time.RFC3339))
	assert.Contains(t, err.Error(), "refresh token expired or was revoked")
	for _, secret := range []string{oldAccess, oldRefresh, "aliceOldToken"} {
		assert.NotContains(t, err.Error(), secret)
		assert.NotContains(t, h.logs.String(), secret)
	}

	h.r.Reset()
	_, err = c.Chat(t.Context(), chatReq("m/a", ""))
	require.ErrorIs(t, err, inference.ErrUnauthorized)
	require.ErrorAs(t, err, &apiErr)
	assert.Contains(t, apiErr.Fix(), "hf auth login")
	assert.Empty(t, h.r.Requests(), "an expired token is not sent")
	assert.Equal(t, 2, h.renewals(), "the client's copy asked once too")
	assert.Equal(t, 2, h.warnings(), "one warning per source")
}

// TestTransientRenewalFailureWarnsOnceAndRetriesEveryFiveMinutes: a Hub
// that fails (503) is asked again 5 minutes later, not on every call; one
// warning; the token is renewed once the Hub answers.
func TestTransientRenewalFailureWarnsOnceAndRetriesEveryFiveMinutes(t *testing.T) {
	h := newHFHome(t, time.Now().Add(2*time.Hour))
	h.r.FailOAuth(inferencetest.ProviderError(503), inferencetest.ProviderError(503))
	src := h.source()
	now := newClock(time.Now())
	inference.SetLoginClock(src, now.now)
	step := func(d time.Duration) inference.Token {
		now.add(d)
		tok, err := src.Token(t.Context())
		require.NoError(t, err)
		return tok
	}
	assert.Equal(t, "hf_oauth_al…", step(0).Redacted())
	assert.Equal(t, 1, h.renewals())
	step(4 * time.Minute)
	assert.Equal(t, 1, h.renewals(), "not asked again within 5 minutes")
	step(time.Minute + time.Second)
	assert.Equal(t, 2, h.renewals())
	assert.Equal(t, 1, h.warnings(), "one warning")
	tok := step(5*time.Minute + time.Second)
	assert.Equal(t, 3, h.renewals())
	assert.NotEqual(t, "hf_oauth_al…", tok.Redacted())
	assert.Equal(t, tok.Redacted()[:len("hf_oauth_")], "hf_oauth_")
	assert.Equal(t, 1, h.warnings())
}

// TestExpiredLoginWhoseRenewalFailsIsUnauthorized: already expired and
// the Hub down: ErrUnauthorized at once (the token would be refused),
// naming the failure; five minutes later the renewal is tried again.
func TestExpiredLoginWhoseRenewalFailsIsUnauthorized(t *testing.T) {
	h := newHFHome(t, time.Now().Add(-time.Minute))
	h.r.FailOAuth(inferencetest.ProviderError(503))
	src := h.source()
	now := newClock(time.Now())
	inference.SetLoginClock(src, now.now)
	_, err := src.Token(t.Context())
	require.ErrorIs(t, err, inference.ErrUnauthorized)
	var apiErr *inference.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 503, apiErr.StatusCode)
	assert.Contains(t, apiErr.Fix(), "hf auth login")
	now.add(recheckInterval + time.Second)
	tok, err := src.Token(t.Context())
	require.NoError(t, err)
	assert.True(t, tok.Expiry.After(time.Now()))
}

const recheckInterval = 5 * time.Minute

// TestShortLivedRenewalIsNotRepeatedOnEveryCall: a Hub whose tokens live
// less than the day of margin would be asked on every call; the renewal
// is looked at again after 5 minutes only.
func TestShortLivedRenewalIsNotRepeatedOnEveryCall(t *testing.T) {
	h := newHFHome(t, time.Now().Add(time.Hour))
	h.r.SetOAuth(inferencetest.HubOAuth{TokenLifetime: time.Hour})
	src := h.source()
	now := newClock(time.Now())
	inference.SetLoginClock(src, now.now)
	for range 5 {
		_, err := src.Token(t.Context())
		require.NoError(t, err)
		now.add(time.Minute)
	}
	assert.Equal(t, 1, h.renewals())
	now.add(time.Minute)
	_, err := src.Token(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 2, h.renewals())
}

// TestRenewalStopsWithTheContext: a Hub that never answers holds a call
// only as long as its context, and the calls after it too while the
// renewal is in flight; the renewal ends at its own timeout, a failure
// like any other (one warning, the current token served, looked at again
// 5 minutes later).
func TestRenewalStopsWithTheContext(t *testing.T) {
	h := newHFHome(t, time.Now().Add(time.Hour))
	h.r.FailOAuth(inferencetest.Hang())
	src := inference.EnvTokenWith(inference.EnvTokenOptions{HubURL: h.r.URL(), Logger: h.logger,
		HTTPClient: &http.Client{Timeout: 2 * time.Second}})
	for range 2 {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		start := time.Now()
		_, err := src.Token(ctx)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), 1500*time.Millisecond, "no call waits for the Hub beyond its context")
	}
	assert.Equal(t, 1, h.renewals(), "one renewal in flight, not one per call")
	tok, err := src.Token(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "hf_oauth_al…", tok.Redacted(), "the renewal timed out: the current token serves")
	assert.Equal(t, 1, h.renewals())
	assert.Equal(t, 1, h.warnings())
}

// TestACallThatGivesUpMidRenewalKeepsTheRotatedLogin: the Hub renews the
// login, retiring its refresh token, but its answer arrives after the
// caller's context ended. The caller returns at its deadline, and the
// answer is still kept and saved: dropping it would leave only the
// retired refresh token, and the user logged out, in `hf` too.
func TestACallThatGivesUpMidRenewalKeepsTheRotatedLogin(t *testing.T) {
	h := newHFHome(t, time.Now().Add(time.Hour))
	// The Hub answers at once; its answer takes 2 s to come back.
	late := inference.RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		select {
		case <-time.After(2 * time.Second):
			return resp, nil
		case <-r.Context().Done():
			resp.Body.Close()
			return nil, r.Context().Err()
		}
	})
	src := inference.EnvTokenWith(inference.EnvTokenOptions{HubURL: h.r.URL(), Logger: h.logger, HTTPClient: &http.Client{Transport: late}})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := src.Token(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 1500*time.Millisecond, "the call returns when its context ends")

	tok, err := src.Token(t.Context())
	require.NoError(t, err)
	assert.NotEqual(t, "hf_oauth_al…", tok.Redacted(), "the late answer's token is served")
	assert.Equal(t, 1, h.renewals(), "the late answer was kept: nothing renewed twice")
	for _, q := range h.r.OAuthRequests() {
		assert.Empty(t, q.Error)
	}
	login := h.login(t)
	assert.Equal(t, login["hf_token"], h.activeToken(t), "saved for `hf` too")
	assert.NotEqual(t, oldRefresh, login["refresh_token"], "with the rotated refresh token")
	assert.Zero(t, h.warnings())
}

// TestClientRenewsThroughItsHubAndTransportAlone: the default source of
// a Client renews on the Client's Hub (WithHubURL), through its
// transport, without its middleware or a bearer token; a bare EnvToken
// uses HF_ENDPOINT.
func TestClientRenewsThroughItsHubAndTransportAlone(t *testing.T) {
	h := newHFHome(t, time.Now().Add(time.Hour))
	h.r.On("m/a", inferencetest.Reply("ok"))
	var mu sync.Mutex
	var seen []string
	transport := inference.RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		seen = append(seen, r.URL.Path+" auth="+r.Header.Get("Authorization"))
		mu.Unlock()
		return http.DefaultTransport.RoundTrip(r)
	})
	var throughMiddleware []string
	c, err := inference.NewClient(inference.WithBaseURL(h.r.URL()), inference.WithHubURL(h.r.URL()),
		inference.WithHTTPClient(&http.Client{Transport: transport}),
		inference.WithMiddleware(func(next http.RoundTripper) http.RoundTripper {
			return inference.RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
				throughMiddleware = append(throughMiddleware, r.URL.Path)
				return next.RoundTrip(r)
			})
		}))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "ok", resp.Text())
	assert.Equal(t, 1, h.renewals())
	require.Len(t, h.r.Requests(), 1)
	assert.Equal(t, h.login(t)["hf_token"][:11]+"…", h.r.Requests()[0].TokenPrefix, "the call carries the renewed token")
	assert.Equal(t, []string{"/v1/chat/completions"}, throughMiddleware)
	mu.Lock()
	assert.Equal(t, "/oauth/token auth=", seen[0])
	mu.Unlock()

	// A bare EnvToken renews on HF_ENDPOINT.
	h2 := newHFHome(t, time.Now().Add(time.Hour))
	t.Setenv("HF_ENDPOINT", h2.r.URL()+"/")
	_, err = inference.EnvToken().Token(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, h2.renewals())
}

// TestOneRenewalUnder100CallsAndTwoProcesses: a second process (this
// test binary, run as a helper) renews the login and holds the lock while
// 100 goroutines of this process ask for the token. Exactly one renewal
// reaches the Hub; every goroutine and the other process end with the
// same token, read from the files the other process wrote.
func TestOneRenewalUnder100CallsAndTwoProcesses(t *testing.T) {
	h := newHFHome(t, time.Now().Add(time.Hour))
	child := startHelper(t, "TestHelperProcessRenewsStoredLogin", "INFERENCE_HELPER_HUB="+h.r.URL())
	child.expect("helper: renewing")

	// The helper holds the lock, its renewal held back: now 100 calls.
	src := h.source()
	lockWaited := make(chan struct{})
	inference.OnLoginLockWait(src, func() { close(lockWaited) })
	const calls = 100
	tokens := make([]string, calls)
	errs := make([]error, calls)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			tok, err := src.Token(t.Context())
			errs[i] = err
			tokens[i] = tok.Redacted()
		})
	}
	select {
	case <-lockWaited:
	case <-time.After(20 * time.Second):
		t.Fatal("no goroutine waited for the other process's lock")
	}
	require.Eventually(t, func() bool { return inference.LoginWaiting(src) == calls-1 }, 20*time.Second, time.Millisecond,
		"the other goroutines wait for the one that looks")
	_, err := io.WriteString(child.stdin, "go\n")
	require.NoError(t, err)
	theirs := child.expect("helper: token ")
	require.NoError(t, child.cmd.Wait())
	wg.Wait()

	assert.Equal(t, 1, h.renewals(), "one renewal for two processes and 100 calls")
	active := h.activeToken(t)
	assert.Equal(t, fingerprint(active), theirs, "the other process served what it saved")
	for i := range calls {
		require.NoError(t, errs[i])
		assert.Equal(t, tokens[0], tokens[i])
	}
	assert.Equal(t, active[:11]+"…", tokens[0])
	assert.Zero(t, h.warnings())
	assert.JSONEq(t, inference.StoredTokensAsJSON([]byte(mustRead(t, h.storedPath))), inference.PythonReadsStoredTokens(t, h.storedPath))
}

// TestHelperProcessRenewsStoredLogin is the other process of
// TestOneRenewalUnder100CallsAndTwoProcesses: it renews the stored login
// (HF_HOME comes from the parent), holding the request back until the
// parent writes a line, then prints a fingerprint of its token.
func TestHelperProcessRenewsStoredLogin(t *testing.T) {
	hub := os.Getenv("INFERENCE_HELPER_HUB")
	if hub == "" {
		t.Skip("run by TestOneRenewalUnder100CallsAndTwoProcesses")
	}
	release := bufio.NewReader(os.Stdin)
	held := inference.RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
		fmt.Println("helper: renewing")
		if _, err := release.ReadString('\n'); err != nil {
			return nil, err
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	src := inference.EnvTokenWith(inference.EnvTokenOptions{HubURL: hub, HTTPClient: &http.Client{Transport: held}})
	inference.OnLoginLockWait(src, func() { fmt.Println("helper: lock busy") })
	tok, err := src.Token(context.Background())
	if err != nil {
		fmt.Println("helper: error", err)
		os.Exit(3)
	}
	data, err := os.ReadFile(os.Getenv("HF_HOME") + "/token")
	if err != nil || string(data)[:11]+"…" != tok.Redacted() {
		fmt.Println("helper: the token file does not hold the served token", err)
		os.Exit(4)
	}
	fmt.Println("helper: token " + fingerprint(string(data)))
}

func fingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:8])
}

// TestRenewalIsCancelledWhileWaitingForTheSlot: a call whose context
// ends while another goroutine renews returns at once.
func TestRenewalIsCancelledWhileWaitingForTheSlot(t *testing.T) {
	h := newHFHome(t, time.Now().Add(time.Hour))
	h.r.FailOAuth(inferencetest.Hang())
	src := h.source()
	first, cancelFirst := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := src.Token(first)
		done <- err
	}()
	require.Eventually(t, func() bool { return len(h.r.OAuthRequests()) == 1 }, 10*time.Second, time.Millisecond)
	second, cancelSecond := context.WithCancel(t.Context())
	waiting := make(chan error, 1)
	go func() {
		_, err := src.Token(second)
		waiting <- err
	}()
	require.Eventually(t, func() bool { return inference.LoginWaiting(src) == 1 }, 10*time.Second, time.Millisecond)
	cancelSecond()
	select {
	case err := <-waiting:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled call kept waiting")
	}
	cancelFirst()
	assert.ErrorIs(t, <-done, context.Canceled)
}

// TestDiagnoseSaysToLogInAgain: hfdoctor's diagnosis of an expired login
// the Hub will not renew names the login and says to log in again.
func TestDiagnoseSaysToLogInAgain(t *testing.T) {
	h := newHFHome(t, time.Now().Add(-time.Minute))
	h.r.RevokeLogin(oldRefresh)
	c, err := inference.NewClient(inference.WithBaseURL(h.r.URL()), inference.WithHubURL(h.r.URL()), inference.WithLogger(h.logger))
	require.NoError(t, err)
	d := c.Diagnose(t.Context(), inference.DiagnoseOptions{NoProbe: true})
	require.Len(t, d.Checks, 1)
	check := d.Checks[0]
	assert.Equal(t, "token found", check.Name)
	assert.Equal(t, inference.CheckProblem, check.Status)
	assert.Contains(t, check.Cause, `the browser login "oauth-alice" stored by`)
	assert.Contains(t, check.Cause, "invalid_grant")
	assert.Contains(t, check.Fix, "Run `hf auth login` again")
	assert.Contains(t, check.Fix, h.r.URL()+"/settings/tokens")
}

// TestRenewalErrorsHideWhatTheHubEchoes: a Hub that quotes the refresh
// token in its refusal has it removed from the error and the warning.
func TestRenewalErrorsHideWhatTheHubEchoes(t *testing.T) {
	h := newHFHome(t, time.Now().Add(-time.Minute))
	h.r.FailOAuth(inferencetest.Raw(400, http.Header{"Content-Type": {"application/json"}},
		`{"error":"invalid_grant","error_description":"the refresh token `+oldRefresh+` for `+oldAccess+` is revoked"}`))
	_, err := h.source().Token(t.Context())
	require.ErrorIs(t, err, inference.ErrUnauthorized)
	assert.Contains(t, err.Error(), "the refresh token [redacted] for [redacted] is revoked")
	assert.Contains(t, h.logs.String(), "[redacted]")
	for _, secret := range []string{oldRefresh, oldAccess} {
		assert.NotContains(t, err.Error(), secret)
		assert.NotContains(t, h.logs.String(), secret)
	}
}

// TestLoggedOutWhileWaitingForTheLock: `hf auth logout` removed the
// login while another process held the lock: the token read is served,
// nothing is renewed or written back.
func TestLoggedOutWhileWaitingForTheLock(t *testing.T) {
	h := newHFHome(t, time.Now().Add(time.Hour))
	release := inference.HoldStoredTokensLock(t, h.tokenPath)
	src := h.source()
	waiting := make(chan struct{})
	inference.OnLoginLockWait(src, func() { close(waiting) })
	got := make(chan inference.Token, 1)
	go func() {
		tok, err := src.Token(t.Context())
		assert.NoError(t, err)
		got <- tok
	}()
	<-waiting
	require.NoError(t, os.WriteFile(h.storedPath, []byte("[ci-write]\nhf_token = "+ciToken+"\n\n"), 0o600))
	release()
	tok := <-got
	assert.Equal(t, "hf_oauth_al…", tok.Redacted())
	assert.Empty(t, h.r.OAuthRequests())
	assert.Equal(t, "[ci-write]\nhf_token = "+ciToken+"\n\n", mustRead(t, h.storedPath))
}

// TestRenewalFollowsASymlinkedTokenFile: a token file that is a link
// (to a file kept elsewhere) stays a link; the file it points to is
// rewritten.
func TestRenewalFollowsASymlinkedTokenFile(t *testing.T) {
	h := newHFHome(t, time.Now().Add(time.Hour))
	target := filepath.Join(t.TempDir(), "real-token")
	require.NoError(t, os.Rename(h.tokenPath, target))
	require.NoError(t, os.Symlink(target, h.tokenPath))
	tok, err := h.source().Token(t.Context())
	require.NoError(t, err)
	fi, err := os.Lstat(h.tokenPath)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSymlink, fi.Mode()&os.ModeSymlink, "still a link")
	assert.Equal(t, tok.Redacted(), mustRead(t, target)[:11]+"…")
}

// TestSaveRefusesAStoredTokensFileItCannotRead: overwriting it would lose
// the other tokens, so the login is not saved.
func TestSaveRefusesAStoredTokensFileItCannotRead(t *testing.T) {
	home := noTokenEnv(t)
	r := deviceHub(t, inferencetest.DeviceLogin{User: alice})
	corrupt := "hf_token = a key before any section\n[ci-write]\nhf_token = " + ciToken + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(home, "stored_tokens"), []byte(corrupt), 0o600))
	l, _, err := login(t, r, inference.DeviceLoginOptions{Save: true})
	require.Error(t, err)
	assert.Nil(t, l)
	assert.Contains(t, err.Error(), "the login cannot be saved")
	assert.Contains(t, err.Error(), "fix or remove it")
	assert.Equal(t, corrupt, mustRead(t, filepath.Join(home, "stored_tokens")))
	assert.NoFileExists(t, filepath.Join(home, "token"))
}

// A client whose router is on this machine and whose Hub is not named (a
// test's mistake, see inferencetest) renews no login on the public Hub:
// the stored token serves while it is valid, the renewal is refused
// before anything is sent, and the warning says why. Found by trying the
// library as a new user: the renewal went to https://huggingface-proxy-6ci.pages.dev.
func TestATestClientRenewsNoLoginOnThePublicHub(t *testing.T) {
	h := newHFHome(t, time.Now().Add(time.Hour))
	h.r.On("m/a", inferencetest.Reply("ok"))
	u, err := url.Parse(h.r.URL())
	require.NoError(t, err)
	guard := &hostGuard{allowed: u.Host}
	c, err := inference.NewClient(inference.WithBaseURL(h.r.URL()), inference.WithLogger(h.logger),
		inference.WithHTTPClient(&http.Client{Transport: guard}))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "ok", resp.Text(), "the stored token serves while it is valid")
	assert.Empty(t, guard.seen(), "nothing left the machine")
	assert.Zero(t, h.renewals())
	assert.Contains(t, h.logs.String(), "WithHubURL")
}

// TestARenewalTheHubDidNotAnswerSaysToReachTheHub: a 5xx (a gateway's
// page), a proxy's HTML page and a refused connection are no refusal of
// the login: the error's fix, and the warning's, say to make the Hub
// reachable, as the README promises, and logging in again only if the
// login expired meanwhile; an OAuth refusal (invalid_grant) says to log
// in again.
func TestARenewalTheHubDidNotAnswerSaysToReachTheHub(t *testing.T) {
	closed := inferencetest.NewRouter()
	closedURL := closed.URL()
	closed.Close()
	for _, tc := range []struct {
		name    string
		answer  inferencetest.Answer
		hub     string
		relogin bool
	}{
		{"a 502", inferencetest.ProviderError(502), "", false},
		{"a 503 page", inferencetest.Raw(503, http.Header{"Content-Type": {"text/html"}}, "<html><h1>503 Service Temporarily Unavailable</h1></html>"), "", false},
		{"a proxy's 200 page", inferencetest.Raw(200, http.Header{"Content-Type": {"text/html"}}, "<html>Please wait</html>"), "", false},
		{"a refused connection", nil, closedURL, false},
		{"invalid_grant", inferencetest.Raw(400, http.Header{"Content-Type": {"application/json"}}, `{"error":"invalid_grant"}`), "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHFHome(t, time.Now().Add(-time.Minute))
			hub := h.r.URL()
			if tc.hub != "" {
				hub = tc.hub
			}
			if tc.answer != nil {
				h.r.FailOAuth(tc.answer)
			}
			src := inference.EnvTokenWith(inference.EnvTokenOptions{HubURL: hub, Logger: h.logger})
			_, err := src.Token(t.Context())
			require.ErrorIs(t, err, inference.ErrUnauthorized)
			var apiErr *inference.APIError
			require.ErrorAs(t, err, &apiErr)
			if tc.relogin {
				assert.True(t, strings.HasPrefix(apiErr.Fix(), "Run `hf auth login` again"), apiErr.Fix())
				return
			}
			assert.True(t, strings.HasPrefix(apiErr.Fix(), "Check that the Hub at "+hub+" can be reached"), apiErr.Fix())
			assert.Contains(t, h.logs.String(), "fix=\"Check that the Hub at ")
		})
	}
}

// TestHubOAuthRequestsFollowNoRedirectToAnotherHost: a 307 or 308 sends a
// request's form again where it points; a Hub (or a proxy before it) that
// redirects the token endpoint to another host gets neither the refresh
// token of a renewal (a bare EnvToken's, or a Client's), nor a CI's id
// token, nor a device login's code: the request fails, naming the
// redirect, and the login is otherwise handled as a Hub that did not
// answer.
func TestHubOAuthRequestsFollowNoRedirectToAnotherHost(t *testing.T) {
	var mu sync.Mutex
	var stolen []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		stolen = append(stolen, r.URL.Path+" "+string(body))
		mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
	}))
	t.Cleanup(other.Close)
	redirect := func(status int) inferencetest.Answer {
		return inferencetest.Raw(status, http.Header{"Location": {other.URL + "/oauth/token"}}, "")
	}
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			h := newHFHome(t, time.Now().Add(-time.Minute))
			h.r.FailOAuth(redirect(status))
			_, err := h.source().Token(t.Context())
			require.ErrorIs(t, err, inference.ErrUnauthorized)
			assert.Contains(t, err.Error(), "redirected to another origin")

			h.r.FailOAuth(redirect(status))
			c, err := inference.NewClient(inference.WithBaseURL(h.r.URL()), inference.WithHubURL(h.r.URL()), inference.WithLogger(h.logger))
			require.NoError(t, err)
			_, err = c.Whoami(t.Context())
			require.ErrorIs(t, err, inference.ErrUnauthorized)

			h.r.AddTrustedPublisher("eyJ.id-token.sig", "org/model", inferencetest.HubUser{Name: "ci"})
			h.r.FailOAuth(redirect(status))
			_, err = inference.OIDCToken(inference.OIDCOptions{Resource: "org/model", IDToken: "eyJ.id-token.sig", HubURL: h.r.URL()}).Token(t.Context())
			require.ErrorIs(t, err, inference.ErrUnauthorized)

			h.r.OnDeviceLogin(inferencetest.DeviceLogin{User: alice})
			l, _, err := login(t, h.r, inference.DeviceLoginOptions{Prompt: func(inference.DeviceCode) error {
				h.r.FailOAuth(redirect(status)) // the first poll
				return nil
			}})
			require.NoError(t, err, "a poll redirected away is one that failed: polling goes on")
			assert.Equal(t, "alice", l.User.Name)

			mu.Lock()
			defer mu.Unlock()
			assert.Empty(t, stolen, "nothing reached the other host")
		})
	}
}

// TestASourceThatNamesItsHubRenewsThereBesideALocalRouter: a client whose
// router is on this machine and whose Hub is unnamed sends no login to
// the public Hub; a source given its own Hub (EnvTokenWith's HubURL,
// OIDCOptions' HubURL) has named one, and renews or exchanges there.
func TestASourceThatNamesItsHubRenewsThereBesideALocalRouter(t *testing.T) {
	h := newHFHome(t, time.Now().Add(time.Hour))
	h.r.On("m/a", inferencetest.Reply("ok"))
	c, err := inference.NewClient(inference.WithBaseURL(h.r.URL()), inference.WithLogger(h.logger),
		inference.WithTokenSource(inference.EnvTokenWith(inference.EnvTokenOptions{HubURL: h.r.URL()})))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, 1, h.renewals(), "renewed on the Hub the source names")
	assert.Equal(t, h.login(t)["hf_token"][:11]+"…", h.r.Requests()[0].TokenPrefix)
	assert.Zero(t, h.warnings(), h.logs.String())

	h.r.AddTrustedPublisher("ci-id-token", "alice", inferencetest.HubUser{Name: "alice"})
	c, err = inference.NewClient(inference.WithBaseURL(h.r.URL()), inference.WithLogger(h.logger),
		inference.WithTokenSource(inference.OIDCToken(inference.OIDCOptions{Resource: "alice", IDToken: "ci-id-token", HubURL: h.r.URL()})))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "OIDC alice", resp.Attempts[0].TokenSource)
}

// TestARenewalWhoseTokenIsNoTokenChangesNothing: a Hub's answer whose
// access token cannot be a token (white space, a printed object) is a
// failed renewal: the files keep the login as it was, for `hf` too, and
// the current token serves while it is valid, with one warning.
func TestARenewalWhoseTokenIsNoTokenChangesNothing(t *testing.T) {
	for _, bad := range []string{"hf_oauth_two words", "None", "<OAuthToken object at 0x7f>"} {
		t.Run(bad, func(t *testing.T) {
			h := newHFHome(t, time.Now().Add(time.Hour))
			before := mustRead(t, h.storedPath)
			body, err := json.Marshal(map[string]any{"access_token": bad, "refresh_token": "rt-next", "expires_in": 3600, "token_type": "bearer"})
			require.NoError(t, err)
			h.r.FailOAuth(inferencetest.Raw(200, http.Header{"Content-Type": {"application/json"}}, string(body)))
			tok, err := h.source().Token(t.Context())
			require.NoError(t, err, "the current token serves")
			assert.Equal(t, "hf_oauth_al…", tok.Redacted())
			assert.Equal(t, before, mustRead(t, h.storedPath), "stored_tokens untouched")
			assert.Equal(t, oldAccess, h.activeToken(t), "the token file untouched")
			assert.Equal(t, 1, h.warnings())
			assert.NotContains(t, h.logs.String(), "two words", "the answer is not quoted")
		})
	}
}

// helperProcess is this test binary run as another process: one of the
// TestHelperProcess tests, its lines read as they come.
type helperProcess struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
}

func startHelper(t *testing.T, test string, env ...string) *helperProcess {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^"+test+"$", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	return &helperProcess{t: t, cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout)}
}

// expect reads up to a line starting with prefix and returns its rest.
func (p *helperProcess) expect(prefix string) string {
	p.t.Helper()
	for p.lines.Scan() {
		if rest, ok := strings.CutPrefix(p.lines.Text(), prefix); ok {
			return rest
		}
	}
	p.t.Fatalf("the helper process ended before %q: %v", prefix, p.lines.Err())
	return ""
}

// TestOneRenewalForThreeProcesses: two other processes and 20 goroutines
// of this one find the login near its expiry at once; the first process
// renews it holding the lock, the others wait for the lock, then adopt
// what it saved: one renewal, one token everywhere.
func TestOneRenewalForThreeProcesses(t *testing.T) {
	h := newHFHome(t, time.Now().Add(time.Hour))
	env := "INFERENCE_HELPER_HUB=" + h.r.URL()
	first := startHelper(t, "TestHelperProcessRenewsStoredLogin", env)
	first.expect("helper: renewing")
	second := startHelper(t, "TestHelperProcessRenewsStoredLogin", env)
	second.expect("helper: lock busy")

	src := h.source()
	lockWaited := make(chan struct{})
	inference.OnLoginLockWait(src, func() { close(lockWaited) })
	const calls = 20
	tokens := make([]string, calls)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			tok, err := src.Token(t.Context())
			assert.NoError(t, err)
			tokens[i] = fingerprint(inference.TokenValue(tok))
		})
	}
	select {
	case <-lockWaited:
	case <-time.After(20 * time.Second):
		t.Fatal("no goroutine waited for the other process's lock")
	}
	_, err := io.WriteString(first.stdin, "go\n")
	require.NoError(t, err)
	theirs := []string{first.expect("helper: token "), second.expect("helper: token ")}
	require.NoError(t, first.cmd.Wait())
	require.NoError(t, second.cmd.Wait())
	wg.Wait()

	assert.Equal(t, 1, h.renewals(), "one renewal for three processes")
	active := fingerprint(h.activeToken(t))
	assert.Equal(t, []string{active, active}, theirs)
	for i := range calls {
		assert.Equal(t, active, tokens[i])
	}
	assert.Zero(t, h.warnings())
}

// TestAProcessKilledHoldingTheLockHoldsItNoLonger: the lock of a process
// that died holding it (flock, released by the system) is taken at once,
// not after the 30 s a live holder gets.
func TestAProcessKilledHoldingTheLockHoldsItNoLonger(t *testing.T) {
	h := newHFHome(t, time.Now().Add(time.Hour))
	holder := startHelper(t, "TestHelperProcessHoldsTheLock", "INFERENCE_HELPER_HOLD=1")
	holder.expect("helper: holding")

	src := h.source()
	waited := make(chan struct{})
	inference.OnLoginLockWait(src, func() { close(waited) })
	got := make(chan error, 1)
	go func() {
		_, err := src.Token(t.Context())
		got <- err
	}()
	select {
	case <-waited:
	case <-time.After(20 * time.Second):
		t.Fatal("the lock was not found held")
	}
	killed := time.Now()
	require.NoError(t, holder.cmd.Process.Kill())
	_ = holder.cmd.Wait()
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("the dead process's lock was waited for")
	}
	assert.Less(t, time.Since(killed), 10*time.Second)
	assert.Equal(t, 1, h.renewals())
	assert.Equal(t, h.login(t)["hf_token"], h.activeToken(t))
}

// TestHelperProcessHoldsTheLock is the process of
// TestAProcessKilledHoldingTheLockHoldsItNoLonger: it takes the lock and
// holds it until it is killed.
func TestHelperProcessHoldsTheLock(t *testing.T) {
	if os.Getenv("INFERENCE_HELPER_HOLD") == "" {
		t.Skip("run by TestAProcessKilledHoldingTheLockHoldsItNoLonger")
	}
	inference.HoldStoredTokensLock(t, filepath.Join(os.Getenv("HF_HOME"), "token"))
	fmt.Println("helper: holding")
	_, _ = io.Copy(io.Discard, os.Stdin) // until killed
}

// TestARenewalTheFilesRefuseSaysToMakeThemWritable: a login whose files
// cannot be locked (HF_HOME read-only, a lock that is no file) is not
// renewed, since the renewal could not be saved for `hf`; the fix says
// what is wrong here, not to check the Hub, which was never asked.
func TestARenewalTheFilesRefuseSaysToMakeThemWritable(t *testing.T) {
	h := newHFHome(t, time.Now().Add(-time.Minute))
	require.NoError(t, os.Mkdir(filepath.Join(h.dir, "stored_tokens.lock"), 0o700))
	_, err := h.source().Token(t.Context())
	require.ErrorIs(t, err, inference.ErrUnauthorized)
	var apiErr *inference.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Empty(t, h.r.OAuthRequests(), "the Hub was not asked")
	assert.True(t, strings.HasPrefix(apiErr.Fix(), "Let this program read and write "+h.dir), apiErr.Fix())
	assert.Contains(t, h.logs.String(), `fix="Let this program read and write `+h.dir)
}

// TestAClientsUserSourceRenewsOnTheClientsHub: EnvToken given to the
// client as its user source (WithUserTokenSource) renews on the client's
// Hub, through its transport, as its own source does; before, it went to
// HF_ENDPOINT or the public Hub, past the guard of a local router.
func TestAClientsUserSourceRenewsOnTheClientsHub(t *testing.T) {
	h := newHFHome(t, time.Now().Add(time.Hour))
	h.r.On("m/a", inferencetest.Reply("ok"))
	c, err := inference.NewClient(inference.WithBaseURL(h.r.URL()), inference.WithHubURL(h.r.URL()), inference.WithLogger(h.logger),
		inference.WithUserTokenSource(inference.EnvToken()))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, 1, h.renewals(), "renewed on the client's Hub")
	assert.Equal(t, h.login(t)["hf_token"][:11]+"…", h.r.Requests()[0].TokenPrefix)
	assert.Zero(t, h.warnings(), h.logs.String())
	assert.Equal(t, "call's token file "+h.tokenPath, resp.Attempts[0].TokenSource)

	// Beside a local router with no Hub named, it renews nothing.
	h2 := newHFHome(t, time.Now().Add(time.Hour))
	h2.r.On("m/a", inferencetest.Reply("ok"))
	u, err := url.Parse(h2.r.URL())
	require.NoError(t, err)
	guard := &hostGuard{allowed: u.Host}
	c, err = inference.NewClient(inference.WithBaseURL(h2.r.URL()), inference.WithLogger(h2.logger),
		inference.WithHTTPClient(&http.Client{Transport: guard}), inference.WithUserTokenSource(inference.EnvToken()))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Zero(t, h2.renewals())
	assert.Contains(t, h2.logs.String(), "WithHubURL", "the warning says why")
}
