//go:build unix

package inference_test

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRenewalKeepsTheFilesOwner: a program run by another user than the
// files' owner (root, under sudo -E, renewing the user's login) leaves
// them the owner's. huggingface_hub rewrites them in place; a file of
// root's, 0600, put in their place would lock `hf` out of its own login.
func TestRenewalKeepsTheFilesOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can give files to another user")
	}
	const uid, gid = 65534, 65534 // nobody
	h := newHFHome(t, time.Now().Add(time.Hour))
	for _, p := range []string{h.dir, h.tokenPath, h.storedPath} {
		require.NoError(t, os.Chown(p, uid, gid))
	}
	_, err := h.source().Token(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, h.renewals())
	assert.NotEqual(t, oldAccess, h.activeToken(t))
	for _, p := range []string{h.tokenPath, h.storedPath} {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		st := fi.Sys().(*syscall.Stat_t)
		assert.Equal(t, [2]uint32{uid, gid}, [2]uint32{st.Uid, st.Gid}, "%s keeps its owner", p)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}
}
