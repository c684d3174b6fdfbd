package inference

import (
	"context"
	"encoding/json"
	"iter"
	"strings"
	"time"
)

// ResponseEvent is one event of a streamed response, as the router's
// Responses server sends it ("response.created", "response.output_text.delta",
// "response.function_call_arguments.delta", "response.mcp_call.completed",
// "response.completed", ...). Raw holds it as received: an event type this
// client does not know is kept, never dropped.
type ResponseEvent struct {
	Type           string
	SequenceNumber int
	ItemID         string
	OutputIndex    int
	ContentIndex   int
	// SummaryIndex is the summary part a reasoning summary event is about.
	SummaryIndex int
	// Delta is the text a delta event adds (output text, reasoning text,
	// reasoning summary text, function call arguments).
	Delta string
	// Item is the output item of response.output_item.added and .done.
	Item *OutputItem
	// Response is the response of response.created, .in_progress,
	// .completed and .incomplete.
	Response *Response
	// Restarted is set, with WithStreamRecovery, on the first event after
	// the stream was sent again and the new answer differed from what had
	// been delivered: it is an output_text delta whose Delta is the new
	// answer's text from its start; drop what was shown.
	Restarted bool
	Raw       json.RawMessage

	// item: the event carries an item of the answer that has no text of
	// its own (an MCP call the router runs), for fallback before content
	// and the first-token limit.
	item bool
}

// ResponseStream is a streamed response of the Responses API: the same
// engine as [ChatStream] (fallback before the first content, the
// first-token and idle limits, [WithStreamRecovery]). Read it with Next and
// Current (or All), then check Err; always Close it.
type ResponseStream struct{ s *session[ResponseEvent] }

// RespondStream sends the request with "stream": true and returns once
// its first event with content (output text, reasoning or its summary, a
// function call, an output item) has arrived. Before that, failures move
// to the next candidate as in [Client.Respond], a response.failed event
// included, of the kind its words have; after it, a failure ends the
// stream with [ErrStream], or with [WithStreamRecovery] sends the request
// again. The stream ends well with response.completed, or with
// response.incomplete (an answer cut by max_output_tokens: Err is nil,
// and [ResponseStream.Response] has Status "incomplete" and its
// IncompleteReason); neither is ever sent again by recovery.
func (c *Client) RespondStream(ctx context.Context, req ResponseRequest, opts ...Option) (*ResponseStream, error) {
	start := time.Now()
	w := new(call)
	ctx, err := c.begin(ctx, w, "response from", opts, req.validate, func() CallInfo { return req.callInfo(true) })
	if err != nil {
		return nil, err
	}
	var room [4]Candidate
	cands := w.cfg.candidatesOf(Candidate{Model: req.Model, Provider: req.Provider}, req.Fallbacks, room[:0])
	s, err := openSession(ctx, w, responseOp{&req}, cands, start)
	if err != nil {
		return nil, err
	}
	return &ResponseStream{s}, nil
}

// Next advances to the next event, returning false at the end of the
// stream or on failure; then Err tells which. Once the context given to
// RespondStream is done, Next returns false and Err matches its error.
func (r *ResponseStream) Next() bool { return r.s.next() }

// Current returns the event Next advanced to.
func (r *ResponseStream) Current() ResponseEvent { return r.s.cur }

// Err returns the error that ended the stream, or nil when it ended well.
func (r *ResponseStream) Err() error { return r.s.err }

// Close releases the connection; it may be called at any time, from any
// goroutine.
func (r *ResponseStream) Close() error {
	r.s.close()
	return nil
}

// All ranges over the events; a failure comes last, with the error.
// Breaking out of the loop, or reaching its end, closes the stream.
func (r *ResponseStream) All() iter.Seq2[ResponseEvent, error] { return r.s.all() }

// Attempts lists the attempts made to open the stream and, with
// WithStreamRecovery, to take it over.
func (r *ResponseStream) Attempts() []Attempt { return r.s.w.attempts }

// Response returns the response: the one response.completed (or
// response.incomplete) carried, or, before it (or after a failure), what
// has been streamed so far, as output items (reasoning and its summary,
// the text as a message, function calls).
func (r *ResponseStream) Response() *Response {
	out := r.s.acc.(*responseAnswer).response(r.s.err != nil)
	out.Attempts, out.Skipped = r.s.w.attempts, r.s.w.skipped
	if src := r.s.src.Load(); src != nil {
		out.Provider, out.RequestID = src.provider, src.requestID
	}
	return out
}

// responseOp streams a response of the Responses API: its events are
// ResponseEvents.
type responseOp struct{ req *ResponseRequest }

func (o responseOp) url(c *Client) string                { return c.base.String() + "/v1/responses" }
func (o responseOp) body(cand Candidate) ([]byte, error) { return o.req.encode(cand, true) }
func (o responseOp) choices() int                        { return 1 }

// decode reads one event (see decodeEvent); response.failed (and an
// error event) is a failure in the server's words.
func (o responseOp) decode(data []byte, _ *chunkState, _ string) (ResponseEvent, *serverText, error) {
	var ev ResponseEvent
	failure, err := decodeEvent(data, &ev)
	if err != nil || failure != nil {
		return ResponseEvent{}, failure, err
	}
	switch {
	case ev.Type == "response.output_item.added" && (ev.Item == nil || ev.Item.Type != "function_call"):
		// Any other item (an MCP call the router runs, a message about to
		// be written) is part of the answer from here on.
		ev.item = true
	case strings.HasPrefix(ev.Type, "response.") && strings.HasSuffix(ev.Type, ".failed") && ev.Type != "response.failed":
		// An MCP call or listing that failed is an item of the answer,
		// not the response failing (response.failed is a failure, read as
		// one by decodeEvent).
		ev.item = true
	}
	return ev, nil, nil
}

// parts is what an event adds to the answer, its one choice: output text
// as content; reasoning text and its summary as reasoning (a replay
// checks both against what was delivered); function calls as tool-call
// pieces; the response's end (completed, or incomplete) as the finish;
// an item of the answer.
func (o responseOp) parts(e *ResponseEvent, buf []part) []part {
	p := part{item: e.item}
	switch e.Type {
	case eventOutputTextDelta:
		p.content = e.Delta
	case eventReasoningTextDelta, eventReasoningSummaryText:
		p.reasoning = e.Delta
	case eventFunctionArgsDelta:
		p.tools = true
	case "response.output_item.added":
		p.tools = e.Item != nil && e.Item.Type == "function_call"
	case "response.completed", "response.incomplete":
		p.finished = e.Response != nil
	}
	if p == (part{}) {
		return buf
	}
	return append(buf, p)
}

// ends: nothing follows a response's end.
func (o responseOp) ends(e *ResponseEvent) bool {
	return (e.Type == "response.completed" || e.Type == "response.incomplete") && e.Response != nil
}

func (o responseOp) newAnswer() answer[ResponseEvent] { return new(responseAnswer) }

// trim lets through a text delta cut to what goes past the delivered
// text, function calls and the end; the new attempt's other events
// (its lifecycle, the items the delivered answer had) are withheld.
func (o responseOp) trim(e ResponseEvent, keep []part) (ResponseEvent, bool) {
	if len(keep) == 0 {
		return e, false
	}
	k := keep[0]
	switch {
	case e.Type == eventOutputTextDelta:
		e.Delta = k.content
		return e, k.content != ""
	case e.Type == eventReasoningTextDelta || e.Type == eventReasoningSummaryText:
		e.Delta = k.reasoning
		return e, k.reasoning != ""
	}
	return e, k.tools || k.finished
}

// restart is an output_text delta that carries the new answer's text from
// its start.
func (o responseOp) restart(a answer[ResponseEvent]) ResponseEvent {
	text, _ := a.text(0)
	return ResponseEvent{Type: "response.output_text.delta", Delta: text, Restarted: true}
}

func (o responseOp) result(a answer[ResponseEvent]) CallResult {
	return a.(*responseAnswer).response(false).callResult()
}

// responseAnswer joins a response's events: the response its end carried,
// or, before it, the text, reasoning, reasoning summary and function calls
// streamed so far. seen is the reasoning and the summary in the order they
// came, the text a replay compares.
type responseAnswer struct {
	final                    *Response
	content, reasoning, seen strings.Builder
	summary                  strings.Builder
	summaryPart              int
	calls                    []OutputItem
	args                     []*strings.Builder
	done                     bool
}

func (a *responseAnswer) add(e ResponseEvent) {
	if e.Restarted {
		*a = responseAnswer{}
		a.content.WriteString(e.Delta)
		return
	}
	switch e.Type {
	case eventOutputTextDelta:
		a.content.WriteString(e.Delta)
	case eventReasoningTextDelta:
		a.reasoning.WriteString(e.Delta)
		a.seen.WriteString(e.Delta)
	case eventReasoningSummaryText:
		if a.summary.Len() > 0 && e.SummaryIndex != a.summaryPart {
			a.summary.WriteString("\n\n") // a new part, as OutputItem.ReasoningSummary joins them
		}
		a.summary.WriteString(e.Delta)
		a.summaryPart = e.SummaryIndex
		a.seen.WriteString(e.Delta)
	case "response.output_item.added":
		if e.Item != nil && e.Item.Type == "function_call" {
			a.calls = append(a.calls, OutputItem{Type: "function_call", CallID: e.Item.CallID, Name: e.Item.Name})
			a.args = append(a.args, new(strings.Builder))
		}
	case eventFunctionArgsDelta:
		if n := len(a.args); n > 0 {
			a.args[n-1].WriteString(e.Delta)
		}
	case "response.completed", "response.incomplete":
		if e.Response != nil {
			a.final, a.done = e.Response, true
		}
	}
}

func (a *responseAnswer) choices() int { return 1 }

func (a *responseAnswer) text(int) (content, reasoning string) {
	return a.content.String(), a.seen.String()
}

func (a *responseAnswer) finished(int) bool { return a.done }
func (a *responseAnswer) tools() bool       { return len(a.calls) > 0 }
func (a *responseAnswer) renamed()          {}

// response is the answer as a Response: the one the stream's end carried,
// or what has been streamed so far as output items (reasoning and its
// summary, the text as a message, function calls), "in_progress", or
// "failed" after a failure.
func (a *responseAnswer) response(failed bool) *Response {
	if a.final != nil {
		out := *a.final
		return &out
	}
	out := &Response{Status: "in_progress"}
	if failed {
		out.Status = "failed"
	}
	if a.reasoning.Len() > 0 || a.summary.Len() > 0 {
		out.Output = append(out.Output, OutputItem{Type: "reasoning", Reasoning: a.reasoning.String(), ReasoningSummary: a.summary.String()})
	}
	if t := a.content.String(); t != "" {
		out.Output = append(out.Output, OutputItem{Type: "message", Role: RoleAssistant,
			Content: []OutputContent{{Type: "output_text", Text: t}}})
	}
	for i, call := range a.calls {
		call.Arguments = a.args[i].String()
		out.Output = append(out.Output, call)
	}
	return out
}
