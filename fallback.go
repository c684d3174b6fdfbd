package inference

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Decision is what the fallback walk does after a failed attempt.
type Decision int

const (
	// DecisionStop ends the call with the failure: trying elsewhere would fail
	// the same way (no credits, no token) or repeat a refused request.
	DecisionStop Decision = iota
	// DecisionNextCandidate tries the next model or provider.
	DecisionNextCandidate
	// DecisionNextToken tries the same candidate again with the next token source
	// of a [ChainTokens], and stops when there is none.
	DecisionNextToken
)

// String names the decision.
func (d Decision) String() string {
	switch d {
	case DecisionStop:
		return "stop"
	case DecisionNextCandidate:
		return "next candidate"
	case DecisionNextToken:
		return "next token source"
	}
	return fmt.Sprintf("Decision(%d)", int(d))
}

// FallbackPolicy decides, from the error of a failed attempt, what the walk
// does next. It is never called for a cancelled or expired context: that
// always ends the call.
type FallbackPolicy func(err error) Decision

// DefaultFallbackPolicy is the policy of a client without
// [WithFallbackPolicy]:
//
//	ErrGatedModel, ErrModelNotFound, ErrModelNotSupported,
//	ErrProvider, ErrRateLimited                  next candidate
//	ErrContextLength                              next candidate (never a retry)
//	ErrInvalidRequest 422, or 400 from a provider next candidate
//	ErrInvalidRequest content_policy_violation,
//	or otherwise                                  stop
//	ErrUnauthorized, ErrMissingScope              next token source, else stop
//	ErrPaymentRequired, ErrNoToken,
//	ErrInvalidToken, anything else                stop
func DefaultFallbackPolicy(err error) Decision {
	switch {
	case errors.Is(err, ErrGatedModel), errors.Is(err, ErrModelNotFound),
		errors.Is(err, ErrModelNotSupported), errors.Is(err, ErrProvider),
		errors.Is(err, ErrRateLimited):
		return DecisionNextCandidate
	case errors.Is(err, ErrContextLength):
		// Another model may have a longer context; the same one never
		// will, so it is not retried.
		return DecisionNextCandidate
	case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrMissingScope):
		return DecisionNextToken
	case errors.Is(err, ErrInvalidRequest):
		// A 422 or a provider's own 400 is about what this model or
		// provider accepts; another may take the same request. A router
		// 400 would be refused everywhere.
		var apiErr *APIError
		if errors.As(err, &apiErr) && !isContentPolicy(apiErr.Code) &&
			(apiErr.StatusCode == http.StatusUnprocessableEntity || apiErr.FromProvider) {
			return DecisionNextCandidate
		}
		return DecisionStop
	}
	return DecisionStop
}

// isContentPolicy reports a refusal by a safety system, which every
// candidate would repeat.
func isContentPolicy(code string) bool {
	return code == "content_policy_violation" || code == "content_filter"
}

// coolsDown reports whether a failure of this kind makes the candidate
// worth skipping for a while: it would likely fail the same way again soon.
func coolsDown(err error) bool {
	return errors.Is(err, ErrProvider) || errors.Is(err, ErrRateLimited) ||
		errors.Is(err, ErrGatedModel) || errors.Is(err, ErrModelNotFound) ||
		errors.Is(err, ErrModelNotSupported) || errors.Is(err, ErrStream)
}

// FallbackError is a call in which no candidate served an answer. Attempts
// lists every attempt in order, each with its own error. The error as a
// whole is the failure that ended the walk, its last attempt's: it matches
// exactly that attempt's kind with [errors.Is], and [errors.As] gives that
// attempt's *APIError. A gated primary followed by a 402 on the fallback is
// [ErrPaymentRequired], not also [ErrGatedModel]; read Attempts for the
// others.
type FallbackError struct {
	// Attempts are the attempts made, in order, each with its error.
	Attempts []Attempt
	// Skipped are candidates not tried because they were cooling down
	// after failing in an earlier call.
	Skipped []Candidate
}

// Error names every model and provider tried and why each failed, in one
// paragraph, then what to do about the last failure. A call with a single
// attempt reads as that attempt's error.
func (e *FallbackError) Error() string {
	if len(e.Attempts) == 1 && len(e.Skipped) == 0 && e.Attempts[0].Err != nil {
		return e.Attempts[0].Err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "inference: no candidate answered after %d %s", len(e.Attempts), plural(len(e.Attempts), "attempt", "attempts"))
	for i, a := range e.Attempts {
		fmt.Fprintf(&b, "; %d) %s", i+1, a.summary())
	}
	if len(e.Skipped) > 0 {
		names := make([]string, len(e.Skipped))
		for i, c := range e.Skipped {
			names[i] = c.String()
		}
		b.WriteString("; skipped while cooling down after earlier failures: ")
		b.WriteString(strings.Join(names, ", "))
	}
	if last := e.last(); last != nil {
		if hint := last.hint(); hint != "" {
			b.WriteString(". Last failure: ")
			b.WriteString(hint)
		}
	}
	return b.String()
}

// Unwrap returns the error of the last attempt, the one that ended the
// walk, so that errors.Is and errors.As see its kind and *APIError only.
func (e *FallbackError) Unwrap() error {
	if len(e.Attempts) == 0 {
		return nil
	}
	return e.Attempts[len(e.Attempts)-1].Err
}

// last is the *APIError of the final attempt, if it has one.
func (e *FallbackError) last() *APIError {
	if len(e.Attempts) == 0 {
		return nil
	}
	var apiErr *APIError
	if errors.As(e.Attempts[len(e.Attempts)-1].Err, &apiErr) {
		return apiErr
	}
	return nil
}

// candidates is the call's walk: the request's own model first, then its
// Fallbacks if set, else the client's; a candidate met twice is tried once.
// It appends to out, which the caller may give room on its stack.
func (c *Client) candidates(req *ChatRequest, cfg *callConfig, out []Candidate) []Candidate {
	return c.candidatesOf(req.primary(), req.Fallbacks, cfg, out)
}

// candidatesOf is the walk of a call whose own candidate is primary and
// whose request's fallbacks are own (nil: the client's).
func (c *Client) candidatesOf(primary Candidate, own []Candidate, cfg *callConfig, out []Candidate) []Candidate {
	rest := cfg.fallbacks
	if own != nil {
		rest = own
	}
	add := func(cand Candidate) {
		cand = cand.normalized()
		// Lists are short: a linear scan beats a map's allocations.
		if !slices.Contains(out, cand) {
			out = append(out, cand)
		}
	}
	add(primary)
	for _, cand := range rest {
		add(cand)
	}
	return out
}

// plan drops the candidates that are cooling down: for every call (the
// shared store, else this process's memory), or for calls of this call's
// account (see coolScope). When every one is, it keeps the one whose
// cooldown ends first: a request that may fail beats failing without one.
func (c *Client) plan(ctx context.Context, cfg *callConfig, cands []Candidate, now time.Time) (try, skipped []Candidate) {
	if c.cooldown == 0 {
		return cands, nil
	}
	memory := !c.cool.Empty()
	untils, fromStore := c.lookupShared(ctx, cands, now)
	var account string
	var byAccount bool
	if memory {
		account, byAccount = cfg.account()
	}
	if !byAccount && (fromStore && untils == nil || !fromStore && !memory) {
		// Nothing is cooling for anyone: the store says so, or, without a
		// store (or with one that failed), this process's memory.
		return cands, nil
	}
	untilOf := func(i int) time.Time {
		key := candidateKey(cands[i])
		var until time.Time
		switch {
		case fromStore:
			if untils != nil && untils[i].After(now) {
				until = untils[i]
			}
		case memory:
			until = c.cool.Until(key, now)
		}
		if byAccount {
			if mine := c.cool.Until(key+account, now); mine.After(until) {
				until = mine
			}
		}
		return until
	}
	var earliest time.Time
	earliestAt := -1
	for i, cand := range cands {
		until := untilOf(i)
		if until.IsZero() {
			try = append(try, cand)
			continue
		}
		skipped = append(skipped, cand)
		if earliestAt < 0 || until.Before(earliest) {
			earliest, earliestAt = until, i
		}
	}
	if len(try) == 0 && earliestAt >= 0 {
		try = []Candidate{cands[earliestAt]}
		skipped = removeCandidate(skipped, cands[earliestAt])
	}
	return try, skipped
}

func removeCandidate(list []Candidate, c Candidate) []Candidate {
	out := list[:0]
	for _, x := range list {
		if x != c {
			out = append(out, x)
		}
	}
	return out
}

// walker is one call's walk over its candidates and token sources. It is a
// value a call keeps (on its stack for Chat), so that a stream with
// recovery can resume it after the candidate that served fails mid-way.
type walker struct {
	c   *Client
	cfg *callConfig
	// cands is the walk's candidates: the first n of room, the usual few
	// held without an allocation, or more in a slice of their own. The
	// walker never points into itself, so that a call keeps it on its
	// stack.
	room    [4]Candidate
	n       int
	more    []Candidate
	skipped []Candidate
	tokens  tokenCursor
	tok     Token
	// i is the candidate to try next; restarts counts the mid-stream
	// restarts of that candidate (WithStreamRecovery).
	i        int
	restarts int
	attempts []Attempt
	// obs observes the call, when it has an observer. With holdServing
	// (a stream), the attempt that serves is not ended by the walk but by
	// the stream, with served its context.
	obs         CallObserver
	holdServing bool
	served      context.Context
	// hedged: the call has sent its one hedge (WithHedge).
	hedged bool
}

// cands is the walk's candidates.
func (w *walker) cands() []Candidate {
	if w.more != nil {
		return w.more
	}
	return w.room[:w.n]
}

// start plans a chat's walk: its candidates (the request's, then its
// fallbacks, expanded into providers), see startWith.
func (w *walker) start(ctx context.Context, c *Client, cfg *callConfig, req *ChatRequest) error {
	var room [4]Candidate
	return w.startWith(ctx, c, cfg, c.expand(ctx, req, c.candidates(req, cfg, room[:0])))
}

// startWith plans the walk over cands, whichever operation listed them:
// those cooling down are skipped, and the first valid token is taken.
// Without a token, nothing is sent and startWith returns why.
func (w *walker) startWith(ctx context.Context, c *Client, cfg *callConfig, cands []Candidate) error {
	w.c, w.cfg = c, cfg
	cands, skipped := c.plan(ctx, cfg, cands, time.Now())
	if len(cands) <= len(w.room) {
		w.n = copy(w.room[:], cands)
	} else {
		w.more = slices.Clone(cands)
	}
	w.skipped = skipped
	for _, s := range w.skipped {
		c.logger.LogAttrs(ctx, slog.LevelDebug, "inference: candidate cooling down, skipped", slog.String("candidate", s.String()))
		if w.obs != nil {
			w.obs.Skipped(s)
		}
	}
	w.tokens = c.newTokenCursor(cfg, time.Now())
	tok, ok := w.tokens.advance(ctx)
	if !ok {
		w.release() // nothing will be tried
		return w.tokens.failure(ctx)
	}
	w.tok = tok
	return nil
}

func (w *walker) trail() trail { return trail{w.attempts, w.skipped, w.served} }

// release tells the shared store that the call is done with the walk's
// candidates, and which one served (see releaseShared): when the walk
// ends, after its last attempt and its last cooldown, or before any
// attempt when no token is left. The attempt that served is the last one
// recorded (a hedge's lost attempt comes before its winner).
func (w *walker) release() {
	var served Candidate
	if n := len(w.attempts); n > 0 && w.attempts[n-1].Err == nil && !w.attempts[n-1].Lost {
		served = w.attempts[n-1].Candidate
	}
	w.c.releaseShared(w.cands(), served)
}

func (w *walker) failure() error { return &FallbackError{Attempts: w.attempts, Skipped: w.skipped} }

// walk tries the candidates in order until one serves, as the policy
// directs, and returns the result with every attempt made.
// A stream's walk (holdServing) leaves its serving attempt to the stream
// to end for the observer.
func walk[T any](ctx context.Context, c *Client, cfg *callConfig, obs CallObserver, holdServing bool, req *ChatRequest, try tryFunc[T]) (T, trail, error) {
	w := walker{obs: obs, holdServing: holdServing}
	if err := w.start(ctx, c, cfg, req); err != nil {
		var zero T
		return zero, w.trail(), err
	}
	out, err := run(ctx, &w, try)
	return out, w.trail(), err
}

// walkHedged is walk with WithHedge (see runHedged).
func walkHedged[T any](ctx context.Context, c *Client, cfg *callConfig, obs CallObserver, req *ChatRequest, try tryFunc[T]) (T, trail, error) {
	w := walker{obs: obs}
	if err := w.start(ctx, c, cfg, req); err != nil {
		var zero T
		return zero, w.trail(), err
	}
	out, err := runHedged(ctx, &w, try)
	return out, w.trail(), err
}

// walkOver is walk over candidates an operation listed itself (an
// embeddings call's models and providers): the same planning, tokens,
// policy, cooldowns and observer.
func walkOver[T any](ctx context.Context, c *Client, cfg *callConfig, obs CallObserver, cands []Candidate, try tryFunc[T]) (T, trail, error) {
	w := walker{obs: obs}
	if err := w.startWith(ctx, c, cfg, cands); err != nil {
		var zero T
		return zero, w.trail(), err
	}
	if cfg.hedge > 0 {
		hw := new(walker) // shared with the hedge's goroutines
		*hw = w
		out, err := runHedged(ctx, hw, try)
		return out, hw.trail(), err
	}
	out, err := run(ctx, &w, try)
	return out, w.trail(), err
}

// run tries candidates from the walk's current one until one serves.
func run[T any](ctx context.Context, w *walker, try tryFunc[T]) (T, error) {
	defer w.release()
	var zero T
	for w.i < len(w.cands()) {
		if out, done, err := attemptOnce(ctx, w, try); done {
			return out, err
		}
	}
	return zero, w.c.logFailure(ctx, w.failure())
}

// attemptOnce tries the walk's current candidate and moves the walk as the
// policy directs; done is true when the call is over (served, or stopped
// with err).
func attemptOnce[T any](ctx context.Context, w *walker, try tryFunc[T]) (out T, done bool, err error) {
	cand := w.cands()[w.i]
	actx := ctx
	if w.obs != nil {
		actx = w.obs.StartAttempt(ctx, cand, w.tok.Source)
	}
	out, att, err := try(actx, cand, w.tok)
	w.endAttempt(att, actx, err == nil)
	if err == nil {
		return out, true, nil
	}
	var zero T
	if goOn, failure := w.afterFailure(ctx, err, att.StatusCode); !goOn {
		return zero, true, failure
	}
	return zero, false, nil
}

// runHedged is run with WithHedge: a candidate the next one may hedge is
// tried through hedge. It is a function of its own so that a call without
// a hedge passes its try function to no goroutine, and keeps it on its
// stack.
func runHedged[T any](ctx context.Context, w *walker, try tryFunc[T]) (T, error) {
	defer w.release()
	var zero T
	for w.i < len(w.cands()) {
		var out T
		var done bool
		var err error
		if w.canHedge() {
			out, done, err = hedge(ctx, w, try)
		} else {
			out, done, err = attemptOnce(ctx, w, try)
		}
		if done {
			return out, err
		}
	}
	return zero, w.c.logFailure(ctx, w.failure())
}

// endAttempt records an attempt, and tells the observer it ended, except
// a stream's serving attempt, which the stream ends.
func (w *walker) endAttempt(att Attempt, actx context.Context, served bool) {
	w.attempts = append(w.attempts, att)
	if w.obs != nil {
		if served && w.holdServing {
			w.served = actx
		} else {
			w.obs.EndAttempt(actx, att)
		}
	}
}

// afterFailure moves the walk as the policy directs after the current
// candidate failed, and reports whether it goes on; when it does not,
// failure is the call's error.
func (w *walker) afterFailure(ctx context.Context, err error, status int) (goOn bool, failure error) {
	if ctx.Err() != nil {
		return false, w.failure()
	}
	d := w.c.policy(err)
	if d == decisionSameCandidate {
		d = DecisionStop // not a policy's to give
	}
	if !w.decide(ctx, err, status, d) {
		return false, w.c.logFailure(ctx, w.failure())
	}
	return true, nil
}

// decide moves the walk as d says after the current candidate failed with
// err, and reports whether it goes on.
func (w *walker) decide(ctx context.Context, err error, status int, d Decision) bool {
	c, cands := w.c, w.cands()
	cand := cands[w.i]
	switch d {
	case DecisionNextToken:
		from := w.tok
		// Only the client's own sources are remembered: a call's (a
		// user's token) never moves another call's tokens.
		if w.tokens.current.own && len(w.tokens.sources) > 1 && c.cooldown > 0 {
			// Token sources are remembered in the process only: nothing
			// derived from a token leaves it. A refusal to bill an
			// organization is remembered for calls billed to it alone.
			key := sourceKey(w.tokens.current.i, w.tokens.current.src)
			if billingRefusal(err) {
				key += billedKey(w.cfg.billTo)
			}
			c.cool.CoolDown(key, time.Now().Add(c.cooldown))
		}
		next, ok := w.tokens.advance(ctx)
		if !ok {
			return false
		}
		w.tok = next
		c.logger.LogAttrs(ctx, slog.LevelWarn, tokenSwitchMessage(from, next, err),
			slog.String("candidate", cand.String()), slog.String("from", from.Source),
			slog.String("to", next.Source), slog.String("reason", kindName(err)))
		return true
	case DecisionNextCandidate:
		c.coolCandidate(ctx, w.cfg, cand, err)
		if w.i+1 < len(cands) && w.obs != nil {
			w.obs.Moved(cand, cands[w.i+1], err)
		}
		if w.i+1 < len(cands) {
			c.logger.LogAttrs(ctx, slog.LevelInfo, "inference: trying the next candidate",
				slog.String("from", cand.String()), slog.String("to", cands[w.i+1].String()),
				slog.String("reason", kindName(err)), slog.Int("status", status))
		}
		w.i++
		w.restarts = 0
		return w.i < len(cands)
	case decisionSameCandidate:
		w.restarts++
		if w.obs != nil {
			w.obs.Moved(cand, cand, err)
		}
		c.logger.LogAttrs(ctx, slog.LevelInfo, "inference: restarting the stream",
			slog.String("candidate", cand.String()), slog.String("reason", kindName(err)),
			slog.Int("restart", w.restarts))
		return true
	}
	return false
}

// decisionSameCandidate sends the request to the same candidate again: a
// stream that broke mid-way (WithStreamRecovery). It is not a Decision a
// FallbackPolicy returns.
const decisionSameCandidate Decision = -1

// coolCandidate skips a failed candidate in later calls, for those its
// failure concerns (coolScope): for the cooldown, or as long as the server
// asked to wait (Retry-After) when that is longer, up to maxCooldown.
func (c *Client) coolCandidate(ctx context.Context, cfg *callConfig, cand Candidate, err error) {
	scope := c.coolScope(cfg, err)
	if scope == coolNone || c.cooldown == 0 {
		return
	}
	d := c.cooldown
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		d = max(d, min(apiErr.RetryAfter, c.maxCooldown))
	}
	until := time.Now().Add(d)
	if scope == coolAccount {
		if account, ok := cfg.account(); ok {
			c.cool.CoolDown(candidateKey(cand)+account, until)
		}
		return
	}
	c.coolKey(ctx, candidateKey(cand), until)
}

// coolScope is for whom a failure cools its candidate.
type coolScope int

const (
	// coolNone: for no one; the failure belongs to the call.
	coolNone coolScope = iota
	// coolAccount: for the calls of this process made with the same
	// account, the client's own tokens billed to the same organization;
	// never through the shared store. A call with a user's token is its
	// own account, so such a failure cools nothing for others.
	coolAccount
	// coolShared: for every call, and through the shared store for the
	// fleet: the provider or the model failed.
	coolShared
)

// coolScope decides whom a failure concerns. Provider failures (5xx, the
// client's own timeouts, broken streams, a provider's 429, a model no
// provider serves) concern everyone. What depends on the account concerns
// that account alone: a gated or not-found model (access and private
// repositories are per account), a billing refusal or an organization's
// provider ban met under WithBillTo, the router's own rate limit on the
// account, and a provider's 401 or 403 under a user's token (which may
// have run on that user's own provider key). A limit the call set for
// itself (a per-call attempt, first-token or idle timeout that differs
// from the client's) concerns no one else.
func (c *Client) coolScope(cfg *callConfig, err error) coolScope {
	if !coolsDown(err) {
		return coolNone
	}
	if limit := timedOut(err); limit != "" && cfg.ownLimit(&c.call, limit) {
		return coolNone
	}
	var apiErr *APIError
	errors.As(err, &apiErr)
	switch {
	case errors.Is(err, ErrGatedModel), errors.Is(err, ErrModelNotFound):
		return coolAccount
	case apiErr != nil && apiErr.billing != "":
		return coolAccount
	case errors.Is(err, ErrRateLimited) && apiErr != nil && !apiErr.FromProvider:
		// The router's (or the Hub's) limit on the account, not a
		// provider's capacity.
		return coolAccount
	case cfg.user != nil && providerRefusal(apiErr):
		// A provider refused the key a user's call ran with: with
		// Hugging Face's custom provider keys, that may be the user's
		// own key at the provider, which proves nothing for anybody
		// else. The client's own tokens run on the router's keys: a
		// refusal of those concerns every call.
		return coolAccount
	}
	return coolShared
}

// providerRefusal reports a 401 or 403 a provider sent through the router
// (X-Inference-Provider set): a refusal of the key at the provider, not of
// the caller's Hugging Face token, classified ErrProvider.
func providerRefusal(apiErr *APIError) bool {
	return apiErr != nil && apiErr.FromProvider && apiErr.Kind == ErrProvider &&
		(apiErr.StatusCode == http.StatusUnauthorized || apiErr.StatusCode == http.StatusForbidden)
}

// billingRefusal reports a refusal about the organization a call was
// billed to (WithBillTo), which says nothing of calls billed elsewhere.
func billingRefusal(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.billing != ""
}

// billedKey is what a cooldown key gains for calls billed to org.
func billedKey(org string) string { return "\x00bill-to=" + org }

// lookupShared asks the shared store, when there is one, when each
// candidate's cooldown ends; nil untils with ok mean none is cooling. ok is
// false without a store, or when it failed (the memory then decides).
func (c *Client) lookupShared(ctx context.Context, cands []Candidate, now time.Time) (untils []time.Time, ok bool) {
	if c.shared == nil {
		return nil, false
	}
	if e, isEmpty := c.shared.(interface{ Empty() bool }); isEmpty && e.Empty() {
		return nil, true
	}
	keys := make([]string, len(cands))
	for i, cand := range cands {
		keys[i] = candidateKey(cand)
	}
	untils, err := c.shared.Lookup(ctx, keys, now)
	if c.sharedFailed(ctx, err) || len(untils) != len(keys) {
		return nil, false
	}
	return untils, true
}

// releaseShared tells the shared store, when it has a method
// Release(key string, served bool), that the call is done with cands, the
// candidates it was to try, of which served (if any) answered it: a probe
// of one that this call ran (the first call to find its cooldown ended)
// ends for the fleet at once, served or failed, instead of holding the
// others off until its lease runs out. Nothing is built or called when the
// store reports itself Empty: it then holds no probe.
func (c *Client) releaseShared(cands []Candidate, served Candidate) {
	r, ok := c.shared.(interface{ Release(key string, served bool) })
	if !ok {
		return
	}
	if e, ok := c.shared.(interface{ Empty() bool }); ok && e.Empty() {
		return
	}
	for _, cand := range cands {
		r.Release(candidateKey(cand), cand == served)
	}
}

// coolKey records a candidate's cooldown: in the shared store when there
// is one (and in memory too, so that this process honours it if the store
// cannot be reached), else in memory.
func (c *Client) coolKey(ctx context.Context, key string, until time.Time) {
	c.cool.CoolDown(key, until)
	if c.shared != nil {
		c.sharedFailed(ctx, c.shared.Cool(ctx, key, until))
	}
}

// sharedFailed reports whether err is a failure of the shared cooldown
// store, and logs the outage when it begins and when it ends: once each,
// never per call.
func (c *Client) sharedFailed(ctx context.Context, err error) bool {
	if err != nil {
		if c.sharedDown.CompareAndSwap(false, true) {
			c.logger.LogAttrs(ctx, slog.LevelWarn, "inference: the cooldown store failed; calls go on with this process's memory",
				slog.String("error", cleanText(err.Error(), 512)))
		}
		return true
	}
	if c.sharedDown.CompareAndSwap(true, false) {
		c.logger.LogAttrs(ctx, slog.LevelInfo, "inference: the cooldown store answers again; cooldowns are shared")
	}
	return false
}

func (c *Client) logFailure(ctx context.Context, err error) error {
	if c.logger.Enabled(ctx, slog.LevelWarn) {
		c.logger.LogAttrs(ctx, slog.LevelWarn, "inference: call failed", slog.String("error", err.Error()))
	}
	return err
}

// tokenSwitchMessage is the warning a person debugging a 403 wants, such as
// "the call's OAuth token (oauth) lacks the inference-api scope; using the
// client's token (HF_TOKEN)": who fell back to whom, by their roles.
func tokenSwitchMessage(from, to Token, err error) string {
	why := "was refused"
	if errors.Is(err, ErrMissingScope) {
		if from.OAuth {
			why = "lacks the inference-api scope"
		} else {
			why = "lacks the \"Make calls to Inference Providers\" permission"
		}
	}
	return fmt.Sprintf("inference: %s %s; using %s", tokenRole(from), why, tokenRole(to))
}

// tokenRole names a token by whose it is and where it came from: "the
// call's OAuth token (oauth)", "the client's token (HF_TOKEN)".
func tokenRole(t Token) string {
	what := "token"
	if t.OAuth {
		what = "OAuth token"
	}
	if source, ok := strings.CutPrefix(t.Source, callPrefix); ok {
		return "the call's " + what + " (" + source + ")"
	}
	return "the client's " + what + " (" + t.Source + ")"
}

// kindName is a failure's kind in a few words, for logs.
func kindName(err error) string {
	for _, k := range kinds {
		if errors.Is(err, k) {
			return strings.TrimPrefix(k.Error(), "inference: ")
		}
	}
	return "error"
}
