package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRanking(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out))
	text := out.String()
	assert.Contains(t, text, "6 vectors of 256 dimensions from sentence-transformers/all-MiniLM-L6-v2 (provider hf-inference, after 2 attempts)")
	lines := strings.Split(strings.TrimSpace(text), "\n")
	require.Len(t, lines, 7)
	assert.Contains(t, lines[2], "Providers serve models through one OpenAI-compatible API.", "the passage sharing most words ranks first")
	assert.Contains(t, lines[6], "Bananas", "the unrelated passage ranks last")
}
