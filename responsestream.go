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

	// content: the event carries part of the answer (for fallback before
	// content and the first-token limit).
	content bool
}

// ResponseStream is a streamed response of the Responses API: the same
// engine as [ChatStream] (fallback before the first content, the
// first-token and idle limits, [WithStreamRecovery]). Read it with Next and
// Current (or All), then check Err; always Close it.
type ResponseStream struct {
	s     *ChatStream
	final *Response
	// summary is the reasoning summary delivered so far, for Response
	// before the final response; summaryPart is the summary part its last
	// delta was of.
	summary     strings.Builder
	summaryPart int
}

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
	ctx, cfg, obs, err := c.begin(ctx, opts, req.validate, req.callInfo(true))
	if err != nil {
		return nil, err
	}
	cands := c.candidatesOf(Candidate{Model: req.Model, Provider: req.Provider}, req.Fallbacks, cfg, nil)
	s, err := c.stream(ctx, cfg, obs, start, responseOp{&req}, cands)
	if err != nil {
		return nil, err
	}
	return &ResponseStream{s: s}, nil
}

// Next advances to the next event, returning false at the end of the
// stream or on failure; then Err tells which.
func (r *ResponseStream) Next() bool {
	if !r.s.Next() {
		return false
	}
	switch chunk := r.s.Current(); {
	case chunk.Restarted:
		r.final = nil // the answer starts again
		r.summary.Reset()
	case chunk.event == nil:
	case chunk.event.Response != nil && (chunk.event.Type == "response.completed" || chunk.event.Type == "response.incomplete"):
		r.final = chunk.event.Response
	case chunk.event.Type == eventReasoningSummaryText:
		if r.summary.Len() > 0 && chunk.event.SummaryIndex != r.summaryPart {
			r.summary.WriteString("\n\n") // a new part, as OutputItem.ReasoningSummary joins them
		}
		r.summary.WriteString(chunk.event.Delta)
		r.summaryPart = chunk.event.SummaryIndex
	}
	return true
}

// Current returns the event Next advanced to.
func (r *ResponseStream) Current() ResponseEvent {
	chunk := r.s.Current()
	if chunk.Restarted {
		return ResponseEvent{Type: "response.output_text.delta", Delta: chunk.Text(), Restarted: true}
	}
	if chunk.event == nil {
		return ResponseEvent{}
	}
	ev := *chunk.event
	if ev.Type == "response.output_text.delta" {
		ev.Delta = chunk.Text() // what a replay let through
	}
	return ev
}

// Err returns the error that ended the stream, or nil when it ended well.
func (r *ResponseStream) Err() error { return r.s.Err() }

// Close releases the connection; it may be called at any time, from any
// goroutine.
func (r *ResponseStream) Close() error { return r.s.Close() }

// All ranges over the events; a failure comes last, with the error.
// Breaking out of the loop, or reaching its end, closes the stream.
func (r *ResponseStream) All() iter.Seq2[ResponseEvent, error] {
	return func(yield func(ResponseEvent, error) bool) {
		defer r.Close()
		for r.Next() {
			if !yield(r.Current(), nil) {
				return
			}
		}
		if err := r.Err(); err != nil {
			yield(ResponseEvent{}, err)
		}
	}
}

// Attempts lists the attempts made to open the stream and, with
// WithStreamRecovery, to take it over.
func (r *ResponseStream) Attempts() []Attempt { return r.s.Attempts() }

// Response returns the response: the one response.completed (or
// response.incomplete) carried, or, before it (or after a failure), what
// has been streamed so far, as output items (reasoning and its summary,
// the text as a message, function calls).
func (r *ResponseStream) Response() *Response {
	partial := r.s.Response()
	var out Response
	if r.final != nil {
		out = *r.final
	} else {
		out = Response{Status: "in_progress"}
		if r.s.Err() != nil {
			out.Status = "failed"
		}
		var m Message
		if len(partial.Choices) > 0 {
			m = partial.Choices[0].Message
		}
		if m.Reasoning != "" || r.summary.Len() > 0 {
			out.Output = append(out.Output, OutputItem{Type: "reasoning", Reasoning: m.Reasoning, ReasoningSummary: r.summary.String()})
		}
		if m.Content != "" {
			out.Output = append(out.Output, OutputItem{Type: "message", Role: RoleAssistant,
				Content: []OutputContent{{Type: "output_text", Text: m.Content}}})
		}
		for _, tc := range m.ToolCalls {
			out.Output = append(out.Output, OutputItem{Type: "function_call", CallID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
		}
	}
	out.Provider, out.RequestID, out.Attempts, out.Skipped = partial.Provider, partial.RequestID, partial.Attempts, partial.Skipped
	return &out
}

// responseOp streams a response of the Responses API.
type responseOp struct{ req *ResponseRequest }

func (o responseOp) name() string                        { return "response from" }
func (o responseOp) url(c *Client) string                { return c.base.String() + "/v1/responses" }
func (o responseOp) body(cand Candidate) ([]byte, error) { return o.req.encode(cand, true) }
func (o responseOp) choices() int                        { return 1 }

// responseChunk is an event and the chunk choice it becomes, allocated
// together: one allocation per event, not two.
type responseChunk struct {
	ev     ResponseEvent
	choice [1]ChunkChoice
}

// decode reads one event (see decodeEvent) into a chunk the stream engine
// understands: output text as content, reasoning as reasoning, function
// calls as tool call pieces, response.completed and response.incomplete as
// the finish, response.failed (and an error event) as a failure in the
// server's words. A reasoning summary delta is content (for the fallback
// before content and the first-token limit) without a choice: the stream
// keeps the summary itself (ResponseStream.Next). Every chunk carries its
// event.
func (o responseOp) decode(data []byte, _ *chunkState, _ string) (ChatChunk, *serverText, error) {
	rc := new(responseChunk)
	ev := &rc.ev
	failure, err := decodeEvent(data, ev)
	if err != nil || failure != nil {
		return ChatChunk{}, failure, err
	}
	chunk := ChatChunk{event: ev}
	delta := &rc.choice[0].Delta
	switch ev.Type {
	case eventOutputTextDelta:
		delta.Content = ev.Delta
	case eventReasoningTextDelta:
		delta.Reasoning = ev.Delta
	case eventReasoningSummaryText:
		ev.content = true
	case eventFunctionArgsDelta:
		delta.ToolCalls = []ToolCall{{Index: ev.OutputIndex, Function: FunctionCall{Arguments: ev.Delta}}}
	case "response.output_item.added":
		if ev.Item != nil && ev.Item.Type == "function_call" {
			delta.ToolCalls = []ToolCall{{Index: ev.OutputIndex, ID: ev.Item.CallID, Type: "function", Function: FunctionCall{Name: ev.Item.Name}}}
		} else {
			// Any other item (an MCP call the router runs, a message about
			// to be written) is part of the answer from here on.
			ev.content = true
		}
	case "response.completed", "response.incomplete":
		if ev.Response == nil {
			break
		}
		rc.choice[0].FinishReason = "stop"
		if ev.Response.Status == "incomplete" || ev.Type == "response.incomplete" {
			rc.choice[0].FinishReason = "length"
		}
		u := ev.Response.Usage
		chunk.Usage = &Usage{PromptTokens: u.InputTokens, CompletionTokens: u.OutputTokens, TotalTokens: u.TotalTokens}
	default:
		if strings.HasPrefix(ev.Type, "response.") && strings.HasSuffix(ev.Type, ".failed") && ev.Type != "response.failed" {
			// An MCP call or listing that failed is an item of the answer,
			// not the response failing (response.failed is a failure,
			// read as one by decodeEvent).
			ev.content = true
		}
	}
	if c := rc.choice[0]; c.FinishReason != "" || c.Delta.Content != "" || c.Delta.Reasoning != "" || len(c.Delta.ToolCalls) > 0 {
		chunk.Choices = rc.choice[:]
	}
	return chunk, nil, nil
}
