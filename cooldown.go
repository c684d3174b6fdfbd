package inference

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// CooldownStore remembers, across the processes of a fleet, which
// candidates are being skipped after a failure and until when, so that N
// replicas probe a failing provider about once per cooldown, not N times.
// Give one to [WithCooldownStore]; without it a client keeps cooldowns in its
// own memory. The module github.com/hfkit/inference/redisstore implements it
// over Redis.
//
// Keys are candidates as the router receives them ("org/model" or
// "org/model:provider"); token sources are never shared, and nothing derived
// from a token is ever passed to a store. Times are absolute, so replicas'
// clocks should agree (NTP). Cooldowns are hints: a store may be eventually
// consistent and may drop entries. It must be safe for concurrent use.
//
// Only failures that concern every caller reach a store: a provider that
// fails (5xx, the client's own timeouts, broken streams, a provider's 429)
// or a model no provider serves. What depends on the account (a gated or
// not-found model, a billing refusal or an organization's provider ban
// under WithBillTo, the router's rate limit on the account) is kept in the
// process for the client's own calls, and not at all for a call made with
// a user's token; a limit a call set for itself cools nothing. A deadline
// a server asked for (Retry-After) is capped by [WithMaxCooldown] before it
// reaches a store.
//
// A call asks Lookup once, for all its candidates; only failing calls call
// Cool. Both run on the call's path: a store must answer at once (from a
// local copy) and bound any round trip itself. A store may also have a
// method Empty() bool that reports, without blocking, that nothing is
// cooling: calls then skip Lookup; a method SetLogger(*slog.Logger),
// which NewClient calls with the client's logger (WithLogger), for a store
// to report its own outages when it has no logger of its own; and a method
// Release(key string, served bool), for a store that gives one call at a
// time the probe of a candidate whose cooldown ended, and holds the others
// off while the probe runs. Such a store answers Lookup, for a candidate
// whose probe it gives the call, a time that is not zero and not after now
// (now itself, say): not a cooldown, so the call tries the candidate, and
// releases it once its walk is over (served, failed or stopped: every
// attempt has ended, and every failure has been cooled; a stream's stall
// hedge, once the hedge is settled), served telling
// whether that candidate answered the call, so that the probe ends for the
// fleet at once (and, when it served, the others use the candidate
// again). A call also says Release(key, true) of a candidate that served it
// without being given. Keys come to Lookup in the order the call tries
// them: such a store should give only the probe of the candidate the call
// tries first, since a call asks again, for one candidate alone, when its
// walk is about to try a later one (after a failure, or as a hedge), and
// skips it if the answer then is a cooldown. Release must not block (a
// store does any I/O in the background) and should cost nothing for a
// candidate it holds no probe of; a call skips it when Empty reports true.
// A store's error never fails a call: the client falls back to its own
// memory, and logs the outage once when it begins and once when it ends.
type CooldownStore interface {
	// Lookup returns, for each key, when its cooldown ends, or the zero
	// time when it is not cooling at now; one round trip for all keys.
	Lookup(ctx context.Context, keys []string, now time.Time) ([]time.Time, error)
	// Cool makes key cool until the given time, keeping a later end
	// already recorded: the latest deadline wins, atomically.
	Cool(ctx context.Context, key string, until time.Time) error
}

// coolKey is what a cooldown in the client's memory is about, and for
// whom: a candidate or one of the client's token sources (subject), for
// every call, or only for calls of the client's own account (its own
// tokens), or only for calls billed to one organization.
type coolKey struct {
	// subject is a candidate as the router receives it ("org/m:together",
	// see candidateKey) or a token source of the client's (sourceKey).
	subject string
	// account: only for the client's own calls, billed to billTo (see
	// coolAccount).
	account bool
	// billTo: only for calls billed to this organization ("" for calls
	// billed to the token's user, when account is set).
	billTo string
}

// candidateKey is a candidate's cooldown for every call; its subject is
// also its key in a shared CooldownStore.
func candidateKey(c Candidate) coolKey { return coolKey{subject: c.wireModel()} }

// sourceKey is the cooldown of the client's i-th token source.
func sourceKey(i int, s TokenSource) coolKey {
	return coolKey{subject: fmt.Sprintf("token source %d %s", i, sourceName(s))}
}

// cooldownStore is a client's own memory of which candidates and which
// token sources are being skipped, and until when. Every call of a client
// reads it and failing calls write it, from many goroutines at once. It is
// never shared: a CooldownStore shares the candidates' cooldowns that
// concern every caller, and this memory keeps them too, so that the
// process honours them while the shared store cannot be reached.
type cooldownStore interface {
	// Until returns when key's cooldown ends, or the zero time when it is
	// not cooling at now.
	Until(key coolKey, now time.Time) time.Time
	// CoolDown makes key cool until the given time, keeping a later end
	// already recorded.
	CoolDown(key coolKey, until time.Time)
	// Empty reports, without blocking, that nothing is recorded, so that
	// a client whose calls have not failed skips the lookups.
	Empty() bool
}

// sweepAt is the size at which the memory store drops expired entries, so
// that it stays bounded by the number of candidates in use.
const sweepAt = 256

// memoryCooldown is a cooldownStore for one process.
type memoryCooldown struct {
	mu    sync.Mutex
	until map[coolKey]time.Time
	// size mirrors len(until) for Empty, which every call asks without
	// taking the lock.
	size atomic.Int64
}

// Empty implements cooldownStore.
func (m *memoryCooldown) Empty() bool { return m.size.Load() == 0 }

func newMemoryCooldown() *memoryCooldown {
	return &memoryCooldown{until: make(map[coolKey]time.Time)}
}

// Until implements cooldownStore.
func (m *memoryCooldown) Until(key coolKey, now time.Time) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.until[key]
	if !ok || !t.After(now) {
		return time.Time{}
	}
	return t
}

// CoolDown implements cooldownStore.
func (m *memoryCooldown) CoolDown(key coolKey, until time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.until) >= sweepAt {
		now := time.Now()
		for k, t := range m.until {
			if !t.After(now) {
				delete(m.until, k)
			}
		}
	}
	if until.After(m.until[key]) {
		m.until[key] = until
	}
	m.size.Store(int64(len(m.until)))
}

// len reports how many entries are held, expired or not; for tests.
func (m *memoryCooldown) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.until)
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
// have run on that user's own provider key; userToken: the attempt may
// have carried one). A limit the call set for itself (a per-call attempt,
// first-token, idle or job timeout, or a result size cap, that differs
// from the client's) concerns no one else.
func (w *call) coolScope(err error, userToken bool) coolScope {
	if !coolsDown(err) {
		return coolNone
	}
	if limit := timedOut(err); limit != "" && w.cfg.ownLimit(&w.c.call, limit) {
		return coolNone
	}
	var apiErr *APIError
	errors.As(err, &apiErr)
	switch {
	case apiErr != nil && apiErr.overSize && w.cfg.maxResult != w.c.call.maxResult:
		// Larger than this call's own cap (WithMaxResultSize): the
		// candidate answered, the call could not take it.
		return coolNone
	case errors.Is(err, ErrGatedModel), errors.Is(err, ErrModelNotFound):
		return coolAccount
	case apiErr != nil && apiErr.billing != "":
		return coolAccount
	case errors.Is(err, ErrRateLimited) && apiErr != nil && !apiErr.FromProvider:
		// The router's (or the Hub's) limit on the account, not a
		// provider's capacity.
		return coolAccount
	case userToken && providerRefusal(apiErr):
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

// accountKey is subject's cooldown for the calls of this call's account:
// the client's own tokens, billed to the call's organization. ok is false
// for a call that carries a user's token or tokens of its own: it is its
// own account, and nothing is remembered for it. Nothing of it is derived
// from a token, and it never leaves the process.
func (w *call) accountKey(subject string) (coolKey, bool) {
	if w.cfg.userTokens != nil {
		return coolKey{}, false
	}
	return coolKey{subject: subject, account: true, billTo: w.cfg.billTo}, true
}

// ranOnUserToken reports whether the attempt sent with the token of
// generation gen may have carried a user's token (WithUserTokenSource, a
// call's own): the call has some, and that attempt's token is not known
// to be one of the client's own (the walk's current one, of a client's
// source).
func (w *call) ranOnUserToken(gen int) bool {
	return w.cfg.userTokens != nil && !(gen == w.tokGen && w.tokens.current.own)
}

// coolCandidate skips a failed candidate in later calls, for those its
// failure concerns (coolScope): for the cooldown, or as long as the server
// asked to wait (Retry-After) when that is longer, up to maxCooldown.
// userToken: the failed attempt may have carried a user's token.
func (w *call) coolCandidate(ctx context.Context, cand Candidate, err error, userToken bool) {
	c := w.c
	scope := w.coolScope(err, userToken)
	if scope == coolNone || c.cooldown == 0 {
		return
	}
	d := c.cooldown
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		d = max(d, min(apiErr.RetryAfter, c.maxCooldown))
	}
	until := time.Now().Add(d)
	key := candidateKey(cand)
	if scope == coolAccount {
		if mine, ok := w.accountKey(key.subject); ok {
			c.cool.CoolDown(mine, until)
		}
		return
	}
	c.cool.CoolDown(key, until)
	if c.shared != nil {
		c.sharedFailed(ctx, c.shared.Cool(ctx, key.subject, until))
	}
}

// coolSource skips the client's token source the router refused, for the
// client's later calls (for those billed to the call's organization only,
// when the refusal was to bill it). Only the client's own sources are
// remembered, in the process only: a call's (a user's token) never moves
// another call's tokens, and nothing derived from a token leaves it.
func (w *call) coolSource(src indexedSource, err error) {
	c := w.c
	if !src.own || c.cooldown == 0 {
		return
	}
	key := sourceKey(src.i, src.src)
	if billingRefusal(err) {
		key.billTo = w.cfg.billTo
	}
	c.cool.CoolDown(key, time.Now().Add(c.cooldown))
}

// sourceCooling reports whether the client's source under key is cooling
// for a call billed to org: after any refusal, or after a refusal to bill
// that organization.
func (c *Client) sourceCooling(key coolKey, org string, now time.Time) bool {
	if !c.cool.Until(key, now).IsZero() {
		return true
	}
	if org == "" {
		return false
	}
	key.billTo = org
	return !c.cool.Until(key, now).IsZero()
}

// billingRefusal reports a refusal about the organization a call was
// billed to (WithBillTo), which says nothing of calls billed elsewhere.
func billingRefusal(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.billing != ""
}

// plan drops the candidates that are cooling down: for every call (the
// shared store, else this process's memory), or for calls of this call's
// account (see coolScope). When every one is, it keeps the one whose
// cooldown ends first: a request that may fail beats failing without one.
// It appends to w.given, for each candidate kept, whether the shared
// store gave this call its probe; one given and yet skipped (cooling for
// this call's account) is released at once. It appends to w.asked whether
// the store's answer stands for the call's trying it: given, or the first
// kept when no candidate before it was the store's to give; a candidate
// kept after one the store may have given instead (skipped for the
// account) is asked about again when the walk reaches it (admit).
func (w *call) plan(ctx context.Context, cands []Candidate, now time.Time) (try, skipped []Candidate) {
	c := w.c
	defer func() {
		for len(w.given) < len(try) {
			w.given = append(w.given, false)
		}
		for len(w.asked) < len(try) {
			w.asked = append(w.asked, len(w.asked) == 0)
		}
	}()
	if c.cooldown == 0 {
		return cands, nil
	}
	memory := !c.cool.Empty()
	untils, fromStore := c.lookupShared(ctx, cands, now)
	byAccount := false
	if memory {
		_, byAccount = w.accountKey("")
	}
	if !byAccount && (fromStore && untils == nil || !fromStore && !memory) {
		// Nothing is cooling for anyone: the store says so, or, without a
		// store (or with one that failed), this process's memory.
		return cands, nil
	}
	given := func(i int) bool { return fromStore && untils != nil && isGiven(untils[i], now) }
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
			mine, _ := w.accountKey(key.subject)
			if t := c.cool.Until(mine, now); t.After(until) {
				until = t
			}
		}
		return until
	}
	// storeFirst: a candidate before this one was not cooling by the
	// store's answer, the one whose probe the store may give this call.
	storeFirst := false
	var earliest time.Time
	earliestAt := -1
	for i, cand := range cands {
		until := untilOf(i)
		if until.IsZero() {
			try = append(try, cand)
			w.given = append(w.given, given(i))
			w.asked = append(w.asked, given(i) || len(try) == 1 && !storeFirst)
			storeFirst = true
			continue
		}
		if given(i) {
			c.releaseShared(candidateKey(cand).subject, false) // never tried
		}
		if fromStore && untils != nil && !untils[i].After(now) {
			storeFirst = true // not cooling for the fleet: skipped for the account
		}
		skipped = append(skipped, cand)
		if earliestAt < 0 || until.Before(earliest) {
			earliest, earliestAt = until, i
		}
	}
	if len(try) == 0 && earliestAt >= 0 {
		// Tried as it is, whatever the store would say of it now.
		try = []Candidate{cands[earliestAt]}
		skipped = slices.DeleteFunc(skipped, func(s Candidate) bool { return s == cands[earliestAt] })
	}
	return try, skipped
}

// isGiven reports a store's answer that gives the call the probe of a
// candidate: a time that is not zero and not after now (see
// CooldownStore).
func isGiven(until, now time.Time) bool { return !until.IsZero() && !until.After(now) }

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
		keys[i] = candidateKey(cand).subject
	}
	untils, err := c.shared.Lookup(ctx, keys, now)
	if c.sharedFailed(ctx, err) || len(untils) != len(keys) {
		return nil, false
	}
	return untils, true
}

// releaser is a CooldownStore that gives one call at a time the probe of
// a candidate whose cooldown ended, and hears when it is over.
type releaser interface {
	Release(key string, served bool)
}

// releaseShared tells the shared store, when it is a releaser, that a call
// is done with key.
func (c *Client) releaseShared(key string, served bool) {
	if r, ok := c.shared.(releaser); ok {
		r.Release(key, served)
	}
}

// release tells the shared store, when it is a releaser, that the call is
// done with the walk's candidates, of which the one at served (-1 for
// none) answered it: the probes the store gave this call (given) end for
// the fleet at once, served or not, instead of holding the others off
// until their leases run out, and a candidate that served is said to
// serve. The race calls it each time its walk ends (or pauses, under a
// stream), after the last attempt and the last cooldown, and a stream
// once its stall hedge is settled (session.go); each probe given
// is released once, so that a stream's later walk never ends a probe
// another call of the process was given since. Nothing is built or called
// when the store reports itself Empty: it then holds no probe.
func (w *call) release(served int) {
	r, ok := w.c.shared.(releaser)
	if !ok {
		return
	}
	if e, ok := w.c.shared.(interface{ Empty() bool }); ok && e.Empty() {
		return
	}
	for i, cand := range w.cands {
		if i != served && (i >= len(w.given) || !w.given[i]) {
			continue // not this call's probe
		}
		if i < len(w.given) {
			w.given[i] = false
		}
		r.Release(candidateKey(cand).subject, i == served)
	}
}

// admit asks the shared store about candidate j, beyond the walk's first,
// when the walk is about to try it for the first time: a store that gives
// a candidate's probe to one call at a time (a releaser) gives it then,
// to a call that tries it, rather than when the call is planned, when the
// call may never reach it and would hold the fleet off it meanwhile. A
// candidate the store now says is cooling (another replica probes it) is
// skipped, and admit reports false.
func (w *call) admit(ctx context.Context, j int) bool {
	if j >= len(w.asked) || w.asked[j] {
		return true
	}
	w.asked[j] = true
	c := w.c
	if _, ok := c.shared.(releaser); !ok || c.cooldown == 0 {
		return true
	}
	if e, ok := c.shared.(interface{ Empty() bool }); ok && e.Empty() {
		return true
	}
	now := time.Now()
	untils, err := c.shared.Lookup(ctx, []string{candidateKey(w.cands[j]).subject}, now)
	if c.sharedFailed(ctx, err) || len(untils) != 1 || !untils[0].After(now) {
		w.given[j] = len(untils) == 1 && isGiven(untils[0], now)
		return true
	}
	w.done[j] = true
	w.skipped = append(w.skipped, w.cands[j])
	w.skip(ctx, w.cands[j])
	return false
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
