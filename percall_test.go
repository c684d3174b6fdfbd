package inference_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
	"github.com/hfkit/inference/internal/redact"
)

// countingTransport is a pooled transport that counts the connections it
// dials.
func countingTransport(dials *atomic.Int32) *http.Transport {
	d := &net.Dialer{}
	return &http.Transport{
		MaxIdleConnsPerHost: 64,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
	}
}

func userToken(tok string) inference.Option {
	return inference.WithUserTokenSource(inference.OAuthToken(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tok})))
}

// TestOneClientTwoUsers serves two logged-in users through one client:
// user A's OAuth token lacks the scope and falls back to the app's token,
// user B's serves; neither's token ever reaches the other's requests, a
// refusal of A's never cools down B's, and one connection pool serves all.
func TestOneClientTwoUsers(t *testing.T) {
	const (
		tokenA = "hf_oauth_AaaaUserTokenAAAAAAAAAAAAAAAAAAAAA"
		tokenB = "hf_oauth_BbbbUserTokenBBBBBBBBBBBBBBBBBBBBB"
	)
	r := newRouter(t)
	r.ForToken(tokenA, inferencetest.MissingScope())
	r.ForToken(tokenB, inferencetest.ReplyFrom("together", "for B"))
	r.ForToken(inferencetest.Token, inferencetest.ReplyFrom("together", "for the app"))
	var dials atomic.Int32
	c, err := r.Client(inference.WithHTTPClient(&http.Client{Transport: countingTransport(&dials)}))
	require.NoError(t, err)

	ask := func(user, tok string) string {
		resp, err := c.Chat(t.Context(), chatReq("org/m", ""), userToken(tok), inference.WithHeader("X-App-User", user))
		require.NoError(t, err)
		return resp.Text()
	}
	for range 3 { // sequential: one connection serves every call
		assert.Equal(t, "for the app", ask("a", tokenA))
		assert.Equal(t, "for B", ask("b", tokenB))
	}
	assert.Equal(t, int32(1), dials.Load(), "one pool, one connection for sequential calls")

	var wg sync.WaitGroup
	for i := range 20 { // and concurrent calls share the same pool
		wg.Go(func() {
			if i%2 == 0 {
				assert.Equal(t, "for the app", ask("a", tokenA))
			} else {
				assert.Equal(t, "for B", ask("b", tokenB))
			}
		})
	}
	wg.Wait()
	// Twenty calls at once hold at most twenty connections; a connection
	// goes back to the pool a moment after its answer is read, so a
	// call's second request (A's, after the refusal) may dial once more.
	assert.LessOrEqual(t, dials.Load(), int32(1+2*20), "connections come from one pool")

	prefixA, prefixB, prefixApp := redact.Prefix(tokenA), redact.Prefix(tokenB), redact.Prefix(inferencetest.Token)
	requestsA := 0
	for _, q := range r.Requests() {
		switch q.Header.Get("X-App-User") {
		case "a":
			assert.Contains(t, []string{prefixA, prefixApp}, q.TokenPrefix, "A's calls carry A's or the app's token")
			if q.TokenPrefix == prefixA {
				requestsA++
			}
		case "b":
			assert.Equal(t, prefixB, q.TokenPrefix, "B's calls carry B's token only: A's refusal never moved them")
		default:
			t.Errorf("a request without the call's header: %v", q.Header)
		}
		assert.NotContains(t, q.Header.Get("Authorization"), "hf_", "recorded headers are redacted")
	}
	assert.Equal(t, 13, requestsA, "every call of A tried A's token first: it is never cooled for the client")
}

func TestBillToOnEveryAttempt(t *testing.T) {
	r := newRouter(t)
	r.On("org/down", inferencetest.ProviderError(503))
	r.On("org/up", inferencetest.ProviderError(502), inferencetest.Reply("billed"))
	c, err := r.Client(inference.WithBillTo("acme-corp"), inference.WithCooldown(0),
		inference.WithFallback(inference.Candidate{Model: "org/up"}))
	require.NoError(t, err)

	resp, err := c.Chat(t.Context(), chatReq("org/down", ""))
	require.NoError(t, err)
	assert.Equal(t, "billed", resp.Text())
	reqs := r.Requests()
	require.Len(t, reqs, 5, "3 tries of the primary, 2 of the fallback")
	for _, q := range reqs {
		assert.Equal(t, "acme-corp", q.Header.Get("X-HF-Bill-To"), q.Candidate().String())
	}

	r.Reset()
	_, err = c.Chat(t.Context(), chatReq("org/up", ""), inference.WithBillTo("other-org"))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), chatReq("org/up", ""), inference.WithBillTo(""))
	require.NoError(t, err)
	reqs = r.Requests()
	assert.Equal(t, "other-org", reqs[0].Header.Get("X-HF-Bill-To"), "a call overrides the client's organization")
	assert.Empty(t, reqs[len(reqs)-1].Header.Values("X-HF-Bill-To"), `"" bills the user`)
}

func TestCallOptionsAreChecked(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", inferencetest.Reply("ok"))
	c, err := r.Client()
	require.NoError(t, err)
	for name, opt := range map[string]inference.Option{
		"WithBaseURL":       inference.WithBaseURL("https://example.org"),
		"WithLogger":        inference.WithLogger(nil),
		"WithCooldown":      inference.WithCooldown(time.Second),
		"WithMiddleware":    inference.WithMiddleware(),
		"bill to a space":   inference.WithBillTo("acme corp"),
		"bill to a newline": inference.WithBillTo("acme\r\nX-Evil: 1"),
		"Authorization":     inference.WithHeader("Authorization", "Bearer x"),
		"header injection":  inference.WithHeader("X-Trace", "a\r\nX-Evil: 1"),
	} {
		_, err := c.Chat(t.Context(), chatReq("org/m", ""), opt)
		assert.ErrorIs(t, err, inference.ErrInvalidRequest, name)
		_, err = c.ChatStream(t.Context(), chatReq("org/m", ""), opt)
		assert.ErrorIs(t, err, inference.ErrInvalidRequest, name)
	}
	assert.Empty(t, r.Requests(), "nothing sent")
	_, err = inference.NewClient(inference.WithBillTo("acme corp"))
	assert.ErrorContains(t, err, "WithBillTo")
	_, err = c.Chat(t.Context(), chatReq("org/m", ""), inference.WithBaseURL("https://example.org"))
	assert.ErrorContains(t, err, "WithBaseURL configures the client and cannot be given per call")
}

func TestCallOptionsOverrideTheClient(t *testing.T) {
	r := newRouter(t)
	r.On("org/down", inferencetest.ProviderError(503))
	r.On("org/hang", inferencetest.Hang())
	r.On("org/backup", inferencetest.Reply("backup"))
	c, err := r.Client(inference.WithCooldown(0))
	require.NoError(t, err)

	_, err = c.Chat(t.Context(), chatReq("org/down", ""), inference.WithRetry(inference.RetryPolicy{}))
	assert.ErrorIs(t, err, inference.ErrProvider)
	assert.Len(t, r.Requests(), 1, "no retry for this call")
	r.Reset()
	_, err = c.Chat(t.Context(), chatReq("org/down", ""))
	assert.ErrorIs(t, err, inference.ErrProvider)
	assert.Len(t, r.Requests(), 3, "the client's two retries for the next call")

	start := time.Now()
	resp, err := c.Chat(t.Context(), chatReq("org/hang", ""), inference.WithAttemptTimeout(100*time.Millisecond),
		inference.WithFallback(inference.Candidate{Model: "org/backup"}))
	require.NoError(t, err)
	assert.Equal(t, "backup", resp.Text())
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.Equal(t, inference.TimeoutAttempt, resp.Attempts[0].TimedOut)

	r.Reset()
	s, err := c.ChatStream(t.Context(), chatReq("org/backup", ""), inference.WithHeader("X-Trace", "t1"), inference.WithToken(inferencetest.Token))
	require.NoError(t, err)
	s.Close()
	assert.Equal(t, "t1", r.Requests()[0].Header.Get("X-Trace"))

	r.Reset()
	_, _, err = inference.ChatJSON[map[string]string](t.Context(), c, chatReq("org/backup", ""), inference.WithHeader("X-Trace", "json"))
	require.Error(t, err, `"backup" is not a JSON object`)
	for _, q := range r.Requests() {
		assert.Equal(t, "json", q.Header.Get("X-Trace"), "both asks carry the call's options")
	}
}

func TestToolCallArgumentsAsAnObject(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", inferencetest.Raw(200, http.Header{"Content-Type": {"application/json"}},
		`{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":{"city":"Paris","unit":"celsius"}}}]},"finish_reason":"tool_calls"}]}`))
	c, err := r.Client()
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq("org/m", ""))
	require.NoError(t, err)
	calls := resp.Choices[0].Message.ToolCalls
	require.Len(t, calls, 1)
	assert.Equal(t, `{"city":"Paris","unit":"celsius"}`, calls[0].Function.Arguments)
	assert.True(t, strings.HasPrefix(calls[0].Function.Arguments, "{"))
}

// TestModelListBacksOffWhenRateLimited: the provider walk's lookup of the
// model list answered 429 with the Hub's RateLimit header: the walk leaves
// the choice to the router, and the client does not ask again before the
// window ends.
func TestModelListBacksOffWhenRateLimited(t *testing.T) {
	r := newRouter(t)
	r.ListAnswer(inferencetest.Raw(429, http.Header{"Ratelimit": {`"api";r=0;t=55`}, "Content-Type": {"application/json"}},
		`{"error":"You have been rate-limited because you reached the limit of requests. Please retry later."}`))
	r.On("org/m", inferencetest.Reply("router's choice"))
	var logs strings.Builder
	c, err := r.Client(inference.WithProviderWalk(), inference.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)
	for range 3 {
		resp, err := c.Chat(t.Context(), chatReq("org/m", ""))
		require.NoError(t, err)
		assert.Equal(t, "router's choice", resp.Text())
	}
	assert.Equal(t, 1, r.ListRequests(), "asked once, then waited for the window")
	assert.Contains(t, logs.String(), "backing off")
	assert.Contains(t, logs.String(), "wait=55s")
	_, err = c.RouterModels(t.Context())
	assert.ErrorIs(t, err, inference.ErrRateLimited)
}

func TestDiagnoseSaysWhenTheHubRateLimits(t *testing.T) {
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Ratelimit", `"api";r=0;t=55`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":"You have been rate-limited because you reached the limit of requests."}`))
	}))
	defer hub.Close()
	c, err := inference.NewClient(inference.WithHubURL(hub.URL), inference.WithBaseURL(hub.URL), inference.WithToken(inferencetest.Token))
	require.NoError(t, err)
	d := c.Diagnose(t.Context(), inference.DiagnoseOptions{Models: []string{"org/m"}, NoProbe: true})
	var names []string
	for _, ch := range d.Checks {
		if strings.Contains(ch.Cause, "rate-limited") {
			names = append(names, ch.Name)
			assert.Equal(t, inference.CheckUnknown, ch.Status)
			assert.Contains(t, ch.Fix, "again in 55s")
		}
	}
	assert.Equal(t, []string{"token accepted by the Hub", "model exists: org/m"}, names)
}

func TestDiagnoseBillTo(t *testing.T) {
	r := newRouter(t)
	r.AddUser(inferencetest.Token, inferencetest.HubUser{Name: "alice", Orgs: []string{"acme-corp"}})
	r.On("org/m", inferencetest.Reply("ok"))
	c, err := r.Client()
	require.NoError(t, err)
	d := c.Diagnose(t.Context(), inference.DiagnoseOptions{BillTo: "acme-corp", NoProbe: true})
	assert.True(t, d.OK(), "%+v", d.Checks)
	d = c.Diagnose(t.Context(), inference.DiagnoseOptions{BillTo: "other-org", Models: []string{"org/m"}})
	var found bool
	for _, ch := range d.Checks {
		if ch.Name == "organization to bill: other-org" {
			found = true
			assert.Equal(t, inference.CheckProblem, ch.Status)
			assert.Contains(t, ch.Cause, "alice is not a member of other-org")
			assert.Contains(t, ch.Fix, "/organizations/other-org/settings/members")
		}
	}
	assert.True(t, found)
	for _, q := range r.Requests() {
		assert.Equal(t, "other-org", q.Header.Get("X-HF-Bill-To"), "the probe is billed as asked")
	}
}
