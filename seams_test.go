package inference_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
	"github.com/hfkit/inference/internal/redact"
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

// waitFor polls cond until it holds, or fails the test after a while (it
// may run on any goroutine): a state to wait for, never a sleep.
func waitFor(t *testing.T, what string, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("timed out waiting for %s", what)
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
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

// A hedged call whose tokens are refused, slowly, on both attempts walks
// its token chain as a call without a hedge does: the candidate refused
// first is sent the next token, once, while the other attempt runs on; a
// refusal of a token the walk has already left switches nothing more.
func TestHedgeWalksATokenChainAsWithoutAHedge(t *testing.T) {
	const (
		bad1   = "hf_BadTokenOneAaaaaaaaaaaaaaaaaaaaaaaaaaa"
		bad2   = "hf_oauth_BadTokenTwoBbbbbbbbbbbbbbbbbbbbbb"
		good   = "hf_GoodTokenGggggggggggggggggggggggggggg"
		unused = "hf_UnusedTokenUuuuuuuuuuuuuuuuuuuuuuuuuu"
	)
	// slowly refuses after the hedge delay: the primary first, the hedge
	// well after it (a busy machine cannot swap them), or, with
	// hedgeFirst, the other way round.
	slowly := func(a inferencetest.Answer, hedgeFirst bool) inferencetest.Answer {
		return func(w http.ResponseWriter, req *inferencetest.Request) {
			first, second := 150*time.Millisecond, 650*time.Millisecond
			if (req.Provider == "groq") != hedgeFirst {
				first = second
			}
			inferencetest.Delay(first, a)(w, req)
		}
	}
	for _, tc := range []struct {
		name   string
		tokens []string
		script func(r *inferencetest.Router)
		// hedgedWinner is the candidate that serves with the good token
		// when the call hedges; without a hedge it is the primary.
		hedgedWinner string
	}{
		{"a slow 401 on both attempts", []string{bad1, good, unused}, func(r *inferencetest.Router) {
			r.ForToken(bad1, slowly(inferencetest.InvalidToken(), false))
		}, "org/m:together"},
		{"a chain of three, two refused for their scope", []string{bad1, bad2, good, unused}, func(r *inferencetest.Router) {
			r.ForToken(bad1, slowly(inferencetest.MissingScope(), false))
			r.ForToken(bad2, slowly(inferencetest.MissingScope(), false))
		}, "org/m:together"},
		{"the hedge refused first", []string{bad1, good, unused}, func(r *inferencetest.Router) {
			r.ForToken(bad1, slowly(inferencetest.MissingScope(), true))
		}, "org/m:groq"},
	} {
		for _, hedge := range []time.Duration{0, 50 * time.Millisecond} {
			t.Run(fmt.Sprintf("%s, hedge %s", tc.name, hedge), func(t *testing.T) {
				verifyNoLeaks(t)
				r := newRouter(t)
				tc.script(r)
				r.On("org/m:together", inferencetest.Reply("org/m:together"))
				r.On("org/m:groq", inferencetest.Reply("org/m:groq"))
				var sources []inference.TokenSource
				for _, tok := range tc.tokens {
					sources = append(sources, inference.StaticToken(tok))
				}
				l := newLedger()
				c, err := r.Client(inference.WithTokenSource(inference.ChainTokens(sources...)), inference.WithHedge(hedge), inference.WithObserver(l))
				require.NoError(t, err)
				resp, err := c.Chat(t.Context(), hedgeReq())
				require.NoError(t, err)
				l.check(t)
				want := "org/m:together"
				if hedge > 0 {
					want = tc.hedgedWinner
				}
				assert.Equal(t, want, resp.Text(), "%v", r.Models())
				var goodOn []string
				for _, q := range r.Requests() {
					switch q.TokenPrefix {
					case redact.Prefix(good):
						goodOn = append(goodOn, q.Candidate().String())
					case redact.Prefix(unused):
						t.Errorf("the token after the good one was sent to %s", q.Candidate())
					}
				}
				assert.Equal(t, []string{want}, goodOn, "the good token was sent once")
			})
		}
	}
}

// A hedged call ends as the walk says, whenever its context is cancelled
// and whichever attempt's failure stops the walk: the error matches the
// cause, every attempt ends once for the observer, nothing leaks.
func TestHedgeStopsAndCancelsAtEveryPoint(t *testing.T) {
	arrived := func(r *inferencetest.Router, n int) func() bool {
		return func() bool { return len(r.Requests()) >= n }
	}
	for _, tc := range []struct {
		name            string
		primary, hedged inferencetest.Answer
		// cancelWhen, when set, cancels the call's context once it holds.
		cancelWhen func(r *inferencetest.Router) func() bool
		want       error // nil: the answer wants
		answer     string
		stream     bool
	}{
		{name: "cancelled before the hedge launches", primary: inferencetest.Hang(), hedged: inferencetest.Reply("hedge"),
			cancelWhen: func(r *inferencetest.Router) func() bool { return arrived(r, 1) }, want: context.Canceled},
		{name: "cancelled while both run", primary: inferencetest.Hang(), hedged: inferencetest.Hang(),
			cancelWhen: func(r *inferencetest.Router) func() bool { return arrived(r, 2) }, want: context.Canceled},
		{name: "the hedge's content-policy refusal stops; the primary's answer is taken",
			primary: inferencetest.Delay(300*time.Millisecond, inferencetest.Reply("primary")), hedged: inferencetest.ContentPolicy(), answer: "primary"},
		{name: "the hedge's content-policy refusal stops; the primary fails too",
			primary: inferencetest.Delay(300*time.Millisecond, inferencetest.ProviderError(503)), hedged: inferencetest.ContentPolicy(), want: inference.ErrInvalidRequest},
		{name: "the hedge's 402 stops; the primary's answer is taken",
			primary: inferencetest.Delay(300*time.Millisecond, inferencetest.Reply("primary")), hedged: inferencetest.PaymentRequired(), answer: "primary"},
		{name: "the primary's 402 stops; the hedge's answer is taken",
			primary: inferencetest.Delay(150*time.Millisecond, inferencetest.PaymentRequired()),
			hedged:  inferencetest.Delay(300*time.Millisecond, inferencetest.Reply("hedge")), answer: "hedge"},
		{name: "stream: cancelled while both open", primary: inferencetest.Hang(), hedged: inferencetest.Hang(),
			cancelWhen: func(r *inferencetest.Router) func() bool { return arrived(r, 2) }, want: context.Canceled, stream: true},
		{name: "stream: the primary's 402 stops; the hedge's stream is taken",
			primary: inferencetest.Delay(150*time.Millisecond, inferencetest.PaymentRequired()),
			hedged:  inferencetest.StreamScript{Text: "hedge", FirstTokenAfter: 300 * time.Millisecond}.Answer(), answer: "hedge", stream: true},
		{name: "stream: the hedge's content-policy refusal stops; the primary fails too", stream: true,
			primary: inferencetest.Delay(300*time.Millisecond, inferencetest.ProviderError(503)),
			hedged:  inferencetest.ContentPolicy(), want: inference.ErrInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			verifyNoLeaks(t)
			r := newRouter(t)
			r.On("org/m:together", tc.primary)
			r.On("org/m:groq", tc.hedged)
			r.On("org/last", inferencetest.Reply("last"))
			l := newLedger()
			c, err := r.Client(inference.WithHedge(50*time.Millisecond), inference.WithObserver(l),
				inference.WithRetry(inference.RetryPolicy{}), inference.WithAttemptTimeout(2*time.Second))
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tc.cancelWhen != nil {
				cond := tc.cancelWhen(r)
				go func() {
					waitFor(t, "the requests", cond)
					cancel()
				}()
			}
			req := hedgeReq()
			req.Fallbacks = append(req.Fallbacks, inference.Candidate{Model: "org/last"})
			start := time.Now()
			var text string
			if tc.stream {
				var s *inference.ChatStream
				s, err = c.ChatStream(ctx, req)
				if err == nil {
					text, _ = read(t, s)
					err = s.Err()
					s.Close()
				}
			} else {
				var resp *inference.ChatResponse
				resp, err = c.Chat(ctx, req)
				if err == nil {
					text = resp.Text()
				}
			}
			assert.Less(t, time.Since(start), 1500*time.Millisecond)
			l.check(t)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
				if tc.want != context.Canceled {
					assert.Equal(t, []error{tc.want}, matchedKinds(err), "the failure that stopped the walk")
				}
				assert.NotContains(t, r.Models(), "org/last", "a stopped walk goes no further")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.answer, text)
		})
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

// A hedged call to a router that accepts and never answers ends at the
// attempt limit, both attempts failed, nothing left behind.
func TestHedgeAgainstARouterThatNeverAnswers(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream %v", stream), func(t *testing.T) {
			verifyNoLeaks(t)
			url := rawServer(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
			l := newLedger()
			c, err := inference.NewClient(inference.WithBaseURL(url), inference.WithHubURL(url), inference.WithToken(inferencetest.Token),
				inference.WithHedge(30*time.Millisecond), inference.WithAttemptTimeout(200*time.Millisecond), inference.WithObserver(l))
			require.NoError(t, err)
			start := time.Now()
			if stream {
				_, err = c.ChatStream(t.Context(), hedgeReq())
			} else {
				_, err = c.Chat(t.Context(), hedgeReq())
			}
			assert.Less(t, time.Since(start), 2*time.Second)
			require.ErrorIs(t, err, inference.ErrProvider)
			var fe *inference.FallbackError
			require.ErrorAs(t, err, &fe)
			require.Len(t, fe.Attempts, 2)
			for _, a := range fe.Attempts {
				assert.Equal(t, inference.TimeoutAttempt, a.TimedOut, "%s", a.Candidate)
				assert.False(t, a.Lost)
			}
			l.check(t)
		})
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

// A guarded stream (an observer, a stall hedge) stops at the caller's
// cancel with chunks buffered, as an unguarded one does, and tells its
// observer the call ended with the cancel.
func TestCancelStopsAGuardedStreamWithBufferedChunks(t *testing.T) {
	verifyNoLeaks(t)
	pieces := strings.SplitAfter("1 2 3 4 5 6 7 8", " ")
	r := newRouter(t)
	r.On("org/m", inferencetest.Stream(pieces...))
	r.On("org/fb", inferencetest.Stream(pieces...))
	l := newLedger()
	c := recoveryClient(t, r, inference.WithObserver(l), inference.WithHedge(time.Second))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req := chatReq("org/m", "")
	req.Fallbacks = []inference.Candidate{{Model: "org/fb"}}
	s, err := c.ChatStream(ctx, req)
	require.NoError(t, err)
	var got []string
	for s.Next() {
		got = append(got, s.Current().Text())
		if len(got) == 3 {
			cancel()
		}
	}
	assert.Equal(t, pieces[:3], got)
	assert.ErrorIs(t, s.Err(), context.Canceled)
	assert.False(t, s.Next())
	require.NoError(t, s.Close())
	l.check(t)
	assert.ErrorIs(t, l.endErr, context.Canceled)
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

// A primary that answered a 429 with Retry-After and waits to be retried
// is not slow: the hedge waits with it, with an observer that derives its
// contexts; a Retry-After longer than MaxWait is not waited for, and the
// next candidate is tried at once as the walk's, not as a hedge.
func TestHedgeWaitsWithARateLimitRetry(t *testing.T) {
	for _, tc := range []struct {
		name      string
		maxWait   time.Duration
		wantModel []string
		wantText  string
	}{
		{"waited for", 3 * time.Second, []string{"org/m:together", "org/m:together"}, "primary"},
		{"longer than MaxWait", 500 * time.Millisecond, []string{"org/m:together", "org/m:groq"}, "hedge"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			verifyNoLeaks(t)
			r := newRouter(t)
			r.On("org/m:together", inferencetest.RateLimited(time.Second), inferencetest.Reply("primary"))
			r.On("org/m:groq", inferencetest.Reply("hedge"))
			l := newLedger()
			c, err := r.Client(inference.WithHedge(100*time.Millisecond), inference.WithObserver(l),
				inference.WithRetry(inference.RetryPolicy{MaxRetries: 1, MinWait: time.Millisecond, MaxWait: tc.maxWait}))
			require.NoError(t, err)
			resp, err := c.Chat(t.Context(), hedgeReq())
			require.NoError(t, err)
			l.check(t)
			assert.Equal(t, tc.wantText, resp.Text())
			assert.Equal(t, tc.wantModel, r.Models())
			for _, a := range resp.Attempts {
				assert.False(t, a.Hedge, "no hedge: %s", a.Candidate)
			}
		})
	}
}

// Respond and RespondStream hedge as Chat does: the first answer wins,
// the loser is Lost and never delivers an event, every attempt ends once.
func TestHedgeResponses(t *testing.T) {
	words := strings.SplitAfter("hedge words here", " ")
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream %v", stream), func(t *testing.T) {
			verifyNoLeaks(t)
			r := newRouter(t)
			slow := responseWords(strings.SplitAfter("slow primary words", " "), time.Second, 0, 0, false)
			if !stream {
				slow = inferencetest.Delay(time.Second, inferencetest.ResponseReply("slow primary words"))
			}
			r.On("org/m:together", slow)
			r.On("org/m:groq", responseWords(words, 0, 0, 0, false))
			if !stream {
				r.On("org/m:groq", inferencetest.ResponseReply("hedge words here"))
			}
			l := newLedger()
			c, err := r.Client(inference.WithHedge(50*time.Millisecond), inference.WithObserver(l))
			require.NoError(t, err)
			req := inference.ResponseRequest{Model: "org/m", Provider: "together", InputText: "hi",
				Fallbacks: []inference.Candidate{{Model: "org/m", Provider: "groq"}}}
			start := time.Now()
			var text string
			var atts []inference.Attempt
			if stream {
				s, err := c.RespondStream(t.Context(), req)
				require.NoError(t, err)
				text, _, _ = readResponse(t, s)
				require.NoError(t, s.Err())
				require.NoError(t, s.Close())
				atts = s.Attempts()
			} else {
				resp, err := c.Respond(t.Context(), req)
				require.NoError(t, err)
				text, atts = resp.OutputText(), resp.Attempts
			}
			assert.Less(t, time.Since(start), 700*time.Millisecond)
			assert.Equal(t, "hedge words here", text, "only the winner's words")
			require.Len(t, atts, 2)
			assert.True(t, atts[0].Lost)
			assert.True(t, atts[1].Hedge)
			l.check(t)
		})
	}
}

// A hedged call whose context is cancelled as the hedge's answer arrives
// ends either with that answer or with the cancel, never anything else,
// every attempt ended once, nothing left running.
func TestHedgeCancelledRightAfterAWin(t *testing.T) {
	for i := range 20 {
		verifyNoLeaks(t)
		r := newRouter(t)
		ctx, cancel := context.WithCancel(t.Context())
		r.On("org/m:together", inferencetest.Hang())
		r.On("org/m:groq", func(w http.ResponseWriter, req *inferencetest.Request) {
			inferencetest.Reply("hedge")(w, req)
			w.(http.Flusher).Flush()
			if i%2 == 1 {
				time.Sleep(time.Duration(i) * 50 * time.Microsecond)
			}
			cancel()
		})
		l := newLedger()
		c, err := r.Client(inference.WithHedge(20*time.Millisecond), inference.WithObserver(l))
		require.NoError(t, err)
		resp, err := c.Chat(ctx, hedgeReq())
		if err != nil {
			assert.ErrorIs(t, err, context.Canceled)
		} else {
			assert.Equal(t, "hedge", resp.Text())
			require.Len(t, resp.Attempts, 2)
			assert.False(t, resp.Attempts[0].Hedge)
			assert.NoError(t, resp.Attempts[1].Err)
		}
		l.check(t)
		cancel()
	}
}

// slowToGiveUp is a middleware that takes a while to hand back a request
// its context ended, as one that reports the failure somewhere slow does.
func slowToGiveUp(d time.Duration) inference.Middleware {
	return func(next http.RoundTripper) http.RoundTripper {
		return inference.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := next.RoundTrip(req)
			if err != nil && req.Context().Err() != nil {
				time.Sleep(d)
			}
			return resp, err
		})
	}
}

// A Close that waits for a cancelled stall hedge to end, while the reader
// calls Next (or Close again) from another goroutine, ends the call once,
// after the hedge's attempt: whoever waits for the hedge ends the call.
func TestCloseWhileAStallHedgeEndsAndNextRuns(t *testing.T) {
	for _, second := range []string{"Next", "Close"} {
		t.Run(second, func(t *testing.T) {
			verifyNoLeaks(t)
			r := newRouter(t)
			// Three words, a pause that sends the stall hedge, a fourth word
			// that cancels it, then silence until the client goes away.
			gone := make(chan struct{})
			r.On("org/first", func(w http.ResponseWriter, req *inferencetest.Request) {
				defer close(gone)
				sse(textChunk(0, "one "), textChunk(0, "two "), textChunk(0, "three "))(w, req)
				time.Sleep(100 * time.Millisecond)
				fmt.Fprintf(w, "data: %s\n\n", textChunk(0, "four "))
				w.(http.Flusher).Flush()
				<-req.HTTP.Context().Done()
			})
			r.On("org/next", inferencetest.Hang())
			l := newLedger()
			// The cancelled hedge takes a second to end: Close waits for it.
			c := recoveryClient(t, r, inference.WithHedge(20*time.Millisecond), inference.WithObserver(l),
				inference.WithMiddleware(slowToGiveUp(time.Second)))
			req := chatReq("org/first", "")
			req.Fallbacks = []inference.Candidate{{Model: "org/next"}}
			s, err := c.ChatStream(t.Context(), req)
			require.NoError(t, err)
			for n := 0; n < 4; n++ {
				require.True(t, s.Next())
			}
			require.Len(t, r.Requests(), 2, "the stall hedge was sent")
			closed := make(chan struct{})
			go func() {
				defer close(closed)
				assert.NoError(t, s.Close()) // waits for the hedge to end
			}()
			<-gone                            // Close closed the first attempt...
			time.Sleep(50 * time.Millisecond) // ...and waits for the hedge
			if second == "Next" {
				assert.False(t, s.Next())
			} else {
				assert.NoError(t, s.Close())
			}
			<-closed
			l.check(t)
			assert.Equal(t, []string{"org/first served", "org/next lost"}, sortedStrings(l.outcomesSeen()))
		})
	}
}

func sortedStrings(s []string) []string {
	slices.Sort(s)
	return s
}

// Close from another goroutine, any time after a restart, is safe: the
// restarted attempt is made whole (its stall hedge armed) before the
// session publishes it to Close. The closing goroutine shares nothing
// with the reader but the stream, so the race detector sees any write the
// session did not publish.
func TestCloseAfterARestartFromAnotherGoroutine(t *testing.T) {
	verifyNoLeaks(t)
	r := newRouter(t)
	r.On("org/first", inferencetest.StreamScript{Text: sixtyWords, CutAfter: 5}.Answer(),
		inferencetest.StreamScript{Text: sixtyWords, Every: 20 * time.Millisecond}.Answer())
	r.On("org/next", inferencetest.StreamScript{Text: sixtyWords}.Answer())
	c := recoveryClient(t, r, inference.WithHedge(time.Second))
	req := chatReq("org/first", "")
	req.Fallbacks = []inference.Candidate{{Model: "org/next"}}
	s, err := c.ChatStream(t.Context(), req)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		waitFor(t, "the restart", func() bool { return len(r.Requests()) == 2 })
		time.Sleep(200 * time.Millisecond) // the restart is being read
		assert.NoError(t, s.Close())
	})
	shown, _ := read(t, s)
	wg.Wait()
	assert.NoError(t, s.Err())
	assert.True(t, strings.HasPrefix(sixtyWords, shown), "what was shown is the answer's start")
	assert.Len(t, s.Attempts(), 2)
}

// slowBody is a middleware that reads the n-th response body (counting
// from 1) whole, then hands it on slowly: its first bytes come after d,
// whatever the request's context by then, as from a middleware that
// inspects bodies.
func slowBody(n int32, d time.Duration) inference.Middleware {
	var seen atomic.Int32
	return func(next http.RoundTripper) http.RoundTripper {
		return inference.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := next.RoundTrip(req)
			if err != nil || seen.Add(1) != n {
				return resp, err
			}
			data, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return nil, err
			}
			resp.Body = &waitingBody{Reader: bytes.NewReader(data), wait: d}
			return resp, nil
		})
	}
}

type waitingBody struct {
	io.Reader
	wait   time.Duration
	waited bool
}

func (b *waitingBody) Read(p []byte) (int, error) {
	if !b.waited {
		b.waited = true
		time.Sleep(b.wait)
	}
	return b.Reader.Read(p)
}

func (b *waitingBody) Close() error { return nil }

// A stall hedge that opens as the stream is closed, after its context
// ended, is closed and recorded lost: it never serves, and it ends for
// the observer before the call does.
func TestCloseAsTheStallHedgeOpens(t *testing.T) {
	verifyNoLeaks(t)
	r := newRouter(t)
	r.On("org/first", inferencetest.StreamScript{Text: sixtyWords, StallAfter: 3}.Answer())
	r.On("org/next", inferencetest.Stream(strings.SplitAfter(sixtyWords, " ")...))
	l := newLedger()
	c := recoveryClient(t, r, inference.WithHedge(20*time.Millisecond), inference.WithObserver(l),
		inference.WithMiddleware(slowBody(2, 300*time.Millisecond)))
	req := chatReq("org/first", "")
	req.Fallbacks = []inference.Candidate{{Model: "org/next"}}
	s, err := c.ChatStream(t.Context(), req)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		waitFor(t, "the stall hedge", func() bool { return len(r.Requests()) == 2 })
		time.Sleep(100 * time.Millisecond) // its body is on its way
		assert.NoError(t, s.Close())
	})
	shown, _ := read(t, s)
	wg.Wait()
	assert.NoError(t, s.Err())
	assert.Equal(t, strings.Fields(sixtyWords)[:3], strings.Fields(shown))
	l.check(t)
	assert.Equal(t, []string{"org/first served", "org/next lost"}, sortedStrings(l.outcomesSeen()))
}
