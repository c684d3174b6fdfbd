package redact

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestString(t *testing.T) {
	const tok = "hf_AbcdefghijklmnopqrstuvwxyzABCDEFGH"
	tests := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"token " + tok + " here", "token [redacted] here"},
		{"Authorization: Bearer " + tok, "Authorization: Bearer [redacted]"},
		{"bearer abc.def-ghi", "bearer [redacted]"},
		{"oauth hf_oauth_abcdefghijklmnopqrstuvwxyz", "oauth [redacted]"},
		{"org api_org_abcdefghijklmnopqrstuvwxyz", "org [redacted]"},
		{"set HF_TOKEN_PATH or hf_oauth_scopes", "set HF_TOKEN_PATH or hf_oauth_scopes"},
		{"custom secret-value-123 echoed", "custom [redacted] echoed"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, String(tt.in, "secret-value-123"), tt.in)
	}
	assert.Equal(t, "a b c", String("a b c", "b"), "secrets shorter than 4 bytes are ignored")
}

func TestPrefix(t *testing.T) {
	assert.Equal(t, "hf_Ab…", Prefix("hf_AbcdefghijklmnopqrstuvwxyzABCDEFGH"))
	assert.Equal(t, "hf_oauth_ab…", Prefix("hf_oauth_abcdefghijklmnopqrstuvwxyz"))
	assert.Equal(t, "hf_…", Prefix("hf_short"))
	assert.Equal(t, "…", Prefix("tiny"))
	assert.Equal(t, "ey…", Prefix("eyJhbGciOiJIUzI1NiJ9.payload"))
}
