package inferencetest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/internal/redact"
)

// Images and audio. The router serves them where the real one does, one
// route per provider and task, as @huggingface/inference calls them:
//
//	hf-inference       POST /hf-inference/models/{model} (JSON, or the raw audio)
//	together, nscale   POST /{p}/v1/images/generations
//	together           POST /together/v1/audio/speech, /together/v1/audio/transcriptions
//	deepinfra          POST /deepinfra/v1/openai/audio/speech, .../audio/transcriptions
//	fal-ai             POST /fal-ai/{id}?_subdomain=queue (a queued image), POST /fal-ai/{id} (speech, transcription);
//	                   GET .../requests/{job}/status, GET .../requests/{job}, PUT .../requests/{job}/cancel
//	replicate          POST /replicate/v1/models/{id}/predictions, /replicate/v1/predictions (a pinned version);
//	                   GET /replicate/v1/predictions/{job}, POST .../{job}/cancel
//	wavespeed          POST /wavespeed/api/v3/{id}; GET /wavespeed/api/v3/predictions/{job}/result
//	zai-org            POST /zai-org/api/paas/v4/async/images/generations; GET .../async-result/{job}
//
// Script a submission like a chat, by "model:provider" (the Hub id: a
// provider's id is mapped back through the models given to AddModel) or
// "model", with [Image], [Speech] or [Transcription] (or a [Job] of them),
// or any failure (ProviderError, Gated, ...). Its Request has API set to
// the task ("text-to-image", "automatic-speech-recognition",
// "text-to-speech"); the later requests of a job are recorded too, with
// API "job-status", "job-result" or "job-cancel" and Job set to the job's
// id, and are answered by the job, not by scripts.
//
// Result files live on another host, the router's CDN ([Router.CDN]): an
// answer names the file's URL there, as fal and Replicate name theirs on
// their CDNs, and every request the CDN gets is recorded with whether it
// carried a Hugging Face token or X-HF-Bill-To. The URLs a provider's
// answers name on its own API host (fal's response_url, Replicate's
// urls.get and urls.cancel) point at the CDN's host too, where nothing
// but /files/ is served: a client that polls them instead of the router
// is seen there.

// Job shapes how a provider that queues its work (fal-ai, Replicate,
// wavespeed, zai-org) runs a job; its methods make the [Answer] that
// submits it. The zero Job ends at the first poll (a Replicate prediction
// whose submission asks Prefer: wait, which this client does not, within
// the wait). A provider that answers at once ignores Queued and Running.
//
//	r.On("org/flux:fal-ai", inferencetest.Job{Queued: 3, Running: 1}.Image(png))
type Job struct {
	// Queued polls answer that the job waits (fal's IN_QUEUE, with its
	// queue position counting down; Replicate's starting; wavespeed's
	// created; zai-org's PROCESSING), then Running polls that it runs;
	// the poll after them finds it ended. A large Queued (math.MaxInt32)
	// is a job that never ends, until it is cancelled.
	Queued, Running int
	// Fail, when set, ends the job failed with these words (a fal result
	// answering 500, a Replicate prediction "failed", ...); a provider
	// that answers at once answers a 500 with them.
	Fail string
	// NSFW flags the result as not safe for work, as each provider does:
	// fal's has_nsfw_concepts: [true] (with a black image), wavespeed's
	// has_nsfw_contents, a Replicate prediction failed with "NSFW content
	// detected".
	NSFW bool
	// DataURL puts the file in fal's answer as a data URL (its sync_mode)
	// instead of on the CDN.
	DataURL bool
	// FileStatus is the CDN's status for the result file (403: an expired
	// link, 404: gone); zero serves it. FileType is the Content-Type the
	// CDN gives it; "" gives the file's own.
	FileStatus int
	FileType   string
}

// Image answers with an image: the zero [Job]'s.
func Image(data []byte) Answer { return Job{}.Image(data) }

// Speech answers with spoken audio of type contentType: the zero [Job]'s.
func Speech(data []byte, contentType string) Answer { return Job{}.Speech(data, contentType) }

// Transcription answers with a transcript and its timed chunks: the zero
// [Job]'s.
func Transcription(text string, chunks ...inference.TranscriptChunk) Answer {
	return Job{}.Transcription(text, chunks...)
}

// Image answers a text-to-image request with data, in the shape of the
// route asked: the bytes (hf-inference, with their sniffed type), base64
// in JSON (Together, nscale), or a job whose result names the file on the
// CDN (fal-ai, Replicate, wavespeed, zai-org).
func (j Job) Image(data []byte) Answer {
	return j.answer(media{data: data, contentType: http.DetectContentType(data)})
}

// Speech answers a text-to-speech request with data of type contentType:
// the bytes (hf-inference, Together, DeepInfra), fal's {"audio": {"url"}},
// or a Replicate prediction whose output is the file's URL.
func (j Job) Speech(data []byte, contentType string) Answer {
	return j.answer(media{data: data, contentType: contentType})
}

// Transcription answers a speech-recognition request with text and its
// chunks, in each provider's shape: {"text", "chunks"} (hf-inference,
// fal-ai), {"text", "segments"} (Together, DeepInfra), a prediction whose
// output is {"transcription", "segments"} (Replicate).
func (j Job) Transcription(text string, chunks ...inference.TranscriptChunk) Answer {
	return j.answer(media{text: text, chunks: chunks, transcript: true})
}

// media is what an answer serves.
type media struct {
	data        []byte
	contentType string
	transcript  bool
	text        string
	chunks      []inference.TranscriptChunk
}

// JobRecord is a job the router ran, as [Router.Jobs] reports it.
type JobRecord struct {
	// ID is the job's id; Provider and Model (the Hub id) whose it is;
	// Task the task.
	ID, Provider, Model, Task string
	// Polls counts the status requests the job answered.
	Polls int
	// Cancelled reports that a cancel request reached it.
	Cancelled bool
	// Done reports that it ended, failed or not, before any cancel.
	Done bool
}

// fakeJob is a job in flight.
type fakeJob struct {
	JobRecord
	script Job
	out    media
	file   string // the result file's URL on the CDN
	app    string // fal's app, under which it names the job
}

// CDNRequest is one request the CDN received.
type CDNRequest struct {
	Method, Path string
	// Token reports that a Hugging Face token ("hf_...") appeared in any
	// header; Authorization, that the header was there at all; BillTo,
	// that X-HF-Bill-To was.
	Token, Authorization, BillTo bool
	// Header is the request's, tokens redacted.
	Header http.Header
}

// Jobs returns the jobs submitted so far, in order.
func (r *Router) Jobs() []JobRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]JobRecord, 0, len(r.jobOrder))
	for _, id := range r.jobOrder {
		out = append(out, r.jobs[id].JobRecord)
	}
	return out
}

// CDN returns the requests the CDN received, in order.
func (r *Router) CDN() []CDNRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]CDNRequest(nil), r.cdnRequests...)
}

// cdnURL is the CDN's base URL, starting it at first use.
func (r *Router) cdnURL() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cdn == nil {
		r.cdn = httptest.NewServer(http.HandlerFunc(r.serveCDN))
	}
	return r.cdn.URL
}

// serveCDN serves result files under /files/, and records every request.
func (r *Router) serveCDN(w http.ResponseWriter, hr *http.Request) {
	rec := CDNRequest{Method: hr.Method, Path: hr.URL.Path, Header: hr.Header.Clone(),
		Authorization: hr.Header.Get("Authorization") != "", BillTo: hr.Header.Get("X-HF-Bill-To") != ""}
	for k, vs := range rec.Header {
		for i, v := range vs {
			rec.Token = rec.Token || strings.Contains(v, "hf_")
			vs[i] = redact.String(v)
		}
		if k == "Authorization" {
			rec.Header.Set(k, "Bearer "+redact.Mask)
		}
	}
	r.mu.Lock()
	r.cdnRequests = append(r.cdnRequests, rec)
	f, ok := r.files[hr.URL.Path]
	r.mu.Unlock()
	switch {
	case !ok:
		http.Error(w, "not found", http.StatusNotFound)
	case f.status != 0:
		http.Error(w, http.StatusText(f.status), f.status)
	default:
		w.Header().Set("Content-Type", f.contentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(f.data)))
		w.Header().Set("Cache-Control", "public,max-age=3600")
		_, _ = w.Write(f.data)
	}
}

// cdnFile is a file the CDN serves.
type cdnFile struct {
	data        []byte
	contentType string
	status      int
}

// putFile puts a result file on the CDN and returns its URL.
func (r *Router) putFile(j Job, m media, name string) string {
	base := r.cdnURL()
	ct := m.contentType
	if j.FileType != "" {
		ct = j.FileType
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.files == nil {
		r.files = map[string]cdnFile{}
	}
	path := fmt.Sprintf("/files/%d/%s", len(r.files)+1, name)
	r.files[path] = cdnFile{data: m.data, contentType: ct, status: j.FileStatus}
	return base + path
}

// mediaRoute is what a media request asks: its provider, the route's
// kind, the provider's model id, and the task.
type mediaRoute struct {
	provider, kind, id, task string
}

// The kinds of route.
const (
	routeHF          = "hf-inference"
	routeImages      = "images"     // OpenAI's images endpoint
	routeSpeech      = "speech"     // OpenAI's audio/speech
	routeTranscribe  = "transcribe" // OpenAI's audio/transcriptions
	routeFalQueue    = "fal-queue"  // an image on fal's queue
	routeFalDirect   = "fal-direct" // fal's speech and transcription
	routeReplicate   = "replicate"  // a prediction
	routeWavespeed   = "wavespeed"  // a wavespeed task
	routeZai         = "zai"        // a zai-org image
	routeJob         = "job"        // a poll, result or cancel
	maxAudioRecorded = 64 << 10     // what a Request keeps of raw audio
)

// parseMediaRoute tells a media request's route from its method and path;
// ok is false for other requests.
func parseMediaRoute(hr *http.Request) (mediaRoute, bool) {
	p := hr.URL.Path
	provider, rest, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	rest = "/" + rest
	post := hr.Method == http.MethodPost
	switch provider {
	case "hf-inference":
		if id, ok := strings.CutPrefix(rest, "/models/"); ok && post && !strings.Contains(id, "/pipeline/") {
			return mediaRoute{provider, routeHF, id, ""}, true
		}
	case "together", "nscale", "deepinfra":
		switch rest {
		case "/v1/images/generations":
			return mediaRoute{provider, routeImages, "", "text-to-image"}, post
		case "/v1/audio/speech", "/v1/openai/audio/speech":
			return mediaRoute{provider, routeSpeech, "", "text-to-speech"}, post
		case "/v1/audio/transcriptions", "/v1/openai/audio/transcriptions":
			return mediaRoute{provider, routeTranscribe, "", "automatic-speech-recognition"}, post
		}
	case "fal-ai":
		if strings.Contains(rest, "/requests/") {
			return mediaRoute{provider, routeJob, "", ""}, true
		}
		if post && hr.URL.Query().Get("_subdomain") == "queue" {
			return mediaRoute{provider, routeFalQueue, rest[1:], "text-to-image"}, true
		}
		if post {
			return mediaRoute{provider, routeFalDirect, rest[1:], ""}, true
		}
	case "replicate":
		switch {
		case post && rest == "/v1/predictions":
			return mediaRoute{provider, routeReplicate, "", ""}, true
		case post && strings.HasPrefix(rest, "/v1/models/") && strings.HasSuffix(rest, "/predictions"):
			return mediaRoute{provider, routeReplicate, strings.TrimSuffix(strings.TrimPrefix(rest, "/v1/models/"), "/predictions"), ""}, true
		case strings.HasPrefix(rest, "/v1/predictions/"):
			return mediaRoute{provider, routeJob, "", ""}, true
		}
	case "wavespeed":
		if strings.HasPrefix(rest, "/api/v3/predictions/") {
			return mediaRoute{provider, routeJob, "", ""}, true
		}
		if id, ok := strings.CutPrefix(rest, "/api/v3/"); ok && post {
			return mediaRoute{provider, routeWavespeed, id, "text-to-image"}, true
		}
	case "zai-org":
		if strings.HasPrefix(rest, "/api/paas/v4/async-result/") {
			return mediaRoute{provider, routeJob, "", ""}, true
		}
		if rest == "/api/paas/v4/async/images/generations" && post {
			return mediaRoute{provider, routeZai, "", "text-to-image"}, true
		}
	}
	return mediaRoute{}, false
}

// serveMedia answers a submission with the script of its model, or a job's
// later request with the job.
func (r *Router) serveMedia(w http.ResponseWriter, hr *http.Request, route mediaRoute) {
	if route.kind == routeJob {
		r.serveJob(w, hr, route.provider)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(hr.Body, maxBody))
	var wire struct {
		Model   string          `json:"model"`
		Version string          `json:"version"`
		Input   json.RawMessage `json:"input"`
		Prompt  *string         `json:"prompt"`
		Text    *string         `json:"text"`
		Inputs  json.RawMessage `json:"inputs"`
		Audio   string          `json:"audio_url"`
	}
	ct, _, _ := mime.ParseMediaType(hr.Header.Get("Content-Type"))
	switch {
	case ct == "multipart/form-data":
		route.id = formValue(hr.Header.Get("Content-Type"), body, "model")
	case ct == "application/json":
		_ = json.Unmarshal(body, &wire)
	}
	if wire.Model != "" {
		route.id = wire.Model
	}
	switch route.kind {
	case routeHF:
		route.task = hfTask(ct, wire.Inputs, r.pipelineTag(route.id))
	case routeFalDirect:
		route.task = "text-to-speech"
		if wire.Audio != "" {
			route.task = "automatic-speech-recognition"
		}
	case routeReplicate:
		route.task = replicateTask(wire.Input)
		if route.id == "" && wire.Version != "" {
			route.id = r.providerIDWithVersion(wire.Version)
		}
	}
	model := route.id
	if route.provider != "hf-inference" {
		model = r.hubIDOf(route.provider, route.id)
	}
	if len(body) > maxAudioRecorded && !strings.Contains(ct, "json") {
		body = body[:maxAudioRecorded]
	}
	req := newRequest(hr, model, route.provider, body)
	req.API, req.router, req.route = route.task, r, route
	r.answer(w, hr, req, model+":"+route.provider, model)
}

// hfTask is the task an hf-inference request asks: raw audio is a
// transcription; JSON inputs, the model's pipeline (text-to-speech or
// text-to-image), text-to-image when the fake Hub does not know it.
func hfTask(ct string, inputs json.RawMessage, pipeline string) string {
	switch {
	case ct != "application/json":
		return "automatic-speech-recognition"
	case pipeline == "text-to-speech" || pipeline == "text-to-audio":
		return "text-to-speech"
	}
	return "text-to-image"
}

// replicateTask tells a prediction's task by its input's keys.
func replicateTask(input json.RawMessage) string {
	var in map[string]json.RawMessage
	_ = json.Unmarshal(input, &in)
	switch {
	case in["audio"] != nil:
		return "automatic-speech-recognition"
	case in["text"] != nil:
		return "text-to-speech"
	}
	return "text-to-image"
}

// pipelineTag is the fake Hub's pipeline tag of a model, "" when unknown.
func (r *Router) pipelineTag(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.models[id].PipelineTag
}

// providerIDWithVersion is the Replicate id ("owner/model:version") of the
// models given to AddModel that pins version, else the version.
func (r *Router) providerIDWithVersion(version string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.models {
		for _, p := range m.Providers {
			if p.Name == "replicate" && strings.HasSuffix(p.ProviderID, ":"+version) {
				return p.ProviderID
			}
		}
	}
	return version
}

// formValue is a multipart form's field.
func formValue(contentType string, body []byte, name string) string {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ""
	}
	form, err := multipart.NewReader(bytes.NewReader(body), params["boundary"]).ReadForm(int64(len(body)) + 1024)
	if err != nil {
		return ""
	}
	defer func() { _ = form.RemoveAll() }()
	if v := form.Value[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// answer is the Answer of a Job serving m.
func (j Job) answer(m media) Answer {
	return func(w http.ResponseWriter, req *Request) {
		r, route := req.router, req.route
		if r == nil {
			jsonError(http.StatusNotFound, `{"error":"this answer serves the image and audio routes only"}`)(w, req)
			return
		}
		w.Header().Set("X-Inference-Provider", route.provider)
		switch route.kind {
		case routeFalQueue, routeReplicate, routeWavespeed, routeZai:
			r.submit(w, req, j, m)
			return
		}
		if j.Fail != "" {
			body, _ := json.Marshal(map[string]any{"error": map[string]string{"message": j.Fail, "type": "server_error"}})
			jsonError(http.StatusInternalServerError, string(body))(w, req)
			return
		}
		switch {
		case m.transcript:
			writeTranscript(w, route, m)
		case route.kind == routeImages:
			writeB64Images(w, route, req.Model, m.data)
		case route.kind == routeFalDirect:
			writeJSONBytes(w, map[string]any{"audio": map[string]any{"url": r.putFile(j, m, "speech"+extension(m.contentType)),
				"content_type": m.contentType, "file_size": len(m.data)}})
		default: // the file itself
			w.Header().Set("Content-Type", m.contentType)
			w.Header().Set("Content-Length", strconv.Itoa(len(m.data)))
			_, _ = w.Write(m.data)
		}
	}
}

// writeTranscript writes a transcript in the route's shape.
func writeTranscript(w http.ResponseWriter, route mediaRoute, m media) {
	secs := func(d time.Duration) float64 { return d.Seconds() }
	if route.kind == routeTranscribe {
		segs := make([]map[string]any, len(m.chunks))
		for i, c := range m.chunks {
			segs[i] = map[string]any{"id": i, "start": secs(c.Start), "end": secs(c.End), "text": c.Text}
		}
		writeJSONBytes(w, map[string]any{"text": m.text, "segments": segs})
		return
	}
	chunks := make([]map[string]any, len(m.chunks))
	for i, c := range m.chunks {
		chunks[i] = map[string]any{"timestamp": []float64{secs(c.Start), secs(c.End)}, "text": c.Text}
	}
	out := map[string]any{"text": m.text}
	if len(chunks) > 0 {
		out["chunks"] = chunks
	}
	writeJSONBytes(w, out)
}

// writeB64Images writes the images endpoint's answer: Together's
// {"id", "model", "object", "data": [{"index", "b64_json"}]}, nscale's
// {"data": [{"b64_json"}]}. The base64 is written straight to the
// connection, as a server streams it.
func writeB64Images(w http.ResponseWriter, route mediaRoute, model string, data []byte) {
	head := `{"data":[{"b64_json":"`
	tail := `"}]}`
	if route.provider == "together" {
		id, _ := json.Marshal(model)
		head = `{"id":"fake-images","model":` + string(id) + `,"object":"list","data":[{"timings":{"inference":1200},"index":0,"b64_json":"`
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(head)+base64.StdEncoding.EncodedLen(len(data))+len(tail)))
	_, _ = io.WriteString(w, head)
	enc := base64.NewEncoder(base64.StdEncoding, w)
	_, _ = enc.Write(data)
	_ = enc.Close()
	_, _ = io.WriteString(w, tail)
}

func writeJSONBytes(w http.ResponseWriter, v any) { writeJSONStatus(w, http.StatusOK, v) }

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	data, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// extension is a file name's extension for a media type.
func extension(ct string) string {
	if exts, _ := mime.ExtensionsByType(ct); len(exts) > 0 {
		return exts[0]
	}
	if _, sub, ok := strings.Cut(ct, "/"); ok {
		return "." + strings.TrimPrefix(sub, "x-")
	}
	return ".bin"
}

// submit registers a job and answers its submission in the provider's
// shape.
func (r *Router) submit(w http.ResponseWriter, req *Request, j Job, m media) {
	route := req.route
	r.mu.Lock()
	r.jobSeq++
	id := fmt.Sprintf("fakejob%04d", r.jobSeq)
	fj := &fakeJob{JobRecord: JobRecord{ID: id, Provider: route.provider, Model: req.Model, Task: route.task}, script: j, out: m}
	if r.jobs == nil {
		r.jobs = map[string]*fakeJob{}
	}
	r.jobs[id] = fj
	r.jobOrder = append(r.jobOrder, id)
	r.mu.Unlock()
	if !m.transcript && !(j.DataURL && route.kind == routeFalQueue) {
		fj.file = r.putFile(j, m, "out-0"+extension(m.contentType))
	}
	provider := r.cdnURL() // the provider's own API host, as its answers name it
	switch route.kind {
	case routeFalQueue:
		app := falApp(route.id)
		r.mu.Lock()
		fj.app = app
		r.mu.Unlock()
		writeJSONBytes(w, map[string]any{"request_id": id, "status": "IN_QUEUE", "queue_position": j.Queued,
			"response_url": provider + "/" + app + "/requests/" + id,
			"status_url":   provider + "/" + app + "/requests/" + id + "/status",
			"cancel_url":   provider + "/" + app + "/requests/" + id + "/cancel"})
	case routeReplicate:
		if !strings.HasPrefix(req.Header.Get("Prefer"), "wait") {
			r.writeJobState(w, fj, justCreated) // Replicate answers at once
			return
		}
		w.Header().Set("Preference-Applied", "wait=60")
		r.writeJobState(w, fj, 0)
	case routeWavespeed:
		writeJSONBytes(w, map[string]any{"code": 200, "message": "success", "data": map[string]any{
			"id": id, "status": "created", "urls": map[string]string{"get": provider + "/api/v3/predictions/" + id + "/result"}}})
	case routeZai:
		writeJSONBytes(w, map[string]any{"id": id, "request_id": "zai-" + id, "model": req.Model, "task_status": "PROCESSING"})
	}
}

// falApp is the app of a fal id: its first two segments ("fal-ai/flux"
// of "fal-ai/flux/schnell"), under which fal names its requests.
func falApp(id string) string {
	parts := strings.SplitN(id, "/", 3)
	return strings.Join(parts[:min(len(parts), 2)], "/")
}

// serveJob answers a job's later request: a status poll, its result, a
// cancel.
func (r *Router) serveJob(w http.ResponseWriter, hr *http.Request, provider string) {
	p := hr.URL.Path
	op, id := "job-status", ""
	switch provider {
	case "fal-ai":
		_, rest, _ := strings.Cut(p, "/requests/")
		id, op = rest, "job-result"
		if before, ok := strings.CutSuffix(rest, "/status"); ok {
			id, op = before, "job-status"
		} else if before, ok := strings.CutSuffix(rest, "/cancel"); ok {
			id, op = before, "job-cancel"
		}
	case "replicate":
		id = strings.TrimPrefix(p, "/replicate/v1/predictions/")
		if before, ok := strings.CutSuffix(id, "/cancel"); ok {
			id, op = before, "job-cancel"
		}
	case "wavespeed":
		id = strings.TrimSuffix(strings.TrimPrefix(p, "/wavespeed/api/v3/predictions/"), "/result")
	case "zai-org":
		id = strings.TrimPrefix(p, "/zai-org/api/paas/v4/async-result/")
	}
	r.mu.Lock()
	fj := r.jobs[id]
	var rec JobRecord
	if fj != nil {
		rec = fj.JobRecord
	}
	r.mu.Unlock()
	req := newRequest(hr, rec.Model, provider, nil)
	req.API, req.Job = op, id
	r.mu.Lock()
	r.requests = append(r.requests, req)
	r.mu.Unlock()
	switch {
	case bearer(hr) == "":
		InvalidToken()(w, &req)
		return
	case fj == nil:
		jsonError(http.StatusNotFound, `{"detail":"Request not found"}`)(w, &req)
		return
	}
	w.Header().Set("X-Inference-Provider", provider)
	switch op {
	case "job-cancel":
		r.mu.Lock()
		done := fj.Done
		fj.Cancelled = true
		r.mu.Unlock()
		switch {
		case provider == "replicate":
			r.writeJobState(w, fj, -1)
		case done:
			jsonError(http.StatusBadRequest, `{"status":"ALREADY_COMPLETED"}`)(w, &req)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"status":"CANCELLATION_REQUESTED"}`)
		}
	case "job-result":
		r.writeFalResult(w, &req, fj)
	default:
		r.mu.Lock()
		fj.Polls++
		polls := fj.Polls
		r.mu.Unlock()
		r.writeJobState(w, fj, polls)
	}
}

// justCreated stands for polls in the answer to a Replicate submission
// that did not ask Prefer: wait: the prediction, just created, is
// starting. (0 is the answer to one that did, when the wait ended; -1, a
// cancel's.)
const justCreated = -2

// phase is where a job stands after polls polls: "queued", "running",
// "done" or "failed" ("cancelled" once cancelled).
func (r *Router) phase(fj *fakeJob, polls int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := fj.script
	switch {
	case polls == justCreated:
		return "queued"
	case fj.Cancelled || polls < 0:
		return "cancelled"
	case polls == 0 && s.Queued > 0 || polls > 0 && polls <= s.Queued:
		return "queued"
	case polls == 0 && s.Running > 0 || polls > 0 && polls <= s.Queued+s.Running:
		return "running"
	}
	fj.Done = true
	if s.Fail != "" || s.NSFW && fj.Provider == "replicate" {
		return "failed"
	}
	return "done"
}

// writeJobState answers a poll (or a Replicate submission, polls 0 or
// justCreated) with the job's state in the provider's shape.
func (r *Router) writeJobState(w http.ResponseWriter, fj *fakeJob, polls int) {
	phase := r.phase(fj, polls)
	s := fj.script
	switch fj.Provider {
	case "fal-ai":
		status := map[string]string{"queued": "IN_QUEUE", "running": "IN_PROGRESS"}[phase]
		if status == "" {
			status = "COMPLETED" // a failure shows in the result
		}
		out := map[string]any{"status": status, "response_url": r.cdnURL() + "/" + fj.app + "/requests/" + fj.ID}
		if phase == "queued" {
			out["queue_position"] = s.Queued - polls
		}
		writeJSONBytes(w, out)
	case "replicate":
		pred := map[string]any{"id": fj.ID, "model": fj.Model, "version": "dp-fake", "logs": "", "error": nil, "output": nil,
			"data_removed": false, "created_at": "2026-01-01T00:00:00.000Z",
			"urls": map[string]string{"get": r.cdnURL() + "/v1/predictions/" + fj.ID,
				"cancel": r.cdnURL() + "/v1/predictions/" + fj.ID + "/cancel"}}
		switch phase {
		case "queued":
			pred["status"] = "starting"
		case "running":
			pred["status"] = "processing"
		case "cancelled":
			pred["status"] = "canceled"
		case "failed":
			pred["status"], pred["error"] = "failed", s.Fail
			if s.NSFW {
				pred["error"] = "NSFW content detected. Try running it again, or try a different prompt."
			}
		default:
			pred["status"] = "succeeded"
			switch {
			case fj.out.transcript:
				segs := make([]map[string]any, len(fj.out.chunks))
				for i, c := range fj.out.chunks {
					segs[i] = map[string]any{"start": c.Start.Seconds(), "end": c.End.Seconds(), "text": c.Text}
				}
				pred["output"] = map[string]any{"transcription": fj.out.text, "segments": segs}
			case fj.Task == "text-to-image":
				pred["output"] = []string{fj.file}
			default:
				pred["output"] = fj.file
			}
			if polls == 0 && !fj.out.transcript {
				// Prefer: wait sufficed: the output comes while the
				// prediction is still being finalised, as recorded.
				pred["status"] = "processing"
			}
		}
		status := http.StatusOK
		if polls == 0 || polls == justCreated {
			status = http.StatusCreated
		}
		writeJSONStatus(w, status, pred)
	case "wavespeed":
		data := map[string]any{"id": fj.ID, "model": fj.Model, "outputs": []string{}, "has_nsfw_contents": []bool{}, "error": ""}
		switch phase {
		case "queued":
			data["status"] = "created"
		case "running":
			data["status"] = "processing"
		case "failed":
			data["status"], data["error"] = "failed", s.Fail
		default:
			data["status"], data["outputs"], data["has_nsfw_contents"] = "completed", []string{fj.file}, []bool{s.NSFW}
		}
		writeJSONBytes(w, map[string]any{"code": 200, "message": "success", "data": data})
	case "zai-org":
		out := map[string]any{"id": fj.ID, "model": fj.Model, "request_id": "zai-" + fj.ID}
		switch phase {
		case "queued", "running":
			out["task_status"] = "PROCESSING"
		case "failed":
			out["task_status"], out["error"] = "FAIL", map[string]string{"message": s.Fail}
		default:
			out["task_status"], out["image_result"] = "SUCCESS", []map[string]string{{"url": fj.file}}
		}
		writeJSONBytes(w, out)
	}
}

// writeFalResult answers fal's result request: the images, or the
// failure a failed job's result is.
func (r *Router) writeFalResult(w http.ResponseWriter, req *Request, fj *fakeJob) {
	r.mu.Lock()
	done, s := fj.Done, fj.script
	r.mu.Unlock()
	switch {
	case !done:
		jsonError(http.StatusBadRequest, `{"detail":"Request is still in progress"}`)(w, req)
		return
	case s.Fail != "":
		body, _ := json.Marshal(map[string]string{"detail": s.Fail, "error_type": "runner_server_error"})
		jsonError(http.StatusInternalServerError, string(body), "X-Fal-Error-Type", "runner_server_error")(w, req)
		return
	}
	url, ct := fj.file, fj.out.contentType
	if s.DataURL {
		url = "data:" + ct + ";base64," + base64.StdEncoding.EncodeToString(fj.out.data)
	}
	writeJSONBytes(w, map[string]any{
		"images":            []map[string]any{{"url": url, "width": 1024, "height": 768, "content_type": ct}},
		"timings":           map[string]float64{"inference": 0.35},
		"seed":              uint64(15619174981588513000),
		"has_nsfw_concepts": []bool{s.NSFW},
		"prompt":            "",
	})
}
