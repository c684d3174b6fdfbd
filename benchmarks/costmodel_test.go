package benchmarks

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/hfkit/inference"
)

// The cost model: how the client's time and memory grow with the number of
// candidates walked, the length of a stream and the number of concurrent
// calls, and what an idle client holds.

// BenchmarkCostCandidates walks n-1 gated candidates before one serves.
func BenchmarkCostCandidates(b *testing.B) {
	srv := newRouter()
	defer srv.Close()
	for _, n := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("candidates=%d", n), func(b *testing.B) {
			var fallbacks []inference.Candidate
			for i := 1; i < n-1; i++ {
				fallbacks = append(fallbacks, inference.Candidate{Model: modelGated, Provider: fmt.Sprintf("p%d", i)})
			}
			fallbacks = append(fallbacks, inference.Candidate{Model: modelOK})
			primary := modelGated
			if n == 1 {
				primary, fallbacks = modelOK, nil
			}
			c := hfkit(srv.URL, inference.WithCooldown(0), inference.WithFallback(fallbacks...))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.chat(context.Background(), primary); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCostStreamLength streams 50, 500 and 5,000 chunks.
func BenchmarkCostStreamLength(b *testing.B) {
	for _, n := range []int{50, 500, 5000} {
		var body bytes.Buffer
		for i := 0; i < n; i++ {
			fmt.Fprintf(&body, "data: {\"id\":\"s\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"token \"},\"finish_reason\":null}]}\n\n")
		}
		body.WriteString("data: [DONE]\n\n")
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = w.Write(body.Bytes())
		}))
		b.Run(fmt.Sprintf("chunks=%d", n), func(b *testing.B) {
			c := hfkit(srv.URL)
			b.ReportAllocs()
			for b.Loop() {
				if got, err := c.stream(context.Background()); err != nil || got != n*len("token ") {
					b.Fatal(got, err)
				}
			}
		})
		srv.Close()
	}
}

// BenchmarkCostConcurrency runs chat from 1, 8 and 64 goroutines per core.
func BenchmarkCostConcurrency(b *testing.B) {
	srv := newRouter()
	defer srv.Close()
	c := hfkit(srv.URL)
	for _, p := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("goroutines-per-core=%d", p), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(p)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.chat(context.Background(), modelOK); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// TestIdleClientMemory reports what an idle client holds on the heap.
func TestIdleClientMemory(t *testing.T) {
	const n = 10000
	clients := make([]*inference.Client, 0, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		c, err := inference.NewClient(inference.WithToken(token))
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	runtime.KeepAlive(clients)
	t.Logf("an idle client holds about %d bytes of heap (%d clients)", per, n)
	if per <= 0 || per > 64<<10 {
		t.Errorf("an idle client holds %d bytes", per)
	}
}
