package inference_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

func yes() *bool { v := true; return &v }
func no() *bool  { v := false; return &v }

// listed is a model with five providers of different prices, speeds and
// abilities; c is failing the router's checks.
var listed = inference.RouterModel{
	ID: "org/m", OwnedBy: "org", InputModalities: []string{"text", "image"}, OutputModalities: []string{"text"},
	Providers: []inference.ModelProvider{
		{Provider: "a", Status: "live", ContextLength: 131072, Pricing: &inference.Pricing{Input: 0.2, Output: 0.6}, Throughput: 100, SupportsTools: yes()},
		{Provider: "b", Status: "live", ContextLength: 131072, Pricing: &inference.Pricing{Input: 0.1, Output: 0.2}, Throughput: 50},
		{Provider: "c", Status: "error", Pricing: &inference.Pricing{Output: 0.01}, Throughput: 900},
		{Provider: "d", Status: "live", Throughput: 300, SupportsTools: no()},
		{Provider: "e", Status: "live", ContextLength: 1000, Pricing: &inference.Pricing{Output: 1.0}, SupportsStructuredOutput: no()},
	},
}

// walkOrder sends a ProviderEvery request to a router where every provider
// fails, and returns the order in which providers were tried.
func walkOrder(t *testing.T, req inference.ChatRequest, opts ...inference.Option) []string {
	t.Helper()
	r := newRouter(t)
	r.List(listed)
	r.Otherwise(inferencetest.ProviderError(503))
	c, err := r.Client(append([]inference.Option{inference.WithRetry(inference.RetryPolicy{}), inference.WithCooldown(0)}, opts...)...)
	require.NoError(t, err)
	req.Provider = inference.ProviderEvery
	_, err = c.Chat(t.Context(), req)
	require.ErrorIs(t, err, inference.ErrProvider)
	return r.Models()
}

func TestProviderExpansionOrder(t *testing.T) {
	base := chatReq("org/m", "")
	withTools := base
	withTools.Tools = []inference.Tool{inference.FunctionTool("f", "", json.RawMessage(`{"type":"object"}`))}
	longAnswer := base
	longAnswer.MaxTokens = 2000
	structured := base
	structured.ResponseFormat = &inference.ResponseFormat{Type: "json_object"}
	tests := []struct {
		name string
		req  inference.ChatRequest
		opts []inference.Option
		want []string
	}{
		{"router order, error status left out", base, nil, []string{"org/m:a", "org/m:b", "org/m:d", "org/m:e"}},
		{"cheapest, unknown price last", base, []inference.Option{inference.WithProviderOrder(inference.OrderCheapest)}, []string{"org/m:b", "org/m:a", "org/m:e", "org/m:d"}},
		{"fastest, unknown throughput last", base, []inference.Option{inference.WithProviderOrder(inference.OrderFastest)}, []string{"org/m:d", "org/m:a", "org/m:b", "org/m:e"}},
		{"caller's order first", base, []inference.Option{inference.WithProviderOrder(inference.OrderCheapest, "e", "d")}, []string{"org/m:e", "org/m:d", "org/m:b", "org/m:a"}},
		{"tools leave out providers without tool support", withTools, nil, []string{"org/m:a", "org/m:b", "org/m:e"}},
		{"a context too short is left out", longAnswer, nil, []string{"org/m:a", "org/m:b", "org/m:d"}},
		{"structured output", structured, nil, []string{"org/m:a", "org/m:b", "org/m:d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, walkOrder(t, tt.req, tt.opts...))
		})
	}
}

func TestProviderAWith429ProviderBServes(t *testing.T) {
	r := newRouter(t)
	r.List(inference.RouterModel{ID: "org/m", Providers: []inference.ModelProvider{{Provider: "groq", Status: "live"}, {Provider: "together", Status: "live"}}})
	r.On("org/m:groq", inferencetest.RateLimited(0))
	r.On("org/m:together", inferencetest.ReplyFrom("together", "served by B"))
	r.On("org/m", inferencetest.Reply("the router's choice: never asked"))
	var logs bytes.Buffer
	c, err := r.Client(inference.WithProviderWalk(), inference.WithRetry(inference.RetryPolicy{}),
		inference.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)

	resp, err := c.Chat(t.Context(), chatReq("org/m", "")) // only the model is named
	require.NoError(t, err)
	assert.Equal(t, "served by B", resp.Text())
	assert.Equal(t, []string{"org/m:groq", "org/m:together"}, r.Models())
	require.Len(t, resp.Attempts, 2)
	assert.Equal(t, inference.Candidate{Model: "org/m", Provider: "groq"}, resp.Attempts[0].Candidate)
	assert.Equal(t, inference.ErrRateLimited, resp.Attempts[0].Kind())
	assert.Equal(t, "together", resp.Provider)
	assert.Contains(t, logs.String(), `msg="inference: expanded the model into its providers" model=org/m providers=groq,together order=preferred`)
}

func TestModelListIsCachedAndSurvivesAFailingRefresh(t *testing.T) {
	r := newRouter(t)
	r.List(listed)
	var logs bytes.Buffer
	c, err := r.Client(inference.WithModelsTTL(30*time.Millisecond), inference.WithRetry(inference.RetryPolicy{}),
		inference.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)

	models, err := c.RouterModels(t.Context())
	require.NoError(t, err)
	require.Len(t, models, 1)
	assert.Equal(t, listed, models[0])
	_, err = c.RouterModel(t.Context(), "org/m")
	require.NoError(t, err)
	assert.Equal(t, 1, r.ListRequests(), "served from the cache")

	r.ListAnswer(inferencetest.ProviderError(503))
	time.Sleep(40 * time.Millisecond)
	m, err := c.RouterModel(t.Context(), "org/m")
	require.NoError(t, err, "a failed refresh keeps the older list")
	assert.Len(t, m.Providers, 5)
	assert.Equal(t, 2, r.ListRequests())
	assert.Contains(t, logs.String(), "keeping the older list")

	// An explicit refresh reports its failure, and still keeps the list.
	require.ErrorIs(t, c.RefreshRouterModels(t.Context()), inference.ErrProvider)
	_, err = c.RouterModel(t.Context(), "org/m")
	require.NoError(t, err)
	r.ListAnswer(nil)
	require.NoError(t, c.RefreshRouterModels(t.Context()))
}

func TestDiscoveryFailureFallsBackToTheRouter(t *testing.T) {
	r := newRouter(t)
	r.ListAnswer(inferencetest.ProviderError(503))
	r.On("org/m", inferencetest.Reply("the router chose"))
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq("org/m", inference.ProviderEvery))
	require.NoError(t, err, "discovery failing is never an error")
	assert.Equal(t, "the router chose", resp.Text())
	assert.Equal(t, []string{"org/m"}, r.Models())

	_, err = c.RouterModels(t.Context())
	require.ErrorIs(t, err, inference.ErrProvider, "with no list held, Models reports the failure")
	r.ListAnswer(nil)
	_, err = c.RouterModel(t.Context(), "org/unknown")
	require.ErrorIs(t, err, inference.ErrModelNotFound)
}
