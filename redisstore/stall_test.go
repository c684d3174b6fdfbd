package redisstore

import (
	"sync"
	"testing"
	"time"
)

// stallWatch samples how late the Go scheduler runs a goroutine that asks
// to wake every millisecond: the stalls a loaded machine imposes on the
// whole process (another program's busy loops, the race detector, a
// collection), which no timer of the store can beat. A timing assertion
// subtracts the stalls that overlap what it measures, and logs them: the
// store is held to its bound for the time the process could run.
type stallWatch struct {
	mu     sync.Mutex
	stalls []interval
	stop   chan struct{}
	done   chan struct{}
}

// stallThreshold is the lateness counted as a stall.
const stallThreshold = 2 * time.Millisecond

func watchStalls(t *testing.T) *stallWatch {
	w := &stallWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			now := time.Now()
			if now.Sub(last) > time.Millisecond+stallThreshold {
				w.mu.Lock()
				w.stalls = append(w.stalls, interval{last.Add(time.Millisecond), now})
				w.mu.Unlock()
			}
			last = now
		}
	}()
	t.Cleanup(func() {
		close(w.stop)
		<-w.done
	})
	return w
}

// during is how long the process stalled within [from, to).
func (w *stallWatch) during(from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var d time.Duration
	for _, s := range w.stalls {
		a, b := s.from, s.to
		if a.Before(from) {
			a = from
		}
		if b.After(to) {
			b = to
		}
		if b.After(a) {
			d += b.Sub(a)
		}
	}
	return d
}

// settle gives the watcher a moment to record a stall that ended just now.
func (w *stallWatch) settle() { time.Sleep(3 * time.Millisecond) }
