// Package benchmarks compares this client with plain net/http and
// encoding/json (the floor), openai-go and go-openai, on one loopback fake
// router that serves the same bytes to all. It is a separate module so that
// the library's go.mod stays lean. Run: go test -bench . -count 6 -benchmem,
// or scripts/interleaved.sh for medians on a shared machine (see README).
package benchmarks

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"
)

// Models the fake router knows.
const (
	modelOK    = "meta-llama/Llama-3.3-70B-Instruct"
	modelGated = "ardent-figment/gated-model"
	token      = "hf_BenchmarkTokenXXXXXXXXXXXXXXXXXXXXXXXX"
)

// answer is a chat completion of about 1 KiB.
var answer = []byte(fmt.Sprintf(`{"id":"chatcmpl-bench","object":"chat.completion","created":1765840584,"model":%q,`+
	`"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],`+
	`"usage":{"prompt_tokens":24,"completion_tokens":180,"total_tokens":204}}`,
	modelOK, strings.Repeat("Open models let anyone inspect, adapt and run them. ", 17)))

// gated is the Hub's 403 for a gated model.
var gated = []byte(`{"error":"Access to model ardent-figment/gated-model is restricted and you are not in the authorized list. Visit https://huggingface-proxy-6ci.pages.dev/ardent-figment/gated-model to ask for access."}`)

// streamChunks is how many chunks the stream workload sends.
const streamChunks = 500

// stream is a 500-chunk SSE answer.
var stream = func() []byte {
	var b bytes.Buffer
	for i := 0; i < streamChunks; i++ {
		fmt.Fprintf(&b, "data: {\"id\":\"s\",\"object\":\"chat.completion.chunk\",\"created\":1765840584,\"model\":%q,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"token \"},\"finish_reason\":null}]}\n\n", modelOK)
	}
	b.WriteString(`data: {"id":"s","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\ndata: [DONE]\n\n")
	return b.Bytes()
}()

// newRouter starts the fake router: a served model, a gated one, and a
// stream for requests that ask for one.
func newRouter() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h := w.Header()
		switch {
		case bytes.Contains(body, []byte(modelGated)):
			h.Set("Content-Type", "application/json")
			h.Set("X-Error-Code", "GatedRepo")
			h.Set("X-Request-Id", "ViT1Bf7O_026LGSQuVqfa")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write(gated)
		case bytes.Contains(body, []byte(`"stream":true`)):
			h.Set("Content-Type", "text/event-stream")
			h.Set("X-Inference-Provider", "together")
			_, _ = w.Write(stream)
		default:
			h.Set("Content-Type", "application/json")
			h.Set("X-Inference-Provider", "together")
			h.Set("Content-Length", fmt.Sprint(len(answer)))
			_, _ = w.Write(answer)
		}
	}))
}

// pooledTransport is the transport every client gets: pooled for fan-out to
// one host, as this library's default is.
func pooledTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 128
	t.IdleConnTimeout = 90 * time.Second
	return t
}
