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
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/hfkit/inference/internal/redact"
)

// maxChatBody bounds a success body; a chat completion is far smaller.
const maxChatBody = 32 << 20

// userAgent identifies the library to the router.
const userAgent = "hfkit-inference-go/0.1"

// Client calls the Hugging Face Inference Providers router. It is safe for
// concurrent use, and meant to be created once and shared: it keeps a pool
// of connections. Its zero value is not usable; call [NewClient].
type Client struct {
	base      *url.URL
	hub       *url.URL
	chatURL   string
	tokens    TokenSource
	logger    *slog.Logger
	retry     RetryPolicy
	fallbacks []Candidate
	policy    FallbackPolicy
	cooldown  time.Duration
	cool      cooldownStore
	timeout   time.Duration
	http      *retryablehttp.Client
	// oneSource is tokens as a walk's source list, when it is not a chain,
	// built once instead of on every call.
	oneSource []indexedSource
	models    *modelCache
	order     providerOrder
	walkAuto  bool
	// transport is the innermost RoundTripper, kept for
	// CloseIdleConnections: the middleware chain above it hides its
	// methods.
	transport http.RoundTripper
}

// NewClient returns a client configured by opts. Without options it calls
// the public router with the token [EnvToken] finds (HF_TOKEN, then the
// file `hf auth login` writes), retries twice, and logs nothing. A missing
// token is not an error here: calls return [ErrNoToken] without sending
// anything. A malformed token given to [WithToken] is [ErrInvalidToken].
func NewClient(opts ...Option) (*Client, error) {
	s := settings{
		baseURL:        DefaultBaseURL,
		retry:          RetryPolicy{MaxRetries: DefaultMaxRetries},
		modelsTTL:      DefaultModelsTTL,
		order:          providerOrder{policy: OrderPreferred},
		cooldown:       DefaultCooldown,
		policy:         DefaultFallbackPolicy,
		attemptTimeout: DefaultAttemptTimeout,
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
	hubRaw := s.hubURL
	if hubRaw == "" {
		hubRaw = defaultHubURL
		if env := strings.TrimSpace(os.Getenv("HF_ENDPOINT")); env != "" {
			hubRaw = env
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

	tokens := s.tokenSource
	if tokens == nil {
		tokens = EnvToken()
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
	hc.Transport = logMiddleware(logger)(rt)

	retry := s.retry.withDefaults()
	return &Client{
		base:      base,
		hub:       hub,
		chatURL:   base.String() + "/v1/chat/completions",
		tokens:    tokens,
		logger:    logger,
		retry:     retry,
		fallbacks: s.fallbacks,
		policy:    s.policy,
		cooldown:  s.cooldown,
		cool:      newMemoryCooldown(),
		timeout:   s.attemptTimeout,
		http:      newRetryClient(hc, retry),
		transport: transport,
		oneSource: []indexedSource{{i: 0, src: tokens}},
		models:    newModelCache(s.modelsTTL),
		order:     s.order,
		walkAuto:  s.walkAuto,
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
	return fmt.Sprintf("inference.Client{router: %s, hub: %s, tokens: %s}", c.base, c.hub, sourceName(c.tokens))
}

// Format prints String for every verb, so that no format, %#v included,
// walks into the client's fields.
func (c *Client) Format(f fmt.State, verb rune) { _, _ = io.WriteString(f, c.String()) }

// Chat sends a chat completion request through the router and returns the
// answer. The model is sent as "model" when Provider is "" or "auto", else
// as "model:provider".
//
// When the request's model fails in a way another could fix (gated, not
// served, provider down, rate limited), Chat tries the request's Fallbacks,
// else the client's [WithFallback] list, as [DefaultFallbackPolicy] (or
// [WithFallbackPolicy]) directs; when a token of a [ChainTokens] is refused,
// it tries the next source's token. The answer's Attempts list every
// attempt. When none serves, the error is a [*FallbackError] listing them.
//
// Use [errors.Is] with the Err kinds and [errors.As] with [*APIError] on
// the error, never its concrete type. A cancelled or expired ctx ends the
// call at once, retry waits included, and the error then matches
// context.Canceled or context.DeadlineExceeded.
func (c *Client) Chat(ctx context.Context, req ChatRequest) (*ChatResponse, error) {
	if err := c.usable(ctx); err != nil {
		return nil, err
	}
	if err := req.validate(); err != nil {
		return nil, err
	}
	resp, tr, err := walk(ctx, c, &req, func(ctx context.Context, cand Candidate, tok Token) (*ChatResponse, Attempt, error) {
		return c.attempt(ctx, &req, cand, tok)
	})
	if err != nil {
		return nil, err
	}
	resp.Attempts, resp.Skipped = tr.attempts, tr.skipped
	return resp, nil
}

// usable reports why a call cannot start: a nil context, or a client not
// made by NewClient. Both are ErrInvalidRequest: nothing is sent.
func (c *Client) usable(ctx context.Context) error {
	switch {
	case c == nil:
		return fmt.Errorf("%w: nil *Client: make one with NewClient", ErrInvalidRequest)
	case c.http == nil:
		return fmt.Errorf("%w: the Client was not made by NewClient (its zero value is not usable)", ErrInvalidRequest)
	case ctx == nil:
		return fmt.Errorf("%w: nil Context: pass context.Background() or the request's context", ErrInvalidRequest)
	}
	return nil
}

// attempt sends the request to one candidate, with retries, and reads the
// answer.
func (c *Client) attempt(ctx context.Context, req *ChatRequest, cand Candidate, tok Token) (*ChatResponse, Attempt, error) {
	start := time.Now()
	att := Attempt{Candidate: cand, TokenSource: tok.Source}
	// The attempt's own deadline turns a provider that hangs into a failed
	// attempt; its cause tells it apart from the caller's deadline.
	actx := ctx
	// A caller's deadline that comes first makes the attempt's own timer
	// redundant; skipping it saves a timer and a context per call.
	if dl, ok := ctx.Deadline(); c.timeout > 0 && (!ok || time.Until(dl) > c.timeout) {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeoutCause(ctx, c.timeout, attemptTimeoutError{c.timeout})
		defer cancel()
	}
	var out *ChatResponse
	resp, err := c.exchange(ctx, actx, req, cand, tok, false, &att)
	if err == nil {
		out, err = c.decodeChat(ctx, actx, resp, cand, tok)
		resp.Body.Close()
		if out != nil {
			out.RequestID = att.RequestID
		}
	}
	att.Err = err
	att.Duration = time.Since(start)
	return out, att, err
}

// exchange sends the request for one candidate through the retry loop and
// returns a 2xx response, whose body the caller closes, or the classified
// failure. ctx is the caller's context, actx the attempt's (ctx with the
// attempt timeout).
func (c *Client) exchange(ctx, actx context.Context, req *ChatRequest, cand Candidate, tok Token, stream bool, att *Attempt) (*http.Response, error) {
	body, err := req.encode(cand, stream)
	if err != nil {
		return nil, err
	}
	reqCtx, st := withAttempt(actx, tok, cand)
	hreq, err := retryablehttp.NewRequestWithContext(reqCtx, http.MethodPost, c.chatURL, body)
	if err != nil {
		return nil, fmt.Errorf("inference: building the request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if stream {
		hreq.Header.Set("Accept", "text/event-stream")
	} else {
		hreq.Header.Set("Accept", "application/json")
	}
	hreq.Header.Set("User-Agent", userAgent)

	resp, err := c.http.Do(hreq)
	att.Retries = max(st.tries-1, 0)
	if err != nil {
		return nil, c.noAnswer(ctx, actx, cand, tok, err)
	}
	att.StatusCode = resp.StatusCode
	att.RequestID = cleanText(redact.String(requestID(resp.Header), tok.value()), 256)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// The rest of a long body is dropped with the connection.
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			// The caller's deadline ended the read: theirs is the answer.
			return nil, fmt.Errorf("inference: chat with %s: %w", cand, ctxErr)
		}
		return nil, c.classify(resp, data, cand, tok)
	}
	return resp, nil
}

// attemptTimeoutError is the cause of an attempt that ran out of its own
// time (WithAttemptTimeout), as opposed to the caller's context.
type attemptTimeoutError struct{ d time.Duration }

func (e attemptTimeoutError) Error() string {
	return fmt.Sprintf("no answer within the attempt timeout of %s", e.d)
}

// noAnswer is the error of an attempt that got no usable answer: the
// caller's context error when it ended, else a provider failure whose cause
// is the transport error or the attempt's timeout.
func (c *Client) noAnswer(ctx, actx context.Context, cand Candidate, tok Token, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("inference: chat with %s: %w", cand, ctxErr)
	}
	if actx.Err() != nil {
		err = context.Cause(actx)
	}
	return c.transportError(cand, tok, err)
}

// classify wraps the classifier with what the client knows.
func (c *Client) classify(resp *http.Response, body []byte, cand Candidate, tok Token) *APIError {
	return classify(failure{
		status:  resp.StatusCode,
		header:  resp.Header,
		body:    body,
		asked:   cand,
		hubURL:  c.hub.String(),
		secrets: []string{tok.value()},
	})
}

// transportError is an attempt that got no answer: refused, reset, timed
// out. It is a provider failure, with the transport error as its cause.
func (c *Client) transportError(cand Candidate, tok Token, err error) *APIError {
	provider := cand.Provider
	if provider == ProviderAuto {
		provider = ""
	}
	cause := redactedCause(err, tok.value())
	return &APIError{
		Kind:     ErrProvider,
		Message:  cleanText(cause.Error(), maxMessageLen),
		Model:    cand.Model,
		Provider: provider,
		Cause:    cause,
		hubURL:   c.hub.String(),
	}
}

// redactedCause is a transport error whose text holds no token: a
// redirect's Location, in a *url.Error, may echo one. A *url.Error keeps
// its type with its URL made safe; anything else whose text would leak is
// wrapped so that its text is redacted and errors.As still reaches it.
func redactedCause(err error, secret string) error {
	if ue, ok := err.(*url.Error); ok {
		safe := *ue
		safe.URL = redact.String(withoutUserInfo(ue.URL), secret)
		err = &safe
	}
	if text := err.Error(); redact.String(text, secret) != text {
		return &redactedError{err: err, text: redact.String(text, secret)}
	}
	return err
}

// redactedError is an error shown with its tokens removed.
type redactedError struct {
	err  error
	text string
}

func (e *redactedError) Error() string { return e.text }
func (e *redactedError) Unwrap() error { return e.err }

// readCapped reads at most limit+1 bytes of r, so that the caller can tell
// an over-long body. A known size (a Content-Length, else -1) sizes the
// buffer at once; an unknown one doubles from 64 KiB, so that what is
// allocated stays under twice what is read.
func readCapped(r io.Reader, limit int, sizeHint int64) ([]byte, error) {
	size := 64 << 10
	if sizeHint > 0 && sizeHint <= int64(limit) {
		size = int(sizeHint) + 1 // +1 to see an over-long body without growing
	}
	buf := make([]byte, 0, min(size, limit+1))
	lr := io.LimitReader(r, int64(limit)+1)
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				return buf, nil // over the limit: the caller needs no more
			}
			next := 2 * cap(buf)
			if next >= limit {
				next = limit + 1 // the last step includes the byte that shows an over-long body
			}
			grown := make([]byte, len(buf), next)
			copy(grown, buf)
			buf = grown
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// decodeChat reads a 2xx answer. A body that is not a chat completion (not
// JSON, no choices, an error object, a web page) is an ErrProvider failure,
// not an empty answer.
func (c *Client) decodeChat(ctx, actx context.Context, resp *http.Response, cand Candidate, tok Token) (*ChatResponse, error) {
	var data []byte
	notCompletion := func(why string) error {
		// Only the start of the body is worth reading for a message.
		e := c.classify(resp, data[:min(len(data), maxErrorBody)], cand, tok)
		e.Kind = ErrProvider
		if e.Message == "" {
			e.Message = why
		} else {
			e.Message = why + ": " + e.Message
		}
		return e
	}
	const tooLarge = "the answer is larger than 32 MiB"
	if resp.ContentLength > maxChatBody {
		return nil, notCompletion(tooLarge)
	}
	data, err := readCapped(resp.Body, maxChatBody, resp.ContentLength)
	if err != nil {
		return nil, c.noAnswer(ctx, actx, cand, tok, fmt.Errorf("reading the answer: %w", err))
	}
	if len(data) > maxChatBody {
		return nil, notCompletion(tooLarge)
	}
	if isHTML(resp.Header, data) {
		return nil, notCompletion("the answer is a web page, not a chat completion")
	}
	w, err := decodeCompletion(data, cand.Model)
	if err != nil {
		return nil, notCompletion("the answer is not a JSON chat completion")
	}
	if len(w.Choices) == 0 {
		if isJSONError(w.Error) {
			return nil, notCompletion("the answer is an error, not a chat completion")
		}
		return nil, notCompletion("the answer has no choices")
	}
	out := w.ChatResponse
	if p := resp.Header.Get("X-Inference-Provider"); p != "" {
		out.Provider = cleanText(redact.String(p, tok.value()), 64)
	}
	return &out, nil
}
