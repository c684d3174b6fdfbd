package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStreamingOffline(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out, false, "meta-llama/Llama-3.3-70B-Instruct"))
	text := out.String()
	for _, want := range []string{
		"Streams let a reader see the answer as it is written, word by word.\n",
		`(together, 14 completion tokens, finish reason "stop")`,
		"The first words arrive, then\nkept 28 characters received before the failure",
		"the stream failed after content arrived: inference: the stream failed", "CUDA out of memory",
	} {
		assert.Contains(t, text, want)
	}
}
