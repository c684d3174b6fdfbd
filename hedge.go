package inference

import (
	"context"
	"errors"
	"sync"
	"time"
)

// errHedgeLost is the cause that cancels the attempt of a hedged pair
// whose other attempt answered first.
var errHedgeLost = errors.New("inference: the other attempt of a hedged pair answered first")

// hedgeBudget bounds the fraction of a client's calls that hedge, over a
// sliding minute approximated by two buckets of thirty seconds.
type hedgeBudget struct {
	percent float64 // 0: no bound

	mu                sync.Mutex
	start             time.Time
	calls, hedges     int
	prevCalls, prevHe int
}

const hedgeWindow = 30 * time.Second

// roll moves to the current bucket.
func (b *hedgeBudget) roll(now time.Time) {
	switch {
	case now.Sub(b.start) >= 2*hedgeWindow:
		b.start, b.calls, b.hedges, b.prevCalls, b.prevHe = now, 0, 0, 0, 0
	case now.Sub(b.start) >= hedgeWindow:
		b.prevCalls, b.prevHe = b.calls, b.hedges
		b.calls, b.hedges, b.start = 0, 0, b.start.Add(hedgeWindow)
	}
}

// call counts a call that may hedge.
func (b *hedgeBudget) call() {
	if b.percent == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.roll(time.Now())
	b.calls++
}

// take reports whether a call may hedge now, and counts it if so.
func (b *hedgeBudget) take() bool {
	if b.percent == 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.roll(now)
	// The previous bucket counts for the part of it still in the window.
	weight := 1 - float64(now.Sub(b.start))/float64(hedgeWindow)
	calls := float64(b.calls) + weight*float64(b.prevCalls)
	hedges := float64(b.hedges) + weight*float64(b.prevHe)
	if calls <= 0 || (hedges+1)/calls*100 > b.percent {
		return false
	}
	b.hedges++
	return true
}

// canHedge reports whether the walk may hedge its current candidate: on,
// not yet hedged in this call, and a next candidate whose provider
// differs.
func (w *walker) canHedge() bool {
	cands := w.cands()
	return w.cfg.hedge > 0 && !w.hedged && w.i+1 < len(cands) && hedgeable(cands[w.i], cands[w.i+1])
}

// hedgeable reports whether b may hedge a: never on the provider a names,
// and for the same model only when both name their providers (two
// router's choices of one model may be the same provider).
func hedgeable(a, b Candidate) bool {
	if a.Provider != "" && a.Provider == b.Provider {
		return false
	}
	if a.Model == b.Model {
		return a.Provider != "" && b.Provider != ""
	}
	return true
}

// hedgeResult is one attempt of a hedged pair, as it ended.
type hedgeResult[T any] struct {
	out   T
	att   Attempt
	err   error
	actx  context.Context
	slot  int // 0 the first attempt, 1 the hedge
	index int // in the walk's candidates
}

// hedge makes the attempt at the walk's current candidate and, if it has
// not answered after the hedge delay, one at the next candidate too; the
// first to answer wins and the other is cancelled at once. done is true
// when the call is over (out or err is its result); false when the walk
// goes on from w.i, as after any failure.
func hedge[T any](ctx context.Context, w *walker, try tryFunc[T]) (out T, done bool, err error) {
	var zero T
	i := w.i
	cands := w.cands()
	results := make(chan hedgeResult[T], 2)
	var cancels [2]context.CancelCauseFunc
	timer := time.NewTimer(w.cfg.hedge)
	defer timer.Stop()
	launch := func(slot int) {
		index := i + slot
		lctx, cancel := context.WithCancelCause(ctx)
		cancels[slot] = cancel
		actx := context.Context(lctx)
		if slot == 0 {
			// The delay counts only while an HTTP try waits for its
			// answer: a provider that answered and is waiting to be retried
			// (a 429's Retry-After, a 500) is not slow.
			actx = &hedgeClockContext{Context: lctx, clock: hedgeClock{timer: timer, d: w.cfg.hedge}}
		}
		if w.obs != nil {
			actx = w.obs.StartAttempt(lctx, cands[index], w.tok.Source)
		}
		tok := w.tok
		go func() {
			out, att, err := try(actx, cands[index], tok)
			results <- hedgeResult[T]{out: out, att: att, err: err, actx: actx, slot: slot, index: index}
		}()
	}
	// alone ends the call as without a hedge: the first attempt is the
	// only one.
	alone := func(r hedgeResult[T]) (T, bool, error) {
		w.endAttempt(r.att, r.actx, r.err == nil)
		keepOrRelease(r.out, r.err, cancels[r.slot])
		if r.err == nil {
			return r.out, true, nil
		}
		if goOn, failure := w.afterFailure(ctx, r.err, r.att.StatusCode); !goOn {
			return zero, true, failure
		}
		return zero, false, nil
	}
	w.c.hedges.call()
	launch(0)
	select {
	case r := <-results:
		return alone(r) // it answered, or failed, within the delay
	case <-timer.C:
	}
	if ctx.Err() != nil || !w.c.hedges.take() {
		return alone(<-results)
	}
	w.hedged = true
	launch(1)

	var winner *hedgeResult[T]
	var failed, lost []hedgeResult[T]
	for range 2 {
		r := <-results
		r.att.Hedge = r.slot == 1
		switch {
		case winner == nil && r.err == nil:
			winner = &r
			cancels[1-r.slot](errHedgeLost) // the other, at once: its body is closed
		case winner != nil:
			// Cancelled because the other answered first, or a success
			// that came second: not a failure, never delivered.
			keepOrRelease(r.out, errHedgeLost, cancels[r.slot])
			r.att.Err, r.att.Lost, r.att.TimedOut = nil, true, ""
			lost = append(lost, r)
		default:
			cancels[r.slot](nil)
			failed = append(failed, r)
		}
	}
	// Attempts in order: the failures, the one lost, then the winner, the
	// last attempt being the one that served.
	for _, r := range failed {
		w.endAttempt(r.att, r.actx, false)
	}
	for _, r := range lost {
		w.endAttempt(r.att, r.actx, false)
	}
	if winner != nil {
		for _, r := range failed {
			w.c.coolCandidate(ctx, w.cfg, cands[r.index], r.err)
		}
		w.i = winner.index
		w.endAttempt(winner.att, winner.actx, true)
		keepOrRelease(winner.out, nil, cancels[winner.slot])
		return winner.out, true, nil
	}
	if ctx.Err() != nil {
		return zero, true, w.failure()
	}
	// Both failed: the first one's failure cools its candidate, or stops
	// the walk; the hedge's decides where the walk goes, as without a
	// hedge.
	first, second := failed[0], failed[1]
	if first.slot != 0 {
		first, second = second, first
	}
	if d := w.c.policy(first.err); d == DecisionStop || d == decisionSameCandidate {
		return zero, true, w.c.logFailure(ctx, w.failure())
	}
	w.c.coolCandidate(ctx, w.cfg, cands[i], first.err)
	w.i = i + 1
	if goOn, failure := w.afterFailure(ctx, second.err, second.att.StatusCode); !goOn {
		return zero, true, failure
	}
	return zero, false, nil
}

// keepOrRelease ends what an attempt holds: a success that is not kept
// (err set: it lost) is closed; the attempt's own context is released,
// except under a stream that lives on, which releases it when it closes.
func keepOrRelease[T any](out T, err error, cancel context.CancelCauseFunc) {
	if err != nil {
		if c, ok := any(out).(interface{ close() }); ok && !isNil(out) {
			c.close()
		}
		cancel(err)
		return
	}
	if a, ok := any(out).(interface{ adopt(func()) }); ok && !isNil(out) {
		a.adopt(func() { cancel(nil) })
		return
	}
	cancel(nil)
}

// hedgeClock is the hedge delay of a first attempt, which its HTTP tries
// run: restarted by each try, stopped while the retry loop waits.
type hedgeClock struct {
	timer *time.Timer
	d     time.Duration
}

func (h *hedgeClock) try()     { h.timer.Reset(h.d) }
func (h *hedgeClock) backoff() { h.timer.Stop() }

type hedgeClockKey struct{}

// hedgeClockContext carries a hedgeClock to the attempt's HTTP tries
// (see Client.send). It is per-attempt state, like attemptState.
type hedgeClockContext struct {
	context.Context
	clock hedgeClock
}

func (c *hedgeClockContext) Value(key any) any {
	if key == (hedgeClockKey{}) {
		return &c.clock
	}
	return c.Context.Value(key)
}

// isNil reports a nil pointer in an interface.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	if p, ok := v.(*streamAttempt); ok {
		return p == nil
	}
	return false
}
