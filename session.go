package inference

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// part is what one event adds to one choice of the answer, as the stream
// engine sees it: text, tool-call pieces, a finish, or an item of the
// answer that has no text (an MCP call of the Responses API).
type part struct {
	index              int
	content, reasoning string
	tools              bool
	finished           bool
	item               bool
}

// carries reports whether the part is part of the answer: once one has
// arrived, a failure can no longer be retried elsewhere without losing or
// repeating it.
func (p part) carries() bool {
	return p.content != "" || p.reasoning != "" || p.tools || p.finished || p.item
}

// streamOp is what an operation brings to the one stream engine, for its
// event type E: where its streams go, the body for a candidate, how many
// choices make an answer whole, how one event is read and what it adds,
// the answer its events build, and, for recovery's replay, an event cut
// to what the replay lets through and the event that restarts the answer.
type streamOp[E any] interface {
	url(c *Client) string
	body(cand Candidate) ([]byte, error)
	choices() int
	// decode reads one event; failure is set for an event that reports
	// the attempt failed, in the server's words.
	decode(data []byte, st *chunkState, model string) (E, *serverText, error)
	// parts appends to buf what e adds, choice by choice.
	parts(e *E, buf []part) []part
	// ends reports an event after which the protocol sends nothing.
	ends(e *E) bool
	newAnswer() answer[E]
	// trim is e carrying only keep (e's parts, their text cut to what
	// goes past the delivered answer); ok is false when nothing is left
	// to deliver.
	trim(e E, keep []part) (out E, ok bool)
	// restart is the event, marked restarted, that replaces what was
	// delivered with the answer a holds.
	restart(a answer[E]) E
	// result is what a stream delivered, for the observer.
	result(a answer[E]) CallResult
}

// answer joins a stream's events into the operation's answer.
type answer[E any] interface {
	add(e E)
	// choices is how many choices have begun; text, a choice's content
	// and reasoning so far; finished, whether it has ended; tools,
	// whether any tool-call piece arrived.
	choices() int
	text(i int) (content, reasoning string)
	finished(i int) bool
	tools() bool
	// renamed forgets the stream's id and model: after a restart the
	// answer comes from the new attempt, which names it.
	renamed()
}

// session is one stream, alone the owner of its state: the call (its walk
// and attempts), the race that opens attempts, the attempt being read, the
// replay after a restart, the answer so far and the stall hedge. The
// public stream types are thin wrappers over it. It is read from one
// goroutine; Close, a stall hedge's attempt and the stall timer come from
// others, so when any of them may touch it (an observer, a stall hedge),
// Next holds mu except while it waits, and those take it too. Methods
// named ...Locked run with mu held (when the session is guarded). While
// Next waits without mu it may still move the walk (a restart's race, a
// stall hedge's result): a Close that comes then leaves the end of the
// call to Next (see inNext).
type session[E any] struct {
	w    *call
	op   streamOp[E]
	race race[*streamAttempt[E]]
	// ctx is the attempts' context: the caller's, or with recovery the
	// stream's own, which Close also ends (an attempt a restart is
	// opening). caller is the caller's, checked before each event.
	ctx    context.Context
	caller context.Context
	stop   context.CancelFunc
	start  time.Time

	// src is the attempt being read; Close reads it from any goroutine.
	src atomic.Pointer[streamAttempt[E]]

	guarded bool
	mu      sync.Mutex

	pending []E
	cur     E
	acc     answer[E]
	replay  *replay[E]
	parts   []part
	err     error
	lost    error // see ChatStream.UsageErr
	done    bool
	ended   bool
	// inNext: a Next runs (under mu, or waiting without it); Close then
	// ends the call through it, as it returns.
	inNext bool
	// stall is the stall hedge under way or settled (under mu).
	stall *stallHedge

	// chunks, when the observer is a ChunkObserver, hears the time
	// between content events; lastChunk is when the last one was handed
	// out.
	chunks    ChunkObserver
	lastChunk time.Time

	closedByCaller atomic.Bool
}

// openSession opens a stream of op over cands: the race's walk up to the
// first event with content.
func openSession[E any](ctx context.Context, w *call, op streamOp[E], cands []Candidate, start time.Time) (*session[E], error) {
	s := &session[E]{w: w, op: op, ctx: ctx, caller: ctx, start: start, acc: op.newAnswer()}
	w.holdServing = true
	if w.cfg.recovery {
		s.ctx, s.stop = context.WithCancel(ctx)
	}
	s.guarded = w.obs != nil || (w.cfg.recovery && w.cfg.hedge > 0)
	s.chunks, _ = w.obs.(ChunkObserver)
	s.race = race[*streamAttempt[E]]{w: w, try: s}
	err := w.start(s.ctx, cands)
	var src *streamAttempt[E]
	if err == nil {
		src, err = s.race.run(s.ctx)
	}
	if err != nil {
		if s.stop != nil {
			s.stop()
		}
		w.end(CallResult{}, err)
		return nil, err
	}
	s.beginLocked(src)
	if w.obs != nil {
		w.obs.FirstChunk(time.Since(start))
	}
	return s, nil
}

// attempt opens one attempt of the stream.
func (s *session[E]) attempt(ctx context.Context, cand Candidate, tok Token, hooks tryHooks) (*streamAttempt[E], Attempt, error) {
	return openStream(ctx, s.w, s.op, cand, tok, hooks)
}

// beginLocked makes src the attempt being read, its early events first in line.
func (s *session[E]) beginLocked(src *streamAttempt[E]) {
	// Armed before src is published: Close, from any goroutine, reads
	// what it closes from src.
	s.armStall(src)
	s.src.Store(src)
	for _, e := range src.pending {
		if out, ok := s.admit(e); ok {
			s.pending = append(s.pending, out)
		}
	}
	src.pending = nil
	if s.closedByCaller.Load() {
		src.close() // Close came while this attempt was opening
	}
}

// switchToLocked moves the stream to a new attempt, after a restart or a stall
// hedge that took over: what it sends is checked against what was
// delivered (see replay), and it names the answer from now on.
func (s *session[E]) switchToLocked(src *streamAttempt[E]) {
	s.replay = newReplay(s.op, s.acc)
	s.acc.renamed()
	s.beginLocked(src)
}

// next advances to the next event, see ChatStream.Next.
func (s *session[E]) next() bool {
	if s.guarded {
		s.mu.Lock()
		s.inNext = true
		defer s.leaveNextLocked()
	}
	for {
		if s.closedByCaller.Load() {
			return false
		}
		if s.err == nil && (len(s.pending) > 0 || !s.done) {
			// Events already read wait in buffers: once the caller's
			// context is done, none of them is delivered.
			if ctxErr := s.caller.Err(); ctxErr != nil {
				src := s.src.Load()
				src.close()
				s.failLocked(fmt.Errorf("inference: stream from %s: %w", src.cand, ctxErr))
				return false
			}
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
		e, err := s.read(src)
		if s.stall != nil && s.settleStallLocked(err) {
			continue // the stall hedge took over: the stream reads on from it
		}
		if err != nil {
			src.close()
			if s.closedByCaller.Load() {
				// Close, from another goroutine, cut the read short: the
				// caller ended the stream, which is not a failure.
				return false
			}
			s.failLocked(err)
			continue // a restart may have queued events, or ended the stream
		}
		if e == nil {
			src.close()
			if src.lost != nil {
				s.lost = src.lost
				s.w.c.logger.LogAttrs(s.ctx, slog.LevelWarn, "inference: the stream failed after every choice had finished; the answer is whole, its usage is missing",
					slog.String("candidate", src.cand.String()), slog.String("error", src.lost.Error()))
			}
			if s.replay != nil {
				s.finishReplayLocked()
			}
			s.done = true
			s.endLocked()
			continue
		}
		if out, ok := s.admit(*e); ok {
			s.cur = out
			s.observeChunk()
			return true
		}
	}
}

// leaveNextLocked ends a guarded Next: a Close that came while it ran
// ends the call now, once nothing of the walk moves any more.
func (s *session[E]) leaveNextLocked() {
	s.inNext = false
	if s.closedByCaller.Load() {
		s.closedLocked()
	}
	s.mu.Unlock()
}

// all ranges over the events; a failure comes last, with a zero event.
// Breaking out of the loop, or reaching its end, closes the stream.
func (s *session[E]) all() iter.Seq2[E, error] {
	return func(yield func(E, error) bool) {
		defer s.close()
		for s.next() {
			if !yield(s.cur, nil) {
				return
			}
		}
		if s.err != nil {
			var zero E
			yield(zero, s.err)
		}
	}
}

// read reads src's next event, without holding mu while it waits.
func (s *session[E]) read(src *streamAttempt[E]) (*E, error) {
	if s.guarded {
		s.mu.Unlock()
		defer s.mu.Lock()
	}
	return src.read()
}

// observeChunk tells a ChunkObserver the time since the previous event
// with content, for each one after the first.
func (s *session[E]) observeChunk() {
	if s.chunks == nil {
		return
	}
	content := false
	for _, p := range s.op.parts(&s.cur, s.parts[:0]) {
		content = content || p.carries()
	}
	if !content {
		return
	}
	now := time.Now()
	if !s.lastChunk.IsZero() {
		s.chunks.Chunk(now.Sub(s.lastChunk))
	}
	s.lastChunk = now
}

// admit passes an event read from the current attempt through a replay,
// if one is running, and into the answer; ok is false for an event the
// replay withholds.
func (s *session[E]) admit(e E) (E, bool) {
	if s.replay != nil {
		var ok bool
		if e, ok = s.filter(e); !ok {
			return e, false
		}
	}
	s.acc.add(e)
	return e, true
}

// filter passes e through the replay, which ends once it is over. It is
// apart from admit so that only a replayed event is taken by address.
func (s *session[E]) filter(e E) (E, bool) {
	s.parts = s.op.parts(&e, s.parts[:0])
	out, ok := s.replay.filter(e, s.parts)
	if s.replay.over {
		s.replay = nil
	}
	return out, ok
}

// failLocked handles a failure of the current attempt: it records it on the
// attempt that served, then restarts the stream when recovery allows, or
// ends it with the error.
func (s *session[E]) failLocked(err error) {
	w := s.w
	if a := w.serving(); a != nil {
		a.Err, a.TimedOut = err, timedOut(err) // the attempt that served failed after all
		if w.obs != nil && w.served != nil {
			w.obs.EndAttempt(w.served, *a)
			w.served = nil
		}
	}
	if !w.cfg.recovery || !errors.Is(err, ErrStream) || s.ctx.Err() != nil {
		s.err = err
		s.endLocked()
		return
	}
	if err := s.restartLocked(err); err != nil {
		s.err = err
		s.endLocked()
	}
}

// restartLocked resumes the walk after the current attempt failed mid-way: the
// same candidate again for a cut or a malformed or error event, up to the
// retry policy's MaxRetries; the next one at once after a timeout (a
// silent provider stays silent) or when those are spent.
func (s *session[E]) restartLocked(failure error) error {
	w := s.w
	d := DecisionNextCandidate
	if timedOut(failure) == "" && w.restarts < w.cfg.retry.MaxRetries {
		d = decisionSameCandidate
	}
	if goOn, _ := w.decide(s.ctx, w.i, w.tokGen, failure, http.StatusOK, d); !goOn {
		return w.c.logFailure(s.ctx, w.failure())
	}
	src, err := s.run()
	if s.closedByCaller.Load() {
		// Close came while the restart was opening: the caller ended the
		// stream, which is not a failure.
		src.close()
		return nil
	}
	if err != nil {
		return err
	}
	s.switchToLocked(src)
	return nil
}

// run runs the race again from the walk, without holding mu: opening an
// attempt takes long, and Close must be able to end it.
func (s *session[E]) run() (*streamAttempt[E], error) {
	if s.guarded {
		s.mu.Unlock()
		defer s.mu.Lock()
	}
	return s.race.run(s.ctx)
}

// finishReplayLocked ends a replay whose attempt ended before it reached the
// delivered text: the new answer is shorter, so it replaces the old.
func (s *session[E]) finishReplayLocked() {
	if e, ok := s.replay.end(); ok {
		s.acc.add(e)
		s.pending = append(s.pending, e)
	}
	s.replay = nil
}

// endLocked releases what the stream holds once it is over, and tells the
// observer.
func (s *session[E]) endLocked() {
	if src := s.src.Load(); src != nil {
		src.close()
	}
	s.endStallLocked()
	s.observeEndLocked(s.err)
	if s.stop != nil {
		s.stop()
	}
}

// observeEndLocked ends the serving attempt and the call for the observer, once.
func (s *session[E]) observeEndLocked(err error) {
	w := s.w
	if w.obs == nil || s.ended {
		return
	}
	s.ended = true
	if a := w.serving(); a != nil && w.served != nil {
		w.obs.EndAttempt(w.served, *a)
		w.served = nil
	}
	res := s.op.result(s.acc)
	res.Attempts, res.Skipped = w.attempts, w.skipped
	if src := s.src.Load(); src != nil {
		res.Provider = src.provider
	}
	w.end(res, err)
}

// close ends the stream at the caller's wish, see ChatStream.Close.
func (s *session[E]) close() {
	s.closedByCaller.Store(true)
	if src := s.src.Load(); src != nil {
		src.close()
	}
	if s.stop != nil {
		s.stop()
	}
	if s.guarded {
		// Closing ends a blocked Next, which then ends the call as it
		// returns; a stream closed between two Next calls, before its
		// end, ends its call here.
		s.mu.Lock()
		if !s.inNext {
			s.closedLocked()
		}
		s.mu.Unlock()
	}
}

// closedLocked ends, for the observer, a call whose stream the caller
// closed: its stall hedge, then the call, once. While another waits for
// the stall hedge's end (a Close, a Next), that one ends the call after
// it.
func (s *session[E]) closedLocked() {
	if s.stall != nil && s.stall.draining {
		return
	}
	s.endStallLocked()
	s.observeEndLocked(ErrStreamClosed)
}

// The stall hedge. With WithStreamRecovery and WithHedge, a stream that
// goes silent after its content began is hedged: once the consumer has
// waited the hedge delay in Next without an event, the race launches the
// next candidate of the walk as well (the restart recovery would make
// after the idle limit, only sooner and without giving up the first).
// Whichever produces content first is read on: if the hedge does, the
// first attempt is cancelled and the hedge is checked against what was
// delivered, as after any restart (switchTo); if the first speaks again
// first, the hedge is cancelled. It is the call's one hedge, and takes
// from the hedge budget like any extra launch.

// stallHedge is a stall hedge under way (under the session's mu).
type stallHedge struct {
	f *flight
	// spoke: the first attempt spoke again first; won: the hedge opened
	// first, and the first was cancelled; settled: its result was taken;
	// draining: a goroutine waits for its result.
	spoke, won, settled, draining bool
}

// armStall makes src start a stall hedge when it goes silent, if the
// stream may hedge: recovery on, a hedge delay, no hedge yet in the call,
// and a next candidate that may hedge the current one.
func (s *session[E]) armStall(src *streamAttempt[E]) {
	w := s.w
	if !w.cfg.recovery || w.cfg.hedge <= 0 || w.hedged || s.stall != nil {
		return
	}
	if _, ok := s.race.hedgeTarget(w.i); !ok {
		return
	}
	src.stallD = w.cfg.hedge
	src.stall = time.AfterFunc(w.cfg.hedge, func() { s.stalled(src) })
	src.stall.Stop() // read arms it while it waits
}

// stalled is the hedge delay passing while src was being read: it
// launches the stall hedge, when the budget allows.
func (s *session[E]) stalled(src *streamAttempt[E]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.w
	if !src.reading.Load() || src.closed.Load() || s.src.Load() != src || s.stall != nil || w.hedged || s.closedByCaller.Load() {
		return
	}
	j, ok := s.race.hedge(s.ctx, w.i)
	if !ok {
		return
	}
	w.hedged = true
	s.stall = &stallHedge{}
	s.stall.f = s.race.launchOpened(s.ctx, j, true, s.stallOpened)
}

// stallOpened runs on the hedge's goroutine once it opened: the hedge wins
// while the first attempt is still silent, and the first's read is ended.
func (s *session[E]) stallOpened() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stall
	if st == nil || st.spoke || s.ended || s.closedByCaller.Load() {
		return false
	}
	st.won = true
	s.src.Load().cancel(errHedgeLost)
	return true
}

// settleStallLocked settles the stall hedge after a read of the first
// attempt returned an event (failure nil) or failed. It reports whether
// the stream moved to the hedge, which won (the event, if any, is
// dropped: the hedge's replay covers it). A first attempt that failed
// while its hedge runs waits for the hedge rather than restart.
func (s *session[E]) settleStallLocked(failure error) bool {
	st := s.stall
	if st.settled || st.draining {
		return false
	}
	if !st.won && failure == nil {
		if !st.spoke {
			st.spoke = true
			st.f.cancel(errHedgeLost) // the first spoke again first
		}
		select {
		case res := <-s.race.results:
			s.takeStallLocked(res, nil) // its loss, recorded now
		default: // its attempt is still ending: taken later
		}
		return false
	}
	if st.won {
		failure = nil // the hedge answered first: the read ended as the first lost
	}
	return s.takeStallLocked(s.waitStallLocked(), failure)
}

// waitStallLocked waits for the stall hedge's result, without holding mu.
func (s *session[E]) waitStallLocked() result[*streamAttempt[E]] {
	s.stall.draining = true
	s.mu.Unlock()
	res := <-s.race.results
	s.mu.Lock()
	s.stall.draining = false
	return res
}

// takeStallLocked takes the stall hedge's result: the stream moves to a
// hedge that won, and a loss or a failure is settled by the race as any
// other. It reports a move. The first attempt, left for the hedge, is
// recorded as lost, unless it failed (firstFailed) before the hedge
// answered: that is a failure as usual, and the walk leaves its
// candidate as recovery would (it cools). The probe a shared store gave
// the hedge (see call.release) ends here: served when it took over.
func (s *session[E]) takeStallLocked(res result[*streamAttempt[E]], firstFailed error) bool {
	s.stall.settled = true
	w := s.w
	if res.err != nil || !s.stall.won {
		s.race.settle(s.ctx, res.f, res)
		w.release(-1) // the hedge's probe, after its failure was cooled
		return false
	}
	s.race.remove(res.f)
	first := s.src.Load()
	first.close()
	if a := w.serving(); a != nil {
		a.Lost, a.Err, a.TimedOut = true, nil, ""
		if firstFailed != nil {
			a.Lost, a.Err, a.TimedOut = false, firstFailed, timedOut(firstFailed)
		}
		if w.obs != nil && w.served != nil {
			w.obs.EndAttempt(w.served, *a)
		}
	}
	if firstFailed != nil && s.ctx.Err() == nil {
		w.decide(s.ctx, w.i, w.tokGen, firstFailed, http.StatusOK, DecisionNextCandidate)
	}
	w.i, w.restarts = res.f.index, 0
	w.record(res.att, res.f.actx, true)
	w.release(res.f.index) // the hedge's probe: it served
	keepOrRelease(res.out, nil, res.f.cancel)
	s.switchToLocked(res.out)
	return true
}

// endStallLocked waits, when the stream ends, for a stall hedge still
// under way: its context is cancelled, so its attempt ends at once, and
// its loss is recorded, and the probe a shared store gave it released.
func (s *session[E]) endStallLocked() {
	st := s.stall
	if st == nil || st.settled || st.draining {
		return
	}
	if !s.guarded {
		return
	}
	st.f.cancel(errHedgeLost)
	res := s.waitStallLocked()
	st.settled = true
	if res.err == nil && st.won {
		res.out.close() // it won as the stream ended: nothing reads it
		res.att.Err, res.att.Lost = nil, true
		s.race.remove(res.f)
		w := s.w
		w.record(res.att, res.f.actx, false)
		w.release(-1) // no verdict: its probe is to be made again
		return
	}
	s.race.settle(s.ctx, res.f, res)
	s.w.release(-1)
}
