package inference_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// These tests log in with the device flow against the fake Hub, which asks
// for a 1 s polling interval: the waits are oauth2's own, in real time.

var alice = inferencetest.HubUser{Name: "alice"}

func deviceHub(t *testing.T, l inferencetest.DeviceLogin) *inferencetest.Router {
	t.Helper()
	r := inferencetest.NewRouter()
	t.Cleanup(r.Close)
	r.OnDeviceLogin(l)
	return r
}

// polls are the arrival times of the device code's polls.
func polls(r *inferencetest.Router) []time.Time {
	var out []time.Time
	for _, q := range r.OAuthRequests() {
		if q.Grant == inferencetest.GrantDeviceCode {
			out = append(out, q.Time)
		}
	}
	return out
}

func gaps(times []time.Time) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(times); i++ {
		out = append(out, times[i].Sub(times[i-1]))
	}
	return out
}

// shown records what Prompt was given.
type shown struct {
	codes atomic.Int32
	last  atomic.Pointer[inference.DeviceCode]
}

func (s *shown) prompt(c inference.DeviceCode) error {
	s.codes.Add(1)
	s.last.Store(&c)
	return nil
}

func login(t *testing.T, r *inferencetest.Router, opts inference.DeviceLoginOptions) (*inference.Login, *shown, error) {
	t.Helper()
	s := &shown{}
	if opts.Prompt == nil {
		opts.Prompt = s.prompt
	}
	opts.HubURL = r.URL()
	l, err := inference.DeviceLogin(t.Context(), opts)
	return l, s, err
}

func noTokenEnv(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, k := range []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_ENDPOINT", "HF_DEVICE_CODE_OAUTH_CLIENT_ID"} {
		t.Setenv(k, "")
	}
	t.Setenv("HF_HOME", dir)
	return dir
}

func TestDeviceLoginPendingThenApproved(t *testing.T) {
	t.Parallel()
	r := deviceHub(t, inferencetest.DeviceLogin{User: alice, UserCode: "WXYZ-1234",
		Polls: []inferencetest.DevicePoll{inferencetest.DevicePending, inferencetest.DevicePending, inferencetest.DeviceApprove}})
	l, s, err := login(t, r, inference.DeviceLoginOptions{})
	require.NoError(t, err)

	require.Equal(t, int32(1), s.codes.Load())
	code := s.last.Load()
	assert.Equal(t, "WXYZ-1234", code.UserCode)
	assert.Equal(t, r.URL()+"/oauth/device", code.VerificationURI)
	assert.Equal(t, r.URL()+"/oauth/device?user_code=WXYZ-1234", code.VerificationURIComplete)
	assert.WithinDuration(t, time.Now().Add(15*time.Minute), code.Expiry, time.Minute)

	reqs := r.OAuthRequests()
	require.Len(t, reqs, 4)
	assert.Equal(t, "/oauth/device", reqs[0].Path)
	for _, q := range reqs {
		assert.Equal(t, inference.DeviceLoginClientID, q.ClientID)
	}
	assert.Equal(t, []string{"authorization_pending", "authorization_pending", ""}, []string{reqs[1].Error, reqs[2].Error, reqs[3].Error})
	for _, g := range gaps(polls(r)) {
		assert.GreaterOrEqual(t, g, 950*time.Millisecond, "polls keep the interval the Hub asked for")
	}

	assert.Equal(t, "alice", l.User.Name)
	assert.True(t, l.User.OAuth())
	assert.Equal(t, []string{"openid", "profile", "inference-api"}, l.Scopes)
	assert.Equal(t, inference.CapabilityYes, l.CanCallInference)
	assert.Empty(t, l.Missing)
	assert.True(t, l.Renewable)
	assert.WithinDuration(t, time.Now().Add(30*24*time.Hour), l.Expiry, time.Minute)
	assert.Empty(t, l.SavedAs)
	tok, err := l.Tokens.Token(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "device login", tok.Source)
	assert.Equal(t, "DeviceLogin", fmt.Sprint(l.Tokens))
	assert.True(t, tok.OAuth)

	// The token works: a client calls the router with it.
	r.On("m/a", inferencetest.Reply("hello"))
	c, err := r.Client(inference.WithTokenSource(l.Tokens))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "hello", resp.Text())
	assert.Equal(t, tok.Redacted(), r.Requests()[0].TokenPrefix)
}

// TestDeviceLoginSlowDownAddsFiveSeconds: after slow_down the next poll
// comes 5 s later than the interval, as RFC 8628 asks and oauth2 does;
// a 5xx then ends oauth2's polling, and the login polls on at the
// interval slow_down set.
func TestDeviceLoginSlowDownAddsFiveSeconds(t *testing.T) {
	t.Parallel()
	r := deviceHub(t, inferencetest.DeviceLogin{User: alice,
		Polls: []inferencetest.DevicePoll{inferencetest.DeviceSlowDown, inferencetest.DeviceServerError, inferencetest.DeviceApprove}})
	l, _, err := login(t, r, inference.DeviceLoginOptions{})
	require.NoError(t, err)
	assert.Equal(t, "alice", l.User.Name)
	g := gaps(polls(r))
	require.Len(t, g, 2)
	for _, d := range g {
		assert.GreaterOrEqual(t, d, 6*time.Second-50*time.Millisecond)
		assert.Less(t, d, 9*time.Second)
	}
}

// TestDeviceLoginGoesOnAfterTransientAnswers: a dropped connection, a
// 503 page and a proxy's 200 page are not the end of a login.
func TestDeviceLoginGoesOnAfterTransientAnswers(t *testing.T) {
	t.Parallel()
	r := deviceHub(t, inferencetest.DeviceLogin{User: alice,
		Polls: []inferencetest.DevicePoll{inferencetest.DeviceServerError, inferencetest.DeviceNotOAuth, inferencetest.DeviceApprove}})
	l, _, err := login(t, r, inference.DeviceLoginOptions{Prompt: func(inference.DeviceCode) error {
		r.FailOAuth(inferencetest.Drop()) // the first poll's connection is closed
		return nil
	}})
	require.NoError(t, err)
	assert.Equal(t, "alice", l.User.Name)
	reqs := r.OAuthRequests()
	require.Len(t, reqs, 5)
	assert.Equal(t, []int{503, 200, 200}, []int{reqs[2].Status, reqs[3].Status, reqs[4].Status})
	for _, g := range gaps(polls(r)) {
		assert.GreaterOrEqual(t, g, 950*time.Millisecond)
	}
}

func TestDeviceLoginEndsWhenExpiredOrDenied(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		login inferencetest.DeviceLogin
		want  error
		polls int
	}{
		{"expired_token", inferencetest.DeviceLogin{Polls: []inferencetest.DevicePoll{inferencetest.DevicePending, inferencetest.DeviceExpired}}, inference.ErrLoginExpired, 2},
		{"access_denied", inferencetest.DeviceLogin{Polls: []inferencetest.DevicePoll{inferencetest.DeviceDenied}}, inference.ErrLoginDenied, 1},
		{"the code's own expiry", inferencetest.DeviceLogin{CodeLifetime: 2 * time.Second, Polls: []inferencetest.DevicePoll{inferencetest.DevicePending}}, inference.ErrLoginExpired, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := deviceHub(t, tc.login)
			start := time.Now()
			l, _, err := login(t, r, inference.DeviceLoginOptions{})
			require.ErrorIs(t, err, tc.want)
			assert.Nil(t, l)
			assert.Less(t, time.Since(start), 5*time.Second)
			assert.GreaterOrEqual(t, len(polls(r)), tc.polls)
			assert.LessOrEqual(t, len(polls(r)), tc.polls+1)
		})
	}
}

// TestDeviceLoginStopsAtOnceWhenCancelled: cancelling between polls, or
// while a poll hangs on a Hub that never answers, ends the login at once
// and nothing polls afterwards.
func TestDeviceLoginStopsAtOnceWhenCancelled(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	// Its cases run in parallel with each other only: this test is not
	// parallel, so nothing else runs until it is over.
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	for _, hang := range []bool{false, true} {
		t.Run(map[bool]string{false: "between polls", true: "during a poll that hangs"}[hang], func(t *testing.T) {
			t.Parallel()
			r := deviceHub(t, inferencetest.DeviceLogin{Polls: []inferencetest.DevicePoll{inferencetest.DevicePending}})
			transport := &http.Transport{}
			defer transport.CloseIdleConnections()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := inference.DeviceLogin(ctx, inference.DeviceLoginOptions{HubURL: r.URL(), HTTPClient: &http.Client{Transport: transport},
					Prompt: func(inference.DeviceCode) error {
						if hang {
							r.FailOAuth(inferencetest.Hang())
						}
						return nil
					}})
				done <- err
			}()
			require.Eventually(t, func() bool { return len(polls(r)) >= 1 }, 10*time.Second, time.Millisecond)
			if !hang {
				time.Sleep(100 * time.Millisecond) // the pending answer is back; oauth2 waits for the next tick
			}
			cancel()
			start := time.Now()
			select {
			case err := <-done:
				assert.ErrorIs(t, err, context.Canceled)
			case <-time.After(2 * time.Second):
				t.Fatal("the login went on after its context was cancelled")
			}
			assert.Less(t, time.Since(start), 500*time.Millisecond)
			n := len(polls(r))
			time.Sleep(1200 * time.Millisecond) // more than the interval
			assert.Equal(t, n, len(polls(r)), "no poll after the login returned")
		})
	}
}

func TestDeviceLoginRefusedByTheHub(t *testing.T) {
	t.Parallel()
	r := deviceHub(t, inferencetest.DeviceLogin{User: alice})
	r.SetOAuth(inferencetest.HubOAuth{ClientID: "my-app"})
	_, s, err := login(t, r, inference.DeviceLoginOptions{ClientID: "another-app"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the Hub did not start it")
	assert.Contains(t, err.Error(), "HTTP 401 invalid_client")
	assert.Zero(t, s.codes.Load(), "nothing shown to the user")

	l, _, err := login(t, r, inference.DeviceLoginOptions{ClientID: "my-app"})
	require.NoError(t, err)
	assert.Equal(t, "alice", l.User.Name)
}

func TestDeviceLoginClientFromTheEnvironment(t *testing.T) {
	noTokenEnv(t)
	r := deviceHub(t, inferencetest.DeviceLogin{User: alice})
	r.SetOAuth(inferencetest.HubOAuth{ClientID: "my-app"})
	t.Setenv("HF_DEVICE_CODE_OAUTH_CLIENT_ID", "my-app")
	_, _, err := login(t, r, inference.DeviceLoginOptions{})
	require.NoError(t, err)
	for _, q := range r.OAuthRequests() {
		assert.Equal(t, "my-app", q.ClientID)
	}
}

// TestDeviceLoginSaysWhatIsMissing: a login granted without the
// inference-api scope cannot call Inference Providers; the Login says so
// exactly, and the router agrees.
func TestDeviceLoginSaysWhatIsMissing(t *testing.T) {
	t.Parallel()
	r := deviceHub(t, inferencetest.DeviceLogin{User: alice, Scopes: []string{"openid", "profile", "read-repos"}})
	l, _, err := login(t, r, inference.DeviceLoginOptions{Scopes: []string{"openid", "profile"}})
	require.NoError(t, err)
	assert.Equal(t, inference.CapabilityNo, l.CanCallInference)
	assert.Equal(t, []string{"openid", "profile", "read-repos"}, l.Scopes)
	assert.Contains(t, l.Missing, `the login was granted the scopes "openid profile read-repos" but not "inference-api"`)
	assert.Contains(t, l.Missing, r.URL()+"/settings/applications")

	// The router agrees: the token is refused for lack of the scope.
	r.On("m/a", inferencetest.Reply("hello"))
	c, err := r.Client(inference.WithTokenSource(l.Tokens))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), chatReq("m/a", ""))
	require.ErrorIs(t, err, inference.ErrMissingScope)
}

// TestDeviceLoginSavedWhereHuggingfaceHubKeepsIt: Save writes the section
// "oauth-alice" and the active token as `hf auth login` does (0600,
// readable by huggingface_hub's reader), EnvToken then serves it, and the
// login's source renews it in the files.
func TestDeviceLoginSavedWhereHuggingfaceHubKeepsIt(t *testing.T) {
	home := noTokenEnv(t)
	r := deviceHub(t, inferencetest.DeviceLogin{User: alice})
	require.NoError(t, os.WriteFile(filepath.Join(home, "stored_tokens"), []byte("[ci-write]\nhf_token = "+ciToken+"\n\n"), 0o600))
	l, _, err := login(t, r, inference.DeviceLoginOptions{Save: true})
	require.NoError(t, err)
	assert.Equal(t, "oauth-alice", l.SavedAs)
	assert.Equal(t, filepath.Join(home, "token"), l.TokenFile)
	assert.Equal(t, filepath.Join(home, "stored_tokens"), l.StoredTokensFile)
	assert.Empty(t, l.Warnings)
	assertSecret(t, l.TokenFile)
	assertSecret(t, l.StoredTokensFile)

	h := &hfHome{r: r, dir: home, tokenPath: l.TokenFile, storedPath: l.StoredTokensFile}
	saved := h.login(t)
	assert.Equal(t, h.activeToken(t), saved["hf_token"])
	assert.True(t, strings.HasPrefix(saved["refresh_token"], "hf_oauth_refresh_"))
	assert.Equal(t, l.Expiry.Unix(), mustInt(t, saved["expires_at"]))
	data := mustRead(t, l.StoredTokensFile)
	assert.Contains(t, inference.StoredTokensAsJSON([]byte(data)), `["ci-write",[["hf_token","`+ciToken+`"]]]`)
	assert.JSONEq(t, inference.StoredTokensAsJSON([]byte(data)), inference.PythonReadsStoredTokens(t, l.StoredTokensFile))

	env, err := inference.EnvToken().Token(t.Context())
	require.NoError(t, err)
	mine, err := l.Tokens.Token(t.Context())
	require.NoError(t, err)
	assert.Equal(t, env.Redacted(), mine.Redacted())
	assert.Equal(t, "stored login oauth-alice", mine.Source)
	assert.Equal(t, l.Expiry, mine.Expiry)

	// Logging in again: with an HF_TOKEN, the Login says that it comes
	// first; the source renews the saved login where it lives when it
	// nears its expiry, and `hf` would read the renewal.
	t.Setenv("HF_TOKEN", ciToken)
	r.SetOAuth(inferencetest.HubOAuth{TokenLifetime: 2 * time.Hour})
	l2, _, err := login(t, r, inference.DeviceLoginOptions{Save: true})
	require.NoError(t, err)
	require.Len(t, l2.Warnings, 1)
	assert.Contains(t, l2.Warnings[0], "HF_TOKEN is set")
	before := h.renewals()
	tok, err := l2.Tokens.Token(t.Context())
	require.NoError(t, err)
	assert.Equal(t, before+1, h.renewals(), "less than a day left: renewed")
	assert.Equal(t, h.activeToken(t)[:11]+"…", tok.Redacted())
	assert.Equal(t, h.login(t)["hf_token"], h.activeToken(t))
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	for _, c := range s {
		require.True(t, c >= '0' && c <= '9', s)
		n = n*10 + int64(c-'0')
	}
	return n
}

// TestDeviceLoginTokensRenewInMemory: an unsaved login renews through
// the Hub too, and keeps the rotated refresh token in memory.
func TestDeviceLoginTokensRenewInMemory(t *testing.T) {
	home := noTokenEnv(t)
	r := deviceHub(t, inferencetest.DeviceLogin{User: alice})
	r.SetOAuth(inferencetest.HubOAuth{TokenLifetime: 2 * time.Hour})
	l, _, err := login(t, r, inference.DeviceLoginOptions{})
	require.NoError(t, err)
	h := &hfHome{r: r}
	now := newClock(time.Now())
	inference.SetLoginClock(l.Tokens, now.now)
	first, err := l.Tokens.Token(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, h.renewals())
	now.add(6 * time.Minute)
	second, err := l.Tokens.Token(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 2, h.renewals(), "renewed with the rotated refresh token")
	// Two tokens of the fake Hub share their redacted prefix (two hex
	// digits) once in 256: tell them apart by their whole value.
	assert.NotEqual(t, fingerprint(inference.TokenValue(first)), fingerprint(inference.TokenValue(second)))
	for _, q := range r.OAuthRequests() {
		assert.NotEqual(t, "invalid_grant", q.Error)
	}

	now.add(3 * time.Hour)
	r.FailOAuth(inferencetest.ProviderError(502))
	_, err = l.Tokens.Token(t.Context())
	require.ErrorIs(t, err, inference.ErrUnauthorized)
	var apiErr *inference.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "Check that the Hub at "+r.URL()+" can be reached: the login is renewed as soon as it answers. If it has expired meanwhile: Log the user in again (DeviceLogin)",
		apiErr.Fix(), "a 502 is no refusal of the login")
	now.add(6 * time.Minute)
	r.FailOAuth(inferencetest.Raw(400, http.Header{"Content-Type": {"application/json"}}, `{"error":"invalid_grant"}`))
	_, err = l.Tokens.Token(t.Context())
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "Log the user in again (DeviceLogin)", apiErr.Fix())
	assert.NoFileExists(t, filepath.Join(home, "token"), "nothing saved unless asked")
	assert.NoFileExists(t, filepath.Join(home, "stored_tokens"))
}

func TestDeviceLoginRefusesBadOptions(t *testing.T) {
	noTokenEnv(t)
	r := deviceHub(t, inferencetest.DeviceLogin{User: alice})
	_, err := inference.DeviceLogin(t.Context(), inference.DeviceLoginOptions{HubURL: r.URL()})
	require.ErrorIs(t, err, inference.ErrInvalidRequest)
	assert.Contains(t, err.Error(), "Prompt is nil")

	_, err = inference.DeviceLogin(t.Context(), inference.DeviceLoginOptions{HubURL: "http://hub.example.com", Prompt: (&shown{}).prompt})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "clear text")

	refused := errors.New("the user closed the window")
	_, _, err = login(t, r, inference.DeviceLoginOptions{Prompt: func(inference.DeviceCode) error { return refused }})
	require.ErrorIs(t, err, refused)
	assert.Empty(t, polls(r), "nothing polled after the prompt failed")

	var nilCtx context.Context
	_, err = inference.DeviceLogin(nilCtx, inference.DeviceLoginOptions{HubURL: r.URL(), Prompt: (&shown{}).prompt})
	require.ErrorIs(t, err, inference.ErrInvalidRequest)
}

// TestDeviceLoginPollThatNeverAnswersIsTriedAgain: a poll the Hub
// accepts and never answers ends at the client's timeout, and polling
// goes on.
func TestDeviceLoginPollThatNeverAnswersIsTriedAgain(t *testing.T) {
	t.Parallel()
	r := deviceHub(t, inferencetest.DeviceLogin{User: alice})
	start := time.Now()
	l, _, err := login(t, r, inference.DeviceLoginOptions{HTTPClient: &http.Client{Timeout: 300 * time.Millisecond},
		Prompt: func(inference.DeviceCode) error {
			r.FailOAuth(inferencetest.Hang())
			return nil
		}})
	require.NoError(t, err)
	assert.Equal(t, "alice", l.User.Name)
	assert.Len(t, polls(r), 2)
	assert.Less(t, time.Since(start), 5*time.Second)
}

// TestSavedLoginNoticesANewLoginAfterInvalidGrant: the saved login's
// source keeps its name; when the Hub will no longer renew it, it does not
// ask again for the same login, but serves the new one once the user
// logs in again under that name.
func TestSavedLoginNoticesANewLoginAfterInvalidGrant(t *testing.T) {
	home := noTokenEnv(t)
	r := deviceHub(t, inferencetest.DeviceLogin{User: alice})
	logs := &syncBuffer{}
	l, _, err := login(t, r, inference.DeviceLoginOptions{Save: true, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	require.NoError(t, err)
	h := &hfHome{r: r, dir: home, tokenPath: l.TokenFile, storedPath: l.StoredTokensFile, logs: logs}
	r.RevokeLogin(h.login(t)["refresh_token"])
	now := newClock(l.Expiry.Add(-time.Hour)) // less than a day left
	inference.SetLoginClock(l.Tokens, now.now)
	tok, err := l.Tokens.Token(t.Context())
	require.NoError(t, err, "the current token is used while it is valid")
	assert.Equal(t, 1, h.renewals())
	now.add(6 * time.Minute)
	_, err = l.Tokens.Token(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, h.renewals(), "the same dead login is not renewed again")
	assert.Equal(t, 1, h.warnings())

	// `hf auth login` again, under the same name.
	r.AddLogin("hf_oauth_aliceAgainAAAAAAAAAAAAAAAAAAAAAA", "rt-again", alice)
	section := "[oauth-alice]\nhf_token = hf_oauth_aliceAgainAAAAAAAAAAAAAAAAAAAAAA\nrefresh_token = rt-again\nexpires_at = " +
		fmt.Sprint(now.now().Add(30*24*time.Hour).Unix()) + "\n\n"
	require.NoError(t, os.WriteFile(l.StoredTokensFile, []byte(section), 0o600))
	now.add(6 * time.Minute)
	again, err := l.Tokens.Token(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "hf_oauth_al…", again.Redacted())
	assert.NotEqual(t, tok.Expiry, again.Expiry)
	assert.Equal(t, 1, h.renewals(), "the new login has a month left")
}

// TestDeviceLoginRefusesACodeItCannotShowSafely: the code and the page
// go to the user's terminal or screen as they are, so an answer whose
// user_code carries control characters (a terminal's escape sequences, a
// line break that forges the text after it) or is no short code, or whose
// page is not a web page on the Hub's own host, is refused before
// anything is shown or polled.
func TestDeviceLoginRefusesACodeItCannotShowSafely(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, userCode, uri, uriComplete, want string
	}{
		{"an escape sequence in the code", "ABCD\x1b]8;;https://evil.example\x07EFGH", "", "", "user_code"},
		{"a line break in the code", "ABCD-EFGH\nLogin complete. Paste your token:", "", "", "user_code"},
		{"a code no one types", strings.Repeat("A", 200), "", "", "user_code"},
		{"a page on another host", "", "https://evil.example/oauth/device", "", "another host"},
		{"a completed page on another host", "", "", "https://evil.example/oauth/device?user_code=ABCD-EFGH", "another host"},
		{"a page that is a script", "", "javascript:alert(1)", "", "verification_uri"},
		{"a page with an escape sequence", "", "HUB/oauth/device\x1b[2J", "", "verification_uri"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := deviceHub(t, inferencetest.DeviceLogin{User: alice})
			answer := map[string]any{"device_code": "dc", "user_code": "ABCD-EFGH", "verification_uri": r.URL() + "/oauth/device",
				"verification_uri_complete": r.URL() + "/oauth/device?user_code=ABCD-EFGH", "interval": 1, "expires_in": 900}
			if tc.userCode != "" {
				answer["user_code"] = tc.userCode
			}
			if tc.uri != "" {
				answer["verification_uri"] = strings.ReplaceAll(tc.uri, "HUB", r.URL())
			}
			if tc.uriComplete != "" {
				answer["verification_uri_complete"] = tc.uriComplete
			}
			body, err := json.Marshal(answer)
			require.NoError(t, err)
			r.FailOAuth(inferencetest.Raw(200, http.Header{"Content-Type": {"application/json"}}, string(body)))
			l, s, err := login(t, r, inference.DeviceLoginOptions{})
			require.Error(t, err)
			assert.Nil(t, l)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "\x1b")
			assert.NotContains(t, err.Error(), "\n")
			assert.Zero(t, s.codes.Load(), "nothing shown")
			assert.Empty(t, polls(r), "nothing polled")
		})
	}
}
