package inference

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"math/bits"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hfkit/inference/internal/redact"
	"github.com/hfkit/inference/internal/sse"
)

// ChatChunk is one event of a streamed chat completion.
type ChatChunk struct {
	// ID, Created and Model name the stream: they are read from its first
	// chunk that carries an id, and repeated on every later chunk.
	ID      string        `json:"id"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []ChunkChoice `json:"choices"`
	// Usage is set on the last chunk of a stream that asked for it
	// (ChatRequest.IncludeUsage); that chunk has no choices.
	Usage *Usage `json:"usage"`
	// Restarted is set on the first chunk delivered after a stream was
	// sent again ([WithStreamRecovery]) and the new answer differed from
	// what had been delivered: the chunk carries the new answer from its
	// start, and what was shown before it must be dropped.
	// [ChatAccumulator] and [ChatStream.Response] drop it themselves.
	Restarted bool `json:"restarted,omitempty"`

	// event is the Responses API event the chunk was read from, for a
	// ResponseStream; nil for a chat stream.
	event *ResponseEvent
}

// Text returns the content delta of the first choice.
func (c ChatChunk) Text() string {
	if len(c.Choices) == 0 {
		return ""
	}
	return c.Choices[0].Delta.Content
}

// ChunkChoice is one choice's increment.
type ChunkChoice struct {
	Index int `json:"index"`
	// Delta holds what this chunk adds: content, or tool call pieces.
	Delta        Message `json:"delta"`
	FinishReason string  `json:"finish_reason"`
}

// hasContent reports whether a chunk carries part of the answer: once one
// has arrived, a failure can no longer be retried elsewhere without losing
// or repeating it.
func (c ChatChunk) hasContent() bool {
	if c.event != nil && c.event.content {
		return true // an output item of the Responses API, such as an MCP call
	}
	for _, ch := range c.Choices {
		if ch.Delta.Content != "" || ch.Delta.Reasoning != "" || len(ch.Delta.Parts) > 0 ||
			len(ch.Delta.ToolCalls) > 0 || ch.FinishReason != "" {
			return true
		}
	}
	return false
}

// ChatStream is a streamed chat completion. Read it with Next and Current
// (or All), then check Err; always Close it. Read it from one goroutine;
// Close alone may be called from any goroutine, at any time.
//
//	stream, err := c.ChatStream(ctx, req)
//	if err != nil { ... }
//	defer stream.Close()
//	for stream.Next() {
//		chunk := stream.Current()
//		if chunk.Restarted { ... } // only with WithStreamRecovery: drop what was shown
//		fmt.Print(chunk.Text())
//	}
//	if err := stream.Err(); err != nil { ... } // errors.Is(err, ErrStream) after content
type ChatStream struct {
	ctx context.Context // the caller's, or the stream's own with recovery
	// src is the attempt being read; with recovery a restart replaces it,
	// so Close reads it atomically.
	src atomic.Pointer[streamAttempt]

	client *Client
	// op is the stream's operation (chat, or the Responses API).
	op streamOp
	// recovery state, nil without WithStreamRecovery.
	walk   *walker
	replay *replay
	stop   context.CancelFunc // ends the stream's own context

	// obs observes the call, when it has an observer; served is the
	// context of the attempt being read, ended with it.
	obs    CallObserver
	served context.Context
	ended  bool
	// stall is the stream's hedge of a silent provider, when it has one.
	stall *stallHedge
	// chunks, when the observer is a ChunkObserver, hears the time
	// between content chunks; lastChunk is when the last one was handed
	// out.
	chunks    ChunkObserver
	lastChunk time.Time
	// obsMu, with an observer, lets Close from another goroutine end the
	// call for the observer without racing Next.
	obsMu sync.Mutex

	pending  []ChatChunk
	cur      ChatChunk
	acc      ChatAccumulator
	err      error
	lost     error // see UsageErr
	done     bool
	attempts []Attempt
	skipped  []Candidate

	closedByCaller atomic.Bool
}

// streamAttempt is one attempt's stream: its answer, its timers and what
// reading it has learned.
type streamAttempt struct {
	ctx    context.Context // the caller's (or the stream's)
	sctx   context.Context // this attempt's, ended by its timers and Close
	cancel context.CancelCauseFunc
	body   io.ReadCloser
	events *sse.Reader
	idle   *time.Timer
	// activity restarts idle as bytes arrive; kept here to save an
	// allocation per stream.
	activity activityReader

	cand      Candidate
	provider  string
	secret    string
	hubURL    string
	requestID string

	next    ChatChunk
	wire    chunkState
	pending []ChatChunk // read while opening, before the first content
	done    bool
	content bool // a chunk with content arrived
	// choices tracks which choices have begun and which have finished,
	// so that the stream knows when its answer is whole: every choice it
	// began, and at least want of them, have a finish reason.
	choices choiceSet
	want    int
	// lost is the failure that came after the answer was whole, which
	// cost only what follows the finish reasons (the usage chunk).
	lost error
	// recovering: WithStreamRecovery is on, for the hint of a failure.
	recovering bool
	// op reads the stream's events.
	op streamOp

	// reading is set while read waits for the next chunk; missed, when
	// the idle limit passed while it was not (see idleFired).
	reading, missed atomic.Bool

	// release, when set, ends the attempt's hedge context with it.
	release func()
	// stall, when set, sends a stall hedge (see stallhedge.go) once read
	// has waited stallD.
	stall  *time.Timer
	stallD time.Duration

	closeOnce sync.Once
	closed    atomic.Bool
}

// adopt makes the stream end a hedge's context when it closes.
func (s *streamAttempt) adopt(release func()) { s.release = release }

// ChatStream sends the request with "stream": true and returns once the
// stream's first chunk has arrived. Until then, failures are handled as by
// [Client.Chat]: an HTTP error, a wrong content type, an error event, a cut
// or a timeout ([WithFirstTokenTimeout], [WithStreamIdleTimeout]) before any
// content moves on to the next candidate. After content has arrived, a
// failure ends the stream with an error matching [ErrStream], and what was
// received stays readable (see [ChatStream.Response]); with
// [WithStreamRecovery] the request is sent again instead.
//
// A stream whose every choice received a finish reason has ended well,
// even if the connection then closes without [DONE] or an error event
// follows: that costs only the usage chunk (see [ChatStream.UsageErr]). A
// choice begun and not finished is a cut. An error event before content
// has the kind its words have in an error status ([ErrContextLength],
// [ErrInvalidRequest] for a validation error, ...).
//
// The stream lives under ctx: cancelling it ends a blocked Next at once. The
// attempt timeout ([WithAttemptTimeout]) applies only until the first chunk;
// the idle timeout, until the end. An http.Client given to [WithHTTPClient]
// should have no Timeout, which would cut long streams.
func (c *Client) ChatStream(ctx context.Context, req ChatRequest, opts ...Option) (*ChatStream, error) {
	cfg, err := c.prepare(ctx, &req, opts)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	ctx, obs := c.startCall(ctx, cfg, &req, true)
	var room [4]Candidate
	return c.stream(ctx, cfg, obs, start, chatOp{&req}, c.expand(ctx, &req, c.candidates(&req, cfg, room[:0])))
}

// stream opens a stream of op over cands: with recovery, one that keeps
// its walk to resume it when the stream fails mid-way.
func (c *Client) stream(ctx context.Context, cfg *callConfig, obs CallObserver, start time.Time, op streamOp, cands []Candidate) (*ChatStream, error) {
	if cfg.recovery {
		return c.recoverableStream(ctx, cfg, obs, start, op, cands)
	}
	w := walker{obs: obs, holdServing: true}
	var src *streamAttempt
	err := w.startWith(ctx, c, cfg, cands)
	switch {
	case err != nil:
	case cfg.hedge > 0:
		// The hedged walk's goroutines share it: a copy on the heap, so
		// that a stream without a hedge keeps its walker on the stack.
		hw := new(walker)
		*hw = w
		src, err = runHedged(ctx, hw, func(ctx context.Context, cand Candidate, tok Token) (*streamAttempt, Attempt, error) {
			return c.openStream(ctx, cfg, op, cand, tok)
		})
		w = *hw
	default:
		src, err = run(ctx, &w, func(ctx context.Context, cand Candidate, tok Token) (*streamAttempt, Attempt, error) {
			return c.openStream(ctx, cfg, op, cand, tok)
		})
	}
	if err != nil {
		if obs != nil {
			obs.End(nil, err)
		}
		return nil, err
	}
	s := &ChatStream{ctx: ctx, client: c, op: op, attempts: w.attempts, skipped: w.skipped, obs: obs, served: w.served}
	s.chunks, _ = obs.(ChunkObserver)
	s.begin(src)
	if obs != nil {
		obs.FirstChunk(time.Since(start))
	}
	return s, nil
}

// recoverableStream opens a stream that keeps its walk, to resume it when
// the stream fails mid-way. The stream has a context of its own, so that
// Close also ends an attempt a restart is opening.
func (c *Client) recoverableStream(ctx context.Context, cfg *callConfig, obs CallObserver, start time.Time, op streamOp, cands []Candidate) (*ChatStream, error) {
	sctx, stop := context.WithCancel(ctx)
	s := &ChatStream{ctx: sctx, stop: stop, client: c, op: op, walk: &walker{obs: obs, holdServing: true}, obs: obs}
	s.chunks, _ = obs.(ChunkObserver)
	fail := func(err error) (*ChatStream, error) {
		stop()
		if obs != nil {
			obs.End(nil, err)
		}
		return nil, err
	}
	if err := s.walk.startWith(sctx, c, cfg, cands); err != nil {
		return fail(err)
	}
	var src *streamAttempt
	var err error
	if cfg.hedge > 0 {
		src, err = runHedged(sctx, s.walk, s.try)
	} else {
		src, err = run(sctx, s.walk, s.try)
	}
	s.attempts, s.skipped, s.served = s.walk.attempts, s.walk.skipped, s.walk.served
	if err != nil {
		return fail(err)
	}
	s.begin(src)
	if obs != nil {
		obs.FirstChunk(time.Since(start))
	}
	return s, nil
}

// try opens one attempt of a recoverable stream.
func (s *ChatStream) try(ctx context.Context, cand Candidate, tok Token) (*streamAttempt, Attempt, error) {
	return s.client.openStream(ctx, s.walk.cfg, s.op, cand, tok)
}

// begin makes src the attempt being read, its early chunks first in line.
func (s *ChatStream) begin(src *streamAttempt) {
	s.src.Store(src)
	for _, chunk := range src.pending {
		if out, ok := s.admit(chunk); ok {
			s.pending = append(s.pending, out)
		}
	}
	src.pending = nil
	s.armStallHedge(src)
	if s.closedByCaller.Load() {
		src.close() // Close came while this attempt was opening
	}
}

// openStream makes one streaming attempt and reads up to its first chunk
// with content.
func (c *Client) openStream(ctx context.Context, cfg *callConfig, op streamOp, cand Candidate, tok Token) (*streamAttempt, Attempt, error) {
	start := time.Now()
	att := Attempt{Candidate: cand, TokenSource: tok.Source}
	sctx, cancel := context.WithCancelCause(ctx)
	// The attempt's limits end sctx with their own cause, which tells them
	// apart from the caller's context and from Close.
	limit := func(which Timeout, d time.Duration) *time.Timer {
		if d <= 0 {
			return nil
		}
		return time.AfterFunc(d, func() { cancel(timeoutError{which, d}) })
	}
	attemptTimer := limit(TimeoutAttempt, cfg.timeout)
	firstToken := limit(TimeoutFirstToken, cfg.firstToken)
	stopTimers := func() {
		for _, t := range []*time.Timer{attemptTimer, firstToken} {
			if t != nil {
				t.Stop()
			}
		}
	}
	s := &streamAttempt{ctx: ctx, sctx: sctx, cancel: cancel, cand: cand, secret: tok.value(), hubURL: c.hub.String(),
		want: op.choices(), recovering: cfg.recovery, op: op}
	fail := func(err error) (*streamAttempt, Attempt, error) {
		stopTimers()
		s.close()
		att.Err = err
		att.Duration = time.Since(start)
		att.TimedOut = timedOut(err)
		return nil, att, err
	}

	x := exchange{method: http.MethodPost, url: op.url(c), accept: "text/event-stream", about: cand, op: op.name(), tok: tok, cfg: cfg}
	if firstToken != nil {
		// The first-token limit is per HTTP try: it rests while the retry
		// loop waits, and a retry starts it again.
		x.onTry = func() { firstToken.Reset(cfg.firstToken) }
		x.onBackoff = func() { firstToken.Stop() }
	}
	var err error
	if x.body, err = op.body(cand); err != nil {
		return fail(err)
	}
	resp, err := c.send(ctx, sctx, x, &att)
	if err != nil {
		return fail(err)
	}
	s.body = resp.Body
	if ct := resp.Header.Get("Content-Type"); !strings.Contains(strings.ToLower(ct), "text/event-stream") {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return fail(c.notWhatWasAsked(resp.StatusCode, resp.Header, data, x,
			fmt.Sprintf("the answer is not an event stream (Content-Type %q)", cleanText(ct, 64))))
	}
	s.provider = cand.Provider
	if p := servedBy(resp.Header, tok); p != "" {
		s.provider = p
	}
	s.requestID = att.RequestID
	var body io.Reader = resp.Body
	if cfg.idle > 0 {
		s.activity.d = cfg.idle
		s.reading.Store(true) // opening reads at once
		s.idle = time.AfterFunc(cfg.idle, s.idleFired)
		s.activity.r, s.activity.timer = resp.Body, s.idle
		body = &s.activity
	}
	s.events = sse.NewReader(body, sse.DefaultMaxEventSize)

	// Read until content arrives, so that a failure before it can still
	// move on to another candidate. Chunks without content (a role alone)
	// are kept for Next.
	for !s.content && !s.done {
		chunk, err := s.read()
		if err != nil {
			if ctx.Err() == nil && sctx.Err() != nil {
				// One of the attempt's limits ended it.
				err = c.noAnswer(ctx, sctx, x, context.Cause(sctx))
			}
			return fail(err)
		}
		if chunk != nil {
			s.pending = append(s.pending, *chunk)
		}
	}
	stopTimers()
	if ctx.Err() == nil && sctx.Err() != nil {
		// A limit fired just as the first chunk arrived.
		return fail(c.noAnswer(ctx, sctx, x, context.Cause(sctx)))
	}
	att.Duration = time.Since(start)
	return s, att, nil
}

// activityReader restarts the idle timer whenever bytes arrive: any bytes,
// keep-alive comments included, show that the stream lives. The timer ends
// an attempt only while the stream is being read (see idleFired): the time
// a consumer spends between two Next calls is not the provider's silence.
type activityReader struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func (a *activityReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.timer.Reset(a.d)
	}
	return n, err
}

// read returns the next chunk, nil at the end of the stream, or the error
// that ends it. It records content and the end as they arrive.
func (s *streamAttempt) read() (*ChatChunk, error) {
	if s.idle != nil || s.stall != nil {
		// The idle limit and a stall hedge count only time spent waiting
		// for the provider (see idleFired): reading is set from here until
		// a chunk is handed to the consumer.
		s.reading.Store(true)
		defer s.reading.Store(false)
	}
	if s.idle != nil && s.missed.Swap(false) {
		s.idle.Reset(s.activity.d) // it passed during the consumer's pause
	}
	if s.stall != nil {
		s.stall.Reset(s.stallD)
		defer s.stall.Stop()
	}
	// The chunk lives in the stream, so that reading one allocates no
	// pointer; callers copy it out before the next read.
	for !s.done {
		ev, err := s.events.Next()
		if err != nil {
			s.done = true
			if s.whole() {
				// Every choice finished: the answer is whole, however the
				// connection ends.
				if err != io.EOF && s.ctx.Err() == nil && !s.closed.Load() {
					s.lost = s.readError(err)
				}
				return nil, nil
			}
			return nil, s.readError(err)
		}
		data := bytes.TrimSpace(ev.Data)
		if string(data) == "[DONE]" {
			s.done = true
			return nil, nil
		}
		if len(data) == 0 && ev.Type != "error" {
			continue
		}
		var chunk ChatChunk
		var failure *serverText
		var decodeErr error
		if len(data) > 0 {
			chunk, failure, decodeErr = s.op.decode(data, &s.wire, s.cand.Model)
		}
		var failed error
		switch {
		case failure != nil:
			failed = s.serverError(*failure)
		case ev.Type == "error":
			failed = s.serverError(readServerText(http.Header{}, data))
		case decodeErr != nil:
			failed = s.streamError("a chunk is not valid JSON", "", decodeErr)
		}
		if failed != nil {
			s.done = true
			if s.whole() {
				// What follows the finish reasons is the usage chunk at
				// most: the answer is kept, and only that is lost.
				s.lost = failed
				return nil, nil
			}
			return nil, failed
		}
		for _, ch := range chunk.Choices {
			s.choices.see(ch.Index, ch.FinishReason != "")
		}
		s.content = s.content || chunk.hasContent()
		s.next = chunk
		return &s.next, nil
	}
	return nil, nil // ended while opening
}

// idleFired is the idle limit passing. While the stream is being read it
// ends the attempt; while the consumer holds a chunk (reading is false) it
// is the consumer's pause, not the provider's silence: it is marked missed,
// and the next read starts a full window again. Whichever of the two sees
// the other last re-arms the timer, so a read that starts as it fires is
// never left without one.
func (s *streamAttempt) idleFired() {
	if s.reading.Load() {
		s.cancel(timeoutError{TimeoutStreamIdle, s.activity.d})
		return
	}
	s.missed.Store(true)
	if s.reading.Load() && s.missed.Swap(false) {
		s.idle.Reset(s.activity.d)
	}
}

// whole reports whether the answer is complete: at least want choices
// finished, and none begun without finishing.
func (s *streamAttempt) whole() bool { return s.choices.whole(s.want) }

// serverError is the failure an error event reports: before any content,
// of the kind the classifier gives the server's words (a validation or
// context-length error is what it would be without a stream); after
// content, ErrStream.
func (s *streamAttempt) serverError(t serverText) error {
	code := t.errorType
	if code == "" {
		code = t.code
	}
	e := s.streamError(t.message, code, nil)
	if !s.content {
		e.Kind = failureKind(t)
		e.FromProvider = true // the provider's own event, in the router's 200
	}
	return e
}

// readError is the failure of a read: the caller's context, the idle
// limit, a cut or a broken connection.
func (s *streamAttempt) readError(err error) error {
	if err == io.EOF {
		return s.streamError("the stream ended without [DONE] or a finish reason", "", io.ErrUnexpectedEOF)
	}
	if ctxErr := s.ctx.Err(); ctxErr != nil {
		return fmt.Errorf("inference: stream from %s: %w", s.cand, ctxErr)
	}
	if te, ok := context.Cause(s.sctx).(timeoutError); ok && !s.closed.Load() {
		return s.streamError(te.Error(), "", te)
	}
	return s.streamError("reading the stream failed", "", err)
}

// streamError is a failure of the stream: ErrStream once content has
// arrived, else ErrProvider, so the walk may still try elsewhere.
func (s *streamAttempt) streamError(msg, code string, cause error) *APIError {
	kind := ErrStream
	if !s.content {
		kind = ErrProvider
	}
	if msg == "" {
		msg = "the stream sent an error event"
	}
	if cause != nil && !errors.Is(cause, io.ErrUnexpectedEOF) && timedOut(cause) == "" {
		msg += ": " + cause.Error()
	}
	return &APIError{
		Kind:       kind,
		StatusCode: http.StatusOK,
		Code:       cleanText(redact.String(code, s.secret), 128),
		Message:    cleanText(redact.String(msg, s.secret), maxMessageLen),
		RequestID:  s.requestID,
		Model:      s.cand.Model,
		Provider:   s.provider,
		Cause:      cause,
		hubURL:     s.hubURL,
		recovering: s.recovering && s.content,
	}
}

// close ends the attempt's request and releases its connection, once; it
// is safe from any goroutine.
func (s *streamAttempt) close() {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if s.idle != nil {
			s.idle.Stop()
		}
		if s.stall != nil {
			s.stall.Stop()
		}
		s.cancel(nil)
		if s.body != nil {
			s.body.Close()
		}
		if s.release != nil {
			s.release()
		}
	})
}

// Next advances to the next chunk, returning false at the end of the
// stream or on failure; then Err tells which.
func (s *ChatStream) Next() bool {
	if s.obs != nil {
		s.obsMu.Lock()
		defer s.obsMu.Unlock()
	}
	for {
		if s.closedByCaller.Load() {
			return false
		}
		if len(s.pending) > 0 {
			s.cur, s.pending = s.pending[0], s.pending[1:]
			s.observeChunk()
			return true
		}
		if s.done || s.err != nil {
			return false
		}
		src := s.src.Load()
		chunk, err := src.read()
		if s.stall != nil && !s.stallRead(err != nil) {
			continue // the hedge won: the stream reads on from it
		}
		if err != nil {
			src.close()
			if s.closedByCaller.Load() {
				// Close, from another goroutine, cut the read short: the
				// caller ended the stream, which is not a failure.
				return false
			}
			s.fail(err)
			continue // a restart may have queued chunks, or ended the stream
		}
		if chunk == nil {
			src.close()
			if src.lost != nil {
				s.lost = src.lost
				s.client.logger.LogAttrs(s.ctx, slog.LevelWarn, "inference: the stream failed after every choice had finished; the answer is whole, its usage is missing",
					slog.String("candidate", src.cand.String()), slog.String("error", src.lost.Error()))
			}
			if s.replay != nil {
				s.finishReplay()
			}
			s.done = true
			s.end()
			continue
		}
		if out, ok := s.admit(*chunk); ok {
			s.cur = out
			s.observeChunk()
			return true
		}
	}
}

// observeChunk tells a ChunkObserver the time since the previous chunk
// with content, for each one after the first.
func (s *ChatStream) observeChunk() {
	if s.chunks == nil || !s.cur.hasContent() {
		return
	}
	now := time.Now()
	if !s.lastChunk.IsZero() {
		s.chunks.Chunk(now.Sub(s.lastChunk))
	}
	s.lastChunk = now
}

// admit passes a chunk read from the current attempt through a replay, if
// one is running, and into the accumulator; ok is false for a chunk the
// replay withholds.
func (s *ChatStream) admit(chunk ChatChunk) (ChatChunk, bool) {
	if s.replay != nil {
		var ok bool
		if chunk, ok = s.replay.filter(chunk); !ok {
			return chunk, false
		}
		if s.replay.over {
			s.replay = nil
		}
	}
	s.acc.Add(chunk)
	return chunk, true
}

// fail handles a failure of the current attempt: it records it on its
// Attempt, then restarts the stream when recovery allows, or ends it with
// the error.
func (s *ChatStream) fail(err error) {
	if n := len(s.attempts); n > 0 {
		a := &s.attempts[n-1]
		a.Err, a.TimedOut = err, timedOut(err) // the attempt that served failed after all
		if s.obs != nil && s.served != nil {
			s.obs.EndAttempt(s.served, *a)
			s.served = nil
		}
	}
	if s.walk == nil || !errors.Is(err, ErrStream) || s.ctx.Err() != nil {
		s.err = err
		s.end()
		return
	}
	if err := s.restart(err); err != nil {
		s.err = err
		s.end()
	}
}

// restart resumes the walk after the current attempt failed mid-way: the
// same candidate again for a cut or a malformed or error event, up to the
// retry policy's MaxRetries; the next one at once after a timeout (a
// silent provider stays silent) or when those are spent. What the new
// attempt sends is checked against what was delivered (see replay).
func (s *ChatStream) restart(failure error) error {
	w := s.walk
	d := DecisionNextCandidate
	if timedOut(failure) == "" && w.restarts < w.cfg.retry.MaxRetries {
		d = decisionSameCandidate
	}
	if !w.decide(s.ctx, failure, http.StatusOK, d) {
		s.attempts = w.attempts
		return s.client.logFailure(s.ctx, w.failure())
	}
	// The failed attempt was ended for the observer already: only a new
	// serving attempt may be ended again.
	w.served = nil
	var src *streamAttempt
	var err error
	if w.cfg.hedge > 0 {
		src, err = runHedged(s.ctx, w, s.try)
	} else {
		src, err = run(s.ctx, w, s.try)
	}
	s.attempts, s.served = w.attempts, w.served
	if err != nil {
		return err
	}
	s.replay = newReplay(s.acc.Response())
	// The answer now comes from the new attempt: its id and model name it.
	s.acc.resp.ID, s.acc.resp.Model, s.acc.resp.Created = "", "", 0
	s.begin(src)
	return nil
}

// finishReplay ends a replay whose attempt ended before it reached the
// delivered text: the new answer is shorter, so it replaces the old.
func (s *ChatStream) finishReplay() {
	if chunk, ok := s.replay.end(); ok {
		s.acc.Add(chunk)
		s.pending = append(s.pending, chunk)
	}
	s.replay = nil
}

// end releases what the stream holds once it is over, and tells the
// observer.
func (s *ChatStream) end() {
	if src := s.src.Load(); src != nil {
		src.close()
	}
	s.endStall()
	s.observeEnd(s.err)
	if s.stop != nil {
		s.stop()
	}
}

// observeEnd ends the serving attempt and the call for the observer, once.
func (s *ChatStream) observeEnd(err error) {
	if s.obs == nil || s.ended {
		return
	}
	s.ended = true
	if s.served != nil && len(s.attempts) > 0 {
		s.obs.EndAttempt(s.served, s.attempts[len(s.attempts)-1])
		s.served = nil
	}
	s.obs.End(s.Response(), err)
}

// Current returns the chunk Next advanced to.
func (s *ChatStream) Current() ChatChunk { return s.cur }

// Err returns the error that ended the stream, or nil when it ended well
// (with [DONE] or a finish reason). It matches [ErrStream] for a failure
// after content, and context.Canceled or context.DeadlineExceeded when ctx
// ended. With [WithStreamRecovery], it is the walk's error once no candidate
// could take the stream over.
func (s *ChatStream) Err() error { return s.err }

// Close releases the connection. It may be called at any time, more than
// once, and from any goroutine: a Next blocked in another goroutine then
// returns false at once, and Err stays as it was (nil unless the stream had
// already failed). Next after Close returns false.
func (s *ChatStream) Close() error {
	s.closedByCaller.Store(true)
	if src := s.src.Load(); src != nil {
		src.close()
	}
	if s.stop != nil {
		s.stop()
	}
	if s.obs != nil {
		// Closing ended a blocked Next; the lock waits for it to return.
		// A stream closed before its end ends its call here.
		s.obsMu.Lock()
		s.observeEnd(ErrStreamClosed)
		s.obsMu.Unlock()
	}
	return nil
}

// All ranges over the chunks; a failure comes last, as a zero chunk with
// the error. Breaking out of the loop, or reaching its end, closes the
// stream.
func (s *ChatStream) All() iter.Seq2[ChatChunk, error] {
	return func(yield func(ChatChunk, error) bool) {
		defer s.Close()
		for s.Next() {
			if !yield(s.Current(), nil) {
				return
			}
		}
		if err := s.Err(); err != nil {
			yield(ChatChunk{}, err)
		}
	}
}

// UsageErr returns the failure that came after every choice of the answer
// had finished (an error event, a malformed or cut last chunk), or nil.
// Such a failure does not fail the stream (Err stays nil: the answer is
// whole) and is not retried; it costs only what follows the finish
// reasons, the usage chunk, so [ChatStream.Response] may lack Usage.
func (s *ChatStream) UsageErr() error { return s.lost }

// Attempts lists the attempts made to open the stream, and with
// [WithStreamRecovery] to take it over; the last one is the stream.
func (s *ChatStream) Attempts() []Attempt { return s.attempts }

// Response returns what has been streamed so far as one ChatResponse:
// content joined, tool calls assembled, finish reasons and usage. After a
// failure it holds everything received before it; after a restart, only
// the answer that replaced the abandoned one.
func (s *ChatStream) Response() *ChatResponse {
	r := s.acc.Response()
	r.Attempts, r.Skipped = s.attempts, s.skipped
	src := s.src.Load()
	if src != nil {
		r.Provider, r.RequestID = src.provider, src.requestID
	}
	return r
}

// choiceSet records, per choice index below 64, whether the choice has
// begun and whether it has finished; two words, so that a stream tracks
// them without allocating. Higher indexes (implausible) are not tracked.
type choiceSet struct{ begun, finished uint64 }

func (c *choiceSet) see(index int, finished bool) {
	if index < 0 || index >= 64 {
		return
	}
	c.begun |= 1 << index
	if finished {
		c.finished |= 1 << index
	}
}

// whole reports whether at least want choices finished and every choice
// that began did.
func (c choiceSet) whole(want int) bool {
	return c.finished != 0 && c.begun&^c.finished == 0 && bits.OnesCount64(c.finished) >= want
}

// streamOp is what an operation brings to the one stream engine: its name
// in errors, where its streams go, the body for a candidate, how many
// choices make an answer whole, and how to read one event into a chunk.
// decode returns a failure's server text for an event that reports the
// attempt failed.
type streamOp interface {
	name() string // as errors name the operation: see exchange.op
	url(c *Client) string
	body(cand Candidate) ([]byte, error)
	choices() int
	decode(data []byte, st *chunkState, model string) (ChatChunk, *serverText, error)
}

// chatOp streams a chat completion.
type chatOp struct{ req *ChatRequest }

func (o chatOp) name() string                        { return "chat with" }
func (o chatOp) url(c *Client) string                { return c.chatURL }
func (o chatOp) body(cand Candidate) ([]byte, error) { return o.req.encode(cand, true) }
func (o chatOp) choices() int                        { return o.req.choiceCount() }

func (o chatOp) decode(data []byte, st *chunkState, model string) (ChatChunk, *serverText, error) {
	chunk, isError, err := decodeChunk(data, st, model)
	if isError {
		t := readServerText(http.Header{}, data)
		return chunk, &t, nil
	}
	return chunk, nil, err
}
