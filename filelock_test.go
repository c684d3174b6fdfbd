package inference

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
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

// TestStaleSoftLockIsTakenByOneOfManyAtOnce: takers that find a lock
// file stale at the same moment break it once: one of them holds the
// lock, never two (the second removing the lock the first has just
// taken). The interleaving is rare: thousands of rounds of eight takers
// find it on the code without the guard.
func TestStaleSoftLockIsTakenByOneOfManyAtOnce(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-softLockStale - time.Minute)
	for round := range 2000 {
		path := filepath.Join(dir, fmt.Sprintf("stored_tokens.lock.%d", round))
		require.NoError(t, os.WriteFile(path, nil, 0o664))
		require.NoError(t, os.Chtimes(path, old, old))
		var holders atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 8 {
			wg.Go(func() {
				<-start
				if _, err := trySoftLock(path); err == nil {
					holders.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		require.LessOrEqual(t, holders.Load(), int32(1), "round %d: two takers hold the lock", round)
		assert.NoFileExists(t, path+".break")
	}
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
