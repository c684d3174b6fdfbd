package inference

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// A stream with WithStreamRecovery and WithHedge that goes silent after
// its content began is hedged too: once the consumer has waited the hedge
// delay in Next without an event, the request is sent to the next
// candidate of the walk as well (the restart recovery would make after the
// idle limit, only sooner and without giving up the first). Whichever
// produces content first is read on: if the hedge does, the first attempt
// is cancelled and the new one is checked against what was delivered, as
// after any restart (seamless when it reproduces the text, Restarted
// otherwise); if the first speaks again first, the hedge is cancelled.
// It is the call's one hedge, so a call whose first tokens were hedged
// does not hedge a stall.

// The states of a stall hedge.
const (
	stallNone int32 = iota
	stallRunning
	stallHedgeWon
	stallFirstWon
	stallHedgeFailed
	stallSettled
)

// stallHedge is a stream's hedge of a stall: its state, and the outcome
// of its attempt once it has one.
type stallHedge struct {
	state   atomic.Int32
	once    sync.Once
	outcome chan stallOutcome // buffered: the hedge's goroutine never waits
	cancel  context.CancelCauseFunc
	index   int // the hedge's candidate in the walk

	// set when armed, on the reading goroutine, for the hedge's goroutine
	cand Candidate
	tok  Token
	cfg  *callConfig
}

type stallOutcome struct {
	src  *streamAttempt
	att  Attempt
	err  error
	actx context.Context
}

// armStallHedge makes src start a hedge when it goes silent, if the
// stream may hedge: recovery on, a hedge delay, no hedge yet in the call,
// and a next candidate that may hedge the current one.
func (s *ChatStream) armStallHedge(src *streamAttempt) {
	w := s.walk
	if w == nil || w.cfg.hedge <= 0 || w.hedged || s.stall != nil || !w.canHedge() {
		return
	}
	h := &stallHedge{outcome: make(chan stallOutcome, 1), index: w.i + 1,
		cand: w.cands()[w.i+1], tok: w.tok, cfg: w.cfg}
	s.stall = h
	src.stallD = w.cfg.hedge
	src.stall = time.AfterFunc(w.cfg.hedge, func() { s.stallFired(src) })
	src.stall.Stop() // read arms it while it waits
}

// stallFired is the hedge delay passing while src was being read: it sends
// the hedge.
func (s *ChatStream) stallFired(src *streamAttempt) {
	h := s.stall
	if !src.reading.Load() || src.closed.Load() {
		return
	}
	h.once.Do(func() {
		// The cancel is set before the state says running, so that the
		// reading goroutine, which may cancel on seeing it, finds it.
		hctx, cancel := context.WithCancelCause(s.ctx)
		h.cancel = cancel
		if !h.state.CompareAndSwap(stallNone, stallRunning) {
			cancel(nil)
			return
		}
		actx := context.Context(hctx)
		if s.obs != nil {
			actx = s.obs.StartAttempt(hctx, h.cand, h.tok.Source)
		}
		go func() {
			a, att, err := s.client.openStream(actx, h.cfg, s.op, h.cand, h.tok)
			att.Hedge = true
			if err == nil && h.state.CompareAndSwap(stallRunning, stallHedgeWon) {
				h.outcome <- stallOutcome{src: a, att: att, actx: actx}
				src.cancel(errHedgeLost) // ends the first attempt's read
				return
			}
			if a != nil {
				a.close()
			}
			if err != nil && h.state.CompareAndSwap(stallRunning, stallHedgeFailed) {
				// It failed while the first was still silent: a failure.
				cancel(err)
				h.outcome <- stallOutcome{att: att, err: err, actx: actx}
				return
			}
			// The first spoke again first: cancelled, not a failure.
			att.Lost, att.Err, att.TimedOut = true, nil, ""
			cancel(errHedgeLost)
			h.outcome <- stallOutcome{att: att, actx: actx}
		}()
	})
}

// stallRead settles a stall hedge after the reading goroutine got a chunk
// (failed false) or an error (failed true) from the first attempt: ok is
// false when the hedge won, and the stream has moved to it (the chunk, if
// any, is dropped: the hedge's replay covers it). A first attempt that
// failed while its hedge runs waits for the hedge rather than restart.
func (s *ChatStream) stallRead(failed bool) (ok bool) {
	h := s.stall
	if h == nil {
		return true
	}
	switch h.state.Load() {
	case stallRunning:
		if failed {
			o := <-h.outcome
			if h.state.Load() == stallHedgeWon {
				s.takeHedge(o)
				return false
			}
			s.settleStall(o)
			return true
		}
		if h.state.CompareAndSwap(stallRunning, stallFirstWon) {
			h.cancel(errHedgeLost) // the first spoke again first
			return true
		}
		return s.stallRead(failed)
	case stallHedgeWon:
		s.takeHedge(<-h.outcome)
		return false
	case stallHedgeFailed:
		s.settleStall(<-h.outcome)
	case stallFirstWon:
		select {
		case o := <-h.outcome:
			s.settleStall(o)
		default: // its attempt is still ending
		}
	}
	return true
}

// takeHedge moves the stream to the hedge that won: the first attempt is
// recorded as lost, the hedge as the attempt being read, and what it sends
// is checked against what was delivered.
func (s *ChatStream) takeHedge(o stallOutcome) {
	h := s.stall
	s.src.Load().close()
	if n := len(s.attempts); n > 0 {
		first := &s.attempts[n-1]
		first.Lost, first.Err, first.TimedOut = true, nil, ""
		if s.obs != nil && s.served != nil {
			s.obs.EndAttempt(s.served, *first)
		}
	}
	w := s.walk
	w.hedged = true
	w.i = h.index
	w.restarts = 0
	w.attempts = append(s.attempts, o.att)
	s.attempts, s.served = w.attempts, o.actx
	w.served = o.actx
	h.state.Store(stallSettled)
	s.replay = newReplay(s.acc.Response())
	s.acc.resp.ID, s.acc.resp.Model, s.acc.resp.Created = "", "", 0
	s.begin(o.src)
}

// settleStall records a hedge that failed or lost: a failure cools its
// candidate as any would; a loss cools nothing.
func (s *ChatStream) settleStall(o stallOutcome) {
	h := s.stall
	h.state.Store(stallSettled)
	s.walk.hedged = true
	s.attempts = append(s.attempts, o.att)
	s.walk.attempts = s.attempts
	if s.obs != nil {
		s.obs.EndAttempt(o.actx, o.att)
	}
	if o.err != nil {
		s.client.coolCandidate(s.ctx, s.walk.cfg, h.cand, o.err)
	}
}

// endStall waits for a hedge still running when the stream ends, so that
// its attempt is recorded and its goroutine gone.
func (s *ChatStream) endStall() {
	h := s.stall
	if h == nil {
		return
	}
	switch h.state.Load() {
	case stallRunning, stallFirstWon, stallHedgeFailed:
		h.state.CompareAndSwap(stallRunning, stallFirstWon)
		h.cancel(errHedgeLost)
		select {
		case o := <-h.outcome:
			s.settleStall(o)
		case <-time.After(time.Second):
			// Its attempt ends with its context; what it recorded is lost.
		}
	case stallHedgeWon:
		o := <-h.outcome
		o.src.close()
		o.att.Lost = true
		s.settleStall(o)
	}
}
