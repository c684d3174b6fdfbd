package inference_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
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

// These tests hold the second round of contract holes (issue "Contract
// holes II"), one per item, each through the public API. Each failed on
// fb654b2 for the reason its comment names.

// sse answers with the given events as a stream: each string is one data
// payload, flushed at once; no [DONE] is added.
func sse(events ...string) inferencetest.Answer {
	return func(w http.ResponseWriter, req *inferencetest.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Inference-Provider", "together")
		w.WriteHeader(http.StatusOK)
		for _, e := range events {
			fmt.Fprintf(w, "data: %s\n\n", e)
			w.(http.Flusher).Flush()
		}
	}
}

func textChunk(index int, text string) string {
	return fmt.Sprintf(`{"id":"x","object":"chat.completion.chunk","choices":[{"index":%d,"delta":{"role":"assistant","content":%q},"finish_reason":null}]}`, index, text)
}

func toolChunk(args string) string {
	return fmt.Sprintf(`{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"weather","arguments":%q}}]},"finish_reason":null}]}`, args)
}

func finish(index int, reason string) string {
	return fmt.Sprintf(`{"id":"x","object":"chat.completion.chunk","choices":[{"index":%d,"delta":{},"finish_reason":%q}]}`, index, reason)
}

// Item 1: after a recovered stream, the new attempt's tool call replaces
// the delivered piece (one Restarted chunk), never merges into it. On
// fb654b2 the replay ended once the text caught up and the arguments read
// {"city":{"city":"Paris"}.
func TestRecoveredToolCallArgumentsAreNotMerged(t *testing.T) {
	verifyNoLeaks(t)
	// The new attempt reproduces the text in chunks of its own, or goes
	// past it in the chunk that catches up (where fb654b2 dropped the
	// replay).
	for name, texts := range map[string][]string{
		"text reproduced":   {"Checking."},
		"text caught up":    {"Check", "ing. Then"},
		"text gone past it": {"Checking. Then"},
	} {
		t.Run(name, func(t *testing.T) {
			r := newRouter(t)
			cut := func(w http.ResponseWriter, req *inferencetest.Request) {
				sse(textChunk(0, "Checking."), toolChunk(`{"city":`))(w, req)
				panic(http.ErrAbortHandler)
			}
			var second []string
			for _, text := range texts {
				second = append(second, textChunk(0, text))
			}
			second = append(second, toolChunk(`{"city":"Paris"}`), finish(0, "tool_calls"), "[DONE]")
			r.On("org/m", cut, sse(second...))
			c := recoveryClient(t, r)
			s, err := c.ChatStream(t.Context(), chatReq("org/m", ""))
			require.NoError(t, err)
			defer s.Close()
			restarted := 0
			for s.Next() {
				if s.Current().Restarted {
					restarted++
				}
			}
			require.NoError(t, s.Err())
			assert.Equal(t, 1, restarted)
			resp := s.Response()
			require.Len(t, resp.Choices, 1)
			require.Len(t, resp.Choices[0].Message.ToolCalls, 1)
			assert.Equal(t, `{"city":"Paris"}`, resp.Choices[0].Message.ToolCalls[0].Function.Arguments)
			assert.Equal(t, strings.Join(texts, ""), resp.Text())
			assert.Len(t, r.Requests(), 2)
		})
	}
}

// Item 1, the other way: the new attempt reproduces the text and then
// ends without calling the tool again: the delivered tool-call piece is
// not part of its answer, so it restarts too.
func TestRecoveredStreamWithoutTheToolCallRestarts(t *testing.T) {
	r := newRouter(t)
	cut := func(w http.ResponseWriter, req *inferencetest.Request) {
		sse(textChunk(0, "Checking."), toolChunk(`{"city":`))(w, req)
		panic(http.ErrAbortHandler)
	}
	r.On("org/m", cut, sse(textChunk(0, "Checking."), textChunk(0, " Sunny."), finish(0, "stop"), "[DONE]"))
	c := recoveryClient(t, r)
	s, err := c.ChatStream(t.Context(), chatReq("org/m", ""))
	require.NoError(t, err)
	defer s.Close()
	shown, restarted := read(t, s)
	require.NoError(t, s.Err())
	assert.Equal(t, 1, restarted)
	assert.Equal(t, "Checking. Sunny.", shown)
	assert.Empty(t, s.Response().Choices[0].Message.ToolCalls)
}

// Item 2: a consumer that pauses longer than the idle limit while the
// provider keeps sending is not a silent provider. On fb654b2 the stream
// failed with "no event within the stream idle timeout".
func TestIdleTimeoutIgnoresTheConsumersPauses(t *testing.T) {
	verifyNoLeaks(t)
	r := newRouter(t)
	text := "one two three four five six seven eight nine ten"
	r.On("org/m", inferencetest.StreamScript{Text: text, Every: 10 * time.Millisecond}.Answer())
	r.On("org/b", inferencetest.Reply("fallback"))
	for _, recovery := range []bool{false, true} {
		t.Run(fmt.Sprintf("recovery=%v", recovery), func(t *testing.T) {
			r.Reset()
			opts := []inference.Option{inference.WithStreamIdleTimeout(150 * time.Millisecond)}
			if recovery {
				opts = append(opts, inference.WithStreamRecovery())
			}
			c, err := r.Client(opts...)
			require.NoError(t, err)
			req := chatReq("org/m", "")
			req.Fallbacks = []inference.Candidate{{Model: "org/b"}}
			s, err := c.ChatStream(t.Context(), req)
			require.NoError(t, err)
			defer s.Close()
			var b strings.Builder
			for n := 0; s.Next(); n++ {
				b.WriteString(s.Current().Text())
				if n == 3 {
					time.Sleep(300 * time.Millisecond) // writing to a slow socket, say
				}
			}
			require.NoError(t, s.Err())
			assert.Equal(t, text, b.String())
			assert.Len(t, s.Attempts(), 1)
			assert.Equal(t, []string{"org/m"}, r.Models())
		})
	}
}

// Item 2, the limit still holds: a provider silent while the consumer
// waits ends the stream.
func TestIdleTimeoutStillCatchesASilentProvider(t *testing.T) {
	verifyNoLeaks(t)
	r := newRouter(t)
	r.On("org/m", inferencetest.StreamScript{Text: "one two three four", StallAfter: 2}.Answer())
	c, err := r.Client(inference.WithStreamIdleTimeout(100 * time.Millisecond))
	require.NoError(t, err)
	s, err := c.ChatStream(t.Context(), chatReq("org/m", ""))
	require.NoError(t, err)
	defer s.Close()
	for s.Next() {
	}
	require.ErrorIs(t, s.Err(), inference.ErrStream)
	assert.Contains(t, s.Err().Error(), "idle timeout")
}

// Item 3: once every choice has finished, what follows costs only the
// usage chunk: the answer stands, nothing is sent again. On fb654b2 the
// stream ended in ErrStream, and with recovery was sent twice.
func TestFailureAfterTheFinishKeepsTheAnswer(t *testing.T) {
	tails := map[string][]string{
		"error event":     {`{"error":"usage accounting failed","error_type":"internal"}`},
		"truncated usage": {`{"id":"x","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tok`},
	}
	for name, tail := range tails {
		for _, recovery := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/recovery=%v", name, recovery), func(t *testing.T) {
				verifyNoLeaks(t)
				r := newRouter(t)
				events := append([]string{textChunk(0, "Paris is"), textChunk(0, " the capital."), finish(0, "stop")}, tail...)
				r.On("org/m", sse(events...))
				var logs bytes.Buffer
				opts := []inference.Option{inference.WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))}
				if recovery {
					opts = append(opts, inference.WithStreamRecovery())
				}
				c, err := r.Client(opts...)
				require.NoError(t, err)
				req := chatReq("org/m", "")
				req.IncludeUsage = true
				s, err := c.ChatStream(t.Context(), req)
				require.NoError(t, err)
				defer s.Close()
				shown, restarted := read(t, s)
				require.NoError(t, s.Err())
				assert.Equal(t, "Paris is the capital.", shown)
				assert.Zero(t, restarted)
				assert.Len(t, r.Requests(), 1, "a whole answer is never sent again")
				require.Error(t, s.UsageErr())
				assert.Equal(t, inference.Usage{}, s.Response().Usage)
				assert.Contains(t, logs.String(), "usage is missing")
			})
		}
	}
}

// Item 3, n=2: one finished choice does not hide a cut in the other. On
// fb654b2 Err() was nil with choice 1 cut mid-sentence.
func TestAnUnfinishedChoiceIsACut(t *testing.T) {
	r := newRouter(t)
	cut := func(w http.ResponseWriter, req *inferencetest.Request) {
		sse(textChunk(0, "First answer."), textChunk(1, "Second answer is cut"), finish(0, "stop"))(w, req)
		panic(http.ErrAbortHandler)
	}
	r.On("org/m", cut)
	c, err := r.Client()
	require.NoError(t, err)
	req := chatReq("org/m", "")
	req.Extra = map[string]any{"n": 2}
	s, err := c.ChatStream(t.Context(), req)
	require.NoError(t, err)
	defer s.Close()
	for s.Next() {
	}
	require.ErrorIs(t, s.Err(), inference.ErrStream)

	// And with n=2 asked, one finished choice with no other begun is not
	// whole either.
	r.On("org/m2", func(w http.ResponseWriter, req *inferencetest.Request) {
		sse(textChunk(0, "Only one."), finish(0, "stop"))(w, req)
		panic(http.ErrAbortHandler)
	})
	req.Model = "org/m2"
	s2, err := c.ChatStream(t.Context(), req)
	require.NoError(t, err)
	defer s2.Close()
	for s2.Next() {
	}
	require.ErrorIs(t, s2.Err(), inference.ErrStream)

	// Both finished, then a cut: whole.
	r.On("org/m3", func(w http.ResponseWriter, req *inferencetest.Request) {
		sse(textChunk(0, "One."), textChunk(1, "Two."), finish(0, "stop"), finish(1, "stop"))(w, req)
		panic(http.ErrAbortHandler)
	})
	req.Model = "org/m3"
	s3, err := c.ChatStream(t.Context(), req)
	require.NoError(t, err)
	defer s3.Close()
	for s3.Next() {
	}
	require.NoError(t, s3.Err())
	require.Len(t, s3.Response().Choices, 2)
	assert.Equal(t, "Two.", s3.Response().Choices[1].Message.Content)
}

// Item 4: a validation or context-length error streamed as an event on a
// 200 is the kind Chat gives the same words. On fb654b2 it was
// provider_error with "Retry later", and the candidate cooled.
func TestStreamedErrorsAreClassifiedLikeChat(t *testing.T) {
	tests := []struct {
		name  string
		event string
		kind  error
	}{
		{"TGI context length", `{"error":"Input validation error: ` + "`inputs`" + ` tokens + ` + "`max_new_tokens`" + ` must be <= 4096. Given: 4000 ` + "`inputs`" + ` tokens and 500 ` + "`max_new_tokens`" + `","error_type":"validation"}`, inference.ErrContextLength},
		{"TGI validation", `{"error":"Input validation error: temperature must be strictly positive","error_type":"validation"}`, inference.ErrInvalidRequest},
		{"OpenAI code", `{"error":{"message":"too long","type":"invalid_request_error","code":"context_length_exceeded"}}`, inference.ErrContextLength},
		{"overloaded", `{"error":"Model is overloaded","error_type":"overloaded"}`, inference.ErrProvider},
		{"generation", `{"error":"CUDA out of memory","error_type":"generation"}`, inference.ErrProvider},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRouter(t)
			r.On("org/m", sse(tt.event))
			c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
			require.NoError(t, err)
			_, err = c.ChatStream(t.Context(), chatReq("org/m", ""))
			require.Error(t, err)
			assert.Equal(t, []error{tt.kind}, matchedKinds(err))
			if tt.kind != inference.ErrProvider {
				assert.NotContains(t, err.Error(), "Retry later")
				// Not cooled: the next call tries the model again.
				_, _ = c.ChatStream(t.Context(), chatReq("org/m", ""))
				assert.Equal(t, []string{"org/m", "org/m"}, r.Models())
			}
		})
	}
}

// Item 5: every attempt the observer hears start ends once. On fb654b2 a
// restart whose walk failed ended the first attempt a second time.
func TestObserverHearsEachAttemptEndOnce(t *testing.T) {
	r := newRouter(t)
	r.On("org/m", inferencetest.StreamScript{Text: sixtyWords, CutAfter: 5}.Answer(), inferencetest.Gated())
	rec := &recorder{}
	c := recoveryClient(t, r, inference.WithObserver(rec))
	s, err := c.ChatStream(t.Context(), chatReq("org/m", ""))
	require.NoError(t, err)
	for s.Next() {
	}
	require.Error(t, s.Err())
	s.Close()
	var started, ended int
	for _, e := range rec.events {
		switch {
		case strings.HasPrefix(e, "attempt "):
			started++
		case strings.HasPrefix(e, "end attempt "):
			ended++
		}
	}
	assert.Equal(t, 2, started, "%q", rec.events)
	assert.Equal(t, started, ended, "%q", rec.events)
}

// Item 6: concurrent calls' headers never cross, and the client's list is
// never written. On fb654b2 user A's request carried user=B and -race
// reported a data race.
func TestPerCallHeadersDoNotCross(t *testing.T) {
	r := newRouter(t)
	r.Otherwise(inferencetest.Reply("ok"))
	c, err := r.Client(inference.WithHeader("X-Tag", "a"), inference.WithHeader("X-Tag", "b"), inference.WithHeader("X-Tag", "c"))
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 50 {
		user := string(rune('A' + i%2))
		wg.Go(func() {
			_, err := c.Chat(t.Context(), chatReq("org/"+user, ""), inference.WithHeader("X-Tag", "user="+user))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	for _, q := range r.Requests() {
		assert.Equal(t, []string{"a", "b", "c", "user=" + strings.TrimPrefix(q.Model, "org/")}, q.Header.Values("X-Tag"))
	}
	_, err = c.Chat(t.Context(), chatReq("org/C", ""))
	require.NoError(t, err)
	reqs := r.Requests()
	assert.Equal(t, []string{"a", "b", "c"}, reqs[len(reqs)-1].Header.Values("X-Tag"))
}

// Item 6, a middleware that adds to a header the client set does not
// write into the client's list either.
func TestMiddlewareAddDoesNotReachTheClientsHeaders(t *testing.T) {
	r := newRouter(t)
	r.Otherwise(inferencetest.Reply("ok"))
	add := func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			req.Header.Add("X-Tag", "mw")
			return next.RoundTrip(req)
		})
	}
	c, err := r.Client(inference.WithHeader("X-Tag", "a"), inference.WithHeader("X-Tag", "b"), inference.WithHeader("X-Tag", "c"),
		inference.WithMiddleware(add))
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			var opts []inference.Option
			model := "org/plain"
			if i%2 == 0 {
				opts, model = append(opts, inference.WithHeader("X-Tag", "call")), "org/call"
			}
			_, err := c.Chat(t.Context(), chatReq(model, ""), opts...)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	for _, q := range r.Requests() {
		want := []string{"a", "b", "c", "mw"}
		if q.Model == "org/call" {
			want = []string{"a", "b", "c", "call", "mw"}
		}
		assert.Equal(t, want, q.Header.Values("X-Tag"))
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Item 7: a provider's own 401 (the key the router holds for it) is that
// provider's failure: the walk moves on. On fb654b2 it was ErrUnauthorized
// with "create a new token", and the walk stopped.
func TestProviderOwn401MovesOn(t *testing.T) {
	r := newRouter(t)
	r.On("org/m:together", inferencetest.Raw(http.StatusUnauthorized,
		http.Header{"Content-Type": {"application/json"}, "X-Inference-Provider": {"together"}},
		`{"error":{"message":"Invalid API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`))
	r.On("org/m:groq", inferencetest.Reply("served by groq"))
	c, err := r.Client(inference.WithFallback(inference.Candidate{Model: "org/m", Provider: "groq"}))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq("org/m", "together"))
	require.NoError(t, err)
	assert.Equal(t, "served by groq", resp.Text())
	require.Len(t, resp.Attempts, 2)
	assert.Equal(t, []error{inference.ErrProvider}, matchedKinds(resp.Attempts[0].Err))
	assert.NotContains(t, resp.Attempts[0].Err.Error(), "settings/tokens")

	// The router's own 401 (no provider header) is still the token.
	r.On("org/x", inferencetest.InvalidToken())
	_, err = c.Chat(t.Context(), chatReq("org/x", ""))
	assert.Equal(t, []error{inference.ErrUnauthorized}, matchedKinds(err))
}

// Item 8: a per-call token that cannot be a token fails the call, naming
// the option; the client's token is never sent in its place. On fb654b2
// the call was served with the application's token.
func TestMalformedUserTokenFailsTheCall(t *testing.T) {
	creds := struct {
		Token string
		User  string
	}{"hf_" + strings.Repeat("a", 34), "alice"}
	printed := fmt.Sprintf("%v", creds)
	r := newRouter(t)
	r.Otherwise(inferencetest.Reply("ok"))
	c, err := r.Client()
	require.NoError(t, err)

	_, err = c.Chat(t.Context(), chatReq("org/m", ""), inference.WithUserTokenSource(inference.StaticToken(printed)))
	require.ErrorIs(t, err, inference.ErrInvalidToken)
	assert.Equal(t, []error{inference.ErrInvalidToken}, matchedKinds(err))
	assert.Contains(t, err.Error(), "WithUserTokenSource")
	assert.NotContains(t, err.Error(), creds.Token)

	// A source whose token turns out malformed when asked (an OAuth token
	// printed from an object) fails the call too.
	bad := inference.OAuthToken(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: printed}))
	_, err = c.Chat(t.Context(), chatReq("org/m", ""), inference.WithUserTokenSource(bad))
	assert.Equal(t, []error{inference.ErrInvalidToken}, matchedKinds(err))
	assert.Contains(t, err.Error(), "was not sent in its place")
	assert.Empty(t, r.Requests(), "nothing is sent")

	// So does a client-wide user source given as such.
	_, err = r.Client(inference.WithUserTokenSource(inference.StaticToken("None")))
	assert.ErrorIs(t, err, inference.ErrInvalidToken)
}

// Item 9: an endpoint pasted as the base URL is refused with the fix. On
// fb654b2 every call said "the model was not found".
func TestEndpointAsBaseURLIsRefused(t *testing.T) {
	for _, u := range []string{
		"https://router.huggingface.co/v1/chat/completions",
		"https://router.huggingface.co/v1/chat/completions/",
		"https://router.huggingface.co/chat/completions",
		"https://proxy.example/hf/v1/responses",
	} {
		_, err := inference.NewClient(inference.WithBaseURL(u), inference.WithToken("hf_"+strings.Repeat("a", 34)))
		require.Error(t, err, u)
		assert.Contains(t, err.Error(), "is an endpoint, not the router's base URL", u)
	}
	_, err := inference.NewClient(inference.WithBaseURL("https://router.huggingface.co/v1/chat/completions"), inference.WithToken("hf_"+strings.Repeat("a", 34)))
	assert.Contains(t, err.Error(), `pass "https://router.huggingface.co"`)
	_, err = inference.NewClient(inference.WithBaseURL("https://router.huggingface.co/v1"), inference.WithToken("hf_"+strings.Repeat("a", 34)))
	assert.NoError(t, err)
}

// Item 10: the smaller texts.
func TestSmallerTexts(t *testing.T) {
	t.Run("printed oauth2.Token", func(t *testing.T) {
		printed := fmt.Sprintf("%v", &oauth2.Token{AccessToken: "hf_" + strings.Repeat("b", 34), TokenType: "Bearer"})
		require.True(t, strings.HasPrefix(printed, "&{"), printed)
		_, err := inference.NewToken(printed, "test")
		require.ErrorIs(t, err, inference.ErrInvalidToken)
		assert.Contains(t, err.Error(), "printed object")
		assert.NotContains(t, err.Error(), "byte 0")
	})
	t.Run("recovered stream's first attempt", func(t *testing.T) {
		r := newRouter(t)
		r.On("org/m", inferencetest.StreamScript{Text: sixtyWords, CutAfter: 5}.Answer(), inferencetest.StreamScript{Text: sixtyWords}.Answer())
		c := recoveryClient(t, r)
		s, err := c.ChatStream(t.Context(), chatReq("org/m", ""))
		require.NoError(t, err)
		defer s.Close()
		read(t, s)
		require.NoError(t, s.Err())
		require.Len(t, s.Attempts(), 2)
		text := s.Attempts()[0].Err.Error()
		assert.NotContains(t, text, "or let WithStreamRecovery do it")
		assert.Contains(t, text, "WithStreamRecovery sends the request again")
	})
	t.Run("content policy", func(t *testing.T) {
		r := newRouter(t)
		r.On("org/m", inferencetest.ContentPolicy())
		c, err := r.Client()
		require.NoError(t, err)
		_, err = c.Chat(t.Context(), chatReq("org/m", ""))
		require.ErrorIs(t, err, inference.ErrInvalidRequest)
		assert.NotContains(t, err.Error(), "Check the request's parameters")
		assert.Contains(t, err.Error(), "safety system")
	})
	t.Run("client-side validation", func(t *testing.T) {
		r := newRouter(t)
		c, err := r.Client()
		require.NoError(t, err)
		_, err = c.Chat(t.Context(), inference.ChatRequest{Model: "org/m"})
		require.ErrorIs(t, err, inference.ErrInvalidRequest)
		assert.Equal(t, []error{inference.ErrInvalidRequest}, matchedKinds(err))
		assert.True(t, strings.HasPrefix(err.Error(), "inference: the request is invalid: "), err.Error())
		assert.NotContains(t, err.Error(), "refused")

		_, err = c.Chat(t.Context(), chatReq("org/m", ""), inference.WithBillTo("not an org!"))
		require.ErrorIs(t, err, inference.ErrInvalidRequest)
		assert.Equal(t, 1, strings.Count(err.Error(), "inference:"), err.Error())
		assert.Contains(t, err.Error(), "WithBillTo")
		assert.Empty(t, r.Requests())
	})
}
