package inference_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// These tests hold the contract holes found by trying the library
// adversarially and as a new user (issue "Contract holes ..."). Each failed
// before its fix.

// allKinds lists the kinds, so that a test can say err matches exactly one.
var allKinds = []error{
	inference.ErrNoToken, inference.ErrInvalidToken, inference.ErrUnauthorized, inference.ErrMissingScope,
	inference.ErrGatedModel, inference.ErrModelNotFound, inference.ErrModelNotSupported,
	inference.ErrPaymentRequired, inference.ErrRateLimited, inference.ErrInvalidRequest,
	inference.ErrProvider, inference.ErrContextLength, inference.ErrStream,
}

func matchedKinds(err error) []error {
	var out []error
	for _, k := range allKinds {
		if errors.Is(err, k) {
			out = append(out, k)
		}
	}
	return out
}

// Item 1: a stream that fails before any content is a provider failure in
// the server's words, never a context error while the caller's ctx lives.
func TestStreamFailureBeforeContentIsNotACancel(t *testing.T) {
	tests := []struct {
		name   string
		answer inferencetest.Answer
		want   string
	}{
		{"error event", inferencetest.StreamError("Model is overloaded, please retry"), "Model is overloaded, please retry"},
		{"cut with no pieces", inferencetest.StreamCut(), "without [DONE] or a finish reason"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRouter(t)
			r.On("org/m", tt.answer)
			r.On("org/b", tt.answer)
			c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}), inference.WithCooldown(0))
			require.NoError(t, err)

			_, err = c.ChatStream(t.Context(), chatReq("org/m", ""))
			require.Error(t, err)
			assert.False(t, errors.Is(err, context.Canceled), "%v", err)
			assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(err))
			var apiErr *inference.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, http.StatusOK, apiErr.StatusCode)
			assert.Contains(t, apiErr.Message, tt.want)

			req := chatReq("org/m", "")
			req.Fallbacks = []inference.Candidate{{Model: "org/b"}}
			_, err = c.ChatStream(t.Context(), req)
			var fe *inference.FallbackError
			require.ErrorAs(t, err, &fe)
			require.Len(t, fe.Attempts, 2)
			for _, a := range fe.Attempts {
				assert.Equal(t, 200, a.StatusCode)
				assert.False(t, errors.Is(a.Err, context.Canceled), "%v", a.Err)
				assert.Contains(t, a.Err.Error(), tt.want)
			}
		})
	}
}

type verdict struct {
	Verdict string  `json:"verdict"`
	Score   float64 `json:"score"`
}

// Item 2: a reply missing a required field, or null, is a decode failure:
// one re-ask, then *JSONDecodeError.
func TestChatJSONRequiredFieldsAndNull(t *testing.T) {
	for _, reply := range []string{`{"result":"pass"}`, `{}`, "```json\nnull\n```", `{"verdict":"pass"}`} {
		t.Run(reply, func(t *testing.T) {
			r := newRouter(t)
			r.On("org/m", inferencetest.Reply(reply))
			c, err := r.Client()
			require.NoError(t, err)
			v, _, err := inference.ChatJSON[verdict](t.Context(), c, chatReq("org/m", ""))
			var de *inference.JSONDecodeError
			require.ErrorAs(t, err, &de, "got %+v", v)
			assert.Len(t, r.Requests(), 2, "one re-ask")
			assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(err))
		})
	}
	t.Run("complete reply", func(t *testing.T) {
		r := newRouter(t)
		r.On("org/m", inferencetest.Reply(`{"verdict":"pass","score":0.5}`))
		c, err := r.Client()
		require.NoError(t, err)
		v, _, err := inference.ChatJSON[verdict](t.Context(), c, chatReq("org/m", ""))
		require.NoError(t, err)
		assert.Equal(t, verdict{"pass", 0.5}, v)
	})
}

// Item 3: a failed walk matches the kind of its last attempt only, and
// errors.As gives that attempt's *APIError.
func TestFallbackErrorMatchesTheLastAttemptOnly(t *testing.T) {
	r := newRouter(t)
	r.On("org/gated", inferencetest.Gated())
	r.On("org/paid", inferencetest.PaymentRequired())
	c, err := r.Client(inference.WithFallback(inference.Candidate{Model: "org/paid"}))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), chatReq("org/gated", ""))
	assert.Equal(t, []error{inference.ErrPaymentRequired}, matchedKinds(err))
	var apiErr *inference.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 402, apiErr.StatusCode)
	var fe *inference.FallbackError
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Attempts, 2)
	assert.Equal(t, inference.ErrGatedModel, fe.Attempts[0].Kind())

	t.Run("scope refusal then 401", func(t *testing.T) {
		r := newRouter(t)
		const oauthTok = "hf_oauth_userTokenAAAAAAAAAAAAAAAAAAAAAAAA"
		r.ForToken(oauthTok, inferencetest.MissingScope())
		r.ForToken(inferencetest.Token, inferencetest.InvalidToken())
		c, err := r.Client(inference.WithTokenSource(inference.ChainTokens(
			inference.OAuthToken(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: oauthTok})),
			inference.StaticToken(inferencetest.Token))))
		require.NoError(t, err)
		_, err = c.Chat(t.Context(), chatReq("org/m", ""))
		assert.Equal(t, []error{inference.ErrUnauthorized}, matchedKinds(err))
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 401, apiErr.StatusCode)
	})
}

// Item 4: token and gated texts decide only for 401 and 403; a provider's
// 400 is a refused request unless a code says otherwise; an HTML 403 is a
// gateway's page.
func TestTextDecidesOnlyForItsStatuses(t *testing.T) {
	provider := http.Header{"Content-Type": {"application/json"}, "X-Inference-Provider": {"together"}}
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   error
	}{
		{"invalid token in prompt", 400, provider, `{"error":{"message":"Invalid token in prompt at position 17"}}`, inference.ErrInvalidRequest},
		{"does not exist", 400, provider, `{"error":{"message":"The tool 'x' does not exist in this model's template"}}`, inference.ErrInvalidRequest},
		{"gated model word", 400, provider, `{"error":{"message":"the gated model flag is not a parameter"}}`, inference.ErrInvalidRequest},
		{"HTML 403 from a CDN", 403, http.Header{"Content-Type": {"text/html"}}, `<html><head><title>403 Forbidden</title></head><body>Request blocked.</body></html>`, inference.ErrProvider},
		{"invalid credentials 401", 401, http.Header{"Content-Type": {"application/json"}}, `{"error":"Invalid credentials in Authorization header"}`, inference.ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRouter(t)
			r.On("org/m", inferencetest.Raw(tt.status, tt.header, tt.body))
			c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
			require.NoError(t, err)
			_, err = c.Chat(t.Context(), chatReq("org/m", ""))
			assert.Equal(t, []error{tt.want}, matchedKinds(err), "%v", err)
		})
	}
}

// Item 5: the caller's deadline ending while an error body is read gives
// the context's error.
func TestDeadlineWhileReadingAnErrorBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusGatewayTimeout)
		w.(http.Flusher).Flush()
		for range 100 {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
			_, _ = io.WriteString(w, " ")
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	for _, retry := range []inference.RetryPolicy{{}, {MaxRetries: 2}} {
		c, err := inference.NewClient(inference.WithBaseURL(srv.URL), inference.WithToken(inferencetest.Token), inference.WithRetry(retry))
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		_, err = c.Chat(ctx, chatReq("org/m", ""))
		cancel()
		assert.ErrorIs(t, err, context.DeadlineExceeded, "retries %d", retry.MaxRetries)
		assert.Empty(t, matchedKinds(err), "retries %d", retry.MaxRetries)
	}
}

// Item 6: no token in any error text, URL options and redirect causes
// included.
func TestTokensInURLsAndRedirectsAreRedacted(t *testing.T) {
	const secret = "hf_SecretInUrlAAAAAAAAAAAAAAAAAAAAAAAA"
	for _, u := range []string{
		"https://router.huggingface.co/v1?access_token=" + secret,
		"https://user:" + secret + "@router.example",
		"https://user:plainpassword@router.example",
	} {
		_, err := inference.NewClient(inference.WithBaseURL(u), inference.WithToken(inferencetest.Token))
		require.Error(t, err)
		assert.NotContains(t, err.Error(), secret)
		assert.NotContains(t, err.Error(), "plainpassword")
		t.Run("HF_ENDPOINT", func(t *testing.T) {
			t.Setenv("HF_ENDPOINT", u)
			_, err = inference.NewClient(inference.WithToken(inferencetest.Token))
			require.Error(t, err)
			assert.NotContains(t, err.Error(), secret)
			assert.NotContains(t, err.Error(), "plainpassword")
		})
	}

	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+"/loop?token="+inferencetest.Token, http.StatusFound)
	}))
	defer srv.Close()
	c, err := inference.NewClient(inference.WithBaseURL(srv.URL), inference.WithToken(inferencetest.Token), inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), chatReq("org/m", ""))
	require.Error(t, err)
	var apiErr *inference.APIError
	require.ErrorAs(t, err, &apiErr)
	require.NotNil(t, apiErr.Cause)
	assert.NotContains(t, err.Error(), inferencetest.Token)
	assert.NotContains(t, apiErr.Cause.Error(), inferencetest.Token)
}

// Item 7: Close from another goroutine while Next blocks is safe and ends
// Next.
func TestStreamCloseFromAnotherGoroutine(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", func(w http.ResponseWriter, req *inferencetest.Request) {
		inferencetest.StreamCut("first ")(w, req)
		<-req.HTTP.Context().Done()
	})
	c, err := r.Client()
	require.NoError(t, err)
	s, err := c.ChatStream(t.Context(), chatReq("org/m", ""))
	require.NoError(t, err)
	require.True(t, s.Next())
	var wg sync.WaitGroup
	wg.Go(func() {
		time.Sleep(20 * time.Millisecond)
		assert.NoError(t, s.Close())
	})
	assert.False(t, s.Next())
	wg.Wait()
	assert.False(t, s.Next())
}

// Item 8: the OpenAI habit of a base URL ending in /v1 works.
func TestBaseURLWithV1(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", inferencetest.Reply("hello"))
	c, err := r.Client(inference.WithBaseURL(r.URL() + "/v1/"))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq("org/m", ""))
	require.NoError(t, err)
	assert.Equal(t, "hello", resp.Text())
}

// Item 9: a later token option wins over an earlier one.
func TestLaterTokenOptionWins(t *testing.T) {
	r := newRouter(t)
	const other = "hf_otherTokenBBBBBBBBBBBBBBBBBBBBBBBBBB"
	r.ForToken(other, inferencetest.Reply("other token"))
	c, err := r.Client(inference.WithTokenSource(inference.StaticToken(other)))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq("org/m", ""))
	require.NoError(t, err)
	assert.Equal(t, "other token", resp.Text())
}

// Item 10: ChatJSON keeps the whole trail when it asks twice, and asks the
// second time where the first answer came from.
func TestChatJSONReaskKeepsTrailAndCandidate(t *testing.T) {
	r := newRouter(t)
	r.On("org/gated", inferencetest.Gated())
	r.On("org/b", inferencetest.Reply("not json"), inferencetest.Reply(`{"verdict":"pass","score":1}`))
	c, err := r.Client(inference.WithCooldown(0), inference.WithFallback(inference.Candidate{Model: "org/b"}))
	require.NoError(t, err)
	v, resp, err := inference.ChatJSON[verdict](t.Context(), c, chatReq("org/gated", ""))
	require.NoError(t, err)
	assert.Equal(t, "pass", v.Verdict)
	assert.Equal(t, []string{"org/gated", "org/b", "org/b"}, r.Models())
	require.Len(t, resp.Attempts, 3)
	assert.Equal(t, inference.ErrGatedModel, resp.Attempts[0].Kind())
}

// Item 11: ready-made answers name the pinned provider.
func TestInferencetestAnswersNameThePinnedProvider(t *testing.T) {
	for name, a := range map[string]inferencetest.Answer{
		"Reply": inferencetest.Reply("hi there"), "Stream": inferencetest.Stream("hi"),
		"StreamCut": inferencetest.StreamCut("hi"), "StreamError": inferencetest.StreamError("boom", "hi"),
	} {
		t.Run(name, func(t *testing.T) {
			r := newRouter(t)
			r.On("org/m:groq", a)
			c, err := r.Client()
			require.NoError(t, err)
			if name == "Reply" {
				resp, err := c.Chat(t.Context(), chatReq("org/m", "groq"))
				require.NoError(t, err)
				assert.Equal(t, "groq", resp.Provider)
				return
			}
			s, err := c.ChatStream(t.Context(), chatReq("org/m", "groq"))
			require.NoError(t, err)
			defer s.Close()
			for s.Next() {
			}
			assert.Equal(t, "groq", s.Response().Provider)
		})
	}
}

// Item 12: nil contexts and clients not made by NewClient are clear errors.
func TestNilContextAndClient(t *testing.T) {
	var nilCtx context.Context
	_, err := inference.StaticToken(inferencetest.Token).Token(nilCtx)
	assert.Error(t, err)
	_, err = inference.EnvToken().Token(nilCtx)
	assert.Error(t, err)

	var c *inference.Client
	_, err = c.Chat(t.Context(), chatReq("org/m", ""))
	assert.ErrorIs(t, err, inference.ErrInvalidRequest)
	assert.Contains(t, err.Error(), "nil *Client")
	_, err = c.ChatStream(t.Context(), chatReq("org/m", ""))
	assert.ErrorIs(t, err, inference.ErrInvalidRequest)

	_, err = (&inference.Client{}).Chat(t.Context(), chatReq("org/m", ""))
	assert.ErrorIs(t, err, inference.ErrInvalidRequest)
	assert.Contains(t, err.Error(), "NewClient")
	assert.NotContains(t, err.Error(), "HF_TOKEN")

	r := newRouter(t)
	good, err := r.Client()
	require.NoError(t, err)
	_, err = good.Chat(nilCtx, chatReq("org/m", ""))
	assert.ErrorIs(t, err, inference.ErrInvalidRequest)
	_, err = good.ChatStream(nilCtx, chatReq("org/m", ""))
	assert.ErrorIs(t, err, inference.ErrInvalidRequest)
	_, _, err = inference.ChatJSON[verdict](nilCtx, good, chatReq("org/m", ""))
	assert.ErrorIs(t, err, inference.ErrInvalidRequest)
}

// Item 13: a Hub that cannot be reached is named as such.
func TestDiagnoseUnreachableHub(t *testing.T) {
	l := httptest.NewServer(http.NotFoundHandler())
	url := l.URL
	l.Close() // nothing listens there now
	c, err := inference.NewClient(inference.WithBaseURL(url), inference.WithHubURL(url),
		inference.WithToken(inferencetest.Token), inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	d := c.Diagnose(t.Context(), inference.DiagnoseOptions{NoProbe: true})
	var hub *inference.Check
	for i := range d.Checks {
		if d.Checks[i].Name == "token accepted by the Hub" {
			hub = &d.Checks[i]
		}
	}
	require.NotNil(t, hub)
	assert.Contains(t, hub.Cause, "the Hub at "+url+" cannot be reached")
	assert.NotContains(t, hub.Cause, "provider")
	assert.Contains(t, hub.Fix, "network")
	assert.NotContains(t, hub.Fix, "another provider")
}

// Item 14: ChatJSON takes a JSON string for a string, and asks with an
// array schema for a slice.
func TestChatJSONNonObjectTypes(t *testing.T) {
	r := newRouter(t)
	r.On("org/s", inferencetest.Reply(`"hello"`))
	r.On("org/a", inferencetest.Reply(`[{"verdict":"pass","score":1}]`))
	c, err := r.Client()
	require.NoError(t, err)
	s, _, err := inference.ChatJSON[string](t.Context(), c, chatReq("org/s", ""))
	require.NoError(t, err)
	assert.Equal(t, "hello", s)

	list, _, err := inference.ChatJSON[[]verdict](t.Context(), c, chatReq("org/a", ""))
	require.NoError(t, err)
	assert.Equal(t, []verdict{{"pass", 1}}, list)
	body := string(r.Requests()[len(r.Requests())-1].Body)
	assert.Contains(t, body, `"type":"json_schema"`)
	assert.Contains(t, body, `"type":"array"`)
	assert.NotContains(t, body, `json_object`)
}

// Item 15: bad values are refused before sending, naming the field.
func TestRefusedBeforeSending(t *testing.T) {
	r := newRouter(t)
	c, err := r.Client()
	require.NoError(t, err)
	tests := []struct {
		name  string
		req   inference.ChatRequest
		field string
	}{
		{"role", inference.ChatRequest{Model: "org/m", Messages: []inference.Message{{Role: "bot", Content: "x"}}}, "Role"},
		{"tool choice without tools", inference.ChatRequest{Model: "org/m", Messages: []inference.Message{inference.UserMessage("x")}, ToolChoice: &inference.ToolChoice{Mode: "required"}}, "ToolChoice"},
		{"tool choice mode", inference.ChatRequest{Model: "org/m", Messages: []inference.Message{inference.UserMessage("x")}, ToolChoice: &inference.ToolChoice{Mode: "always"}}, "ToolChoice"},
		{"response format", inference.ChatRequest{Model: "org/m", Messages: []inference.Message{inference.UserMessage("x")}, ResponseFormat: &inference.ResponseFormat{Type: "yaml"}}, "ResponseFormat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Chat(t.Context(), tt.req)
			assert.ErrorIs(t, err, inference.ErrInvalidRequest)
			assert.Contains(t, err.Error(), tt.field)
		})
	}
	assert.Empty(t, r.Requests())
	_, err = inference.NewClient(inference.WithRetry(inference.RetryPolicy{MinWait: 2 * time.Second, MaxWait: time.Second}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "MinWait")
}

// Item 16: an empty error event mid-stream fails the stream.
func TestEmptyErrorEventFailsTheStream(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", func(w http.ResponseWriter, req *inferencetest.Request) {
		inferencetest.StreamCut("hello ")(w, req)
		_, _ = io.WriteString(w, "event: error\n\n")
		_, _ = io.WriteString(w, `data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`+"\n\ndata: [DONE]\n\n")
	})
	c, err := r.Client()
	require.NoError(t, err)
	s, err := c.ChatStream(t.Context(), chatReq("org/m", ""))
	require.NoError(t, err)
	defer s.Close()
	for s.Next() {
	}
	assert.ErrorIs(t, s.Err(), inference.ErrStream)
}

// Item 17: the same candidate written two ways is tried once.
func TestDuplicateCandidatesWrittenDifferently(t *testing.T) {
	r := newRouter(t)
	r.On("org/a:together", inferencetest.ProviderError(503))
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	req := chatReq("org/a:together", "")
	req.Fallbacks = []inference.Candidate{{Model: "org/a", Provider: "together"}, {Model: "org/a:together"}}
	_, err = c.Chat(t.Context(), req)
	require.Error(t, err)
	assert.Equal(t, []string{"org/a:together"}, r.Models())
}

// Item 18: an HTML gateway page leaves a short description in Message,
// never the markup.
func TestHTMLPageMessage(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", inferencetest.GatewayTimeout())
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), chatReq("org/m", ""))
	var apiErr *inference.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "the gateway answered 504 Gateway Time-out with an HTML page", apiErr.Message)
	assert.NotContains(t, err.Error(), "<")
}

// Item 19: error text without holes or repeats, and the failed stream's
// attempt records its error.
func TestErrorTextAndStreamAttempt(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", inferencetest.Raw(499, nil, ""))
	r.On("ardent-figment/gated-model", inferencetest.Gated())
	r.On("org/s", inferencetest.StreamCut("one ", "two "))
	r.On("org/p", inferencetest.ProviderError(503))
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{MaxRetries: 1, MinWait: time.Millisecond, MaxWait: time.Millisecond}))
	require.NoError(t, err)

	_, err = c.Chat(t.Context(), chatReq("org/m", ""))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "): .")

	onHub, err := r.Client(inference.WithHubURL("https://huggingface-proxy-6ci.pages.dev"))
	require.NoError(t, err)
	_, err = onHub.Chat(t.Context(), chatReq("ardent-figment/gated-model", ""))
	require.Error(t, err)
	assert.Equal(t, 1, strings.Count(err.Error(), "https://huggingface-proxy-6ci.pages.dev/ardent-figment/gated-model"), "%v", err)

	req := chatReq("org/p", "")
	req.Fallbacks = []inference.Candidate{{Model: "ardent-figment/gated-model"}}
	_, err = c.Chat(t.Context(), req)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "after 1 retry")
	assert.NotContains(t, err.Error(), "1 retries")

	s, err := c.ChatStream(t.Context(), chatReq("org/s", ""))
	require.NoError(t, err)
	for s.Next() {
	}
	require.ErrorIs(t, s.Err(), inference.ErrStream)
	atts := s.Attempts()
	require.NotEmpty(t, atts)
	assert.ErrorIs(t, atts[len(atts)-1].Err, inference.ErrStream)
	assert.ErrorIs(t, s.Response().Attempts[len(atts)-1].Err, inference.ErrStream)
}

// Item 20: what was skipped for cooldown is on a successful answer too.
func TestSkippedOnSuccess(t *testing.T) {
	r := newRouter(t)
	r.On("org/down", inferencetest.ProviderError(503))
	r.On("org/up", inferencetest.Reply("ok"))
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}), inference.WithFallback(inference.Candidate{Model: "org/up"}))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq("org/down", ""))
	require.NoError(t, err)
	assert.Empty(t, resp.Skipped)
	resp, err = c.Chat(t.Context(), chatReq("org/down", ""))
	require.NoError(t, err)
	assert.Equal(t, []inference.Candidate{{Model: "org/down"}}, resp.Skipped)
	s, err := c.ChatStream(t.Context(), chatReq("org/down", ""))
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, []inference.Candidate{{Model: "org/down"}}, s.Response().Skipped)
}
