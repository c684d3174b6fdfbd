package inference

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// A refresh of a stored login holds a lock on "stored_tokens.lock" across
// processes, the lock huggingface_hub takes for the same purpose: when the
// Hub rotates refresh tokens, two processes refreshing at once would each
// spend the one refresh token, and one would be logged out.
//
// On Unix systems the lock is flock(2) on that file, which is what
// huggingface_hub's filelock takes there too: this library and `hf` (and
// any number of processes of either) exclude each other. Elsewhere
// (Windows) it is a lock file created exclusively, as filelock's
// SoftFileLock: processes of this library exclude each other and wait for
// huggingface_hub, but huggingface_hub on Windows locks the file's bytes
// and does not see it; a lock file older than softLockStale is taken to be
// left by a crashed process and removed.

// lockTimeout bounds the wait for the lock, as huggingface_hub's 30 s.
const lockTimeout = 30 * time.Second

// softLockStale is the age of a lock file taken to be abandoned.
const softLockStale = 2 * time.Minute

// errLockBusy is a try that found the lock held.
var errLockBusy = errors.New("the lock is held")

// lockHeldError is a wait for the lock that gave up: another process held
// it all along.
type lockHeldError struct{ path string }

func (e *lockHeldError) Error() string {
	return fmt.Sprintf("%s is held by another process for more than %s", e.path, lockTimeout)
}

// lockStoredTokens takes the lock at path, trying again with short pauses
// until it is free, ctx ends or lockTimeout passes. onWait, when not nil,
// is called once if the lock is held by someone else. The returned
// function releases it.
func lockStoredTokens(ctx context.Context, path string, onWait func()) (func(), error) {
	return lockUntil(ctx, path, time.Now().Add(lockTimeout), onWait)
}

// lockUntil is lockStoredTokens giving up at deadline.
func lockUntil(ctx context.Context, path string, deadline time.Time, onWait func()) (func(), error) {
	pause := 5 * time.Millisecond
	for waited := false; ; waited = true {
		unlock, err := tryLock(path)
		if err == nil {
			return unlock, nil
		}
		if !errors.Is(err, errLockBusy) {
			return nil, fmt.Errorf("cannot lock %s: %w", path, err)
		}
		if !waited && onWait != nil {
			onWait()
		}
		if time.Now().After(deadline) {
			return nil, &lockHeldError{path: path}
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// trySoftLock creates path exclusively: it exists while the lock is
// held. A lock file older than softLockStale is removed first.
func trySoftLock(path string) (func(), error) {
	if stale(path) {
		breakStaleLock(path)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o664)
	if errors.Is(err, fs.ErrExist) {
		return nil, errLockBusy
	}
	if err != nil {
		return nil, err
	}
	_ = f.Close()
	return func() { _ = os.Remove(path) }, nil
}

// stale reports a lock file older than softLockStale: left by a process
// that died holding it.
func stale(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && time.Since(fi.ModTime()) > softLockStale
}

// breakStaleLock removes the lock file at path if it is stale, under a
// second lock file (path + ".break"): two processes that find it stale at
// once would otherwise both remove it, the second removing the lock the
// first has just taken, and both would hold the lock. The one that gets
// the guard looks again; the other leaves it and tries again later.
func breakStaleLock(path string) {
	guard := path + ".break"
	if stale(guard) {
		// Left by a process that died between its two steps.
		_ = os.Remove(guard)
	}
	f, err := os.OpenFile(guard, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o664)
	if err != nil {
		return
	}
	_ = f.Close()
	defer func() { _ = os.Remove(guard) }()
	if stale(path) {
		_ = os.Remove(path)
	}
}
