package inference

import "strings"

// replay follows an attempt that took a stream over after the attempt
// before it failed mid-way (WithStreamRecovery), and decides what of it the
// consumer sees. While the new answer reproduces the text already delivered
// (each choice's content and reasoning), its chunks are withheld; the part
// that goes past it is delivered as it comes. If the new answer departs from
// the delivered text, ends short of it, or calls tools after tool-call
// pieces were delivered, one chunk marked Restarted carries the new answer
// from its start, and the stream reads straight on from there. After
// tool-call pieces were delivered the replay never ends silently: the new
// answer restarts at its first tool call, or at its end if it makes none.
type replay struct {
	delivered []choiceText
	tools     bool // tool-call pieces had been delivered
	got       ChatAccumulator
	// sent is, per choice, how much of the new answer's text the consumer
	// has, counting the delivered text the new answer reproduced.
	sent []choiceLen
	// over is set once the new answer has caught up with the delivered
	// text, or restarted: the stream then stops filtering.
	over bool
}

type choiceText struct{ content, reasoning string }

type choiceLen struct{ content, reasoning int }

// newReplay starts a replay against what was delivered.
func newReplay(delivered *ChatResponse) *replay {
	r := &replay{delivered: make([]choiceText, len(delivered.Choices))}
	for i, ch := range delivered.Choices {
		r.delivered[i] = choiceText{ch.Message.Content, ch.Message.Reasoning}
		r.tools = r.tools || len(ch.Message.ToolCalls) > 0
	}
	return r
}

// filter takes the new attempt's next chunk and returns what the consumer
// gets of it; ok is false when it is withheld.
func (r *replay) filter(c ChatChunk) (out ChatChunk, ok bool) {
	r.got.Add(c)
	if r.diverges(c) {
		return r.restart(c.Usage), true
	}
	out = ChatChunk{ID: c.ID, Created: c.Created, Model: c.Model, Usage: c.Usage, event: c.event}
	for _, ch := range c.Choices {
		if ch.Index < 0 || ch.Index >= len(r.got.content) {
			continue // an index the accumulator ignored
		}
		for len(r.sent) <= ch.Index {
			i := len(r.sent)
			r.sent = append(r.sent, choiceLen{len(r.deliveredAt(i).content), len(r.deliveredAt(i).reasoning)})
		}
		sent := &r.sent[ch.Index]
		content, reasoning := r.got.content[ch.Index].String(), r.got.reasoning[ch.Index].String()
		var delta Message
		if len(content) > sent.content {
			delta.Content, sent.content = content[sent.content:], len(content)
		}
		if len(reasoning) > sent.reasoning {
			delta.Reasoning, sent.reasoning = reasoning[sent.reasoning:], len(reasoning)
		}
		delta.ToolCalls = ch.Delta.ToolCalls
		if delta.Content != "" || delta.Reasoning != "" || len(delta.ToolCalls) > 0 || ch.FinishReason != "" {
			out.Choices = append(out.Choices, ChunkChoice{Index: ch.Index, Delta: delta, FinishReason: ch.FinishReason})
		}
	}
	r.over = r.caughtUp()
	return out, len(out.Choices) > 0 || out.Usage != nil
}

// end is called when the new attempt ended before the replay was over: its
// answer is shorter than what was delivered, and replaces it.
func (r *replay) end() (ChatChunk, bool) {
	if r.over {
		return ChatChunk{}, false
	}
	return r.restart(nil), true
}

// diverges reports whether the new answer, with c added, can no longer be
// the delivered one continued.
func (r *replay) diverges(c ChatChunk) bool {
	for _, ch := range c.Choices {
		if r.tools && len(ch.Delta.ToolCalls) > 0 {
			return true
		}
	}
	for i := range r.got.content {
		d := r.deliveredAt(i)
		content, reasoning := r.got.content[i].String(), r.got.reasoning[i].String()
		if !prefixEither(content, d.content) || !prefixEither(reasoning, d.reasoning) {
			return true
		}
		if r.got.resp.Choices[i].FinishReason != "" && (len(content) < len(d.content) || len(reasoning) < len(d.reasoning)) {
			return true // it ended short of the delivered text
		}
	}
	return false
}

// caughtUp reports whether the new answer has reached the delivered text
// in every choice. After tool-call pieces were delivered it never has: the
// new answer's tool calls cannot be merged into the delivered ones (their
// arguments would be joined), so the replay runs to its end, where a
// tool call or the end of the attempt restarts the answer.
func (r *replay) caughtUp() bool {
	if r.tools {
		return false
	}
	for i, d := range r.delivered {
		if i >= len(r.got.content) || r.got.content[i].Len() < len(d.content) || r.got.reasoning[i].Len() < len(d.reasoning) {
			return false
		}
	}
	return true
}

// restart is the chunk that replaces the delivered answer with the new one
// so far.
func (r *replay) restart(usage *Usage) ChatChunk {
	r.over = true
	resp := r.got.Response()
	out := ChatChunk{ID: resp.ID, Created: resp.Created, Model: resp.Model, Usage: usage, Restarted: true}
	if out.Usage == nil && resp.Usage != (Usage{}) {
		out.Usage = &resp.Usage
	}
	for _, ch := range resp.Choices {
		out.Choices = append(out.Choices, ChunkChoice{Index: ch.Index, Delta: ch.Message, FinishReason: ch.FinishReason})
	}
	return out
}

func (r *replay) deliveredAt(i int) choiceText {
	if i < len(r.delivered) {
		return r.delivered[i]
	}
	return choiceText{}
}

// prefixEither reports whether one of a and b begins the other.
func prefixEither(a, b string) bool {
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a)
}
