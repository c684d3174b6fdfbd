package benchmarks

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"

	openaigo "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	goopenai "github.com/sashabaranov/go-openai"

	"github.com/hfkit/inference"
)

// client is one way of making the workloads' calls.
type client struct {
	chat   func(ctx context.Context, model string) (string, error)
	stream func(ctx context.Context) (int, error) // bytes of text received
}

// floor is plain net/http and encoding/json: the cost of the round trip
// itself, below which no client can go.
func floor(base string) client { return floorWith(base, pooledTransport()) }

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// floorPost is the floor's request: the body encoded with encoding/json on
// every call, sent with net/http.
func floorPost(hc *http.Client, base string) func(ctx context.Context, model string, stream bool) (*http.Response, error) {
	return func(ctx context.Context, model string, stream bool) (*http.Response, error) {
		body, err := json.Marshal(struct {
			Model    string    `json:"model"`
			Messages []message `json:"messages"`
			Stream   bool      `json:"stream,omitempty"`
		}{model, []message{{"user", "hi"}}, stream})
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		return hc.Do(req)
	}
}

// floorWith is the floor over transport t.
func floorWith(base string, t *http.Transport) client {
	post := floorPost(&http.Client{Transport: t}, base)
	return client{
		chat: func(ctx context.Context, model string) (string, error) {
			resp, err := post(ctx, model, false)
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				var e struct {
					Error string `json:"error"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&e)
				return "", fmt.Errorf("status %d: %s", resp.StatusCode, e.Error)
			}
			var out struct {
				Choices []struct {
					Message message `json:"message"`
				} `json:"choices"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				return "", err
			}
			return out.Choices[0].Message.Content, nil
		},
		stream: func(ctx context.Context) (int, error) {
			resp, err := post(ctx, modelOK, true)
			if err != nil {
				return 0, err
			}
			defer resp.Body.Close()
			n := 0
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
			for sc.Scan() {
				data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: "))
				if !ok {
					continue
				}
				if string(data) == "[DONE]" {
					break
				}
				text, err := floorChunkText(data)
				if err != nil {
					return n, err
				}
				n += len(text)
			}
			return n, sc.Err()
		},
	}
}

// hfkit is this library, with its default transport and no retries, so
// that every library makes exactly one request per call.
func hfkit(base string, opts ...inference.Option) client {
	c, err := inference.NewClient(append([]inference.Option{
		inference.WithBaseURL(base), inference.WithToken(token), inference.WithRetry(inference.RetryPolicy{}),
	}, opts...)...)
	if err != nil {
		panic(err)
	}
	msgs := []inference.Message{inference.UserMessage("hi")}
	return client{
		chat: func(ctx context.Context, model string) (string, error) {
			resp, err := c.Chat(ctx, inference.ChatRequest{Model: model, Messages: msgs})
			if err != nil {
				return "", err
			}
			return resp.Text(), nil
		},
		stream: func(ctx context.Context) (int, error) {
			s, err := c.ChatStream(ctx, inference.ChatRequest{Model: modelOK, Messages: msgs})
			if err != nil {
				return 0, err
			}
			defer s.Close()
			n := 0
			for s.Next() {
				n += len(s.Current().Text())
			}
			return n, s.Err()
		},
	}
}

func openaiGo(base string) client { return openaiGoWith(base, pooledTransport()) }

func openaiGoWith(base string, t *http.Transport) client {
	c := openaigo.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey(token),
		option.WithHTTPClient(&http.Client{Transport: t}), option.WithMaxRetries(0))
	params := func(model string) openaigo.ChatCompletionNewParams {
		return openaigo.ChatCompletionNewParams{Model: model, Messages: []openaigo.ChatCompletionMessageParamUnion{openaigo.UserMessage("hi")}}
	}
	return client{
		chat: func(ctx context.Context, model string) (string, error) {
			resp, err := c.Chat.Completions.New(ctx, params(model))
			if err != nil {
				return "", err
			}
			return resp.Choices[0].Message.Content, nil
		},
		stream: func(ctx context.Context) (int, error) {
			s := c.Chat.Completions.NewStreaming(ctx, params(modelOK))
			defer s.Close()
			n := 0
			for s.Next() {
				if ch := s.Current(); len(ch.Choices) > 0 {
					n += len(ch.Choices[0].Delta.Content)
				}
			}
			return n, s.Err()
		},
	}
}

func goOpenai(base string) client { return goOpenaiWith(base, pooledTransport()) }

func goOpenaiWith(base string, t *http.Transport) client {
	cfg := goopenai.DefaultConfig(token)
	cfg.BaseURL = base + "/v1"
	cfg.HTTPClient = &http.Client{Transport: t}
	c := goopenai.NewClientWithConfig(cfg)
	req := func(model string) goopenai.ChatCompletionRequest {
		return goopenai.ChatCompletionRequest{Model: model, Messages: []goopenai.ChatCompletionMessage{{Role: "user", Content: "hi"}}}
	}
	return client{
		chat: func(ctx context.Context, model string) (string, error) {
			resp, err := c.CreateChatCompletion(ctx, req(model))
			if err != nil {
				return "", err
			}
			return resp.Choices[0].Message.Content, nil
		},
		stream: func(ctx context.Context) (int, error) {
			s, err := c.CreateChatCompletionStream(ctx, req(modelOK))
			if err != nil {
				return 0, err
			}
			defer s.Close()
			n := 0
			for {
				ch, err := s.Recv()
				if errors.Is(err, io.EOF) {
					return n, nil
				}
				if err != nil {
					return n, err
				}
				if len(ch.Choices) > 0 {
					n += len(ch.Choices[0].Delta.Content)
				}
			}
		},
	}
}

// clients are the contenders, built against one router.
func clients(base string) []struct {
	name string
	c    client
} {
	return []struct {
		name string
		c    client
	}{
		{"floor", floor(base)},
		{"hfkit", hfkit(base)},
		{"openai-go", openaiGo(base)},
		{"go-openai", goOpenai(base)},
	}
}

var wantText = func() string {
	var out struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(answer, &out); err != nil {
		panic(err)
	}
	return out.Choices[0].Message.Content
}()

// BenchmarkChat is one chat with a 1 KiB answer, one call at a time.
func BenchmarkChat(b *testing.B) {
	srv := newRouter()
	defer srv.Close()
	for _, tc := range clients(srv.URL) {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				text, err := tc.c.chat(ctx, modelOK)
				if err != nil || text != wantText {
					b.Fatalf("%q, %v", text[:min(len(text), 20)], err)
				}
			}
		})
	}
}

// BenchmarkChatParallel is chat from 64 goroutines per core through one
// client.
func BenchmarkChatParallel(b *testing.B) {
	srv := newRouter()
	defer srv.Close()
	for _, tc := range clients(srv.URL) {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(64)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					text, err := tc.c.chat(ctx, modelOK)
					if err != nil || text != wantText {
						b.Errorf("%v", err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkStream500 is a 500-chunk stream, read to the end.
func BenchmarkStream500(b *testing.B) {
	srv := newRouter()
	defer srv.Close()
	for _, tc := range clients(srv.URL) {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				n, err := tc.c.stream(ctx)
				if err != nil || n != streamChunks*len("token ") {
					b.Fatalf("%d bytes, %v", n, err)
				}
			}
		})
	}
}

// BenchmarkGatedError is the error path of a gated 403.
func BenchmarkGatedError(b *testing.B) {
	srv := newRouter()
	defer srv.Close()
	for _, tc := range clients(srv.URL) {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tc.c.chat(ctx, modelGated); err == nil {
					b.Fatalf("want a 403, got %v", err)
				}
			}
		})
	}
}

// BenchmarkGatedWalk is a call whose gated primary fails and whose second
// candidate serves. The floor makes the same two requests by hand; the
// client's overhead beyond the extra round trip is hfkit's time minus the
// floor's.
func BenchmarkGatedWalk(b *testing.B) {
	srv := newRouter()
	defer srv.Close()
	b.Run("floor", func(b *testing.B) {
		f := floor(srv.URL)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.chat(ctx, modelGated); err == nil {
				b.Fatal("want the gated 403")
			}
			if text, err := f.chat(ctx, modelOK); err != nil || text != wantText {
				b.Fatal(err)
			}
		}
	})
	b.Run("hfkit", func(b *testing.B) {
		// No cooldown, so that every call walks past the gated model.
		c := hfkit(srv.URL, inference.WithCooldown(0), inference.WithFallback(inference.Candidate{Model: modelOK}))
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if text, err := c.chat(ctx, modelGated); err != nil || text != wantText {
				b.Fatal(err)
			}
		}
	})
}

// floorChunkText decodes one stream chunk the way the hand-written floor does:
// the first choice's delta content, nothing else. The stream and first-chunk
// floors share it so both pay the same decoding cost.
func floorChunkText(data []byte) (string, error) {
	var chunk struct {
		Choices []struct {
			Delta struct {
				Content string `json:"content"`
			} `json:"delta"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(data, &chunk); err != nil {
		return "", err
	}
	if len(chunk.Choices) == 0 {
		return "", nil
	}
	return chunk.Choices[0].Delta.Content, nil
}
