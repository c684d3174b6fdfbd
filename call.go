package inference

import "context"

// call is one call in flight: its client, its resolved settings, its
// observer and account, and its walk over candidates and token sources
// (fallback.go), which plans (cooldown.go), decides after each failure and
// cools. Operations make their attempts through it, the race (race.go)
// launches them, and a stream's session (session.go) keeps it for the
// stream's life.
type call struct {
	c   *Client
	cfg *callConfig
	obs CallObserver
	// op names the operation in an error about a candidate: "chat
	// with", "embeddings from", "response from".
	op string
	walk
}

// begin starts w, the call an operation makes (embedded in its own call
// type, with its request): it checks what a call starts with (a usable
// client and context, the call's options, the request, by validate) and
// starts observing it with the CallInfo info returns, the router's
// address added. info is asked only when the call has an observer.
func (c *Client) begin(ctx context.Context, w *call, op string, opts []Option, validate func() error, info func() CallInfo) (context.Context, error) {
	if err := c.usable(ctx); err != nil {
		return ctx, err
	}
	cfg, err := c.configure(opts)
	if err != nil {
		return ctx, err
	}
	if err := validate(); err != nil {
		return ctx, err
	}
	w.c, w.cfg, w.op = c, cfg, op
	if cfg.hedge > 0 {
		c.hedges.call() // once per call: the budget is a fraction of calls
	}
	if cfg.observer != nil {
		ci := info()
		ci.ServerAddress, ci.ServerPort = c.routerHostPort()
		ctx, w.obs = cfg.observer.StartCall(ctx, ci)
	}
	return ctx, nil
}

// end tells the observer the call ended, with what it delivered or its
// failure; the walk's attempts are the result's when it has none.
func (w *call) end(res CallResult, err error) {
	if w.obs == nil {
		return
	}
	if res.Attempts == nil {
		res.Attempts, res.Skipped = w.attempts, w.skipped
	}
	w.obs.End(res, err)
}
