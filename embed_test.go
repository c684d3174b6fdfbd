package inference_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
	"github.com/hfkit/inference/internal/redact"
)

const embedModel = "sentence-transformers/all-MiniLM-L6-v2"

// embedRouter maps embedModel to together (its id "togethercomputer/m2-bert")
// and hf-inference, both live, in that order.
func embedRouter(t *testing.T) *inferencetest.Router {
	r := newRouter(t)
	r.AddModel(inferencetest.HubModel{ID: embedModel, PipelineTag: "feature-extraction", Providers: []inferencetest.HubProvider{
		{Name: "together", Status: "live", ProviderID: "togethercomputer/m2-bert"},
		{Name: "hf-inference", Status: "live", ProviderID: embedModel},
	}})
	r.AddModel(inferencetest.HubModel{ID: "BAAI/bge-small-en-v1.5", PipelineTag: "feature-extraction", Providers: []inferencetest.HubProvider{
		{Name: "hf-inference", Status: "live", ProviderID: "BAAI/bge-small-en-v1.5"},
	}})
	return r
}

func embedReq(model string, inputs ...string) inference.EmbedRequest {
	return inference.EmbedRequest{Model: model, Inputs: inputs}
}

func TestEmbedServesBothWireShapes(t *testing.T) {
	verifyNoLeaks(t)
	for _, provider := range []string{"together", "hf-inference"} {
		t.Run(provider, func(t *testing.T) {
			r := embedRouter(t)
			r.On(embedModel+":"+provider, inferencetest.EmbeddingReply(384))
			c, err := r.Client()
			require.NoError(t, err)
			req := embedReq(embedModel, "a cat sat", "a dog ran")
			req.Provider = provider
			resp, err := c.Embed(t.Context(), req)
			require.NoError(t, err)
			require.Len(t, resp.Vectors, 2)
			assert.Equal(t, inferencetest.EmbeddingVector("a cat sat", 384), resp.Vectors[0])
			assert.Equal(t, inferencetest.EmbeddingVector("a dog ran", 384), resp.Vectors[1])
			assert.Equal(t, 384, resp.Dimensions())
			assert.Equal(t, embedModel, resp.Model, "whose vector space")
			assert.Equal(t, provider, resp.Provider)
			reqs := r.Requests()
			require.Len(t, reqs, 1)
			assert.Equal(t, []string{"a cat sat", "a dog ran"}, reqs[0].Inputs)
			if provider == "together" {
				assert.Contains(t, string(reqs[0].Body), `"model":"togethercomputer/m2-bert"`, "the provider's own id")
				assert.Equal(t, 6, resp.Usage.PromptTokens)
			}
		})
	}
}

// Providers of one model replace each other: together fails, hf-inference
// serves, in the same vector space.
func TestEmbedFallsBackWithinOneModel(t *testing.T) {
	r := embedRouter(t)
	r.On(embedModel+":together", inferencetest.ProviderError(503))
	r.On(embedModel+":hf-inference", inferencetest.EmbeddingReply(8))
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	resp, err := c.Embed(t.Context(), embedReq(embedModel, "hello"))
	require.NoError(t, err)
	assert.Equal(t, embedModel, resp.Model)
	assert.Equal(t, "hf-inference", resp.Provider)
	require.Len(t, resp.Attempts, 2)
	assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(resp.Attempts[0].Err))
	assert.Equal(t, []string{embedModel + ":together", embedModel + ":hf-inference"}, r.Models())
}

// Another model is another vector space: the client's fallbacks never
// apply; the request's own Fallbacks do, and Model says whose space.
func TestEmbedNeverMovesToAnotherModelSilently(t *testing.T) {
	r := embedRouter(t)
	r.On(embedModel, inferencetest.ProviderError(503))
	r.On("BAAI/bge-small-en-v1.5:hf-inference", inferencetest.EmbeddingReply(16))
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}), inference.WithCooldown(0),
		inference.WithFallback(inference.Candidate{Model: "BAAI/bge-small-en-v1.5"}))
	require.NoError(t, err)

	_, err = c.Embed(t.Context(), embedReq(embedModel, "hello"))
	require.Error(t, err)
	assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(err))
	for _, m := range r.Models() {
		assert.True(t, strings.HasPrefix(m, embedModel), "only the request's model: %s", m)
	}

	req := embedReq(embedModel, "hello")
	req.Fallbacks = []inference.Candidate{{Model: "BAAI/bge-small-en-v1.5"}}
	resp, err := c.Embed(t.Context(), req)
	require.NoError(t, err)
	assert.Equal(t, "BAAI/bge-small-en-v1.5", resp.Model, "the fallback's space, said")
	assert.Len(t, resp.Vectors[0], 16)
}

// A long input list goes in batches, concurrently, reassembled in order,
// and every batch is served by the model that served the first.
func TestEmbedBatchesInOrderByOneModel(t *testing.T) {
	verifyNoLeaks(t)
	r := embedRouter(t)
	r.On(embedModel, inferencetest.ProviderError(503))
	r.On("BAAI/bge-small-en-v1.5:hf-inference", func(w http.ResponseWriter, req *inferencetest.Request) {
		time.Sleep(time.Duration(rand.IntN(5)) * time.Millisecond) // batches finish out of order
		inferencetest.EmbeddingReply(32)(w, req)
	})
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	inputs := make([]string, 100)
	for i := range inputs {
		inputs[i] = fmt.Sprintf("sentence number %d about topic %d", i, i%7)
	}
	req := embedReq(embedModel, inputs...)
	req.BatchSize, req.Concurrency = 8, 4
	req.Fallbacks = []inference.Candidate{{Model: "BAAI/bge-small-en-v1.5"}}
	resp, err := c.Embed(t.Context(), req)
	require.NoError(t, err)
	require.Len(t, resp.Vectors, 100)
	for i, in := range inputs {
		assert.Equal(t, inferencetest.EmbeddingVector(in, 32), resp.Vectors[i], "vector %d in input order", i)
	}
	assert.Equal(t, "BAAI/bge-small-en-v1.5", resp.Model)
	served := 0
	for _, q := range r.Requests() {
		if q.Model == "BAAI/bge-small-en-v1.5" {
			served++
			assert.LessOrEqual(t, len(q.Inputs), 8)
		}
	}
	assert.Equal(t, 13, served, "13 batches of at most 8, all by the first batch's model")
	assert.Len(t, resp.Attempts, 3+12, "the first batch's walk (two providers failed, the fallback served), then one attempt per other batch")
}

// A later batch that fails on every provider of the serving model fails
// the call, saying which inputs, with exactly one kind.
func TestEmbedBatchFailureSaysWhichInputs(t *testing.T) {
	verifyNoLeaks(t)
	r := embedRouter(t)
	r.On(embedModel+":together", inferencetest.Gated())
	r.On(embedModel+":hf-inference", func(w http.ResponseWriter, req *inferencetest.Request) {
		if strings.HasPrefix(req.Inputs[0], "bad") {
			inferencetest.ProviderError(502)(w, req)
			return
		}
		inferencetest.EmbeddingReply(4)(w, req)
	})
	// together, gated for the client's account, cools for its calls: the
	// later batches walk hf-inference alone.
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	req := embedReq(embedModel, "a", "b", "bad c", "d", "e")
	req.BatchSize = 2
	_, err = c.Embed(t.Context(), req)
	var be *inference.EmbedBatchError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, 2, be.First)
	assert.Equal(t, 4, be.Last)
	assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(err))
	assert.Contains(t, err.Error(), "inputs 2 to 3")
	var apiErr *inference.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 502, apiErr.StatusCode)
}

func TestEmbedRefusesPerTokenAnswers(t *testing.T) {
	r := embedRouter(t)
	r.AddModel(inferencetest.HubModel{ID: "facebook/bart-base", PipelineTag: "feature-extraction", Providers: []inferencetest.HubProvider{{Name: "hf-inference", Status: "live"}}})
	r.On("facebook/bart-base:hf-inference", inferencetest.TokenEmbeddings(768))
	c, err := r.Client()
	require.NoError(t, err)
	_, err = c.Embed(t.Context(), embedReq("facebook/bart-base", "hello", "That is a happy person"))
	require.Error(t, err)
	assert.Equal(t, []error{inference.ErrModelNotSupported}, matchedKinds(err))
	for _, want := range []string{"facebook/bart-base", "one vector per token", "2×", "×768", "sentence-embedding model"} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestEmbedMalformedAnswersAreProviderFailures(t *testing.T) {
	for name, body := range map[string]string{
		"short":    `[[1,2]]`,
		"ragged":   `[[1,2],[3]]`,
		"a string": `[[1,"x"],[3,4]]`,
		"html":     `<html><body>Bad gateway</body></html>`,
	} {
		t.Run(name, func(t *testing.T) {
			r := embedRouter(t)
			r.On(embedModel+":hf-inference", inferencetest.RawEmbeddings(body))
			c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
			require.NoError(t, err)
			req := embedReq(embedModel, "one", "two")
			req.Provider = "hf-inference"
			_, err = c.Embed(t.Context(), req)
			require.Error(t, err)
			assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(err))
			assert.Contains(t, err.Error(), "hf-inference", "names the provider")
		})
	}
}

// Every attempt of every batch carries the call's user token and bill-to.
func TestEmbedPerUserTokenAndBillToOnEveryAttempt(t *testing.T) {
	const userTok = "hf_oauth_Uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
	r := embedRouter(t)
	r.On(embedModel+":together", inferencetest.ProviderError(503))
	r.On(embedModel+":hf-inference", inferencetest.EmbeddingReply(4))
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}), inference.WithCooldown(0))
	require.NoError(t, err)
	req := embedReq(embedModel, "a", "b", "c", "d", "e")
	req.BatchSize = 2
	resp, err := c.Embed(t.Context(), req,
		inference.WithUserTokenSource(inference.OAuthToken(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: userTok}))),
		inference.WithBillTo("acme-corp"), inference.WithHeader("X-Trace", "t1"))
	require.NoError(t, err)
	assert.Len(t, resp.Vectors, 5)
	reqs := r.Requests()
	require.GreaterOrEqual(t, len(reqs), 4)
	for _, q := range reqs {
		assert.Equal(t, redact.Prefix(userTok), q.TokenPrefix, q.Model+":"+q.Provider)
		assert.Equal(t, "acme-corp", q.Header.Get("X-Hf-Bill-To"))
		assert.Equal(t, "t1", q.Header.Get("X-Trace"))
	}
	assert.Equal(t, "call's oauth", resp.Attempts[0].TokenSource)
}

func TestEmbedRefusesBadRequests(t *testing.T) {
	r := embedRouter(t)
	c, err := r.Client()
	require.NoError(t, err)
	for name, req := range map[string]inference.EmbedRequest{
		"no model":        {Inputs: []string{"a"}},
		"no inputs":       {Model: embedModel},
		"empty input":     {Model: embedModel, Inputs: []string{"a", " "}},
		"bad direction":   {Model: embedModel, Inputs: []string{"a"}, TruncationDirection: "up"},
		"negative batch":  {Model: embedModel, Inputs: []string{"a"}, BatchSize: -1},
		"bad fallback":    {Model: embedModel, Inputs: []string{"a"}, Fallbacks: []inference.Candidate{{Model: "no slash"}}},
		"provider in two": {Model: embedModel + ":together", Provider: "groq", Inputs: []string{"a"}},
		"chat policy":     {Model: embedModel, Provider: "fastest", Inputs: []string{"a"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := c.Embed(t.Context(), req)
			require.Error(t, err)
			assert.Equal(t, []error{inference.ErrInvalidRequest}, matchedKinds(err), "%v", err)
			assert.Contains(t, err.Error(), "the request is invalid")
		})
	}
	assert.Empty(t, r.Requests(), "nothing is sent")
}

// The observer hears an embeddings call like a chat, as "embeddings".
func TestEmbedIsObserved(t *testing.T) {
	r := embedRouter(t)
	r.On(embedModel+":together", inferencetest.EmbeddingReply(4))
	rec := &recorder{}
	c, err := r.Client(inference.WithObserver(rec))
	require.NoError(t, err)
	_, err = c.Embed(t.Context(), embedReq(embedModel, "a"))
	require.NoError(t, err)
	assert.Equal(t, []string{"call embeddings " + embedModel + " stream=false", "attempt " + embedModel + ":together (static)",
		"end attempt " + embedModel + ":together: served", "end call: served from " + embedModel}, rec.events)
}
