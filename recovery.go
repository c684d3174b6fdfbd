package inference

import "strings"

// replay follows an attempt that took a stream over after the attempt
// before it failed mid-way (WithStreamRecovery) or stalled (a stall
// hedge), and decides what of it the consumer sees. While the new answer
// reproduces the text already delivered (each choice's content and
// reasoning), its events are withheld; the part that goes past it is
// delivered as it comes. If the new answer departs from the delivered
// text, ends short of it, or calls tools after tool-call pieces were
// delivered, one event marked restarted carries the new answer from its
// start, and the stream reads straight on from there. After tool-call
// pieces were delivered the replay never ends silently: the new answer
// restarts at its first tool call, or at its end if it makes none.
type replay[E any] struct {
	op        streamOp[E]
	delivered []choiceText
	tools     bool // tool-call pieces had been delivered
	got       answer[E]
	// sent is, per choice, how much of the new answer's text the consumer
	// has, counting the delivered text the new answer reproduced.
	sent []choiceLen
	keep []part
	// over is set once the new answer has caught up with the delivered
	// text, or restarted: the stream then stops filtering.
	over bool
}

type choiceText struct{ content, reasoning string }

type choiceLen struct{ content, reasoning int }

// newReplay starts a replay against what was delivered.
func newReplay[E any](op streamOp[E], delivered answer[E]) *replay[E] {
	r := &replay[E]{op: op, got: op.newAnswer(), delivered: make([]choiceText, delivered.choices()), tools: delivered.tools()}
	for i := range r.delivered {
		r.delivered[i].content, r.delivered[i].reasoning = delivered.text(i)
	}
	return r
}

// filter takes the new attempt's next event, whose parts are parts, and
// returns what the consumer gets of it; ok is false when it is withheld.
func (r *replay[E]) filter(e E, parts []part) (out E, ok bool) {
	r.got.add(e)
	if r.diverges(parts) {
		return r.restart(), true
	}
	r.keep = r.keep[:0]
	for _, p := range parts {
		if p.index < 0 || p.index >= r.got.choices() {
			continue // an index the answer ignored
		}
		for len(r.sent) <= p.index {
			d := r.deliveredAt(len(r.sent))
			r.sent = append(r.sent, choiceLen{len(d.content), len(d.reasoning)})
		}
		sent := &r.sent[p.index]
		content, reasoning := r.got.text(p.index)
		k := part{index: p.index, tools: p.tools, finished: p.finished, item: p.item}
		if len(content) > sent.content {
			k.content, sent.content = content[sent.content:], len(content)
		}
		if len(reasoning) > sent.reasoning {
			k.reasoning, sent.reasoning = reasoning[sent.reasoning:], len(reasoning)
		}
		r.keep = append(r.keep, k)
	}
	r.over = r.caughtUp()
	return r.op.trim(e, r.keep)
}

// end is called when the new attempt ended before the replay was over: its
// answer is shorter than what was delivered, and replaces it.
func (r *replay[E]) end() (E, bool) {
	if r.over {
		var zero E
		return zero, false
	}
	return r.restart(), true
}

// diverges reports whether the new answer, with the event whose parts are
// parts added, can no longer be the delivered one continued.
func (r *replay[E]) diverges(parts []part) bool {
	for _, p := range parts {
		if r.tools && p.tools {
			return true
		}
	}
	for i := range r.got.choices() {
		d := r.deliveredAt(i)
		content, reasoning := r.got.text(i)
		if !prefixEither(content, d.content) || !prefixEither(reasoning, d.reasoning) {
			return true
		}
		if r.got.finished(i) && (len(content) < len(d.content) || len(reasoning) < len(d.reasoning)) {
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
func (r *replay[E]) caughtUp() bool {
	if r.tools {
		return false
	}
	for i, d := range r.delivered {
		if i >= r.got.choices() {
			return false
		}
		content, reasoning := r.got.text(i)
		if len(content) < len(d.content) || len(reasoning) < len(d.reasoning) {
			return false
		}
	}
	return true
}

// restart is the event that replaces the delivered answer with the new
// one so far.
func (r *replay[E]) restart() E {
	r.over = true
	return r.op.restart(r.got)
}

func (r *replay[E]) deliveredAt(i int) choiceText {
	if i < len(r.delivered) {
		return r.delivered[i]
	}
	return choiceText{}
}

// prefixEither reports whether one of a and b begins the other.
func prefixEither(a, b string) bool {
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a)
}
