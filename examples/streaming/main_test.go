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
		"demo/cut-provider, with WithStreamRecovery and a fallback:\nA stream that breaks is sent again, and the reader never notices.\n",
		"attempt 1: demo/cut-provider: inference: the stream failed",
		"attempt 4: demo/backup: served",
	} {
		assert.Contains(t, text, want)
	}
	assert.NotContains(t, text, "started again", "the fallback reproduced the cut answer: seamless")
}
