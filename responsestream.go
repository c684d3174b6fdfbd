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
	// Delta is the text a delta event adds (output text, reasoning,
	// function call arguments).
	Delta string
	// Item is the output item of response.output_item.added and .done.
	Item *OutputItem
	// Response is the response of response.created, .in_progress and
	// .completed.
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
}

// RespondStream sends the request with "stream": true and returns once
// its first event with content (output text, reasoning, a function call,
// an output item) has arrived. Before that, failures move to the next
// candidate as in [Client.Respond], a response.failed event included, of
// the kind its words have; after it, a failure ends the stream with
// [ErrStream], or with [WithStreamRecovery] sends the request again.
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
	case chunk.event != nil && chunk.event.Type == "response.completed" && chunk.event.Response != nil:
		r.final = chunk.event.Response
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

// Response returns the response: the one response.completed carried, or,
// before it (or after a failure), what has been streamed so far, as
// output items (the text as a message, reasoning, function calls).
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
		if len(partial.Choices) > 0 {
			m := partial.Choices[0].Message
			if m.Reasoning != "" {
				out.Output = append(out.Output, OutputItem{Type: "reasoning", Reasoning: m.Reasoning})
			}
			if m.Content != "" {
				out.Output = append(out.Output, OutputItem{Type: "message", Role: RoleAssistant,
					Content: []OutputContent{{Type: "output_text", Text: m.Content}}})
			}
			for _, tc := range m.ToolCalls {
				out.Output = append(out.Output, OutputItem{Type: "function_call", CallID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
			}
		}
	}
	out.Provider, out.RequestID, out.Attempts, out.Skipped = partial.Provider, partial.RequestID, partial.Attempts, partial.Skipped
	return &out
}

// responseOp streams a response of the Responses API.
type responseOp struct{ req *ResponseRequest }

func (o responseOp) url(c *Client) string                { return c.base.String() + "/v1/responses" }
func (o responseOp) body(cand Candidate) ([]byte, error) { return o.req.encode(cand, true) }
func (o responseOp) choices() int                        { return 1 }

// decode reads one event into a chunk the stream engine understands:
// output text as content, reasoning as reasoning, function calls as tool
// call pieces, response.completed as the finish, response.failed (and an
// error event) as a failure in the server's words. Every chunk carries
// its event.
func (o responseOp) decode(data []byte, _ *chunkState, _ string) (ChatChunk, *serverText, error) {
	var w struct {
		Type           string          `json:"type"`
		SequenceNumber int             `json:"sequence_number"`
		ItemID         string          `json:"item_id"`
		OutputIndex    int             `json:"output_index"`
		ContentIndex   int             `json:"content_index"`
		Delta          json.RawMessage `json:"delta"`
		Item           json.RawMessage `json:"item"`
		Response       json.RawMessage `json:"response"`
		Message        string          `json:"message"`
		Code           string          `json:"code"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return ChatChunk{}, nil, err
	}
	if w.Type == "" {
		// Not an event of the Responses API: an error body, perhaps.
		t := readServerText(nil, data)
		if t.message == "" {
			t.message = "the stream sent an event without a type"
		}
		return ChatChunk{}, &t, nil
	}
	ev := &ResponseEvent{Type: w.Type, SequenceNumber: w.SequenceNumber, ItemID: w.ItemID, OutputIndex: w.OutputIndex,
		ContentIndex: w.ContentIndex, Raw: append(json.RawMessage(nil), data...)}
	_ = json.Unmarshal(w.Delta, &ev.Delta) // a string; other deltas stay in Raw
	chunk := ChatChunk{event: ev}
	delta := func(m Message) { chunk.Choices = []ChunkChoice{{Delta: m}} }
	if len(w.Item) > 0 && w.Item[0] == '{' {
		item, err := decodeOutputItem(w.Item)
		if err != nil {
			return ChatChunk{}, nil, err
		}
		ev.Item = &item
	}
	if len(w.Response) > 0 && w.Response[0] == '{' {
		resp, failure, err := decodeResponse(w.Response)
		switch {
		case err != nil:
			return ChatChunk{}, nil, err
		case failure != nil:
			return ChatChunk{}, &serverText{message: failure.Message, code: failure.Code}, nil
		}
		ev.Response = resp
	}
	switch {
	case w.Type == "error":
		return ChatChunk{}, &serverText{message: w.Message, code: w.Code}, nil
	case w.Type == "response.output_text.delta":
		delta(Message{Content: ev.Delta})
	case w.Type == "response.reasoning_text.delta":
		delta(Message{Reasoning: ev.Delta})
	case w.Type == "response.output_item.added" && ev.Item != nil && ev.Item.Type == "function_call":
		delta(Message{ToolCalls: []ToolCall{{Index: w.OutputIndex, ID: ev.Item.CallID, Type: "function",
			Function: FunctionCall{Name: ev.Item.Name}}}})
	case w.Type == "response.function_call_arguments.delta":
		delta(Message{ToolCalls: []ToolCall{{Index: w.OutputIndex, Function: FunctionCall{Arguments: ev.Delta}}}})
	case w.Type == "response.output_item.added":
		// Any other item (an MCP call the router runs, a message about to
		// be written) is part of the answer from here on.
		ev.content = true
	case w.Type == "response.completed" && ev.Response != nil:
		reason := "stop"
		if ev.Response.Status == "incomplete" {
			reason = "length"
		}
		chunk.Choices = []ChunkChoice{{FinishReason: reason}}
		u := ev.Response.Usage
		chunk.Usage = &Usage{PromptTokens: u.InputTokens, CompletionTokens: u.OutputTokens, TotalTokens: u.TotalTokens}
	}
	if strings.HasPrefix(w.Type, "response.") && strings.HasSuffix(w.Type, ".failed") && w.Type != "response.failed" {
		// An MCP call or listing that failed is an item of the answer,
		// not the response failing.
		ev.content = true
	}
	return chunk, nil, nil
}
