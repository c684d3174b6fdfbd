package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDeviceLoginOffline(t *testing.T) {
	// run sets these for its process; the test restores them.
	for _, k := range []string{"HF_HOME", "HF_TOKEN_PATH", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT"} {
		t.Setenv(k, "")
	}
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out, false, "meta-llama/Llama-3.3-70B-Instruct"))
	text := out.String()
	for _, want := range []string{
		"/oauth/device?user_code=ABCD-EFGH in a browser and check that it shows the code ABCD-EFGH.",
		"logged in as alice; the token expires in 12 hours and may call Inference Providers: yes",
		`saved as "oauth-alice" in stored_tokens (hf_token, refresh_token, expires_at), the active token in token`,
		"together answered, with the token from the token file: Logged in through the browser",
		"the login was renewed before the call and written back: it now expires in 30 days (was 12 hours); refresh token rotated: true",
	} {
		assert.Contains(t, text, want)
	}
	assert.NotContains(t, text, "hf_oauth_", "no token is printed")
}
