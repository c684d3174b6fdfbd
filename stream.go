package inference

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
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
//		fmt.Print(stream.Current().Text())
//	}
//	if err := stream.Err(); err != nil { ... } // errors.Is(err, ErrStream) after content
type ChatStream struct {
	ctx    context.Context // the caller's
	cancel context.CancelCauseFunc
	body   io.ReadCloser
	events *sse.Reader

	cand     Candidate
	provider string
	secret   string
	hubURL   string

	pending   []ChatChunk
	cur       ChatChunk
	next      ChatChunk
	wire      chunkState
	acc       ChatAccumulator
	err       error
	done      bool
	finished  bool // a finish_reason arrived
	content   bool // a chunk with content arrived
	attempts  []Attempt
	skipped   []Candidate
	requestID string

	// closeOnce, closed and closedByCaller may be used by Close from
	// another goroutine than the one reading; everything else belongs to
	// the reader.
	closeOnce      sync.Once
	closed         atomic.Bool
	closedByCaller atomic.Bool
}

// ChatStream sends the request with "stream": true and returns once the
// stream's first chunk has arrived. Until then, failures are handled as by
// [Client.Chat]: an HTTP error, a wrong content type, or an error event
// before any content moves on to the next candidate. After content has
// arrived nothing is replayed: a failure ends the stream with an error
// matching [ErrStream], and what was received stays readable (see
// [ChatStream.Response]).
//
// The stream lives under ctx: cancelling it ends a blocked Next at once. The
// attempt timeout ([WithAttemptTimeout]) applies only until the first chunk.
// An http.Client given to [WithHTTPClient] should have no Timeout, which
// would cut long streams.
func (c *Client) ChatStream(ctx context.Context, req ChatRequest) (*ChatStream, error) {
	if err := c.usable(ctx); err != nil {
		return nil, err
	}
	if err := req.validate(); err != nil {
		return nil, err
	}
	s, tr, err := walk(ctx, c, &req, func(ctx context.Context, cand Candidate, tok Token) (*ChatStream, Attempt, error) {
		return c.openStream(ctx, &req, cand, tok)
	})
	if err != nil {
		return nil, err
	}
	s.attempts, s.skipped = tr.attempts, tr.skipped
	return s, nil
}

// openStream makes one streaming attempt and reads up to its first chunk
// with content.
func (c *Client) openStream(ctx context.Context, req *ChatRequest, cand Candidate, tok Token) (*ChatStream, Attempt, error) {
	start := time.Now()
	att := Attempt{Candidate: cand, TokenSource: tok.Source}
	sctx, cancel := context.WithCancelCause(ctx)
	var timer *time.Timer
	if c.timeout > 0 {
		timer = time.AfterFunc(c.timeout, func() { cancel(attemptTimeoutError{c.timeout}) })
	}
	fail := func(err error) (*ChatStream, Attempt, error) {
		if timer != nil {
			timer.Stop()
		}
		cancel(nil)
		att.Err = err
		att.Duration = time.Since(start)
		return nil, att, err
	}

	body, err := req.encode(cand, true)
	if err != nil {
		return fail(err)
	}
	x := exchange{method: http.MethodPost, url: c.chatURL, body: body, accept: "text/event-stream", about: cand, tok: tok}
	resp, err := c.send(ctx, sctx, x, &att)
	if err != nil {
		return fail(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.Contains(strings.ToLower(ct), "text/event-stream") {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		return fail(c.notWhatWasAsked(resp.StatusCode, resp.Header, data, x,
			fmt.Sprintf("the answer is not an event stream (Content-Type %q)", cleanText(ct, 64))))
	}
	provider := cand.Provider
	if p := servedBy(resp.Header, tok); p != "" {
		provider = p
	}
	s := &ChatStream{
		ctx:       ctx,
		cancel:    cancel,
		body:      resp.Body,
		events:    sse.NewReader(resp.Body, sse.DefaultMaxEventSize),
		cand:      cand,
		provider:  provider,
		secret:    tok.value(),
		hubURL:    c.hub.String(),
		requestID: att.RequestID,
	}
	s.acc.resp.Provider = provider
	s.acc.resp.RequestID = att.RequestID

	// Read until content arrives, so that a failure before it can still
	// move on to another candidate. Chunks without content (a role alone)
	// are kept for Next.
	for !s.content && !s.done {
		chunk, err := s.read()
		if err != nil {
			// Only the attempt's own timer can have ended sctx here; closing
			// the stream ends it too, so look before closing.
			timedOut := ctx.Err() == nil && sctx.Err() != nil
			s.close()
			if timedOut {
				err = c.noAnswer(ctx, sctx, x, context.Cause(sctx))
			}
			return fail(err)
		}
		if chunk != nil {
			s.pending = append(s.pending, *chunk)
		}
	}
	if timer != nil && !timer.Stop() && sctx.Err() != nil {
		// The timeout fired just as the first chunk arrived.
		s.close()
		return fail(c.noAnswer(ctx, sctx, x, context.Cause(sctx)))
	}
	att.Duration = time.Since(start)
	return s, att, nil
}

// read returns the next chunk, nil at the end of the stream, or the error
// that ends it. It records content and the end as they arrive.
func (s *ChatStream) read() (*ChatChunk, error) {
	// The chunk lives in the stream, so that reading one allocates no
	// pointer; callers copy it out before the next read.
	for {
		ev, err := s.events.Next()
		if err == io.EOF {
			s.done = true
			if s.finished {
				return nil, nil
			}
			return nil, s.streamError("the stream ended without [DONE] or a finish reason", "", io.ErrUnexpectedEOF)
		}
		if err != nil {
			s.done = true
			if ctxErr := s.ctx.Err(); ctxErr != nil {
				return nil, fmt.Errorf("inference: stream from %s: %w", s.cand, ctxErr)
			}
			return nil, s.streamError("reading the stream failed", "", err)
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
		var isError bool
		var decodeErr error
		if len(data) > 0 {
			chunk, isError, decodeErr = decodeChunk(data, &s.wire, s.cand.Model)
		}
		if ev.Type == "error" || isError {
			s.done = true
			t := readServerText(http.Header{}, data)
			code := t.errorType
			if code == "" {
				code = t.code
			}
			return nil, s.streamError(t.message, code, nil)
		}
		if decodeErr != nil {
			s.done = true
			return nil, s.streamError("a chunk is not valid JSON", "", decodeErr)
		}
		s.acc.Add(chunk)
		for _, ch := range chunk.Choices {
			if ch.FinishReason != "" {
				s.finished = true
			}
		}
		s.content = s.content || chunk.hasContent()
		s.next = chunk
		return &s.next, nil
	}
}

// streamError is a failure of the stream: ErrStream once content has
// arrived, else ErrProvider, so the walk may still try elsewhere.
func (s *ChatStream) streamError(msg, code string, cause error) error {
	kind := ErrStream
	if !s.content {
		kind = ErrProvider
	}
	if msg == "" {
		msg = "the stream sent an error event"
	}
	if cause != nil && !errors.Is(cause, io.ErrUnexpectedEOF) {
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
	}
}

// Next advances to the next chunk, returning false at the end of the
// stream or on failure; then Err tells which.
func (s *ChatStream) Next() bool {
	if s.closed.Load() {
		return false
	}
	if len(s.pending) > 0 {
		s.cur, s.pending = s.pending[0], s.pending[1:]
		return true
	}
	if s.done || s.err != nil {
		return false
	}
	chunk, err := s.read()
	if err != nil {
		s.close()
		if s.closedByCaller.Load() {
			// Close, from another goroutine, cut the read short: the
			// caller ended the stream, which is not a failure.
			return false
		}
		s.err = err
		if n := len(s.attempts); n > 0 {
			s.attempts[n-1].Err = err // the attempt that served failed after all
		}
		return false
	}
	if chunk == nil {
		s.close()
		return false
	}
	s.cur = *chunk
	return true
}

// Current returns the chunk Next advanced to.
func (s *ChatStream) Current() ChatChunk { return s.cur }

// Err returns the error that ended the stream, or nil when it ended well
// (with [DONE] or a finish reason). It matches [ErrStream] for a failure
// after content, and context.Canceled or context.DeadlineExceeded when ctx
// ended.
func (s *ChatStream) Err() error { return s.err }

// Close releases the connection. It may be called at any time, more than
// once, and from any goroutine: a Next blocked in another goroutine then
// returns false at once, and Err stays as it was (nil unless the stream had
// already failed). Next after Close returns false.
func (s *ChatStream) Close() error {
	s.closedByCaller.Store(true)
	s.close()
	return nil
}

// close ends the stream's request and releases its connection, once; it
// is safe from any goroutine. Fields that Next reads are left to Next.
func (s *ChatStream) close() {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if s.cancel != nil {
			s.cancel(nil)
		}
		if s.body != nil {
			s.body.Close()
		}
	})
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

// Attempts lists the attempts made to open the stream; the last one is the
// stream.
func (s *ChatStream) Attempts() []Attempt { return s.attempts }

// Response returns what has been streamed so far as one ChatResponse:
// content joined, tool calls assembled, finish reasons and usage. After a
// failure it holds everything received before it.
func (s *ChatStream) Response() *ChatResponse {
	r := s.acc.Response()
	r.Attempts, r.Skipped = s.attempts, s.skipped
	return r
}
