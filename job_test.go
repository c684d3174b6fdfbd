package inference_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
	"github.com/hfkit/inference/internal/redact"
)

// The job engine, per protocol: fal's queue and wavespeed's and zai-org's
// tasks ("queued"), Replicate's predictions ("prediction"), and the
// providers that answer at once ("direct").

// jobProviders are the image providers that run jobs; cancellers, those
// whose jobs can be cancelled.
var (
	jobProviders = []string{"fal-ai", "replicate", "wavespeed", "zai-org"}
	cancellers   = []string{"fal-ai", "replicate"}
)

// mapModel makes the fake Hub map model (of task tag) to providers, in
// order.
func mapModel(r *inferencetest.Router, model, tag string, providers ...string) {
	m := inferencetest.HubModel{ID: model, PipelineTag: tag}
	for _, p := range providers {
		m.Providers = append(m.Providers, inferencetest.HubProvider{Name: p, Status: "live", ProviderID: providerID(p, model)})
	}
	r.AddModel(m)
}

// progressLog records WithProgress's calls.
type progressLog struct {
	mu   sync.Mutex
	seen []inference.JobProgress
}

func (p *progressLog) add(jp inference.JobProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, jp)
}

func (p *progressLog) all() []inference.JobProgress {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]inference.JobProgress(nil), p.seen...)
}

func imageReq(provider string) inference.ImageRequest {
	return inference.ImageRequest{Model: imageModel, Provider: provider, Prompt: "a lighthouse at dusk"}
}

// A job that fails is a failed attempt: the walk goes to the model's next
// provider, whatever the protocol.
func TestFailedJobWalksToTheNextProvider(t *testing.T) {
	verifyNoLeaks(t)
	pic := testPNG(t, 8)
	for _, first := range append([]string{"together"}, jobProviders...) {
		t.Run(first, func(t *testing.T) {
			r := newRouter(t)
			next := "hf-inference"
			mapModel(r, imageModel, "text-to-image", first, next)
			r.On(imageModel+":"+first, inferencetest.Job{Queued: 1, Running: 1, Fail: "CUDA out of memory"}.Image(pic))
			r.On(imageModel+":"+next, inferencetest.Image(pic))
			c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
			require.NoError(t, err)
			resp, err := c.TextToImage(t.Context(), imageReq(""))
			require.NoError(t, err)
			assert.Equal(t, pic, resp.Image)
			assert.Equal(t, next, resp.Provider)
			require.Len(t, resp.Attempts, 2)
			failed := resp.Attempts[0]
			assert.Equal(t, first, failed.Provider)
			assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(failed.Err))
			assert.Contains(t, failed.Err.Error(), "CUDA out of memory", "the provider's own words")
			assert.Contains(t, failed.Err.Error(), "provider "+first)
			assert.NoError(t, resp.Attempts[1].Err)
		})
	}
}

// A Replicate prediction, starting when it is submitted, is polled
// until it succeeds, not failed; each poll is reported.
func TestPredictionPolledUntilItSucceeds(t *testing.T) {
	verifyNoLeaks(t)
	r := mediaRouter(t)
	pic := testPNG(t, 8)
	r.On(imageModel+":replicate", inferencetest.Job{Queued: 2, Running: 2}.Image(pic))
	c, err := r.Client()
	require.NoError(t, err)
	var log progressLog
	resp, err := c.TextToImage(t.Context(), imageReq("replicate"), inference.WithProgress(log.add))
	require.NoError(t, err)
	assert.Equal(t, pic, resp.Image)
	jobs := r.Jobs()
	require.Len(t, jobs, 1)
	assert.Equal(t, 5, jobs[0].Polls, "two polls starting, two processing, the fifth succeeded")
	assert.Equal(t, jobs[0].ID, resp.RequestID, "the prediction's id")
	var statuses []string
	for _, p := range log.all() {
		statuses = append(statuses, p.Status)
		assert.Equal(t, jobs[0].ID, p.JobID)
		assert.Equal(t, -1, p.QueuePosition, "Replicate does not say")
	}
	assert.Equal(t, []string{"starting", "starting", "starting", "processing", "processing", "succeeded"}, statuses)
	var apis []string
	for _, q := range r.Requests() {
		apis = append(apis, q.API)
	}
	assert.Equal(t, []string{"text-to-image", "job-status", "job-status", "job-status", "job-status", "job-status"}, apis)
}

// The same for speech and transcripts: a transcript is waited for until
// the prediction succeeds.
func TestPredictionOfAudioPolled(t *testing.T) {
	verifyNoLeaks(t)
	r := mediaRouter(t)
	r.On(speechModel+":replicate", inferencetest.Job{Queued: 1}.Speech(testWAV, "audio/x-wav"))
	r.On(asrModel+":replicate", inferencetest.Job{Running: 2}.Transcription("good morning", inference.TranscriptChunk{Text: "good morning", End: time.Second}))
	c, err := r.Client()
	require.NoError(t, err)
	speech, err := c.Speak(t.Context(), inference.SpeechRequest{Model: speechModel, Provider: "replicate", Text: "good morning"})
	require.NoError(t, err)
	assert.Equal(t, testWAV, speech.Audio)
	assert.Equal(t, "audio/x-wav", speech.ContentType)
	text, err := c.Transcribe(t.Context(), inference.TranscribeRequest{Model: asrModel, Provider: "replicate", Audio: testWAV})
	require.NoError(t, err)
	assert.Equal(t, "good morning", text.Text)
	assert.Equal(t, []inference.TranscriptChunk{{Text: "good morning", End: time.Second}}, text.Chunks)
	jobs := r.Jobs()
	require.Len(t, jobs, 2)
	assert.Equal(t, 2, jobs[0].Polls)
	assert.Equal(t, 3, jobs[1].Polls)
}

// A fal job that stays IN_QUEUE is polled with its queue position counting
// down, then read once COMPLETED.
func TestFalQueuePolledUntilCompleted(t *testing.T) {
	verifyNoLeaks(t)
	r := mediaRouter(t)
	pic := testPNG(t, 8)
	r.On(imageModel+":fal-ai", inferencetest.Job{Queued: 3, Running: 1}.Image(pic))
	c, err := r.Client()
	require.NoError(t, err)
	var log progressLog
	resp, err := c.TextToImage(t.Context(), imageReq("fal-ai"), inference.WithProgress(log.add))
	require.NoError(t, err)
	assert.Equal(t, pic, resp.Image)
	require.NotNil(t, resp.Seed)
	assert.Equal(t, uint64(15619174981588513000), *resp.Seed, "a seed beyond int64, as fal reports them")
	type step struct {
		status string
		pos    int
		polls  int
	}
	var got []step
	for _, p := range log.all() {
		got = append(got, step{p.Status, p.QueuePosition, p.Polls})
		assert.Equal(t, inference.Candidate{Model: imageModel, Provider: "fal-ai"}, p.Candidate)
	}
	assert.Equal(t, []step{{"IN_QUEUE", 3, 0}, {"IN_QUEUE", 2, 1}, {"IN_QUEUE", 1, 2}, {"IN_QUEUE", 0, 3},
		{"IN_PROGRESS", -1, 4}, {"COMPLETED", -1, 5}}, got)
	var paths []string
	for _, q := range r.Requests() {
		paths = append(paths, q.API)
	}
	assert.Equal(t, []string{"text-to-image", "job-status", "job-status", "job-status", "job-status", "job-status", "job-result"}, paths)
}

// wavespeed's and zai-org's tasks are polled the same way.
func TestQueuedTasksPolled(t *testing.T) {
	verifyNoLeaks(t)
	for _, provider := range []string{"wavespeed", "zai-org"} {
		t.Run(provider, func(t *testing.T) {
			r := mediaRouter(t)
			pic := testPNG(t, 8)
			r.On(imageModel+":"+provider, inferencetest.Job{Queued: 2, Running: 1}.Image(pic))
			c, err := r.Client()
			require.NoError(t, err)
			var log progressLog
			resp, err := c.TextToImage(t.Context(), imageReq(provider), inference.WithProgress(log.add))
			require.NoError(t, err)
			assert.Equal(t, pic, resp.Image)
			assert.Equal(t, 4, r.Jobs()[0].Polls)
			assert.Len(t, log.all(), 5, "accepted, then each poll")
		})
	}
}

// neverEnding is a job that waits in the queue until it is cancelled.
var neverEnding = inferencetest.Job{Queued: math.MaxInt32}

// A cancelled call cancels the provider's job before it returns, and so
// does a passed deadline: nobody pays for an image nobody waits for.
func TestCancelledCallCancelsTheRemoteJob(t *testing.T) {
	verifyNoLeaks(t)
	for _, provider := range cancellers {
		for _, how := range []string{"cancel", "deadline"} {
			t.Run(provider+"/"+how, func(t *testing.T) {
				r := mediaRouter(t)
				r.On(imageModel+":"+provider, neverEnding.Image(testPNG(t, 8)))
				c, err := r.Client()
				require.NoError(t, err)
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				if how == "deadline" {
					ctx, cancel = context.WithTimeout(ctx, 150*time.Millisecond)
					defer cancel()
				}
				progress := func(p inference.JobProgress) {
					if how == "cancel" && p.Polls == 3 {
						cancel()
					}
				}
				resp, err := c.TextToImage(ctx, imageReq(provider), inference.WithProgress(progress))
				require.Error(t, err)
				assert.Nil(t, resp)
				if how == "cancel" {
					assert.ErrorIs(t, err, context.Canceled)
				} else {
					assert.ErrorIs(t, err, context.DeadlineExceeded)
				}
				jobs := r.Jobs() // read at once: the cancel came before the call returned
				require.Len(t, jobs, 1)
				assert.True(t, jobs[0].Cancelled, "the provider's job is cancelled")
				last := r.Requests()[len(r.Requests())-1]
				assert.Equal(t, "job-cancel", last.API)
				assert.Equal(t, jobs[0].ID, last.Job)
			})
		}
	}
}

// A job past WithJobDeadline is cancelled, and the walk moves on: a
// provider failure the client's own limit timed out.
func TestJobDeadlineCancelsAndMovesOn(t *testing.T) {
	verifyNoLeaks(t)
	for _, provider := range jobProviders {
		t.Run(provider, func(t *testing.T) {
			r := newRouter(t)
			mapModel(r, imageModel, "text-to-image", provider, "together")
			pic := testPNG(t, 8)
			r.On(imageModel+":"+provider, neverEnding.Image(pic))
			r.On(imageModel+":together", inferencetest.Image(pic))
			c, err := r.Client(inference.WithJobDeadline(80 * time.Millisecond))
			require.NoError(t, err)
			resp, err := c.TextToImage(t.Context(), imageReq(""))
			require.NoError(t, err)
			assert.Equal(t, "together", resp.Provider)
			require.Len(t, resp.Attempts, 2)
			first := resp.Attempts[0]
			assert.Equal(t, inference.TimeoutJob, first.TimedOut)
			assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(first.Err))
			assert.Contains(t, first.Err.Error(), "job deadline of 80ms")
			jobs := r.Jobs()
			require.Len(t, jobs, 1)
			cancellable := provider == "fal-ai" || provider == "replicate"
			assert.Equal(t, cancellable, jobs[0].Cancelled, "cancelled where the provider has a cancel")
		})
	}
}

// Every request of a job (submission, polls, result, cancel) carries the
// call's own token, bill-to and headers, and goes to the router; the CDN
// sees none of them.
func TestEveryRequestOfAJobCarriesTheCallsTokenAndBillTo(t *testing.T) {
	verifyNoLeaks(t)
	const userToken = "hf_UserOfThisCallAbcdefghijklmnopqrstuvw"
	for _, provider := range jobProviders {
		for _, ending := range []string{"served", "cancelled"} {
			t.Run(provider+"/"+ending, func(t *testing.T) {
				r := mediaRouter(t)
				job := inferencetest.Job{Queued: 2}
				if ending == "cancelled" {
					job = neverEnding
				}
				r.On(imageModel+":"+provider, job.Image(testPNG(t, 8)))
				c, err := r.Client()
				require.NoError(t, err)
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				_, err = c.TextToImage(ctx, imageReq(provider),
					inference.WithUserTokenSource(inference.StaticToken(userToken)),
					inference.WithBillTo("acme-labs"), inference.WithHeader("X-Trace", "t-42"),
					inference.WithProgress(func(p inference.JobProgress) {
						if p.Polls == 2 && ending == "cancelled" {
							cancel()
						}
					}))
				if ending == "served" {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, context.Canceled)
				}
				seen := map[string]bool{}
				for _, q := range r.Requests() {
					seen[q.API] = true
					assert.Equal(t, redact.Prefix(userToken), q.TokenPrefix, "%s carries the call's token", q.API)
					assert.Equal(t, "acme-labs", q.Header.Get("X-HF-Bill-To"), "%s is billed to the call's organization", q.API)
					assert.Equal(t, "t-42", q.Header.Get("X-Trace"), "%s carries the call's headers", q.API)
				}
				assert.True(t, seen["text-to-image"] && seen["job-status"])
				if ending == "cancelled" && (provider == "fal-ai" || provider == "replicate") {
					assert.True(t, seen["job-cancel"])
				}
				for _, q := range r.CDN() {
					assert.True(t, strings.HasPrefix(q.Path, "/files/"), "only files are fetched off the router: %s", q.Path)
					assert.False(t, q.Token || q.Authorization || q.BillTo, "the CDN sees no token and no bill-to")
					assert.Empty(t, q.Header.Get("X-Trace"), "nor the call's headers")
				}
				if ending == "served" {
					assert.Len(t, r.CDN(), 1, "the image was downloaded")
				}
			})
		}
	}
}

// A hedge may be sent while the first provider has not accepted its job;
// once it has, the job is never duplicated. A hedge that wins cancels the
// first's job.
func TestHedgingJobs(t *testing.T) {
	verifyNoLeaks(t)
	pic := testPNG(t, 8)
	newPair := func(t *testing.T, first, second inferencetest.Answer) (*inferencetest.Router, *inference.Client) {
		r := newRouter(t)
		mapModel(r, imageModel, "text-to-image", "fal-ai", "replicate")
		r.On(imageModel+":fal-ai", first)
		r.On(imageModel+":replicate", second)
		c, err := r.Client(inference.WithHedge(30 * time.Millisecond))
		require.NoError(t, err)
		return r, c
	}

	t.Run("a slow submission is hedged", func(t *testing.T) {
		r, c := newPair(t, inferencetest.Hang(), inferencetest.Image(pic))
		resp, err := c.TextToImage(t.Context(), imageReq(""))
		require.NoError(t, err)
		assert.Equal(t, "replicate", resp.Provider)
		require.Len(t, resp.Attempts, 2)
		assert.True(t, resp.Attempts[0].Lost, "the slow submission lost")
		assert.True(t, resp.Attempts[1].Hedge)
		jobs := r.Jobs()
		require.Len(t, jobs, 1, "one job only, the hedge's")
		assert.Equal(t, "replicate", jobs[0].Provider)
	})

	t.Run("an accepted job is not hedged", func(t *testing.T) {
		r, c := newPair(t, inferencetest.Job{Queued: 40}.Image(pic), inferencetest.Image(pic))
		start := time.Now()
		resp, err := c.TextToImage(t.Context(), imageReq(""), inference.WithJobPolling(5*time.Millisecond, 5*time.Millisecond))
		require.NoError(t, err)
		require.Greater(t, time.Since(start), 150*time.Millisecond, "the job ran well past the hedge delay")
		assert.Equal(t, "fal-ai", resp.Provider)
		require.Len(t, resp.Attempts, 1)
		assert.False(t, resp.Attempts[0].Hedge)
		assert.Len(t, r.Jobs(), 1, "one job: it was never sent twice")
	})

	t.Run("a hedge that wins cancels the first job", func(t *testing.T) {
		var r *inferencetest.Router
		// The hedge answers once the first's job exists: accepted late,
		// after the hedge was sent, then running.
		hedge := func(w http.ResponseWriter, req *inferencetest.Request) {
			for len(r.Jobs()) == 0 && req.HTTP.Context().Err() == nil {
				time.Sleep(time.Millisecond)
			}
			inferencetest.Image(pic)(w, req)
		}
		// The submission takes far longer than the hedge delay, so that
		// the hedge is sent while it is on its way, however busy the
		// machine.
		r, c := newPair(t, inferencetest.Delay(400*time.Millisecond, neverEnding.Image(pic)), hedge)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		resp, err := c.TextToImage(ctx, imageReq(""))
		require.NoError(t, err)
		assert.Equal(t, "replicate", resp.Provider)
		require.Len(t, resp.Attempts, 2)
		assert.True(t, resp.Attempts[0].Lost)
		jobs := r.Jobs()
		require.Len(t, jobs, 2)
		assert.Equal(t, "fal-ai", jobs[0].Provider)
		assert.True(t, jobs[0].Cancelled, "the losing job is cancelled before the call returns")
		assert.False(t, jobs[1].Cancelled, "the winner's is not")
	})
}

// A result a provider flags as not safe for work is a content-policy
// refusal: the walk stops, and no blank image is returned.
func TestFlaggedResultIsARefusal(t *testing.T) {
	verifyNoLeaks(t)
	for _, provider := range []string{"fal-ai", "replicate", "wavespeed"} {
		t.Run(provider, func(t *testing.T) {
			r := newRouter(t)
			mapModel(r, imageModel, "text-to-image", provider, "together")
			black := testPNG(t, 8)
			r.On(imageModel+":"+provider, inferencetest.Job{Running: 1, NSFW: true}.Image(black))
			r.On(imageModel+":together", inferencetest.Image(black))
			c, err := r.Client()
			require.NoError(t, err)
			resp, err := c.TextToImage(t.Context(), imageReq(""))
			require.Error(t, err)
			assert.Nil(t, resp)
			assert.Equal(t, []error{inference.ErrInvalidRequest}, matchedKinds(err))
			var apiErr *inference.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, "content_policy_violation", apiErr.Code)
			assert.Equal(t, provider, apiErr.Provider)
			assert.Contains(t, apiErr.Fix(), "change the prompt")
			var fe *inference.FallbackError
			require.ErrorAs(t, err, &fe)
			assert.Len(t, fe.Attempts, 1, "the walk stopped: every provider would refuse the prompt")
		})
	}
}

// Answers that are not what was asked are each one kind, the provider's
// failure, naming the provider.
func TestMalformedMediaAnswers(t *testing.T) {
	verifyNoLeaks(t)
	json := http.Header{"Content-Type": {"application/json"}}
	png := http.Header{"Content-Type": {"image/png"}}
	tests := []struct {
		name, provider string
		answer         inferencetest.Answer
		want           string
	}{
		{"web page for an image", "hf-inference", inferencetest.Raw(200, http.Header{"Content-Type": {"text/html"}}, "<html><body>Loading...</body></html>"), "web page"},
		{"JSON error in a 200", "hf-inference", inferencetest.Raw(200, json, `{"error":"Model is overloaded"}`), "Model is overloaded"},
		{"empty image", "hf-inference", inferencetest.Raw(200, png, ""), "empty"},
		{"page labelled as an image", "hf-inference", inferencetest.Raw(200, http.Header{"Content-Type": {"application/octet-stream"}}, "<!DOCTYPE html><html></html>"), "web page"},
		{"audio for an image", "hf-inference", inferencetest.Raw(200, http.Header{"Content-Type": {"audio/flac"}}, string(testFLAC)), "not an image"},
		{"no images", "together", inferencetest.Raw(200, json, `{"data":[]}`), "holds no image"},
		{"bad base64", "together", inferencetest.Raw(200, json, `{"data":[{"b64_json":"!!not base64!!"}]}`), "base64"},
		{"error object", "nscale", inferencetest.Raw(200, json, `{"error":{"message":"quota exceeded for images","type":"server_error"}}`), "quota exceeded"},
		{"submission without an id", "fal-ai", inferencetest.Raw(200, json, `{"status":"IN_QUEUE"}`), "request_id"},
		{"prediction without output", "replicate", inferencetest.Raw(201, json, `{"id":"p1","status":"succeeded","output":null}`), "output"},
		{"unknown status", "replicate", inferencetest.Raw(201, json, `{"id":"p1","status":"dreaming"}`), "dreaming"},
		{"a result URL not https", "zai-org", inferencetest.Raw(200, json, `{"id":"z1","task_status":"SUCCESS","image_result":[{"url":"ftp://files.example/x.png"}]}`), "not https"},
		{"relative result URL", "zai-org", inferencetest.Raw(200, json, `{"id":"z1","task_status":"SUCCESS","image_result":[{"url":"/files/x.png"}]}`), "not an absolute URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mediaRouter(t)
			r.On(imageModel+":"+tt.provider, tt.answer)
			c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
			require.NoError(t, err)
			resp, err := c.TextToImage(t.Context(), imageReq(tt.provider))
			require.Error(t, err)
			assert.Nil(t, resp)
			assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(err))
			assert.Contains(t, err.Error(), tt.want)
			assert.Contains(t, err.Error(), "provider "+tt.provider)
		})
	}
}

// A file the CDN does not give is the provider's failure, whatever the
// CDN's status says (a 403 is an expired link, not the token).
func TestResultFileMissingOnTheCDN(t *testing.T) {
	verifyNoLeaks(t)
	for _, status := range []int{403, 404, 500} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			r := mediaRouter(t)
			r.On(imageModel+":fal-ai", inferencetest.Job{FileStatus: status}.Image(testPNG(t, 8)))
			c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
			require.NoError(t, err)
			_, err = c.TextToImage(t.Context(), imageReq("fal-ai"))
			require.Error(t, err)
			assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(err))
			assert.Contains(t, err.Error(), "result file could not be downloaded")
		})
	}
	t.Run("a page instead of the file", func(t *testing.T) {
		r := mediaRouter(t)
		r.On(imageModel+":replicate", inferencetest.Job{FileType: "text/html"}.Image([]byte("<html>expired</html>")))
		c, err := r.Client()
		require.NoError(t, err)
		_, err = c.TextToImage(t.Context(), imageReq("replicate"))
		assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(err))
		assert.Contains(t, err.Error(), "web page")
	})
}

// WithMaxResultSize bounds the file however it comes: the answer itself,
// base64 in JSON, a data URL, a download.
func TestResultSizeCap(t *testing.T) {
	verifyNoLeaks(t)
	pic := testPNG(t, 64)
	for _, tt := range []struct {
		provider string
		job      inferencetest.Job
	}{{"hf-inference", inferencetest.Job{}}, {"together", inferencetest.Job{}}, {"fal-ai", inferencetest.Job{DataURL: true}}, {"fal-ai", inferencetest.Job{}}, {"replicate", inferencetest.Job{}}} {
		name := tt.provider
		if tt.job.DataURL {
			name += "/data URL"
		}
		t.Run(name, func(t *testing.T) {
			r := mediaRouter(t)
			r.On(imageModel+":"+tt.provider, tt.job.Image(pic))
			c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
			require.NoError(t, err)
			resp, err := c.TextToImage(t.Context(), imageReq(tt.provider), inference.WithMaxResultSize(int64(len(pic))))
			require.NoError(t, err, "a file of the cap's size passes")
			assert.Equal(t, pic, resp.Image)
			_, err = c.TextToImage(t.Context(), imageReq(tt.provider), inference.WithMaxResultSize(int64(len(pic)-1)))
			require.Error(t, err)
			assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(err))
			assert.Contains(t, err.Error(), "larger than")
		})
	}
}

// A result over a cap the call set for itself says nothing of the
// provider: it cools nothing, here or in a shared store, as a call's own
// time limits do. Found by trying the library as a new user: both
// providers were cooled for the fleet.
func TestPerCallSizeCapCoolsNothing(t *testing.T) {
	verifyNoLeaks(t)
	pic := testPNG(t, 64)
	for _, provider := range []string{"hf-inference", "fal-ai", "replicate"} {
		t.Run(provider, func(t *testing.T) {
			r := mediaRouter(t)
			r.On(imageModel+":"+provider, inferencetest.Image(pic))
			store := &mapStore{until: map[string]time.Time{}}
			c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}), inference.WithCooldownStore(store))
			require.NoError(t, err)
			_, err = c.TextToImage(t.Context(), imageReq(provider), inference.WithMaxResultSize(int64(len(pic)-1)))
			require.Error(t, err)
			assert.Empty(t, store.until, "nothing shared")
			resp, err := c.TextToImage(t.Context(), imageReq(provider))
			require.NoError(t, err)
			assert.Empty(t, resp.Skipped, "nothing cooled in the process either")
		})
	}
}

// WithResultURL hands back where the provider left the file, without
// downloading it; an answer that is the file has its bytes returned.
func TestResultURLOnly(t *testing.T) {
	verifyNoLeaks(t)
	pic := testPNG(t, 8)
	r := mediaRouter(t)
	r.On(imageModel+":fal-ai", inferencetest.Image(pic))
	r.On(imageModel+":hf-inference", inferencetest.Image(pic))
	c, err := r.Client(inference.WithResultURL())
	require.NoError(t, err)
	resp, err := c.TextToImage(t.Context(), imageReq("fal-ai"))
	require.NoError(t, err)
	assert.Nil(t, resp.Image)
	assert.True(t, strings.HasSuffix(resp.URL, ".png"), resp.URL)
	assert.Empty(t, r.CDN(), "nothing downloaded")
	resp, err = c.TextToImage(t.Context(), imageReq("hf-inference"))
	require.NoError(t, err)
	assert.Equal(t, pic, resp.Image)
	assert.Empty(t, resp.URL)
}

// The observer hears of media calls as operations of their own, with
// their result.
func TestObserverSeesMediaCalls(t *testing.T) {
	verifyNoLeaks(t)
	r := mediaRouter(t)
	r.On(imageModel+":fal-ai", inferencetest.ProviderError(503))
	r.On(imageModel+":replicate", inferencetest.Image(testPNG(t, 8)))
	r.On(asrModel+":fal-ai", inferencetest.Transcription("hi"))
	r.On(speechModel+":hf-inference", inferencetest.Speech(testFLAC, "audio/flac"))
	rec := &recorder{}
	c, err := r.Client(inference.WithObserver(rec), inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	_, err = c.TextToImage(t.Context(), imageReq(""))
	require.NoError(t, err)
	_, err = c.Transcribe(t.Context(), inference.TranscribeRequest{Model: asrModel, Provider: "fal-ai", Audio: testWAV})
	require.NoError(t, err)
	_, err = c.Speak(t.Context(), inference.SpeechRequest{Model: speechModel, Provider: "hf-inference", Text: "hi"})
	require.NoError(t, err)
	assert.Equal(t, []string{
		"call text_to_image " + imageModel + " stream=false",
		"attempt " + imageModel + ":fal-ai (static)",
		"end attempt " + imageModel + ":fal-ai: provider_error",
		"moved " + imageModel + ":fal-ai -> " + imageModel + ":replicate: provider_error",
		"attempt " + imageModel + ":replicate (static)",
		"end attempt " + imageModel + ":replicate: served",
		"end call: served from " + imageModel,
		"call speech_to_text " + asrModel + " stream=false",
		"attempt " + asrModel + ":fal-ai (static)",
		"end attempt " + asrModel + ":fal-ai: served",
		"end call: served from " + asrModel,
		"call text_to_speech " + speechModel + " stream=false",
		"attempt " + speechModel + ":hf-inference (static)",
		"end attempt " + speechModel + ":hf-inference: served",
		"end call: served from " + speechModel,
	}, rec.events)
}

// Requests that cannot be sent are refused before anything is.
func TestMediaRequestsValidated(t *testing.T) {
	r := mediaRouter(t)
	c, err := r.Client()
	require.NoError(t, err)
	ctx := t.Context()
	bad := []func() error{
		func() error { _, err := c.TextToImage(ctx, inference.ImageRequest{Model: imageModel}); return err },
		func() error {
			_, err := c.TextToImage(ctx, inference.ImageRequest{Model: imageModel, Prompt: "x", Width: -1})
			return err
		},
		func() error {
			_, err := c.TextToImage(ctx, inference.ImageRequest{Model: imageModel, Prompt: "x", Provider: "fastest"})
			return err
		},
		func() error { _, err := c.Transcribe(ctx, inference.TranscribeRequest{Model: asrModel}); return err },
		func() error {
			_, err := c.Transcribe(ctx, inference.TranscribeRequest{Model: asrModel, Audio: []byte("plain words")})
			return err
		},
		func() error {
			_, err := c.Transcribe(ctx, inference.TranscribeRequest{Model: asrModel, Audio: testWAV, ContentType: "text/plain"})
			return err
		},
		func() error {
			_, err := c.Transcribe(ctx, inference.TranscribeRequest{Model: asrModel, Audio: testWAV, Language: `en"}`})
			return err
		},
		func() error {
			_, err := c.Speak(ctx, inference.SpeechRequest{Model: speechModel, Text: " "})
			return err
		},
		func() error {
			_, err := c.Speak(ctx, inference.SpeechRequest{Model: speechModel, Text: "x", Fallbacks: []inference.Candidate{{}}})
			return err
		},
		func() error {
			_, err := c.TextToImage(ctx, imageReq(""), inference.WithJobPolling(0, time.Second))
			return err
		},
		func() error {
			_, err := c.TextToImage(ctx, imageReq(""), inference.WithMaxResultSize(0))
			return err
		},
		func() error { _, err := c.TextToImage(ctx, imageReq(""), inference.WithProgress(nil)); return err },
		func() error { _, err := c.TextToImage(ctx, imageReq(""), inference.WithJobDeadline(-1)); return err },
		func() error {
			req := imageReq("")
			req.Parameters = map[string]any{"callback": func() {}}
			_, err := c.TextToImage(ctx, req)
			return err
		},
	}
	for i, call := range bad {
		err := call()
		assert.ErrorIs(t, err, inference.ErrInvalidRequest, "case %d", i)
		assert.Contains(t, err.Error(), "the request is invalid", "case %d", i)
	}
	assert.Empty(t, r.Requests(), "nothing was sent")
}

// A job the provider no longer knows (its polls answer 404) is the
// provider's failure, not a missing model: the walk moves on, and the
// model is not cooled as missing.
func TestVanishedJobIsTheProvidersFailure(t *testing.T) {
	verifyNoLeaks(t)
	r := newRouter(t)
	mapModel(r, imageModel, "text-to-image", "fal-ai", "together")
	ghost := `{"request_id":"ghost","status":"IN_QUEUE","response_url":"https://queue.fal.run/fal-ai/flux/requests/ghost"}`
	r.On(imageModel+":fal-ai", inferencetest.Raw(200, http.Header{"Content-Type": {"application/json"}}, ghost))
	r.On(imageModel+":together", inferencetest.Image(testPNG(t, 4)))
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	resp, err := c.TextToImage(t.Context(), imageReq(""))
	require.NoError(t, err)
	assert.Equal(t, "together", resp.Provider)
	first := resp.Attempts[0].Err
	assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(first))
	assert.Contains(t, first.Error(), "the job could not be read")
	var apis []string
	for _, q := range r.Requests() {
		apis = append(apis, q.API)
	}
	assert.Equal(t, []string{"text-to-image", "job-status", "job-cancel", "text-to-image"}, apis, "the job is cancelled, in case it runs")
}

// A Replicate transcript left in a text file is downloaded, without the
// token.
func TestTranscriptInATextFile(t *testing.T) {
	verifyNoLeaks(t)
	r := mediaRouter(t)
	// The text file is served by a prediction of another task: an image
	// job's file on the CDN, whose URL the transcript names.
	r.On(imageModel+":replicate", inferencetest.Image([]byte("bonjour tout le monde")))
	c, err := r.Client(inference.WithResultURL())
	require.NoError(t, err)
	img, err := c.TextToImage(t.Context(), imageReq("replicate"))
	require.NoError(t, err)
	body := `{"id":"p9","status":"succeeded","output":{"txt_file":"` + img.URL + `"}}`
	r.On(asrModel+":replicate", inferencetest.Raw(201, http.Header{"Content-Type": {"application/json"}}, body))
	resp, err := c.Transcribe(t.Context(), inference.TranscribeRequest{Model: asrModel, Provider: "replicate", Audio: testWAV})
	require.NoError(t, err)
	assert.Equal(t, "bonjour tout le monde", resp.Text)
	cdn := r.CDN()
	require.Len(t, cdn, 1)
	assert.False(t, cdn[0].Token || cdn[0].Authorization)
}

// The user's middlewares are for the router (a proxy's credentials, trace
// context): the download of a result file from a CDN does not pass them.
func TestCDNDownloadSkipsTheUsersMiddlewares(t *testing.T) {
	verifyNoLeaks(t)
	r := mediaRouter(t)
	r.On(imageModel+":fal-ai", inferencetest.Image(testPNG(t, 4)))
	var mu sync.Mutex
	var paths []string
	proxyAuth := func(next http.RoundTripper) http.RoundTripper {
		return inference.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
			mu.Lock()
			paths = append(paths, req.URL.Path)
			mu.Unlock()
			req = req.Clone(req.Context())
			req.Header.Set("X-Proxy-Auth", "secret-of-the-proxy")
			return next.RoundTrip(req)
		})
	}
	c, err := r.Client(inference.WithMiddleware(proxyAuth))
	require.NoError(t, err)
	_, err = c.TextToImage(t.Context(), imageReq("fal-ai"))
	require.NoError(t, err)
	for _, q := range r.Requests() {
		assert.Equal(t, "secret-of-the-proxy", q.Header.Get("X-Proxy-Auth"), "the router's requests pass the middleware: %s", q.API)
	}
	cdn := r.CDN()
	require.Len(t, cdn, 1)
	assert.Empty(t, cdn[0].Header.Get("X-Proxy-Auth"), "the CDN's does not")
	mu.Lock()
	defer mu.Unlock()
	for _, p := range paths {
		assert.False(t, strings.HasPrefix(p, "/files/"), "the middleware never saw the download")
	}
}

// A provider that echoes the token in a job's words has it removed from
// the error, the progress and the response.
func TestJobWordsNeverCarryTheToken(t *testing.T) {
	verifyNoLeaks(t)
	r := mediaRouter(t)
	leak := `{"id":"p-` + inferencetest.Token + `","status":"failed","error":"refused token ` + inferencetest.Token + `"}`
	r.On(imageModel+":replicate", inferencetest.Raw(201, http.Header{"Content-Type": {"application/json"}}, leak))
	c, err := r.Client()
	require.NoError(t, err)
	_, err = c.TextToImage(t.Context(), imageReq("replicate"))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), inferencetest.Token[3:])
	assert.Contains(t, err.Error(), "refused token")

	running := `{"id":"p2","status":"` + inferencetest.Token + `"}`
	r.On(imageModel+":replicate", inferencetest.Raw(201, http.Header{"Content-Type": {"application/json"}}, running))
	_, err = c.TextToImage(t.Context(), imageReq("replicate"))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), inferencetest.Token[3:], "an unknown status is quoted without the token")
}

// preferWaitHold answers a Replicate submission as Replicate does: at
// once, unless it asks Prefer: wait, which holds the answer while the
// prediction, created, runs (until the request ends here). held is told
// when the prediction exists and its answer is held.
func preferWaitHold(a inferencetest.Answer, held func()) inferencetest.Answer {
	return func(w http.ResponseWriter, req *inferencetest.Request) {
		if !strings.HasPrefix(req.Header.Get("Prefer"), "wait") {
			a(w, req)
			return
		}
		a(httptest.NewRecorder(), req) // the prediction is created
		held()
		<-req.HTTP.Context().Done()
	}
}

// A prediction is never submitted in a way that hides its id while it
// runs: under Prefer: wait, Replicate holds the answer (the prediction's
// id) until the prediction ends, so a call cancelled, a job deadline
// passed or a hedge sent meanwhile left a running, billed prediction
// nobody could cancel, and a hedge sent a second job while the first ran.
func TestPredictionIsCancellableFromItsSubmission(t *testing.T) {
	verifyNoLeaks(t)
	pic := testPNG(t, 8)

	t.Run("the call is cancelled", func(t *testing.T) {
		r := mediaRouter(t)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		r.On(imageModel+":replicate", preferWaitHold(neverEnding.Image(pic), cancel))
		c, err := r.Client()
		require.NoError(t, err)
		_, err = c.TextToImage(ctx, imageReq("replicate"), inference.WithProgress(func(p inference.JobProgress) {
			cancel() // as soon as the prediction is known
		}))
		require.ErrorIs(t, err, context.Canceled)
		jobs := r.Jobs()
		require.Len(t, jobs, 1)
		assert.True(t, jobs[0].Cancelled, "the prediction is cancelled before the call returns")
	})

	t.Run("the job deadline passes", func(t *testing.T) {
		r := newRouter(t)
		mapModel(r, imageModel, "text-to-image", "replicate", "together")
		r.On(imageModel+":replicate", preferWaitHold(neverEnding.Image(pic), func() {}))
		r.On(imageModel+":together", inferencetest.Image(pic))
		c, err := r.Client(inference.WithJobDeadline(100 * time.Millisecond))
		require.NoError(t, err)
		resp, err := c.TextToImage(t.Context(), imageReq(""))
		require.NoError(t, err)
		assert.Equal(t, "together", resp.Provider)
		assert.Equal(t, inference.TimeoutJob, resp.Attempts[0].TimedOut)
		jobs := r.Jobs()
		require.Len(t, jobs, 1)
		assert.True(t, jobs[0].Cancelled, "the prediction past its deadline is cancelled")
	})

	t.Run("a hedge is due", func(t *testing.T) {
		r := newRouter(t)
		mapModel(r, imageModel, "text-to-image", "replicate", "fal-ai")
		r.On(imageModel+":replicate", preferWaitHold(inferencetest.Job{Queued: 60}.Image(pic), func() {}))
		r.On(imageModel+":fal-ai", inferencetest.Image(pic))
		c, err := r.Client(inference.WithHedge(200*time.Millisecond), inference.WithJobPolling(5*time.Millisecond, 5*time.Millisecond))
		require.NoError(t, err)
		resp, err := c.TextToImage(t.Context(), imageReq(""))
		require.NoError(t, err)
		assert.Equal(t, "replicate", resp.Provider, "the accepted prediction was not hedged")
		assert.Len(t, r.Jobs(), 1, "one job: none was sent while the first ran")
	})
}

// A submission's answer that names a job but cannot be read (a status the
// provider does not document) is the provider's failure, and the job it
// names is cancelled: it may be running, and billed.
func TestUnreadableSubmissionCancelsTheJobItNames(t *testing.T) {
	verifyNoLeaks(t)
	json := http.Header{"Content-Type": {"application/json"}}
	for _, tt := range []struct{ provider, answer string }{
		{"fal-ai", `{"request_id":"odd1","status":"WARMING_UP","response_url":"https://queue.fal.run/fal-ai/flux/requests/odd1"}`},
		{"replicate", `{"id":"odd1","status":"dreaming","urls":{"cancel":"https://api.replicate.com/v1/predictions/odd1/cancel"}}`},
	} {
		t.Run(tt.provider, func(t *testing.T) {
			r := mediaRouter(t)
			r.On(imageModel+":"+tt.provider, inferencetest.Raw(200, json, tt.answer))
			c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
			require.NoError(t, err)
			_, err = c.TextToImage(t.Context(), imageReq(tt.provider))
			require.Error(t, err)
			assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(err))
			var got []string
			for _, q := range r.Requests() {
				got = append(got, q.API+" "+q.Job)
			}
			assert.Equal(t, []string{"text-to-image ", "job-cancel odd1"}, got)
		})
	}
	t.Run("a fal answer without its response_url names nothing to cancel", func(t *testing.T) {
		r := mediaRouter(t)
		r.On(imageModel+":fal-ai", inferencetest.Raw(200, json, `{"request_id":"odd2","status":"IN_QUEUE"}`))
		c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
		require.NoError(t, err)
		_, err = c.TextToImage(t.Context(), imageReq("fal-ai"))
		require.Error(t, err)
		assert.Len(t, r.Requests(), 1, "no cancel sent to a path that is not the job's")
	})
}

// offMachineClient is a client whose router and Hub are r at
// http://router.example, reached through a transport that routes by host
// name (hosts, else the real network through a transport that trusts any
// certificate), so that this machine is not the router's.
func offMachineClient(t *testing.T, r *inferencetest.Router, hosts map[string]http.RoundTripper) *inference.Client {
	t.Helper()
	fake := strings.TrimPrefix(r.URL(), "http://")
	insecure := http.DefaultTransport.(*http.Transport).Clone()
	insecure.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // a test's own servers
	t.Cleanup(insecure.CloseIdleConnections)
	route := inference.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if req.URL.Host == "router.example" {
			req = req.Clone(req.Context())
			req.URL.Host = fake
			return insecure.RoundTrip(req)
		}
		if rt, ok := hosts[req.URL.Hostname()]; ok {
			return rt.RoundTrip(req)
		}
		return insecure.RoundTrip(req)
	})
	c, err := inference.NewClient(inference.WithBaseURL("http://router.example"), inference.WithHubURL("http://router.example"),
		inference.WithInsecureHTTP(), inference.WithToken(inferencetest.Token), inference.WithHTTPClient(&http.Client{Transport: route}),
		inference.WithRetry(inference.RetryPolicy{}), inference.WithJobPolling(time.Millisecond, 5*time.Millisecond))
	require.NoError(t, err)
	return c
}

// localFiles is a server on this machine that records whether it was
// asked, serving an image.
func localFiles(t *testing.T, tlsToo bool, listen string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	pic := testPNG(t, 4)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(pic)
	}))
	if listen != "" {
		ln, err := net.Listen("tcp", listen)
		require.NoError(t, err)
		srv.Listener = ln
	}
	if tlsToo {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, &hits
}

// zaiResult is zai-org's answer naming link as its image.
func zaiResult(link string) inferencetest.Answer {
	return inferencetest.Raw(200, http.Header{"Content-Type": {"application/json"}},
		`{"id":"z1","task_status":"SUCCESS","image_result":[{"url":"`+link+`"}]}`)
}

// A result file's URL is checked at every redirect, as it is before the
// download: a CDN cannot send the download to this machine, nor to plain
// http, by redirecting it.
func TestResultDownloadRedirectIsCheckedLikeItsURL(t *testing.T) {
	verifyNoLeaks(t)
	local, hits := localFiles(t, false, "")
	var plainHTTP, cdnAsked atomic.Int32
	for _, tt := range []struct{ name, to, want string }{
		{"to this machine", local.URL + "/admin", "on this machine"},
		{"to plain http", "http://files.example/x.png", "not https"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := mediaRouter(t)
			r.On(imageModel+":zai-org", zaiResult("https://cdn.example/x.png"))
			c := offMachineClient(t, r, map[string]http.RoundTripper{
				"cdn.example": inference.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
					cdnAsked.Add(1)
					return &http.Response{StatusCode: http.StatusFound, Header: http.Header{"Location": {tt.to}}, Body: http.NoBody, Request: req}, nil
				}),
				"files.example": inference.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
					plainHTTP.Add(1)
					return nil, errors.New("files.example is not reached in this test")
				}),
			})
			cdnAsked.Store(0)
			_, err := c.TextToImage(t.Context(), imageReq("zai-org"),
				inference.WithRetry(inference.RetryPolicy{MaxRetries: 2, MinWait: time.Millisecond, MaxWait: time.Millisecond}))
			require.Error(t, err)
			assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(err))
			assert.Contains(t, err.Error(), tt.want)
			assert.Equal(t, int32(1), cdnAsked.Load(), "a refused redirect is not retried")
		})
	}
	assert.Zero(t, hits.Load(), "nothing on this machine was fetched")
	assert.Zero(t, plainHTTP.Load(), "nothing over plain http")
}

// A result URL is on this machine by any of its names: the unspecified
// address (0.0.0.0, [::], which reach the machine's own services), the
// name localhost written with its root dot, and the names under
// .localhost (RFC 6761), as well as 127.0.0.0/8, ::1 and localhost.
func TestResultURLOnThisMachineIsRefusedByEveryName(t *testing.T) {
	verifyNoLeaks(t)
	local, hits := localFiles(t, true, "0.0.0.0:0")
	_, port, err := net.SplitHostPort(local.Listener.Addr().String())
	require.NoError(t, err)
	for _, host := range []string{"0.0.0.0", "[::]", "localhost.", "files.localhost", "LocalHost", "127.0.0.2", "[::ffff:127.0.0.1]"} {
		t.Run(host, func(t *testing.T) {
			r := mediaRouter(t)
			r.On(imageModel+":zai-org", zaiResult("https://"+host+":"+port+"/x.png"))
			_, err := offMachineClient(t, r, nil).TextToImage(t.Context(), imageReq("zai-org"))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "is on this machine")
		})
	}
	assert.Zero(t, hits.Load(), "nothing on this machine was fetched")
}

// An answer labelled as the file asked for is still checked by its bytes:
// a web page or a JSON error served as image/png (or audio/flac) is the
// provider's failure in its words, never a file returned as a success. An
// SVG, which is markup, stays an image.
func TestAnswerLabelledAsTheFileIsCheckedByItsBytes(t *testing.T) {
	verifyNoLeaks(t)
	page := "<!DOCTYPE html><html><body>Service busy</body></html>"
	jsonErr := `{"error":"Model is overloaded"}`
	png := http.Header{"Content-Type": {"image/png"}}
	tests := []struct {
		name   string
		call   func(c *inference.Client, r *inferencetest.Router) error
		answer inferencetest.Answer
		want   string
	}{
		{"a page as image/png", imageCall("hf-inference"), inferencetest.Raw(200, png, page), "web page"},
		{"a JSON error as image/png", imageCall("hf-inference"), inferencetest.Raw(200, png, jsonErr), "Model is overloaded"},
		{"a page as image/png on the CDN", imageCall("replicate"), inferencetest.Job{FileType: "image/png"}.Image([]byte(page)), "web page"},
		{"a JSON error as audio/flac", func(c *inference.Client, _ *inferencetest.Router) error {
			_, err := c.Speak(context.Background(), inference.SpeechRequest{Model: speechModel, Provider: "hf-inference", Text: "hi"})
			return err
		}, inferencetest.Raw(200, http.Header{"Content-Type": {"audio/flac"}}, jsonErr), "Model is overloaded"},
		{"a page in a data URL of type image/png", imageCall("fal-ai"), inferencetest.Raw(200, http.Header{"Content-Type": {"application/json"}},
			`{"images":[{"url":"data:image/png;base64,`+base64.StdEncoding.EncodeToString([]byte(page))+`"}],"has_nsfw_concepts":[false]}`), "web page"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mediaRouter(t)
			r.On(imageModel+":hf-inference", tt.answer)
			r.On(imageModel+":replicate", tt.answer)
			r.On(imageModel+":fal-ai", tt.answer)
			r.On(speechModel+":hf-inference", tt.answer)
			c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
			require.NoError(t, err)
			err = tt.call(c, r)
			require.Error(t, err)
			assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(err))
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	t.Run("an SVG", func(t *testing.T) {
		r := mediaRouter(t)
		svg := `<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>`
		r.On(imageModel+":hf-inference", inferencetest.Raw(200, http.Header{"Content-Type": {"image/svg+xml"}}, svg))
		c, err := r.Client()
		require.NoError(t, err)
		resp, err := c.TextToImage(t.Context(), imageReq("hf-inference"))
		require.NoError(t, err)
		assert.Equal(t, svg, string(resp.Image))
		assert.Equal(t, "image/svg+xml", resp.ContentType)
	})
}

// imageCall is a text-to-image call pinned to provider.
func imageCall(provider string) func(c *inference.Client, r *inferencetest.Router) error {
	return func(c *inference.Client, _ *inferencetest.Router) error {
		_, err := c.TextToImage(context.Background(), imageReq(provider))
		return err
	}
}

// A provider's content-policy refusal of a job is the call's refusal
// wherever it comes: fal's 422 whose detail is of type
// content_policy_violation (its documented shape), at the submission or
// at the result, a Replicate prediction failed as "flagged as sensitive"
// (E005). The walk stops there (every provider would be sent
// the same prompt), and the provider is cooled for no one.
func TestContentPolicyRefusalOfAJobEndsTheWalk(t *testing.T) {
	verifyNoLeaks(t)
	pic := testPNG(t, 8)
	falRefusal := func(next http.RoundTripper) http.RoundTripper {
		return inference.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/requests/") && !strings.HasSuffix(req.URL.Path, "/status") {
				body := `{"detail":[{"loc":["body","prompt"],"msg":"The content was flagged by a content checker.","type":"content_policy_violation",` +
					`"url":"https://docs.fal.ai/errors#content_policy_violation","input":"a prompt","categories":["sexual"]}]}`
				return &http.Response{StatusCode: http.StatusUnprocessableEntity, Request: req, Body: io.NopCloser(strings.NewReader(body)),
					Header: http.Header{"Content-Type": {"application/json"}, "X-Inference-Provider": {"fal-ai"}}}, nil
			}
			return next.RoundTrip(req)
		})
	}
	falSubmission := inferencetest.Raw(http.StatusUnprocessableEntity, http.Header{"Content-Type": {"application/json"}, "X-Inference-Provider": {"fal-ai"}},
		`{"detail":[{"loc":["body","prompt"],"msg":"The content was flagged by a content checker.","type":"content_policy_violation"}]}`)
	for _, tt := range []struct {
		name, provider string
		answer         inferencetest.Answer
		opts           []inference.Option
	}{
		{"fal's result", "fal-ai", inferencetest.Job{Queued: 1}.Image(pic), []inference.Option{inference.WithMiddleware(falRefusal)}},
		{"fal's submission", "fal-ai", falSubmission, nil},
		{"a Replicate prediction", "replicate", inferencetest.Job{Running: 1, Fail: "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"}.Image(pic), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRouter(t)
			mapModel(r, imageModel, "text-to-image", tt.provider, "together")
			r.On(imageModel+":"+tt.provider, tt.answer)
			r.On(imageModel+":together", inferencetest.Image(pic))
			store := &mapStore{until: map[string]time.Time{}}
			c, err := r.Client(append(tt.opts, inference.WithCooldownStore(store))...)
			require.NoError(t, err)
			resp, err := c.TextToImage(t.Context(), imageReq(""))
			require.Error(t, err)
			assert.Nil(t, resp)
			assert.Equal(t, []error{inference.ErrInvalidRequest}, matchedKinds(err))
			var apiErr *inference.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, "content_policy_violation", apiErr.Code)
			assert.Equal(t, tt.provider, apiErr.Provider)
			var fe *inference.FallbackError
			require.ErrorAs(t, err, &fe)
			assert.Len(t, fe.Attempts, 1, "the prompt went to no other provider")
			assert.Empty(t, store.until, "the provider is cooled for no one")
		})
	}
}

// rateLimitedPolls answers the first n polls of a Replicate prediction
// with the router's 429 asking to wait retryAfterMs.
func rateLimitedPolls(n int, retryAfterMs string) inference.Middleware {
	var mu sync.Mutex
	seen := 0
	return func(next http.RoundTripper) http.RoundTripper {
		return inference.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, "/replicate/v1/predictions/") {
				mu.Lock()
				seen++
				limited := seen <= n
				mu.Unlock()
				if limited {
					return &http.Response{StatusCode: http.StatusTooManyRequests, Request: req,
						Body: io.NopCloser(strings.NewReader(`{"detail":"Request was throttled."}`)),
						Header: http.Header{"Content-Type": {"application/json"}, "X-Inference-Provider": {"replicate"},
							"Retry-After-Ms": {retryAfterMs}}}, nil
				}
			}
			return next.RoundTrip(req)
		})
	}
}

// A poll answered 429 with the wait it asks for is polled again after
// that wait, when the job's deadline allows it: the job runs on, and is
// not abandoned (nor the provider cooled) because its status was asked too
// often. A wait past the job's deadline fails the attempt at once.
func TestRateLimitedPollWaitsAsAsked(t *testing.T) {
	verifyNoLeaks(t)
	pic := testPNG(t, 8)

	t.Run("within the deadline", func(t *testing.T) {
		r := mediaRouter(t)
		r.On(imageModel+":replicate", inferencetest.Job{Queued: 1}.Image(pic))
		store := &mapStore{until: map[string]time.Time{}}
		c, err := r.Client(inference.WithMiddleware(rateLimitedPolls(3, "40")), inference.WithCooldownStore(store))
		require.NoError(t, err)
		start := time.Now()
		resp, err := c.TextToImage(t.Context(), imageReq("replicate"))
		require.NoError(t, err)
		assert.Equal(t, pic, resp.Image)
		assert.GreaterOrEqual(t, time.Since(start), 120*time.Millisecond, "each 429's wait was kept")
		jobs := r.Jobs()
		require.Len(t, jobs, 1)
		assert.False(t, jobs[0].Cancelled)
		assert.Empty(t, store.until)
	})

	t.Run("past the deadline", func(t *testing.T) {
		r := mediaRouter(t)
		r.On(imageModel+":replicate", inferencetest.Job{Queued: 1}.Image(pic))
		c, err := r.Client(inference.WithMiddleware(rateLimitedPolls(1, "60000")), inference.WithJobDeadline(10*time.Second))
		require.NoError(t, err)
		start := time.Now()
		_, err = c.TextToImage(t.Context(), imageReq("replicate"))
		require.Error(t, err)
		assert.Less(t, time.Since(start), 5*time.Second, "no wait for a poll the deadline would not allow")
		assert.Equal(t, []error{inference.ErrRateLimited}, matchedKinds(err))
		jobs := r.Jobs()
		require.Len(t, jobs, 1)
		assert.True(t, jobs[0].Cancelled, "the job given up is cancelled")
	})
}

// wavespeed's enable_base64_output (a Parameter passed through) puts the
// image in the poll that finds the task completed, as bare base64: it is
// decoded like any base64 answer, up to the result cap, not refused as a
// poll answer over 4 MiB nor taken for a URL.
func TestWavespeedBase64OutputIsTheImage(t *testing.T) {
	verifyNoLeaks(t)
	big := append(testPNG(t, 8), make([]byte, 5<<20)...)
	r := mediaRouter(t)
	r.On(imageModel+":wavespeed", inferencetest.Job{Queued: 1}.Image(testPNG(t, 8)))
	var polls atomic.Int32
	inBase64 := func(next http.RoundTripper) http.RoundTripper {
		return inference.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method != http.MethodGet || !strings.Contains(req.URL.Path, "/api/v3/predictions/") {
				return next.RoundTrip(req)
			}
			status, outputs := "processing", `[]`
			if polls.Add(1) > 1 {
				status, outputs = "completed", `["`+base64.StdEncoding.EncodeToString(big)+`"]`
			}
			body := `{"code":200,"message":"success","data":{"id":"w1","status":"` + status + `","outputs":` + outputs + `,"has_nsfw_contents":[false],"error":""}}`
			return &http.Response{StatusCode: 200, Request: req, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
				Header: http.Header{"Content-Type": {"application/json"}, "X-Inference-Provider": {"wavespeed"}}}, nil
		})
	}
	c, err := r.Client(inference.WithMiddleware(inBase64))
	require.NoError(t, err)
	req := imageReq("wavespeed")
	req.Parameters = map[string]any{"enable_base64_output": true}
	resp, err := c.TextToImage(t.Context(), req)
	require.NoError(t, err)
	assert.Equal(t, big, resp.Image)
	assert.Equal(t, "image/png", resp.ContentType)
	assert.Empty(t, r.CDN(), "nothing downloaded")
	_, err = c.TextToImage(t.Context(), req, inference.WithMaxResultSize(1<<20))
	require.Error(t, err, "the cap still holds")
	assert.Contains(t, err.Error(), "larger than")
}

// A file the call refuses (over the cap, of the wrong family) is not
// quoted in the error as if its bytes were the server's words.
func TestRefusedFileIsNotQuotedAsWords(t *testing.T) {
	verifyNoLeaks(t)
	pic := testPNG(t, 64)
	for _, tt := range []struct {
		name, provider string
		answer         inferencetest.Answer
		opts           []inference.Option
		want           string
	}{
		{"an image over the cap", "hf-inference", inferencetest.Image(pic), []inference.Option{inference.WithMaxResultSize(64)}, "larger than 64 bytes"},
		{"a download over the cap", "replicate", inferencetest.Image(pic), []inference.Option{inference.WithMaxResultSize(64)}, "larger than 64 bytes"},
		{"a chunked image over the cap", "hf-inference", inferencetest.Raw(200, http.Header{"Content-Type": {"image/png"}}, string(append(pic, make([]byte, 16<<10)...))),
			[]inference.Option{inference.WithMaxResultSize(8 << 10)}, "larger than 8 KiB"},
		{"audio for an image", "hf-inference", inferencetest.Raw(200, http.Header{"Content-Type": {"audio/flac"}}, string(testFLAC)), nil, "audio/flac, not an image"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := mediaRouter(t)
			r.On(imageModel+":"+tt.provider, tt.answer)
			c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
			require.NoError(t, err)
			_, err = c.TextToImage(t.Context(), imageReq(tt.provider), tt.opts...)
			require.Error(t, err)
			msg := err.Error()
			assert.Contains(t, msg, tt.want)
			assert.NotContains(t, msg, "\uFFFD", "no bytes shown as text")
			assert.NotContains(t, msg, "IHDR")
			assert.NotContains(t, msg, "fLaC")
		})
	}
}

// The content type returned is a media type as parsed, never a provider's
// raw text: a data URL's or fal's content_type with control characters or
// broken parameters gives its type alone.
func TestContentTypeIsAParsedMediaType(t *testing.T) {
	verifyNoLeaks(t)
	pic := testPNG(t, 8)
	b64 := base64.StdEncoding.EncodeToString(pic)
	for _, tt := range []struct{ name, answer, want string }{
		{"a data URL's broken parameter", `{"images":[{"url":"data:image/png; x=\"a\r\nSet-Cookie: b\";base64,` + b64 + `"}]}`, "image/png"},
		{"a data URL's control character", `{"images":[{"url":"data:image/png; charset=\"\u0000\";base64,` + b64 + `"}]}`, "image/png"},
		{"fal's content_type", `{"images":[{"url":"data:;base64,` + b64 + `","content_type":"IMAGE/PNG; q=\"\u0007\""}]}`, "image/png"},
		{"parameters kept", `{"images":[{"url":"data:image/png;name=out.png;base64,` + b64 + `"}]}`, "image/png; name=out.png"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := mediaRouter(t)
			r.On(imageModel+":fal-ai", inferencetest.Raw(200, http.Header{"Content-Type": {"application/json"}}, tt.answer))
			c, err := r.Client()
			require.NoError(t, err)
			resp, err := c.TextToImage(t.Context(), imageReq("fal-ai"))
			require.NoError(t, err)
			assert.Equal(t, pic, resp.Image)
			assert.Equal(t, tt.want, resp.ContentType)
		})
	}
}

// A WithProgress function that panics has the provider's job cancelled
// before the panic goes on up to the caller: nothing of the call runs on
// behind a recovered panic, billed.
func TestPanickingProgressCancelsTheJob(t *testing.T) {
	verifyNoLeaks(t)
	r := mediaRouter(t)
	r.On(imageModel+":fal-ai", neverEnding.Image(testPNG(t, 8)))
	c, err := r.Client()
	require.NoError(t, err)
	var recovered any
	func() {
		defer func() { recovered = recover() }()
		_, _ = c.TextToImage(t.Context(), imageReq("fal-ai"), inference.WithProgress(func(p inference.JobProgress) {
			if p.Polls == 2 {
				panic("a progress bar's bug")
			}
		}))
	}()
	assert.Equal(t, "a progress bar's bug", recovered, "the panic reaches the caller as it was")
	jobs := r.Jobs()
	require.Len(t, jobs, 1)
	assert.True(t, jobs[0].Cancelled, "the job is cancelled")
}

// A transcript left in a text file is read only when the file is text: a
// web page (an expired link's) or bytes that are no text are the
// provider's failure, never returned as the transcript.
func TestTranscriptFileMustBeText(t *testing.T) {
	verifyNoLeaks(t)
	for _, tt := range []struct {
		name string
		job  inferencetest.Job
		file []byte
		want string
	}{
		{"a web page", inferencetest.Job{FileType: "text/html; charset=utf-8"}, []byte("<html><body>This link has expired</body></html>"), "web page"},
		{"an image", inferencetest.Job{}, testPNG(t, 8), "not text"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := mediaRouter(t)
			r.On(imageModel+":replicate", tt.job.Image(tt.file))
			c, err := r.Client(inference.WithResultURL(), inference.WithRetry(inference.RetryPolicy{}))
			require.NoError(t, err)
			img, err := c.TextToImage(t.Context(), imageReq("replicate"))
			require.NoError(t, err)
			body := `{"id":"p9","status":"succeeded","output":{"txt_file":"` + img.URL + `"}}`
			r.On(asrModel+":replicate", inferencetest.Raw(201, http.Header{"Content-Type": {"application/json"}}, body))
			resp, err := c.Transcribe(t.Context(), inference.TranscribeRequest{Model: asrModel, Provider: "replicate", Audio: testWAV})
			require.Error(t, err)
			assert.Nil(t, resp)
			assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(err))
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}
