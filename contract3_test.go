package inference_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
	"github.com/hfkit/inference/internal/redact"
)

// Contract holes III: each test below failed on ac8b712 for the reason its
// comment names.

// wrappingObserver derives the attempt's context, as an OpenTelemetry
// observer does (a span in a context value): whatever it returns, the
// walk's own per-attempt state must survive.
type wrappingObserver struct{ recorder }

type spanKey struct{}

func (w *wrappingObserver) StartCall(ctx context.Context, info inference.CallInfo) (context.Context, inference.CallObserver) {
	w.add("call %s", info.Model)
	return context.WithValue(ctx, spanKey{}, "call"), w
}

func (w *wrappingObserver) StartAttempt(ctx context.Context, c inference.Candidate, source string) context.Context {
	w.add("attempt %s", c)
	return context.WithValue(ctx, spanKey{}, "attempt "+c.String())
}

// Item 1: a primary that answered a 503 and waits 400 ms to be retried is
// not slow: the hedge waits with it, whatever the observer. On ac8b712
// an observer's context lost the hedge's clock, and the requests were
// [org/m:together org/m:groq].
func TestHedgeWaitsWithARetryWhateverTheObserver(t *testing.T) {
	for _, tc := range []struct {
		name string
		obs  inference.Observer
	}{
		{"no observer", nil},
		{"an observer that returns the context it got", &recorder{}},
		{"an observer that derives the context", &wrappingObserver{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRouter(t)
			r.On("org/m:together", inferencetest.ProviderError(503), inferencetest.Reply("primary"))
			r.On("org/m:groq", inferencetest.Reply("hedge"))
			opts := []inference.Option{inference.WithHedge(100 * time.Millisecond),
				inference.WithRetry(inference.RetryPolicy{MaxRetries: 1, MinWait: 400 * time.Millisecond, MaxWait: 400 * time.Millisecond})}
			if tc.obs != nil {
				opts = append(opts, inference.WithObserver(tc.obs))
			}
			c, err := r.Client(opts...)
			require.NoError(t, err)
			resp, err := c.Chat(t.Context(), hedgeReq())
			require.NoError(t, err)
			assert.Equal(t, "primary", resp.Text())
			assert.Equal(t, []string{"org/m:together", "org/m:together"}, r.Models(), "the retry wait is not slowness")
			require.Len(t, resp.Attempts, 1)
			assert.Equal(t, 1, resp.Attempts[0].Retries)
		})
	}
}

// Item 2: a scope failure that comes slowly (after the hedge delay) moves
// to the next token on the same candidate, as without a hedge. On ac8b712
// both scope failures were taken as one pair and the good token reached
// only the fallback.
func TestHedgeSlowScopeFailureSwitchesTokensOnThePrimary(t *testing.T) {
	const scopeless = "hf_oauth_Scopelessssssssssssssssssssssss"
	const good = "hf_GoodTokenGggggggggggggggggggggggggggg"
	for _, hedge := range []time.Duration{0, 50 * time.Millisecond} {
		t.Run(fmt.Sprintf("hedge %s", hedge), func(t *testing.T) {
			r := newRouter(t)
			refused := inferencetest.ResponseFailed(
				"403 This authentication method does not have sufficient permissions to call Inference Providers on behalf of user alice")
			r.ForToken(scopeless, func(w http.ResponseWriter, req *inferencetest.Request) {
				// The hedge's refusal comes well after the primary's, so that
				// a busy machine cannot swap them: the one refused first is
				// sent the next token.
				d := 150 * time.Millisecond
				if req.Provider == "groq" {
					d += 500 * time.Millisecond
				}
				inferencetest.Delay(d, refused)(w, req)
			})
			r.On("org/m:together", inferencetest.ResponseReply("from the primary"))
			r.On("org/m:groq", inferencetest.ResponseReply("from the fallback"))
			c, err := r.Client(inference.WithTokenSource(inference.ChainTokens(inference.StaticToken(scopeless), inference.StaticToken(good))),
				inference.WithHedge(hedge))
			require.NoError(t, err)
			resp, err := c.Respond(t.Context(), inference.ResponseRequest{Model: "org/m", Provider: "together", InputText: "hi",
				Fallbacks: []inference.Candidate{{Model: "org/m", Provider: "groq"}}})
			require.NoError(t, err)
			assert.Equal(t, "from the primary", resp.OutputText(), "the primary answered with the next token")
			served := resp.Attempts[len(resp.Attempts)-1]
			assert.Equal(t, "org/m:together", served.Candidate.String())
			assert.NoError(t, served.Err)
			var goodOn []string
			for _, q := range r.Requests() {
				if q.TokenPrefix == redact.Prefix(good) {
					goodOn = append(goodOn, q.Candidate().String())
				}
			}
			assert.Equal(t, []string{"org/m:together"}, goodOn, "the good token went to the primary, once")
		})
	}
}

// Item 3: a walk that a 402 stops matches ErrPaymentRequired, even when
// the hedge's 503 came after it; the hedge's failure cools its candidate.
// On ac8b712 the error was the hedge's ErrProvider and groq was not cooled.
func TestHedgeStoppedByAPaymentFailureReportsIt(t *testing.T) {
	r := newRouter(t)
	r.On("org/m:together", inferencetest.Delay(100*time.Millisecond, inferencetest.PaymentRequired()))
	r.On("org/m:groq", inferencetest.Delay(150*time.Millisecond, inferencetest.ProviderError(503)))
	r.On("org/other", inferencetest.Reply("other"))
	c, err := r.Client(inference.WithHedge(50*time.Millisecond), inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), hedgeReq())
	require.Error(t, err)
	assert.Equal(t, []error{inference.ErrPaymentRequired}, matchedKinds(err), "the failure that ended the walk")
	var fe *inference.FallbackError
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Attempts, 2)
	assert.Equal(t, inference.ErrPaymentRequired, fe.Attempts[len(fe.Attempts)-1].Kind())
	var hedged inference.Attempt
	for _, a := range fe.Attempts {
		if a.Hedge {
			hedged = a
		}
	}
	assert.Equal(t, inference.ErrProvider, hedged.Kind(), "the hedge's failure is recorded as a failure")
	assert.False(t, hedged.Lost)

	req := chatReq("org/m", "groq")
	req.Fallbacks = []inference.Candidate{{Model: "org/other"}}
	resp, err := c.Chat(t.Context(), req)
	require.NoError(t, err)
	assert.Equal(t, []inference.Candidate{{Model: "org/m", Provider: "groq"}}, resp.Skipped, "the hedge's 503 cooled its candidate")
}

// hostGuard is a transport that fails every host but the fake's, and
// remembers what it refused.
type hostGuard struct {
	allowed string
	mu      sync.Mutex
	refused []string
}

func (g *hostGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != g.allowed {
		g.mu.Lock()
		g.refused = append(g.refused, r.Method+" "+r.URL.String())
		g.mu.Unlock()
		return nil, errors.New("this test allows no host but the fake router's")
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (g *hostGuard) seen() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.refused...)
}

// Item 9: the inferencetest package doc's setup stays on the machine, and
// the mistake it used to show (a fake router with the default Hub) is
// refused loudly before the token leaves. On ac8b712 Embed sent three GETs
// with the fake token to https://huggingface-proxy-6ci.pages.dev/api/models/... and took 1.4 s.
func TestATestClientNeverSendsItsTokenToTheRealHub(t *testing.T) {
	t.Setenv("HF_ENDPOINT", "")
	r := newRouter(t)
	r.AddModel(inferencetest.HubModel{ID: "org/emb", Providers: []inferencetest.HubProvider{
		{Name: "together", Status: "live", ProviderID: "org/emb-together", Task: "feature-extraction"}}})
	r.On("org/emb:together", inferencetest.EmbeddingReply(8))
	u, err := url.Parse(r.URL())
	require.NoError(t, err)
	req := inference.EmbedRequest{Model: "org/emb", Inputs: []string{"a", "b"}}

	t.Run("the documented setup", func(t *testing.T) {
		guard := &hostGuard{allowed: u.Host}
		c, err := r.Client(inference.WithHTTPClient(&http.Client{Transport: guard}))
		require.NoError(t, err)
		resp, err := c.Embed(t.Context(), req)
		require.NoError(t, err)
		assert.Len(t, resp.Vectors, 2)
		assert.Empty(t, guard.seen())
	})
	t.Run("a fake router and no Hub named", func(t *testing.T) {
		guard := &hostGuard{allowed: u.Host}
		c, err := inference.NewClient(inference.WithBaseURL(r.URL()), inference.WithToken(inferencetest.Token),
			inference.WithHTTPClient(&http.Client{Transport: guard}))
		require.NoError(t, err)
		start := time.Now()
		_, err = c.Embed(t.Context(), req)
		require.Error(t, err)
		assert.Less(t, time.Since(start), time.Second)
		assert.Equal(t, []error{inference.ErrInvalidRequest}, matchedKinds(err))
		assert.Contains(t, err.Error(), "WithHubURL")
		assert.Empty(t, guard.seen(), "nothing left the machine")
		_, err = c.HubModel(t.Context(), "org/emb")
		assert.ErrorIs(t, err, inference.ErrInvalidRequest)
		assert.Empty(t, guard.seen())
	})
	t.Run("a fake router, no Hub named, and an OIDC token to exchange", func(t *testing.T) {
		t.Setenv("HF_OIDC_RESOURCE", "org/space")
		t.Setenv("HF_OIDC_ID_TOKEN", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJjaSJ9.c2ln")
		t.Setenv("HF_TOKEN", inferencetest.Token)
		r.On("org/chat", inferencetest.Reply("served"))
		guard := &hostGuard{allowed: u.Host}
		c, err := inference.NewClient(inference.WithBaseURL(r.URL()), inference.WithHTTPClient(&http.Client{Transport: guard}))
		require.NoError(t, err)
		resp, err := c.Chat(t.Context(), chatReq("org/chat", ""))
		require.NoError(t, err, "the chain went on to HF_TOKEN")
		assert.Equal(t, "served", resp.Text())
		assert.Empty(t, guard.seen(), "the id token was not exchanged on the public Hub")
	})
	t.Run("a fake router and the public Hub named on purpose", func(t *testing.T) {
		guard := &hostGuard{allowed: u.Host}
		c, err := inference.NewClient(inference.WithBaseURL(r.URL()), inference.WithHubURL("https://huggingface-proxy-6ci.pages.dev"),
			inference.WithToken(inferencetest.Token), inference.WithHTTPClient(&http.Client{Transport: guard}),
			inference.WithRetry(inference.RetryPolicy{}))
		require.NoError(t, err)
		_, _ = c.HubModel(t.Context(), "org/emb")
		assert.Len(t, guard.seen(), 1, "named on purpose, the Hub is asked")
	})
}

// Item 10: once the caller's context is done, Next returns false and Err
// matches context.Canceled, even while chunks wait in the buffer. On
// ac8b712 Next delivered all eight chunks and Err was nil.
func TestCancelStopsAStreamWithBufferedChunks(t *testing.T) {
	pieces := strings.SplitAfter("1 2 3 4 5 6 7 8", " ")
	t.Run("chat", func(t *testing.T) {
		for _, recovery := range []bool{false, true} {
			r := newRouter(t)
			r.On("org/m", inferencetest.Stream(pieces...))
			c, err := r.Client()
			require.NoError(t, err)
			var opts []inference.Option
			if recovery {
				opts = append(opts, inference.WithStreamRecovery())
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			s, err := c.ChatStream(ctx, chatReq("org/m", ""), opts...)
			require.NoError(t, err)
			var got []string
			for s.Next() {
				got = append(got, s.Current().Text())
				if len(got) == 3 {
					cancel()
				}
			}
			assert.Equal(t, pieces[:3], got, "recovery %v: nothing after the cancel", recovery)
			assert.ErrorIs(t, s.Err(), context.Canceled)
			assert.False(t, s.Next())
			s.Close()
		}
	})
	t.Run("responses", func(t *testing.T) {
		r := newRouter(t)
		r.On("org/m", inferencetest.ResponseReply("1 2 3 4 5 6 7 8"))
		c, err := r.Client()
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		s, err := c.RespondStream(ctx, inference.ResponseRequest{Model: "org/m", InputText: "count"})
		require.NoError(t, err)
		deltas := 0
		for s.Next() {
			if s.Current().Type == "response.output_text.delta" {
				deltas++
				if deltas == 3 {
					cancel()
				}
			}
		}
		assert.Equal(t, 3, deltas)
		assert.ErrorIs(t, s.Err(), context.Canceled)
		s.Close()
	})
}

// Every error the library returns is of exactly one kind: a client
// option's refusal in NewClient too (ErrInvalidRequest, as per call), and
// a device login that ended without a token (ErrUnauthorized). Found by
// trying the library as a new user: these matched no kind.
func TestEveryRefusalIsOfOneKind(t *testing.T) {
	for name, opt := range map[string]inference.Option{
		"WithHedgeBudget(150)":     inference.WithHedgeBudget(150),
		"WithBaseURL(ftp)":         inference.WithBaseURL("ftp://x"),
		"WithCooldown(-1s)":        inference.WithCooldown(-time.Second),
		"WithTokenSource(nil)":     inference.WithTokenSource(nil),
		"WithHubURL(http off box)": inference.WithHubURL("http://hub.example.com"),
	} {
		_, err := inference.NewClient(opt)
		require.Error(t, err, name)
		assert.Equal(t, []error{inference.ErrInvalidRequest}, matchedKinds(err), name)
	}
	_, err := inference.NewClient(inference.WithToken("None"))
	assert.Equal(t, []error{inference.ErrInvalidToken}, matchedKinds(err), "a token option keeps its own kind")
	assert.Equal(t, []error{inference.ErrUnauthorized}, matchedKinds(inference.ErrLoginExpired))
	assert.Equal(t, []error{inference.ErrUnauthorized}, matchedKinds(inference.ErrLoginDenied))
}

// A Responses request is checked before it is sent as a chat request is:
// a temperature or top_p out of range never reaches the router. Found by
// trying the library as a new user: Respond sent temperature 3.
func TestRespondChecksItsParametersBeforeSending(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", inferencetest.ResponseReply("hi"))
	c, err := r.Client()
	require.NoError(t, err)
	three, two, one5 := 3.0, 2.0, 1.5
	for _, req := range []inference.ResponseRequest{
		{Model: "org/m", InputText: "hi", Temperature: &three},
		{Model: "org/m", InputText: "hi", TopP: &one5},
		{Model: "org/m", InputText: "hi", MaxOutputTokens: -1},
	} {
		_, err := c.Respond(t.Context(), req)
		assert.ErrorIs(t, err, inference.ErrInvalidRequest)
	}
	assert.Empty(t, r.Requests(), "nothing was sent")
	_, err = c.Respond(t.Context(), inference.ResponseRequest{Model: "org/m", InputText: "hi", Temperature: &two})
	require.NoError(t, err)
}
