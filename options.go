package inference

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Option configures a [Client], or one call: every operation ([Client.Chat],
// [Client.ChatStream], [ChatJSON], [Client.Embed], [Client.Respond],
// [Client.RespondStream], [ResponseJSON], [Client.TextToImage],
// [Client.Transcribe], [Client.Speak]) takes options that override the
// client's for that call. Those that may be given per call say so; the
// others (the endpoints, transport, middleware, logger, cooldown, fallback
// policy and provider walk belong to the client) make the call fail with
// [ErrInvalidRequest] before anything is sent. Options are checked by
// [NewClient] or by the call, which report the first bad one.
type Option func(*settings) error

// clientOnly is the error of an option that a call cannot override.
func clientOnly(name string) error {
	return invalidRequest("%s configures the client and cannot be given per call", name)
}

// settings is what the options build; NewClient turns it into a Client,
// and a call with options (perCall) into its callConfig. What a call may
// set for itself is callSettings (percall.go); the rest belongs to the
// client.
type settings struct {
	callSettings
	perCall       bool
	baseURL       string
	hubURL        string
	httpClient    *http.Client
	middlewares   []Middleware
	logger        *slog.Logger
	cooldown      time.Duration
	maxCooldown   time.Duration
	policy        FallbackPolicy
	allowHTTP     bool
	modelsTTL     time.Duration
	order         providerOrder
	walkAuto      bool
	cooldownStore CooldownStore
	hedgeBudget   float64
}

// WithToken authenticates with a fixed token, such as one read from a secret
// store. The token is checked by NewClient: a malformed one is
// [ErrInvalidToken]. WithToken and [WithTokenSource] set the same thing: of
// several, the last one given wins. Per call, it replaces the client's
// tokens for that call.
func WithToken(token string) Option {
	return func(s *settings) error {
		if _, err := normalizeToken(token); err != nil {
			return fmt.Errorf("%w: WithToken: %s", ErrInvalidToken, err)
		}
		s.tokenSource, s.tokensReplaced = StaticToken(token), s.perCall
		return nil
	}
}

// WithTokenSource authenticates with tokens from ts, asked before each call.
// Without a token option the client uses [EnvToken]. Of several token
// options ([WithToken] included), the last one given wins. Per call, it
// replaces the client's tokens for that call; to try a user's token before
// the client's own, use [WithUserTokenSource].
func WithTokenSource(ts TokenSource) Option {
	return func(s *settings) error {
		if ts == nil {
			return errors.New("inference: WithTokenSource: nil TokenSource")
		}
		s.tokenSource, s.tokensReplaced = ts, s.perCall
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
		if s.perCall {
			return clientOnly("WithBaseURL")
		}
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
		if s.perCall {
			return clientOnly("WithHubURL")
		}
		if _, err := parseBase("WithHubURL", u); err != nil {
			return err
		}
		s.hubURL = u
		return nil
	}
}

// WithHTTPClient sends requests through a copy of hc: its Timeout,
// CheckRedirect (asked after a redirect to another host has lost the
// call's headers) and Jar are kept, and its Transport (nil means a pooled
// transport suited to many concurrent calls to one host) is wrapped by the
// client's middleware chain.
func WithHTTPClient(hc *http.Client) Option {
	return func(s *settings) error {
		if s.perCall {
			return clientOnly("WithHTTPClient")
		}
		if hc == nil {
			return errors.New("inference: WithHTTPClient: nil *http.Client")
		}
		s.httpClient = hc
		return nil
	}
}

// WithMiddleware adds middlewares that see every HTTP attempt to the router
// and the Hub, retries and redirects included. Several calls add in order.
// The first middleware given is the outermost: it sees the request first
// and the response last. User middlewares run after the client's logging
// and before authentication, so they never see the Authorization header.
// The download of a result file from a provider's CDN (an image, audio)
// does not pass them: what they add (a proxy's credentials, trace context)
// is meant for the router.
func WithMiddleware(mws ...Middleware) Option {
	return func(s *settings) error {
		if s.perCall {
			return clientOnly("WithMiddleware")
		}
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
		if s.perCall {
			return clientOnly("WithLogger")
		}
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
// limit, gated, not found, not supported) is skipped by the later calls of
// the same client that its failure concerns: every call for a provider's
// failure, the calls of the same account for a gated or not-found model
// or a billing refusal, none for a call's own time limit (see
// [CooldownStore] and the README's table). Zero turns cooldown off. The
// default is [DefaultCooldown].
func WithCooldown(d time.Duration) Option {
	return func(s *settings) error {
		if s.perCall {
			return clientOnly("WithCooldown")
		}
		if d < 0 {
			return fmt.Errorf("inference: WithCooldown: negative duration %s", d)
		}
		s.cooldown = d
		return nil
	}
}

// DefaultMaxCooldown is how far a server's Retry-After may lengthen a
// cooldown without [WithMaxCooldown]: five minutes covers the per-minute
// quotas of providers and the Hub's five-minute rate-limit window, while a
// wrong or hostile header (a day, a date in 2100) costs a candidate at most
// five minutes, not its place in the walk for good.
const DefaultMaxCooldown = 5 * time.Minute

// WithMaxCooldown caps how far a server may lengthen a candidate's
// cooldown: a 429 or 5xx whose Retry-After (or RateLimit reset) asks for
// longer than the cooldown cools the candidate for that long, up to d. The
// cap applies before anything reaches a [CooldownStore], so one answer
// cannot take a candidate out of a whole fleet for longer. It does not
// shorten [WithCooldown]'s own duration, and it does not decide waits
// inside a call (see [RetryPolicy].MaxWait). The default is
// [DefaultMaxCooldown].
func WithMaxCooldown(d time.Duration) Option {
	return func(s *settings) error {
		if s.perCall {
			return clientOnly("WithMaxCooldown")
		}
		if d <= 0 {
			return fmt.Errorf("inference: WithMaxCooldown: %s is not positive", d)
		}
		s.maxCooldown = d
		return nil
	}
}

// WithFallbackPolicy replaces [DefaultFallbackPolicy], the function that
// decides after each failed attempt whether to stop, try the next candidate
// or try the next token source.
func WithFallbackPolicy(p FallbackPolicy) Option {
	return func(s *settings) error {
		if s.perCall {
			return clientOnly("WithFallbackPolicy")
		}
		if p == nil {
			return errors.New("inference: WithFallbackPolicy: nil policy")
		}
		s.policy = p
		return nil
	}
}

// WithAttemptTimeout bounds the time spent on one candidate, retries and
// waits included, so that a provider that hangs becomes an [ErrProvider]
// attempt and the walk goes on. For images and audio it bounds each HTTP
// request of an attempt (the answer, each poll of a job, the file's
// download); a queued job as a whole is bounded by [WithJobDeadline]. Zero
// means no bound but the context's. The default is [DefaultAttemptTimeout].
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
		if s.perCall {
			return clientOnly("WithInsecureHTTP")
		}
		s.allowHTTP = true
		return nil
	}
}

// WithModelsTTL sets how long the router's model list ([Client.RouterModels]) is
// kept before it is fetched again; the default is [DefaultModelsTTL].
func WithModelsTTL(d time.Duration) Option {
	return func(s *settings) error {
		if s.perCall {
			return clientOnly("WithModelsTTL")
		}
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
		if s.perCall {
			return clientOnly("WithProviderOrder")
		}
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
		if s.perCall {
			return clientOnly("WithProviderWalk")
		}
		s.walkAuto = true
		return nil
	}
}

// WithStreamRecovery makes a stream that fails after content arrived send
// the same request again (never with the partial answer as a prefill)
// through the walk, instead of ending with [ErrStream]. A cut connection, a
// malformed event, an error event, or an end without a finish reason retries
// the same candidate up to the retry policy's MaxRetries times, then moves
// on; a stream silent past [WithStreamIdleTimeout] moves to the next
// candidate at once. Each restart is an [Attempt], and a candidate given up
// on cools down as after any failure.
//
// While the new attempt reproduces the text already delivered (content and
// reasoning), its chunks are withheld, and only what goes past that point is
// delivered: the consumer sees one unbroken answer. When it diverges (or
// carries tool calls after tool-call pieces were delivered), its first
// delivered chunk has [ChatChunk.Restarted] set and carries the new answer
// from its start (after tool-call pieces, it restarts at its first tool
// call or its end: tool-call arguments are never joined across attempts);
// [ChatAccumulator] and [ChatStream.Response] then drop the
// abandoned text. It is opt-in because a consumer that prints chunks as they
// come must honour Restarted (clear what it showed) or it would show mixed
// text. When every candidate fails, the stream ends with the walk's error.
func WithStreamRecovery() Option {
	return func(s *settings) error {
		s.recovery = true
		return nil
	}
}

// WithFirstTokenTimeout bounds each HTTP try of a stream, from sending to
// the first chunk with content. When it passes, the attempt is an
// [ErrProvider] whose [Attempt.TimedOut] is [TimeoutFirstToken], and the walk
// goes to the next candidate without retrying the same one: a provider slow
// to start stays slow. Zero, the default, means no such limit (the attempt
// timeout still bounds it). It does not apply to [Client.Chat], which the
// attempt timeout bounds.
func WithFirstTokenTimeout(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return fmt.Errorf("inference: WithFirstTokenTimeout: negative duration %s", d)
		}
		s.firstToken = d
		return nil
	}
}

// DefaultStreamIdleTimeout is the longest silence a stream is allowed
// without [WithStreamIdleTimeout].
const DefaultStreamIdleTimeout = 60 * time.Second

// WithStreamIdleTimeout bounds the silence between two events once a stream
// is open: any bytes count as life, SSE comments (keep-alives) included.
// Only time spent waiting for the provider inside Next counts, not the
// consumer's own pauses between two Next calls.
// When it passes, a stream that had delivered content fails with
// [ErrStream] (or, with [WithStreamRecovery], moves to the next candidate),
// and one that had not is an [ErrProvider] attempt; either way
// [Attempt.TimedOut] is [TimeoutStreamIdle]. The default is
// [DefaultStreamIdleTimeout], so that a stalled stream always ends; zero
// turns the limit off.
func WithStreamIdleTimeout(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return fmt.Errorf("inference: WithStreamIdleTimeout: negative duration %s", d)
		}
		s.streamIdle = d
		return nil
	}
}

// WithHedge sends the request to the next candidate of the walk as well
// when the current one has produced no content after delay (for Chat, no
// answer; for a stream, no first chunk with content), and takes whichever
// answers first; the other is cancelled at once, its body closed. It hedges
// at most once per call (a call of [Client.Embed] sent in batches, at
// most once per batch: each is a request of its own), to the next
// candidate of the walk, and never to the provider the first names: the
// same model only on another named provider, another model on any
// provider but the first's (when the next candidate does not qualify, the
// call does not hedge). The cancelled attempt is recorded with
// [Attempt.Lost] and is not a failure: it cools nothing. An attempt that
// failed before the other answered is a failure as usual, handled by the
// fallback policy as without a hedge: a refused token is replaced on the
// same candidate while the other attempt runs on, and a failure that
// stops the walk (such as [ErrPaymentRequired]) lets the other finish,
// then is the call's error. The delay counts only while an HTTP try waits
// for its answer, not while a 429 or a 500 waits to be retried. Both
// attempts carry the call's token, bill-to and headers.
//
// With [WithStreamRecovery], a stream that goes silent for delay after its
// content began is hedged likewise (when the call has not hedged yet): the
// restart recovery would make after the idle limit is sent to the next
// candidate at once, without giving up the first; whichever speaks first
// is read on, the hedge through recovery's replay (seamless when it
// reproduces the delivered text, Restarted otherwise).
//
// A hedge, a stall's too, costs a second request for the hedged fraction
// of calls, and takes from [WithHedgeBudget]: a provider may bill its
// input tokens (and what it generated before it was cancelled). Choose
// delay near the p95 of the first candidate's time to first token, so
// that about one call in twenty hedges, and bound the fraction with
// [WithHedgeBudget]. Zero, the default, turns hedging off. It may be given
// per call or to the client.
func WithHedge(delay time.Duration) Option {
	return func(s *settings) error {
		if delay < 0 {
			return fmt.Errorf("inference: WithHedge: negative delay %s", delay)
		}
		s.hedge = delay
		return nil
	}
}

// WithHedgeBudget caps the hedges of the client's calls ([WithHedge]) at
// percent of its calls over about the last minute, so that a slow primary
// cannot double a fleet's traffic: past the cap, a call waits for its
// candidate as without hedging. A call counts once, however many
// candidates it walks or batches it sends; every hedge, a stall's or a
// batch's, takes from the cap. The default is no cap.
func WithHedgeBudget(percent float64) Option {
	return func(s *settings) error {
		if s.perCall {
			return clientOnly("WithHedgeBudget")
		}
		if percent <= 0 || percent > 100 {
			return fmt.Errorf("inference: WithHedgeBudget: %v is not a percentage above 0 and at most 100", percent)
		}
		s.hedgeBudget = percent
		return nil
	}
}

// WithUserTokenSource tries ts first, before the client's own tokens: a
// call made for a logged-in user passes that user's OAuth token
// (OAuthToken), and falls back to the client's (the app's HF_TOKEN, say)
// when the router refuses it. Calls with different users' sources share the
// client's connection pool and candidate cooldowns, but a source given per
// call is never cooled down in the client's memory, so that one user's
// refused token never sends another user's calls elsewhere. It may be given
// per call or to the client.
func WithUserTokenSource(ts TokenSource) Option {
	return func(s *settings) error {
		if ts == nil {
			return errors.New("inference: WithUserTokenSource: nil TokenSource")
		}
		if err := staticError(ts); err != nil {
			return fmt.Errorf("%w (WithUserTokenSource)", err)
		}
		s.userTokens = ts
		return nil
	}
}

// staticError is why a lone StaticToken can never yield a token; nil for
// any other source, whose tokens are known only when asked (a chain skips
// its invalid members by design).
func staticError(ts TokenSource) error {
	if st, ok := ts.(staticSource); ok {
		return st.err
	}
	return nil
}

// WithHeader adds a header to every request of a call (chat, embeddings,
// responses, images and audio, a job's polls), retries and fallbacks
// included, such as a tracing id a proxy in front of the router reads. It
// may be given per call (added to the client's) or to the client. The
// headers the client sets itself are refused: Authorization (use a token
// option), X-HF-Bill-To (use [WithBillTo]), Content-Type, Content-Length,
// Accept, Host and User-Agent; so are names and values with control
// characters.
func WithHeader(name, value string) Option {
	return func(s *settings) error {
		canonical := http.CanonicalHeaderKey(strings.TrimSpace(name))
		switch {
		case canonical == "" || strings.ContainsFunc(canonical, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == ':' }):
			return fmt.Errorf("inference: WithHeader: %q is not a header name", cleanText(name, 64))
		case strings.ContainsFunc(value, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }):
			return fmt.Errorf("inference: WithHeader: the value of %s holds a control character", canonical)
		}
		switch canonical {
		case "Authorization", "X-Hf-Bill-To", "Content-Type", "Content-Length", "Accept", "Host", "User-Agent":
			return fmt.Errorf("inference: WithHeader: %s is set by the client (see the godoc of WithHeader)", canonical)
		}
		// A copy, so that a call's headers never reach the client's. Each
		// value list is capped at its length: appending to it (Add, here or
		// in a middleware) then copies it instead of writing into an array
		// the client and concurrent calls share.
		h := make(http.Header, len(s.headers)+1)
		for k, v := range s.headers {
			h[k] = v[:len(v):len(v)]
		}
		h.Add(canonical, value)
		s.headers = h
		return nil
	}
}

// WithBillTo bills the calls to an organization instead of the token's
// user, with the X-HF-Bill-To header the router reads, on every attempt,
// retries and fallbacks included. The token's user must be a member of the
// organization, and the organization must allow it; when it does not, the
// failure's text names the organization and what to change. org is an
// organization's name on the Hub (or a resource group id): letters,
// digits, '-', '_' and '.', at most 96 characters. It may be given per call
// or to the client; "" per call bills the token's user again.
func WithBillTo(org string) Option {
	return func(s *settings) error {
		if err := checkOrg(org); err != nil && org != "" {
			return fmt.Errorf("inference: WithBillTo: %w", err)
		}
		s.billTo = org
		return nil
	}
}

// checkOrg refuses what cannot be an organization's name, before it is
// sent in a header.
func checkOrg(org string) error {
	if org == "" || len(org) > 96 {
		return fmt.Errorf("%q is not an organization name (1 to 96 characters)", cleanText(org, 100))
	}
	for i := 0; i < len(org); i++ {
		c := org[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%q is not an organization name: it may hold only letters, digits, '-', '_' and '.'", cleanText(org, 100))
		}
	}
	return nil
}

// WithCooldownStore shares the candidates' cooldowns through store, such as
// the Redis store of github.com/hfkit/inference/redisstore, so that a fleet
// of replicas skips a failing candidate together. Token sources' cooldowns
// stay in the process. A store that fails or is slow never fails a call:
// the client goes on with its own memory and logs the outage once.
func WithCooldownStore(store CooldownStore) Option {
	return func(s *settings) error {
		if s.perCall {
			return clientOnly("WithCooldownStore")
		}
		if store == nil {
			return errors.New("inference: WithCooldownStore: nil store")
		}
		s.cooldownStore = store
		return nil
	}
}
