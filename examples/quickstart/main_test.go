package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference/inferencetest"
)

func TestQuickstartOffline(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out, false, "meta-llama/Llama-3.3-70B-Instruct", "auto", true))
	text := out.String()
	assert.Contains(t, text, "offline: using a local fake router")
	assert.Contains(t, text, "together answered: Open models")
	assert.Contains(t, text, "attempt 1: meta-llama/Llama-3.3-70B-Instruct status 200, retried 0×, token from static")
	assert.Contains(t, text, "tokens: 10 prompt + 13 completion")
	assert.Contains(t, text, "level=DEBUG")
	assert.NotContains(t, text, inferencetest.Token[5:])
}
