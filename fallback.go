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

// candidatesOf is the walk of a call whose own candidate is primary and
// whose request's fallbacks are own (nil: the client's WithFallback list):
// primary first, a candidate met twice tried once. It appends to out.
func (cfg *callConfig) candidatesOf(primary Candidate, own []Candidate, out []Candidate) []Candidate {
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

// walk is a call's walk over its candidates and token sources: which
// candidates are left, which token is sent, and every attempt made. Its
// one failure path (fail) decides, after any attempt failed, what comes
// next, whoever launched the attempt: the race, a hedge, a stream's
// restart.
type walk struct {
	// cands is the walk's candidates, the usual few held in room.
	room    [4]Candidate
	cands   []Candidate
	skipped []Candidate
	// done marks candidates the walk has left; busy, those an attempt
	// is running at (see race.go).
	doneRoom, busyRoom [4]bool
	done, busy         []bool
	tokens             tokenCursor
	tok                Token
	// tokGen counts token switches: the failure of an attempt sent with
	// an older token does not switch again.
	tokGen int
	// i is the walk's current candidate; restarts counts the mid-stream
	// restarts of it (WithStreamRecovery).
	i        int
	restarts int
	attempts []Attempt
	// servedAt is 1 + the index in attempts of the attempt that serves,
	// 0 before one does.
	servedAt int
	// hedged: the call has sent its one hedge (WithHedge).
	hedged bool
	// holdServing marks a stream's walk: the attempt that serves is ended
	// for the observer by the stream, with served its context.
	holdServing bool
	served      context.Context
	// asked marks the candidates the shared store has answered for this
	// call: when the walk was planned, the one it tries first (unless one
	// before it, skipped for the call's account, was the store's to give)
	// and any whose probe it gave; each other one when the walk is about
	// to try it (admit); given, those whose probe the store
	// gave this call, which it releases when its walk ends (release).
	askedRoom, givenRoom [4]bool
	asked, given         []bool
}

// start plans the walk over cands, whichever operation listed them: those
// cooling down are skipped, and the first valid token is taken. Without a
// token, nothing is sent and start returns why.
func (w *call) start(ctx context.Context, cands []Candidate) error {
	c := w.c
	w.given, w.asked = w.givenRoom[:0], w.askedRoom[:0]
	cands, skipped := w.plan(ctx, cands, time.Now())
	w.cands = append(w.room[:0], cands...)
	w.done, w.busy = w.doneRoom[:0], w.busyRoom[:0]
	for range w.cands {
		w.done, w.busy = append(w.done, false), append(w.busy, false)
	}
	w.skipped = skipped
	for _, s := range w.skipped {
		w.skip(ctx, s)
	}
	w.tokens = c.newTokenCursor(w.cfg, time.Now())
	tok, ok := w.tokens.advance(ctx)
	if !ok {
		w.release(-1) // nothing will be tried
		return w.tokens.failure(ctx)
	}
	w.tok = tok
	return nil
}

// skip tells the log and the observer that cand is skipped, cooling.
func (w *call) skip(ctx context.Context, cand Candidate) {
	w.c.logger.LogAttrs(ctx, slog.LevelDebug, "inference: candidate cooling down, skipped", slog.String("candidate", cand.String()))
	if w.obs != nil {
		w.obs.Skipped(cand)
	}
}

// next is the candidate the walk tries next: the first it has not left
// and no attempt runs at.
func (w *walk) next() (int, bool) {
	for i := range w.cands {
		if !w.done[i] && !w.busy[i] {
			return i, true
		}
	}
	return 0, false
}

// ahead is the first candidate the walk has not left, an attempt running
// at it or not: where the walk stands.
func (w *walk) ahead() (int, bool) {
	i := slices.Index(w.done, false)
	return i, i >= 0
}

// left reports whether any candidate remains, tried or not.
func (w *walk) left() bool { return slices.Contains(w.done, false) }

func (w *walk) failure() error { return &FallbackError{Attempts: w.attempts, Skipped: w.skipped} }

// record adds an attempt to the trail, and tells the observer it ended,
// except a stream's serving attempt, which the stream ends.
func (w *call) record(att Attempt, actx context.Context, served bool) {
	w.attempts = append(w.attempts, att)
	if served {
		w.servedAt = len(w.attempts)
	}
	if w.obs != nil {
		if served && w.holdServing {
			w.served = actx
		} else {
			w.obs.EndAttempt(actx, att)
		}
	}
}

// serving is the attempt that serves, or nil before one does.
func (w *walk) serving() *Attempt {
	if w.servedAt == 0 {
		return nil
	}
	return &w.attempts[w.servedAt-1]
}

// fail is the walk's one failure path: after the attempt at candidate i,
// sent with the token of generation gen, failed with err, the policy
// decides (and cooling follows). goOn reports whether the walk goes on;
// again, that it goes on with candidate i at once (with the next token).
func (w *call) fail(ctx context.Context, i, gen int, err error, status int) (goOn, again bool) {
	if ctx.Err() != nil {
		return false, false
	}
	d := w.c.policy(err)
	if d == decisionSameCandidate {
		d = DecisionStop // not a policy's to give
	}
	return w.decide(ctx, i, gen, err, status, d)
}

// decide moves the walk as d says after the attempt at candidate i failed
// with err: the next token source (the same candidate again, at once), the
// next candidate (i is left, and cooled), the same candidate again (a
// stream's restart), or stop. goOn reports whether the walk goes on;
// again, that it goes on with i at once.
func (w *call) decide(ctx context.Context, i, gen int, err error, status int, d Decision) (goOn, again bool) {
	c := w.c
	cand := w.cands[i]
	switch d {
	case DecisionNextToken:
		if gen != w.tokGen {
			// The walk moved to another token since this attempt was
			// sent: its candidate waits its turn with that one.
			return true, false
		}
		from := w.tok
		w.coolSource(w.tokens.current, err)
		next, ok := w.tokens.advance(ctx)
		if !ok {
			return false, false
		}
		w.tok = next
		w.tokGen++
		c.logger.LogAttrs(ctx, slog.LevelWarn, tokenSwitchMessage(from, next, err),
			slog.String("candidate", cand.String()), slog.String("from", from.Source),
			slog.String("to", next.Source), slog.String("reason", kindName(err)))
		return true, true
	case DecisionNextCandidate:
		w.coolCandidate(ctx, cand, err, w.ranOnUserToken(gen))
		w.done[i] = true
		if i == w.i {
			w.restarts = 0
			if to, ok := w.ahead(); ok {
				if w.obs != nil {
					w.obs.Moved(cand, w.cands[to], err)
				}
				c.logger.LogAttrs(ctx, slog.LevelInfo, "inference: trying the next candidate",
					slog.String("from", cand.String()), slog.String("to", w.cands[to].String()),
					slog.String("reason", kindName(err)), slog.Int("status", status))
			}
		}
		return w.left(), false
	case decisionSameCandidate:
		w.restarts++
		if w.obs != nil {
			w.obs.Moved(cand, cand, err)
		}
		c.logger.LogAttrs(ctx, slog.LevelInfo, "inference: restarting the stream",
			slog.String("candidate", cand.String()), slog.String("reason", kindName(err)),
			slog.Int("restart", w.restarts))
		return true, true
	}
	return false, false
}

// decisionSameCandidate sends the request to the same candidate again: a
// stream that broke mid-way (WithStreamRecovery). It is not a Decision a
// FallbackPolicy returns.
const decisionSameCandidate Decision = -1

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
