package benchmarks

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	openaigo "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/hfkit/inference"
)

// responseText is the answer's text, about 1 KiB as the chat workload's.
var responseText = strings.Repeat("Open models let anyone inspect, adapt and run them. ", 17)

// responseBody is a Responses API answer as the router's server writes it
// (no output_text field; usage present).
var responseBody = []byte(fmt.Sprintf(`{"created_at":1765840584,"error":null,"id":"resp_bench","instructions":null,"max_output_tokens":null,`+
	`"metadata":null,"model":%q,"object":"response","output":[{"id":"msg_bench","type":"message","role":"assistant","status":"completed",`+
	`"content":[{"type":"output_text","text":%q,"annotations":[]}]}],"status":"completed","text":null,"tool_choice":"auto","tools":[],`+
	`"temperature":1,"top_p":1,"usage":{"input_tokens":24,"input_tokens_details":{"cached_tokens":0},"output_tokens":180,`+
	`"output_tokens_details":{"reasoning_tokens":0},"total_tokens":204}}`, modelOK, responseText))

// responseStream is a 500-delta response stream, in the router's event
// order.
var responseStream = func() []byte {
	var b strings.Builder
	seq := 0
	ev := func(format string, args ...any) {
		fmt.Fprintf(&b, "data: "+format+"\n\n", append([]any{seq}, args...)...)
		seq++
	}
	head := fmt.Sprintf(`{"id":"resp_bench","object":"response","created_at":1765840584,"model":%q,"status":"in_progress","output":[]}`, modelOK)
	ev(`{"type":"response.created","sequence_number":%d,"response":%s}`, head)
	ev(`{"type":"response.in_progress","sequence_number":%d,"response":%s}`, head)
	ev(`{"type":"response.output_item.added","sequence_number":%d,"output_index":0,"item":{"id":"msg_bench","type":"message","role":"assistant","status":"in_progress","content":[]}}`)
	ev(`{"type":"response.content_part.added","sequence_number":%d,"item_id":"msg_bench","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}}`)
	for range streamChunks {
		ev(`{"type":"response.output_text.delta","sequence_number":%d,"item_id":"msg_bench","output_index":0,"content_index":0,"delta":"token "}`)
	}
	text := strings.Repeat("token ", streamChunks)
	ev(`{"type":"response.output_text.done","sequence_number":%d,"item_id":"msg_bench","output_index":0,"content_index":0,"text":%q}`, text)
	item := fmt.Sprintf(`{"id":"msg_bench","type":"message","role":"assistant","status":"completed","content":[{"type":"output_text","text":%q,"annotations":[]}]}`, text)
	ev(`{"type":"response.output_item.done","sequence_number":%d,"output_index":0,"item":%s}`, item)
	ev(`{"type":"response.completed","sequence_number":%d,"response":{"id":"resp_bench","object":"response","created_at":1765840584,"model":%q,"status":"completed","output":[%s],"usage":{"input_tokens":24,"output_tokens":500,"total_tokens":524}}}`, modelOK, item)
	return []byte(b.String())
}()

func newResponsesRouter() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("X-Inference-Provider", "together")
			_, _ = w.Write(responseStream)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Inference-Provider", "together")
		w.Header().Set("Content-Length", strconv.Itoa(len(responseBody)))
		_, _ = w.Write(responseBody)
	}))
}

// responsesClients are this library's client and openai-go's, each with
// its own pooled transport and no retries.
func responsesClients(b *testing.B, base string) (*inference.Client, openaigo.Client) {
	hf, err := inference.NewClient(inference.WithBaseURL(base), inference.WithToken(token), inference.WithRetry(inference.RetryPolicy{}),
		inference.WithHTTPClient(&http.Client{Transport: pooledTransport()}))
	if err != nil {
		b.Fatal(err)
	}
	oa := openaigo.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey(token),
		option.WithHTTPClient(&http.Client{Transport: pooledTransport()}), option.WithMaxRetries(0))
	return hf, oa
}

// BenchmarkRespond is one Responses API call with a 1 KiB answer: this
// library's Respond beside openai-go's Responses.New.
func BenchmarkRespond(b *testing.B) {
	srv := newResponsesRouter()
	defer srv.Close()
	hf, oa := responsesClients(b, srv.URL)
	contenders := []struct {
		name string
		call func(ctx context.Context) (string, error)
	}{
		{"hfkit", func(ctx context.Context) (string, error) {
			resp, err := hf.Respond(ctx, inference.ResponseRequest{Model: modelOK, InputText: "hi"})
			if err != nil {
				return "", err
			}
			return resp.OutputText(), nil
		}},
		{"openai-go", func(ctx context.Context) (string, error) {
			resp, err := oa.Responses.New(ctx, responses.ResponseNewParams{Model: modelOK,
				Input: responses.ResponseNewParamsInputUnion{OfString: openaigo.String("hi")}})
			if err != nil {
				return "", err
			}
			return resp.OutputText(), nil
		}},
	}
	for _, tc := range contenders {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				text, err := tc.call(ctx)
				if err != nil || text != responseText {
					b.Fatalf("%q, %v", text[:min(len(text), 20)], err)
				}
			}
		})
	}
}

// BenchmarkRespondStream is a 500-delta response stream read to the end:
// RespondStream beside openai-go's Responses.NewStreaming.
func BenchmarkRespondStream(b *testing.B) {
	srv := newResponsesRouter()
	defer srv.Close()
	hf, oa := responsesClients(b, srv.URL)
	contenders := []struct {
		name string
		call func(ctx context.Context) (int, error)
	}{
		{"hfkit", func(ctx context.Context) (int, error) {
			s, err := hf.RespondStream(ctx, inference.ResponseRequest{Model: modelOK, InputText: "hi"})
			if err != nil {
				return 0, err
			}
			defer s.Close()
			n := 0
			for s.Next() {
				if ev := s.Current(); ev.Type == "response.output_text.delta" {
					n += len(ev.Delta)
				}
			}
			return n, s.Err()
		}},
		{"openai-go", func(ctx context.Context) (int, error) {
			s := oa.Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: modelOK,
				Input: responses.ResponseNewParamsInputUnion{OfString: openaigo.String("hi")}})
			defer s.Close()
			n := 0
			for s.Next() {
				if ev := s.Current(); ev.Type == "response.output_text.delta" {
					n += len(ev.Delta)
				}
			}
			return n, s.Err()
		}},
	}
	for _, tc := range contenders {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				n, err := tc.call(ctx)
				if err != nil || n != streamChunks*len("token ") {
					b.Fatalf("%d bytes, %v", n, err)
				}
			}
		})
	}
}
