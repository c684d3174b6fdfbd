package inferencetest_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// The chat answers, the model list and the fake Hub not covered by
// router_test.go, as a user's client sees them.

func TestReplyFromNamesTheProvider(t *testing.T) {
	r, c := responseRouter(t)
	r.On("org/m", inferencetest.ReplyFrom("sambanova", "hello from sambanova"))
	resp, err := c.Chat(t.Context(), chat("org/m", ""))
	require.NoError(t, err)
	assert.Equal(t, "sambanova", resp.Provider)
	assert.Equal(t, "hello from sambanova", resp.Text())

	s, text := chatStream(t, c, "org/m")
	require.NoError(t, s.Err())
	assert.Equal(t, "hello from sambanova", text)
	assert.Equal(t, "sambanova", s.Response().Provider)

	// A Responses API request gets a response, as from Reply.
	rr, err := c.Respond(t.Context(), inference.ResponseRequest{Model: "org/m", InputText: "hi"})
	require.NoError(t, err)
	assert.Equal(t, "sambanova", rr.Provider)
	assert.Equal(t, "hello from sambanova", rr.OutputText())
	rs, err := c.RespondStream(t.Context(), inference.ResponseRequest{Model: "org/m", InputText: "hi"})
	require.NoError(t, err)
	defer rs.Close()
	for rs.Next() {
	}
	require.NoError(t, rs.Err())
	assert.Equal(t, "sambanova", rs.Response().Provider)
	assert.Equal(t, "hello from sambanova", rs.Response().OutputText())
}

// A policy or "auto" leaves the choice to the router: the fake serves it
// from together, as Reply says.
func TestReplyProviderOfAPolicy(t *testing.T) {
	r, c := responseRouter(t)
	r.On("org/m:fastest", inferencetest.Reply("fast"))
	r.On("org/m:groq", inferencetest.Reply("pinned"))
	resp, err := c.Chat(t.Context(), chat("org/m", inference.ProviderFastest))
	require.NoError(t, err)
	assert.Equal(t, "together", resp.Provider)
	resp, err = c.Chat(t.Context(), chat("org/m", "groq"))
	require.NoError(t, err)
	assert.Equal(t, "groq", resp.Provider)
}

func TestModelList(t *testing.T) {
	r, c := responseRouter(t)
	yes := true
	listed := []inference.RouterModel{{ID: "org/m", OwnedBy: "org", Created: 1765840584, InputModalities: []string{"text", "image"}, OutputModalities: []string{"text"},
		Providers: []inference.ModelProvider{{Provider: "groq", Status: "live", ContextLength: 131072, SupportsTools: &yes,
			Pricing: &inference.Pricing{Input: 0.15, Output: 0.6}}}}}
	r.List(listed...)
	models, err := c.RouterModels(t.Context())
	require.NoError(t, err)
	assert.Equal(t, listed, models)
	assert.Equal(t, 1, r.ListRequests())

	r.ListAnswer(inferencetest.ProviderError(503))
	require.ErrorIs(t, c.RefreshRouterModels(t.Context()), inference.ErrProvider)
	assert.Equal(t, 2, r.ListRequests())
	r.ListAnswer(nil)
	require.NoError(t, c.RefreshRouterModels(t.Context()))
	assert.Equal(t, 3, r.ListRequests())

	empty := inferencetest.NewRouter()
	defer empty.Close()
	c2, err := empty.Client()
	require.NoError(t, err)
	defer c2.CloseIdleConnections()
	models, err = c2.RouterModels(t.Context())
	require.NoError(t, err)
	assert.Empty(t, models, "without List the list is empty")
}

func TestWhoamiOfEveryKindOfToken(t *testing.T) {
	const (
		fine   = "hf_FineGrainedWithInferenceXXXXXXXXXXXXXX"
		denied = "hf_FineGrainedWithoutInferenceXXXXXXXXXXX"
		write  = "hf_WriteTokenXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
	)
	r, _ := responseRouter(t)
	r.AddUser(fine, inferencetest.HubUser{Name: "alice", Role: "fineGrained", TokenName: "ci", Permissions: []string{"inference.serverless.write"}})
	r.AddUser(denied, inferencetest.HubUser{Name: "alice", Role: "fineGrained"})
	r.AddUser(write, inferencetest.HubUser{Name: "bob", Role: "write"})
	for token, want := range map[string]struct {
		role string
		can  inference.Capability
	}{
		fine:   {"fineGrained", inference.CapabilityYes},
		denied: {"fineGrained", inference.CapabilityNo},
		write:  {"write", inference.CapabilityYes},
	} {
		c, err := r.Client(inference.WithToken(token))
		require.NoError(t, err)
		who, err := c.Whoami(t.Context())
		c.CloseIdleConnections()
		require.NoError(t, err)
		assert.Equal(t, want.role, who.Role, token)
		assert.Equal(t, want.can, who.CanCallInference, token)
	}
}

// Reset restarts the scripts of tokens and of the fallback too.
func TestResetRestartsEveryScript(t *testing.T) {
	const tok = "hf_ScriptedTokenXXXXXXXXXXXXXXXXXXXXXXXXX"
	r, _ := responseRouter(t)
	r.ForToken(tok, inferencetest.ProviderError(502), inferencetest.Reply("by token"))
	r.Otherwise(inferencetest.ProviderError(502), inferencetest.Reply("otherwise"))
	c, err := r.Client(inference.WithToken(tok), inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	other, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	defer other.CloseIdleConnections()
	for range 2 {
		_, err = c.Chat(t.Context(), chat("org/m", ""))
		require.ErrorIs(t, err, inference.ErrProvider, "each script starts from its first answer")
		_, err = other.Chat(t.Context(), chat("org/m", ""))
		require.ErrorIs(t, err, inference.ErrProvider)
		resp, err := c.Chat(t.Context(), chat("org/m", ""))
		require.NoError(t, err)
		assert.Equal(t, "by token", resp.Text())
		resp, err = other.Chat(t.Context(), chat("org/m", ""))
		require.NoError(t, err)
		assert.Equal(t, "otherwise", resp.Text())
		r.Reset()
	}
}

// On with no answer replies "ok"; an endpoint the fake does not serve is
// a 404.
func TestDefaultsOfTheFake(t *testing.T) {
	r, c := responseRouter(t)
	r.On("org/m")
	resp, err := c.Chat(t.Context(), chat("org/m", ""))
	require.NoError(t, err)
	assert.Equal(t, "ok", resp.Text())
	for _, path := range []string{"/v1/completions", "/hf-inference/models/org/m/pipeline/text-classification", "/v1/responses/resp_1"} {
		res, err := http.Get(r.URL() + path)
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, http.StatusNotFound, res.StatusCode, path)
	}
}

// The stream answers give a request that does not ask for a stream what
// the same provider would: the text whole, the failure as an error
// status, a cut connection. Found by trying the library as a new user:
// Stream answered Chat with server-sent events, which the client took for
// a broken provider and cooled.
func TestStreamAnswersServeAPlainChat(t *testing.T) {
	r, c := responseRouter(t)
	r.On("org/s", inferencetest.Stream("one ", "two"))
	resp, err := c.Chat(t.Context(), chat("org/s", ""))
	require.NoError(t, err)
	assert.Equal(t, "one two", resp.Text())

	r.On("org/e", inferencetest.StreamError("the model crashed", "one "))
	_, err = c.Chat(t.Context(), chat("org/e", ""))
	require.ErrorIs(t, err, inference.ErrProvider)
	assert.Contains(t, err.Error(), "the model crashed")

	r.On("org/c", inferencetest.StreamCut("one "))
	_, err = c.Chat(t.Context(), chat("org/c", ""))
	require.ErrorIs(t, err, inference.ErrProvider)
}
