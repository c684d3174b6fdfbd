package inference

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// EmbedRequest is one embeddings call: texts in, one vector per text out,
// all in one model's vector space.
type EmbedRequest struct {
	// Model is the Hub id of a sentence-embedding model, such as
	// "sentence-transformers/all-MiniLM-L6-v2".
	Model string
	// Provider is "" or "auto" to walk every live provider the Hub maps
	// for the model's feature extraction, in the Hub's order (providers of
	// one model share its vector space and replace each other), or a
	// provider's name ("hf-inference", "together", ...) to use that one.
	Provider string
	// Inputs are the texts, none empty. A call with more than BatchSize
	// inputs is sent in batches, concurrently, all served by one model.
	Inputs []string

	// Normalize, Truncate, PromptName and TruncationDirection ("left" or
	// "right") are hf-inference's parameters, sent only to it; nil and ""
	// leave them to the model.
	Normalize           *bool
	Truncate            *bool
	PromptName          string
	TruncationDirection string

	// Fallbacks are other models (and providers) tried, for this call
	// only, when every provider of Model failed. Another model is another
	// vector space: the client's WithFallback list never applies to
	// embeddings, and EmbedResponse.Model says whose space the vectors
	// are in.
	Fallbacks []Candidate

	// BatchSize is how many inputs one request carries; zero takes
	// DefaultEmbedBatchSize. Concurrency bounds the batches in flight at
	// once; zero takes DefaultEmbedConcurrency.
	BatchSize   int
	Concurrency int
}

// Defaults of [EmbedRequest].
const (
	// DefaultEmbedBatchSize is the inputs per request: what hf-inference
	// takes by default, and well within the providers' own limits.
	DefaultEmbedBatchSize = 32
	// DefaultEmbedConcurrency is how many batches of one call are in
	// flight at once.
	DefaultEmbedConcurrency = 4
)

// maxEmbedBody bounds an embeddings answer: 1,000 vectors of 4,096
// numbers in JSON are about 80 MiB.
const maxEmbedBody = 256 << 20

// EmbedResponse is the vectors of an embeddings call.
type EmbedResponse struct {
	// Vectors are the inputs' vectors, in input order, all of one
	// dimension. They share one backing array.
	Vectors [][]float32
	// Model is the Hub id of the model whose vector space the vectors are
	// in: the request's Model, or the fallback that served.
	Model string
	// ProviderModel is the model as the provider named it, when it said.
	ProviderModel string
	// Provider served the first batch (and, unless it failed meanwhile,
	// the others).
	Provider string
	// Usage counts the input tokens, when the provider reports them.
	Usage Usage
	// Attempts lists every attempt of every batch, in batch order.
	Attempts []Attempt
	// Skipped are candidates not tried because they were cooling down.
	Skipped []Candidate
}

// Dimensions is the length of each vector, 0 without vectors.
func (r *EmbedResponse) Dimensions() int {
	if r == nil || len(r.Vectors) == 0 {
		return 0
	}
	return len(r.Vectors[0])
}

// EmbedBatchError is a call whose batch of Inputs[First:Last] failed on
// every candidate (of the model that served the first batch), after the
// other batches were sent. It matches its cause's kind alone.
type EmbedBatchError struct {
	First, Last int
	Err         error
}

func (e *EmbedBatchError) Error() string {
	return fmt.Sprintf("inference: the embeddings of inputs %d to %d failed: %s", e.First, e.Last-1,
		strings.TrimPrefix(e.Err.Error(), "inference: "))
}

// Unwrap returns the batch's failure.
func (e *EmbedBatchError) Unwrap() error { return e.Err }

// validate reports the first thing wrong with the request.
func (r *EmbedRequest) validate() error {
	if err := validateWalk(r.Model, r.Provider, r.Fallbacks); err != nil {
		return err
	}
	if len(r.Inputs) == 0 {
		return invalidRequest("no inputs")
	}
	for i, in := range r.Inputs {
		if strings.TrimSpace(in) == "" {
			return invalidRequest("Inputs[%d] is empty: a provider refuses it", i)
		}
	}
	switch strings.ToLower(r.TruncationDirection) {
	case "", "left", "right":
	default:
		return invalidRequest("TruncationDirection %q is not \"left\" or \"right\"", r.TruncationDirection)
	}
	if r.BatchSize < 0 || r.Concurrency < 0 {
		return invalidRequest("BatchSize and Concurrency may not be negative")
	}
	return nil
}

// Embed returns a vector for each input, through the router: the same
// token chain, kinds, retries, cooldowns, per-call options and observer
// (operation "embeddings") as [Client.Chat], and the same walk over
// candidates, which here are the providers of one model and then the
// request's own Fallbacks. Every failure matches exactly one kind; a
// model that answers one vector per token instead of one per input is
// [ErrModelNotSupported], with a text that says to use a sentence-embedding
// model.
func (c *Client) Embed(ctx context.Context, req EmbedRequest, opts ...Option) (*EmbedResponse, error) {
	w := &embedCall{req: &req}
	ctx, err := c.begin(ctx, &w.call, "embeddings from", opts, req.validate, func() CallInfo {
		return CallInfo{Operation: "embeddings", Model: req.Model, Provider: req.Provider, ChoiceCount: 1}
	})
	if err != nil {
		return nil, err
	}
	resp, err := w.embed(ctx)
	var res CallResult
	if resp != nil {
		if eo, ok := w.obs.(EmbeddingsObserver); ok {
			eo.Embedded(len(resp.Vectors), resp.Dimensions())
		}
		res = CallResult{Model: resp.Model, Provider: resp.Provider, Usage: resp.Usage, Attempts: resp.Attempts, Skipped: resp.Skipped}
	}
	w.end(res, err)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// embedCall is an embeddings call in flight, one walk per batch: the
// call's own is its first batch's, whose inputs it is given.
type embedCall struct {
	call
	req    *EmbedRequest
	inputs []string
}

func (w *embedCall) attempt(ctx context.Context, cand Candidate, tok Token, hooks tryHooks) (*embedBatch, Attempt, error) {
	return w.embedAttempt(ctx, w.req, w.inputs, cand, tok, hooks)
}

// EmbeddingsObserver is a [CallObserver] that also hears, before End, how
// many vectors an embeddings call returned and their dimension. End then
// receives the call's Model, Provider, Usage and Attempts.
type EmbeddingsObserver interface {
	Embedded(vectors, dimensions int)
}

// embedTasks are the Hub's tasks whose mappings serve embeddings; a
// mapping without a task is taken too.
var embedTasks = []string{"feature-extraction", "sentence-similarity", ""}

// embedBatch is one batch's vectors, as one attempt served them.
type embedBatch struct {
	vectors       [][]float32
	usage         Usage
	providerModel string
	provider      string
	cand          Candidate
}

// embed runs the call: the first batch walks every candidate; the others
// walk only the model that served it, its serving provider first. Each
// batch has a walk of its own (batch), w's being the first's.
func (w *embedCall) embed(ctx context.Context) (*EmbedResponse, error) {
	req := w.req
	size := req.BatchSize
	if size == 0 {
		size = DefaultEmbedBatchSize
	}
	var bounds [][2]int
	for i := 0; i < len(req.Inputs); i += size {
		bounds = append(bounds, [2]int{i, min(i+size, len(req.Inputs))})
	}
	cands, err := w.modelCandidates(ctx, Candidate{Model: req.Model, Provider: req.Provider}, req.Fallbacks, embedTasks)
	if err != nil {
		return nil, err
	}
	walks := make([]*embedCall, len(bounds))
	walks[0] = w
	batches := make([]*embedBatch, len(bounds))
	first, err := w.embedInputs(ctx, cands, bounds[0])
	if err != nil {
		if len(bounds) > 1 {
			err = &EmbedBatchError{First: bounds[0][0], Last: bounds[0][1], Err: err}
		}
		return nil, err
	}
	batches[0] = first

	if len(bounds) > 1 {
		// The same model for every batch: its serving provider first,
		// then its other providers.
		same := []Candidate{first.cand}
		for _, cand := range cands {
			if cand.Model == first.cand.Model && cand != first.cand {
				same = append(same, cand)
			}
		}
		if err := w.embedRest(ctx, same, bounds, batches, walks); err != nil {
			// The call's observer hears of every batch's attempts.
			w.attempts = batchAttempts(walks)
			return nil, err
		}
	}

	out := &EmbedResponse{Model: first.cand.Model, Provider: first.provider, ProviderModel: first.providerModel,
		Vectors: make([][]float32, 0, len(req.Inputs)), Skipped: w.skipped}
	for i, b := range batches {
		if len(b.vectors) > 0 && len(out.Vectors) > 0 && len(b.vectors[0]) != len(out.Vectors[0]) {
			return nil, w.c.embedShapeError(b.cand, fmt.Sprintf("batch %d's vectors have %d dimensions, the first batch's %d", i, len(b.vectors[0]), len(out.Vectors[0])))
		}
		out.Vectors = append(out.Vectors, b.vectors...)
		out.Usage.PromptTokens += b.usage.PromptTokens
		out.Usage.TotalTokens += b.usage.TotalTokens
	}
	out.Attempts = batchAttempts(walks)
	return out, nil
}

// batchAttempts is the attempts of a call's batches, batch by batch; a
// batch never sent (the call failed first) has none.
func batchAttempts(walks []*embedCall) []Attempt {
	var out []Attempt
	for _, b := range walks {
		if b != nil {
			out = append(out, b.attempts...)
		}
	}
	return out
}

// embedInputs walks cands for the batch of inputs within b.
func (w *embedCall) embedInputs(ctx context.Context, cands []Candidate, b [2]int) (*embedBatch, error) {
	w.inputs = w.req.Inputs[b[0]:b[1]]
	return runRace[*embedBatch](ctx, &w.call, cands, w)
}

// embedRest sends batches 1.. concurrently, at most the request's
// concurrency at once, each on a walk of its own; the first failure
// cancels the others.
func (w *embedCall) embedRest(ctx context.Context, cands []Candidate, bounds [][2]int, batches []*embedBatch, walks []*embedCall) error {
	req := w.req
	limit := req.Concurrency
	if limit == 0 {
		limit = DefaultEmbedConcurrency
	}
	limit = min(limit, len(bounds)-1)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	var once sync.Once
	var failure error
	for i := 1; i < len(bounds); i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		walks[i] = &embedCall{call: call{c: w.c, cfg: w.cfg, obs: w.obs, op: w.op}, req: req}
		wg.Go(func() {
			defer func() { <-sem }()
			b, err := walks[i].embedInputs(ctx, cands, bounds[i])
			batches[i] = b
			if err != nil {
				once.Do(func() {
					failure = &EmbedBatchError{First: bounds[i][0], Last: bounds[i][1], Err: err}
					cancel(failure)
				})
			}
		})
	}
	wg.Wait()
	if failure != nil {
		return failure
	}
	return context.Cause(ctx) // the caller's context ended, or nil
}

// hubModelCache keeps the Hub's model info for embeddings' provider
// mappings. Its zero value is ready.
type hubModelCache struct {
	mu sync.Mutex
	m  map[string]hubModelEntry
}

type hubModelEntry struct {
	info    *ModelInfo
	expires time.Time
}

func (h *hubModelCache) get(model string, now time.Time) *ModelInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.m[model]; ok && now.Before(e.expires) {
		return e.info
	}
	return nil
}

func (h *hubModelCache) put(model string, info *ModelInfo, expires time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]hubModelEntry{}
	}
	if len(h.m) >= sweepAt {
		clear(h.m)
	}
	h.m[model] = hubModelEntry{info: info, expires: expires}
}

// embedAttempt sends one batch to one candidate, with retries, and reads
// its vectors.
func (w *call) embedAttempt(ctx context.Context, req *EmbedRequest, inputs []string, cand Candidate, tok Token, hooks tryHooks) (out *embedBatch, att Attempt, err error) {
	c := w.c
	start := time.Now()
	att = Attempt{Candidate: cand, TokenSource: tok.Source}
	defer func() {
		att.Err, att.Duration, att.TimedOut = err, time.Since(start), timedOut(err)
	}()
	actx, cancel := boundAttempt(ctx, w.cfg)
	defer cancel()
	x := exchange{method: http.MethodPost, accept: "application/json", about: cand, tok: tok, cfg: w.cfg, op: w.op, race: hooks}
	if x.url, x.body, err = w.embedRoute(ctx, req, inputs, cand); err != nil {
		return nil, att, err
	}
	resp, err := c.send(ctx, actx, x, &att)
	if err != nil {
		return nil, att, err
	}
	defer resp.Body.Close()
	data, err := c.read(ctx, actx, resp, x, maxEmbedBody)
	if err != nil {
		return nil, att, err
	}
	if isHTML(resp.Header, data) {
		return nil, att, c.notWhatWasAsked(resp.StatusCode, resp.Header, data, x, "the answer is a web page, not embeddings")
	}
	dec, err := decodeEmbeddings(data, len(inputs))
	switch {
	case errors.As(err, new(*perTokenError)):
		e := c.classify(resp.StatusCode, resp.Header, nil, x)
		e.Kind, e.Message, e.fix = ErrModelNotSupported, err.Error(),
			"Use a sentence-embedding model, such as sentence-transformers/all-MiniLM-L6-v2 or BAAI/bge-small-en-v1.5 (token vectors are not offered)"
		return nil, att, e
	case err != nil:
		return nil, att, c.notWhatWasAsked(resp.StatusCode, resp.Header, data, x, err.Error())
	}
	out = &embedBatch{vectors: dec.vectors, usage: dec.usage, providerModel: dec.model, provider: cand.Provider, cand: cand}
	if p := servedBy(resp.Header, tok); p != "" {
		out.provider = p
	}
	return out, att, nil
}

// embedRoute is where a candidate takes embeddings, and the body it takes:
// hf-inference's feature-extraction pipeline with the Hub id, or a
// provider's OpenAI-shaped endpoint with its own model id (the Hub's
// mapping).
func (w *call) embedRoute(ctx context.Context, req *EmbedRequest, inputs []string, cand Candidate) (string, []byte, error) {
	c := w.c
	base := c.base.String()
	if cand.Provider == "hf-inference" {
		body := struct {
			Inputs              []string `json:"inputs"`
			Normalize           *bool    `json:"normalize,omitempty"`
			Truncate            *bool    `json:"truncate,omitempty"`
			PromptName          string   `json:"prompt_name,omitempty"`
			TruncationDirection string   `json:"truncation_direction,omitempty"`
		}{inputs, req.Normalize, req.Truncate, req.PromptName, truncationDirection(req.TruncationDirection)}
		data, err := json.Marshal(body)
		return base + "/hf-inference/models/" + escapeModelID(cand.Model) + "/pipeline/feature-extraction", data, err
	}
	id, err := w.providerModelID(ctx, cand, embedTasks)
	if err != nil {
		return "", nil, err
	}
	path := "/v1/embeddings"
	if cand.Provider == "deepinfra" {
		path = "/v1/openai/embeddings"
	}
	body := struct {
		Model          string   `json:"model"`
		Input          []string `json:"input"`
		EncodingFormat string   `json:"encoding_format"`
	}{id, inputs, "float"}
	data, err := json.Marshal(body)
	return base + "/" + cand.Provider + path, data, err
}

// truncationDirection is the casing hf-inference takes.
func truncationDirection(d string) string {
	switch strings.ToLower(d) {
	case "left":
		return "Left"
	case "right":
		return "Right"
	}
	return ""
}

// boundAttempt is ctx bounded by the attempt timeout, whose cause tells
// it apart from the caller's deadline; a caller's deadline that comes
// first makes the attempt's own timer redundant, and none is made.
func boundAttempt(ctx context.Context, cfg *callConfig) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); cfg.attemptTimeout > 0 && (!ok || time.Until(dl) > cfg.attemptTimeout) {
		return context.WithTimeoutCause(ctx, cfg.attemptTimeout, timeoutError{TimeoutAttempt, cfg.attemptTimeout})
	}
	return ctx, func() {}
}

// embedShapeError is a provider's answer whose vectors do not fit together.
func (c *Client) embedShapeError(cand Candidate, why string) error {
	return &APIError{Kind: ErrProvider, StatusCode: http.StatusOK, Model: cand.Model, Provider: cand.Provider, Message: why, hubURL: c.hub.String()}
}
