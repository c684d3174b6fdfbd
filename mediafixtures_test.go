package inference

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The recorded exchanges of text-to-image, speech recognition and
// text-to-speech that @huggingface/inference kept in its test tapes,
// rebuilt from their shapes in testdata/media (see its README), each
// served where the router serves its provider: every one decodes as
// recorded, through the public calls. Result URLs in the answers point at
// the providers' CDNs; the test serves them from a CDN of its own, whose
// host replaces theirs.

// mediaFixture is testdata/media/name.
func mediaFixture(t testing.TB, name string) fixture {
	t.Helper()
	return loadFixture(t, filepath.Join("..", "media", name))
}

// recordedCDNs are the hosts recorded answers name files on.
var recordedCDNs = []string{"https://replicate.delivery", "https://fal.media", "https://storage.googleapis.com"}

// recordedExchange serves answer at every POST, the Hub's mapping of model
// to provider (id providerID, for task), and cdn (when set) at any path of
// a CDN whose URL replaces the recorded hosts in the answer. It returns a
// client of the router and what the CDN was asked.
func recordedExchange(t *testing.T, task, model, provider, providerID, answer, cdn string) (*Client, *[]*http.Request, *[][]byte) {
	t.Helper()
	var mu sync.Mutex
	var cdnReqs []*http.Request
	var posted [][]byte
	cdnSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		cdnReqs = append(cdnReqs, r.Clone(r.Context()))
		mu.Unlock()
		if cdn == "" {
			http.NotFound(w, r)
			return
		}
		mediaFixture(t, cdn).serve(w)
	}))
	t.Cleanup(cdnSrv.Close)
	ans := mediaFixture(t, answer)
	for _, host := range recordedCDNs {
		ans.body = bytes.ReplaceAll(ans.body, []byte(host), []byte(cdnSrv.URL))
	}
	router := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/models/") {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":%q,"pipeline_tag":%q,"inferenceProviderMapping":{%q:{"status":"live","providerId":%q,"task":%q}}}`,
				model, task, provider, providerID, task)
			return
		}
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		posted = append(posted, append([]byte(r.URL.RequestURI()+"\n"), body...))
		mu.Unlock()
		ans.serve(w)
	}))
	t.Cleanup(router.Close)
	c, err := NewClient(WithBaseURL(router.URL), WithHubURL(router.URL), WithToken(testToken), WithRetry(RetryPolicy{}))
	require.NoError(t, err)
	return c, &cdnReqs, &posted
}

func TestRecordedImageExchanges(t *testing.T) {
	jpeg := mediaFixture(t, "M22-fal-media-jpeg.http").body
	png := mediaFixture(t, "M23-replicate-delivery-png.http").body
	webp := mediaFixture(t, "M20-replicate-delivery-webp.http").body
	tests := []struct {
		name, provider, providerID, answer, cdn string
		// want is the image and its type, or the kind of the failure.
		want     []byte
		wantType string
		kind     error
		check    func(t *testing.T, resp *ImageResponse, posted []byte)
	}{
		{name: "hf-inference answers the JPEG", provider: "hf-inference", answer: "M01-hf-inference-image.http", want: jpeg, wantType: "image/jpeg"},
		{name: "together answers base64", provider: "together", providerID: "stabilityai/stable-diffusion-xl-base-1.0", answer: "M02-together-images.http", want: jpeg, wantType: "image/jpeg",
			check: func(t *testing.T, _ *ImageResponse, posted []byte) {
				assert.Contains(t, string(posted), `"response_format":"base64"`)
				assert.Contains(t, string(posted), `"model":"stabilityai/stable-diffusion-xl-base-1.0"`)
			}},
		{name: "OpenAI images shape with a WebP (recorded from nebius), as nscale answers", provider: "nscale", providerID: "black-forest-labs/FLUX.1-schnell", answer: "M03-nebius-images.http", want: webp, wantType: "image/webp"},
		{name: "replicate: processing, with the output", provider: "replicate", providerID: "black-forest-labs/flux-schnell", answer: "M04-replicate-flux-schnell.http", cdn: "M20-replicate-delivery-webp.http", want: webp, wantType: "image/webp",
			check: func(t *testing.T, resp *ImageResponse, posted []byte) {
				assert.Equal(t, "x4mple0flux0schnell0aaaa", resp.RequestID, "the prediction's id")
				assert.True(t, strings.HasSuffix(resp.URL, "/out-0.webp"))
				assert.True(t, strings.HasPrefix(string(posted), "/replicate/v1/models/black-forest-labs/flux-schnell/predictions\n"))
			}},
		{name: "replicate: a pinned version", provider: "replicate", providerID: "bytedance/sdxl-lightning-4step:5599ed30703defd1d160a25a63321b4dec97101d98b4674bcc56e41f62f35637", answer: "M05-replicate-pinned-version.http", cdn: "M23-replicate-delivery-png.http", want: png, wantType: "image/png",
			check: func(t *testing.T, _ *ImageResponse, posted []byte) {
				assert.True(t, strings.HasPrefix(string(posted), "/replicate/v1/predictions\n"))
				assert.Contains(t, string(posted), `"version":"5599ed30703defd1d160a25a63321b4dec97101d98b4674bcc56e41f62f35637"`)
			}},
		{name: "replicate refuses an input", provider: "replicate", providerID: "black-forest-labs/flux-schnell", answer: "M06-replicate-422-extra-property.http", kind: ErrInvalidRequest},
		{name: "fal answers the result at once", provider: "fal-ai", providerID: "fal-ai/flux/schnell", answer: "M07-fal-flux-schnell.http", cdn: "M22-fal-media-jpeg.http", want: jpeg, wantType: "image/jpeg",
			check: func(t *testing.T, resp *ImageResponse, posted []byte) {
				require.NotNil(t, resp.Seed)
				assert.Equal(t, uint64(2463045738), *resp.Seed)
				assert.True(t, strings.HasPrefix(string(posted), "/fal-ai/fal-ai/flux/schnell?_subdomain=queue\n"))
			}},
		{name: "fal's sync_mode data URL", provider: "fal-ai", providerID: "fal-ai/flux/schnell", answer: "M08-fal-sync-data-url.http", want: jpeg, wantType: "image/jpeg"},
		{name: "fal refuses an input", provider: "fal-ai", providerID: "fal-ai/flux-lora", answer: "M09-fal-422-detail-list.http", kind: ErrInvalidRequest},
		{name: "fal knows no such app", provider: "fal-ai", providerID: "fal-ai", answer: "M10-fal-404-plain.http", kind: ErrModelNotFound},
		{name: "fal's signed storage URL", provider: "fal-ai", providerID: "fal-ai/lora", answer: "M11-fal-signed-url.http", cdn: "M23-replicate-delivery-png.http", want: png, wantType: "image/png",
			check: func(t *testing.T, resp *ImageResponse, _ []byte) {
				assert.Contains(t, resp.URL, "X-Amz-Signature=0a1b2c3d", "the link as signed")
			}},
		{name: "together without a model", provider: "together", providerID: "x", answer: "M19-together-400-no-model.http", kind: ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			model := "org/recorded-image"
			c, cdn, posted := recordedExchange(t, taskTextToImage, model, tt.provider, tt.providerID, tt.answer, tt.cdn)
			resp, err := c.TextToImage(t.Context(), ImageRequest{Model: model, Provider: tt.provider, Prompt: "a paper boat"})
			if tt.kind != nil {
				require.Error(t, err)
				assert.Equal(t, []error{tt.kind}, kindsMatched(err))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, resp.Image)
			assert.Equal(t, tt.wantType, resp.ContentType)
			assert.Equal(t, tt.provider, resp.Provider)
			for _, r := range *cdn {
				assert.Empty(t, r.Header.Get("Authorization"), "no token on the CDN")
			}
			if tt.check != nil {
				require.Len(t, *posted, 1)
				tt.check(t, resp, (*posted)[0])
			}
		})
	}
}

func TestRecordedSpeechRecognitionExchanges(t *testing.T) {
	tests := []struct {
		name, provider, providerID, answer string
		text                               string
		chunks                             []TranscriptChunk
		kind                               error
	}{
		{name: "hf-inference", provider: "hf-inference", answer: "M12-hf-inference-asr.http", text: "THE BOAT DRIFTED SLOWLY ACROSS THE POND AS THE SUN CAME UP"},
		{name: "fal wizper", provider: "fal-ai", providerID: "fal-ai/wizper", answer: "M13-fal-wizper.http", text: "The boat drifted slowly across the pond as the sun came up.",
			chunks: []TranscriptChunk{{Text: "The boat drifted slowly across the pond as the sun came up.", Start: 360 * time.Millisecond, End: 4120 * time.Millisecond}}},
		{name: "fal whisper", provider: "fal-ai", providerID: "fal-ai/whisper", answer: "M14-fal-whisper.http", text: " the boat drifted slowly across the pond as the sun came up",
			chunks: []TranscriptChunk{{Text: " the boat drifted slowly across the pond as the sun came up", End: 4300 * time.Millisecond}}},
		{name: "fal refuses the data URL", provider: "fal-ai", providerID: "fal-ai/wizper", answer: "M15-fal-400-unsupported-data-url.http", kind: ErrInvalidRequest},
	}
	audio := mediaFixture(t, "M21-replicate-delivery-wav.http").body
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			model := "org/recorded-asr"
			c, _, posted := recordedExchange(t, taskSpeechToText, model, tt.provider, tt.providerID, tt.answer, "")
			resp, err := c.Transcribe(t.Context(), TranscribeRequest{Model: model, Provider: tt.provider, Audio: audio})
			if tt.kind != nil {
				require.Error(t, err)
				assert.Equal(t, []error{tt.kind}, kindsMatched(err))
				var apiErr *APIError
				require.ErrorAs(t, err, &apiErr)
				assert.True(t, apiErr.FromProvider, "a provider's own refusal: the walk may try another")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.text, resp.Text)
			assert.Equal(t, tt.chunks, resp.Chunks)
			require.Len(t, *posted, 1)
			switch tt.provider {
			case "hf-inference":
				assert.Equal(t, "/hf-inference/models/org/recorded-asr\n"+string(audio), string((*posted)[0]), "the audio as it is")
			case "fal-ai":
				assert.Contains(t, string((*posted)[0]), `{"audio_url":"data:audio/x-wav;base64,`, "fal's name for WAV")
			}
		})
	}
}

func TestRecordedSpeechExchanges(t *testing.T) {
	flac := mediaFixture(t, "M16-hf-inference-tts.http").body
	wav := mediaFixture(t, "M21-replicate-delivery-wav.http").body
	tests := []struct {
		name, provider, providerID, answer, cdn string
		want                                    []byte
		wantType                                string
		kind                                    error
	}{
		{name: "hf-inference answers FLAC", provider: "hf-inference", answer: "M16-hf-inference-tts.http", want: flac, wantType: "audio/flac"},
		{name: "replicate: processing, with the output", provider: "replicate", providerID: "jaaari/kokoro-82m:dfdf537ba482b029e0a761699e6f55e9162cfd159270bfe0e44857caa5f275a6", answer: "M17-replicate-tts.http", cdn: "M21-replicate-delivery-wav.http", want: wav, wantType: "audio/x-wav"},
		{name: "replicate wants the text", provider: "replicate", providerID: "jaaari/kokoro-82m:dfdf537ba482b029e0a761699e6f55e9162cfd159270bfe0e44857caa5f275a6", answer: "M18-replicate-422-text-required.http", kind: ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			model := "org/recorded-tts"
			c, _, posted := recordedExchange(t, taskTextToSpeech, model, tt.provider, tt.providerID, tt.answer, tt.cdn)
			resp, err := c.Speak(t.Context(), SpeechRequest{Model: model, Provider: tt.provider, Text: "The boat drifted slowly."})
			if tt.kind != nil {
				require.Error(t, err)
				assert.Equal(t, []error{tt.kind}, kindsMatched(err))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, resp.Audio)
			assert.Equal(t, tt.wantType, resp.ContentType)
			if tt.provider == "replicate" {
				var body struct {
					Input   map[string]any `json:"input"`
					Version string         `json:"version"`
				}
				_, raw, _ := bytes.Cut((*posted)[0], []byte("\n"))
				require.NoError(t, json.Unmarshal(raw, &body))
				assert.Equal(t, "The boat drifted slowly.", body.Input["text"], "Replicate's speech models take text")
				assert.NotEmpty(t, body.Version)
			}
		})
	}
}

// Every fixture in testdata/media is used by a test above.
func TestEveryMediaFixtureIsUsed(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "media", "*.http"))
	require.NoError(t, err)
	src, err := os.ReadFile("mediafixtures_test.go")
	require.NoError(t, err)
	for _, f := range files {
		assert.Contains(t, string(src), `"`+filepath.Base(f)+`"`, "a test uses %s", f)
	}
	readme, err := os.ReadFile(filepath.Join("testdata", "media", "README.md"))
	require.NoError(t, err)
	for _, f := range files {
		assert.Contains(t, string(readme), filepath.Base(f), "the README describes %s", f)
	}
}
