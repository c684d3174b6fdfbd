package inference

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// streamBytes is a 500-chunk SSE answer as the router sends it.
func streamBytes(chunks int) []byte {
	var b bytes.Buffer
	for i := 0; i < chunks; i++ {
		b.WriteString("data: ")
		b.WriteString(deltaChunk("token "))
		b.WriteString("\n\n")
	}
	b.WriteString("data: " + finishChunk("stop") + "\n\ndata: [DONE]\n\n")
	return b.Bytes()
}

// memoryTransport answers every request with the same SSE bytes, so that
// the benchmark measures the client, not the network.
func memoryTransport(body []byte) http.RoundTripper {
	return RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
		if r.Body != nil {
			_, _ = io.Copy(io.Discard, r.Body)
			r.Body.Close()
		}
		return &http.Response{
			StatusCode: 200,
			Header:     http.Header{"Content-Type": []string{"text/event-stream"}},
			Body:       io.NopCloser(bytes.NewReader(body)),
			Request:    r,
		}, nil
	})
}

// BenchmarkStream500 compares this client's ChatStream over 500 chunks with
// the floor: a bufio.Scanner and encoding/json loop over the same bytes.
func BenchmarkStream500(b *testing.B) {
	body := streamBytes(500)
	b.Run("floor-scanner-json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var text strings.Builder
			sc := bufio.NewScanner(bytes.NewReader(body))
			sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
			for sc.Scan() {
				line := sc.Bytes()
				if !bytes.HasPrefix(line, []byte("data: ")) {
					continue
				}
				data := line[len("data: "):]
				if string(data) == "[DONE]" {
					break
				}
				var chunk struct {
					Choices []struct {
						Delta struct {
							Content string `json:"content"`
						} `json:"delta"`
					} `json:"choices"`
				}
				if err := json.Unmarshal(data, &chunk); err != nil {
					b.Fatal(err)
				}
				if len(chunk.Choices) > 0 {
					text.WriteString(chunk.Choices[0].Delta.Content)
				}
			}
			if text.Len() != 500*len("token ") {
				b.Fatalf("got %d bytes", text.Len())
			}
		}
	})
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"client", nil},
		// Recovery on, on a stream that never fails: it must cost what
		// a plain stream costs.
		{"client-recovery", []Option{WithStreamRecovery(), WithFirstTokenTimeout(10 * time.Second)}},
	} {
		b.Run(tc.name, func(b *testing.B) { benchmarkClientStream(b, body, tc.opts...) })
	}
}

func benchmarkClientStream(b *testing.B, body []byte, opts ...Option) {
	{
		c, err := NewClient(append([]Option{WithToken(testToken), WithHTTPClient(&http.Client{Transport: memoryTransport(body)})}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		req := chatReq("m/a", "")
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			s, err := c.ChatStream(b.Context(), req)
			if err != nil {
				b.Fatal(err)
			}
			var text strings.Builder
			for s.Next() {
				text.WriteString(s.Current().Text())
			}
			if s.Err() != nil || text.Len() != 500*len("token ") {
				b.Fatalf("got %d bytes, %v", text.Len(), s.Err())
			}
			s.Close()
		}
	}
}
