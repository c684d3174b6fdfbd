package inference

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hfkit/inference/internal/redact"
)

// The job engine. A provider that queues its work (fal-ai's queue, a
// Replicate prediction, wavespeed's and zai-org's tasks) runs one job per
// attempt: the job is submitted, polled through the router with a growing
// wait under the job deadline, and its result read; every request of the
// job carries the call's token, bill-to and headers, and goes to the
// router, never to the provider's own host that its answers name. When the
// attempt stops waiting (the call's context ends, the job deadline passes,
// a poll keeps failing, or the race cancels it because another attempt
// won), the provider's job is cancelled before the attempt returns, so
// that nobody pays for a result nobody waits for. A job is one attempt: its
// failure goes to the walk like any other, which moves to the next
// provider as its kind says.

// jobState is where a job stands.
type jobState int

const (
	jobRunning jobState = iota
	jobDone
	jobFailed
	jobCanceled
)

// job is one provider's job, as its answers describe it.
type job struct {
	id string
	// path is where the job is polled, read and cancelled under
	// {router}/{provider}, when the provider names it (fal, wavespeed).
	path     string
	status   string
	position int
	state    jobState
	// failure is the provider's words for a failed job.
	failure string
	// answer is the last answer read, which holds the result when the
	// protocol has no result request of its own.
	answer []byte
	// textOutput: the job makes text (a transcript), which a prediction
	// may hand out before it has ended; it is waited for.
	textOutput bool
}

// jobProtocol is how one provider runs jobs. Its paths are under
// {router}/{provider}.
type jobProtocol struct {
	// kind is "queued" or "prediction", for the README.
	kind string
	// read reads the submission's answer or a poll's into j.
	read func(data []byte, j *job) error
	// poll is where j's state is read.
	poll func(j *job) string
	// result, when set, is where a done job's result is read, unless
	// the last answer held it (read set j.answer); else the last answer
	// holds it.
	result func(j *job) string
	// cancel is where j is cancelled, with cancelMethod, or "" when its
	// answers did not name it; nil when the provider has no cancel.
	cancel       func(j *job) string
	cancelMethod string
	// header is sent with polls and the cancel.
	header http.Header
}

// jobCancelTimeout bounds the cancel of a job the attempt stopped waiting
// for, on a context of its own: the caller's has ended.
const jobCancelTimeout = 5 * time.Second

// Answers' sizes: a status poll's is small; an answer that may hold a
// file in base64 (a submission's, the result's, a poll's where the poll
// holds the result) is bounded by the result cap (jsonLimit).
const maxPollAnswer = 4 << 20

// falQueue is fal's queue: the submission answers {request_id, status,
// response_url}; {response_url's path}/status answers {status, queue_position}
// (IN_QUEUE, IN_PROGRESS, COMPLETED, with an error when it failed); the
// path itself answers the result; {path}/cancel cancels (PUT). The router
// reaches the queue with ?_subdomain=queue. An older, synchronous answer
// is the result itself.
var falQueue = &jobProtocol{
	kind: "queued",
	read: func(data []byte, j *job) error {
		var w struct {
			RequestID   string           `json:"request_id"`
			Status      string           `json:"status"`
			ResponseURL string           `json:"response_url"`
			Position    *int             `json:"queue_position"`
			Error       *json.RawMessage `json:"error"`
			Images      json.RawMessage  `json:"images"`
		}
		if err := json.Unmarshal(data, &w); err != nil {
			return errors.New("the answer is not fal's queue status")
		}
		if w.Status == "" && w.RequestID == "" && j.id == "" && len(w.Images) > 0 {
			j.state, j.answer = jobDone, data // answered at once
			return nil
		}
		if w.RequestID != "" {
			j.id = w.RequestID
		}
		if w.ResponseURL != "" {
			path, err := pathOf(w.ResponseURL)
			if err != nil {
				return err
			}
			j.path = path
		}
		if j.id == "" || j.path == "" {
			return errors.New("fal's queue named no request_id and response_url")
		}
		j.status, j.position = w.Status, -1
		if w.Position != nil {
			j.position = *w.Position
		}
		switch w.Status {
		case "IN_QUEUE", "IN_PROGRESS":
			j.state = jobRunning
		case "COMPLETED":
			j.state = jobDone
			if msg := errorText(w.Error); msg != "" {
				j.state, j.failure = jobFailed, msg
			}
		case "FAILED":
			j.state, j.failure = jobFailed, errorText(w.Error)
		case "CANCELED", "CANCELLED":
			j.state = jobCanceled
		default:
			return errors.New("fal's queue status " + quoted(w.Status) + " is not one it documents")
		}
		return nil
	},
	poll:         func(j *job) string { return j.path + "/status?_subdomain=queue" },
	result:       func(j *job) string { return j.path + "?_subdomain=queue" },
	cancel:       func(j *job) string { return ifNamed(j.path, j.path+"/cancel?_subdomain=queue") },
	cancelMethod: http.MethodPut,
}

// replicatePrediction is a Replicate prediction: the submission and each
// poll answer the prediction {id, status, output, error}: starting,
// processing, then succeeded, failed or canceled. The submission asks no
// Prefer: wait, which would hold its answer, and with it the prediction's
// id, while the prediction runs (up to a minute: most images' whole run):
// a call cancelled, a job deadline passed or a hedge launched meanwhile
// would leave a billed prediction nobody could cancel. Without it
// Replicate answers at once, and the prediction is polled like any job. A
// file's URL in the output is taken while the prediction is still
// processing (Replicate hands it out as soon as it is written); a text is
// waited for until it succeeds. The prediction is polled and cancelled
// (POST .../cancel) by id through the router, never at the urls it names
// on api.replicate.com.
var replicatePrediction = &jobProtocol{
	kind: "prediction",
	read: func(data []byte, j *job) error {
		var w struct {
			ID     string           `json:"id"`
			Status string           `json:"status"`
			Output json.RawMessage  `json:"output"`
			Error  *json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(data, &w); err != nil {
			return errors.New("the answer is not a Replicate prediction")
		}
		if w.ID != "" {
			j.id = w.ID
		}
		if j.id == "" {
			return errors.New("the prediction has no id")
		}
		j.status, j.position, j.answer = w.Status, -1, data
		output := bytes.TrimSpace(w.Output)
		switch w.Status {
		case "starting", "processing":
			j.state = jobRunning
			if !j.textOutput && firstString(output) != nil {
				j.state = jobDone
			}
		case "succeeded":
			j.state = jobDone
		case "failed":
			j.state, j.failure = jobFailed, errorText(w.Error)
		case "canceled", "aborted":
			j.state = jobCanceled
		default:
			return errors.New("the prediction's status " + quoted(w.Status) + " is not one Replicate documents")
		}
		return nil
	},
	poll:         func(j *job) string { return "/v1/predictions/" + url.PathEscape(j.id) },
	cancel:       func(j *job) string { return ifNamed(j.id, "/v1/predictions/"+url.PathEscape(j.id)+"/cancel") },
	cancelMethod: http.MethodPost,
}

// wavespeedTask is wavespeed's: the submission answers {code, message,
// data: {id, urls: {get}}}, and urls.get's path answers {data: {status:
// created, processing, completed or failed, outputs, error}}, which holds
// the result. Wavespeed documents no cancel.
var wavespeedTask = &jobProtocol{
	kind: "queued",
	read: func(data []byte, j *job) error {
		var w struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Data    *struct {
				ID     string           `json:"id"`
				Status string           `json:"status"`
				Error  *json.RawMessage `json:"error"`
				URLs   struct {
					Get string `json:"get"`
				} `json:"urls"`
			} `json:"data"`
		}
		if err := json.Unmarshal(data, &w); err != nil || w.Data == nil {
			return errors.New("the answer is not wavespeed's {code, data}")
		}
		if w.Code != 0 && w.Code != http.StatusOK {
			j.state, j.failure = jobFailed, w.Message
			return nil
		}
		d := w.Data
		if d.ID != "" {
			j.id = d.ID
		}
		if d.URLs.Get != "" {
			path, err := pathOf(d.URLs.Get)
			if err != nil {
				return err
			}
			j.path = path
		}
		if j.id == "" {
			return errors.New("wavespeed named no task id")
		}
		if j.path == "" {
			j.path = "/api/v3/predictions/" + url.PathEscape(j.id) + "/result"
		}
		j.status, j.position, j.answer = d.Status, -1, data
		switch d.Status {
		case "", "created", "processing":
			j.state = jobRunning
		case "completed":
			j.state = jobDone
		case "failed":
			j.state, j.failure = jobFailed, errorText(d.Error)
		default:
			return errors.New("wavespeed's status " + quoted(d.Status) + " is not one it documents")
		}
		return nil
	},
	poll: func(j *job) string { return j.path },
}

// zaiTask is zai-org's asynchronous image: the submission answers {id,
// task_status}, and /api/paas/v4/async-result/{id} answers {task_status:
// PROCESSING, SUCCESS or FAIL, image_result}, which holds the result.
// zai-org documents no cancel.
var zaiTask = &jobProtocol{
	kind: "queued",
	read: func(data []byte, j *job) error {
		var w struct {
			ID     string           `json:"id"`
			Status string           `json:"task_status"`
			Error  *json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(data, &w); err != nil {
			return errors.New("the answer is not zai-org's {id, task_status}")
		}
		if w.ID != "" {
			j.id = w.ID
		}
		if j.id == "" {
			return errors.New("zai-org named no task id")
		}
		j.status, j.position, j.answer = w.Status, -1, data
		switch w.Status {
		case "PROCESSING":
			j.state = jobRunning
		case "SUCCESS":
			j.state = jobDone
		case "FAIL":
			j.state, j.failure = jobFailed, errorText(w.Error)
		default:
			return errors.New("zai-org's task_status " + quoted(w.Status) + " is not one it documents")
		}
		return nil
	},
	poll:   func(j *job) string { return "/api/paas/v4/async-result/" + url.PathEscape(j.id) },
	header: zaiHeader,
}

// errorText is a job's error as text: a string, an object's message or
// detail, or the JSON itself; "" for none.
func errorText(raw *json.RawMessage) string {
	if raw == nil {
		return ""
	}
	data := bytes.TrimSpace(*raw)
	if len(data) == 0 || string(data) == "null" || string(data) == `""` {
		return ""
	}
	var s string
	if json.Unmarshal(data, &s) == nil {
		return s
	}
	if t := readJSONError(data); t.message != "" {
		return t.message
	}
	return string(data)
}

// quoted quotes a provider's status for an error's text.
func quoted(s string) string { return `"` + cleanText(s, 64) + `"` }

// runJob runs the attempt's job: x submits it (its hedge clock running
// until the provider accepts it), then it is polled until it ends, and
// the answer holding its result is decoded by the row.
func (m *mediaCall) runJob(ctx context.Context, x exchange, row *mediaRow, att *Attempt) (*mediaOut, error) {
	c, p := m.c, row.job
	jctx := ctx
	if d := m.cfg.jobDeadline; d > 0 {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > d {
			var cancel context.CancelFunc
			jctx, cancel = context.WithTimeoutCause(ctx, d, timeoutError{TimeoutJob, d})
			defer cancel()
		}
	}
	start := time.Now()
	data, header, err := m.ask(ctx, jctx, x, att, m.jsonLimit())
	if err != nil {
		return nil, err
	}
	out := &mediaOut{provider: servedByOr(header, x.tok, x.about.Provider), requestID: att.RequestID}
	j := job{position: -1, textOutput: row.task == taskSpeechToText}
	defer func() {
		if v := recover(); v != nil {
			// A WithProgress function (or a middleware) panicked: the job
			// is cancelled before the panic goes on up, so that nothing
			// of the call runs on behind it, billed.
			m.abandon(ctx, x, p, &j, nil)
			panic(v)
		}
	}()
	if err := p.read(data, &j); err != nil {
		// The answer may name a job it could not describe: it may run.
		return nil, m.abandon(ctx, x, p, &j, c.notWhatWasAsked(att.StatusCode, header, data, x, err.Error()))
	}
	if j.id != "" {
		out.requestID = safeText(j.id, x.tok, 256)
	}
	base := c.base.String() + "/" + x.about.Provider
	poll := x
	poll.method, poll.body, poll.contentType, poll.race, poll.header = http.MethodGet, nil, "", tryHooks{}, p.header
	if j.state == jobRunning {
		m.report(x, &j, 0, start)
	}
	wait := m.cfg.pollFirst
	pollLimit := maxPollAnswer
	if p.result == nil {
		pollLimit = m.jsonLimit() // the poll that finds the job done holds its result
	}
	for polls := 1; j.state == jobRunning; polls++ {
		if err := sleep(jctx, wait); err != nil {
			return nil, m.abandon(ctx, x, p, &j, c.noAnswer(ctx, jctx, poll, err))
		}
		wait = min(wait+wait/2, m.cfg.pollMax)
		poll.url = base + p.poll(&j)
		data, header, err = m.ask(ctx, jctx, poll, nil, pollLimit)
		if asked := pollAgainAfter(err, jctx); asked > 0 {
			// The job runs on; its status was asked too often. The poll
			// is made again after the wait, and counted once.
			wait, polls = max(wait, asked), polls-1
			continue
		}
		if err != nil {
			return nil, m.abandon(ctx, x, p, &j, pollFailure(err))
		}
		if err := p.read(data, &j); err != nil {
			return nil, m.abandon(ctx, x, p, &j, c.notWhatWasAsked(http.StatusOK, header, data, poll, err.Error()))
		}
		m.report(x, &j, polls, start)
	}
	switch j.state {
	case jobFailed:
		return nil, m.jobFailed(header, poll, j.failure)
	case jobCanceled:
		e := c.classify(http.StatusOK, header, nil, poll)
		e.Message = "the provider cancelled the job " + safeText(j.id, x.tok, 64)
		return nil, e
	}
	answer, result := j.answer, poll
	if p.result != nil && answer == nil {
		result.url = base + p.result(&j)
		if answer, header, err = m.ask(ctx, jctx, result, nil, m.jsonLimit()); err != nil {
			return nil, pollFailure(err)
		}
	}
	if err := m.decode(row, answer, header, result, out); err != nil {
		return nil, err
	}
	return out, nil
}

// jobFailed is the failure of a job the provider reports failed, in its
// words: a refusal of the result as not safe for work is a content-policy
// refusal; other words are classified as the server's words in a 200 are
// (a provider failure unless they say otherwise).
func (m *mediaCall) jobFailed(header http.Header, x exchange, words string) error {
	words = redact.String(words, x.tok.value())
	if words == "" {
		words = "the job failed without saying why"
	}
	if flaggedWords(words) {
		return m.flagged(http.StatusOK, header, x, words)
	}
	return m.c.failedResponse(http.StatusOK, header, x, "", words)
}

// flaggedWords reports a job's failure that names its input or result
// refused by a safety checker (Replicate: "NSFW content detected", "The
// input or output was flagged as sensitive ... (E005)").
func flaggedWords(words string) bool {
	w := strings.ToLower(words)
	for _, flag := range []string{"nsfw", "not safe for work", "flagged as sensitive", "content policy", "content_policy_violation"} {
		if strings.Contains(w, flag) {
			return true
		}
	}
	return false
}

// pollFailure is a failed request of a running job: the token's and the
// account's failures keep their kinds (the walk tries the next token, or
// stops), and so does a content-policy refusal of the result; any other
// says the job is in trouble, not the model: a provider failure, so that
// the walk moves on.
func pollFailure(err error) error {
	var e *APIError
	if !errors.As(err, &e) {
		return err
	}
	if isContentPolicy(e.Code) {
		return err // the result refused (fal's 422 at the result): the call's refusal
	}
	switch e.Kind {
	case ErrModelNotFound, ErrModelNotSupported, ErrGatedModel, ErrInvalidRequest, ErrContextLength:
		e.Kind = ErrProvider
		e.Message = "the job could not be read: " + e.Message
	}
	return err
}

// ifNamed is path when the job's name in it (its id, or fal's path) is
// known, else "".
func ifNamed(name, path string) string {
	if name == "" {
		return ""
	}
	return path
}

// pollAgainAfter is the wait a poll's rate limit asked for (its
// Retry-After, past the retries), when the job's deadline leaves time to
// poll after it; 0 otherwise, when the poll's failure ends the job.
func pollAgainAfter(err error, jctx context.Context) time.Duration {
	var e *APIError
	if !errors.As(err, &e) || e.Kind != ErrRateLimited || e.RetryAfter <= 0 || jctx.Err() != nil {
		return 0
	}
	if dl, ok := jctx.Deadline(); ok && time.Until(dl) <= e.RetryAfter {
		return 0
	}
	return e.RetryAfter
}

// abandon cancels the provider's job the attempt stops waiting for, when
// its answers named it, then returns why it stopped.
func (m *mediaCall) abandon(ctx context.Context, x exchange, p *jobProtocol, j *job, why error) error {
	if p.cancel != nil {
		if path := p.cancel(j); path != "" {
			m.cancelJob(ctx, x, p, j, path)
		}
	}
	return why
}

// cancelJob cancels j at the provider through the router, with the call's
// token, bill-to and headers, on a context of its own that keeps ctx's
// values (an observer's span) but not its end.
func (m *mediaCall) cancelJob(ctx context.Context, x exchange, p *jobProtocol, j *job, path string) {
	c := m.c
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jobCancelTimeout)
	defer cancel()
	cx := x
	cx.method, cx.url, cx.body, cx.contentType, cx.race, cx.header = p.cancelMethod, c.base.String()+"/"+x.about.Provider+path, nil, "", tryHooks{}, p.header
	resp, err := c.send(cctx, cctx, cx, nil)
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		c.logger.LogAttrs(ctx, slog.LevelDebug, "inference: cancelled the provider's job",
			slog.String("candidate", x.about.String()), slog.String("job", safeText(j.id, x.tok, 64)))
		return
	}
	c.logger.LogAttrs(ctx, slog.LevelWarn, "inference: the provider's job could not be cancelled; it may still run and be billed",
		slog.String("candidate", x.about.String()), slog.String("job", safeText(j.id, x.tok, 64)), slog.String("error", err.Error()))
}

// report tells WithProgress's function where j, the job x submitted,
// stands.
func (m *mediaCall) report(x exchange, j *job, polls int, start time.Time) {
	if m.cfg.progress == nil {
		return
	}
	m.cfg.progress(JobProgress{Candidate: x.about, JobID: safeText(j.id, x.tok, 256), Status: safeText(j.status, x.tok, 64),
		QueuePosition: j.position, Polls: polls, Elapsed: time.Since(start)})
}

// safeText is a provider's word, cleaned and bounded, with the token
// removed should the provider echo it.
func safeText(s string, tok Token, max int) string {
	return cleanText(redact.String(s, tok.value()), max)
}

// sleep waits d, or until ctx ends (its error then).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
