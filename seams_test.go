package inference_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// These tests try the seams of the core (call.go, race.go, session.go)
// where two features meet: a hedge and an observer, a stall hedge and
// Close, a restart and Close, a hedge and embeddings batches.

// ledger is an Observer that holds the observer's contract: every attempt
// started ends exactly once, with the context its start returned, before
// the call ends; the call ends exactly once, its result listing every
// attempt; nothing is heard after it.
// Like an OpenTelemetry observer, it derives the contexts it returns.
type ledger struct {
	mu       sync.Mutex
	started  int
	ended    map[int]int
	outcomes []string
	calls    int
	ends     int
	endErr   error
	problems []string
}

type ledgerAttempt struct{}

func newLedger() *ledger { return &ledger{ended: map[int]int{}} }

func (l *ledger) problem(format string, args ...any) {
	l.problems = append(l.problems, fmt.Sprintf(format, args...))
}

func (l *ledger) StartCall(ctx context.Context, _ inference.CallInfo) (context.Context, inference.CallObserver) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	return context.WithValue(ctx, spanKey{}, "call"), l
}

func (l *ledger) Skipped(inference.Candidate) {}

func (l *ledger) StartAttempt(ctx context.Context, c inference.Candidate, _ string) context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ends > 0 {
		l.problem("attempt %s started after the call ended", c)
	}
	id := l.started
	l.started++
	return context.WithValue(ctx, ledgerAttempt{}, id)
}

func (l *ledger) EndAttempt(ctx context.Context, a inference.Attempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	id, ok := ctx.Value(ledgerAttempt{}).(int)
	if !ok {
		l.problem("attempt %s ended with a context StartAttempt did not return", a.Candidate)
		return
	}
	l.ended[id]++
	if l.ended[id] > 1 {
		l.problem("attempt %d (%s) ended %d times", id, a.Candidate, l.ended[id])
	}
	if l.ends > 0 {
		l.problem("attempt %d (%s) ended after the call ended", id, a.Candidate)
	}
	outcome := inference.KindName(a.Err)
	switch {
	case a.Lost:
		outcome = "lost"
	case a.Err != nil && outcome == "":
		outcome = "error"
	case outcome == "":
		outcome = "served"
	}
	l.outcomes = append(l.outcomes, a.Candidate.String()+" "+outcome)
}

func (l *ledger) Moved(inference.Candidate, inference.Candidate, error) {}
func (l *ledger) FirstChunk(time.Duration)                              {}

func (l *ledger) End(res inference.CallResult, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ends++
	l.endErr = err
	if l.ends > 1 {
		l.problem("the call ended %d times", l.ends)
	}
	if len(res.Attempts) != l.started {
		l.problem("the call's result lists %d attempts; %d started", len(res.Attempts), l.started)
	}
	for id := range l.started {
		if l.ended[id] == 0 {
			l.problem("attempt %d had not ended when the call ended", id)
		}
	}
}

// check asserts the contract once the call is over.
func (l *ledger) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	assert.Empty(t, l.problems)
	assert.Equal(t, l.calls, l.ends, "every call ends once")
	for id := range l.started {
		assert.Equal(t, 1, l.ended[id], "attempt %d ends once", id)
	}
}

func (l *ledger) startedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.started
}

func (l *ledger) outcomesSeen() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.outcomes)
}

// waitFor polls cond until it holds, or fails the test after a while: a
// state to wait for, never a sleep.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Close from another goroutine while a recovered stream's restart is
// opening (Next waits in the walk, without the session's lock) ends the
// call once, after the restart's attempt ended, and leaves Err as it was.
func TestCloseDuringARestartEndsTheCallAfterItsAttempts(t *testing.T) {
	for _, observed := range []bool{false, true} {
		t.Run(fmt.Sprintf("observed %v", observed), func(t *testing.T) {
			verifyNoLeaks(t)
			r := newRouter(t)
			r.On("org/m", inferencetest.StreamScript{Text: sixtyWords, CutAfter: 10}.Answer(), inferencetest.Hang())
			l := newLedger()
			var opts []inference.Option
			if observed {
				opts = append(opts, inference.WithObserver(l))
			}
			c := recoveryClient(t, r, opts...)
			s, err := c.ChatStream(t.Context(), chatReq("org/m", ""))
			require.NoError(t, err)
			var wg sync.WaitGroup
			wg.Go(func() {
				waitFor(t, "the restart's request", func() bool { return len(r.Requests()) == 2 })
				assert.NoError(t, s.Close())
			})
			read(t, s)
			wg.Wait()
			assert.False(t, s.Next())
			assert.NoError(t, s.Err(), "Close is not a failure")
			if observed {
				l.check(t)
				assert.ErrorIs(t, l.endErr, inference.ErrStreamClosed)
			}
		})
	}
}

// A stalled stream whose first attempt breaks while its stall hedge is
// still opening moves to the hedge; the first attempt failed before the
// hedge answered, so it is a failure as usual, not a loser.
func TestStallHedgeFirstFailingWhileTheHedgeOpensIsAFailure(t *testing.T) {
	verifyNoLeaks(t)
	r := newRouter(t)
	// Silent after 20 words for 300 ms, then cut; the hedge's first word
	// comes after 1 s.
	r.On("org/stall", inferencetest.StreamScript{Text: sixtyWords, StallAfter: 20, StallFor: 300 * time.Millisecond}.Answer())
	r.On("org/ok", inferencetest.StreamScript{Text: sixtyWords, FirstTokenAfter: time.Second}.Answer())
	l := newLedger()
	c := recoveryClient(t, r, inference.WithHedge(100*time.Millisecond), inference.WithObserver(l))
	req := chatReq("org/stall", "")
	req.Fallbacks = []inference.Candidate{{Model: "org/ok"}}
	s, err := c.ChatStream(t.Context(), req)
	require.NoError(t, err)
	shown, _ := read(t, s)
	require.NoError(t, s.Err())
	require.NoError(t, s.Close())
	assert.Equal(t, sixtyWords, shown)
	atts := s.Attempts()
	require.Len(t, atts, 2)
	assert.Equal(t, "org/stall", atts[0].Candidate.String())
	assert.False(t, atts[0].Lost, "the first broke before the hedge answered: not a loser")
	assert.ErrorIs(t, atts[0].Err, inference.ErrStream)
	assert.True(t, atts[1].Hedge)
	assert.NoError(t, atts[1].Err)
	l.check(t)
	assert.Equal(t, []string{"org/stall stream_error", "org/ok served"}, l.outcomesSeen())

	// Its failure cooled its candidate, as any failure the walk left.
	r.On("org/ok", inferencetest.StreamScript{Text: sixtyWords}.Answer())
	s, err = c.ChatStream(t.Context(), req)
	require.NoError(t, err)
	read(t, s)
	require.NoError(t, s.Close())
	assert.Equal(t, []inference.Candidate{{Model: "org/stall"}}, s.Response().Skipped)
}

// An embeddings call in batches hedges each batch at most once (each
// batch is a request of its own, with its own tail), and every batch's
// hedge takes from the budget, which counts the call once.
func TestEmbedInBatchesHedgesEachBatchAtMostOnce(t *testing.T) {
	for _, budget := range []float64{0, 100} {
		t.Run(fmt.Sprintf("budget %v", budget), func(t *testing.T) {
			verifyNoLeaks(t)
			r := newRouter(t)
			r.AddModel(inferencetest.HubModel{ID: "org/emb", PipelineTag: "feature-extraction", Providers: []inferencetest.HubProvider{
				{Name: "together", Status: "live", ProviderID: "org/emb"}, {Name: "groq", Status: "live", ProviderID: "org/emb"}}})
			// The first batch finds together slow and groq quick; the later
			// ones, sent to groq first (it served the first), find it slow.
			slow := inferencetest.Delay(300*time.Millisecond, inferencetest.EmbeddingReply(4))
			r.On("org/emb:together", slow, inferencetest.EmbeddingReply(4))
			r.On("org/emb:groq", inferencetest.EmbeddingReply(4), slow)
			opts := []inference.Option{inference.WithHedge(30 * time.Millisecond)}
			if budget > 0 {
				opts = append(opts, inference.WithHedgeBudget(budget))
			}
			l := newLedger()
			c, err := r.Client(append(opts, inference.WithObserver(l))...)
			require.NoError(t, err)
			inputs := strings.Fields("one two three four five six seven eight")
			resp, err := c.Embed(t.Context(), inference.EmbedRequest{Model: "org/emb", Inputs: inputs, BatchSize: 2})
			require.NoError(t, err)
			l.check(t)
			require.Len(t, resp.Vectors, len(inputs))
			hedges := 0
			for _, a := range resp.Attempts {
				if a.Hedge {
					hedges++
				}
			}
			if budget == 0 {
				assert.Equal(t, 4, hedges, "each slow batch hedged once: %v", r.Models())
				assert.Len(t, r.Requests(), 8, "two requests a batch, no more")
			} else {
				assert.Equal(t, 1, hedges, "a budget of 100 %% of one call allows one hedge: %v", r.Models())
			}
		})
	}
}

// A stall hedge, recovery, the budget and a Close from another goroutine
// (or the caller's cancel) at any moment: whatever happens first, every attempt started ends once
// for the observer, the call ends once after them, Next returns false
// after Close, nothing leaks, and the detector sees no race.
func TestStallHedgeWithCloseAtAnyMoment(t *testing.T) {
	type script struct {
		stallAfter        int
		stallFor, firstAt time.Duration
		pauseAt, every    time.Duration
		fail              inferencetest.Answer
	}
	// answer plays a script as a chat or a Responses stream.
	answer := func(api string, sc script) inferencetest.Answer {
		switch {
		case sc.fail != nil:
			return sc.fail
		case api == "chat" && sc.pauseAt > 0:
			return pausingStream(strings.SplitAfter(sixtyWords, " "), sc.pauseAt)
		case api == "chat":
			return inferencetest.StreamScript{Text: sixtyWords, StallAfter: sc.stallAfter, StallFor: sc.stallFor,
				FirstTokenAfter: sc.firstAt, Every: sc.every}.Answer()
		case sc.pauseAt > 0:
			return responseWords(strings.SplitAfter(sixtyWords, " "), sc.firstAt, 3, sc.pauseAt, true)
		}
		return responseWords(strings.SplitAfter(sixtyWords, " "), sc.firstAt, sc.stallAfter, sc.stallFor, false)
	}
	scenarios := []struct {
		name               string
		first, next, third script
	}{
		{"first stalls, hedge speaks", script{stallAfter: 10}, script{every: time.Millisecond}, script{}},
		{"first resumes before the hedge", script{pauseAt: 60 * time.Millisecond}, script{firstAt: 200 * time.Millisecond}, script{}},
		{"first breaks while the hedge opens", script{stallAfter: 10, stallFor: 60 * time.Millisecond}, script{firstAt: 120 * time.Millisecond}, script{}},
		{"hedge fails, first silent to the idle limit", script{stallAfter: 10}, script{fail: inferencetest.ProviderError(503)}, script{}},
		{"both fail", script{stallAfter: 10, stallFor: 60 * time.Millisecond},
			script{fail: inferencetest.Delay(80*time.Millisecond, inferencetest.ProviderError(503))}, script{fail: inferencetest.ProviderError(502)}},
	}
	closeAfter := []time.Duration{-1, 0, 5 * time.Millisecond, 25 * time.Millisecond, 45 * time.Millisecond,
		70 * time.Millisecond, 100 * time.Millisecond, 150 * time.Millisecond, 250 * time.Millisecond}
	for _, sc := range scenarios {
		for _, api := range []string{"chat", "responses"} {
			t.Run(api+": "+sc.name, func(t *testing.T) {
				verifyNoLeaks(t)
				r := newRouter(t)
				r.On("org/first", answer(api, sc.first))
				r.On("org/next", answer(api, sc.next))
				r.On("org/third", answer(api, sc.third))
				req := chatReq("org/first", "")
				req.Fallbacks = []inference.Candidate{{Model: "org/next"}, {Model: "org/third"}}
				for k, after := range closeAfter {
					// Every other moment, the caller's context is cancelled
					// instead of the stream closed.
					byCancel := k%2 == 1
					ctx, cancel := context.WithCancel(t.Context())
					l := newLedger()
					c := recoveryClient(t, r, inference.WithHedge(30*time.Millisecond), inference.WithHedgeBudget(100),
						inference.WithStreamIdleTimeout(200*time.Millisecond), inference.WithCooldown(0), inference.WithObserver(l))
					var s interface {
						Next() bool
						Close() error
					}
					var err error
					if api == "chat" {
						s, err = c.ChatStream(ctx, req)
					} else {
						s, err = c.RespondStream(ctx, inference.ResponseRequest{Model: req.Model, InputText: "hi", Fallbacks: req.Fallbacks})
					}
					if err != nil {
						cancel()
						l.check(t)
						continue
					}
					var wg sync.WaitGroup
					if after >= 0 {
						wg.Go(func() {
							time.Sleep(after)
							if byCancel {
								cancel()
								return
							}
							assert.NoError(t, s.Close())
						})
					}
					for s.Next() {
					}
					wg.Wait()
					assert.NoError(t, s.Close())
					cancel()
					assert.False(t, s.Next(), "Next after Close")
					l.check(t)
					if t.Failed() {
						t.Logf("ended (cancel %v) after %s: %v", byCancel, after, l.outcomesSeen())
						return
					}
				}
			})
		}
	}
}

// responseWords streams words as the Responses API does, the first after
// firstAt; after stallAfter words it goes silent for stallFor (until the
// client goes away when zero), then cuts the connection, or goes on when
// resume is set.
func responseWords(words []string, firstAt time.Duration, stallAfter int, stallFor time.Duration, resume bool) inferencetest.Answer {
	return func(w http.ResponseWriter, req *inferencetest.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Inference-Provider", "together")
		w.WriteHeader(http.StatusOK)
		seq := 0
		event := func(format string, args ...any) {
			fmt.Fprintf(w, "data: {\"sequence_number\":%d,"+format+"}\n\n", append([]any{seq}, args...)...)
			w.(http.Flusher).Flush()
			seq++
		}
		wait := func(d time.Duration) bool {
			if d <= 0 {
				<-req.HTTP.Context().Done()
				return false
			}
			select {
			case <-time.After(d):
				return true
			case <-req.HTTP.Context().Done():
				return false
			}
		}
		event(`"type":"response.created","response":{"id":"resp_1","object":"response","status":"in_progress","model":"org/m","output":[]}`)
		if firstAt > 0 && !wait(firstAt) {
			return
		}
		event(`"type":"response.output_item.added","output_index":0,"item":{"id":"msg_1","type":"message","role":"assistant","status":"in_progress","content":[]}`)
		for i, word := range words {
			if stallAfter > 0 && i == stallAfter && (!wait(stallFor) || !resume) {
				panic(http.ErrAbortHandler)
			}
			event(`"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":%q`, word)
		}
		event(`"type":"response.completed","response":{"id":"resp_1","object":"response","status":"completed","model":"org/m","output":[{"id":"msg_1","type":"message","role":"assistant","status":"completed","content":[{"type":"output_text","text":%q}]}]}`, strings.Join(words, ""))
	}
}

// The provider the router names is kept cleaned and without the token,
// whatever the header holds, on answers and failures alike.
func TestRoutedToFromAHostileHeader(t *testing.T) {
	const hostile = "together\t" + inferencetest.Token + " Bearer abc.def \xff\xfe \u202egnirts " + "padpadpadpadpadpadpadpadpadpadpadpadpadpadpadpadpadpad"
	bodies := map[string]string{
		"chat":      completionJSON,
		"stream":    "data: " + textChunk(0, "hi") + "\n\ndata: " + finish(0, "stop") + "\n\ndata: [DONE]\n\n",
		"responses": `{"id":"r","object":"response","status":"completed","model":"m","output":[{"type":"message","id":"m1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"hi"}]}]}`,
		"failure":   `{"error":"upstream down"}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			status, ct := "200 OK", "application/json"
			switch name {
			case "stream":
				ct = "text/event-stream"
			case "failure":
				status = "503 Service Unavailable"
			}
			url := rawServer(t, func(c net.Conn) {
				fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Type: %s\r\nX-Inference-Provider: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
					status, ct, hostile, len(body), body)
			})
			c, err := inference.NewClient(inference.WithBaseURL(url), inference.WithHubURL(url), inference.WithToken(inferencetest.Token),
				inference.WithRetry(inference.RetryPolicy{}))
			require.NoError(t, err)
			var atts []inference.Attempt
			var provider string
			switch name {
			case "chat", "failure":
				resp, err := c.Chat(t.Context(), chatReq("org/m", ""))
				if name == "failure" {
					var fe *inference.FallbackError
					require.ErrorAs(t, err, &fe)
					atts = fe.Attempts
					var apiErr *inference.APIError
					require.ErrorAs(t, err, &apiErr)
					provider = apiErr.Provider
					assert.NotContains(t, err.Error(), inferencetest.Token)
				} else {
					require.NoError(t, err)
					atts, provider = resp.Attempts, resp.Provider
				}
			case "stream":
				s, err := c.ChatStream(t.Context(), chatReq("org/m", ""))
				require.NoError(t, err)
				read(t, s)
				require.NoError(t, s.Err())
				s.Close()
				atts, provider = s.Attempts(), s.Response().Provider
			case "responses":
				resp, err := c.Respond(t.Context(), inference.ResponseRequest{Model: "org/m", InputText: "hi"})
				require.NoError(t, err)
				atts, provider = resp.Attempts, resp.Provider
			}
			require.NotEmpty(t, atts)
			for _, got := range []string{atts[0].RoutedTo, provider} {
				assert.NotContains(t, got, inferencetest.Token)
				assert.NotContains(t, got, "abc.def")
				assert.True(t, utf8.ValidString(got), "%q", got)
				assert.NotContains(t, got, "\t")
				assert.NotContains(t, got, "\u202e", "no bidirectional override")
				assert.LessOrEqual(t, len(got), 64+len("…"))
				assert.True(t, strings.HasPrefix(got, "together"), "%q", got)
			}
		})
	}
}

// A failed embeddings call tells its observer every attempt it made, a
// later batch's too, as a successful one does.
func TestEmbedFailureInALaterBatchIsObservedWhole(t *testing.T) {
	verifyNoLeaks(t)
	r := embedRouter(t)
	r.On(embedModel+":together", func(w http.ResponseWriter, req *inferencetest.Request) {
		if strings.HasPrefix(req.Inputs[0], "bad") {
			inferencetest.ProviderError(502)(w, req)
			return
		}
		inferencetest.EmbeddingReply(4)(w, req)
	})
	r.On(embedModel+":hf-inference", inferencetest.ProviderError(503))
	l := newLedger()
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}), inference.WithObserver(l))
	require.NoError(t, err)
	req := embedReq(embedModel, "a", "b", "bad c", "d")
	req.BatchSize = 2
	_, err = c.Embed(t.Context(), req)
	var be *inference.EmbedBatchError
	require.ErrorAs(t, err, &be)
	l.check(t)
	assert.Len(t, r.Requests(), 3, "the first batch, then the second on both providers")
}

// detachingObserver returns attempt contexts that no longer end with the
// ones it was given, as an observer that keeps a span beyond its request
// might (context.WithoutCancel); otherwise it is a ledger.
type detachingObserver struct{ *ledger }

func (d detachingObserver) StartCall(ctx context.Context, info inference.CallInfo) (context.Context, inference.CallObserver) {
	ctx, _ = d.ledger.StartCall(ctx, info)
	return ctx, d
}

func (d detachingObserver) StartAttempt(ctx context.Context, c inference.Candidate, source string) context.Context {
	return context.WithoutCancel(d.ledger.StartAttempt(ctx, c, source))
}

// Whatever context an observer returns for an attempt, the attempt ends
// when the race or the caller ends it: a hedge's loser is cancelled at
// once (not waited for, not a failure), a cancelled call stops, a closed
// stream's restart stops opening.
func TestAttemptsEndWhateverTheObserverReturns(t *testing.T) {
	t.Run("a hedge's loser", func(t *testing.T) {
		verifyNoLeaks(t)
		r := newRouter(t)
		r.On("org/m:together", inferencetest.Hang())
		r.On("org/m:groq", inferencetest.Reply("hedge"))
		l := newLedger()
		c, err := r.Client(inference.WithHedge(30*time.Millisecond), inference.WithObserver(detachingObserver{l}),
			inference.WithAttemptTimeout(3*time.Second))
		require.NoError(t, err)
		start := time.Now()
		resp, err := c.Chat(t.Context(), hedgeReq())
		require.NoError(t, err)
		assert.Less(t, time.Since(start), time.Second, "the loser was not waited for")
		require.Len(t, resp.Attempts, 2)
		assert.True(t, resp.Attempts[0].Lost)
		assert.NoError(t, resp.Attempts[0].Err)
		l.check(t)
	})
	t.Run("a cancelled call", func(t *testing.T) {
		verifyNoLeaks(t)
		r := newRouter(t)
		r.On("org/m", inferencetest.Hang())
		l := newLedger()
		c, err := r.Client(inference.WithObserver(detachingObserver{l}), inference.WithAttemptTimeout(3*time.Second))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			waitFor(t, "the request", func() bool { return len(r.Requests()) == 1 })
			cancel()
		}()
		start := time.Now()
		_, err = c.Chat(ctx, chatReq("org/m", ""))
		assert.ErrorIs(t, err, context.Canceled)
		assert.Less(t, time.Since(start), time.Second, "the cancel ended the attempt")
		l.check(t)
	})
	t.Run("a stream closed while its restart opens", func(t *testing.T) {
		verifyNoLeaks(t)
		r := newRouter(t)
		r.On("org/m", inferencetest.StreamScript{Text: sixtyWords, CutAfter: 10}.Answer(), inferencetest.Hang())
		l := newLedger()
		c := recoveryClient(t, r, inference.WithObserver(detachingObserver{l}), inference.WithAttemptTimeout(3*time.Second))
		s, err := c.ChatStream(t.Context(), chatReq("org/m", ""))
		require.NoError(t, err)
		go func() {
			waitFor(t, "the restart's request", func() bool { return len(r.Requests()) == 2 })
			s.Close()
		}()
		start := time.Now()
		read(t, s)
		assert.Less(t, time.Since(start), time.Second, "Close ended the restart")
		l.check(t)
	})
}

// panickingObserver panics when the call's second attempt starts (a
// hedge): an observer's bug, which the caller may recover from, as
// net/http does for a handler.
type panickingObserver struct{ *ledger }

func (p panickingObserver) StartCall(ctx context.Context, info inference.CallInfo) (context.Context, inference.CallObserver) {
	ctx, _ = p.ledger.StartCall(ctx, info)
	return ctx, p
}

func (p panickingObserver) StartAttempt(ctx context.Context, c inference.Candidate, source string) context.Context {
	if p.ledger.startedCount() == 1 {
		panic("observer bug")
	}
	return p.ledger.StartAttempt(ctx, c, source)
}

// An observer that panics while an attempt runs panics the call, and
// leaves nothing running behind it: the attempt under way is cancelled.
func TestAPanickingObserverLeavesNoAttemptRunning(t *testing.T) {
	verifyNoLeaks(t)
	r := newRouter(t)
	gone := make(chan struct{})
	r.On("org/m:together", func(w http.ResponseWriter, req *inferencetest.Request) {
		<-req.HTTP.Context().Done()
		close(gone)
	})
	r.On("org/m:groq", inferencetest.Reply("hedge"))
	c, err := r.Client(inference.WithHedge(30*time.Millisecond), inference.WithObserver(panickingObserver{newLedger()}),
		inference.WithAttemptTimeout(time.Minute))
	require.NoError(t, err)
	// A context nothing else cancels: only the call may end its attempt.
	ctx := context.WithoutCancel(t.Context())
	assert.PanicsWithValue(t, "observer bug", func() { _, _ = c.Chat(ctx, hedgeReq()) })
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the primary's request still runs after the call panicked")
	}
}
