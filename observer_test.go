package inference_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// recorder is an Observer that writes down what it hears, in order.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf(format, args...))
}

func (r *recorder) StartCall(ctx context.Context, info inference.CallInfo) (context.Context, inference.CallObserver) {
	r.add("call %s %s stream=%v", info.Operation, info.Model, info.Stream)
	return ctx, r
}
func (r *recorder) Skipped(c inference.Candidate) { r.add("skipped %s", c) }
func (r *recorder) StartAttempt(ctx context.Context, c inference.Candidate, source string) context.Context {
	r.add("attempt %s (%s)", c, source)
	return ctx
}
func (r *recorder) EndAttempt(_ context.Context, a inference.Attempt) {
	r.add("end attempt %s: %s", a.Candidate, orServed(inference.KindName(a.Err)))
}
func (r *recorder) Moved(from, to inference.Candidate, err error) {
	r.add("moved %s -> %s: %s", from, to, inference.KindName(err))
}
func (r *recorder) FirstChunk(time.Duration) { r.add("first chunk") }
func (r *recorder) End(res inference.CallResult, err error) {
	text := ""
	switch {
	case res.Chat != nil:
		text = fmt.Sprintf("%d words", len(strings.Fields(res.Chat.Text())))
	case res.Model != "":
		text = "from " + res.Model // an operation other than chat
	}
	r.add("end call: %s %s", orServed(inference.KindName(err)), text)
}

func orServed(kind string) string {
	if kind == "" {
		return "served"
	}
	return kind
}

func TestObserverSeesARecoveredStream(t *testing.T) {
	r := newRouter(t)
	r.On("org/cut", inferencetest.StreamScript{Text: sixtyWords, CutAfter: 30}.Answer())
	r.On("org/ok", inferencetest.StreamScript{Text: sixtyWords}.Answer())
	rec := &recorder{}
	c := recoveryClient(t, r, inference.WithObserver(rec), inference.WithRetry(inference.RetryPolicy{MaxRetries: 1, MinWait: time.Millisecond, MaxWait: time.Millisecond}),
		inference.WithFallback(inference.Candidate{Model: "org/ok"}))
	s, err := c.ChatStream(t.Context(), chatReq("org/cut", ""))
	require.NoError(t, err)
	shown, _ := read(t, s)
	require.NoError(t, s.Err())
	require.NoError(t, s.Close())
	assert.Equal(t, sixtyWords, shown)
	assert.Equal(t, []string{
		"call chat org/cut stream=true",
		"attempt org/cut (static)",
		"first chunk",
		"end attempt org/cut: stream_error",
		"moved org/cut -> org/cut: stream_error",
		"attempt org/cut (static)",
		"end attempt org/cut: stream_error",
		"moved org/cut -> org/ok: stream_error",
		"attempt org/ok (static)",
		"end attempt org/ok: served",
		"end call: served 60 words",
	}, rec.events)
}

func TestObserverSeesAChatAndItsSkips(t *testing.T) {
	r := newRouter(t)
	r.On("org/down", inferencetest.ProviderError(503))
	r.On("org/up", inferencetest.Reply("fine"))
	rec := &recorder{}
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}), inference.WithFallback(inference.Candidate{Model: "org/up"}))
	require.NoError(t, err)
	for range 2 {
		_, err := c.Chat(t.Context(), chatReq("org/down", ""), inference.WithObserver(rec))
		require.NoError(t, err)
	}
	assert.Equal(t, []string{
		"call chat org/down stream=false",
		"attempt org/down (static)",
		"end attempt org/down: provider_error",
		"moved org/down -> org/up: provider_error",
		"attempt org/up (static)",
		"end attempt org/up: served",
		"end call: served 1 words",
		"call chat org/down stream=false",
		"skipped org/down",
		"attempt org/up (static)",
		"end attempt org/up: served",
		"end call: served 1 words",
	}, rec.events)
	assert.Equal(t, "", inference.KindName(nil))
	assert.Equal(t, "context_length", inference.KindName(inference.ErrContextLength))
}

// infoRecorder keeps the CallInfo it was given and counts chunks.
type infoRecorder struct {
	recorder
	info   inference.CallInfo
	chunks int
}

func (r *infoRecorder) StartCall(ctx context.Context, info inference.CallInfo) (context.Context, inference.CallObserver) {
	r.info = info
	return ctx, r
}

func (r *infoRecorder) Chunk(time.Duration) { r.chunks++ }

func TestCallInfoCarriesTheParametersSet(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", inferencetest.Stream("one ", "two ", "three"))
	rec := &infoRecorder{}
	c, err := r.Client(inference.WithObserver(rec))
	require.NoError(t, err)
	req := chatReq("org/m", "")
	req.MaxTokens, req.Temperature, req.TopP, req.Seed = 64, inference.Float64(0.2), inference.Float64(0.9), inference.Int64(7)
	req.FrequencyPenalty, req.PresencePenalty = inference.Float64(0.1), inference.Float64(0.3)
	req.Stop = []string{"\n\n"}
	req.ResponseFormat = &inference.ResponseFormat{Type: "json_object"}
	s, err := c.ChatStream(t.Context(), req)
	require.NoError(t, err)
	for s.Next() {
	}
	require.NoError(t, s.Err())
	s.Close()
	info := rec.info
	assert.Equal(t, "chat", info.Operation)
	assert.True(t, info.Stream)
	assert.Equal(t, 64, info.MaxTokens)
	assert.Equal(t, 0.2, *info.Temperature)
	assert.Equal(t, 0.9, *info.TopP)
	assert.Equal(t, int64(7), *info.Seed)
	assert.Equal(t, 0.1, *info.FrequencyPenalty)
	assert.Equal(t, 0.3, *info.PresencePenalty)
	assert.Equal(t, []string{"\n\n"}, info.StopSequences)
	assert.Equal(t, 1, info.ChoiceCount)
	assert.Equal(t, "json", info.OutputType)
	assert.Equal(t, "127.0.0.1", info.ServerAddress)
	assert.Positive(t, info.ServerPort)
	assert.Equal(t, 3, rec.chunks, "one per chunk with content after the first: two words and the finish reason")
}
