package inference

import (
	"context"
	"iter"
	"math/bits"
	"net/http"
	"time"
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
type ChatStream struct{ s *session[ChatChunk] }

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
	start := time.Now()
	w := new(call)
	ctx, err := c.begin(ctx, w, "chat with", opts, req.validate, func() CallInfo { return req.callInfo(true) })
	if err != nil {
		return nil, err
	}
	var room [4]Candidate
	s, err := openSession(ctx, w, chatOp{&req}, c.expand(ctx, &req, w.cfg.candidatesOf(req.primary(), req.Fallbacks, room[:0])), start)
	if err != nil {
		return nil, err
	}
	return &ChatStream{s}, nil
}

// Next advances to the next chunk, returning false at the end of the
// stream or on failure; then Err tells which. Once the context given to
// ChatStream is done, Next returns false (chunks already received are not
// delivered) and Err matches its error.
func (s *ChatStream) Next() bool { return s.s.next() }

// Current returns the chunk Next advanced to.
func (s *ChatStream) Current() ChatChunk { return s.s.cur }

// Err returns the error that ended the stream, or nil when it ended well
// (with [DONE] or a finish reason). It matches [ErrStream] for a failure
// after content, and context.Canceled or context.DeadlineExceeded when ctx
// ended. With [WithStreamRecovery], it is the walk's error once no candidate
// could take the stream over.
func (s *ChatStream) Err() error { return s.s.err }

// Close releases the connection. It may be called at any time, more than
// once, and from any goroutine: a Next blocked in another goroutine then
// returns false at once, and Err stays as it was (nil unless the stream had
// already failed). Next after Close returns false. A stream closed before
// its end is not a failure, so its loop ends as a finished one would: the
// code that closed it knows, and [ChatStream.Response] shows the answer
// without a finish reason.
func (s *ChatStream) Close() error {
	s.s.close()
	return nil
}

// All ranges over the chunks; a failure comes last, as a zero chunk with
// the error. Breaking out of the loop, or reaching its end, closes the
// stream.
func (s *ChatStream) All() iter.Seq2[ChatChunk, error] { return s.s.all() }

// UsageErr returns the failure that came after every choice of the answer
// had finished (an error event, a malformed or cut last chunk), or nil.
// Such a failure does not fail the stream (Err stays nil: the answer is
// whole) and is not retried; it costs only what follows the finish
// reasons, the usage chunk, so [ChatStream.Response] may lack Usage.
func (s *ChatStream) UsageErr() error { return s.s.lost }

// Attempts lists the attempts made to open the stream, and with
// [WithStreamRecovery] to take it over; the last one is the stream, except
// that a stall hedge ([WithHedge]) that lost to the stream, or failed, is
// listed after the attempt it hedged, which read on.
func (s *ChatStream) Attempts() []Attempt { return s.s.w.attempts }

// Response returns what has been streamed so far as one ChatResponse:
// content joined, tool calls assembled, finish reasons and usage. After a
// failure it holds everything received before it; after a restart, only
// the answer that replaced the abandoned one.
func (s *ChatStream) Response() *ChatResponse {
	r := s.s.acc.(*ChatAccumulator).Response()
	r.Attempts, r.Skipped = s.s.w.attempts, s.s.w.skipped
	if src := s.s.src.Load(); src != nil {
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

// chatOp streams a chat completion: its events are chunks.
type chatOp struct{ req *ChatRequest }

func (o chatOp) url(c *Client) string                { return c.chatURL }
func (o chatOp) body(cand Candidate) ([]byte, error) { return o.req.encode(cand, true) }
func (o chatOp) choices() int                        { return o.req.choiceCount() }
func (o chatOp) ends(*ChatChunk) bool                { return false }
func (o chatOp) newAnswer() answer[ChatChunk]        { return new(ChatAccumulator) }

func (o chatOp) decode(data []byte, st *chunkState, model string) (ChatChunk, *serverText, error) {
	chunk, isError, err := decodeChunk(data, st, model)
	if isError {
		t := readServerText(http.Header{}, data)
		return chunk, &t, nil
	}
	return chunk, nil, err
}

// parts lists each choice's delta; content parts (an image) count as
// part of the answer.
func (o chatOp) parts(c *ChatChunk, buf []part) []part {
	for _, ch := range c.Choices {
		buf = append(buf, part{index: ch.Index, content: ch.Delta.Content, reasoning: ch.Delta.Reasoning,
			tools: len(ch.Delta.ToolCalls) > 0, finished: ch.FinishReason != "", item: len(ch.Delta.Parts) > 0})
	}
	return buf
}

// trim is the chunk with each kept choice's text cut to what the replay
// lets through; its tool-call pieces and finish pass as they are.
func (o chatOp) trim(c ChatChunk, keep []part) (ChatChunk, bool) {
	out := ChatChunk{ID: c.ID, Created: c.Created, Model: c.Model, Usage: c.Usage}
	for _, k := range keep {
		var ch *ChunkChoice
		for i := range c.Choices {
			if c.Choices[i].Index == k.index {
				ch = &c.Choices[i]
				break
			}
		}
		if ch == nil {
			continue
		}
		delta := Message{Content: k.content, Reasoning: k.reasoning, ToolCalls: ch.Delta.ToolCalls}
		if delta.Content != "" || delta.Reasoning != "" || len(delta.ToolCalls) > 0 || ch.FinishReason != "" {
			out.Choices = append(out.Choices, ChunkChoice{Index: ch.Index, Delta: delta, FinishReason: ch.FinishReason})
		}
	}
	return out, len(out.Choices) > 0 || out.Usage != nil
}

// restart carries the new answer so far, each choice whole, marked
// Restarted.
func (o chatOp) restart(a answer[ChatChunk]) ChatChunk {
	resp := a.(*ChatAccumulator).Response()
	out := ChatChunk{ID: resp.ID, Created: resp.Created, Model: resp.Model, Restarted: true}
	if resp.Usage != (Usage{}) {
		out.Usage = &resp.Usage
	}
	for _, ch := range resp.Choices {
		out.Choices = append(out.Choices, ChunkChoice{Index: ch.Index, Delta: ch.Message, FinishReason: ch.FinishReason})
	}
	return out
}

func (o chatOp) result(a answer[ChatChunk]) CallResult {
	return a.(*ChatAccumulator).Response().callResult()
}
