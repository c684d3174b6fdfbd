package inference

import (
	"testing"
	"time"
)

// Hooks into a source's login renewal, for the external tests (package
// inference_test) that drive it with inferencetest's fake Hub.

// loginOf is the refresher of an EnvToken or DeviceLogin source.
func loginOf(ts TokenSource) *loginRefresher {
	switch s := ts.(type) {
	case *envSource:
		return s.login
	case *loginSource:
		return s.login
	}
	panic("not a login source")
}

// SetLoginClock makes ts's renewal (or an OIDCToken's cache) see the
// time now gives. Call it before ts is used.
func SetLoginClock(ts TokenSource, now func() time.Time) {
	if s, ok := ts.(*oidcSource); ok {
		s.now = now
		return
	}
	loginOf(ts).now = now
}

// OnLoginLockWait calls f when ts's renewal finds the cross-process lock
// held by someone else. Call it before ts is used.
func OnLoginLockWait(ts TokenSource, f func()) { loginOf(ts).onLockWait = f }

// LoginWaiting is how many goroutines wait while another looks at ts's
// login.
func LoginWaiting(ts TokenSource) int { return int(loginOf(ts).waiting.Load()) }

// TokenValue is the token itself, for tests that must tell two tokens
// apart: Redacted shows two characters after the prefix, which two tokens
// of the fake Hub share once in 256. Compare fingerprints of it, so that
// a failure prints no token.
func TokenValue(t Token) string { return t.value() }

// StoredTokensAsJSON is stored_tokens' content as huggingface_hub's
// reader gives it ([[name, [[key, value], ...]], ...]), as read here.
func StoredTokensAsJSON(data []byte) string { return asPython(parseStoredTokens(data)) }

// PythonReadsStoredTokens is the same, as huggingface_hub's own reader
// (Python's configparser) reads the file at path; it skips the test where
// python3 is absent.
func PythonReadsStoredTokens(t *testing.T, path string) string { return pythonRead(t, path) }

// HoldStoredTokensLock takes the lock a renewal takes on the
// stored_tokens beside tokenPath, as another process would; call the
// returned function to release it.
func HoldStoredTokensLock(t *testing.T, tokenPath string) func() {
	unlock, err := lockStoredTokens(t.Context(), tokenFiles{tokenPath: tokenPath}.lockPath(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return unlock
}
