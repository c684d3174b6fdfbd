package inferencetest_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// The embeddings answers, as a user's client sees them.

const embedModel = "org/emb"

// embedRouter maps embedModel to together, deepinfra and hf-inference, each
// under its own provider id.
func embedRouter(t *testing.T) (*inferencetest.Router, *inference.Client) {
	t.Helper()
	r, c := responseRouter(t)
	r.AddModel(inferencetest.HubModel{ID: embedModel, PipelineTag: "feature-extraction", Providers: []inferencetest.HubProvider{
		{Name: "together", Status: "live", ProviderID: "together/emb-v1"},
		{Name: "deepinfra", Status: "live", ProviderID: "deepinfra/emb"},
		{Name: "hf-inference", Status: "live", ProviderID: embedModel},
	}})
	return r, c
}

func embed(provider string, inputs ...string) inference.EmbedRequest {
	return inference.EmbedRequest{Model: embedModel, Provider: provider, Inputs: inputs}
}

func TestEmbeddingReplyOnEveryRoute(t *testing.T) {
	for _, provider := range []string{"together", "deepinfra", "hf-inference"} {
		t.Run(provider, func(t *testing.T) {
			r, c := embedRouter(t)
			r.On(embedModel+":"+provider, inferencetest.EmbeddingReply(16))
			resp, err := c.Embed(t.Context(), embed(provider, "a cat sat on the mat", "stock prices fell"))
			require.NoError(t, err)
			assert.Equal(t, [][]float32{inferencetest.EmbeddingVector("a cat sat on the mat", 16), inferencetest.EmbeddingVector("stock prices fell", 16)}, resp.Vectors)
			assert.Equal(t, provider, resp.Provider)
			assert.Equal(t, embedModel, resp.Model)
			reqs := r.Requests()
			require.Len(t, reqs, 1)
			assert.Equal(t, "embeddings", reqs[0].API)
			assert.Equal(t, embedModel, reqs[0].Model, "a provider's id is mapped back to the Hub id")
			assert.Equal(t, provider, reqs[0].Provider)
			assert.Equal(t, []string{"a cat sat on the mat", "stock prices fell"}, reqs[0].Inputs)
			if provider != "hf-inference" {
				assert.Equal(t, 9, resp.Usage.PromptTokens, "OpenAI-shaped answers count words as tokens")
			}
		})
	}
}

// A model no provider maps (unknown to the fake Hub) is scripted by its
// id alone, and a provider id not given to AddModel stays as sent.
func TestEmbeddingsScriptedByModel(t *testing.T) {
	r, c := responseRouter(t)
	r.AddModel(inferencetest.HubModel{ID: "org/other", PipelineTag: "sentence-similarity", Providers: []inferencetest.HubProvider{{Name: "nebius", Status: "live", ProviderID: "nebius-other"}}})
	r.On("org/other", inferencetest.EmbeddingReply(4))
	resp, err := c.Embed(t.Context(), inference.EmbedRequest{Model: "org/other", Inputs: []string{"one"}})
	require.NoError(t, err)
	assert.Equal(t, "nebius", resp.Provider)
	assert.Len(t, resp.Vectors[0], 4)
	assert.Equal(t, []string{"org/other:nebius"}, r.Models())
}

func TestTokenEmbeddingsAreRefused(t *testing.T) {
	r, c := embedRouter(t)
	r.On(embedModel+":hf-inference", inferencetest.TokenEmbeddings(8))
	_, err := c.Embed(t.Context(), embed("hf-inference", "two words", "three words here"))
	require.ErrorIs(t, err, inference.ErrModelNotSupported)
	assert.Contains(t, err.Error(), "one vector per token")
}

func TestRawEmbeddingsMalformed(t *testing.T) {
	r, c := embedRouter(t)
	r.On(embedModel+":together", inferencetest.RawEmbeddings(`{"object":"list","data":[{"index":0,"embedding":[1,"x"]}]}`))
	_, err := c.Embed(t.Context(), embed("together", "one"))
	require.ErrorIs(t, err, inference.ErrProvider)
	assert.Contains(t, err.Error(), "together")
}

func TestEmbeddingVector(t *testing.T) {
	norm := func(v []float32) float64 {
		var s float64
		for _, f := range v {
			s += float64(f) * float64(f)
		}
		return math.Sqrt(s)
	}
	dot := func(a, b []float32) float64 {
		var s float64
		for i := range a {
			s += float64(a[i]) * float64(b[i])
		}
		return s
	}
	cat, kitten, stocks := inferencetest.EmbeddingVector("The cat sat.", 64), inferencetest.EmbeddingVector("the CAT sat down", 64), inferencetest.EmbeddingVector("Stock prices fell", 64)
	for _, v := range [][]float32{cat, kitten, stocks} {
		assert.Len(t, v, 64)
		assert.InDelta(t, 1, norm(v), 1e-6, "unit length")
	}
	assert.Greater(t, dot(cat, kitten), dot(cat, stocks), "shared words are closer")
	assert.Equal(t, cat, inferencetest.EmbeddingVector("The cat sat.", 64), "deterministic")
	empty := inferencetest.EmbeddingVector("...", 3)
	assert.Equal(t, []float32{1, 0, 0}, empty, "a text without words still has length 1")
}
