//go:build !unix

package inference

// tryLock is the soft lock where flock(2) does not exist (see filelock.go).
func tryLock(path string) (func(), error) { return trySoftLock(path) }
