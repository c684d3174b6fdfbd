package inference_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// TestFailoverScorecard ports the sixteen scenarios of failoverbench
// (methodology v0.1; restated in the project's shared notes) to
// inferencetest, and scores this client on them with the methodology's
// rules: pass, partial, safe or fail. A fake provider misbehaves by model
// name; every healthy answer is the same sixty words, one word per chunk.
//
// Two configurations are scored, each with the benchmark's budget (up to two
// retries, a 30 s attempt timeout, one fallback model): the library's
// defaults, and the recovery settings (WithStreamRecovery, 10 s first-token
// and idle limits). Defaults must never fail; recovery must pass all.
//
// The fast profile (the default, and CI's) uses failoverbench's fast fault
// timings and the client's durations scaled by a fifth, and runs the
// scenarios side by side; INFERENCE_FAILOVERBENCH=full runs the published
// full profile one scenario after the other (about 5 minutes) and prints
// the scorecard with its run times.
func TestFailoverScorecard(t *testing.T) {
	if testing.Short() {
		t.Skip("the scorecard takes seconds of real time")
	}
	p := fastProfile
	if os.Getenv("INFERENCE_FAILOVERBENCH") == "full" {
		p = fullProfile
	}
	configs := []scoreConfig{
		{name: "hfkit, defaults + budget", recovery: false},
		{name: "hfkit, recovery settings", recovery: true},
		{name: "hfkit, recovery settings + WithHedge", recovery: true, hedge: p.hedge},
	}
	results := make([][]scenarioResult, len(configs))
	var wg sync.WaitGroup
	for i, cfg := range configs {
		wg.Go(func() { results[i] = runScorecard(t, p, cfg) })
	}
	wg.Wait()

	var b strings.Builder
	fmt.Fprintf(&b, "failoverbench scenarios, %s profile\n", p.name)
	fmt.Fprintf(&b, "| system | pass | partial | safe | fail | run time |\n|---|---|---|---|---|---|\n")
	for i, cfg := range configs {
		counts := map[scoreVerdict]int{}
		var total time.Duration
		for _, r := range results[i] {
			counts[r.verdict]++
			total += r.elapsed
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %.0f s |\n", cfg.name, counts[pass], counts[partial], counts[safe], counts[fail], total.Seconds())
	}
	for i, cfg := range configs {
		fmt.Fprintf(&b, "\n%s\n", cfg.name)
		for _, r := range results[i] {
			fmt.Fprintf(&b, "  %s %-7s %6.2fs  %s\n", r.id, r.verdict, r.elapsed.Seconds(), r.note)
		}
	}
	t.Log("\n" + b.String())
	if p.name == "full" {
		fmt.Println(b.String())
	}

	for _, r := range results[0] {
		assert.NotEqual(t, fail, r.verdict, "defaults: %s %s", r.id, r.note)
	}
	for _, r := range results[1] {
		assert.Equal(t, pass, r.verdict, "recovery: %s %s", r.id, r.note)
	}
	for _, r := range results[2] {
		assert.Equal(t, pass, r.verdict, "recovery and hedge: %s %s", r.id, r.note)
	}
}

// profile is a timing profile: the faults' timings and the client's.
type profile struct {
	name                                       string
	retryAfter, slowFirstToken, stall, silence time.Duration
	outage, interval, perRequest, between      time.Duration
	requests                                   int
	attemptTimeout, firstToken, idle, cooldown time.Duration
	recoveredWithin, hedge                     time.Duration
	sequential                                 bool
}

var (
	fullProfile = profile{name: "full", retryAfter: 2 * time.Second, slowFirstToken: 20 * time.Second,
		stall: 30 * time.Second, silence: 120 * time.Second, outage: 60 * time.Second, interval: 4 * time.Second,
		perRequest: 30 * time.Second, between: 15 * time.Millisecond, requests: 20,
		attemptTimeout: 30 * time.Second, firstToken: 10 * time.Second, idle: 10 * time.Second,
		cooldown: inference.DefaultCooldown, recoveredWithin: 30 * time.Second, hedge: 2 * time.Second, sequential: true}
	// fastProfile scales the client's durations by a fifth, as the faults'
	// are scaled, so that its limits still come before the faults end.
	fastProfile = profile{name: "fast", retryAfter: 2 * time.Second, slowFirstToken: 3 * time.Second,
		stall: 4 * time.Second, silence: 15 * time.Second, outage: 6 * time.Second, interval: 1200 * time.Millisecond,
		perRequest: 10 * time.Second, between: 5 * time.Millisecond, requests: 10,
		attemptTimeout: 6 * time.Second, firstToken: 2 * time.Second, idle: 2 * time.Second,
		cooldown: inference.DefaultCooldown / 5, recoveredWithin: 6 * time.Second, hedge: 400 * time.Millisecond}
)

type scoreConfig struct {
	name     string
	recovery bool
	hedge    time.Duration
}

type scoreVerdict string

const (
	pass    scoreVerdict = "pass"
	partial scoreVerdict = "partial"
	safe    scoreVerdict = "safe"
	fail    scoreVerdict = "fail"
)

type scenarioResult struct {
	id      string
	verdict scoreVerdict
	elapsed time.Duration
	note    string
}

// canonical is the healthy answer: sixty words.
const canonical = "A gateway is judged on its worst day, not its best. When the provider " +
	"stalls, cuts a stream, or answers with a limit, the gateway must retry with care, " +
	"move to a healthy model, keep what was said, and tell the caller plainly what " +
	"happened. Trust is earned there: in the outage, in the timeout, and in the half answer."

const prompt = "Explain in exactly sixty words why a gateway earns trust only when the provider behind it misbehaves."

// check is one of a scenario's machine checks.
type check struct {
	id       string
	advisory bool
	ok       func(o *outcome) bool
}

// outcome is what a scenario's call did, from both sides.
type outcome struct {
	err      error
	text     string
	model    string
	usage    bool
	elapsed  time.Duration
	primary  []time.Time // requests the wall saw for the primary model
	fallback int
	prefill  bool // the fallback refused a prefill
	alive    bool
}

func (o *outcome) complete() bool {
	return o.err == nil && strings.Join(strings.Fields(o.text), " ") == canonical
}

func noTruncatedSuccess(o *outcome) bool { return o.err != nil || o.complete() }

func within(d time.Duration) func(o *outcome) bool {
	return func(o *outcome) bool { return o.elapsed <= d }
}

func primaryAtMost(n int) func(o *outcome) bool {
	return func(o *outcome) bool { return len(o.primary) <= n }
}

type scenario struct {
	id, model, fallback string
	answer              func(p profile, start time.Time) inferencetest.Answer
	maxWall             time.Duration
	idealError          bool
	checks              []check
}

func scenarios(p profile) []scenario {
	ok := func(pp profile) inferencetest.StreamScript {
		return inferencetest.StreamScript{Text: canonical, Every: pp.between}
	}
	script := func(f func(s *inferencetest.StreamScript)) func(p profile, _ time.Time) inferencetest.Answer {
		return func(p profile, _ time.Time) inferencetest.Answer {
			s := ok(p)
			f(&s)
			return s.Answer()
		}
	}
	queue := func(first inferencetest.Answer) func(p profile, _ time.Time) inferencetest.Answer {
		return func(p profile, _ time.Time) inferencetest.Answer {
			return queued(first, ok(p).Answer())
		}
	}
	always := func(a inferencetest.Answer) func(p profile, _ time.Time) inferencetest.Answer {
		return func(profile, time.Time) inferencetest.Answer { return a }
	}
	noHang := check{id: "no_hang", ok: func(*outcome) bool { return true }} // enforced by the call's deadline
	return []scenario{
		{id: "S01", model: "fb-s01-429-retry-after", answer: queue(inferencetest.RateLimited(p.retryAfter)), maxWall: 20 * time.Second, checks: []check{
			{id: "retried", advisory: true, ok: func(o *outcome) bool { return len(o.primary) >= 2 }},
			{id: "retry_after_honoured", advisory: true, ok: func(o *outcome) bool {
				return len(o.primary) >= 2 && o.primary[1].Sub(o.primary[0]) >= 1800*time.Millisecond
			}},
			{id: "no_hammer", ok: attemptsWithin(1500*time.Millisecond, 2)}}},
		{id: "S02", model: "fb-s02-429-persistent", answer: always(inferencetest.RateLimited(0)), maxWall: 40 * time.Second, checks: []check{
			{id: "no_hammer", ok: attemptsWithin(3*time.Second, 4)}, {id: "bounded_attempts", ok: primaryAtMost(6)}, noHang}},
		{id: "S03", model: "fb-s03-500-then-200", answer: queue(inferencetest.ProviderError(500)), maxWall: 20 * time.Second, checks: []check{
			noHang, {id: "same_provider_retry", advisory: true, ok: func(o *outcome) bool { return len(o.primary) >= 2 }}}},
		{id: "S04", model: "fb-s04-503-persistent", answer: always(inferencetest.ProviderError(503)), maxWall: 40 * time.Second, checks: []check{
			{id: "bounded_attempts", ok: primaryAtMost(6)}, noHang}},
		{id: "S05", model: "fb-s05-reset", answer: queue(inferencetest.Reset()), maxWall: 20 * time.Second, checks: []check{noHang}},
		{id: "S06", model: "fb-s06-no-response", answer: func(p profile, _ time.Time) inferencetest.Answer {
			return inferencetest.Delay(p.silence, inferencetest.Drop())
		}, maxWall: 130 * time.Second, checks: []check{
			{id: "within_budget", ok: within(100 * time.Second)}, noHang,
			{id: "silent_route_not_retried", advisory: true, ok: primaryAtMost(1)}}},
		{id: "S07", model: "fb-s07-slow-ttft", answer: script(func(s *inferencetest.StreamScript) { s.FirstTokenAfter = p.slowFirstToken }),
			maxWall: 60 * time.Second, checks: []check{noHang, {id: "ttft_limit", advisory: true, ok: within(15 * time.Second)}}},
		{id: "S08", model: "fb-s08-stream-cut", answer: script(func(s *inferencetest.StreamScript) { s.CutAfter = 40 }),
			maxWall: 40 * time.Second, checks: []check{{id: "no_truncated_success", ok: noTruncatedSuccess}, noHang}},
		{id: "S09", model: "fb-s09-stream-stall", answer: script(func(s *inferencetest.StreamScript) { s.StallAfter, s.StallFor = 20, p.stall }),
			maxWall: 70 * time.Second, checks: []check{{id: "bounded", ok: within(45 * time.Second)},
				{id: "no_truncated_success", ok: noTruncatedSuccess}, {id: "alive_after", ok: func(o *outcome) bool { return o.alive }}, noHang}},
		{id: "S10", model: "fb-s10-malformed-chunk", answer: script(func(s *inferencetest.StreamScript) { s.MalformedAfter = 10 }),
			maxWall: 30 * time.Second, checks: []check{{id: "alive_after", ok: func(o *outcome) bool { return o.alive }},
				{id: "no_garbage", ok: noTruncatedSuccess}, noHang, {id: "recovered_in_place", advisory: true, ok: (*outcome).complete}}},
		{id: "S11", model: "fb-s11-no-done", answer: script(func(s *inferencetest.StreamScript) { s.NoDone = true }),
			maxWall: 30 * time.Second, checks: []check{{id: "prompt_finalise", ok: within(8 * time.Second)},
				{id: "usage_reported", advisory: true, ok: func(o *outcome) bool { return o.usage }}}},
		{id: "S12", model: "fb-s12-context-length", answer: always(inferencetest.ContextLengthExceeded()), maxWall: 20 * time.Second, checks: []check{
			{id: "no_same_model_retry", ok: func(o *outcome) bool { return len(o.primary) == 1 }}, noHang}},
		{id: "S13", model: "fb-s13-content-filter", answer: always(inferencetest.ContentPolicy()), idealError: true, maxWall: 20 * time.Second, checks: []check{
			{id: "no_same_model_retry", ok: func(o *outcome) bool { return len(o.primary) == 1 }}, noHang}},
		{id: "S14", model: "fb-s14-stream-cut", fallback: "fb-ok-noprefill", answer: script(func(s *inferencetest.StreamScript) { s.CutAfter = 40 }),
			maxWall: 40 * time.Second, checks: []check{{id: "no_prefill_masking", ok: func(o *outcome) bool { return o.err == nil || !o.prefill }},
				{id: "no_truncated_success", ok: noTruncatedSuccess}}},
		{id: "S16", model: "fb-s16-503-persistent", answer: always(inferencetest.ProviderError(503)), maxWall: 40 * time.Second, checks: []check{
			{id: "reports_fallback_model", ok: func(o *outcome) bool { return o.model == "fb-ok" }},
			{id: "usage_present", advisory: true, ok: func(o *outcome) bool { return o.usage }},
			{id: "bounded_attempts", ok: primaryAtMost(6)}}},
	}
}

// queued answers the first request with first and every later one with
// then.
func queued(first, then inferencetest.Answer) inferencetest.Answer {
	var mu sync.Mutex
	n := 0
	return func(w http.ResponseWriter, req *inferencetest.Request) {
		mu.Lock()
		n++
		k := n
		mu.Unlock()
		if k == 1 {
			first(w, req)
			return
		}
		then(w, req)
	}
}

// attemptsWithin bounds the primary attempts in the first window after
// the first one.
func attemptsWithin(window time.Duration, n int) func(o *outcome) bool {
	return func(o *outcome) bool {
		count := 0
		for _, at := range o.primary {
			if at.Sub(o.primary[0]) <= window {
				count++
			}
		}
		return count <= n
	}
}

// runScorecard runs every scenario against one client, as one system under
// test, and scores each.
func runScorecard(t *testing.T, p profile, cfg scoreConfig) []scenarioResult {
	r := inferencetest.NewRouter()
	defer r.Close()
	healthy := inferencetest.StreamScript{Text: canonical, Every: p.between}.Answer()
	r.On("fb-ok", healthy)
	r.On("fb-ok-noprefill", inferencetest.RejectPrefill(healthy))
	opts := []inference.Option{
		inference.WithRetry(inference.RetryPolicy{MaxRetries: 2}),
		inference.WithAttemptTimeout(p.attemptTimeout),
		inference.WithCooldown(p.cooldown),
	}
	if cfg.recovery {
		opts = append(opts, inference.WithStreamRecovery(),
			inference.WithFirstTokenTimeout(p.firstToken), inference.WithStreamIdleTimeout(p.idle))
	}
	if cfg.hedge > 0 {
		opts = append(opts, inference.WithHedge(cfg.hedge))
	}
	c, err := r.Client(opts...)
	if err != nil {
		t.Error(err)
		return nil
	}
	defer c.CloseIdleConnections()

	list := scenarios(p)
	results := make([]scenarioResult, len(list)+1)
	var wg sync.WaitGroup
	for i, sc := range list {
		r.On(sc.model, sc.answer(p, time.Now()))
		one := func() { results[i] = runScenario(c, r, sc) }
		if p.sequential {
			one()
		} else {
			wg.Go(one)
		}
	}
	wg.Wait()
	results[len(list)] = runFlap(c, r, p)
	slices.SortFunc(results, func(a, b scenarioResult) int { return strings.Compare(a.id, b.id) })
	return results
}

func streamRequest(model, fallback string) inference.ChatRequest {
	if fallback == "" {
		fallback = "fb-ok"
	}
	return inference.ChatRequest{Model: model, Messages: []inference.Message{inference.UserMessage(prompt)},
		IncludeUsage: true, Fallbacks: []inference.Candidate{{Model: fallback}}}
}

// streamCall streams one request as a caller would, honouring Restarted, within
// limit.
func streamCall(c *inference.Client, req inference.ChatRequest, limit time.Duration) *outcome {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	o := &outcome{}
	start := time.Now()
	defer func() { o.elapsed = time.Since(start) }()
	s, err := c.ChatStream(ctx, req)
	if err != nil {
		o.err = err
		return o
	}
	defer s.Close()
	var b strings.Builder
	for s.Next() {
		chunk := s.Current()
		if chunk.Restarted {
			b.Reset()
		}
		b.WriteString(chunk.Text())
	}
	o.err, o.text = s.Err(), b.String()
	resp := s.Response()
	o.model, o.usage = resp.Model, resp.Usage.TotalTokens > 0
	return o
}

// alive is the probe after each scenario: a healthy, non-streamed call
// with a 10 s limit.
func alive(c *inference.Client) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Chat(ctx, inference.ChatRequest{Model: "fb-ok", Messages: []inference.Message{inference.UserMessage(prompt)}, Fallbacks: []inference.Candidate{}})
	return err == nil && resp.Text() == canonical
}

func runScenario(c *inference.Client, r *inferencetest.Router, sc scenario) scenarioResult {
	req := streamRequest(sc.model, sc.fallback)
	o := streamCall(c, req, sc.maxWall)
	hung := o.elapsed >= sc.maxWall
	for _, q := range r.Requests() {
		switch {
		case q.Model == sc.model:
			o.primary = append(o.primary, q.Time)
		case q.Model == req.Fallbacks[0].Model && q.Stream:
			o.fallback++
			o.prefill = o.prefill || strings.Contains(string(q.Body), `"role":"assistant"`)
		}
	}
	o.alive = alive(c)
	rescued := o.complete()
	if sc.idealError {
		rescued = o.err != nil
	}
	var failedRequired, failedAdvisory []string
	for _, ch := range sc.checks {
		if !ch.ok(o) {
			if ch.advisory {
				failedAdvisory = append(failedAdvisory, ch.id)
			} else {
				failedRequired = append(failedRequired, ch.id)
			}
		}
	}
	if sc.idealError && o.err == nil {
		failedAdvisory = append(failedAdvisory, "answered around the rejection")
	}
	v := score(rescued, hung, o, failedRequired, failedAdvisory)
	note := describe(o, failedRequired, failedAdvisory)
	return scenarioResult{id: sc.id, verdict: v, elapsed: o.elapsed, note: note}
}

// score applies the methodology: pass, partial, safe or fail.
func score(rescued, hung bool, o *outcome, required, advisory []string) scoreVerdict {
	truncatedSuccess := o.err == nil && !o.complete() && o.text != ""
	switch {
	case hung, truncatedSuccess, len(required) > 0:
		return fail
	case rescued && len(advisory) == 0:
		return pass
	case rescued:
		return partial
	case o.err != nil:
		return safe
	}
	return fail
}

func describe(o *outcome, required, advisory []string) string {
	var parts []string
	if o.err != nil {
		msg := o.err.Error()
		parts = append(parts, "error: "+msg[:min(len(msg), 90)])
	} else {
		parts = append(parts, fmt.Sprintf("answered (%d words) by %s", len(strings.Fields(o.text)), o.model))
	}
	parts = append(parts, fmt.Sprintf("primary attempts %d", len(o.primary)))
	if len(required) > 0 {
		parts = append(parts, "failed: "+strings.Join(required, ","))
	}
	if len(advisory) > 0 {
		parts = append(parts, "advisory: "+strings.Join(advisory, ","))
	}
	return strings.Join(parts, "; ")
}

// runFlap is S15: the primary answers 503 for the outage, then is healthy;
// requests come at a fixed interval. Scored: no request hung, every
// request during the outage was answered, and the primary served again
// within the recovery window of its recovery.
func runFlap(c *inference.Client, r *inferencetest.Router, p profile) scenarioResult {
	const model = "fb-s15-flap"
	start := time.Now()
	healthy := inferencetest.StreamScript{Text: canonical, Every: p.between}.Answer()
	r.On(model, func(w http.ResponseWriter, req *inferencetest.Request) {
		if time.Since(start) < p.outage {
			inferencetest.ProviderError(503)(w, req)
			return
		}
		healthy(w, req)
	})
	type seqResult struct {
		at      time.Duration
		o       *outcome
		primary bool
	}
	results := make([]seqResult, p.requests)
	var wg sync.WaitGroup
	for i := range p.requests {
		time.Sleep(time.Until(start.Add(time.Duration(i) * p.interval)))
		at := time.Since(start)
		wg.Go(func() {
			req := streamRequest(model, "")
			ctx, cancel := context.WithTimeout(context.Background(), p.perRequest)
			defer cancel()
			o := &outcome{}
			t0 := time.Now()
			s, err := c.ChatStream(ctx, req)
			servedByPrimary := false
			if err == nil {
				var b strings.Builder
				for s.Next() {
					b.WriteString(s.Current().Text())
				}
				o.err, o.text = s.Err(), b.String()
				atts := s.Attempts()
				servedByPrimary = o.err == nil && atts[len(atts)-1].Model == model
				s.Close()
			} else {
				o.err = err
			}
			o.elapsed = time.Since(t0)
			results[i] = seqResult{at: at, o: o, primary: servedByPrimary}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	hung, servedDuringOutage := false, true
	recoveredAt := time.Duration(-1)
	outageAttempts := 0
	for _, q := range r.Requests() {
		if q.Model == model && q.Time.Sub(start) < p.outage {
			outageAttempts++
		}
	}
	for _, res := range results {
		hung = hung || res.o.elapsed >= p.perRequest
		if res.at < p.outage && !res.o.complete() {
			servedDuringOutage = false
		}
		if res.at >= p.outage && res.primary && recoveredAt < 0 {
			recoveredAt = res.at - p.outage
		}
	}
	var required []string
	if !servedDuringOutage {
		required = append(required, "served_during_outage")
	}
	if recoveredAt < 0 || recoveredAt > p.recoveredWithin {
		required = append(required, "recovered")
	}
	v := pass
	switch {
	case hung || len(required) > 0:
		v = fail
	}
	outageRequests := int((p.outage + p.interval - 1) / p.interval)
	note := fmt.Sprintf("%d requests; primary attempts during the outage %d for %d requests; primary again %.1fs after recovery",
		p.requests, outageAttempts, outageRequests, recoveredAt.Seconds())
	if len(required) > 0 {
		note += "; failed: " + strings.Join(required, ",")
	}
	return scenarioResult{id: "S15", verdict: v, elapsed: elapsed, note: note}
}
