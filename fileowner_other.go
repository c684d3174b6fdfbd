//go:build !unix

package inference

import (
	"io/fs"
	"os"
)

// keepOwner does nothing where files have no POSIX owner (see
// fileowner_unix.go).
func keepOwner(*os.File, fs.FileInfo) {}
