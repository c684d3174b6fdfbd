package inference

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Client calls the Hugging Face Inference Providers router. It is safe for
// concurrent use, and meant to be created once and shared: it keeps a pool
// of connections. Its zero value is not usable; call [NewClient].
type Client struct {
	base *url.URL
	hub  *url.URL
	// hubUnnamed: the router is on this machine (a test's fake, or a
	// local proxy) and the Hub is the public default because none was
	// named; the Hub is then not asked (see hubGet), so that a test's
	// token never leaves the machine.
	hubUnnamed bool
	chatURL    string
	logger     *slog.Logger
	policy     FallbackPolicy
	// call is what a call runs with when it gives no options of its own:
	// tokens, headers, billing, timeouts, retries, fallbacks.
	call     callConfig
	cooldown time.Duration
	// maxCooldown caps how far a server's Retry-After may lengthen a
	// cooldown (WithMaxCooldown).
	maxCooldown time.Duration
	// cool is this process's memory of cooling candidates and token
	// sources; shared, when set (WithCooldownStore), holds the candidates'
	// for a fleet, and sharedDown says it is failing.
	cool       cooldownStore
	shared     CooldownStore
	sharedDown atomic.Bool
	models     *modelCache
	// hubModels keeps the Hub's model info that embeddings read their
	// providers from.
	hubModels hubModelCache
	// hedges counts calls and hedges for WithHedgeBudget.
	hedges   hedgeBudget
	order    providerOrder
	walkAuto bool
	// transport is the innermost RoundTripper, kept for
	// CloseIdleConnections: the middleware chain above it hides its
	// methods.
	transport http.RoundTripper
	// direct reaches hosts that are neither the router nor the Hub (a
	// result file on a provider's CDN) through the logging alone: the
	// user's middlewares are for the router (a proxy's credentials,
	// trace context), and no token is added.
	direct *http.Client
}

// NewClient returns a client configured by opts. Without options it calls
// the public router with the token [EnvToken] finds (HF_TOKEN, then the
// file `hf auth login` writes; before them, when HF_OIDC_RESOURCE is set,
// the token [OIDCToken] exchanges), retries twice, and logs nothing. A missing
// token is not an error here: calls return [ErrNoToken] without sending
// anything. A malformed token given to [WithToken] is [ErrInvalidToken];
// any other option that refuses its value is [ErrInvalidRequest], as it is
// per call.
func NewClient(opts ...Option) (*Client, error) {
	c, err := newClient(opts)
	if err != nil && KindName(err) == "" {
		err = &configError{err: err}
	}
	return c, err
}

// newClient is NewClient before its error is given a kind.
func newClient(opts []Option) (*Client, error) {
	s := settings{
		callSettings: callSettings{
			retry:          RetryPolicy{MaxRetries: DefaultMaxRetries},
			attemptTimeout: DefaultAttemptTimeout,
			streamIdle:     DefaultStreamIdleTimeout,
			jobDeadline:    DefaultJobDeadline,
			pollFirst:      DefaultJobPoll,
			pollMax:        DefaultJobPollMax,
			maxResult:      DefaultMaxResultSize,
		},
		baseURL:     DefaultBaseURL,
		modelsTTL:   DefaultModelsTTL,
		order:       providerOrder{policy: OrderPreferred},
		cooldown:    DefaultCooldown,
		maxCooldown: DefaultMaxCooldown,
		policy:      DefaultFallbackPolicy,
	}
	for i, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("inference: NewClient: option %d is nil", i)
		}
		if err := opt(&s); err != nil {
			return nil, err
		}
	}

	base, err := parseBase("WithBaseURL", s.baseURL)
	if err != nil {
		return nil, err
	}
	hubRaw, hubNamed := s.hubURL, s.hubURL != ""
	if hubRaw == "" {
		hubRaw = defaultHubURL
		if env := strings.TrimSpace(os.Getenv("HF_ENDPOINT")); env != "" {
			hubRaw, hubNamed = env, true
		}
	}
	hub, err := parseBase("WithHubURL (or HF_ENDPOINT)", hubRaw)
	if err != nil {
		return nil, err
	}
	if err := checkTransportSecurity("WithBaseURL", base, s.allowHTTP); err != nil {
		return nil, err
	}
	if err := checkTransportSecurity("WithHubURL (or HF_ENDPOINT)", hub, s.allowHTTP); err != nil {
		return nil, err
	}

	if s.tokenSource == nil {
		s.tokenSource = defaultTokenSource()
	}

	logger := s.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	hc := &http.Client{}
	if s.httpClient != nil {
		copied := *s.httpClient
		hc = &copied
	}
	var transport http.RoundTripper = defaultTransport()
	if hc.Transport != nil {
		transport = hc.Transport
	}
	rt := authMiddleware(hostSet{origin(base), origin(hub)})(transport)
	for i := len(s.middlewares) - 1; i >= 0; i-- {
		rt = s.middlewares[i](rt)
	}
	hc.CheckRedirect = keepHeadersOnOrigin(hc.CheckRedirect)
	direct := *hc
	direct.Transport = logMiddleware(logger)(transport)
	direct.CheckRedirect = thirdPartyRedirect(base, hc.CheckRedirect)
	hc.Transport = logMiddleware(logger)(rt)

	if l, ok := s.cooldownStore.(interface{ SetLogger(*slog.Logger) }); ok && s.logger != nil {
		// A store without a logger of its own reports its outages here.
		l.SetLogger(s.logger)
	}

	// A login stored by `hf auth login` is renewed, and an OIDC token
	// exchanged, by the client's Hub, through its transport alone: no
	// token or log line goes with it.
	hubUnnamed := !hubNamed && isLoopback(base.Hostname())
	login := clientLogin{hubOAuth: hubOAuth{hub: hub.String(), logger: s.logger, http: &http.Client{Transport: transport, Timeout: loginHTTPTimeout}}}
	if hubUnnamed {
		// As for the client's own Hub calls (hubGet): a renewal or an
		// exchange would send a login to the public Hub from a test,
		// unless its source names its own Hub.
		login.refuse = &http.Client{Transport: RoundTripperFunc(func(*http.Request) (*http.Response, error) {
			return nil, hubNotNamed(base, hub)
		})}
	}
	s.tokenSource = bindLoginSources(s.tokenSource, login)
	s.userTokens = bindLoginSources(s.userTokens, login)

	return &Client{
		base:        base,
		hub:         hub,
		hubUnnamed:  hubUnnamed,
		chatURL:     base.String() + "/v1/chat/completions",
		logger:      logger,
		policy:      s.policy,
		call:        newCallConfig(s.callSettings, hc),
		hedges:      hedgeBudget{percent: s.hedgeBudget},
		cooldown:    s.cooldown,
		maxCooldown: s.maxCooldown,
		cool:        newMemoryCooldown(),
		shared:      s.cooldownStore,
		transport:   transport,
		direct:      &direct,
		models:      newModelCache(s.modelsTTL),
		order:       s.order,
		walkAuto:    s.walkAuto,
	}, nil
}

// CloseIdleConnections closes the idle connections of the client's
// transport, when it has such a method (an *http.Transport does). The client
// stays usable. Call it when done with a client whose transport is not
// shared.
func (c *Client) CloseIdleConnections() {
	if c == nil {
		return
	}
	if ci, ok := c.transport.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// String describes the client's endpoints and token source, never a token.
func (c *Client) String() string {
	if c == nil {
		return "inference.Client(nil)"
	}
	return fmt.Sprintf("inference.Client{router: %s, hub: %s, tokens: %s}", c.base, c.hub, sourceName(chainOf(c.call.userTokens, c.call.tokenSource)))
}

// Format prints String for every verb, so that no format, %#v included,
// walks into the client's fields.
func (c *Client) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, c.String()) }

// usable reports why a call cannot start: a nil context, or a client not
// made by NewClient. Both are ErrInvalidRequest: nothing is sent.
func (c *Client) usable(ctx context.Context) error {
	switch {
	case c == nil:
		return invalidRequest("nil *Client: make one with NewClient")
	case c.call.http == nil:
		return invalidRequest("the Client was not made by NewClient (its zero value is not usable)")
	case ctx == nil:
		return invalidRequest("nil Context: pass context.Background() or the request's context")
	}
	return nil
}
