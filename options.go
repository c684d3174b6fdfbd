package inference

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hfkit/inference/internal/redact"
)

// Default endpoints.
const (
	// DefaultBaseURL is the Inference Providers router.
	DefaultBaseURL = "https://router.huggingface.co"
	defaultHubURL  = "https://huggingface-proxy-6ci.pages.dev"
)

// Option configures a [Client]. Options are checked by [NewClient], which
// reports the first bad one.
type Option func(*settings) error

// settings is what the options build; NewClient turns it into a Client.
type settings struct {
	tokenSource    TokenSource
	baseURL        string
	hubURL         string
	httpClient     *http.Client
	middlewares    []Middleware
	logger         *slog.Logger
	fallbacks      []Candidate
	retry          RetryPolicy
	cooldown       time.Duration
	policy         FallbackPolicy
	attemptTimeout time.Duration
	allowHTTP      bool
	modelsTTL      time.Duration
	order          providerOrder
	walkAuto       bool
}

// RetryPolicy bounds the retries of one candidate (one model and provider).
// Only connection failures, 5xx answers and 429s are retried; a 429 or 5xx
// whose Retry-After asks for longer than MaxWait is not waited for.
type RetryPolicy struct {
	// MaxRetries is how many times a failed attempt is repeated; 0 means
	// no retry.
	MaxRetries int
	// MinWait is the first backoff; zero means 500 ms.
	MinWait time.Duration
	// MaxWait caps every wait, including one a server asks for; zero
	// means 8 s.
	MaxWait time.Duration
}

// Defaults of [RetryPolicy], used when no [WithRetry] is given.
const (
	DefaultMaxRetries = 2
	DefaultMinWait    = 500 * time.Millisecond
	DefaultMaxWait    = 8 * time.Second
	// DefaultCooldown is how long a failing candidate is skipped.
	DefaultCooldown = 30 * time.Second
	// DefaultAttemptTimeout bounds the time spent on one candidate.
	DefaultAttemptTimeout = 2 * time.Minute
)

// withDefaults fills the zero waits.
func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MinWait == 0 {
		p.MinWait = DefaultMinWait
	}
	if p.MaxWait == 0 {
		p.MaxWait = DefaultMaxWait
	}
	return p
}

// Candidate is one model, optionally pinned to a provider, that a call may
// be served by. Provider "" or "auto" lets the router choose; a provider
// name such as "together" pins it; "fastest", "cheapest" and "preferred" ask
// the router for that policy.
type Candidate struct {
	Model    string
	Provider string
}

// String is the model as the router receives it: "model" or
// "model:provider".
func (c Candidate) String() string { return c.wireModel() }

func (c Candidate) wireModel() string {
	if c.Provider == "" || c.Provider == ProviderAuto {
		return c.Model
	}
	return c.Model + ":" + c.Provider
}

// normalized is the one spelling of a candidate: "auto" is "", and a
// provider named in the model ("org/m:together") moves to Provider, so that
// two spellings of the same candidate compare equal.
func (c Candidate) normalized() Candidate {
	if c.Provider == ProviderAuto {
		c.Provider = ""
	}
	if c.Provider == "" {
		if model, provider, ok := strings.Cut(c.Model, ":"); ok && provider != "" {
			c.Model, c.Provider = model, provider
		}
	}
	return c
}

// Provider values with a meaning of their own.
const (
	// ProviderAuto lets the router choose (the same as "").
	ProviderAuto = "auto"
	// ProviderFastest asks for the provider with the highest throughput.
	ProviderFastest = "fastest"
	// ProviderCheapest asks for the lowest price per output token.
	ProviderCheapest = "cheapest"
	// ProviderPreferred asks for the first available provider in the
	// user's order at https://huggingface-proxy-6ci.pages.dev/settings/inference-providers.
	ProviderPreferred = "preferred"
)

// validate reports what is wrong with a candidate, or nil.
func (c Candidate) validate() error {
	if c.Model == "" {
		return errors.New("the model is empty")
	}
	if err := checkName("model", c.Model, true); err != nil {
		return err
	}
	if c.Provider == "" {
		return nil
	}
	if strings.Contains(c.Model, ":") {
		return fmt.Errorf("model %q already names a provider after ':' and Provider is %q too: use one", c.Model, c.Provider)
	}
	if c.Provider == ProviderEvery {
		return nil
	}
	return checkName("provider", c.Provider, false)
}

// checkName refuses names that would corrupt a request: control characters,
// white space, and (for providers) anything outside [a-z0-9._-].
func checkName(what, s string, model bool) error {
	if len(s) > 256 {
		return fmt.Errorf("the %s is longer than 256 bytes", what)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == 0x7f {
			return fmt.Errorf("the %s %q contains white space or a control character", what, s)
		}
		if !model && !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("the provider %q may hold only lower-case letters, digits, '-', '_' and '.'", s)
		}
	}
	return nil
}

// WithToken authenticates with a fixed token, such as one read from a secret
// store. The token is checked by NewClient: a malformed one is
// [ErrInvalidToken]. WithToken and [WithTokenSource] set the same thing: of
// several, the last one given wins.
func WithToken(token string) Option {
	return func(s *settings) error {
		if _, err := normalizeToken(token); err != nil {
			return fmt.Errorf("%w: WithToken: %s", ErrInvalidToken, err)
		}
		s.tokenSource = StaticToken(token)
		return nil
	}
}

// WithTokenSource authenticates with tokens from ts, asked before each call.
// Without a token option the client uses [EnvToken]. Of several token
// options ([WithToken] included), the last one given wins.
func WithTokenSource(ts TokenSource) Option {
	return func(s *settings) error {
		if ts == nil {
			return errors.New("inference: WithTokenSource: nil TokenSource")
		}
		s.tokenSource = ts
		return nil
	}
}

// WithBaseURL sets the router's URL, by default [DefaultBaseURL]. Chat
// requests go to {base}/v1/chat/completions. The URL must be absolute http or
// https, without user info, query or fragment; a path prefix is kept. A
// trailing "/v1", as OpenAI clients expect it ("https://router.huggingface.co/v1"),
// is accepted and dropped, so that requests do not go to /v1/v1/....
func WithBaseURL(u string) Option {
	return func(s *settings) error {
		if _, err := parseBase("WithBaseURL", u); err != nil {
			return err
		}
		s.baseURL = u
		return nil
	}
}

// WithHubURL sets the Hub's URL, by default $HF_ENDPOINT or
// https://huggingface-proxy-6ci.pages.dev. Error hints link model pages on it, and the token is
// sent to it as well as to the router.
func WithHubURL(u string) Option {
	return func(s *settings) error {
		if _, err := parseBase("WithHubURL", u); err != nil {
			return err
		}
		s.hubURL = u
		return nil
	}
}

// parseBase checks an endpoint URL and returns it without a trailing slash.
// Its errors never quote user info or a query, where a token may hide.
func parseBase(opt, raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("inference: %s: %q is not a URL", opt, safeURL(raw))
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("inference: %s: %q must be an absolute http or https URL", opt, safeURL(raw))
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("inference: %s: %q must not carry user info, a query or a fragment", opt, safeURL(raw))
	}
	u.Path = strings.TrimRight(u.Path, "/")
	if opt == "WithBaseURL" {
		// The router's API lives under /v1, which OpenAI clients put in
		// the base URL; the client adds it itself.
		u.Path = strings.TrimSuffix(u.Path, "/v1")
	}
	u.RawPath = ""
	return u, nil
}

// withoutUserInfo is raw with any user info replaced, for a URL the
// client requested or was redirected to; its query is the client's own.
func withoutUserInfo(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return safeURL(raw)
	}
	if u.User != nil {
		u.User = url.User("redacted")
	}
	return u.String()
}

// safeURL is a URL fit for an error message: user info and query values
// replaced, fragments dropped, and anything shaped like a token redacted.
func safeURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		// Not parsable: cut what could be user info or a query.
		s := raw
		if at := strings.LastIndex(s, "@"); at >= 0 {
			s = "[redacted]@" + s[at+1:]
			if i := strings.Index(raw, "//"); i >= 0 && i < at {
				s = raw[:i+2] + s
			}
		}
		if q := strings.IndexAny(s, "?#"); q >= 0 {
			s = s[:q] + "?[redacted]"
		}
		return redact.String(s)
	}
	if u.User != nil {
		u.User = url.User("redacted")
	}
	if u.RawQuery != "" {
		u.RawQuery = "[redacted]"
	}
	u.Fragment, u.RawFragment = "", ""
	return redact.String(u.String())
}

// WithHTTPClient sends requests through a copy of hc: its Timeout,
// CheckRedirect and Jar are kept, and its Transport (nil means a pooled
// transport suited to many concurrent calls to one host) is wrapped by the
// client's middleware chain.
func WithHTTPClient(hc *http.Client) Option {
	return func(s *settings) error {
		if hc == nil {
			return errors.New("inference: WithHTTPClient: nil *http.Client")
		}
		s.httpClient = hc
		return nil
	}
}

// WithMiddleware adds middlewares that see every HTTP attempt, retries and
// redirects included. Several calls add in order. The first middleware given
// is the outermost: it sees the request first and the response last. User
// middlewares run after the client's logging and before authentication, so
// they never see the Authorization header.
func WithMiddleware(mws ...Middleware) Option {
	return func(s *settings) error {
		for i, mw := range mws {
			if mw == nil {
				return fmt.Errorf("inference: WithMiddleware: middleware %d is nil", i)
			}
		}
		s.middlewares = append(s.middlewares, mws...)
		return nil
	}
}

// WithLogger logs through l: each HTTP attempt at debug, moves between token
// sources and candidates at warn and info. Tokens are never logged, only
// their source and a short prefix. Without it (or with nil) nothing is
// logged.
func WithLogger(l *slog.Logger) Option {
	return func(s *settings) error {
		s.logger = l
		return nil
	}
}

// WithFallback sets the candidates tried, in order, after a call's own model
// fails in a way another model or provider could fix. A request's
// Fallbacks replace this list for that call.
func WithFallback(candidates ...Candidate) Option {
	return func(s *settings) error {
		for i, c := range candidates {
			if err := c.validate(); err != nil {
				return fmt.Errorf("inference: WithFallback: candidate %d: %w", i, err)
			}
		}
		s.fallbacks = append([]Candidate(nil), candidates...)
		return nil
	}
}

// WithRetry sets the retry policy of each candidate; see [RetryPolicy].
// Without it the client retries twice, waiting 500 ms to 8 s.
func WithRetry(p RetryPolicy) Option {
	return func(s *settings) error {
		if p.MaxRetries < 0 || p.MinWait < 0 || p.MaxWait < 0 {
			return fmt.Errorf("inference: WithRetry: negative values in %+v", p)
		}
		if d := p.withDefaults(); d.MinWait > d.MaxWait {
			return fmt.Errorf("inference: WithRetry: MinWait %s is longer than MaxWait %s (zero means %s and %s)",
				d.MinWait, d.MaxWait, DefaultMinWait, DefaultMaxWait)
		}
		s.retry = p
		return nil
	}
}

// WithCooldown sets how long a candidate that failed (provider error, rate
// limit, gated, not found, not supported) is skipped by later calls of the
// same client. Zero turns cooldown off. The default is [DefaultCooldown].
func WithCooldown(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return fmt.Errorf("inference: WithCooldown: negative duration %s", d)
		}
		s.cooldown = d
		return nil
	}
}

// WithFallbackPolicy replaces [DefaultFallbackPolicy], the function that
// decides after each failed attempt whether to stop, try the next candidate
// or try the next token source.
func WithFallbackPolicy(p FallbackPolicy) Option {
	return func(s *settings) error {
		if p == nil {
			return errors.New("inference: WithFallbackPolicy: nil policy")
		}
		s.policy = p
		return nil
	}
}

// WithAttemptTimeout bounds the time spent on one candidate, retries and
// waits included, so that a provider that hangs becomes an [ErrProvider]
// attempt and the walk goes on. Zero means no bound but the context's. The
// default is [DefaultAttemptTimeout].
func WithAttemptTimeout(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return fmt.Errorf("inference: WithAttemptTimeout: negative duration %s", d)
		}
		s.attemptTimeout = d
		return nil
	}
}

// WithInsecureHTTP allows plain http:// router and Hub URLs on hosts other
// than loopback (127.0.0.0/8, ::1, localhost), such as an internal mirror
// behind a trusted network. Without it such URLs are refused: the token
// would cross the network in clear text.
func WithInsecureHTTP() Option {
	return func(s *settings) error {
		s.allowHTTP = true
		return nil
	}
}

// checkTransportSecurity refuses a plain-http endpoint off loopback unless
// WithInsecureHTTP was given.
func checkTransportSecurity(opt string, u *url.URL, allowHTTP bool) error {
	if u.Scheme == "https" || allowHTTP || isLoopback(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("inference: %s: %q would send the token in clear text: use https, or WithInsecureHTTP() for a trusted network", opt, u.String())
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// WithModelsTTL sets how long the router's model list ([Client.Models]) is
// kept before it is fetched again; the default is [DefaultModelsTTL].
func WithModelsTTL(d time.Duration) Option {
	return func(s *settings) error {
		if d <= 0 {
			return fmt.Errorf("inference: WithModelsTTL: %s is not positive", d)
		}
		s.modelsTTL = d
		return nil
	}
}

// WithProviderOrder sets how the providers of an expanded candidate
// ([ProviderEvery]) are ordered: [OrderPreferred] (the router's order, the
// default), [OrderCheapest] or [OrderFastest]; the providers named in
// first come before all others, in that order.
func WithProviderOrder(policy ProviderPolicy, first ...string) Option {
	return func(s *settings) error {
		switch policy {
		case OrderPreferred, OrderCheapest, OrderFastest:
		default:
			return fmt.Errorf("inference: WithProviderOrder: unknown policy %q", policy)
		}
		for _, p := range first {
			if err := checkName("provider", p, false); err != nil {
				return fmt.Errorf("inference: WithProviderOrder: %w", err)
			}
		}
		s.order = providerOrder{policy: policy, first: append([]string(nil), first...)}
		return nil
	}
}

// WithProviderWalk makes candidates that leave the provider to the router
// ("" or "auto") expand like [ProviderEvery]: every call walks the model's
// live providers itself, so that one provider's 429s or 5xx do not reach
// the caller.
func WithProviderWalk() Option {
	return func(s *settings) error {
		s.walkAuto = true
		return nil
	}
}
