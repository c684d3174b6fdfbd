package inferencetest

import (
	"math"
	"net/http"
	"sync"
	"time"
)

// LatencyStep is one part of a scripted latency distribution: Share of the
// requests (0 to 1) wait Delay before the answer starts.
type LatencyStep struct {
	Share float64
	Delay time.Duration
}

// Latency answers with a after a delay drawn from steps, such as 90 % at
// 100 ms and 10 % at 5 s, as a provider whose time to first token has a
// long tail does. The draw is deterministic, spread evenly over the
// requests (a golden-ratio sequence), so a test or a benchmark sees the
// same shares every run: of any 100 consecutive requests, about Share×100
// get each Delay. Steps whose shares sum to less than 1 leave the rest
// without delay. The delay ends early when the client goes away.
func Latency(a Answer, steps ...LatencyStep) Answer {
	var mu sync.Mutex
	n := 0
	return func(w http.ResponseWriter, req *Request) {
		mu.Lock()
		n++
		x := math.Mod(float64(n)*0.6180339887498949, 1)
		mu.Unlock()
		var delay time.Duration
		for _, s := range steps {
			if x < s.Share {
				delay = s.Delay
				break
			}
			x -= s.Share
		}
		if !pause(req, delay) {
			return
		}
		a(w, req)
	}
}
