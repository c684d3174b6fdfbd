package inference

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Both locks, the one of this system (flock on Unix) and the soft one of
// other systems, exclude a second taker until released.
func TestFileLocksExcludeUntilReleased(t *testing.T) {
	for name, try := range map[string]func(string) (func(), error){"system": tryLock, "soft": trySoftLock} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "stored_tokens.lock")
			unlock, err := try(path)
			require.NoError(t, err)
			_, err = try(path)
			require.ErrorIs(t, err, errLockBusy, "a second open of the file is excluded, in the same process too")
			unlock()
			unlock2, err := try(path)
			require.NoError(t, err)
			unlock2()
		})
	}
}

func TestSoftLockLeftByACrashIsTakenOver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stored_tokens.lock")
	require.NoError(t, os.WriteFile(path, nil, 0o664))
	_, err := trySoftLock(path)
	require.ErrorIs(t, err, errLockBusy)
	old := time.Now().Add(-softLockStale - time.Minute)
	require.NoError(t, os.Chtimes(path, old, old))
	unlock, err := trySoftLock(path)
	require.NoError(t, err)
	unlock()
	assert.NoFileExists(t, path)
}

// TestLockWaitsAndStopsWithTheContext: a held lock is waited for (onWait
// hears it once) until released, or until the context ends.
func TestLockWaitsAndStopsWithTheContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stored_tokens.lock")
	unlock, err := lockStoredTokens(t.Context(), path, nil)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	waits := 0
	_, err = lockStoredTokens(ctx, path, func() { waits++ })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, 1, waits)

	got := make(chan error, 1)
	waited := make(chan struct{})
	go func() {
		release, err := lockStoredTokens(t.Context(), path, func() { close(waited) })
		if err == nil {
			release()
		}
		got <- err
	}()
	<-waited
	unlock()
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the lock was not taken after its release")
	}
}
