// Command slowstreams is the fake router of the open-streams measurement
// (TestOpenStreams), in a process of its own so that its memory is not
// counted as the client's. It serves chat streams over TLS with HTTP/2:
// the first chunk at once, then one chunk every -every, until GET /release,
// after which every stream sends its last chunk and [DONE]. It prints its
// URL, then its certificate (PEM, base64 on one line), then serves until
// its standard input closes.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"time"
)

func main() {
	every := flag.Duration("every", time.Second, "the time between chunks")
	flag.Parse()
	release := make(chan struct{})
	var once sync.Once
	chunk := func(content string) string {
		return `data: {"id":"s","object":"chat.completion.chunk","created":1765840584,"model":"m","choices":[{"index":0,"delta":{"content":"` + content + `"},"finish_reason":null}]}` + "\n\n"
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/release" {
			once.Do(func() { close(release) })
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		_, _ = io.WriteString(w, chunk("first "))
		fl.Flush()
		t := time.NewTicker(*every)
		defer t.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-t.C:
				_, _ = io.WriteString(w, chunk("more "))
				fl.Flush()
			case <-release:
				_, _ = io.WriteString(w, `data: {"id":"s","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`+"\n\ndata: [DONE]\n\n")
				return
			}
		}
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	fmt.Println(srv.URL)
	fmt.Println(base64.StdEncoding.EncodeToString(cert))
	_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
}
