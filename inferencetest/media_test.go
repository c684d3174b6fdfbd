package inferencetest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// Images and audio, as a user's tests use them.

const imageModel = "org/flux"

// pngBytes is the start of a PNG, enough for a sniffer.
var pngBytes = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR0000")

// mediaRouter maps imageModel to fal-ai and replicate, each under an id of
// its own.
func mediaRouter(t *testing.T) (*inferencetest.Router, *inference.Client) {
	t.Helper()
	r := inferencetest.NewRouter()
	t.Cleanup(r.Close)
	r.AddModel(inferencetest.HubModel{ID: imageModel, PipelineTag: "text-to-image", Providers: []inferencetest.HubProvider{
		{Name: "fal-ai", Status: "live", ProviderID: "fal-ai/flux/dev"},
		{Name: "replicate", Status: "live", ProviderID: "owner/flux-rep"},
	}})
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	return r, c
}

// A job's requests are recorded: the submission by the Hub id and
// provider, the polls and the result by the job's id.
func TestJobRequestsAreRecorded(t *testing.T) {
	r, c := mediaRouter(t)
	r.On(imageModel+":fal-ai", inferencetest.Job{Queued: 1}.Image(pngBytes))
	resp, err := c.TextToImage(t.Context(), inference.ImageRequest{Model: imageModel, Provider: "fal-ai", Prompt: "a fox"})
	require.NoError(t, err)
	assert.Equal(t, pngBytes, resp.Image)
	jobs := r.Jobs()
	require.Len(t, jobs, 1)
	assert.Equal(t, inferencetest.JobRecord{ID: jobs[0].ID, Provider: "fal-ai", Model: imageModel, Task: "text-to-image", Polls: 2, Done: true}, jobs[0])
	var got []string
	for _, q := range r.Requests() {
		got = append(got, q.API+" "+q.Model+":"+q.Provider+" "+q.Job)
		assert.NotEmpty(t, q.TokenPrefix)
	}
	assert.Equal(t, []string{
		"text-to-image " + imageModel + ":fal-ai ",
		"job-status " + imageModel + ":fal-ai " + jobs[0].ID,
		"job-status " + imageModel + ":fal-ai " + jobs[0].ID,
		"job-result " + imageModel + ":fal-ai " + jobs[0].ID,
	}, got)
	assert.Equal(t, []string{imageModel + ":fal-ai"}, r.Models(), "the walk, without the job's later requests")
	cdn := r.CDN()
	require.Len(t, cdn, 1)
	assert.True(t, strings.HasPrefix(cdn[0].Path, "/files/"))
	assert.False(t, cdn[0].Token || cdn[0].Authorization || cdn[0].BillTo)
}

// The CDN sees what it is sent: a test asserting that it saw no token can
// fail.
func TestCDNRecordsATokenItIsSent(t *testing.T) {
	r, c := mediaRouter(t)
	r.On(imageModel+":replicate", inferencetest.Image(pngBytes))
	resp, err := c.TextToImage(t.Context(), inference.ImageRequest{Model: imageModel, Provider: "replicate", Prompt: "a fox"}, inference.WithResultURL())
	require.NoError(t, err)
	require.NotEmpty(t, resp.URL)
	assert.Empty(t, r.CDN(), "only the URL was asked for")

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, resp.URL, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+inferencetest.Token)
	req.Header.Set("X-HF-Bill-To", "acme")
	got, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	data, _ := io.ReadAll(got.Body)
	got.Body.Close()
	assert.Equal(t, pngBytes, data, "the file is served to anyone")
	cdn := r.CDN()
	require.Len(t, cdn, 1)
	assert.True(t, cdn[0].Token && cdn[0].Authorization && cdn[0].BillTo)
	assert.NotContains(t, cdn[0].Header.Get("Authorization"), "hf_", "the record keeps no token")
}

// The job routes answer as the providers' do, for a test that speaks HTTP
// itself.
func TestJobRoutesAnswerAsTheProvidersDo(t *testing.T) {
	r, _ := mediaRouter(t)
	r.On(imageModel+":fal-ai", inferencetest.Job{Queued: 2}.Image(pngBytes))
	r.On(imageModel+":replicate", inferencetest.Job{Queued: 1, Running: 1}.Image(pngBytes))
	do := func(method, path, token string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, r.URL()+path, strings.NewReader(`{"prompt":"a fox","input":{"prompt":"a fox"}}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	tok := inferencetest.Token

	status, sub := do(http.MethodPost, "/fal-ai/fal-ai/flux/dev?_subdomain=queue", tok)
	require.Equal(t, 200, status)
	assert.Equal(t, "IN_QUEUE", sub["status"])
	assert.Equal(t, 2.0, sub["queue_position"])
	id := sub["request_id"].(string)
	assert.Contains(t, sub["response_url"], "/fal-ai/flux/requests/"+id, "named on the provider's host, under fal's app")
	assert.NotContains(t, sub["response_url"], r.URL(), "not on the router")
	base := "/fal-ai/fal-ai/flux/requests/" + id
	_, st := do(http.MethodGet, base+"/status?_subdomain=queue", tok)
	assert.Equal(t, map[string]any{"status": "IN_QUEUE", "queue_position": 1.0}, map[string]any{"status": st["status"], "queue_position": st["queue_position"]})
	status, _ = do(http.MethodGet, base+"/status", "")
	assert.Equal(t, 401, status, "every request of a job needs the token")
	status, _ = do(http.MethodGet, base+"?_subdomain=queue", tok)
	assert.Equal(t, 400, status, "no result while it runs")
	status, cancel := do(http.MethodPut, base+"/cancel?_subdomain=queue", tok)
	assert.Equal(t, 202, status)
	assert.Equal(t, "CANCELLATION_REQUESTED", cancel["status"])
	status, _ = do(http.MethodGet, "/fal-ai/fal-ai/flux/requests/nope/status", tok)
	assert.Equal(t, 404, status)

	status, pred := do(http.MethodPost, "/replicate/v1/models/owner/flux-rep/predictions", tok)
	assert.Equal(t, 201, status)
	assert.Equal(t, "starting", pred["status"])
	assert.Nil(t, pred["output"], "just created")
	pid := pred["id"].(string)
	_, pred = do(http.MethodGet, "/replicate/v1/predictions/"+pid, tok)
	assert.Equal(t, "starting", pred["status"])
	_, pred = do(http.MethodGet, "/replicate/v1/predictions/"+pid, tok)
	assert.Equal(t, "processing", pred["status"])
	_, pred = do(http.MethodPost, "/replicate/v1/predictions/"+pid+"/cancel", tok)
	assert.Equal(t, "canceled", pred["status"])

	jobs := r.Jobs()
	require.Len(t, jobs, 2)
	assert.True(t, jobs[0].Cancelled && jobs[1].Cancelled)
	assert.Equal(t, imageModel, jobs[1].Model, "the provider's id mapped back to the Hub's")
}

// The router's failures serve the media routes too.
func TestFailuresOnMediaRoutes(t *testing.T) {
	r, c := mediaRouter(t)
	r.On(imageModel+":fal-ai", inferencetest.ProviderError(503))
	r.On(imageModel+":replicate", inferencetest.Gated())
	_, err := c.TextToImage(t.Context(), inference.ImageRequest{Model: imageModel, Prompt: "a fox"})
	require.ErrorIs(t, err, inference.ErrGatedModel)
	var fe *inference.FallbackError
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Attempts, 2)
	assert.ErrorIs(t, fe.Attempts[0].Err, inference.ErrProvider)
	assert.Empty(t, r.Jobs(), "no job was submitted")
}

// A media answer scripted for a chat model says what it serves.
func TestMediaAnswerOnAChatRoute(t *testing.T) {
	r := inferencetest.NewRouter()
	defer r.Close()
	r.On("org/chat", inferencetest.Image(pngBytes))
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), inference.ChatRequest{Model: "org/chat", Messages: []inference.Message{inference.UserMessage("hi")}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "image and audio routes only")
}

// Audio and the images answered at once, on every route the fake serves,
// as a user's tests call them: Speech and Transcription (and a Job's) in
// each provider's shape, recorded under the task asked.
func TestEveryAudioAndDirectImageRouteAnswers(t *testing.T) {
	const (
		asrModel    = "org/whisper"
		speechModel = "org/kokoro"
	)
	wav := append([]byte("RIFF\x24\x08\x00\x00WAVEfmt "), make([]byte, 64)...)
	flac := append([]byte("fLaC\x00\x00\x00\x22"), make([]byte, 64)...)
	chunks := []inference.TranscriptChunk{{Text: "hello", End: 1500 * time.Millisecond}, {Text: " world", Start: 1500 * time.Millisecond, End: 3 * time.Second}}
	// newRouter maps model, of pipeline tag, to provider under providerID.
	newRouter := func(t *testing.T, model, tag, provider, providerID string) (*inferencetest.Router, *inference.Client) {
		r := inferencetest.NewRouter()
		t.Cleanup(r.Close)
		r.AddModel(inferencetest.HubModel{ID: model, PipelineTag: tag, Providers: []inferencetest.HubProvider{
			{Name: provider, Status: "live", ProviderID: providerID}}})
		c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
		require.NoError(t, err)
		return r, c
	}
	// submitted is the task each submission was recorded under.
	submitted := func(r *inferencetest.Router) []string {
		var out []string
		for _, q := range r.Requests() {
			if !strings.HasPrefix(q.API, "job-") {
				out = append(out, q.API)
			}
		}
		return out
	}

	for _, provider := range []string{"hf-inference", "fal-ai", "together", "deepinfra", "replicate"} {
		t.Run("transcribe/"+provider, func(t *testing.T) {
			r, c := newRouter(t, asrModel, "automatic-speech-recognition", provider, "p/"+provider+"-asr")
			r.On(asrModel+":"+provider, inferencetest.Transcription("hello world", chunks...))
			got, err := c.Transcribe(t.Context(), inference.TranscribeRequest{Model: asrModel, Provider: provider, Audio: wav, ContentType: "audio/wav"})
			require.NoError(t, err)
			assert.Equal(t, "hello world", got.Text)
			assert.Equal(t, chunks, got.Chunks)
			assert.Equal(t, []string{"automatic-speech-recognition"}, submitted(r))
		})
		t.Run("speak/"+provider, func(t *testing.T) {
			r, c := newRouter(t, speechModel, "text-to-speech", provider, "p/"+provider+"-tts")
			r.On(speechModel+":"+provider, inferencetest.Speech(flac, "audio/flac"))
			got, err := c.Speak(t.Context(), inference.SpeechRequest{Model: speechModel, Provider: provider, Text: "hello there"})
			require.NoError(t, err)
			assert.Equal(t, flac, got.Audio)
			assert.Equal(t, "audio/flac", got.ContentType)
			assert.Equal(t, []string{"text-to-speech"}, submitted(r))
		})
	}

	t.Run("a transcription with no chunks", func(t *testing.T) {
		r, c := newRouter(t, asrModel, "automatic-speech-recognition", "hf-inference", asrModel)
		r.On(asrModel+":hf-inference", inferencetest.Transcription("just text"))
		got, err := c.Transcribe(t.Context(), inference.TranscribeRequest{Model: asrModel, Provider: "hf-inference", Audio: wav})
		require.NoError(t, err)
		assert.Equal(t, "just text", got.Text)
		assert.Empty(t, got.Chunks)
	})

	t.Run("a Replicate prediction of a pinned version, queued", func(t *testing.T) {
		r, c := newRouter(t, speechModel, "text-to-speech", "replicate", "owner/tts:5f0a9e")
		r.On(speechModel+":replicate", inferencetest.Job{Queued: 1, Running: 1}.Speech(flac, "audio/flac"))
		got, err := c.Speak(t.Context(), inference.SpeechRequest{Model: speechModel, Provider: "replicate", Text: "hello"})
		require.NoError(t, err)
		assert.Equal(t, flac, got.Audio)
		jobs := r.Jobs()
		require.Len(t, jobs, 1)
		assert.Equal(t, "text-to-speech", jobs[0].Task)
		assert.True(t, jobs[0].Done)
		var body struct {
			Version string `json:"version"`
		}
		require.NoError(t, json.Unmarshal(r.Requests()[0].Body, &body))
		assert.Equal(t, "5f0a9e", body.Version, "the pinned version, sent to /v1/predictions")
	})

	for _, provider := range []string{"hf-inference", "together", "nscale"} {
		t.Run("image/"+provider, func(t *testing.T) {
			r, c := newRouter(t, imageModel, "text-to-image", provider, "p/"+provider+"-img")
			r.On(imageModel+":"+provider, inferencetest.Image(pngBytes))
			got, err := c.TextToImage(t.Context(), inference.ImageRequest{Model: imageModel, Provider: provider, Prompt: "a fox"})
			require.NoError(t, err)
			assert.Equal(t, pngBytes, got.Image)
			assert.Equal(t, "image/png", got.ContentType)
			assert.Equal(t, []string{"text-to-image"}, submitted(r))
			assert.Empty(t, r.Jobs(), "answered at once")
		})
	}

	t.Run("a failing direct answer names the provider's words", func(t *testing.T) {
		r, c := newRouter(t, speechModel, "text-to-speech", "together", "p/tts")
		r.On(speechModel+":together", inferencetest.Job{Fail: "voice not found"}.Speech(flac, "audio/flac"))
		_, err := c.Speak(t.Context(), inference.SpeechRequest{Model: speechModel, Provider: "together", Text: "hello"})
		require.ErrorIs(t, err, inference.ErrProvider)
		assert.Contains(t, err.Error(), "voice not found")
	})
}
