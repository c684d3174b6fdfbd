package inference

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// callConfig is what one call runs with: the client's settings, with the
// call's options laid over them. A call without options uses the client's
// own, without copying it.
type callConfig struct {
	// tokens is the client's own source; user, a call's source tried
	// before it (WithUserTokenSource), whose members never cool down in
	// the client's memory.
	tokens, user TokenSource
	// sources is the list a walk takes when neither is a chain, built
	// once.
	sources   []indexedSource
	header    http.Header
	billTo    string
	timeout   time.Duration
	retry     RetryPolicy
	http      *retryablehttp.Client
	fallbacks []Candidate
	// recovery, firstToken and idle shape streams: see
	// WithStreamRecovery, WithFirstTokenTimeout, WithStreamIdleTimeout.
	recovery   bool
	firstToken time.Duration
	idle       time.Duration
	observer   Observer
	// hedge is WithHedge's delay; zero means no hedging.
	hedge time.Duration
}

// newCallConfig builds a configuration from settings; hc is the client's
// HTTP client, wrapped by its retry loop.
func newCallConfig(s *settings, tokens TokenSource, hc *http.Client) callConfig {
	retry := s.retry.withDefaults()
	cfg := callConfig{
		tokens: tokens, user: s.userTokens, header: s.headers, billTo: s.billTo,
		timeout: s.attemptTimeout, retry: retry, http: newRetryClient(hc, retry),
		fallbacks: s.fallbacks, recovery: s.recovery, firstToken: s.firstToken, idle: s.streamIdle,
		observer: s.observer, hedge: s.hedge,
	}
	cfg.sources = listSources(cfg.user, cfg.tokens)
	return cfg
}

// listSources is the sources a walk tries, the user's first, when neither
// is a chain; nil when one is (tokenSources then lists them per call, the
// client's cooling ones last).
func listSources(user, own TokenSource) []indexedSource {
	if _, chain := own.(chainSource); chain {
		return nil
	}
	if _, chain := user.(chainSource); chain {
		return nil
	}
	var out []indexedSource
	if user != nil {
		out = append(out, indexedSource{i: -1, src: user})
	}
	if own != nil {
		out = append(out, indexedSource{i: 0, src: own, own: true})
	}
	return out
}

// configure is the configuration of a call with opts over the client's.
func (c *Client) configure(opts []Option) (*callConfig, error) {
	if len(opts) == 0 {
		return &c.call, nil
	}
	base := &c.call
	s := settings{
		perCall: true, tokenSource: base.tokens, userTokens: base.user, headers: base.header, billTo: base.billTo,
		attemptTimeout: base.timeout, retry: base.retry, fallbacks: base.fallbacks,
		recovery: base.recovery, firstToken: base.firstToken, streamIdle: base.idle, observer: base.observer,
		hedge: base.hedge,
	}
	for i, opt := range opts {
		if opt == nil {
			return nil, invalidRequest("option %d is nil", i)
		}
		if err := opt(&s); err != nil {
			if !errors.Is(err, ErrInvalidRequest) && !errors.Is(err, ErrInvalidToken) {
				err = invalidOption(err)
			}
			return nil, err
		}
	}
	cfg := *base
	cfg.tokens, cfg.user, cfg.header, cfg.billTo = s.tokenSource, s.userTokens, s.headers, s.billTo
	cfg.timeout, cfg.fallbacks = s.attemptTimeout, s.fallbacks
	cfg.recovery, cfg.firstToken, cfg.idle, cfg.observer = s.recovery, s.firstToken, s.streamIdle, s.observer
	cfg.hedge = s.hedge
	if s.tokensReplaced {
		// A call's own tokens replace the client's: like a user's source,
		// they are never cooled down in the client's memory.
		cfg.tokens, cfg.user = nil, chainOf(s.userTokens, s.tokenSource)
	}
	if retry := s.retry.withDefaults(); retry != base.retry {
		cfg.retry, cfg.http = retry, newRetryClient(base.http.HTTPClient, retry)
	}
	cfg.sources = listSources(cfg.user, cfg.tokens)
	return &cfg, nil
}

// chainOf chains a before b, either of which may be nil.
func chainOf(a, b TokenSource) TokenSource {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return ChainTokens(a, b)
}

// prepare checks what a call starts with, before anything is sent: a
// usable client and context, the call's options, the request. It returns
// the call's configuration.
func (c *Client) prepare(ctx context.Context, req *ChatRequest, opts []Option) (*callConfig, error) {
	if err := c.usable(ctx); err != nil {
		return nil, err
	}
	cfg, err := c.configure(opts)
	if err != nil {
		return nil, err
	}
	if err := req.validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// account is the cooldown key suffix of the account a call runs as, for
// failures that concern that account alone (coolAccount): the client's
// own tokens, billed to the call's organization. ok is false for a call
// that carries a user's token or tokens of its own: it is its own
// account, and nothing is remembered for it. The suffix is not derived
// from any token and never leaves the process.
func (cfg *callConfig) account() (string, bool) {
	if cfg.user != nil {
		return "", false
	}
	return "\x00account" + billedKey(cfg.billTo), true
}

// ownLimit reports whether the limit that ended an attempt is one the
// call set for itself, different from the client's (base).
func (cfg *callConfig) ownLimit(base *callConfig, limit Timeout) bool {
	switch limit {
	case TimeoutAttempt:
		return cfg.timeout != base.timeout
	case TimeoutFirstToken:
		return cfg.firstToken != base.firstToken
	case TimeoutStreamIdle:
		return cfg.idle != base.idle
	}
	return false
}

// begin checks what an operation's call starts with (a usable client and
// context, the call's options, the request, by validate) and starts
// observing it with info, the router's address added. Chat has its own,
// allocation-free path (prepare, startCall).
func (c *Client) begin(ctx context.Context, opts []Option, validate func() error, info CallInfo) (context.Context, *callConfig, CallObserver, error) {
	if err := c.usable(ctx); err != nil {
		return ctx, nil, nil, err
	}
	cfg, err := c.configure(opts)
	if err != nil {
		return ctx, nil, nil, err
	}
	if err := validate(); err != nil {
		return ctx, nil, nil, err
	}
	if cfg.observer == nil {
		return ctx, cfg, nil, nil
	}
	info.ServerAddress, info.ServerPort = c.routerHostPort()
	ctx, obs := cfg.observer.StartCall(ctx, info)
	return ctx, cfg, obs, nil
}
