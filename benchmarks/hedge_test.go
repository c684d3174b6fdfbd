package benchmarks

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// BenchmarkHedgedFirstToken is the tail a hedge cuts: a primary whose time
// to first token is 100 ms for 90 % of requests and 5 s for 10 % (cold
// starts, queues), and a fallback on another provider that starts in
// 150 ms. Each iteration is a campaign of 200 streams, 20 at a time,
// without a hedge, with WithHedge(300ms), and to the fallback alone (its
// own p99, for the goal: the hedged p99 at most the delay plus it); it
// reports the p50 and p99 time to the first content and the extra requests
// per call (the hedges sent).
func BenchmarkHedgedFirstToken(b *testing.B) {
	for _, tc := range []struct {
		name     string
		hedge    time.Duration
		provider string
	}{{"no-hedge", 0, "primary"}, {"hedge-300ms", 300 * time.Millisecond, "primary"}, {"fallback-alone", 0, "fallback"}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				p50, p99, extra := hedgeCampaign(b, tc.hedge, tc.provider)
				b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
				b.ReportMetric(extra, "extra-req/call")
			}
		})
	}
}

func hedgeCampaign(b *testing.B, hedge time.Duration, provider string) (p50, p99 time.Duration, extra float64) {
	const calls, workers = 200, 20
	r := inferencetest.NewRouter()
	defer r.Close()
	text := inferencetest.StreamScript{Text: "one two three"}.Answer()
	r.On("org/m:primary", inferencetest.Latency(text,
		inferencetest.LatencyStep{Share: 0.9, Delay: 100 * time.Millisecond}, inferencetest.LatencyStep{Share: 0.1, Delay: 5 * time.Second}))
	r.On("org/m:fallback", inferencetest.Latency(text, inferencetest.LatencyStep{Share: 1, Delay: 150 * time.Millisecond}))
	c, err := r.Client(inference.WithHedge(hedge), inference.WithCooldown(0))
	if err != nil {
		b.Fatal(err)
	}
	req := inference.ChatRequest{Model: "org/m", Provider: provider, Messages: []inference.Message{inference.UserMessage("hi")},
		Fallbacks: []inference.Candidate{{Model: "org/m", Provider: "fallback"}}}
	var mu sync.Mutex
	var ttfc []time.Duration
	work := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range work {
				start := time.Now()
				s, err := c.ChatStream(context.Background(), req)
				if err != nil {
					b.Error(err)
					continue
				}
				d := time.Since(start)
				for s.Next() {
				}
				s.Close()
				mu.Lock()
				ttfc = append(ttfc, d)
				mu.Unlock()
			}
		})
	}
	for range calls {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	slices.Sort(ttfc)
	return ttfc[len(ttfc)/2], ttfc[len(ttfc)*99/100], float64(len(r.Requests())-calls) / calls
}
