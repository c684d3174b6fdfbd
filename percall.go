package inference

import (
	"errors"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// callSettings is what a call may set for itself over the client's: one
// struct, embedded in the options' settings and kept by the client as
// every call's defaults, so that a per-call option is one field here and
// the With function that sets it.
type callSettings struct {
	// tokenSource is the client's own source (WithToken,
	// WithTokenSource); userTokens, a source tried before it
	// (WithUserTokenSource), whose members never cool down in the
	// client's memory.
	tokenSource TokenSource
	userTokens  TokenSource
	// tokensReplaced: a token option was given for the call, whose
	// tokens then replace the client's (see resolve).
	tokensReplaced bool
	headers        http.Header
	billTo         string
	attemptTimeout time.Duration
	retry          RetryPolicy
	fallbacks      []Candidate
	// recovery, firstToken and streamIdle shape streams: see
	// WithStreamRecovery, WithFirstTokenTimeout, WithStreamIdleTimeout.
	recovery   bool
	firstToken time.Duration
	streamIdle time.Duration
	observer   Observer
	// hedge is WithHedge's delay; zero means no hedging.
	hedge time.Duration
	// jobDeadline, pollFirst and pollMax bound and pace a provider's
	// queued job (WithJobDeadline, WithJobPolling); progress hears of it
	// (WithProgress). maxResult caps a result file (WithMaxResultSize);
	// resultURL returns its URL instead (WithResultURL).
	jobDeadline        time.Duration
	pollFirst, pollMax time.Duration
	progress           func(JobProgress)
	maxResult          int64
	resultURL          bool
}

// callConfig is what one call runs with: its settings, resolved, and what
// is derived from them once. A call without options uses the client's
// own, without copying it.
type callConfig struct {
	callSettings
	// http is the retry loop over the client's HTTP client, for the
	// call's retry policy.
	http *retryablehttp.Client
	// sources is the list a walk takes when neither token setting is a
	// chain, built once.
	sources []indexedSource
}

// newCallConfig resolves the client's own settings; hc is the client's
// HTTP client, which the retry loop wraps.
func newCallConfig(s callSettings, hc *http.Client) callConfig {
	cfg := callConfig{callSettings: s}
	cfg.retry = s.retry.withDefaults()
	cfg.http = newRetryClient(hc, cfg.retry)
	cfg.sources = listSources(cfg.userTokens, cfg.tokenSource)
	return cfg
}

// configure is the configuration of a call with opts over the client's.
func (c *Client) configure(opts []Option) (*callConfig, error) {
	if len(opts) == 0 {
		return &c.call, nil
	}
	s := settings{perCall: true, callSettings: c.call.callSettings}
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
	return c.resolve(s.callSettings), nil
}

// resolve derives a call's configuration from its settings, sharing the
// client's retry loop when the call keeps its policy.
func (c *Client) resolve(s callSettings) *callConfig {
	cfg := &callConfig{callSettings: s}
	if s.tokensReplaced {
		// A call's own tokens replace the client's: like a user's source,
		// they are never cooled down in the client's memory.
		cfg.tokenSource, cfg.userTokens, cfg.tokensReplaced = nil, chainOf(s.userTokens, s.tokenSource), false
	}
	cfg.retry = s.retry.withDefaults()
	cfg.http = c.call.http
	if cfg.retry != c.call.retry {
		cfg.http = newRetryClient(c.call.http.HTTPClient, cfg.retry)
	}
	cfg.sources = listSources(cfg.userTokens, cfg.tokenSource)
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

// ownLimit reports whether the limit that ended an attempt is one the
// call set for itself, different from the client's (base).
func (cfg *callConfig) ownLimit(base *callConfig, limit Timeout) bool {
	switch limit {
	case TimeoutAttempt:
		return cfg.attemptTimeout != base.attemptTimeout
	case TimeoutFirstToken:
		return cfg.firstToken != base.firstToken
	case TimeoutStreamIdle:
		return cfg.streamIdle != base.streamIdle
	case TimeoutJob:
		return cfg.jobDeadline != base.jobDeadline
	}
	return false
}
