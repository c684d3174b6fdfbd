//go:build unix

package inference

import (
	"io/fs"
	"os"
	"syscall"
)

// keepOwner gives f, about to replace old, old's owner and group when they
// are another user's and this process may give them (root may): a
// program run as root (sudo -E) renewing a user's login would otherwise
// leave that user's `hf` a file it cannot read. huggingface_hub, which
// rewrites the file in place, keeps them too.
func keepOwner(f *os.File, old fs.FileInfo) {
	st, ok := old.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) == os.Geteuid() && int(st.Gid) == os.Getegid() {
		return
	}
	_ = f.Chown(int(st.Uid), int(st.Gid))
}
