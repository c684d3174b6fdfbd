package inferencetest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func chat(model, provider string) inference.ChatRequest {
	return inference.ChatRequest{Model: model, Provider: provider, Messages: []inference.Message{inference.UserMessage("hi")}}
}

func TestEveryReadyMadeAnswerIsClassified(t *testing.T) {
	tests := []struct {
		name   string
		answer inferencetest.Answer
		kind   error
		status int
	}{
		{"missing scope", inferencetest.MissingScope(), inference.ErrMissingScope, 403},
		{"invalid token", inferencetest.InvalidToken(), inference.ErrUnauthorized, 401},
		{"gated", inferencetest.Gated(), inference.ErrGatedModel, 403},
		{"gated 401", inferencetest.GatedUnauthenticated(), inference.ErrGatedModel, 401},
		{"not found", inferencetest.ModelNotFound(), inference.ErrModelNotFound, 400},
		{"not supported", inferencetest.NotSupported(), inference.ErrModelNotSupported, 400},
		{"credits", inferencetest.PaymentRequired(), inference.ErrPaymentRequired, 402},
		{"rate limited", inferencetest.RateLimited(30 * time.Second), inference.ErrRateLimited, 429},
		{"rate limited, no Retry-After", inferencetest.RateLimited(0), inference.ErrRateLimited, 429},
		{"provider 502", inferencetest.ProviderError(502), inference.ErrProvider, 502},
		{"gateway page", inferencetest.GatewayTimeout(), inference.ErrProvider, 504},
		{"validation", inferencetest.Validation(), inference.ErrInvalidRequest, 422},
		{"provider 400", inferencetest.ProviderBadRequest(), inference.ErrInvalidRequest, 400},
		{"raw", inferencetest.Raw(418, nil, "teapot"), inference.ErrInvalidRequest, 418},
		{"dropped", inferencetest.Drop(), inference.ErrProvider, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := inferencetest.NewRouter()
			defer r.Close()
			r.On("org/model", tt.answer)
			c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
			require.NoError(t, err)
			defer c.CloseIdleConnections()
			_, err = c.Chat(t.Context(), chat("org/model", ""))
			require.ErrorIs(t, err, tt.kind)
			var apiErr *inference.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tt.status, apiErr.StatusCode)
		})
	}
}

func TestScriptsQueueAndRecord(t *testing.T) {
	r := inferencetest.NewRouter()
	defer r.Close()
	r.On("org/a", inferencetest.ProviderError(503), inferencetest.Reply("second"))
	r.On("org/a:groq", inferencetest.ReplyFrom("groq", "pinned"))
	c, err := r.Client()
	require.NoError(t, err)
	defer c.CloseIdleConnections()

	resp, err := c.Chat(t.Context(), chat("org/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "second", resp.Text())
	resp, err = c.Chat(t.Context(), chat("org/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "second", resp.Text(), "the last answer repeats")
	resp, err = c.Chat(t.Context(), chat("org/a", "groq"))
	require.NoError(t, err)
	assert.Equal(t, "pinned", resp.Text())
	assert.Equal(t, "groq", resp.Provider)

	assert.Equal(t, []string{"org/a", "org/a", "org/a", "org/a:groq"}, r.Models())
	reqs := r.Requests()
	require.Len(t, reqs, 4)
	assert.Equal(t, "groq", reqs[3].Provider)
	assert.Equal(t, "hf_in…", reqs[0].TokenPrefix)
	assert.False(t, reqs[0].Stream)
	assert.Contains(t, string(reqs[0].Body), `"messages"`)
	assert.Equal(t, "Bearer [redacted]", reqs[0].Header.Get("Authorization"))
	assert.Nil(t, reqs[0].HTTP)
	assert.NotContains(t, fmt.Sprintf("%+v", reqs), inferencetest.Token[5:], "recorded requests never hold the token")

	r.Reset()
	assert.Empty(t, r.Requests())
	_, err = c.Chat(t.Context(), chat("org/a", ""))
	require.NoError(t, err)
	assert.Len(t, r.Requests(), 2, "scripts restart after Reset")
}

func TestUnscriptedAndTokenless(t *testing.T) {
	r := inferencetest.NewRouter()
	defer r.Close()
	c, err := r.Client()
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	_, err = c.Chat(t.Context(), chat("nobody/nothing", ""))
	require.ErrorIs(t, err, inference.ErrModelNotFound)
	assert.Contains(t, err.Error(), "nobody/nothing")

	r.Otherwise(inferencetest.Reply("anything"))
	resp, err := c.Chat(t.Context(), chat("nobody/nothing", ""))
	require.NoError(t, err)
	assert.Equal(t, "anything", resp.Text())

	resp2, err := http.Post(r.URL()+"/v1/chat/completions", "application/json", nil)
	require.NoError(t, err)
	resp2.Body.Close()
	assert.Equal(t, 401, resp2.StatusCode, "no token, no answer")
	resp3, err := http.Get(r.URL() + "/elsewhere")
	require.NoError(t, err)
	resp3.Body.Close()
	assert.Equal(t, 404, resp3.StatusCode)
}

func TestForTokenAnswersByBearer(t *testing.T) {
	const scopeless = "hf_oauth_ScopelessUserTokenXXXXXXXXXXXXXX"
	r := inferencetest.NewRouter()
	defer r.Close()
	r.ForToken(scopeless, inferencetest.MissingScope())
	r.On("org/a", inferencetest.Reply("with HF_TOKEN"))
	t.Setenv("HF_TOKEN", inferencetest.Token)
	chain := inference.ChainTokens(inference.StaticToken(scopeless), inference.EnvToken())
	c, err := inference.NewClient(inference.WithBaseURL(r.URL()), inference.WithTokenSource(chain))
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	resp, err := c.Chat(t.Context(), chat("org/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "with HF_TOKEN", resp.Text())
	reqs := r.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "hf_oauth_Sc…", reqs[0].TokenPrefix)
	assert.Equal(t, "hf_in…", reqs[1].TokenPrefix)
}

func TestStreams(t *testing.T) {
	r := inferencetest.NewRouter()
	defer r.Close()
	r.On("org/a", inferencetest.Reply("one two three"))
	r.On("org/err", inferencetest.StreamError("CUDA out of memory", "partial ", "text"))
	r.On("org/cut", inferencetest.StreamCut("half"))
	c, err := r.Client()
	require.NoError(t, err)
	defer c.CloseIdleConnections()

	s, err := c.ChatStream(t.Context(), chat("org/a", ""))
	require.NoError(t, err)
	var text string
	for s.Next() {
		text += s.Current().Text()
	}
	require.NoError(t, s.Err())
	assert.Equal(t, "one two three", text)
	assert.True(t, r.Requests()[0].Stream)
	assert.Equal(t, 3, s.Response().Usage.CompletionTokens)

	s, err = c.ChatStream(t.Context(), chat("org/err", ""))
	require.NoError(t, err)
	for s.Next() {
	}
	require.ErrorIs(t, s.Err(), inference.ErrStream)
	assert.Contains(t, s.Err().Error(), "CUDA out of memory")
	assert.Equal(t, "partial text", s.Response().Text())

	s, err = c.ChatStream(t.Context(), chat("org/cut", ""))
	require.NoError(t, err)
	for s.Next() {
	}
	require.ErrorIs(t, s.Err(), inference.ErrStream)
}

func TestDelayHangAndClose(t *testing.T) {
	r := inferencetest.NewRouter()
	defer r.Close()
	r.On("org/slow", inferencetest.Delay(30*time.Millisecond, inferencetest.Reply("late")))
	r.On("org/hang", inferencetest.Hang())
	c, err := r.Client()
	require.NoError(t, err)
	defer c.CloseIdleConnections()

	start := time.Now()
	resp, err := c.Chat(t.Context(), chat("org/slow", ""))
	require.NoError(t, err)
	assert.Equal(t, "late", resp.Text())
	assert.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	_, err = c.Chat(ctx, chat("org/hang", ""))
	require.True(t, errors.Is(err, context.DeadlineExceeded))

	ctx, cancel = context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err = c.Chat(ctx, chat("org/slow", ""))
	require.ErrorIs(t, err, context.DeadlineExceeded, "a delayed answer gives up with the client")
}

func ExampleRouter() {
	r := inferencetest.NewRouter()
	defer r.Close()
	r.On("org/gated", inferencetest.Gated())
	r.On("org/backup:together", inferencetest.Reply("Hello from the backup."))

	c, _ := r.Client(inference.WithFallback(inference.Candidate{Model: "org/backup", Provider: "together"}))
	defer c.CloseIdleConnections()
	resp, err := c.Chat(context.Background(), chat("org/gated", ""))
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Text())
	fmt.Println(r.Models())
	// Output:
	// Hello from the backup.
	// [org/gated org/backup:together]
}

func ExampleRouter_ForToken() {
	r := inferencetest.NewRouter()
	defer r.Close()
	r.ForToken("hf_oauth_NoInferenceScopeXXXXXXXXXXXXXXXXX", inferencetest.MissingScope())

	c, _ := r.Client(inference.WithToken("hf_oauth_NoInferenceScopeXXXXXXXXXXXXXXXXX"))
	defer c.CloseIdleConnections()
	_, err := c.Chat(context.Background(), chat("org/model", ""))
	fmt.Println(errors.Is(err, inference.ErrMissingScope))
	// Output:
	// true
}

func TestHubEndpoints(t *testing.T) {
	r := inferencetest.NewRouter()
	defer r.Close()
	r.AddUser("hf_oauth_UserXXXXXXXXXXXXXXXXXXXXXXXXXXXX", inferencetest.HubUser{Name: "bob", OAuth: true})
	r.AddUser(inferencetest.Token, inferencetest.HubUser{Name: "alice", Orgs: []string{"acme"}})
	r.AddModel(inferencetest.HubModel{ID: "org/m", Gated: "auto", Providers: []inferencetest.HubProvider{{Name: "b", Status: "live", ProviderID: "m-b"}, {Name: "a", Status: "staging"}}})
	c, err := r.Client()
	require.NoError(t, err)
	defer c.CloseIdleConnections()

	who, err := c.Whoami(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "alice", who.Name)
	assert.Equal(t, []string{"acme"}, who.Orgs)
	assert.Equal(t, "read", who.Role)
	assert.Equal(t, inference.CapabilityYes, who.CanCallInference)

	m, err := c.HubModel(t.Context(), "org/m")
	require.NoError(t, err)
	assert.Equal(t, "auto", m.Gated)
	assert.Equal(t, []inference.ProviderMapping{{Provider: "b", Status: "live", ProviderID: "m-b", Task: "conversational"}, {Provider: "a", Status: "staging", Task: "conversational"}}, m.Providers)
	_, err = c.HubModel(t.Context(), "org/missing")
	require.ErrorIs(t, err, inference.ErrModelNotFound)

	oauthClient, err := r.Client(inference.WithToken("hf_oauth_UserXXXXXXXXXXXXXXXXXXXXXXXXXXXX"))
	require.NoError(t, err)
	defer oauthClient.CloseIdleConnections()
	who, err = oauthClient.Whoami(t.Context())
	require.NoError(t, err)
	assert.True(t, who.OAuth())
	assert.Equal(t, inference.CapabilityUnknown, who.CanCallInference)

	stranger, err := r.Client(inference.WithToken("hf_StrangerXXXXXXXXXXXXXXXXXXXXXXXXXXXX"))
	require.NoError(t, err)
	defer stranger.CloseIdleConnections()
	_, err = stranger.Whoami(t.Context())
	require.ErrorIs(t, err, inference.ErrUnauthorized)
}
