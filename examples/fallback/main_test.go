package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFallbackOffline(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out, false))
	text := out.String()
	for _, want := range []string{
		`level=INFO msg="inference: trying the next candidate" from=meta-llama/Llama-3.1-8B-Instruct:nebius to=Qwen/Qwen3-Next-80B-A3B-Instruct:hyperbolic reason="the model is gated" status=403`,
		`from=Qwen/Qwen3-Next-80B-A3B-Instruct:hyperbolic to=meta-llama/Llama-3.3-70B-Instruct:together reason="the provider failed" status=502`,
		"answer from together: Anyone can inspect them.",
		"1. meta-llama/Llama-3.1-8B-Instruct:nebius", "HTTP 403, retried 0×: inference: the model is gated",
		"2. Qwen/Qwen3-Next-80B-A3B-Instruct:hyperbolic", "HTTP 502, retried 1×: inference: the provider failed",
		"3. meta-llama/Llama-3.3-70B-Instruct:together", "HTTP 200, retried 0×: served",
	} {
		assert.Contains(t, text, want)
	}
}
