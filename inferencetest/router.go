// Package inferencetest provides a fake Hugging Face Inference Providers
// router for testing code that uses github.com/hfkit/inference, the way
// net/http/httptest serves code that uses net/http: no network, no token.
//
// A [Router] is scripted per model ("model") and per model and provider
// ("model:provider"): each gets a queue of [Answer] values, the last one
// repeating. Ready-made answers cover every failure the real router sends
// (missing scope, gated, not found, not supported, credits, rate limits,
// provider errors, gateway pages, validation errors), successes, streams,
// delays and dropped connections. Answers can also depend on the bearer
// token, and every request is recorded for assertions. Images and audio
// are served at every provider's route ([Image], [Speech],
// [Transcription]), queued providers' jobs polled and cancelled as theirs
// are ([Job], [Router.Jobs]), and result files downloaded from a CDN of
// the router's own that records whether it was sent a token
// ([Router.CDN]).
//
//	r := inferencetest.NewRouter()
//	defer r.Close()
//	r.On("org/gated-model", inferencetest.Gated())
//	r.On("org/backup:together", inferencetest.Reply("hello"))
//	c, _ := r.Client(inference.WithFallback(inference.Candidate{Model: "org/backup", Provider: "together"}))
//
// [Router.Client] points both the router and the Hub at the fake, with
// [Token]. A client built by hand needs both as well,
// inference.WithBaseURL(r.URL()) and inference.WithHubURL(r.URL()): a
// client whose router is on this machine and whose Hub is not named
// refuses to ask the public Hub (its calls that need the Hub fail with
// inference.ErrInvalidRequest), so that a test's token never leaves the
// machine.
package inferencetest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/internal/redact"
)

// Token is a well-formed token the fake router accepts, for tests that do
// not care which token is used.
const Token = "hf_inferencetestTokenAAAAAAAAAAAAAAAAAAAA"

// maxBody bounds what the router reads and records of a request body.
const maxBody = 8 << 20

// Router is a fake router on a local httptest server. Its methods are safe
// for concurrent use, including while requests are served.
type Router struct {
	srv *httptest.Server

	mu       sync.Mutex
	scripts  map[string]*script
	byToken  map[string]*script
	fallback *script
	requests []Request
	users    map[string]HubUser
	models   map[string]HubModel

	listed       []inference.RouterModel
	listAnswer   Answer
	listRequests int

	// oauth is the fake Hub's OAuth server (oauth.go).
	oauth oauthServer
	// Images and audio (media.go): the jobs of queued providers, and
	// the CDN their results are on.
	jobs        map[string]*fakeJob
	jobOrder    []string
	jobSeq      int
	cdn         *httptest.Server
	cdnRequests []CDNRequest
	files       map[string]cdnFile
}

// script is a queue of answers; the last one repeats.
type script struct {
	answers []Answer
	served  int
}

func (s *script) next() Answer {
	a := s.answers[min(s.served, len(s.answers)-1)]
	s.served++
	return a
}

// Request is one request the router received: a chat, embeddings,
// Responses API, image or audio request, or a job's later request.
type Request struct {
	// Model is the model as sent, without a ":provider" suffix.
	Model string
	// Provider is the suffix after ':' in the model sent, or "".
	Provider string
	// TokenPrefix is a short, redacted prefix of the bearer token, such as
	// "hf_Ab…", or "" when none was sent.
	TokenPrefix string
	// Stream reports whether the request asked for a stream.
	Stream bool
	// Inputs are the texts of an embeddings request, nil for a chat.
	Inputs []string
	// API is the endpoint asked: "chat" (/v1/chat/completions),
	// "embeddings", "responses" (/v1/responses), an image or audio task
	// ("text-to-image", "automatic-speech-recognition",
	// "text-to-speech"), or a later request of a job ("job-status",
	// "job-result", "job-cancel"; see media.go).
	API string
	// Job is the id of the job a job's later request is about.
	Job string
	// Body is the request body (at most 8 MiB).
	Body []byte
	// Header is the request's header with Authorization redacted.
	Header http.Header
	// Time is when the request arrived.
	Time time.Time

	// HTTP is the request being answered; it is set only while an Answer
	// runs (for its context), and nil in Requests.
	HTTP *http.Request

	// usage, when set (by ResponseUsage), is the usage a Responses API
	// answer reports.
	usage *inference.ResponseUsage
	// router and route, for a media request, are the router answering
	// and the route asked.
	router *Router
	route  mediaRoute
}

// Candidate returns the model and provider as a candidate.
func (r Request) Candidate() inference.Candidate {
	return inference.Candidate{Model: r.Model, Provider: r.Provider}
}

// NewRouter starts a fake router, which is also a fake Hub for the calls
// the library makes (whoami and model info; see AddUser and AddModel; and
// OAuth logins, see OnDeviceLogin and AddLogin): use
// URL for both inference.WithBaseURL and inference.WithHubURL, as Client
// does. Unscripted models get the router's
// "model not found" answer; requests without a bearer token get its 401.
// Close it when done.
func NewRouter() *Router {
	r := &Router{scripts: map[string]*script{}, byToken: map[string]*script{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

// URL is the router's base URL, for inference.WithBaseURL.
func (r *Router) URL() string { return r.srv.URL }

// Close shuts the router (and its CDN) down, ending requests in flight.
func (r *Router) Close() {
	r.srv.CloseClientConnections()
	r.srv.Close()
	r.mu.Lock()
	cdn := r.cdn
	r.mu.Unlock()
	if cdn != nil {
		cdn.CloseClientConnections()
		cdn.Close()
	}
}

// Client returns an inference client pointed at the router, with [Token],
// no retry waits worth noticing and a queued job polled every few
// milliseconds; opts come after these, so they win.
func (r *Router) Client(opts ...inference.Option) (*inference.Client, error) {
	base := []inference.Option{
		inference.WithBaseURL(r.URL()),
		inference.WithHubURL(r.URL()),
		inference.WithToken(Token),
		inference.WithRetry(inference.RetryPolicy{MaxRetries: 2, MinWait: time.Millisecond, MaxWait: 10 * time.Millisecond}),
		inference.WithJobPolling(time.Millisecond, 5*time.Millisecond),
	}
	return inference.NewClient(append(base, opts...)...)
}

// On scripts the answers for a model as sent: "org/model" for requests
// that leave the provider to the router, "org/model:provider" for a pinned
// provider or policy. Each request takes the next answer; the last one
// repeats. On replaces an earlier script for the same model.
func (r *Router) On(model string, answers ...Answer) *Router {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scripts[model] = newScript(answers)
	return r
}

// ForToken scripts the answers for every request that carries token,
// whatever its model, before any model script: a scope-less OAuth token
// that always gets [MissingScope], say.
func (r *Router) ForToken(token string, answers ...Answer) *Router {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byToken[token] = newScript(answers)
	return r
}

// Otherwise scripts the answers for models that have no script of their
// own, instead of "model not found".
func (r *Router) Otherwise(answers ...Answer) *Router {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fallback = newScript(answers)
	return r
}

func newScript(answers []Answer) *script {
	if len(answers) == 0 {
		answers = []Answer{Reply("ok")}
	}
	return &script{answers: answers}
}

// Requests returns the requests received so far, in order, jobs' polls,
// results and cancels included (see Request.API).
func (r *Router) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.requests...)
}

// Models returns the model of each request received so far, as sent
// ("model" or "model:provider"), in order: handy for asserting a walk. A
// job's later requests (its polls, result and cancel) are not the walk's,
// and are left out; Requests has them.
func (r *Router) Models() []string {
	var out []string
	for _, q := range r.Requests() {
		if !strings.HasPrefix(q.API, "job-") {
			out = append(out, q.Candidate().String())
		}
	}
	return out
}

// Reset forgets the requests received (the CDN's too) and the jobs, and
// restarts every script from its first answer.
func (r *Router) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests, r.cdnRequests, r.jobs, r.jobOrder = nil, nil, nil, nil
	for _, s := range r.scripts {
		s.served = 0
	}
	for _, s := range r.byToken {
		s.served = 0
	}
	if r.fallback != nil {
		r.fallback.served = 0
	}
}

func (r *Router) serve(w http.ResponseWriter, hr *http.Request) {
	if r.serveHub(w, hr) || r.serveOAuth(w, hr) || r.serveList(w, hr) {
		return
	}
	if route, ok := parseMediaRoute(hr); ok {
		r.serveMedia(w, hr, route)
		return
	}
	if hr.Method == http.MethodPost {
		if provider, ok := embeddingsRoute(hr.URL.Path); ok {
			r.serveEmbeddings(w, hr, provider)
			return
		}
		if hr.URL.Path == "/v1/responses" {
			r.serveGeneration(w, hr, "responses")
			return
		}
	}
	if hr.Method != http.MethodPost || hr.URL.Path != "/v1/chat/completions" {
		http.NotFound(w, hr)
		return
	}
	r.serveGeneration(w, hr, "chat")
}

// serveGeneration answers a chat or Responses API request, scripted by
// the model as sent ("model" or "model:provider").
func (r *Router) serveGeneration(w http.ResponseWriter, hr *http.Request, api string) {
	body, _ := io.ReadAll(io.LimitReader(hr.Body, maxBody))
	var wire struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	_ = json.Unmarshal(body, &wire)
	model, provider, _ := strings.Cut(wire.Model, ":")
	req := newRequest(hr, model, provider, body)
	req.Stream, req.API = wire.Stream, api
	r.answer(w, hr, req, wire.Model)
}

// newRequest records what a request carries, its token redacted.
func newRequest(hr *http.Request, model, provider string, body []byte) Request {
	header := hr.Header.Clone()
	if header.Get("Authorization") != "" {
		header.Set("Authorization", "Bearer "+redact.Mask)
	}
	req := Request{Model: model, Provider: provider, Body: body, Header: header, Time: time.Now()}
	if token := bearer(hr); token != "" {
		req.TokenPrefix = redact.Prefix(token)
	}
	return req
}

func bearer(hr *http.Request) string {
	return strings.TrimPrefix(hr.Header.Get("Authorization"), "Bearer ")
}

// answer records req and answers it with the script of its token, else of
// the first key scripted, else the fallback script, else "model not
// found"; a request without a token gets the router's 401.
func (r *Router) answer(w http.ResponseWriter, hr *http.Request, req Request, keys ...string) {
	token := bearer(hr)
	scopeless := token != "" && r.oauth.lacksInference(token)
	r.mu.Lock()
	r.requests = append(r.requests, req)
	var answer Answer
	if s, byToken := r.byToken[token]; byToken && token != "" {
		answer = s.next()
	} else if scopeless {
		answer = MissingScope()
	}
	for _, k := range keys {
		if answer == nil && r.scripts[k] != nil {
			answer = r.scripts[k].next()
		}
	}
	switch {
	case token == "":
		answer = InvalidToken()
	case answer != nil:
	case r.fallback != nil:
		answer = r.fallback.next()
	default:
		answer = ModelNotFound()
	}
	r.mu.Unlock()

	req.HTTP = hr
	answer(w, &req)
}
