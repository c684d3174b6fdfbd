package inference_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// Fault injection: each fault must end in an answer or a typed error, in
// bounded time, with no goroutine left behind. RELIABILITY.md lists them.

const completionJSON = `{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`

// rawServer hands each accepted connection, after its request was read, to
// fn, for faults an http.Handler cannot make.
func rawServer(t *testing.T, fn func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	done := make(chan struct{})
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				select {
				case <-done:
				default:
					fn(conn)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		close(done)
		ln.Close()
		wg.Wait()
	})
	return "http://" + ln.Addr().String()
}

func verifyNoLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

type faultCase struct {
	name    string
	url     func(t *testing.T) string
	opts    []inference.Option
	stream  bool
	want    error // nil: an answer
	maxTime time.Duration
	// maxAlloc, when set, bounds what the call allocates.
	maxAlloc uint64
	check    func(t *testing.T, text string)
}

func TestFaults(t *testing.T) {
	big := func(t *testing.T, status int, size int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":"`)
			chunk := bytes.Repeat([]byte("x"), 256<<10)
			for n := 0; n < size; n += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
			_, _ = io.WriteString(w, `"}}]}`)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	handler := func(h http.HandlerFunc) func(t *testing.T) string {
		return func(t *testing.T) string {
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			return srv.URL
		}
	}
	raw := func(fn func(net.Conn)) func(t *testing.T) string {
		return func(t *testing.T) string { return rawServer(t, fn) }
	}
	// gzipped compresses once, so that the server costs nothing per call and
	// what a call allocates is the client's.
	gzipped := func(payload []byte) http.HandlerFunc {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(payload)
		_ = zw.Close()
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(buf.Bytes())
		}
	}
	bomb := append(append([]byte(`{"choices":[{"message":{"role":"assistant","content":"`), bytes.Repeat([]byte("0"), 64<<20)...), `"}}]}`...)
	noRetry := []inference.Option{inference.WithRetry(inference.RetryPolicy{})}

	tests := []faultCase{
		{name: "connection refused", url: func(t *testing.T) string {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			addr := ln.Addr().String()
			ln.Close()
			return "http://" + addr
		}, want: inference.ErrProvider, maxTime: 3 * time.Second},
		{name: "reset before headers", url: raw(func(c net.Conn) {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // RST, not FIN
			}
		}), want: inference.ErrProvider, maxTime: 3 * time.Second},
		{name: "reset mid-body", url: raw(func(c net.Conn) {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"choices\":[{\"mess")
		}), want: inference.ErrProvider, maxTime: 3 * time.Second},
		{name: "reset mid-stream", stream: true, url: raw(func(c net.Conn) {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
			ev := "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"half\"}}]}\n\n"
			_, _ = fmt.Fprintf(c, "%x\r\n%s\r\n", len(ev), ev)
		}), want: inference.ErrStream, maxTime: 3 * time.Second, check: func(t *testing.T, text string) { assert.Equal(t, "half", text) }},
		{name: "headers never come", url: handler(func(w http.ResponseWriter, r *http.Request) {
			// Reading the body lets the server notice when the client leaves.
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		}),
			opts: []inference.Option{inference.WithAttemptTimeout(100 * time.Millisecond)}, want: inference.ErrProvider, maxTime: time.Second},
		{name: "body trickles", url: raw(func(c net.Conn) {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
			for i := 0; i < 200; i++ {
				if _, err := io.WriteString(c, " "); err != nil {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}), opts: []inference.Option{inference.WithAttemptTimeout(150 * time.Millisecond)}, want: inference.ErrProvider, maxTime: 2 * time.Second},
		{name: "truncated JSON", url: handler(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, completionJSON[:30])
		}), want: inference.ErrProvider, maxTime: time.Second},
		{name: "invalid JSON", url: handler(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"choices": [nope]}`)
		}), want: inference.ErrProvider, maxTime: time.Second},
		{name: "invalid UTF-8 in content", url: handler(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"bad \xff\xfe bytes\"},\"finish_reason\":\"stop\"}]}")
		}), maxTime: time.Second, check: func(t *testing.T, text string) {
			assert.True(t, utf8.ValidString(text))
			assert.Equal(t, "bad \uFFFD\uFFFD bytes", text)
		}},
		{name: "100 MiB error body", url: func(t *testing.T) string { return big(t, 500, 100<<20) }, opts: noRetry, want: inference.ErrProvider, maxTime: 3 * time.Second, maxAlloc: 8 << 20},
		{name: "100 MiB success body", url: func(t *testing.T) string { return big(t, 200, 100<<20) }, want: inference.ErrProvider, maxTime: 10 * time.Second, maxAlloc: 80 << 20,
			check: func(t *testing.T, text string) { assert.Contains(t, text, "larger than 32 MiB") }},
		{name: "gzip-encoded answer", url: handler(gzipped([]byte(completionJSON))), maxTime: time.Second,
			check: func(t *testing.T, text string) { assert.Equal(t, "ok", text) }},
		{name: "gzip bomb (64 MiB inflated)", url: handler(gzipped(bomb)), want: inference.ErrProvider, maxTime: 10 * time.Second, maxAlloc: 80 << 20},
		{name: "HTML with status 200", url: handler(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, "<html>captive portal</html>")
		}), want: inference.ErrProvider, maxTime: time.Second},
		{name: "JSON answer to a stream request", stream: true, url: handler(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, completionJSON)
		}), want: inference.ErrProvider, maxTime: time.Second},
		{name: "redirect loop", url: handler(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, r.URL.Path, http.StatusTemporaryRedirect)
		}), want: inference.ErrProvider, maxTime: 2 * time.Second, check: func(t *testing.T, text string) { assert.Contains(t, text, "redirects") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verifyNoLeaks(t)
			url := tt.url(t)
			opts := append([]inference.Option{inference.WithBaseURL(url), inference.WithToken(inferencetest.Token),
				inference.WithRetry(inference.RetryPolicy{MaxRetries: 1, MinWait: time.Millisecond, MaxWait: time.Millisecond})}, tt.opts...)
			c, err := inference.NewClient(opts...)
			require.NoError(t, err)
			t.Cleanup(c.CloseIdleConnections)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			text, err := call(t.Context(), c, tt.stream)
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			assert.Less(t, elapsed, tt.maxTime)
			if tt.maxAlloc > 0 {
				assert.Less(t, after.TotalAlloc-before.TotalAlloc, tt.maxAlloc, "allocation is bounded by the caps, not the body")
			}
			if tt.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tt.want)
				assert.Less(t, len(err.Error()), 16<<10)
				if !tt.stream {
					text = err.Error()
				}
			}
			if tt.check != nil {
				tt.check(t, text)
			}
		})
	}
}

// call makes one chat or stream call and returns its text: for a stream
// that failed, what arrived before the failure.
func call(ctx context.Context, c *inference.Client, stream bool) (string, error) {
	req := chatReq("m/a", "")
	if !stream {
		resp, err := c.Chat(ctx, req)
		if err != nil {
			return "", err
		}
		return resp.Text(), nil
	}
	s, err := c.ChatStream(ctx, req)
	if err != nil {
		return "", err
	}
	defer s.Close()
	var b strings.Builder
	for s.Next() {
		b.WriteString(s.Current().Text())
	}
	return b.String(), s.Err()
}

func TestHTTP2(t *testing.T) {
	verifyNoLeaks(t)
	var proto atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		if strings.Contains(r.Header.Get("Accept"), "event-stream") {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"h2 \"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"stream\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
			return
		}
		_, _ = io.WriteString(w, completionJSON)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	c, err := inference.NewClient(inference.WithBaseURL(srv.URL), inference.WithToken(inferencetest.Token), inference.WithHTTPClient(srv.Client()))
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	text, err := call(t.Context(), c, false)
	require.NoError(t, err)
	assert.Equal(t, "ok", text)
	assert.Equal(t, "HTTP/2.0", proto.Load())
	text, err = call(t.Context(), c, true)
	require.NoError(t, err)
	assert.Equal(t, "h2 stream", text)
}

func TestRedirectToOtherHostDropsTheToken(t *testing.T) {
	verifyNoLeaks(t)
	var sawAuth atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawAuth.Store(r.Header.Get("Authorization"))
		_, _ = io.WriteString(w, completionJSON)
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/v1/chat/completions", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c, err := inference.NewClient(inference.WithBaseURL(srv.URL), inference.WithToken(inferencetest.Token))
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	_, err = call(t.Context(), c, false)
	require.NoError(t, err)
	assert.Equal(t, "", sawAuth.Load())
}

// A redirect to another host carries none of the call's own headers: not
// the organization billed (X-HF-Bill-To), not the headers the caller gave
// (WithHeader), not the router's URL (Referer): a host the router's answer
// names, such as a provider's own API host, is not the router. Go drops
// only Authorization and cookies there. A redirect on the router keeps
// them.
func TestRedirectToOtherHostDropsTheCallsHeaders(t *testing.T) {
	verifyNoLeaks(t)
	var mu sync.Mutex
	var seen []http.Header
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		_, _ = io.WriteString(w, completionJSON)
	}))
	defer other.Close()
	check := func(t *testing.T) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		require.NotEmpty(t, seen, "the redirect was followed")
		for _, h := range seen {
			assert.Empty(t, h.Get("Authorization"))
			assert.Empty(t, h.Get("X-HF-Bill-To"), "the organization billed")
			assert.Empty(t, h.Get("X-Secret-Of-Caller"), "the call's headers")
			assert.Empty(t, h.Get("Referer"), "the router's URL")
			assert.Equal(t, "hfkit-inference-go/0.1", h.Get("User-Agent"))
		}
		seen = nil
	}
	opts := []inference.Option{inference.WithBillTo("acme-labs"), inference.WithHeader("X-Secret-Of-Caller", "s3")}

	t.Run("chat", func(t *testing.T) {
		var onRouter atomic.Value
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/chat/completions" {
				http.Redirect(w, r, "/again/v1/chat/completions", http.StatusTemporaryRedirect)
				return
			}
			onRouter.Store(r.Header.Get("X-HF-Bill-To") + " " + r.Header.Get("X-Secret-Of-Caller"))
			http.Redirect(w, r, other.URL+"/v1/chat/completions", http.StatusTemporaryRedirect)
		}))
		defer srv.Close()
		c, err := inference.NewClient(inference.WithBaseURL(srv.URL), inference.WithToken(inferencetest.Token))
		require.NoError(t, err)
		defer c.CloseIdleConnections()
		_, err = c.Chat(t.Context(), chatReq("org/m", ""), opts...)
		require.NoError(t, err)
		assert.Equal(t, "acme-labs s3", onRouter.Load(), "a redirect on the router keeps them")
		check(t)
	})

	t.Run("a job's poll", func(t *testing.T) {
		r := mediaRouter(t)
		r.On(imageModel+":replicate", inferencetest.Job{Queued: 2}.Image(testPNG(t, 8)))
		// The router sends the poll to the provider's own host.
		toProvider := func(next http.RoundTripper) http.RoundTripper {
			return inference.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
				if req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, "/replicate/v1/predictions/") {
					return &http.Response{StatusCode: http.StatusTemporaryRedirect, Body: http.NoBody, Request: req,
						Header: http.Header{"Location": {other.URL + "/v1/predictions/x"}}}, nil
				}
				return next.RoundTrip(req)
			})
		}
		c, err := r.Client(inference.WithMiddleware(toProvider), inference.WithRetry(inference.RetryPolicy{}))
		require.NoError(t, err)
		_, err = c.TextToImage(t.Context(), imageReq("replicate"), opts...)
		require.Error(t, err, "the provider's host does not answer a prediction")
		check(t)
	})
}

// failureMix answers 30% of requests with a failure picked at random among
// every kind the walk handles, and serves the rest.
func failureMix() inferencetest.Answer {
	failures := []inferencetest.Answer{
		inferencetest.Gated(), inferencetest.ProviderError(502), inferencetest.ProviderError(503),
		inferencetest.RateLimited(0), inferencetest.RateLimited(time.Minute), inferencetest.Validation(),
		inferencetest.GatewayTimeout(), inferencetest.NotSupported(), inferencetest.ProviderBadRequest(),
		inferencetest.Drop(), inferencetest.Delay(5*time.Millisecond, inferencetest.ProviderError(500)),
	}
	ok := inferencetest.Reply("ok")
	return func(w http.ResponseWriter, req *inferencetest.Request) {
		if rand.IntN(100) < 30 {
			failures[rand.IntN(len(failures))](w, req)
			return
		}
		ok(w, req)
	}
}

// TestLoad1000 sends 1,000 concurrent calls through one client to a router
// that fails 30% of requests at random: every call must end, and the counts
// must add up.
func TestLoad1000(t *testing.T) {
	verifyNoLeaks(t)
	r := inferencetest.NewRouter()
	defer r.Close()
	r.Otherwise(failureMix())
	c, err := r.Client(
		inference.WithRetry(inference.RetryPolicy{MaxRetries: 1, MinWait: time.Millisecond, MaxWait: 5 * time.Millisecond}),
		inference.WithCooldown(20*time.Millisecond),
		inference.WithFallback(inference.Candidate{Model: "m/b", Provider: "together"}, inference.Candidate{Model: "m/c", Provider: "groq"}))
	require.NoError(t, err)
	defer c.CloseIdleConnections()

	const calls = 1000
	var mu sync.Mutex
	outcomes := map[string]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < calls; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
			key := "success"
			if err != nil {
				key = lastKind(err)
			} else if resp.Text() != "ok" {
				key = "wrong answer"
			}
			mu.Lock()
			outcomes[key]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	total := 0
	keys := make([]string, 0, len(outcomes))
	for k, n := range outcomes {
		total += n
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("outcome %-45s %d", k, outcomes[k])
	}
	t.Logf("%d calls, %d HTTP requests, %s", calls, len(r.Requests()), elapsed.Round(time.Millisecond))
	assert.Equal(t, calls, total)
	assert.Zero(t, outcomes["wrong answer"])
	assert.Zero(t, outcomes["untyped"], "every failure has a kind")
	assert.Greater(t, outcomes["success"], calls/2)
}

// lastKind names the kind of the attempt that ended a failed call.
func lastKind(err error) string {
	var fe *inference.FallbackError
	if !errors.As(err, &fe) || len(fe.Attempts) == 0 {
		return "untyped"
	}
	k := fe.Attempts[len(fe.Attempts)-1].Kind()
	if k == nil {
		return "untyped"
	}
	return k.Error()
}

// TestSoak100k makes 100,000 sequential calls and checks that the heap
// does not grow. It takes about a minute: run it with INFERENCE_SOAK=1.
func TestSoak100k(t *testing.T) {
	if os.Getenv("INFERENCE_SOAK") == "" {
		t.Skip("set INFERENCE_SOAK=1 to run the 100,000-call soak")
	}
	r := inferencetest.NewRouter()
	defer r.Close()
	r.Otherwise(inferencetest.Reply("ok"), inferencetest.Reply("ok"), inferencetest.ProviderError(503), inferencetest.Reply("ok"))
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{MaxRetries: 1, MinWait: time.Microsecond, MaxWait: time.Microsecond}))
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	var base uint64
	start := time.Now()
	for i := 1; i <= 100_000; i++ {
		if _, err := c.Chat(t.Context(), chatReq("m/a", "")); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if i%1000 == 0 {
			r.Reset() // the router's own record of requests would grow
		}
		if i == 10_000 {
			base = heap()
		}
	}
	end := heap()
	t.Logf("100000 calls in %s; heap after GC at 10k: %d KiB, at 100k: %d KiB", time.Since(start).Round(time.Millisecond), base>>10, end>>10)
	assert.Less(t, int64(end)-int64(base), int64(2<<20), "heap growth under 2 MiB")
}
