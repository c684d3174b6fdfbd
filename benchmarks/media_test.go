package benchmarks

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hfkit/inference"
)

// The memory of images and audio: a 10 MiB file answered three ways (the
// file itself, base64 inside JSON, a URL on a CDN), and a 10 MiB recording
// sent with a retry. The fake router and CDN share the process, so their
// answers are built once, before anything is measured, and written from
// those bytes.

const mediaSize = 10 << 20

// mediaFile is 10 MiB that sniff as a PNG: a PNG's signature, then noise
// (which base64 and gzip cannot shrink).
func mediaFile() []byte {
	rng := rand.New(rand.NewPCG(10, 20))
	data := make([]byte, mediaSize)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	copy(data, "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	return data
}

// newMediaRouter serves the model bench/image through hf-inference (the
// file, with or without a Content-Length), together (base64 in JSON) and
// fal-ai (a URL on the CDN), and bench/asr through hf-inference (the raw
// audio, whose first try of each call fails with a 503) and fal-ai (a
// data URL).
func newMediaRouter(file []byte) (router, cdn *httptest.Server) {
	cdn = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Content-Length", strconv.Itoa(len(file)))
		_, _ = w.Write(file)
	}))
	b64JSON := []byte(`{"data":[{"b64_json":"` + base64.StdEncoding.EncodeToString(file) + `"}]}`)
	falJSON := []byte(`{"images":[{"url":"` + cdn.URL + `/files/out-0.png","content_type":"image/png"}],"seed":42,"has_nsfw_concepts":[false]}`)
	var asrTries atomic.Int64
	router = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Requests are read into nothing: the server's own buffers
		// would count as the client's.
		_, _ = io.Copy(io.Discard, r.Body)
		p := r.URL.Path
		switch {
		case strings.HasPrefix(p, "/api/models/"):
			model := strings.TrimPrefix(p, "/api/models/")
			task := "text-to-image"
			if model == "bench/asr" {
				task = "automatic-speech-recognition"
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":%q,"inferenceProviderMapping":{"hf-inference":{"status":"live","providerId":%q,"task":%q},`+
				`"together":{"status":"live","providerId":"bench/t","task":%q},"fal-ai":{"status":"live","providerId":"bench/f","task":%q}}}`,
				model, model, task, task, task)
		case p == "/hf-inference/models/bench/image":
			w.Header().Set("Content-Type", "image/png")
			if r.URL.Query().Get("chunked") == "" {
				w.Header().Set("Content-Length", strconv.Itoa(len(file)))
			}
			_, _ = w.Write(file)
		case p == "/together/v1/images/generations":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(b64JSON)))
			_, _ = w.Write(b64JSON)
		case p == "/fal-ai/bench/f" && r.URL.Query().Get("_subdomain") == "queue":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(falJSON)
		case p == "/hf-inference/models/bench/asr" && asrTries.Add(1)%2 == 1:
			http.Error(w, `{"error":"Service Unavailable"}`, http.StatusServiceUnavailable)
		case p == "/hf-inference/models/bench/asr", p == "/fal-ai/bench/f":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"text":"ok"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	return router, cdn
}

// heapObjects is the heap held by objects, live or not yet swept.
func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// peakHeap is how far call raises the heap above where it stood, at its
// highest: the median of five runs, each sampled every 20 µs while the
// collector runs at almost every allocation (GOGC=1), so that what is
// measured is what the call holds at once, not garbage waiting for a
// collection.
func peakHeap(call func()) uint64 {
	old := debug.SetGCPercent(1)
	defer debug.SetGCPercent(old)
	var peaks []uint64
	for range 5 {
		runtime.GC()
		base := heapObjects()
		var top atomic.Uint64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				if v := heapObjects(); v > top.Load() {
					top.Store(v)
				}
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Microsecond):
				}
			}
		})
		call()
		close(stop)
		wg.Wait()
		peaks = append(peaks, top.Load()-min(base, top.Load()))
	}
	slices.Sort(peaks)
	return peaks[len(peaks)/2]
}

// BenchmarkImage10MiB is one text-to-image call whose answer is a 10 MiB
// image: the file itself from hf-inference (with a Content-Length, and
// chunked without one), base64 in Together's JSON, a URL on a CDN from
// fal-ai. Besides time and allocations it reports peak-x, the call's
// peak heap over the file's size (peakHeap), and held-x, what the
// returned image keeps alive after a collection, over the file's size.
func BenchmarkImage10MiB(b *testing.B) {
	file := mediaFile()
	router, cdn := newMediaRouter(file)
	defer router.Close()
	defer cdn.Close()
	c, err := inference.NewClient(inference.WithBaseURL(router.URL), inference.WithHubURL(router.URL), inference.WithToken(token))
	if err != nil {
		b.Fatal(err)
	}
	chunked := func(next http.RoundTripper) http.RoundTripper {
		return inference.RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
			r2 := r.Clone(r.Context())
			r2.URL.RawQuery = "chunked=1"
			return next.RoundTrip(r2)
		})
	}
	cChunked, err := inference.NewClient(inference.WithBaseURL(router.URL), inference.WithHubURL(router.URL), inference.WithToken(token), inference.WithMiddleware(chunked))
	if err != nil {
		b.Fatal(err)
	}
	for _, way := range []struct {
		name, provider string
		c              *inference.Client
	}{{"direct", "hf-inference", c}, {"direct-chunked", "hf-inference", cChunked}, {"base64-json", "together", c}, {"cdn", "fal-ai", c}} {
		b.Run(way.name, func(b *testing.B) {
			ctx := context.Background()
			var keep any
			call := func() {
				resp, err := way.c.TextToImage(ctx, inference.ImageRequest{Model: "bench/image", Provider: way.provider, Prompt: "noise"})
				if err != nil || len(resp.Image) != len(file) {
					b.Fatalf("%v", err)
				}
				keep = resp
			}
			call() // warm: connections, the Hub's mapping
			b.ReportAllocs()
			b.SetBytes(int64(len(file)))
			for b.Loop() {
				call()
			}
			b.StopTimer()
			keep = nil
			b.ReportMetric(float64(peakHeap(call))/float64(len(file)), "peak-x")
			keep = nil
			b.ReportMetric(float64(retained(call, &keep))/float64(len(file)), "held-x")
		})
	}
}

// BenchmarkTranscribe10MiB sends a 10 MiB recording: to hf-inference as it
// is, with a retry (the first try of each call fails with a 503), and to
// fal-ai as a data URL. B/op says what one call allocates: the raw audio
// is sent twice without a copy, the data URL is built once per attempt.
func BenchmarkTranscribe10MiB(b *testing.B) {
	audio := append([]byte("RIFF\x00\x00\x00\x00WAVEfmt "), mediaFile()[16:]...)
	router, cdn := newMediaRouter(nil)
	defer router.Close()
	defer cdn.Close()
	c, err := inference.NewClient(inference.WithBaseURL(router.URL), inference.WithHubURL(router.URL), inference.WithToken(token),
		inference.WithRetry(inference.RetryPolicy{MaxRetries: 1, MinWait: time.Millisecond, MaxWait: time.Millisecond}))
	if err != nil {
		b.Fatal(err)
	}
	for _, provider := range []string{"hf-inference", "fal-ai"} {
		b.Run(provider, func(b *testing.B) {
			ctx := context.Background()
			call := func() {
				resp, err := c.Transcribe(ctx, inference.TranscribeRequest{Model: "bench/asr", Provider: provider, Audio: audio})
				if err != nil || resp.Text != "ok" {
					b.Fatalf("%v", err)
				}
			}
			call()
			b.ReportAllocs()
			b.SetBytes(int64(len(audio)))
			for b.Loop() {
				call()
			}
			b.StopTimer()
			b.ReportMetric(float64(peakHeap(call))/float64(len(audio)), "peak-x")
		})
	}
}
