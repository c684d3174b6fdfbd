package main

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTranscribeOffline(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out, false, "openai/whisper-large-v3", "", "", ""))
	text := out.String()
	assert.Contains(t, text, "attempt 1: openai/whisper-large-v3:fal-ai: inference: the provider failed (HTTP 503")
	assert.Contains(t, text, "attempt 2: openai/whisper-large-v3:hf-inference: served")
	assert.Contains(t, text, "hf-inference transcribed 32044 bytes of audio with openai/whisper-large-v3:\nOpen models, open minds.\n")
	assert.Contains(t, text, "[ 0.40s –  1.00s]  open minds.")
}

func TestToneIsAWAV(t *testing.T) {
	assert.Equal(t, "audio/wave", http.DetectContentType(tone()))
}

func TestLiveNeedsAFile(t *testing.T) {
	assert.ErrorContains(t, run(t.Context(), &bytes.Buffer{}, true, "m/x", "", "", ""), "-live needs -file")
}
