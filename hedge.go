package inference

import (
	"sync"
	"time"
)

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

// refund gives back a hedge take allowed that was not sent (every
// candidate it could go to was probed elsewhere). Should the window have
// moved on in between, the current bucket, never below zero, gives it.
func (b *hedgeBudget) refund() {
	if b.percent == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hedges > 0 {
		b.hedges--
	}
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
