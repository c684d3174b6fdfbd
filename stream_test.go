package inference

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// sseRaw streams raw SSE text, flushing after each blank line.
func sseRaw(raw string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream;charset=utf-8")
		w.Header().Set("X-Inference-Provider", "together")
		f, _ := w.(http.Flusher)
		for _, part := range strings.SplitAfter(raw, "\n\n") {
			_, _ = io.WriteString(w, part)
			if f != nil {
				f.Flush()
			}
		}
	}
}

// sseData streams each payload as one "data:" event.
func sseData(payloads ...string) http.HandlerFunc {
	var b strings.Builder
	for _, p := range payloads {
		b.WriteString("data: " + p + "\n\n")
	}
	return sseRaw(b.String())
}

func deltaChunk(content string) string {
	return `{"id":"s1","object":"chat.completion.chunk","created":1765840584,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":` + jsonQuote(content) + `},"finish_reason":null}]}`
}

func finishChunk(reason string) string {
	return `{"id":"s1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"` + reason + `"}]}`
}

const usageChunk = `{"id":"s1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":20,"total_tokens":23,"completion_tokens":3}}`

func collect(t *testing.T, s *ChatStream) string {
	t.Helper()
	var b strings.Builder
	for s.Next() {
		b.WriteString(s.Current().Text())
	}
	return b.String()
}

func TestStreamJoinsToTheTextSent(t *testing.T) {
	parts := []string{"Hel", "lo, ", "wörld", " 🧬", "!"}
	var payloads []string
	for _, p := range parts {
		payloads = append(payloads, deltaChunk(p))
	}
	payloads = append(payloads, finishChunk("stop"), usageChunk, "[DONE]")
	rt := newRouter(t, sseData(payloads...))
	c := newTestClient(t, rt)
	req := chatReq("m/a", "together")
	req.IncludeUsage = true
	s, err := c.ChatStream(t.Context(), req)
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, strings.Join(parts, ""), collect(t, s))
	require.NoError(t, s.Err())

	var body map[string]any
	require.NoError(t, json.Unmarshal(rt.reqs()[0].Body, &body))
	assert.Equal(t, true, body["stream"])
	assert.Equal(t, map[string]any{"include_usage": true}, body["stream_options"])
	assert.Equal(t, "text/event-stream", rt.reqs()[0].Header.Get("Accept"))

	resp := s.Response()
	assert.Equal(t, strings.Join(parts, ""), resp.Text())
	assert.Equal(t, "stop", resp.Choices[0].FinishReason)
	assert.Equal(t, Usage{PromptTokens: 20, CompletionTokens: 3, TotalTokens: 23}, resp.Usage)
	assert.Equal(t, "together", resp.Provider)
	require.Len(t, s.Attempts(), 1)
	assert.Equal(t, 200, s.Attempts()[0].StatusCode)
}

func TestStreamRecordedFixture(t *testing.T) {
	rt := newRouter(t, sseRaw("data: {\"id\":\"oPNHZvd-28Eivz-9ae9a606fc201b59\",\"object\":\"chat.completion.chunk\",\"created\":1765840584,\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hello\"},\"finish_reason\":null}],\"model\":\"Qwen/Qwen3.5-397B-A17B\",\"usage\":null}\n\n"+
		"data: {\"id\":\"oPNHZvd-28Eivz-9ae9a606fc201b59\",\"object\":\"chat.completion.chunk\",\"created\":1765840584,\"choices\":[],\"model\":\"Qwen/Qwen3.5-397B-A17B\",\"usage\":{\"prompt_tokens\":20,\"total_tokens\":23,\"completion_tokens\":3}}\n\n"+
		"data: [DONE]\n\n"))
	c := newTestClient(t, rt)
	s, err := c.ChatStream(t.Context(), chatReq("Qwen/Qwen3.5-397B-A17B", ""))
	require.NoError(t, err)
	assert.Equal(t, "Hello", collect(t, s))
	require.NoError(t, s.Err())
	resp := s.Response()
	assert.Equal(t, "oPNHZvd-28Eivz-9ae9a606fc201b59", resp.ID)
	assert.Equal(t, "Qwen/Qwen3.5-397B-A17B", resp.Model)
	assert.Equal(t, 23, resp.Usage.TotalTokens)
}

func TestStreamFallsBackBeforeTheFirstChunk(t *testing.T) {
	tests := []struct {
		name    string
		primary http.HandlerFunc
	}{
		{"http 503", status(503, `{"error":"overloaded"}`)},
		{"error event first", sseData(`{"error":"Model is overloaded","error_type":"overloaded"}`)},
		{"role chunk then error", sseData(`{"choices":[{"index":0,"delta":{"role":"assistant"}}]}`, `{"error":{"message":"upstream died"}}`)},
		{"wrong content type", status(200, `{"choices":[{"index":0,"message":{"role":"assistant","content":"not a stream"}}]}`)},
		{"cut before content", sseRaw("data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mr := newModelRouter(t, map[string][]http.HandlerFunc{
				"m/a": {tt.primary},
				"m/b": {sseData(deltaChunk("from b"), finishChunk("stop"), "[DONE]")},
			})
			c := newWalkClient(t, mr, WithRetry(RetryPolicy{}), WithFallback(Candidate{Model: "m/b"}))
			s, err := c.ChatStream(t.Context(), chatReq("m/a", ""))
			require.NoError(t, err)
			defer s.Close()
			assert.Equal(t, "from b", collect(t, s))
			require.NoError(t, s.Err())
			assert.Equal(t, []string{"m/a", "m/b"}, mr.requests())
			require.Len(t, s.Attempts(), 2)
			assert.Equal(t, ErrProvider, s.Attempts()[0].Kind())
		})
	}
}

func TestStreamErrorAfterContent(t *testing.T) {
	tests := []struct {
		name, event, want, code string
	}{
		{"string error", `{"error":"Request failed during generation: CUDA out of memory"}`, "CUDA out of memory", ""},
		{"object error", `{"error":{"message":"upstream connection lost","type":"server_error"}}`, "upstream connection lost", "server_error"},
		{"tgi generation", `{"error":"Request failed during generation: boom","error_type":"generation"}`, "boom", "generation"},
		{"tgi incomplete", `{"error":"Incomplete generation","error_type":"incomplete_generation"}`, "Incomplete generation", "incomplete_generation"},
		{"tgi overloaded", `{"error":"Model is overloaded","error_type":"overloaded"}`, "Model is overloaded", "overloaded"},
		{"tgi validation", `{"error":"Input validation error: too long","error_type":"validation"}`, "Input validation error", "validation"},
		{"event type error", "event: error\ndata: {\"message\":\"provider hung up\"}", "provider hung up", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := "data: " + deltaChunk("partial ") + "\n\ndata: " + deltaChunk("answer") + "\n\n"
			if strings.HasPrefix(tt.event, "event:") {
				raw += tt.event + "\n\n"
			} else {
				raw += "data: " + tt.event + "\n\n"
			}
			mr := newModelRouter(t, map[string][]http.HandlerFunc{"m/a": {sseRaw(raw)}, "m/b": {sseData(deltaChunk("never"), "[DONE]")}})
			c := newWalkClient(t, mr, WithFallback(Candidate{Model: "m/b"}))
			s, err := c.ChatStream(t.Context(), chatReq("m/a", ""))
			require.NoError(t, err)
			defer s.Close()
			assert.Equal(t, "partial answer", collect(t, s))
			err = s.Err()
			require.ErrorIs(t, err, ErrStream)
			assert.Equal(t, []error{ErrStream}, kindsMatched(err))
			assert.Contains(t, err.Error(), tt.want)
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tt.code, apiErr.Code)
			assert.Equal(t, "together", apiErr.Provider)
			assert.Equal(t, "partial answer", s.Response().Text(), "content before the error is kept")
			assert.Equal(t, []string{"m/a"}, mr.requests(), "nothing is replayed after content")
			assert.False(t, s.Next())
		})
	}
}

func TestStreamCutIsAnError(t *testing.T) {
	rt := newRouter(t, sseRaw("data: "+deltaChunk("half an ans")+"\n\n"))
	c := newTestClient(t, rt)
	s, err := c.ChatStream(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "half an ans", collect(t, s))
	require.ErrorIs(t, s.Err(), ErrStream)
	assert.Contains(t, s.Err().Error(), "without [DONE] or a finish reason")
	assert.ErrorIs(t, s.Err(), io.ErrUnexpectedEOF)

	// A finish reason without [DONE] ends well.
	rt = newRouter(t, sseData(deltaChunk("whole"), finishChunk("length")))
	c = newTestClient(t, rt)
	s, err = c.ChatStream(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "whole", collect(t, s))
	assert.NoError(t, s.Err())
	assert.Equal(t, "length", s.Response().Choices[0].FinishReason)
}

func TestStreamMalformedChunkAfterContent(t *testing.T) {
	rt := newRouter(t, sseData(deltaChunk("ok so far"), `{"choices":[{"delta":`))
	c := newTestClient(t, rt)
	s, err := c.ChatStream(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "ok so far", collect(t, s))
	require.ErrorIs(t, s.Err(), ErrStream)
	assert.Contains(t, s.Err().Error(), "not valid JSON")
}

func TestStreamDoneWithoutChunksIsEmptyAnswer(t *testing.T) {
	rt := newRouter(t, sseData("[DONE]"))
	c := newTestClient(t, rt)
	s, err := c.ChatStream(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.False(t, s.Next())
	assert.NoError(t, s.Err())
	assert.Equal(t, "", s.Response().Text())
}

func TestStreamLargeEventAndLineEndings(t *testing.T) {
	big := strings.Repeat("日本語のテキスト🧬", 500<<10/28)
	raw := ": keep-alive comment\r\n\r\n" +
		"data: " + deltaChunk("start ") + "\r\n\r\n" +
		"data: " + deltaChunk(big) + "\r\n\r\n" +
		": another comment\r\n" +
		"data: " + finishChunk("stop") + "\r\n\r\n" +
		"data: [DONE]\r\n\r\n"
	require.Greater(t, len(deltaChunk(big)), 500<<10-64)
	rt := newRouter(t, sseRaw(raw))
	c := newTestClient(t, rt)
	s, err := c.ChatStream(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "start "+big, collect(t, s))
	require.NoError(t, s.Err())
}

func TestStreamToolCallDeltasAreJoined(t *testing.T) {
	rt := newRouter(t, sseData(
		`{"choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"weather","arguments":""}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"time","arguments":"{}"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Oslo\"}"}}]}}]}`,
		finishChunk("tool_calls"), "[DONE]"))
	c := newTestClient(t, rt)
	s, err := c.ChatStream(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	for s.Next() {
	}
	require.NoError(t, s.Err())
	msg := s.Response().Choices[0].Message
	require.Len(t, msg.ToolCalls, 2)
	assert.Equal(t, "call_a", msg.ToolCalls[0].ID)
	assert.Equal(t, FunctionCall{Name: "weather", Arguments: `{"city":"Oslo"}`}, msg.ToolCalls[0].Function)
	assert.Equal(t, FunctionCall{Name: "time", Arguments: `{}`}, msg.ToolCalls[1].Function)
	assert.Equal(t, "tool_calls", s.Response().Choices[0].FinishReason)
}

func TestStreamCloseAfterFirstChunkLeaksNothing(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	gone := make(chan struct{})
	rt := newRouter(t, func(w http.ResponseWriter, r *http.Request) {
		sseData(deltaChunk("first"))(w, r)
		<-r.Context().Done() // the client went away
		close(gone)
	})
	c := newTestClient(t, rt)
	s, err := c.ChatStream(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	require.True(t, s.Next())
	assert.Equal(t, "first", s.Current().Text())
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	assert.False(t, s.Next())
	select {
	case <-gone:
	case <-time.After(2 * time.Second):
		t.Fatal("the connection was not released")
	}
	c.CloseIdleConnections()
}

func TestStreamCancelMidStreamReturnsPromptly(t *testing.T) {
	rt := newRouter(t, func(w http.ResponseWriter, r *http.Request) {
		sseData(deltaChunk("first"))(w, r)
		<-r.Context().Done()
	})
	c := newTestClient(t, rt)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s, err := c.ChatStream(ctx, chatReq("m/a", ""))
	require.NoError(t, err)
	defer s.Close()
	require.True(t, s.Next())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	assert.False(t, s.Next())
	assert.Less(t, time.Since(start), time.Second)
	require.ErrorIs(t, s.Err(), context.Canceled)
	assert.Equal(t, "first", s.Response().Text())
}

func TestStreamAttemptTimeoutOnlyBeforeFirstChunk(t *testing.T) {
	mr := newModelRouter(t, map[string][]http.HandlerFunc{
		"m/slow": {func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }},
		"m/long": {func(w http.ResponseWriter, r *http.Request) {
			sseData(deltaChunk("a"))(w, r)
			time.Sleep(120 * time.Millisecond) // longer than the attempt timeout
			sseData(deltaChunk("b"), finishChunk("stop"), "[DONE]")(w, r)
		}},
	})
	c := newWalkClient(t, mr, WithAttemptTimeout(60*time.Millisecond), WithFallback(Candidate{Model: "m/long"}))
	s, err := c.ChatStream(t.Context(), chatReq("m/slow", ""))
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, "ab", collect(t, s))
	require.NoError(t, s.Err())
	assert.Contains(t, s.Attempts()[0].Err.Error(), "attempt timeout of 60ms")
}

func TestStreamAllIterator(t *testing.T) {
	rt := newRouter(t, sseData(deltaChunk("x"), deltaChunk("y"), `{"error":"gone"}`))
	c := newTestClient(t, rt)
	s, err := c.ChatStream(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	var text string
	var last error
	for chunk, err := range s.All() {
		if err != nil {
			last = err
			break
		}
		text += chunk.Text()
	}
	assert.Equal(t, "xy", text)
	assert.ErrorIs(t, last, ErrStream)

	// Breaking early closes the stream.
	rt = newRouter(t, sseData(deltaChunk("x"), deltaChunk("y"), "[DONE]"))
	c = newTestClient(t, rt)
	s, err = c.ChatStream(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	for range s.All() {
		break
	}
	assert.False(t, s.Next())
}

func TestStreamFailsWhenEveryCandidateFails(t *testing.T) {
	rt := newRouter(t, fromFixture(t, "F01-missing-scope.http"))
	c := newTestClient(t, rt)
	s, err := c.ChatStream(t.Context(), chatReq("m/a", ""))
	assert.Nil(t, s)
	require.ErrorIs(t, err, ErrMissingScope)
	_, err = c.ChatStream(t.Context(), ChatRequest{})
	require.ErrorIs(t, err, ErrInvalidRequest)
}

func ExampleClient_ChatStream() {
	router := fakeStreamRouter()
	defer router.Close()
	c, _ := NewClient(WithBaseURL(router.URL), WithToken("hf_ExampleTokenxxxxxxxxxxxxxxxxxxxxxxxx"))

	stream, err := c.ChatStream(context.Background(), ChatRequest{
		Model:    "meta-llama/Llama-3.3-70B-Instruct",
		Messages: []Message{UserMessage("Count to three.")},
	})
	if err != nil {
		panic(err)
	}
	defer stream.Close()
	for stream.Next() {
		fmt.Print(stream.Current().Text())
	}
	fmt.Println()
	if err := stream.Err(); err != nil {
		fmt.Println("stream failed:", err)
	}
	// Output:
	// one, two, three
}
