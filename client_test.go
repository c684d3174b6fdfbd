package inference

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestChatSendsOpenAICompatibleRequest(t *testing.T) {
	rt := newRouter(t, completion("Hello there"))
	c := newTestClient(t, rt)
	req := ChatRequest{
		Model:    "Qwen/Qwen3-Next-80B-A3B-Instruct",
		Provider: "together",
		Messages: []Message{
			SystemMessage("be brief"),
			UserMessage("weather in Paris?"),
			{Role: RoleAssistant, ToolCalls: []ToolCall{{ID: "call_1", Type: "function", Function: FunctionCall{Name: "weather", Arguments: `{"city":"Paris"}`}}}},
			ToolResultMessage("call_1", "sunny"),
		},
		MaxTokens:      64,
		Temperature:    Float64(0),
		TopP:           Float64(0.9),
		Stop:           []string{"\n\n"},
		Seed:           Int64(42),
		Tools:          []Tool{FunctionTool("weather", "current weather", json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"}}}`))},
		ToolChoice:     &ToolChoice{Mode: "auto"},
		ResponseFormat: &ResponseFormat{Type: "json_object"},
		Extra:          map[string]any{"top_k": 5},
	}
	resp, err := c.Chat(t.Context(), req)
	require.NoError(t, err)

	got := rt.reqs()
	require.Len(t, got, 1)
	assert.Equal(t, "/v1/chat/completions", got[0].Path)
	assert.Equal(t, "Bearer "+testToken, got[0].Authorization)
	assert.Equal(t, "application/json", got[0].Header.Get("Content-Type"))
	assert.JSONEq(t, `{
		"model":"Qwen/Qwen3-Next-80B-A3B-Instruct:together",
		"messages":[
			{"role":"system","content":"be brief"},
			{"role":"user","content":"weather in Paris?"},
			{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]},
			{"role":"tool","content":"sunny","tool_call_id":"call_1"}
		],
		"max_tokens":64,"temperature":0,"top_p":0.9,"stop":["\n\n"],"seed":42,
		"tools":[{"type":"function","function":{"name":"weather","description":"current weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
		"tool_choice":"auto",
		"response_format":{"type":"json_object"},
		"top_k":5
	}`, string(got[0].Body))

	assert.Equal(t, "Hello there", resp.Text())
	assert.Equal(t, "together", resp.Provider)
	assert.Equal(t, "chatcmpl-1", resp.ID)
	assert.Equal(t, "stop", resp.Choices[0].FinishReason)
	assert.Equal(t, Usage{PromptTokens: 5, CompletionTokens: 2, TotalTokens: 7}, resp.Usage)
	require.Len(t, resp.Attempts, 1)
	assert.NoError(t, resp.Attempts[0].Err)
	assert.Equal(t, 200, resp.Attempts[0].StatusCode)
	assert.Equal(t, "static", resp.Attempts[0].TokenSource)
	assert.Equal(t, Candidate{Model: req.Model, Provider: "together"}, resp.Attempts[0].Candidate)
}

func TestModelOnTheWire(t *testing.T) {
	tests := []struct{ model, provider, want string }{
		{"m/a", "", "m/a"},
		{"m/a", "auto", "m/a"},
		{"m/a", "fastest", "m/a:fastest"},
		{"m/a", "cheapest", "m/a:cheapest"},
		{"m/a", "preferred", "m/a:preferred"},
		{"m/a", "fireworks-ai", "m/a:fireworks-ai"},
		{"openai/gpt-oss-120b:groq", "", "openai/gpt-oss-120b:groq"},
	}
	rt := newRouter(t, completion("ok"))
	c := newTestClient(t, rt)
	for i, tt := range tests {
		_, err := c.Chat(t.Context(), chatReq(tt.model, tt.provider))
		require.NoError(t, err)
		var body struct{ Model string }
		require.NoError(t, json.Unmarshal(rt.reqs()[i].Body, &body))
		assert.Equal(t, tt.want, body.Model, "%s + %q", tt.model, tt.provider)
	}
}

func TestToolCallAnswerParses(t *testing.T) {
	rt := newRouter(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_9","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Oslo\"}"}}]},"finish_reason":"tool_calls"}]}`)
	}, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"id":"y","choices":[{"index":0,"message":{"role":"assistant","content":[{"type":"text","text":"part one, "},{"type":"text","text":"part two"}]},"finish_reason":"stop"}]}`)
	})
	c := newTestClient(t, rt)
	resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	msg := resp.Choices[0].Message
	assert.Equal(t, "", msg.Content)
	require.Len(t, msg.ToolCalls, 1)
	assert.Equal(t, FunctionCall{Name: "weather", Arguments: `{"city":"Oslo"}`}, msg.ToolCalls[0].Function)
	assert.Equal(t, "tool_calls", resp.Choices[0].FinishReason)

	resp, err = c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "part one, part two", resp.Text())
}

func TestToolChoiceForms(t *testing.T) {
	b, err := json.Marshal(ToolChoice{Function: "weather"})
	require.NoError(t, err)
	assert.JSONEq(t, `{"type":"function","function":{"name":"weather"}}`, string(b))
	b, err = json.Marshal(ToolChoice{Mode: "required"})
	require.NoError(t, err)
	assert.Equal(t, `"required"`, string(b))
}

func TestChatRequestValidation(t *testing.T) {
	msgs := []Message{UserMessage("hi")}
	tests := []struct {
		name string
		req  ChatRequest
		want string
	}{
		{"no model", ChatRequest{Messages: msgs}, "model is empty"},
		{"no messages", ChatRequest{Model: "m/a"}, "no messages"},
		{"no role", ChatRequest{Model: "m/a", Messages: []Message{{Content: "x"}}}, "no role"},
		{"crlf in model", ChatRequest{Model: "m/a\r\nX-Evil: 1", Messages: msgs}, "control character"},
		{"space in model", ChatRequest{Model: "bad model", Messages: msgs}, "white space"},
		{"provider charset", ChatRequest{Model: "m/a", Provider: "Together AI", Messages: msgs}, "lower-case"},
		{"suffix and provider", ChatRequest{Model: "m/a:groq", Provider: "together", Messages: msgs}, "use one"},
		{"negative max tokens", ChatRequest{Model: "m/a", Messages: msgs, MaxTokens: -1}, "negative"},
		{"temperature", ChatRequest{Model: "m/a", Messages: msgs, Temperature: Float64(3)}, "Temperature"},
		{"top p", ChatRequest{Model: "m/a", Messages: msgs, TopP: Float64(0)}, "TopP"},
		{"schema missing", ChatRequest{Model: "m/a", Messages: msgs, ResponseFormat: &ResponseFormat{Type: "json_schema"}}, "JSONSchema"},
		{"bad fallback", ChatRequest{Model: "m/a", Messages: msgs, Fallbacks: []Candidate{{}}}, "fallback 0"},
		{"long model", ChatRequest{Model: strings.Repeat("m", 300), Messages: msgs}, "longer than 256"},
		{"extra collides", ChatRequest{Model: "m/a", Messages: msgs, Extra: map[string]any{"model": "x"}}, `Extra key "model"`},
		{"extra stream", ChatRequest{Model: "m/a", Messages: msgs, Extra: map[string]any{"stream": true}}, `Extra key "stream"`},
		{"extra unencodable", ChatRequest{Model: "m/a", Messages: msgs, Extra: map[string]any{"f": func() {}}}, `Extra["f"]`},
	}
	rt := newRouter(t, completion("never"))
	c := newTestClient(t, rt)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Chat(t.Context(), tt.req)
			require.ErrorIs(t, err, ErrInvalidRequest)
			assert.Equal(t, []error{ErrInvalidRequest}, kindsMatched(err))
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	assert.Empty(t, rt.reqs(), "nothing is sent for a bad request")
}

func TestSuccessStatusThatIsNotACompletion(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"html page", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, "<html><body>Welcome</body></html>")
		}, "web page"},
		{"empty object", status(200, `{}`), "no choices"},
		{"empty choices", status(200, `{"choices":[]}`), "no choices"},
		{"not json", status(200, `Service temporarily unavailable`), "not a JSON chat completion"},
		{"truncated json", status(200, `{"choices":[{"index":0,"message":{"role":"assis`), "not a JSON chat completion"},
		{"error object", status(200, `{"error":"Model is overloaded"}`), "Model is overloaded"},
		{"empty body", status(200, ``), "not a JSON chat completion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := newRouter(t, tt.handler)
			c := newTestClient(t, rt)
			resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
			require.Error(t, err)
			assert.Nil(t, resp)
			assert.Equal(t, []error{ErrProvider}, kindsMatched(err))
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, 200, apiErr.StatusCode)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "<html")
		})
	}
}

func TestSuccessBodyTooLarge(t *testing.T) {
	rt := newRouter(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":"`)
		chunk := bytes.Repeat([]byte("a"), 1<<20)
		for i := 0; i < 33; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, `"}}]}`)
	})
	c := newTestClient(t, rt)
	_, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.ErrorIs(t, err, ErrProvider)
	assert.Contains(t, err.Error(), "larger than 32 MiB")
	assert.Less(t, len(err.Error()), 16<<10)
}

func TestRetryPolicy(t *testing.T) {
	fast := RetryPolicy{MaxRetries: 2, MinWait: time.Millisecond, MaxWait: 5 * time.Millisecond}
	tests := []struct {
		name     string
		policy   RetryPolicy
		handlers []http.HandlerFunc
		wantReqs int
		wantErr  error
		retries  int
	}{
		{"no retry with MaxRetries 0", RetryPolicy{}, []http.HandlerFunc{status(503, `{"error":"busy"}`), completion("ok")}, 1, ErrProvider, 0},
		{"503 then 200 succeeds", fast, []http.HandlerFunc{status(503, `{"error":"busy"}`), completion("ok")}, 2, nil, 1},
		{"html 504 retried", fast, []http.HandlerFunc{fromFixture(t, "F10-html-gateway-504.http"), completion("ok")}, 2, nil, 1},
		{"429 without Retry-After retried", fast, []http.HandlerFunc{fromFixture(t, "F07b-rate-limit-no-retry-after.http"), completion("ok")}, 2, nil, 1},
		{"retries are bounded", fast, []http.HandlerFunc{status(500, `{"error":"boom"}`)}, 3, ErrProvider, 2},
		{"400 never retried", fast, []http.HandlerFunc{status(400, `{"error":"bad"}`), completion("ok")}, 1, ErrInvalidRequest, 0},
		{"403 never retried", fast, []http.HandlerFunc{fromFixture(t, "F01-missing-scope.http"), completion("ok")}, 1, ErrMissingScope, 0},
		{"501 not retried", fast, []http.HandlerFunc{status(501, `{"error":"no"}`), completion("ok")}, 1, ErrProvider, 0},
		{"429 asking longer than MaxWait is not waited for", fast, []http.HandlerFunc{func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(429)
		}, completion("ok")}, 1, ErrRateLimited, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := newRouter(t, tt.handlers...)
			c := newTestClient(t, rt, WithRetry(tt.policy))
			start := time.Now()
			resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
			assert.Len(t, rt.reqs(), tt.wantReqs)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.Less(t, time.Since(start), 2*time.Second)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.retries, resp.Attempts[0].Retries)
		})
	}
}

func TestRetryWaitsForRetryAfter(t *testing.T) {
	rt := newRouter(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After-Ms", "120")
		w.WriteHeader(429)
	}, completion("ok"))
	c := newTestClient(t, rt, WithRetry(RetryPolicy{MaxRetries: 1, MinWait: time.Millisecond, MaxWait: time.Second}))
	_, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	reqs := rt.reqs()
	require.Len(t, reqs, 2)
}

func TestBackoff(t *testing.T) {
	now := time.Now()
	for n := 0; n < 8; n++ {
		for i := 0; i < 50; i++ {
			d := backoff(100*time.Millisecond, time.Second, n, nil, now)
			assert.GreaterOrEqual(t, d, 100*time.Millisecond)
			assert.LessOrEqual(t, d, time.Second)
			ceiling := min(100*time.Millisecond<<n, time.Second)
			assert.GreaterOrEqual(t, d, ceiling/2, "equal jitter keeps half the delay")
			assert.LessOrEqual(t, d, ceiling)
		}
	}
	resp := &http.Response{Header: http.Header{"Retry-After": []string{"3"}}}
	assert.Equal(t, 3*time.Second, backoff(time.Millisecond, 5*time.Second, 0, resp, now))
	assert.Equal(t, 2*time.Second, backoff(time.Millisecond, 2*time.Second, 0, resp, now), "capped at MaxWait")
}

func TestContextDeadlineEndsTheCall(t *testing.T) {
	t.Run("while waiting for headers", func(t *testing.T) {
		release := make(chan struct{})
		rt := newRouter(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		defer close(release)
		c := newTestClient(t, rt)
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Chat(ctx, chatReq("m/a", ""))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), time.Second)
	})
	t.Run("while sleeping before a retry", func(t *testing.T) {
		rt := newRouter(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(503)
		})
		c := newTestClient(t, rt, WithRetry(RetryPolicy{MaxRetries: 3, MaxWait: 10 * time.Second}))
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Chat(ctx, chatReq("m/a", ""))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), time.Second)
		assert.Len(t, rt.reqs(), 1)
	})
	t.Run("already cancelled", func(t *testing.T) {
		rt := newRouter(t, completion("never"))
		c := newTestClient(t, rt)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := c.Chat(ctx, chatReq("m/a", ""))
		require.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, rt.reqs())
	})
}

func TestHugeErrorBodyIsCapped(t *testing.T) {
	const size = 64 << 20
	var written atomic.Int64
	rt := newRouter(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(500)
		_, _ = io.WriteString(w, `{"error":"`)
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for n := 0; n < size; n += len(chunk) {
			k, err := w.Write(chunk)
			written.Add(int64(k))
			if err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, `"}`)
	})
	c := newTestClient(t, rt)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err := c.Chat(t.Context(), chatReq("m/a", ""))
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)

	require.ErrorIs(t, err, ErrProvider)
	assert.Less(t, elapsed, 2*time.Second)
	assert.Less(t, len(err.Error()), 16<<10)
	// The server's writes allocate nothing per chunk, so what was allocated
	// here is the client's: far below the body's 64 MiB.
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(8<<20))
	assert.Less(t, written.Load(), int64(size), "the client stopped reading early")
}

func TestTokenEchoedByServerIsRedacted(t *testing.T) {
	echo := func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		w.Header().Set("X-Request-Id", "id-"+auth[len("Bearer "):])
		w.Header().Set("X-Error-Message", "bad header: "+auth)
		w.Header().Set("X-Inference-Provider", auth)
		w.WriteHeader(403)
		_, _ = fmt.Fprintf(w, `{"error":{"message":"you sent %s and token %s","code":"%s"}}`, auth, auth[len("Bearer "):], auth[len("Bearer "):])
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rt := newRouter(t, echo)
	c := newTestClient(t, rt, WithLogger(logger))
	_, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.Error(t, err)
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	outputs := []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), fmt.Sprintf("%s", err),
		fmt.Sprintf("%#v", *apiErr), apiErr.Message, apiErr.Code, apiErr.RequestID, apiErr.Provider, logs.String()}
	for _, out := range outputs {
		assert.NotContains(t, out, testToken[5:])
	}
	assert.Contains(t, apiErr.Message, "[redacted]")
	assert.Contains(t, logs.String(), `"status":403`)
}

func TestLogLinesForDebuggingA403(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rt := newRouter(t, fromFixture(t, "F01-missing-scope.http"))
	c := newTestClient(t, rt, WithLogger(logger))
	_, err := c.Chat(t.Context(), chatReq("Qwen/Qwen3-Next-80B-A3B-Thinking", "nebius"))
	require.ErrorIs(t, err, ErrMissingScope)
	out := logs.String()
	for _, want := range []string{
		"level=DEBUG", "http attempt", "model=Qwen/Qwen3-Next-80B-A3B-Thinking", "provider=nebius",
		"token_source=static", "oauth=false", "token=hf_Te…", "status=403", "request_id=Xb3kP0aQ9mZt2LcV",
		"level=WARN", "call failed", "inference-api",
	} {
		assert.Contains(t, out, want)
	}
	assert.NotContains(t, out, testToken[5:])
}

func TestNoLoggingByDefault(t *testing.T) {
	rt := newRouter(t, completion("ok"))
	for _, c := range []*Client{newTestClient(t, rt), newTestClient(t, rt, WithLogger(nil))} {
		assert.False(t, c.logger.Enabled(t.Context(), slog.LevelError), "the default logger discards everything")
		_, err := c.Chat(t.Context(), chatReq("m/a", ""))
		require.NoError(t, err)
	}
}

func TestTokenGoesOnlyToConfiguredHosts(t *testing.T) {
	var otherAuth atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherAuth.Store(r.Header.Get("Authorization"))
		completion("from other host")(w, r)
	}))
	defer other.Close()

	rt := newRouter(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/chat/completions" {
			http.Redirect(w, r, "/moved/v1/chat/completions", http.StatusTemporaryRedirect)
			return
		}
		completion("same host")(w, r)
	}, func(w http.ResponseWriter, r *http.Request) {
		completion("same host")(w, r)
	}, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
	})
	c := newTestClient(t, rt)

	resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "same host", resp.Text())
	reqs := rt.reqs()
	require.Len(t, reqs, 2)
	assert.Equal(t, "Bearer "+testToken, reqs[1].Authorization, "same-origin redirect keeps the token")

	resp, err = c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "from other host", resp.Text())
	assert.Equal(t, "", otherAuth.Load(), "a redirect to another host never carries the token")

	// A header set by a user middleware is stripped too on a foreign host.
	c = newTestClient(t, rt, WithMiddleware(func(next http.RoundTripper) http.RoundTripper {
		return RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
			r2 := r.Clone(r.Context())
			r2.Header.Set("Authorization", "Bearer "+testToken)
			return next.RoundTrip(r2)
		})
	}))
	_, err = c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "", otherAuth.Load())
}

func TestMiddlewareOrderAndEveryAttempt(t *testing.T) {
	var order []string
	var sawAuth []string
	mw := func(name string) Middleware {
		return func(next http.RoundTripper) http.RoundTripper {
			return RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
				order = append(order, name+">")
				sawAuth = append(sawAuth, r.Header.Get("Authorization"))
				resp, err := next.RoundTrip(r)
				order = append(order, "<"+name)
				return resp, err
			})
		}
	}
	rt := newRouter(t, status(503, `{"error":"busy"}`), completion("ok"))
	c := newTestClient(t, rt, WithMiddleware(mw("a"), mw("b")), WithMiddleware(mw("c")),
		WithRetry(RetryPolicy{MaxRetries: 1, MinWait: time.Millisecond, MaxWait: time.Millisecond}))
	_, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, []string{"a>", "b>", "c>", "<c", "<b", "<a", "a>", "b>", "c>", "<c", "<b", "<a"}, order)
	assert.Equal(t, []string{"", "", "", "", "", ""}, sawAuth, "user middlewares never see the token")
}

func TestWithHTTPClientTransportIsUsed(t *testing.T) {
	rt := newRouter(t, completion("ok"))
	var calls atomic.Int32
	hc := &http.Client{Transport: RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
		calls.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})}
	c := newTestClient(t, rt, WithHTTPClient(hc))
	_, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, int32(1), calls.Load())
	_, isFunc := hc.Transport.(RoundTripperFunc)
	assert.True(t, isFunc, "the caller's client is not modified")
}

func TestConnectionFailureIsProviderError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	c, err := NewClient(WithBaseURL("http://"+addr), WithToken(testToken), WithRetry(RetryPolicy{MaxRetries: 1, MinWait: time.Millisecond, MaxWait: time.Millisecond}))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq("m/a", "together"))
	require.Nil(t, resp)
	assert.Equal(t, []error{ErrProvider}, kindsMatched(err))
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 0, apiErr.StatusCode)
	assert.Equal(t, "together", apiErr.Provider)
	var opErr *net.OpError
	assert.ErrorAs(t, err, &opErr, "the transport error is reachable")
	assert.Contains(t, err.Error(), "no response")
}

func TestNewClientRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		want string
	}{
		{"nil option", []Option{nil}, "option 0 is nil"},
		{"relative base", []Option{WithBaseURL("/v1")}, "absolute http or https"},
		{"ftp base", []Option{WithBaseURL("ftp://router")}, "absolute http or https"},
		{"query in base", []Option{WithBaseURL("https://router.example/?x=1")}, "query"},
		{"user info in hub", []Option{WithHubURL("https://user:pass@hub.example")}, "user info"},
		{"unparseable", []Option{WithBaseURL("http://[::1")}, "not a URL"},
		{"nil source", []Option{WithTokenSource(nil)}, "nil TokenSource"},
		{"nil http client", []Option{WithHTTPClient(nil)}, "nil *http.Client"},
		{"nil middleware", []Option{WithMiddleware(nil)}, "middleware 0 is nil"},
		{"negative retries", []Option{WithRetry(RetryPolicy{MaxRetries: -1})}, "negative"},
		{"negative cooldown", []Option{WithCooldown(-time.Second)}, "negative"},
		{"empty fallback", []Option{WithFallback(Candidate{Model: "m/a"}, Candidate{})}, "candidate 1"},
		{"bad token", []Option{WithToken("None")}, "not a valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(tt.opts...)
			require.Error(t, err)
			assert.Nil(t, c)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	t.Run("bad HF_ENDPOINT", func(t *testing.T) {
		t.Setenv("HF_ENDPOINT", "not a url")
		_, err := NewClient(WithToken(testToken))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "HF_ENDPOINT")
	})
}

func TestHubURLFromEnvironmentInHints(t *testing.T) {
	t.Setenv("HF_ENDPOINT", "https://hf-mirror.example/")
	rt := newRouter(t, fromFixture(t, "F02-gated-403.http"))
	c, err := NewClient(WithBaseURL(rt.URL()), WithToken(testToken), WithRetry(RetryPolicy{}))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), chatReq("ardent-figment/gated-model", ""))
	require.ErrorIs(t, err, ErrGatedModel)
	assert.Contains(t, err.Error(), "https://hf-mirror.example/ardent-figment/gated-model")
}

func TestBaseURLPathPrefixAndTrailingSlash(t *testing.T) {
	rt := newRouter(t, completion("ok"))
	c, err := NewClient(WithBaseURL(rt.URL()+"/prefix/"), WithToken(testToken))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "/prefix/v1/chat/completions", rt.reqs()[0].Path)
}

func TestClientPrintedFormsHideToken(t *testing.T) {
	c, err := NewClient(WithToken(testToken))
	require.NoError(t, err)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(verb, c)
		assert.NotContains(t, out, testToken[5:])
		assert.Contains(t, out, "router.huggingface.co")
		assert.Contains(t, out, "StaticToken")
	}
	var nilClient *Client
	assert.Equal(t, "inference.Client(nil)", nilClient.String())
}

func TestAPIErrorIsNotMatchedByOtherErrors(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", &APIError{Kind: ErrGatedModel})
	assert.True(t, errors.Is(err, ErrGatedModel))
	assert.False(t, errors.Is(err, ErrUnauthorized))
}

func TestPlainHTTPOnlyOnLoopback(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9", "http://127.9.9.9", "https://router.example"} {
		_, err := NewClient(WithBaseURL(ok), WithToken(testToken))
		assert.NoError(t, err, ok)
	}
	for _, bad := range []string{"http://router.example", "http://10.0.0.5:8080", "http://192.168.1.2"} {
		_, err := NewClient(WithBaseURL(bad), WithToken(testToken))
		require.Error(t, err, bad)
		assert.Contains(t, err.Error(), "clear text")
		_, err = NewClient(WithBaseURL(bad), WithToken(testToken), WithInsecureHTTP())
		assert.NoError(t, err, bad)
	}
	_, err := NewClient(WithHubURL("http://mirror.internal"), WithToken(testToken))
	require.Error(t, err)
	t.Setenv("HF_ENDPOINT", "http://mirror.internal")
	_, err = NewClient(WithToken(testToken))
	require.ErrorContains(t, err, "HF_ENDPOINT")
}

func TestReadCapped(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		hint  int64
		want  string
		limit int
	}{
		{"exact length", "hello", 5, "hello", 10},
		{"unknown length", "hello", -1, "hello", 10},
		{"shorter than announced", "hel", 5, "hel", 10},
		{"longer than announced", "hello world", 5, "hello world", 20},
		{"over the limit, unknown length", strings.Repeat("x", 30), -1, strings.Repeat("x", 11), 10},
		{"over the limit, announced small", strings.Repeat("x", 30), 4, strings.Repeat("x", 11), 10},
		{"announced over the limit", strings.Repeat("x", 30), 30, strings.Repeat("x", 11), 10},
	}
	for _, tt := range tests {
		got, err := readCapped(strings.NewReader(tt.body), tt.limit, tt.hint)
		require.NoError(t, err, tt.name)
		assert.Equal(t, tt.want, string(got), tt.name)
	}
}

func TestAnswerCarriesRequestIDAndProvider(t *testing.T) {
	rt := newRouter(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "served-42")
		completion("ok")(w, r)
	})
	c := newTestClient(t, rt)
	resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "served-42", resp.RequestID)
	assert.Equal(t, "served-42", resp.Attempts[0].RequestID)
	assert.Equal(t, "together", resp.Provider)
}
