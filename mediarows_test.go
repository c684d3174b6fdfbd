package inference

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"mime"
	"mime/multipart"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The README's tables of images and audio name every row of the table,
// with its protocol, and nothing else.
func TestReadmeListsEveryMediaRow(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	sections := map[string]string{taskTextToImage: "### Text to image", taskSpeechToText: "### Speech to text", taskTextToSpeech: "### Text to speech"}
	row := regexp.MustCompile(`(?m)^\| ([a-z-]+) \| .* \| (direct|queued|prediction) \| .* \|$`)
	for task, heading := range sections {
		_, section, ok := strings.Cut(string(readme), heading+"\n")
		require.True(t, ok, heading)
		section, _, _ = strings.Cut(section, "\n### ")
		listed := map[string]string{}
		for _, m := range row.FindAllStringSubmatch(section, -1) {
			listed[m[1]] = m[2]
		}
		want := map[string]string{}
		for _, r := range mediaRows {
			if r.task == task {
				want[r.provider] = r.protocol()
			}
		}
		assert.Equal(t, want, listed, heading)
	}
}

// body is the JSON body the row of provider and task makes for in.
func body(t *testing.T, provider, task string, in *mediaInput, id string) map[string]any {
	t.Helper()
	row := mediaRowFor(provider, task)
	require.NotNil(t, row)
	data, ct, err := row.body(in, id)
	require.NoError(t, err)
	require.Empty(t, ct, "JSON")
	var out map[string]any
	require.NoError(t, json.Unmarshal(data, &out))
	return out
}

// Each row puts the prompt, the provider's id and the parameters where
// its provider takes them; the prompt and the id win over a parameter of
// that name.
func TestImageBodies(t *testing.T) {
	g := 3.5
	seed := int64(7)
	req := ImageRequest{Prompt: "a fox", NegativePrompt: "blur", Width: 640, Height: 480, Steps: 4, GuidanceScale: &g, Seed: &seed,
		Parameters: map[string]any{"num_images": 2, "prompt": "not this", "model": "nor this"}}
	in := &mediaInput{text: req.Prompt, params: imageParams(&req)}
	hf := map[string]any{"negative_prompt": "blur", "width": 640.0, "height": 480.0, "num_inference_steps": 4.0, "guidance_scale": 3.5, "seed": 7.0, "num_images": 2.0, "prompt": "not this", "model": "nor this"}
	assert.Equal(t, map[string]any{"inputs": "a fox", "parameters": hf}, body(t, "hf-inference", taskTextToImage, in, "org/m"))
	assert.Equal(t, map[string]any{"prompt": "a fox", "model": "t/id", "response_format": "base64", "negative_prompt": "blur", "width": 640.0, "height": 480.0,
		"steps": 4.0, "guidance_scale": 3.5, "seed": 7.0, "num_images": 2.0}, body(t, "together", taskTextToImage, in, "t/id"))
	assert.Equal(t, "b64_json", body(t, "nscale", taskTextToImage, in, "n/id")["response_format"])
	fal := body(t, "fal-ai", taskTextToImage, in, "fal-ai/flux")
	assert.Equal(t, map[string]any{"width": 640.0, "height": 480.0}, fal["image_size"])
	assert.NotContains(t, fal, "width")
	assert.Equal(t, "a fox", fal["prompt"])
	rep := body(t, "replicate", taskTextToImage, in, "owner/model:v123")
	assert.Equal(t, "v123", rep["version"])
	assert.Equal(t, "a fox", rep["input"].(map[string]any)["prompt"])
	assert.NotContains(t, body(t, "replicate", taskTextToImage, in, "owner/model"), "version")
	assert.Equal(t, "z/id", body(t, "zai-org", taskTextToImage, in, "z/id")["model"])
	assert.Equal(t, "nor this", body(t, "wavespeed", taskTextToImage, in, "w/id")["model"], "wavespeed's model is in its route: a parameter of that name passes")
	assert.Equal(t, "/v1/predictions", mediaRowFor("replicate", taskTextToImage).route("owner/model:v123"))
	assert.Equal(t, "/v1/models/owner/model/predictions", mediaRowFor("replicate", taskTextToImage).route("owner/model"))
	assert.Equal(t, "/fal-ai/flux/schnell?_subdomain=queue", mediaRowFor("fal-ai", taskTextToImage).route("fal-ai/flux/schnell"))
}

func TestSpeechBodies(t *testing.T) {
	in := &mediaInput{text: "hello", params: map[string]any{"speed": 1.2}}
	assert.Equal(t, map[string]any{"input": "hello", "model": "hexgrad/Kokoro-82M", "voice": "af_alloy", "speed": 1.2},
		body(t, "together", taskTextToSpeech, in, "hexgrad/Kokoro-82M"), "Together's Kokoro needs a voice")
	assert.NotContains(t, body(t, "together", taskTextToSpeech, in, "canopy/orpheus"), "voice")
	assert.NotContains(t, body(t, "deepinfra", taskTextToSpeech, in, "hexgrad/Kokoro-82M"), "voice", "only Together defaults it")
	in.voice = "bf_emma"
	assert.Equal(t, "bf_emma", body(t, "deepinfra", taskTextToSpeech, in, "d/id")["voice"])
	assert.Equal(t, map[string]any{"text": "hello", "voice": "bf_emma", "speed": 1.2}, body(t, "replicate", taskTextToSpeech, in, "r/id")["input"])
	assert.Equal(t, map[string]any{"text": "hello", "voice": "bf_emma", "speed": 1.2}, body(t, "fal-ai", taskTextToSpeech, in, "fal-ai/kokoro"))
	assert.Equal(t, map[string]any{"inputs": "hello", "parameters": map[string]any{"speed": 1.2}}, body(t, "hf-inference", taskTextToSpeech, in, "org/m"), "no voice for hf-inference")
}

func TestAudioBodies(t *testing.T) {
	audio := []byte("RIFF\x00\x00\x00\x00WAVEfmt \x01\x02\x03")
	in := &mediaInput{audio: audio, audioType: "audio/wav", language: "fr"}

	raw, ct, err := mediaRowFor("hf-inference", taskSpeechToText).body(in, "org/m")
	require.NoError(t, err)
	assert.Equal(t, "audio/wav", ct)
	assert.Same(t, &audio[0], &raw[0], "hf-inference is sent the request's own bytes")

	fal := body(t, "fal-ai", taskSpeechToText, in, "fal-ai/whisper")
	assert.Equal(t, "data:audio/x-wav;base64,"+base64.StdEncoding.EncodeToString(audio), fal["audio_url"], "fal's name for WAV")
	assert.Equal(t, "fr", fal["language"])
	rep := body(t, "replicate", taskSpeechToText, in, "owner/whisper:v9")
	assert.Equal(t, map[string]any{"audio": "data:audio/wav;base64," + base64.StdEncoding.EncodeToString(audio), "language": "fr"}, rep["input"])
	assert.Equal(t, "v9", rep["version"])
	in.language = ""
	assert.NotContains(t, body(t, "fal-ai", taskSpeechToText, in, "fal-ai/whisper"), "language", "no language, none sent")

	for _, provider := range []string{"together", "deepinfra"} {
		in.language = "fr"
		data, ct, err := mediaRowFor(provider, taskSpeechToText).body(in, provider+"/whisper")
		require.NoError(t, err)
		_, params, err := mime.ParseMediaType(ct)
		require.NoError(t, err)
		form, err := multipart.NewReader(bytes.NewReader(data), params["boundary"]).ReadForm(1 << 20)
		require.NoError(t, err)
		assert.Equal(t, []string{provider + "/whisper"}, form.Value["model"])
		assert.Equal(t, []string{"fr"}, form.Value["language"])
		require.Len(t, form.File["file"], 1)
		assert.Equal(t, "audio.wav", form.File["file"][0].Filename)
		f, err := form.File["file"][0].Open()
		require.NoError(t, err)
		got := make([]byte, len(audio))
		_, err = f.Read(got)
		require.NoError(t, err)
		assert.Equal(t, audio, got)
		require.NoError(t, form.RemoveAll())
	}
	assert.Equal(t, "flac", audioExtension("audio/flac"))
	assert.Equal(t, "mp3", audioExtension("audio/mpeg"))
	assert.Equal(t, "wav", audioExtension("application/x-unknown"), "as @huggingface/inference defaults")
	assert.Equal(t, "video/webm", falAudioType("audio/webm;codecs=opus"))
	assert.Equal(t, "audio/ogg", falAudioType("audio/ogg"), "sent as it is: fal decides")
}

// A URL a provider names is reached through the router by its path alone,
// which must be clean.
func TestPathOf(t *testing.T) {
	p, err := pathOf("https://queue.fal.run/fal-ai/flux/requests/abc-123")
	require.NoError(t, err)
	assert.Equal(t, "/fal-ai/flux/requests/abc-123", p)
	for _, bad := range []string{"https://x/a/../../v1/chat/completions", "https://x", "https://x/a//b", "not a url at all %%", "relative/path"} {
		_, err := pathOf(bad)
		assert.Error(t, err, bad)
	}
}

// Each decoder reads every shape its provider sends; the fast reader and
// encoding/json agree where the fast one declines (a name in other case,
// a null list).
func TestDecoders(t *testing.T) {
	ref := func(s string) []byte { return []byte(`"` + s + `"`) }
	tests := []struct {
		name   string
		decode func([]byte, *mediaOut) error
		in     string
		want   mediaOut
		err    string
	}{
		{"images base64", decodeImagesData, `{"data":[{"b64_json":"QUJD","url":null},{"b64_json":"x"}]}`, mediaOut{ref: ref("QUJD"), refBase64: true}, ""},
		{"images url", decodeImagesData, `{"data":[{"url":"https://cdn.example/a.png"}],"id":"x"}`, mediaOut{ref: ref("https://cdn.example/a.png")}, ""},
		{"images in another case", decodeImagesData, `{"Data":[{"B64_JSON":"QUJD"}]}`, mediaOut{ref: ref("QUJD"), refBase64: true}, ""},
		{"images null", decodeImagesData, `{"data":null}`, mediaOut{}, "holds no image"},
		{"images not JSON", decodeImagesData, `<html>`, mediaOut{}, "not the images endpoint's JSON"},
		{"fal", decodeFalImages, `{"images":[{"url":"https://f/a.png","content_type":"image/png"}],"seed":18446744073709551615,"has_nsfw_concepts":[false,true]}`,
			mediaOut{ref: ref("https://f/a.png"), contentType: "image/png", seed: ptr(uint64(18446744073709551615))}, ""},
		{"fal flags null", decodeFalImages, `{"images":[{"url":"https://f/a.png"}],"has_nsfw_concepts":[null]}`, mediaOut{ref: ref("https://f/a.png")}, ""},
		{"fal flagged", decodeFalImages, `{"images":[{"url":"https://f/a.png"}],"has_nsfw_concepts":[true]}`, mediaOut{}, "not safe for work"},
		{"fal seed as text", decodeFalImages, `{"images":[{"url":"https://f/a.png"}],"seed":"12"}`, mediaOut{ref: ref("https://f/a.png"), seed: ptr(uint64(12))}, ""},
		{"fal no image", decodeFalImages, `{"images":[]}`, mediaOut{}, "holds no image"},
		{"transcript chunks", decodeTranscript, `{"text":"a b","chunks":[{"timestamp":[0.5,null],"text":"a b"}]}`,
			mediaOut{text: "a b", chunks: []TranscriptChunk{{Text: "a b", Start: 500 * time.Millisecond}}}, ""},
		{"transcript empty text", decodeTranscript, `{"text":""}`, mediaOut{}, ""},
		{"nemotron output", decodeTranscript, `{"output":"hi"}`, mediaOut{text: "hi"}, ""},
		{"not a transcript", decodeTranscript, `{"error":"busy"}`, mediaOut{}, "not a transcript"},
		{"replicate text", decodeReplicateTranscript, `{"output":"hi there"}`, mediaOut{text: "hi there"}, ""},
		{"replicate list", decodeReplicateTranscript, `{"output":["hi","there"]}`, mediaOut{text: "hi"}, ""},
		{"replicate translation", decodeReplicateTranscript, `{"output":{"translation":"bonjour"}}`, mediaOut{text: "bonjour"}, ""},
		{"replicate text file", decodeReplicateTranscript, `{"output":{"txt_file":"https://r/t.txt"}}`, mediaOut{ref: ref("https://r/t.txt"), refText: true}, ""},
		{"replicate nothing", decodeReplicateTranscript, `{"output":{"srt_file":null}}`, mediaOut{}, "not a transcript"},
		{"replicate file list", decodeReplicateFile, `{"output":["https://r/a.webp","https://r/b.webp"]}`, mediaOut{ref: ref("https://r/a.webp")}, ""},
		{"replicate no file", decodeReplicateFile, `{"output":{"x":1}}`, mediaOut{}, "not a file's URL"},
		{"wavespeed flagged", decodeWavespeed, `{"data":{"outputs":["https://w/a.png"],"has_nsfw_contents":[true]}}`, mediaOut{}, "not safe for work"},
		{"zai", decodeZai, `{"image_result":[{"url":"https://z/a.png"}]}`, mediaOut{ref: ref("https://z/a.png")}, ""},
		{"fal audio", decodeFalAudio, `{"audio":{"url":"https://f/a.wav","content_type":"audio/wav"}}`, mediaOut{ref: ref("https://f/a.wav"), contentType: "audio/wav"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out mediaOut
			err := tt.decode([]byte(tt.in), &out)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, out)
		})
	}
}

func ptr[T any](v T) *T { return &v }
