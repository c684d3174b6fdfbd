package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference/inferencetest"
)

func TestErrorsOffline(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out, false))
	text := out.String()
	for _, want := range []string{
		"demo/missing-scope\n  user sees: Please log in again",
		`OAuth scope "inference-api"`,
		"demo/gated\n  user sees: This model needs the owner's approval",
		"https://huggingface-proxy-6ci.pages.dev/demo/gated",
		"demo/no-credits\n  user sees: The account has run out",
		"demo/busy\n  user sees: Too many requests", "retry after 30s",
		"demo/down\n  user sees: The model's provider is having trouble",
		"demo/too-long\n  user sees: The conversation is too long",
		"demo/refused\n  user sees: The request was refused", "safety system",
		`request id "4s1eHdlzCZ-srTxUzxwoVRp6n3FItjfsWZgw7jqnOAy-wBm8Fdc8hQ=="`,
		"demo/bad-token\n  user sees: Sign in again",
		"a printed token object\n  user sees: Sign in again", "oauth_token.token",
		"no token anywhere\n  user sees: Sign in again", "HF_TOKEN",
	} {
		assert.Contains(t, text, want)
	}
	assert.NotContains(t, text, "<html")
	assert.NotContains(t, text, inferencetest.Token[5:])
}
