package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestImagesOffline(t *testing.T) {
	var out bytes.Buffer
	dir := t.TempDir()
	require.NoError(t, run(t.Context(), &out, false, "black-forest-labs/FLUX.1-schnell", "", "a lighthouse", dir))
	text := out.String()
	assert.Contains(t, text, "replicate: starting (poll 0", "replicate accepted the job")
	assert.Contains(t, text, "replicate: processing (poll 1")
	assert.Contains(t, text, "attempt 1: black-forest-labs/FLUX.1-schnell:replicate: inference: the provider failed")
	assert.Contains(t, text, "CUDA out of memory")
	assert.Contains(t, text, "fal-ai: IN_QUEUE, 3 ahead in the queue (poll 0")
	assert.Contains(t, text, "fal-ai: IN_QUEUE, 0 ahead in the queue (poll 3")
	assert.Contains(t, text, "fal-ai: IN_PROGRESS (poll 4")
	assert.Contains(t, text, "fal-ai: COMPLETED (poll 5")
	assert.Contains(t, text, "attempt 2: black-forest-labs/FLUX.1-schnell:fal-ai: served")
	path := filepath.Join(dir, "image.png")
	assert.True(t, strings.HasSuffix(strings.TrimSpace(text), path), text)
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err, "a PNG was written")
	assert.Equal(t, 64, img.Bounds().Dx())
}
