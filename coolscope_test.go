package inference_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
	"github.com/hfkit/inference/internal/redact"
)

// These tests hold the core half of "Fleets that never hurt": a cooldown
// never punishes the wrong call, and no server can impose a long one.

// A 429 whose Retry-After asks for a day, or for a date in 2100, cools its
// candidate for at most the cap, in memory and in the store.
func TestRetryAfterIsCappedBeforeTheStore(t *testing.T) {
	for name, value := range map[string]string{
		"a day":     "86400",
		"year 2100": "Fri, 31 Dec 2100 23:59:59 GMT",
	} {
		t.Run(name, func(t *testing.T) {
			r := newRouter(t)
			r.On("org/limited", inferencetest.Raw(http.StatusTooManyRequests,
				http.Header{"Content-Type": {"application/json"}, "Retry-After": {value}, "X-Inference-Provider": {"groq"}},
				`{"error":"Rate limit reached"}`))
			r.On("org/up", inferencetest.Reply("ok"))
			opts := []inference.Option{inference.WithRetry(inference.RetryPolicy{}),
				inference.WithFallback(inference.Candidate{Model: "org/up"})}

			// In memory: a cap of 200 ms over a cooldown of 10 ms.
			c, err := r.Client(append(opts, inference.WithCooldown(10*time.Millisecond), inference.WithMaxCooldown(200*time.Millisecond))...)
			require.NoError(t, err)
			_, err = c.Chat(t.Context(), chatReq("org/limited", ""))
			require.NoError(t, err)
			resp, err := c.Chat(t.Context(), chatReq("org/limited", ""))
			require.NoError(t, err)
			require.Equal(t, []inference.Candidate{{Model: "org/limited"}}, resp.Skipped, "cooling, as the server asked")
			time.Sleep(250 * time.Millisecond)
			resp, err = c.Chat(t.Context(), chatReq("org/limited", ""))
			require.NoError(t, err)
			assert.Empty(t, resp.Skipped, "tried again once the cap has passed, not after %s", value)

			// In the store: the deadline written is the cap's.
			store := &mapStore{until: map[string]time.Time{}}
			c, err = r.Client(append(opts, inference.WithCooldownStore(store), inference.WithMaxCooldown(2*time.Minute))...)
			require.NoError(t, err)
			start := time.Now()
			_, err = c.Chat(t.Context(), chatReq("org/limited", ""))
			require.NoError(t, err)
			assert.WithinDuration(t, start.Add(2*time.Minute), store.until["org/limited"], 5*time.Second, "the store holds the cap, not %s", value)
			// The default cap is minutes, not hours.
			assert.Equal(t, 5*time.Minute, inference.DefaultMaxCooldown)
		})
	}
}

// The cap never shortens the client's own cooldown.
func TestMaxCooldownKeepsTheClientsOwnCooldown(t *testing.T) {
	r := newRouter(t)
	r.On("org/down", inferencetest.ProviderError(503))
	r.On("org/up", inferencetest.Reply("ok"))
	store := &mapStore{until: map[string]time.Time{}}
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}), inference.WithCooldownStore(store),
		inference.WithCooldown(10*time.Minute), inference.WithMaxCooldown(time.Minute),
		inference.WithFallback(inference.Candidate{Model: "org/up"}))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), chatReq("org/down", ""))
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(10*time.Minute), store.until["org/down"], 5*time.Second)
	_, err = inference.NewClient(inference.WithMaxCooldown(0))
	assert.Error(t, err)
}

// Two users on one client: a model gated for user A (and one not found
// for A) is still tried first for user B, and nothing of it reaches the
// shared store.
func TestOneUsersRefusalIsNotCooledForAnother(t *testing.T) {
	const tokenA, tokenB = "hf_oauth_Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "hf_oauth_Bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	for name, refusal := range map[string]inferencetest.Answer{
		"gated":     inferencetest.Gated(),
		"not found": inferencetest.ModelNotFound(),
	} {
		t.Run(name, func(t *testing.T) {
			r := newRouter(t)
			r.On("org/model", func(w http.ResponseWriter, req *inferencetest.Request) {
				if req.TokenPrefix == redact.Prefix(tokenA) {
					refusal(w, req)
					return
				}
				inferencetest.Reply("for B")(w, req)
			})
			r.On("org/last-resort", inferencetest.Reply("last resort"))
			store := &mapStore{until: map[string]time.Time{}}
			c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}), inference.WithCooldownStore(store),
				inference.WithFallback(inference.Candidate{Model: "org/last-resort"}))
			require.NoError(t, err)
			user := func(tok string) inference.Option {
				return inference.WithUserTokenSource(inference.OAuthToken(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tok})))
			}

			resp, err := c.Chat(t.Context(), chatReq("org/model", ""), user(tokenA))
			require.NoError(t, err)
			assert.Equal(t, "last resort", resp.Text())

			resp, err = c.Chat(t.Context(), chatReq("org/model", ""), user(tokenB))
			require.NoError(t, err)
			assert.Equal(t, "for B", resp.Text(), "B has access: the model is tried first")
			assert.Empty(t, resp.Skipped)
			assert.NotContains(t, store.until, "org/model", "nothing per account reaches the fleet")
		})
	}
}

// A provider's 401 or 403 ("Invalid API key", X-Inference-Provider set)
// under a user's token (WithUserTokenSource, or a call's own token) may be
// that user's own key at the provider: it cools the candidate for no other
// call, in memory or in the store. Under the client's own token it is the
// router's key, refused for every call: cooled for all, and shared.
func TestAProviderRefusalUnderAUsersTokenIsNotCooledForAnother(t *testing.T) {
	const tokenA, tokenB = "hf_oauth_Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "hf_oauth_Bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	oauthUser := func(tok string) inference.Option {
		return inference.WithUserTokenSource(inference.OAuthToken(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tok})))
	}
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		for name, user := range map[string]func(string) inference.Option{
			"WithUserTokenSource": oauthUser,
			"a call's own token":  inference.WithToken,
		} {
			t.Run(fmt.Sprintf("%d/%s", status, name), func(t *testing.T) {
				r := newRouter(t)
				refused := redact.Prefix(tokenA)
				r.On("org/model:together", func(w http.ResponseWriter, req *inferencetest.Request) {
					if req.TokenPrefix == refused {
						inferencetest.Raw(status, http.Header{"Content-Type": {"application/json"}, "X-Inference-Provider": {"together"}},
							`{"error":{"message":"Invalid API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`)(w, req)
						return
					}
					inferencetest.Reply("together")(w, req)
				})
				r.On("org/last-resort", inferencetest.Reply("last resort"))
				store := &mapStore{until: map[string]time.Time{}}
				c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}), inference.WithCooldownStore(store),
					inference.WithFallback(inference.Candidate{Model: "org/last-resort"}))
				require.NoError(t, err)

				resp, err := c.Chat(t.Context(), chatReq("org/model", "together"), user(tokenA))
				require.NoError(t, err)
				assert.Equal(t, "last resort", resp.Text())
				require.Len(t, resp.Attempts, 2)
				assert.ErrorIs(t, resp.Attempts[0].Err, inference.ErrProvider, "a provider's refusal of its key")
				var apiErr *inference.APIError
				require.ErrorAs(t, resp.Attempts[0].Err, &apiErr)
				assert.Contains(t, apiErr.Fix(), "refused the key", "the fix names the key, which the user may have set")

				resp, err = c.Chat(t.Context(), chatReq("org/model", "together"), user(tokenB))
				require.NoError(t, err)
				assert.Equal(t, "together", resp.Text(), "B's call is not skipped to the fallback")
				assert.Empty(t, resp.Skipped)
				resp, err = c.Chat(t.Context(), chatReq("org/model", "together"))
				require.NoError(t, err)
				assert.Equal(t, "together", resp.Text(), "nor the client's own")
				assert.NotContains(t, store.until, "org/model:together", "nothing reaches the fleet")
			})
		}
	}

	t.Run("the client's own token", func(t *testing.T) {
		r := newRouter(t)
		r.On("org/model:together", inferencetest.Raw(http.StatusUnauthorized,
			http.Header{"Content-Type": {"application/json"}, "X-Inference-Provider": {"together"}},
			`{"error":{"message":"Invalid API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`))
		r.On("org/last-resort", inferencetest.Reply("last resort"))
		store := &mapStore{until: map[string]time.Time{}}
		c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}), inference.WithCooldownStore(store),
			inference.WithFallback(inference.Candidate{Model: "org/last-resort"}))
		require.NoError(t, err)
		_, err = c.Chat(t.Context(), chatReq("org/model", "together"))
		require.NoError(t, err)
		assert.Contains(t, store.until, "org/model:together", "the router's key at the provider: shared")
		resp, err := c.Chat(t.Context(), chatReq("org/model", "together"), oauthUser(tokenB))
		require.NoError(t, err)
		assert.Equal(t, []inference.Candidate{{Model: "org/model", Provider: "together"}}, resp.Skipped)
	})
}

// A call made for a user (WithUserTokenSource) whose token the router
// refused goes on with the client's own token; a provider's refusal of
// that attempt is a refusal of the router's key at the provider, as
// under the client's own tokens: cooled for every call, and shared. At
// 2383815 the call having a user's source was enough to cool nothing.
func TestAProviderRefusalAfterTheCallMovedToTheClientsTokenIsShared(t *testing.T) {
	const tokenA = "hf_oauth_Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	r := newRouter(t)
	r.On("org/model:together", func(w http.ResponseWriter, req *inferencetest.Request) {
		if req.TokenPrefix == redact.Prefix(tokenA) {
			inferencetest.MissingScope()(w, req) // the router refuses the user's token
			return
		}
		inferencetest.Raw(http.StatusUnauthorized, http.Header{"Content-Type": {"application/json"}, "X-Inference-Provider": {"together"}},
			`{"error":{"message":"Invalid API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`)(w, req)
	})
	r.On("org/last-resort", inferencetest.Reply("last resort"))
	store := &mapStore{until: map[string]time.Time{}}
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}), inference.WithCooldownStore(store),
		inference.WithFallback(inference.Candidate{Model: "org/last-resort"}))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq("org/model", "together"),
		inference.WithUserTokenSource(inference.OAuthToken(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tokenA}))))
	require.NoError(t, err)
	require.Len(t, resp.Attempts, 3)
	assert.ErrorIs(t, resp.Attempts[0].Err, inference.ErrMissingScope, "the user's token, refused by the router")
	assert.ErrorIs(t, resp.Attempts[1].Err, inference.ErrProvider, "the client's, refused at the provider")
	assert.Contains(t, store.until, "org/model:together", "the router's key at the provider: shared")
}

// With the client's own token, a gated model is cooled for the client's
// calls (they would all be refused), but in this process only.
func TestTheClientsOwnRefusalIsCooledInProcessOnly(t *testing.T) {
	r := newRouter(t)
	r.On("org/gated", inferencetest.Gated())
	r.On("org/up", inferencetest.Reply("ok"))
	store := &mapStore{until: map[string]time.Time{}}
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}), inference.WithCooldownStore(store),
		inference.WithFallback(inference.Candidate{Model: "org/up"}))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), chatReq("org/gated", ""))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq("org/gated", ""))
	require.NoError(t, err)
	assert.Equal(t, []inference.Candidate{{Model: "org/gated"}}, resp.Skipped)
	assert.NotContains(t, store.until, "org/gated")

	// Billed to an organization, the account differs: tried again.
	resp, err = c.Chat(t.Context(), chatReq("org/gated", ""), inference.WithBillTo("acme-corp"))
	require.NoError(t, err)
	assert.Empty(t, resp.Skipped)
}

// An organization's provider ban met on a billed call does not move a
// later unbilled call off that provider.
func TestOrganizationBanIsCooledForItsCallsOnly(t *testing.T) {
	r := newRouter(t)
	r.On("org/m:together", func(w http.ResponseWriter, req *inferencetest.Request) {
		if req.Header.Get("X-Hf-Bill-To") == "acme-corp" {
			inferencetest.Raw(http.StatusForbidden, http.Header{"Content-Type": {"application/json"}},
				`{"error":"The provider together has been disabled by the administrators of the organization acme-corp"}`)(w, req)
			return
		}
		inferencetest.Reply("together")(w, req)
	})
	r.On("org/m:groq", inferencetest.Reply("groq"))
	store := &mapStore{until: map[string]time.Time{}}
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}), inference.WithCooldownStore(store),
		inference.WithFallback(inference.Candidate{Model: "org/m", Provider: "groq"}))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq("org/m", "together"), inference.WithBillTo("acme-corp"))
	require.NoError(t, err)
	assert.Equal(t, "groq", resp.Text())

	resp, err = c.Chat(t.Context(), chatReq("org/m", "together"))
	require.NoError(t, err)
	assert.Equal(t, "together", resp.Text(), "the unbilled call stays on together")
	assert.Empty(t, store.until)

	resp, err = c.Chat(t.Context(), chatReq("org/m", "together"), inference.WithBillTo("acme-corp"))
	require.NoError(t, err)
	assert.Equal(t, []inference.Candidate{{Model: "org/m", Provider: "together"}}, resp.Skipped, "the organization's calls skip it")
}

// One call's billing refusal leaves the next unbilled call on token A.
func TestBillingRefusalDoesNotMoveOtherCallsToken(t *testing.T) {
	const tokenA = "hf_Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	const tokenB = "hf_Bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	r := newRouter(t)
	r.Otherwise(func(w http.ResponseWriter, req *inferencetest.Request) {
		if req.Header.Get("X-Hf-Bill-To") == "acme-corp" && req.TokenPrefix == redact.Prefix(tokenA) {
			inferencetest.Raw(http.StatusForbidden, http.Header{"Content-Type": {"application/json"}},
				`{"error":"You are not allowed to bill the organization acme-corp: only its members with billing access can use X-HF-Bill-To"}`)(w, req)
			return
		}
		inferencetest.Reply("ok")(w, req)
	})
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}),
		inference.WithTokenSource(inference.ChainTokens(inference.StaticToken(tokenA), inference.StaticToken(tokenB))))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), chatReq("org/m", ""), inference.WithBillTo("acme-corp"))
	require.NoError(t, err)
	reqs := r.Requests()
	require.Len(t, reqs, 2)
	assert.True(t, reqs[1].TokenPrefix == redact.Prefix(tokenB), "the billed call moved to B")

	_, err = c.Chat(t.Context(), chatReq("org/m", ""))
	require.NoError(t, err)
	reqs = r.Requests()
	assert.True(t, reqs[2].TokenPrefix == redact.Prefix(tokenA), "the unbilled call stays on A: %s", reqs[2].TokenPrefix)

	_, err = c.Chat(t.Context(), chatReq("org/m", ""), inference.WithBillTo("acme-corp"))
	require.NoError(t, err)
	reqs = r.Requests()
	require.Len(t, reqs, 4)
	assert.True(t, reqs[3].TokenPrefix == redact.Prefix(tokenB), "a later billed call starts on B")
}

// One call's own short limit leaves the candidate untouched for the next
// call; the client's own limit still cools it.
func TestACallsOwnTimeoutCoolsNothing(t *testing.T) {
	r := newRouter(t)
	r.On("org/slow", inferencetest.Delay(300*time.Millisecond, inferencetest.Reply("slow")))
	r.On("org/up", inferencetest.Reply("ok"))
	store := &mapStore{until: map[string]time.Time{}}
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}), inference.WithCooldownStore(store),
		inference.WithFallback(inference.Candidate{Model: "org/up"}))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq("org/slow", ""), inference.WithAttemptTimeout(50*time.Millisecond))
	require.NoError(t, err)
	assert.Equal(t, "ok", resp.Text())
	assert.Equal(t, inference.TimeoutAttempt, resp.Attempts[0].TimedOut)

	resp, err = c.Chat(t.Context(), chatReq("org/slow", ""))
	require.NoError(t, err)
	assert.Equal(t, "slow", resp.Text(), "the next call tries the candidate first")
	assert.Empty(t, store.until)

	// A stream's own first-token limit likewise.
	r.On("org/slowstream", inferencetest.StreamScript{Text: "a b c", FirstTokenAfter: 300 * time.Millisecond}.Answer())
	s, err := c.ChatStream(t.Context(), chatReq("org/slowstream", ""), inference.WithFirstTokenTimeout(50*time.Millisecond))
	require.NoError(t, err)
	s.Close()
	s, err = c.ChatStream(t.Context(), chatReq("org/slowstream", ""))
	require.NoError(t, err)
	assert.Len(t, s.Attempts(), 1)
	assert.Equal(t, "org/slowstream", s.Attempts()[0].Model)
	s.Close()
	assert.Empty(t, store.until)

	// The client's own limit is the provider failing for every call.
	c2, err := r.Client(inference.WithRetry(inference.RetryPolicy{}), inference.WithCooldownStore(store),
		inference.WithAttemptTimeout(50*time.Millisecond), inference.WithFallback(inference.Candidate{Model: "org/up"}))
	require.NoError(t, err)
	_, err = c2.Chat(t.Context(), chatReq("org/slow", ""))
	require.NoError(t, err)
	assert.Contains(t, store.until, "org/slow")
}
