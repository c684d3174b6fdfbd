package inference

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hfkit/inference/internal/redact"
	"github.com/hfkit/inference/internal/sse"
)

// streamAttempt is one attempt's stream, of an operation whose events are
// E: its answer, its timers and what reading it has learned. The session
// (session.go) reads it on the consumer's goroutine; close may come from
// any goroutine.
type streamAttempt[E any] struct {
	ctx    context.Context // the attempt's caller's: the call's (or the stream's)
	sctx   context.Context // this attempt's, ended by its timers and close
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

	op      streamOp[E]
	next    E
	wire    chunkState
	parts   []part // what the last event added, reused
	pending []E    // read while opening, before the first content
	done    bool
	content bool // an event with content arrived
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

	// reading is set while read waits for the next event; missed, when
	// the idle limit passed while it was not (see idleFired).
	reading, missed atomic.Bool

	// release, when set, ends the attempt's race context with it.
	release func()
	// stall, when set, calls the session's stall hedge once read has
	// waited stallD (see session.go).
	stall  *time.Timer
	stallD time.Duration

	closeOnce sync.Once
	closed    atomic.Bool
}

// adopt makes the stream end its race context when it closes.
func (s *streamAttempt[E]) adopt(release func()) {
	if s != nil {
		s.release = release
	}
}

// openStream makes one streaming attempt of op and reads up to its first
// event with content.
func openStream[E any](ctx context.Context, w *call, op streamOp[E], cand Candidate, tok Token, hooks tryHooks) (*streamAttempt[E], Attempt, error) {
	c, cfg := w.c, w.cfg
	start := time.Now()
	att := Attempt{Candidate: cand, TokenSource: tok.Source}
	sctx, cancel := context.WithCancelCause(ctx)
	// The attempt's limits end sctx with their own cause, which tells them
	// apart from the caller's context and from close.
	limit := func(which Timeout, d time.Duration) *time.Timer {
		if d <= 0 {
			return nil
		}
		return time.AfterFunc(d, func() { cancel(timeoutError{which, d}) })
	}
	attemptTimer := limit(TimeoutAttempt, cfg.attemptTimeout)
	firstToken := limit(TimeoutFirstToken, cfg.firstToken)
	stopTimers := func() {
		for _, t := range []*time.Timer{attemptTimer, firstToken} {
			if t != nil {
				t.Stop()
			}
		}
	}
	s := &streamAttempt[E]{ctx: ctx, sctx: sctx, cancel: cancel, cand: cand, secret: tok.value(), hubURL: c.hub.String(),
		want: op.choices(), recovering: cfg.recovery, op: op}
	fail := func(err error) (*streamAttempt[E], Attempt, error) {
		stopTimers()
		s.close()
		att.Err = err
		att.Duration = time.Since(start)
		att.TimedOut = timedOut(err)
		return nil, att, err
	}

	x := exchange{method: http.MethodPost, url: op.url(c), accept: "text/event-stream", about: cand, tok: tok, cfg: cfg, op: w.op, race: hooks}
	if firstToken != nil {
		// The first-token limit is per HTTP try: it rests while the retry
		// loop waits, and a retry starts it again.
		x.limit = tryHooks{onTry: func() { firstToken.Reset(cfg.firstToken) }, onBackoff: func() { firstToken.Stop() }}
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
	if att.RoutedTo != "" {
		s.provider = att.RoutedTo
	}
	s.requestID = att.RequestID
	var body io.Reader = resp.Body
	if cfg.streamIdle > 0 {
		s.activity.d = cfg.streamIdle
		s.reading.Store(true) // opening reads at once
		s.idle = time.AfterFunc(cfg.streamIdle, s.idleFired)
		s.activity.r, s.activity.timer = resp.Body, s.idle
		body = &s.activity
	}
	s.events = sse.NewReader(body, sse.DefaultMaxEventSize)

	// Read until content arrives, so that a failure before it can still
	// move on to another candidate. Events without content (a role alone)
	// are kept for the stream.
	for !s.content && !s.done {
		e, err := s.read()
		if err != nil {
			if ctx.Err() == nil && sctx.Err() != nil {
				// One of the attempt's limits ended it.
				err = c.noAnswer(ctx, sctx, x, context.Cause(sctx))
			}
			return fail(err)
		}
		if e != nil {
			s.pending = append(s.pending, *e)
		}
	}
	stopTimers()
	if ctx.Err() == nil && sctx.Err() != nil {
		// A limit fired just as the first content arrived.
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

// read returns the next event, nil at the end of the stream, or the error
// that ends it. It records content, the choices and the end as they
// arrive; s.parts holds what the event added.
func (s *streamAttempt[E]) read() (*E, error) {
	if s.idle != nil || s.stall != nil {
		// The idle limit and a stall hedge count only time spent waiting
		// for the provider (see idleFired): reading is set from here until
		// an event is handed to the consumer.
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
	// The event lives in the stream, so that reading one allocates no
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
		var failure *serverText
		var decodeErr error
		var zero E
		s.next = zero
		if len(data) > 0 {
			s.next, failure, decodeErr = s.op.decode(data, &s.wire, s.cand.Model)
		}
		var failed error
		switch {
		case failure != nil:
			failed = s.serverError(*failure)
		case ev.Type == "error":
			failed = s.serverError(readServerText(http.Header{}, data))
		case decodeErr != nil:
			failed = s.streamError("an event is not valid JSON", "", decodeErr)
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
		s.parts = s.op.parts(&s.next, s.parts[:0])
		for _, p := range s.parts {
			s.choices.see(p.index, p.finished)
			s.content = s.content || p.carries()
		}
		if s.op.ends(&s.next) {
			s.done = true // the protocol's own end: nothing follows
		}
		return &s.next, nil
	}
	return nil, nil // ended while opening
}

// idleFired is the idle limit passing. While the stream is being read it
// ends the attempt; while the consumer holds an event (reading is false)
// it is the consumer's pause, not the provider's silence: it is marked
// missed, and the next read starts a full window again. Whichever of the
// two sees the other last re-arms the timer, so a read that starts as it
// fires is never left without one.
func (s *streamAttempt[E]) idleFired() {
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
func (s *streamAttempt[E]) whole() bool { return s.choices.whole(s.want) }

// serverError is the failure an error event reports: before any content,
// of the kind the classifier gives the server's words (a validation or
// context-length error is what it would be without a stream); after
// content, ErrStream.
func (s *streamAttempt[E]) serverError(t serverText) error {
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
func (s *streamAttempt[E]) readError(err error) error {
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
func (s *streamAttempt[E]) streamError(msg, code string, cause error) *APIError {
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
// is safe from any goroutine, and on a nil attempt.
func (s *streamAttempt[E]) close() {
	if s == nil {
		return
	}
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
