package inference

import (
	"context"
	"errors"
	"slices"
	"time"
)

// The race is the one mechanism that runs a call's attempts. It launches
// them from the walk's cursor on a schedule: the walk's next candidate
// now; with WithHedge, the candidate after it once the first has not
// answered in the hedge delay; with a stream's stall hedge, the next
// candidate when the stream goes silent (session.go). Every result comes
// back on one channel; the first success is committed (the others are
// cancelled and recorded lost); every failure goes to the walk's one
// failure path (call.fail), whoever launched the attempt; and every extra
// launch takes from the hedge budget. An attempt that no second one could
// race runs on the caller's goroutine, without a channel.

// errHedgeLost is the cause that cancels an attempt whose race another
// attempt won.
var errHedgeLost = errors.New("inference: the other attempt of a hedged pair answered first")

// tryHooks are called by send around each HTTP try of an attempt: onTry
// before each try, onBackoff before the wait for a retry. The race's
// hedge clock rides on them. They travel from the race to send as the
// attempt's arguments, never in a context, so that no wrapper (an
// observer's span context, say) can drop them.
type tryHooks struct{ onTry, onBackoff func() }

// attempter makes one attempt at one candidate with one token: a Chat
// call, opening a stream up to its first content, a batch of embeddings;
// hooks reach send. An operation's call is its attempter, so that
// handing it to the race costs no allocation.
type attempter[T any] interface {
	attempt(ctx context.Context, cand Candidate, tok Token, hooks tryHooks) (T, Attempt, error)
}

// flight is an attempt the race launched and has not settled.
type flight struct {
	index int // its candidate
	gen   int // the generation of the token it carries (walk.tokGen)
	hedge bool
	// ctx is the attempt's own, which a loss cancels with errHedgeLost;
	// actx, the observer's for it. Both are the caller's context for an
	// attempt on the caller's goroutine, which nothing else cancels.
	ctx    context.Context
	cancel context.CancelCauseFunc
	actx   context.Context
}

// result is how an attempt ended; f is its flight, when it ran on a
// goroutine of its own.
type result[T any] struct {
	f   *flight
	out T
	att Attempt
	err error
}

// race runs one call's attempts, see above. A stream's session keeps its
// race for the stream's life, for restarts and the stall hedge.
type race[T any] struct {
	w       *call
	try     attempter[T]
	results chan result[T] // made at the first launch on a goroutine
	// live are the attempts running (two at most: an attempt and its
	// hedge); running counts them.
	live    [2]*flight
	running int
	// primary is the attempt whose hedge delay the clock measures, until
	// the call hedges.
	primary *flight
	clock   *time.Timer
	hooks   tryHooks
	// inl is the flight of an attempt on the caller's goroutine, kept
	// here so that it costs no allocation.
	inl flight
	// won: the first success came, to be committed once every other
	// attempt ended: its answer, attempt and flight (copied: the race
	// keeps no pointer to a flight it does not own).
	won       bool
	winOut    T
	winAtt    Attempt
	winFlight flight
	// stop is 1 + the index in the walk's trail of the failure that
	// stopped the walk while another attempt ran: it is moved to the end
	// of the trail when the walk ends without an answer. over: the walk
	// ended.
	stop int
	over bool
}

// runRace plans the call's walk over cands and runs it with try until an
// attempt serves; it returns the answer, or the walk's failure.
func runRace[T any](ctx context.Context, w *call, cands []Candidate, try attempter[T]) (T, error) {
	if err := w.start(ctx, cands); err != nil {
		var zero T
		return zero, err
	}
	r := race[T]{w: w, try: try}
	return r.run(ctx)
}

// run launches and settles attempts until one is committed or the walk is
// over. It may run again after a stream's restart.
func (r *race[T]) run(ctx context.Context) (T, error) {
	defer r.abandon()
	var zero T
	w := r.w
	r.won, r.stop, r.over = false, 0, false
	defer func() {
		served := -1
		if r.won {
			served = r.winFlight.index
		}
		w.release(served) // the walk ends here (or pauses, under a stream)
	}()
	for {
		if r.running == 0 {
			switch {
			case r.won:
				return r.commit(), nil
			case r.stop != 0:
				stopped := w.attempts[r.stop-1]
				w.attempts = append(slices.Delete(w.attempts, r.stop-1, r.stop), stopped)
				return zero, w.c.logFailure(ctx, w.failure())
			case r.over:
				return zero, w.c.logFailure(ctx, w.failure())
			}
			i, ok := w.next()
			if !ok {
				return zero, w.c.logFailure(ctx, w.failure())
			}
			if !w.admit(ctx, i) {
				continue // cooling now: the walk goes on without it
			}
			w.i = i
			if _, hedge := r.hedgeTarget(i); !hedge {
				// Nothing can race this attempt: it runs here.
				r.settle(ctx, &r.inl, r.inline(ctx, i))
				continue
			}
			r.launch(ctx, i, false)
		}
		var clock <-chan time.Time
		if r.primary != nil && !w.hedged {
			clock = r.clock.C
		}
		select {
		case res := <-r.results:
			r.settle(ctx, res.f, res)
		case <-clock:
			if j, ok := r.hedge(ctx, r.primary.index); ok {
				w.hedged = true
				r.launch(ctx, j, true)
			}
		}
	}
}

// abandon cancels the attempts still running when run leaves before they
// ended, which only a panic (an observer's) makes it do: the caller may
// recover, and nothing of the call must run on behind it.
func (r *race[T]) abandon() {
	if r.running == 0 {
		return
	}
	for _, f := range r.live {
		if f != nil {
			f.cancel(nil)
		}
	}
}

// hedgeTarget is the candidate that may hedge the attempt at i: the
// walk's next one, when the call may still hedge and the rule allows
// (hedgeable).
func (r *race[T]) hedgeTarget(i int) (int, bool) {
	w := r.w
	if w.cfg.hedge <= 0 || w.hedged {
		return 0, false
	}
	for j := range w.cands {
		if j != i && !w.done[j] && !w.busy[j] {
			return j, hedgeable(w.cands[i], w.cands[j])
		}
	}
	return 0, false
}

// hedge is the candidate to hedge the attempt at i on now, taken from
// the hedge budget: hedgeTarget, past the candidates the shared store now
// says are cooling (see admit). The store is asked only once the call may
// hedge (its context live, the budget allowing), so that it gives the
// probe of a candidate only to a hedge that is sent; a budget taken for
// no candidate is given back.
func (r *race[T]) hedge(ctx context.Context, i int) (int, bool) {
	w := r.w
	if _, ok := r.hedgeTarget(i); !ok || ctx.Err() != nil || !w.c.hedges.take() {
		return 0, false
	}
	j, ok := r.hedgeTarget(i)
	for ok && !w.admit(ctx, j) {
		j, ok = r.hedgeTarget(i)
	}
	if !ok {
		w.c.hedges.refund()
	}
	return j, ok
}

// inline makes the attempt at candidate i on the caller's goroutine.
func (r *race[T]) inline(ctx context.Context, i int) result[T] {
	w := r.w
	r.inl = flight{index: i, gen: w.tokGen, ctx: ctx, actx: ctx}
	f := &r.inl
	if w.obs != nil {
		f.actx = w.obs.StartAttempt(ctx, w.cands[i], w.tok.Source)
	}
	// Not among live, which a win cancels: nothing runs beside it. (Nor
	// is its address kept in r, which would move the race to the heap.)
	w.busy[i] = true
	r.running++
	out, att, err := r.try.attempt(endsWith(f.actx, ctx), w.cands[i], w.tok, tryHooks{})
	return result[T]{out: out, att: att, err: err} // its flight is r.inl
}

// launch starts the attempt at candidate i on a goroutine of its own; its
// result comes back on r.results. A primary attempt (not a hedge) runs
// the hedge clock while its HTTP tries wait for an answer.
func (r *race[T]) launch(ctx context.Context, i int, hedge bool) *flight {
	return r.launchOpened(ctx, i, hedge, nil)
}

// launchOpened is launch with opened, when not nil, asked on the
// attempt's goroutine as soon as it succeeded whether it may win: a
// stream's stall hedge wins only while the stream it hedges is silent
// (session.go). One it may not is settled as lost.
func (r *race[T]) launchOpened(ctx context.Context, i int, hedge bool, opened func() bool) *flight {
	w := r.w
	if r.results == nil {
		r.results = make(chan result[T], 2) // never more than two attempts at once
	}
	lctx, cancel := context.WithCancelCause(ctx)
	f := &flight{index: i, gen: w.tokGen, hedge: hedge, ctx: lctx, cancel: cancel, actx: lctx}
	if w.obs != nil {
		f.actx = w.obs.StartAttempt(lctx, w.cands[i], w.tok.Source)
	}
	var hooks tryHooks
	if !hedge && !w.hedged && w.cfg.hedge > 0 {
		r.startClock()
		r.primary, hooks = f, r.hooks
	}
	r.add(f)
	cand, tok, try, results, actx := w.cands[i], w.tok, r.try, r.results, endsWith(f.actx, lctx)
	go func() {
		out, att, err := try.attempt(actx, cand, tok, hooks)
		att.Hedge = hedge
		if err == nil && opened != nil && !opened() {
			f.cancel(errHedgeLost)
		}
		results <- result[T]{f: f, out: out, att: att, err: err}
	}()
	return f
}

// endsWith is the context an attempt runs under: the observer's for it
// (actx, whose values, a span, its HTTP requests carry), ended when the
// race's own for it (own) ends, whatever the observer returned. An
// observer's context derived from own is that already, and is used as it
// is.
func endsWith(actx, own context.Context) context.Context {
	if actx == own || actx.Done() == own.Done() {
		return actx
	}
	return observedContext{Context: own, values: actx}
}

// observedContext is an attempt's own context (its end, deadline and
// cause) with the values of the observer's context for it, then its own.
type observedContext struct {
	context.Context
	values context.Context
}

func (o observedContext) Value(key any) any {
	if v := o.values.Value(key); v != nil {
		return v
	}
	return o.Context.Value(key)
}

// startClock starts the hedge delay of a primary attempt. The delay
// counts only while an HTTP try waits for its answer: a provider that
// answered a 429 or a 500 and is waiting to be retried is not slow, so
// each try starts the clock again and the wait for a retry stops it.
func (r *race[T]) startClock() {
	d := r.w.cfg.hedge
	if r.clock == nil {
		r.clock = time.NewTimer(d)
		clock := r.clock
		r.hooks = tryHooks{onTry: func() { clock.Reset(d) }, onBackoff: func() { clock.Stop() }}
		return
	}
	r.clock.Reset(d)
}

// lost reports a result that lost its race: cancelled because another
// attempt won (its failure then only says so), or a success that came
// after the winner's.
func (r *race[T]) lost(f *flight, err error) bool {
	if err == nil && r.won {
		return true
	}
	cancelled := f.cancel != nil && context.Cause(f.ctx) == errHedgeLost
	return cancelled && (err == nil || errors.Is(err, context.Canceled))
}

// settle takes an attempt's result: a loss is recorded as such, the first
// success is committed once every other attempt has ended, and a failure
// goes to the walk's failure path, which may launch the same candidate
// again (the next token) at once.
func (r *race[T]) settle(ctx context.Context, f *flight, res result[T]) {
	w := r.w
	r.remove(f)
	if f == r.primary {
		r.clock.Stop()
		r.primary = nil
	}
	if r.lost(f, res.err) {
		res.att.Err, res.att.Lost, res.att.TimedOut = nil, true, ""
		keepOrRelease(res.out, errHedgeLost, f.cancel)
		w.record(res.att, f.actx, false)
		return
	}
	if res.err == nil {
		r.won, r.winOut, r.winAtt, r.winFlight = true, res.out, res.att, *f
		for _, other := range r.live {
			if other != nil {
				other.cancel(errHedgeLost) // at once: its body is closed
			}
		}
		return
	}
	if f.cancel != nil {
		f.cancel(nil)
	}
	w.record(res.att, f.actx, false)
	goOn, again := w.fail(ctx, f.index, f.gen, res.err, res.att.StatusCode)
	switch {
	case !goOn && r.running > 0:
		// Another attempt runs: it may still serve. If it fails too, this
		// failure, which stopped the walk, ends the trail, so that the
		// call's error is of its kind.
		if r.stop == 0 {
			r.stop = len(w.attempts)
		}
		return
	case !goOn:
		r.over = true
	}
	if again && r.running > 0 && !r.over && r.stop == 0 && !r.won {
		// The candidate again with the next token, while the other
		// attempt runs on.
		w.i = f.index
		r.launch(ctx, f.index, false)
	}
}

// add and remove keep the attempts running, and the walk's busy marks.
func (r *race[T]) add(f *flight) {
	r.w.busy[f.index] = true
	r.running++
	for k := range r.live {
		if r.live[k] == nil {
			r.live[k] = f
			return
		}
	}
}

func (r *race[T]) remove(f *flight) {
	r.w.busy[f.index] = false
	r.running--
	for k := range r.live {
		if r.live[k] == f {
			r.live[k] = nil
		}
	}
}

// commit records the winner, the attempt that served, after every other
// attempt of the race ended, and hands over its answer.
func (r *race[T]) commit() T {
	w, f := r.w, &r.winFlight
	w.i = f.index
	for k := range f.index {
		// The walk has gone past the candidates before the winner (a
		// primary its hedge beat): a restart goes on from the winner.
		w.done[k] = true
	}
	w.record(r.winAtt, f.actx, true)
	keepOrRelease(r.winOut, nil, f.cancel)
	return r.winOut
}

// keepOrRelease ends what an attempt holds: a success that is not kept
// (err set: it lost) is closed; the attempt's own context is released,
// except under a stream that lives on, which releases it when it closes.
// A stream's close and adopt take a nil stream.
func keepOrRelease[T any](out T, err error, cancel context.CancelCauseFunc) {
	if err != nil {
		if c, ok := any(out).(interface{ close() }); ok {
			c.close()
		}
		if cancel != nil {
			cancel(err)
		}
		return
	}
	if cancel == nil {
		return
	}
	if a, ok := any(out).(interface{ adopt(func()) }); ok {
		a.adopt(func() { cancel(nil) })
		return
	}
	cancel(nil)
}
