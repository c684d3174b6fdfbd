//go:build unix

package inference

import (
	"errors"
	"os"
	"syscall"
)

// tryLock takes flock(2) on path without waiting, as huggingface_hub's
// filelock does on Unix, so that both exclude each other.
func tryLock(path string) (func(), error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o664)
		if err != nil {
			return nil, err
		}
		fd := int(f.Fd())
		if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			_ = f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EINTR) {
				return nil, errLockBusy
			}
			return nil, err
		}
		// The file may have been removed and made anew between opening
		// and locking it: a lock on the removed one excludes nobody.
		held, err1 := f.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return func() {
				_ = syscall.Flock(fd, syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		_ = f.Close()
	}
}
