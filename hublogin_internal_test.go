package inference

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestALockHeldTooLongSaysSo: a renewal that gave up waiting for another
// process's lock did not ask the Hub: its fix names the lock and what to
// do about it, not the Hub.
func TestALockHeldTooLongSaysSo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stored_tokens.lock")
	unlock, err := lockStoredTokens(t.Context(), path, nil)
	require.NoError(t, err)
	defer unlock()
	_, err = lockUntil(t.Context(), path, time.Now().Add(50*time.Millisecond), nil)
	require.Error(t, err)
	fix := newLoginRefresher(hubOAuth{hub: "https://hub.example"}, true).fixFor(err)
	assert.True(t, strings.HasPrefix(fix, "Another process has held "+path), fix)
	assert.Contains(t, fix, "Run `hf auth login` again")
}
