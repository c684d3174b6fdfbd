package benchmarks

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hfkit/inference"
)

// The TLS benchmarks run the same contenders over TLS, as users reach the
// router: with HTTP/2 (what Go negotiates with it) and with HTTP/1.1. Every
// contender gets a transport built the same way for the protocol: pooled
// for one host, trusting the test server's certificate.

// tlsRouter is the fake router over TLS, with HTTP/2 or without.
func tlsRouter(h2 bool) *httptest.Server {
	srv := httptest.NewUnstartedServer(newRouter().Config.Handler)
	srv.EnableHTTP2 = h2
	srv.StartTLS()
	return srv
}

// tlsTransport is pooledTransport trusting srv, speaking HTTP/2 when h2
// and only HTTP/1.1 otherwise.
func tlsTransport(srv *httptest.Server, h2 bool) func() *http.Transport {
	return func() *http.Transport {
		t := pooledTransport()
		t.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
		if h2 {
			t.ForceAttemptHTTP2 = true
		} else {
			t.ForceAttemptHTTP2 = false
			t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		return t
	}
}

var protocols = []struct {
	name string
	h2   bool
}{{"h2", true}, {"h1-tls", false}}

// tlsClients are the contenders over srv.
func tlsClients(srv *httptest.Server, h2 bool) []struct {
	name string
	c    client
} {
	mk := tlsTransport(srv, h2)
	return []struct {
		name string
		c    client
	}{
		{"floor", floorWith(srv.URL, mk())},
		{"hfkit", hfkit(srv.URL, inference.WithHTTPClient(&http.Client{Transport: mk()}))},
		{"openai-go", openaiGoWith(srv.URL, mk())},
		{"go-openai", goOpenaiWith(srv.URL, mk())},
	}
}

// eachTLSContender runs body for every protocol and contender, as a
// sub-benchmark named protocol/contender.
func eachTLSContender(b *testing.B, body func(b *testing.B, c client)) {
	for _, p := range protocols {
		srv := tlsRouter(p.h2)
		for _, tc := range tlsClients(srv, p.h2) {
			b.Run(p.name+"/"+tc.name, func(b *testing.B) {
				b.ReportAllocs()
				body(b, tc.c)
			})
		}
		srv.Close()
	}
}

// BenchmarkTLSChat is one chat with a 1 KiB answer over TLS.
func BenchmarkTLSChat(b *testing.B) {
	eachTLSContender(b, func(b *testing.B, c client) {
		for b.Loop() {
			if text, err := c.chat(context.Background(), modelOK); err != nil || text != wantText {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTLSChatParallel is chat from 64 goroutines per core over TLS;
// run it with -cpu 2.
func BenchmarkTLSChatParallel(b *testing.B) {
	eachTLSContender(b, func(b *testing.B, c client) {
		b.SetParallelism(64)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if text, err := c.chat(context.Background(), modelOK); err != nil || text != wantText {
					b.Errorf("%v", err)
					return
				}
			}
		})
	})
}

// BenchmarkTLSStream500 is a 500-chunk stream, read to the end, over TLS.
func BenchmarkTLSStream500(b *testing.B) {
	eachTLSContender(b, func(b *testing.B, c client) {
		for b.Loop() {
			if n, err := c.stream(context.Background()); err != nil || n != streamChunks*len("token ") {
				b.Fatalf("%d bytes, %v", n, err)
			}
		}
	})
}

// BenchmarkTimeToFirstChunk is the time from asking for a stream to its
// first chunk of content in hand, over HTTP/2 and TLS, with everything the
// client does on the way (the walk, the token, the cooldown lookup); the
// floor sends the request and reads its first event. Closing the stream
// (which over HTTP/2 resets it and keeps the connection) is outside the
// timer.
func BenchmarkTimeToFirstChunk(b *testing.B) {
	srv := tlsRouter(true)
	defer srv.Close()
	mk := tlsTransport(srv, true)
	for _, tc := range []struct {
		name  string
		first func(ctx context.Context) (rest func() error, err error)
	}{
		{"floor", floorFirstChunk(srv.URL, mk())},
		{"hfkit", hfkitFirstChunk(srv.URL, mk())},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				rest, err := tc.first(ctx)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := rest(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
