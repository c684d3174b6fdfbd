package inference

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hfkit/inference/internal/redact"
	"golang.org/x/oauth2"
)

// callPrefix starts the Source of a token given for one call.
const callPrefix = "call's "

// tokenSources is a call's sources in the order it tries them: the
// call's own (WithUserTokenSource) first, then the client's, those of the
// client's cooling after a refusal last.
func (c *Client) tokenSources(cfg *callConfig, now time.Time) []indexedSource {
	if cfg.sources != nil {
		return cfg.sources
	}
	var list, cooling []indexedSource
	for _, s := range members(cfg.userTokens) {
		list = append(list, indexedSource{i: -1, src: s})
	}
	for i, s := range members(cfg.tokenSource) {
		is := indexedSource{i: i, src: s, own: true}
		if c.cooldown > 0 && !c.cool.Empty() && c.sourceCooling(sourceKey(i, s), cfg.billTo, now) {
			cooling = append(cooling, is)
			continue
		}
		list = append(list, is)
	}
	return append(list, cooling...)
}

// members is a chain's sources, or the one source, or none.
func members(ts TokenSource) []TokenSource {
	switch ts := ts.(type) {
	case nil:
		return nil
	case chainSource:
		return ts.sources
	}
	return []TokenSource{ts}
}

// indexedSource is a source and its place in the client's chain; own marks
// the client's sources, the only ones its cooldown memory keeps.
type indexedSource struct {
	i   int
	src TokenSource
	own bool
}

// tokenCursor walks token sources in order: it hands out the next
// source's valid token, remembering why it skipped the others. It is the
// one implementation of a chain: ChainTokens' Token and a client's walk
// (which also moves on when the router refuses a token) both use it.
type tokenCursor struct {
	sources []indexedSource
	// chained says the sources are a ChainTokens' members, whose failure
	// lists every reason; a lone source's failure is its own error.
	chained bool
	// logger, when not nil, hears of each skipped source.
	logger  *slog.Logger
	next    int
	current indexedSource
	reasons []string
	invalid bool
	lastErr error
	// userInvalid is the first invalid token among the call's own
	// sources; userServed, that one of them gave a valid token. A walk
	// never moves from an invalid call token to the client's (fatal).
	userInvalid error
	userServed  bool
	fatal       error
}

// newTokenCursor walks a call's sources (see tokenSources).
func (c *Client) newTokenCursor(cfg *callConfig, now time.Time) tokenCursor {
	_, chained := cfg.tokenSource.(chainSource)
	sources := c.tokenSources(cfg, now)
	return tokenCursor{sources: sources, chained: chained || len(sources) > 1 || cfg.tokenSource == nil, logger: c.logger}
}

// advance moves to the next source with a valid token.
func (tc *tokenCursor) advance(ctx context.Context) (Token, bool) {
	for tc.next < len(tc.sources) {
		s := tc.sources[tc.next]
		tc.next++
		tok, err := sourceToken(ctx, s.src)
		if err == nil && s.own && tc.userInvalid != nil && !tc.userServed {
			// A token given for the call that cannot be a token is the
			// caller's bug: sending the client's own token in its place
			// would serve, and bill, the call as someone else.
			tc.fatal = fmt.Errorf("%w; it was given for this call (WithUserTokenSource or a per-call token option), so the client's own token was not sent in its place", tc.userInvalid)
			return Token{}, false
		}
		if err == nil {
			tc.current = s
			tc.userServed = tc.userServed || !s.own
			if s.i < 0 {
				// A token given for the call (a user's, or a per-call
				// token option) is named as such in attempts and logs,
				// apart from the client's own of the same kind.
				tok.Source = callPrefix + tok.Source
			}
			return tok, true
		}
		if ctx.Err() != nil {
			return Token{}, false
		}
		if !s.own && s.i < 0 && errors.Is(err, ErrInvalidToken) && tc.userInvalid == nil {
			tc.userInvalid = err
		}
		tc.lastErr = err
		tc.invalid = tc.invalid || errors.Is(err, ErrInvalidToken)
		tc.reasons = append(tc.reasons, sourceName(s.src)+": "+err.Error())
		if tc.logger != nil && len(tc.sources) > 1 {
			tc.logger.LogAttrs(ctx, slog.LevelWarn, "inference: token source skipped",
				slog.String("source", sourceName(s.src)), slog.String("reason", err.Error()))
		}
	}
	return Token{}, false
}

// failure is why no token could be had: the context's end, a lone
// source's own error, or the chain's summary, of exactly one kind.
func (tc *tokenCursor) failure(ctx context.Context) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("inference: getting a token: %w", ctxErr)
	}
	if tc.fatal != nil {
		return tc.fatal
	}
	if !tc.chained && tc.lastErr != nil {
		return tc.lastErr
	}
	kind := ErrNoToken
	if tc.invalid {
		kind = ErrInvalidToken
	}
	if len(tc.reasons) == 0 {
		return fmt.Errorf("%w (the token chain is empty)", kind)
	}
	return fmt.Errorf("%w; sources tried: %s", kind, strings.Join(tc.reasons, "; "))
}

// firstToken is the token a Hub call uses: the first valid one of the
// client's sources.
func (c *Client) firstToken(ctx context.Context) (Token, error) {
	tokens := c.newTokenCursor(&c.call, time.Now())
	tok, ok := tokens.advance(ctx)
	if !ok {
		return Token{}, tokens.failure(ctx)
	}
	return tok, nil
}

// Token is a Hugging Face token and where it came from. Its value never
// leaves the package in printable form: every printed form (%v, %+v, %#v, %s,
// slog, JSON) shows only its source and a short prefix such as "hf_Ab…".
type Token struct {
	// reveal returns the token. It is a function, not a string or a
	// pointer, because fmt prints unexported fields by reflection without
	// calling their methods, and follows pointers for some verbs; a function
	// prints as an address whatever the verb.
	reveal func() (value string, authorization []string)
	// Source says where the token came from: "static", "HF_TOKEN",
	// "HUGGING_FACE_HUB_TOKEN", "token file /path", "oauth".
	Source string
	// OAuth reports whether it is an OAuth access token (from an
	// oauth2.TokenSource, or shaped hf_oauth_...).
	OAuth bool
	// Expiry is when an OAuth token expires; zero when unknown.
	Expiry time.Time
}

// NewToken checks and normalises a token's text and labels it with its
// source, for use by a custom [TokenSource]. Surrounding white space and a
// leading "Bearer " are removed. A text that cannot be a token (empty,
// "None", "null", inner white space, a printed object such as
// "<gradio.oauth.OAuthToken object at 0x...>") is [ErrInvalidToken]; the
// error never contains the text.
func NewToken(value, source string) (Token, error) {
	v, err := normalizeToken(value)
	// Built once, so that sending the token costs no allocation per
	// request; the transport only reads header values.
	authorization := []string{"Bearer " + v}
	if err != nil {
		if source != "" {
			return Token{}, fmt.Errorf("%w from %s: %s", ErrInvalidToken, source, err)
		}
		return Token{}, fmt.Errorf("%w: %s", ErrInvalidToken, err)
	}
	return Token{
		reveal: func() (string, []string) { return v, authorization },
		Source: source,
		OAuth:  strings.HasPrefix(v, "hf_oauth_"),
	}, nil
}

// value is the raw token, for the Authorization header only.
func (t Token) value() string {
	if t.reveal == nil {
		return ""
	}
	v, _ := t.reveal()
	return v
}

// authorization is the Authorization header's values that carry the token.
func (t Token) authorization() []string {
	if t.reveal == nil {
		return nil
	}
	_, h := t.reveal()
	return h
}

// IsZero reports whether t holds no token.
func (t Token) IsZero() bool { return t.value() == "" }

// Redacted returns the token's short, harmless prefix, such as "hf_Ab…",
// fit for logs and diagnostics.
func (t Token) Redacted() string {
	if t.IsZero() {
		return ""
	}
	return redact.Prefix(t.value())
}

// String shows where the token came from and its redacted prefix, never the
// token.
func (t Token) String() string {
	if t.IsZero() {
		return "Token(none)"
	}
	kind := ""
	if t.OAuth && t.Source != "oauth" {
		kind = " oauth"
	}
	return "Token(" + t.Source + kind + " " + t.Redacted() + ")"
}

// GoString is like String, so that %#v does not show the token either.
func (t Token) GoString() string { return t.String() }

// Format prints String for every verb, so no format reveals the token.
func (t Token) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(t.String())) }

// LogValue makes slog show the source, kind and prefix, never the token.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("source", t.Source),
		slog.Bool("oauth", t.OAuth),
		slog.String("prefix", t.Redacted()),
	)
}

// MarshalJSON encodes the redacted form, so a Token inside a logged or
// serialised struct does not leak.
func (t Token) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf("%q", t.String())), nil }

// normalizeToken trims a token's text and rejects what cannot be a token.
// Its errors describe the problem without quoting the text.
func normalizeToken(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if len(s) >= 7 && strings.EqualFold(s[:7], "bearer ") {
		s = strings.TrimSpace(s[7:])
	} else if strings.EqualFold(s, "bearer") {
		s = ""
	}
	if s == "" {
		return "", errors.New("it is empty")
	}
	switch strings.ToLower(s) {
	case "none", "null", "nil", "undefined", "false", "true", "<none>":
		return "", fmt.Errorf("it is the word %q, as printed for a missing value", s)
	}
	if strings.Contains(s, " object at 0x") || strings.HasPrefix(s, "<") || strings.HasPrefix(s, "&") ||
		(strings.Contains(s, "(") && strings.HasSuffix(s, ")")) || strings.HasPrefix(s, "{") {
		return "", errors.New("it looks like a printed object, not the token string: pass the token's text (in Gradio, oauth_token.token)")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return "", errors.New("it contains white space")
		case !isTokenChar(c) && !(c == '=' && strings.Trim(s[i:], "=") == ""):
			return "", fmt.Errorf("it contains a character (byte %d) that a token cannot hold", i)
		}
	}
	return s, nil
}

// isTokenChar reports whether c may appear in an RFC 6750 bearer token
// (b64token), which covers Hugging Face user, OAuth and organisation tokens.
func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
}

// TokenSource yields the token for a request. Implementations must be safe
// for concurrent use. Token returns [ErrNoToken] (wrapped) when the source
// has no token, and [ErrInvalidToken] when what it has cannot be a token.
type TokenSource interface {
	Token(ctx context.Context) (Token, error)
}

// StaticToken is a source that always yields the same token. The text is
// checked and normalised as by [NewToken]; a bad one makes every call fail
// with [ErrInvalidToken], and [WithToken] reports it from NewClient.
func StaticToken(token string) TokenSource {
	t, err := NewToken(token, "static")
	return staticSource{tok: t, err: err}
}

type staticSource struct {
	tok Token
	err error
}

func (s staticSource) Token(ctx context.Context) (Token, error) {
	if err := contextDone(ctx); err != nil {
		return Token{}, err
	}
	return s.tok, s.err
}

func (s staticSource) String() string { return "StaticToken" }

// EnvToken is the source huggingface_hub uses, read afresh on each call: the
// environment variable HF_TOKEN, then HUGGING_FACE_HUB_TOKEN, then the token
// file at HF_TOKEN_PATH, else $HF_HOME/token, else
// $XDG_CACHE_HOME/huggingface/token, else ~/.cache/huggingface/token (the
// file `hf auth login` writes). Values are trimmed; an empty one counts as
// unset. It is the default source of a client given no token option.
//
// A browser login that `hf auth login` (or [DeviceLogin] with Save) stored
// beside the token file is renewed as huggingface_hub renews it: when less
// than a day remains, once at a time across goroutines and processes, the
// files rewritten in huggingface_hub's format so that both keep sharing
// the login. If renewing fails, the current token is used while it is
// valid, then the source fails with [ErrUnauthorized], an [*APIError]
// whose Fix says to run `hf auth login` again. The Hub that renews it is
// the Client's (WithHubURL, else HF_ENDPOINT); [EnvTokenWith] sets it
// outside a Client.
func EnvToken() TokenSource { return EnvTokenWith(EnvTokenOptions{}) }

type envSource struct{ login *loginRefresher }

func (*envSource) String() string { return "EnvToken" }

func (s *envSource) Token(ctx context.Context) (Token, error) {
	if err := contextDone(ctx); err != nil {
		return Token{}, err
	}
	for _, name := range []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"} {
		if v := strings.TrimSpace(os.Getenv(name)); v != "" {
			return NewToken(v, name)
		}
	}
	path := tokenFilePath()
	if path == "" {
		return Token{}, fmt.Errorf("%w (HF_TOKEN and HUGGING_FACE_HUB_TOKEN are unset and no token file path could be found)", ErrNoToken)
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Token{}, fmt.Errorf("%w (HF_TOKEN and HUGGING_FACE_HUB_TOKEN are unset and there is no token file at %s)", ErrNoToken, path)
	case err != nil:
		return Token{}, fmt.Errorf("%w (the token file %s cannot be read: %v)", ErrNoToken, path, errors.Unwrap(err))
	}
	v := strings.TrimSpace(string(data))
	if v == "" {
		return Token{}, fmt.Errorf("%w (HF_TOKEN and HUGGING_FACE_HUB_TOKEN are unset and the token file %s is empty)", ErrNoToken, path)
	}
	return s.login.fromFile(ctx, tokenFiles{tokenPath: path}, v, "token file "+path)
}

// tokenFilePath is huggingface_hub's token path: HF_TOKEN_PATH, else
// $HF_HOME/token, where HF_HOME defaults to $XDG_CACHE_HOME/huggingface, else
// ~/.cache/huggingface. "~" and $VARS in the variables are expanded as Python's
// expanduser and expandvars do.
func tokenFilePath() string {
	if p := strings.TrimSpace(os.Getenv("HF_TOKEN_PATH")); p != "" {
		return expandPath(p)
	}
	if h := strings.TrimSpace(os.Getenv("HF_HOME")); h != "" {
		return filepath.Join(expandPath(h), "token")
	}
	if x := strings.TrimSpace(os.Getenv("XDG_CACHE_HOME")); x != "" {
		return filepath.Join(expandPath(x), "huggingface", "token")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ""
	}
	return filepath.Join(home, ".cache", "huggingface", "token")
}

func expandPath(p string) string {
	p = os.ExpandEnv(p)
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

// OAuthToken adapts an oauth2.TokenSource, such as the one a Hugging Face
// OAuth login gives (oauth2.Config.TokenSource), so that refreshing is
// oauth2's job. Wrap a source that refreshes over the network in
// oauth2.ReuseTokenSource so it is not asked on every request. Because
// oauth2.TokenSource takes no context, a refresh in progress is not cut short
// by cancelling ctx; a cancelled ctx stops the call before it asks.
func OAuthToken(ts oauth2.TokenSource) TokenSource { return oauthSource{ts: ts} }

type oauthSource struct{ ts oauth2.TokenSource }

func (oauthSource) String() string { return "OAuthToken" }

func (s oauthSource) Token(ctx context.Context) (Token, error) {
	if err := contextDone(ctx); err != nil {
		return Token{}, err
	}
	if s.ts == nil {
		return Token{}, fmt.Errorf("%w (OAuthToken was given a nil oauth2.TokenSource)", ErrNoToken)
	}
	ot, err := s.ts.Token()
	if err != nil {
		return Token{}, fmt.Errorf("%w (the OAuth token could not be obtained or refreshed%s; log the user in again)", ErrNoToken, oauthErrorDetail(err))
	}
	if ot == nil {
		return Token{}, fmt.Errorf("%w (the oauth2.TokenSource returned no token)", ErrNoToken)
	}
	t, err := NewToken(ot.AccessToken, "oauth")
	if err != nil {
		return Token{}, err
	}
	t.OAuth = true
	t.Expiry = ot.Expiry
	return t, nil
}

// oauthErrorDetail names an OAuth failure by its code and description only:
// the raw response of a token endpoint is not shown.
func oauthErrorDetail(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		d := ""
		if re.Response != nil {
			d = fmt.Sprintf(": HTTP %d", re.Response.StatusCode)
		}
		if re.ErrorCode != "" {
			d += " " + cleanText(redact.String(re.ErrorCode), 64)
		}
		if re.ErrorDescription != "" {
			d += ": " + cleanText(redact.String(re.ErrorDescription), 256)
		}
		return d
	}
	return ": " + cleanText(redact.String(err.Error()), 256)
}

// ChainTokens yields the token of the first source that has a valid one, in
// order: ChainTokens(OAuthToken(userTS), EnvToken()) uses the user's OAuth
// token and falls back to HF_TOKEN. A source with no token, or a malformed
// one, is skipped (a [Client] logs the skip at warn). When the router refuses
// a source's token as unauthorized or lacking the inference scope, a Client
// tries the same request with the next source's token.
//
// When no source has a valid token, the error is [ErrInvalidToken] if some
// source had a malformed one, else [ErrNoToken]; its text lists each source's
// reason.
func ChainTokens(sources ...TokenSource) TokenSource {
	return chainSource{sources: sources}
}

type chainSource struct{ sources []TokenSource }

func (c chainSource) String() string {
	names := make([]string, len(c.sources))
	for i, s := range c.sources {
		names[i] = sourceName(s)
	}
	return "ChainTokens(" + strings.Join(names, ", ") + ")"
}

func (c chainSource) Token(ctx context.Context) (Token, error) {
	if err := contextDone(ctx); err != nil {
		return Token{}, err
	}
	tc := tokenCursor{sources: make([]indexedSource, len(c.sources)), chained: true}
	for i, s := range c.sources {
		tc.sources[i] = indexedSource{i: i, src: s}
	}
	if tok, ok := tc.advance(ctx); ok {
		return tok, nil
	}
	return Token{}, tc.failure(ctx)
}

// contextDone is ctx's error, or an ErrInvalidRequest for a nil ctx, which
// would otherwise panic deep inside a call.
func contextDone(ctx context.Context) error {
	if ctx == nil {
		return invalidRequest("nil Context: pass context.Background() or the request's context")
	}
	return ctx.Err()
}

// sourceToken asks a source for its token, turning a nil source, or a
// source that returns neither a token nor an error, into ErrNoToken.
func sourceToken(ctx context.Context, s TokenSource) (Token, error) {
	if s == nil {
		return Token{}, fmt.Errorf("%w (nil TokenSource)", ErrNoToken)
	}
	t, err := s.Token(ctx)
	if err != nil {
		return Token{}, err
	}
	if t.IsZero() {
		return Token{}, fmt.Errorf("%w (%s returned an empty Token)", ErrNoToken, sourceName(s))
	}
	return t, nil
}

// sourceName labels a source for logs and errors without asking it for a
// token.
func sourceName(s TokenSource) string {
	if st, ok := s.(fmt.Stringer); ok {
		return st.String()
	}
	return fmt.Sprintf("%T", s)
}
