package inference

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// testToken is a well-formed token used by the tests; it must never appear
// in any output.
const testToken = "hf_TestTokenAbcdefghijklmnopqrstuvwxyz012"

// fixture is a recorded HTTP answer from testdata/fixtures.
type fixture struct {
	status int
	header http.Header
	body   []byte
}

func loadFixture(t testing.TB, name string) fixture {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "fixtures", name))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return fixture{status: resp.StatusCode, header: resp.Header, body: bytes.TrimRight(body, "\n")}
}

func (f fixture) serve(w http.ResponseWriter) {
	for k, vs := range f.header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(f.status)
	_, _ = w.Write(f.body)
}

// recorded is one request the test router received.
type recorded struct {
	Path          string
	Authorization string
	Body          []byte
	Header        http.Header
}

// router is a scripted fake router: each request gets the next handler in
// the queue, the last one repeating.
type router struct {
	mu       sync.Mutex
	handlers []http.HandlerFunc
	requests []recorded
	srv      *httptest.Server
}

func newRouter(t testing.TB, handlers ...http.HandlerFunc) *router {
	t.Helper()
	rt := &router{handlers: handlers}
	rt.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rt.mu.Lock()
		rt.requests = append(rt.requests, recorded{Path: r.URL.Path, Authorization: r.Header.Get("Authorization"), Body: body, Header: r.Header.Clone()})
		i := min(len(rt.requests)-1, len(rt.handlers)-1)
		h := rt.handlers[i]
		rt.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(rt.srv.Close)
	return rt
}

func (rt *router) reqs() []recorded {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]recorded(nil), rt.requests...)
}

func (rt *router) URL() string { return rt.srv.URL }

// completion answers with a chat completion.
func completion(content string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Inference-Provider", "together")
		_, _ = io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1765840584,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":`+jsonQuote(content)+`},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`)
	}
}

func fromFixture(t testing.TB, name string) http.HandlerFunc {
	f := loadFixture(t, name)
	return func(w http.ResponseWriter, r *http.Request) { f.serve(w) }
}

func status(code int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

func jsonQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// newTestClient is a client of rt with the test token and no retries
// unless opts say otherwise.
func newTestClient(t testing.TB, rt *router, opts ...Option) *Client {
	t.Helper()
	base := []Option{WithBaseURL(rt.URL()), WithHubURL("https://hub.example"), WithToken(testToken), WithRetry(RetryPolicy{})}
	c, err := NewClient(append(base, opts...)...)
	require.NoError(t, err)
	return c
}

func chatReq(model, provider string) ChatRequest {
	return ChatRequest{Model: model, Provider: provider, Messages: []Message{UserMessage("hi")}}
}

// kindsMatched lists the kinds err matches.
func kindsMatched(err error) []error {
	var out []error
	for _, k := range kinds {
		if errors.Is(err, k) {
			out = append(out, k)
		}
	}
	return out
}

// fakeStreamRouter streams "one, two, three" for the stream example.
func fakeStreamRouter() *httptest.Server {
	return httptest.NewServer(sseData(deltaChunk("one, "), deltaChunk("two, "), deltaChunk("three"), finishChunk("stop"), "[DONE]"))
}
