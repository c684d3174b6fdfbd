package inference_test

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// Models of the media tests, each mapped by the fake Hub to every provider
// of its task (mediaRouter).
const (
	imageModel  = "black-forest-labs/FLUX.1-schnell"
	asrModel    = "openai/whisper-large-v3"
	speechModel = "hexgrad/Kokoro-82M"
)

// Providers of each task, in the Hub's order mediaRouter gives them.
var (
	imageProviders  = []string{"fal-ai", "replicate", "together", "nscale", "wavespeed", "zai-org", "hf-inference"}
	asrProviders    = []string{"fal-ai", "hf-inference", "together", "deepinfra", "replicate"}
	speechProviders = []string{"hf-inference", "fal-ai", "replicate", "together", "deepinfra"}
)

// providerID is the id the fake Hub gives a model at a provider.
func providerID(provider, model string) string {
	switch provider {
	case "hf-inference":
		return model
	case "fal-ai":
		return "fal-ai/" + map[string]string{imageModel: "flux/schnell", asrModel: "whisper", speechModel: "kokoro/american-english"}[model]
	}
	return provider + "-" + model
}

// mediaRouter is a fake router whose Hub maps the three models to every
// provider of their task.
func mediaRouter(t *testing.T) *inferencetest.Router {
	t.Helper()
	r := newRouter(t)
	add := func(model, tag string, providers []string) {
		m := inferencetest.HubModel{ID: model, PipelineTag: tag}
		for _, p := range providers {
			m.Providers = append(m.Providers, inferencetest.HubProvider{Name: p, Status: "live", ProviderID: providerID(p, model)})
		}
		r.AddModel(m)
	}
	add(imageModel, "text-to-image", imageProviders)
	add(asrModel, "automatic-speech-recognition", asrProviders)
	add(speechModel, "text-to-speech", speechProviders)
	return r
}

// testPNG is a small real PNG.
func testPNG(t testing.TB, side int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, side, side))
	for i := range side {
		img.Set(i, i, color.RGBA{R: 200, G: 40, B: byte(i), A: 255})
	}
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	return b.Bytes()
}

// testWAV is a short silent WAV.
var testWAV = append([]byte("RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data\x00\x08\x00\x00"), make([]byte, 2048)...)

// testFLAC is the start of a FLAC file, as hf-inference answers speech.
var testFLAC = append([]byte("fLaC\x00\x00\x00\x22"), bytes.Repeat([]byte{0x12, 0x34}, 512)...)

func TestTextToImageOnEveryRow(t *testing.T) {
	verifyNoLeaks(t)
	pic := testPNG(t, 16)
	for _, provider := range imageProviders {
		t.Run(provider, func(t *testing.T) {
			r := mediaRouter(t)
			r.On(imageModel+":"+provider, inferencetest.Image(pic))
			c, err := r.Client(inference.WithBillTo("acme"), inference.WithHeader("X-Trace", "t1"))
			require.NoError(t, err)
			resp, err := c.TextToImage(t.Context(), inference.ImageRequest{Model: imageModel, Provider: provider, Prompt: "a red diagonal"})
			require.NoError(t, err)
			assert.Equal(t, pic, resp.Image)
			assert.Equal(t, "image/png", resp.ContentType)
			assert.Equal(t, imageModel, resp.Model)
			assert.Equal(t, provider, resp.Provider)
			require.Len(t, resp.Attempts, 1)
			assert.NoError(t, resp.Attempts[0].Err)
			assertCleanCDN(t, r)
		})
	}
}

func TestTranscribeOnEveryRow(t *testing.T) {
	verifyNoLeaks(t)
	chunks := []inference.TranscriptChunk{{Text: "hello", Start: 0, End: 1500 * time.Millisecond}, {Text: " world", Start: 1500 * time.Millisecond, End: 3 * time.Second}}
	for _, provider := range asrProviders {
		t.Run(provider, func(t *testing.T) {
			r := mediaRouter(t)
			r.On(asrModel+":"+provider, inferencetest.Transcription("hello world", chunks...))
			c, err := r.Client()
			require.NoError(t, err)
			resp, err := c.Transcribe(t.Context(), inference.TranscribeRequest{Model: asrModel, Provider: provider, Audio: testWAV, Language: "en"})
			require.NoError(t, err)
			assert.Equal(t, "hello world", resp.Text)
			assert.Equal(t, chunks, resp.Chunks)
			assert.Equal(t, provider, resp.Provider)
		})
	}
}

func TestSpeakOnEveryRow(t *testing.T) {
	verifyNoLeaks(t)
	for _, provider := range speechProviders {
		t.Run(provider, func(t *testing.T) {
			r := mediaRouter(t)
			r.On(speechModel+":"+provider, inferencetest.Speech(testFLAC, "audio/flac"))
			c, err := r.Client(inference.WithBillTo("acme"), inference.WithHeader("X-Trace", "t1"))
			require.NoError(t, err)
			resp, err := c.Speak(t.Context(), inference.SpeechRequest{Model: speechModel, Provider: provider, Text: "hello there"})
			require.NoError(t, err)
			assert.Equal(t, testFLAC, resp.Audio)
			assert.Equal(t, "audio/flac", resp.ContentType)
			assert.Equal(t, provider, resp.Provider)
			assertCleanCDN(t, r)
		})
	}
}

// assertCleanCDN checks that every request of the call reached the router
// with the call's token, bill-to and headers, and that the CDN saw none of
// them.
func assertCleanCDN(t *testing.T, r *inferencetest.Router) {
	t.Helper()
	for _, q := range r.Requests() {
		assert.NotEmpty(t, q.TokenPrefix, q.API)
		assert.Equal(t, "acme", q.Header.Get("X-HF-Bill-To"), q.API)
	}
	for _, q := range r.CDN() {
		assert.True(t, strings.HasPrefix(q.Path, "/files/"), q.Path)
		assert.False(t, q.Token || q.Authorization || q.BillTo, "the CDN sees no token and no bill-to")
		assert.Empty(t, q.Header.Get("X-Trace"))
	}
}
