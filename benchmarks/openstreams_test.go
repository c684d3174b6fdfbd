package benchmarks

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
)

// TestOpenStreams holds many streams open at once on one client, over TLS
// and HTTP/2, against a router in another process that sends a chunk
// every second, and measures what each open stream costs the client: heap
// and goroutines, against the floor (net/http with a bufio.Reader per
// stream); then releases them and measures how long they take to end.
// It takes about a minute: HFKIT_OPEN_STREAMS=10000 go test -run
// TestOpenStreams -v (the number of streams).
func TestOpenStreams(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("HFKIT_OPEN_STREAMS"))
	if n <= 0 {
		t.Skip("set HFKIT_OPEN_STREAMS=10000 to hold that many streams open")
	}
	bin := filepath.Join(t.TempDir(), "slowstreams")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/slowstreams").CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, contender := range []string{"floor", "hfkit"} {
		res := openStreams(t, bin, contender, n)
		t.Logf("%-6s %d streams: heap %.1f KiB per open stream, %.2f goroutines per stream, %d connections, all ended %s after the release",
			contender, n, res.heapPerStream/1024, res.goroutinesPerStream, res.conns, res.ended.Round(time.Millisecond))
	}
}

type openResult struct {
	conns               int64
	heapPerStream       float64
	goroutinesPerStream float64
	ended               time.Duration
}

// opener opens one stream, reads its first chunk, and returns a function
// that reads it to its end.
type opener func(ctx context.Context) (func() error, error)

func openStreams(t *testing.T, bin, contender string, n int) openResult {
	srv := exec.Command(bin, "-every", "1s")
	stdin, err := srv.StdinPipe()
	require.NoError(t, err)
	stdout, err := srv.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	defer func() { stdin.Close(); _ = srv.Wait() }()
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 0, 64<<10), 1<<20)
	require.True(t, lines.Scan())
	url := lines.Text()
	require.True(t, lines.Scan())
	certPEM, err := base64.StdEncoding.DecodeString(lines.Text())
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(certPEM))

	tr := pooledTransport()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	tr.ForceAttemptHTTP2 = true
	// The server allows 250 streams per HTTP/2 connection; the transport
	// (HTTP2Config.StrictMaxConcurrentRequests false, the default) opens
	// another connection when all are full, rather than queueing: were the
	// fan-out serialised, the streams, open until the release, could not
	// all open and the test would not end. Without MaxConnsPerHost, ten
	// thousand streams started at once would each dial before any
	// connection has negotiated HTTP/2 (a dial storm: 15,725 connections
	// here); over HTTP/2 it bounds only the dials in flight.
	tr.MaxConnsPerHost = 100
	var conns atomic.Int64
	dialer := &net.Dialer{}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conns.Add(1)
		return dialer.DialContext(ctx, network, addr)
	}
	var open opener
	switch contender {
	case "floor":
		open = floorOpener(url, tr)
	default:
		c, err := inference.NewClient(inference.WithBaseURL(url), inference.WithToken(token),
			inference.WithRetry(inference.RetryPolicy{}), inference.WithHTTPClient(&http.Client{Transport: tr}))
		require.NoError(t, err)
		open = hfkitOpener(c)
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutinesBefore := runtime.NumGoroutine()

	var wg, opened sync.WaitGroup
	var failures sync.Map
	opened.Add(n)
	ctx := context.Background()
	for i := range n {
		wg.Go(func() {
			rest, err := open(ctx)
			opened.Done()
			if err != nil {
				failures.Store(i, err)
				return
			}
			if err := rest(); err != nil {
				failures.Store(i, err)
			}
		})
	}
	opened.Wait()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	goroutinesOpen := runtime.NumGoroutine()

	release := time.Now()
	resp, err := (&http.Client{Transport: tr}).Get(url + "/release")
	require.NoError(t, err)
	resp.Body.Close()
	wg.Wait()
	ended := time.Since(release)
	failures.Range(func(k, v any) bool { t.Errorf("stream %v: %v", k, v); return false })
	tr.CloseIdleConnections()
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= goroutinesBefore+2 }, 10*time.Second, 50*time.Millisecond,
		"every goroutine of the streams ends")
	return openResult{
		conns:               conns.Load(),
		heapPerStream:       float64(after.HeapAlloc-before.HeapAlloc) / float64(n),
		goroutinesPerStream: float64(goroutinesOpen-goroutinesBefore) / float64(n),
		ended:               ended,
	}
}

func floorOpener(url string, tr *http.Transport) opener {
	hc := &http.Client{Transport: tr}
	return func(ctx context.Context) (func() error, error) {
		body, _ := json.Marshal(map[string]any{"model": modelOK, "messages": []map[string]string{{"role": "user", "content": "hi"}}, "stream": true})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		br := bufio.NewReader(resp.Body)
		if _, err := br.ReadSlice('\n'); err != nil { // the first event's data line
			resp.Body.Close()
			return nil, err
		}
		return func() error {
			defer resp.Body.Close()
			for {
				line, err := br.ReadSlice('\n')
				if err == io.EOF {
					return fmt.Errorf("no [DONE]")
				}
				if err != nil {
					return err
				}
				if bytes.HasPrefix(line, []byte("data: [DONE]")) {
					return nil
				}
			}
		}, nil
	}
}

func hfkitOpener(c *inference.Client) opener {
	req := inference.ChatRequest{Model: modelOK, Messages: []inference.Message{inference.UserMessage("hi")}}
	return func(ctx context.Context) (func() error, error) {
		s, err := c.ChatStream(ctx, req)
		if err != nil {
			return nil, err
		}
		if !s.Next() {
			s.Close()
			return nil, fmt.Errorf("no first chunk: %v", s.Err())
		}
		return func() error {
			defer s.Close()
			for s.Next() {
			}
			return s.Err()
		}, nil
	}
}
