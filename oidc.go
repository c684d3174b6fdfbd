package inference

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hfkit/inference/internal/redact"
)

// Trusted Publishers (huggingface_hub's _oidc.py): a CI job proves who it
// is with an OIDC id token from its CI provider and exchanges it at the
// Hub's token endpoint (RFC 8693) for a Hugging Face token that lives an
// hour, scoped to a repo, or to a user (a "CI/CD identity", which may call
// Inference Providers when the account allows it). huggingface_hub reads
// it first when HF_OIDC_RESOURCE is set; so does a Client's default
// source, before EnvToken (defaultTokenSource). A token the router refuses
// (a repo's) walks on to the next source, as any refused token does.

// Grant and token types of the exchange.
const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	idTokenType        = "urn:ietf:params:oauth:token-type:id_token"
)

// oidcRefreshMargin: a token exchanged for an id token minted here is
// exchanged again this long before it expires; one given in
// HF_OIDC_ID_TOKEN cannot be minted again, so its token is kept for its
// whole life (as huggingface_hub does).
const oidcRefreshMargin = 5 * time.Minute

// OIDCOptions configure [OIDCToken]. The zero value reads the
// environment as huggingface_hub does.
type OIDCOptions struct {
	// Resource is what the token is scoped to: a repo ("org/model",
	// "datasets/org/name", "spaces/org/name") or a user name. Empty:
	// HF_OIDC_RESOURCE.
	Resource string
	// IDToken is the CI provider's OIDC id token, whose audience must be
	// the Hub's URL. Empty: HF_OIDC_ID_TOKEN, else one minted from
	// GitHub Actions (GITHUB_ACTIONS=true, with the job's "permissions:
	// id-token: write").
	IDToken string
	// HubURL is the Hub that exchanges it. Empty: the Client's Hub, and
	// outside a Client HF_ENDPOINT, else https://huggingface-proxy-6ci.pages.dev.
	HubURL string
	// HTTPClient sends the requests. Nil: the Client's transport without
	// its middleware, with a 30 s timeout; outside a Client, a client with
	// that timeout.
	HTTPClient *http.Client
	// Logger hears the one warning of a failed exchange, after which a
	// chain goes on with its next source. Nil: the Client's logger when
	// WithLogger gave one, else slog.Default(): a job must not run as
	// another identity unawares.
	Logger *slog.Logger
}

// OIDCToken is huggingface_hub's keyless CI login (Trusted Publishers):
// it exchanges the CI's OIDC id token for a short-lived Hugging Face token
// scoped to opts.Resource, and exchanges again before it expires. Without
// a resource it has no token ([ErrNoToken]). A refused exchange is
// [ErrUnauthorized], an [*APIError] whose Fix says what to check.
//
// A Client given no token option uses ChainTokens(OIDCToken(OIDCOptions{}),
// EnvToken()) when HF_OIDC_RESOURCE is set, so that a token the router
// refuses (a repo's may not call Inference Providers) walks on to HF_TOKEN.
// Where huggingface_hub raises when the exchange fails, the chain goes on
// to the next source, with one warning (on opts.Logger, else the Client's
// logger, else slog.Default(): never silently), and names the
// failure in its error if no source has a token.
func OIDCToken(opts OIDCOptions) TokenSource {
	return &oidcSource{
		oauth:    hubOAuth{hub: strings.TrimRight(strings.TrimSpace(opts.HubURL), "/"), http: opts.HTTPClient, logger: opts.Logger},
		resource: strings.TrimSpace(opts.Resource),
		idToken:  strings.TrimSpace(opts.IDToken),
		now:      time.Now,
		slot:     make(chan struct{}, 1),
	}
}

// defaultTokenSource is a Client's source when it is given no token
// option: the exchanged token first when HF_OIDC_RESOURCE asks for one,
// as huggingface_hub's get_token, then EnvToken.
func defaultTokenSource() TokenSource {
	if strings.TrimSpace(os.Getenv("HF_OIDC_RESOURCE")) != "" {
		return ChainTokens(OIDCToken(OIDCOptions{}), EnvToken())
	}
	return EnvToken()
}

type oidcSource struct {
	oauth    hubOAuth
	resource string
	idToken  string
	now      func() time.Time
	// slot lets one goroutine at a time exchange.
	slot chan struct{}

	mu     sync.Mutex
	cached oidcCache
	// warned makes a failed exchange warned about once.
	warned atomic.Bool
}

// oidcCache is the last token exchanged, good until until for resource.
type oidcCache struct {
	resource, token string
	until           time.Time
}

func (*oidcSource) String() string { return "OIDCToken" }

// boundTo is the source exchanging on a client's Hub, through its
// transport, where its options leave them unset.
func (s *oidcSource) boundTo(client clientLogin) *oidcSource {
	bound := OIDCToken(OIDCOptions{Resource: s.resource, IDToken: s.idToken}).(*oidcSource)
	bound.oauth, bound.now = s.oauth.lentBy(client), s.now
	return bound
}

// Token is the exchanged token, from memory while it is good.
func (s *oidcSource) Token(ctx context.Context) (Token, error) {
	if err := contextDone(ctx); err != nil {
		return Token{}, err
	}
	resource := s.resource
	if resource == "" {
		resource = strings.TrimSpace(os.Getenv("HF_OIDC_RESOURCE"))
	}
	if resource == "" {
		return Token{}, fmt.Errorf("%w (no OIDC resource: HF_OIDC_RESOURCE is unset)", ErrNoToken)
	}
	source := "OIDC " + resource
	if tok, ok := s.fresh(resource, source); ok {
		return tok, nil
	}
	select {
	case s.slot <- struct{}{}:
	case <-ctx.Done():
		return Token{}, ctx.Err()
	}
	defer func() { <-s.slot }()
	if tok, ok := s.fresh(resource, source); ok {
		return tok, nil
	}
	tok, err := s.exchanged(ctx, resource, source)
	if err != nil && ctx.Err() == nil && !s.warned.Swap(true) {
		s.oauth.log().LogAttrs(ctx, slog.LevelWarn, "inference: no OIDC token could be had; a chain goes on with its next source (HF_TOKEN, the token file), where huggingface_hub would fail",
			slog.String("resource", resource), slog.String("reason", err.Error()),
			slog.String("fix", "fix the exchange as the reason says, or unset HF_OIDC_RESOURCE (or give no OIDCToken) to use the next source knowingly"))
	}
	return tok, err
}

// exchanged exchanges an id token for resource's token and keeps it.
func (s *oidcSource) exchanged(ctx context.Context, resource, source string) (Token, error) {
	idToken, minted := s.idToken, false
	if idToken == "" {
		idToken = strings.TrimSpace(os.Getenv("HF_OIDC_ID_TOKEN"))
	}
	if idToken == "" {
		if os.Getenv("GITHUB_ACTIONS") != "true" {
			return Token{}, fmt.Errorf("%w (HF_OIDC_RESOURCE is set but no OIDC id token is available: this is not GitHub Actions and HF_OIDC_ID_TOKEN is unset; set it to the id token your CI mints, or unset HF_OIDC_RESOURCE)", ErrNoToken)
		}
		var err error
		if idToken, err = s.mintGitHub(ctx); err != nil {
			return Token{}, err
		}
		minted = true
	}
	token, lifetime, err := s.exchange(ctx, resource, idToken)
	if err != nil {
		return Token{}, err
	}
	margin := time.Duration(0)
	if minted {
		margin = oidcRefreshMargin
	}
	s.mu.Lock()
	s.cached = oidcCache{resource: resource, token: token, until: s.now().Add(max(lifetime-margin, 0))}
	s.mu.Unlock()
	return NewToken(token, source)
}

func (s *oidcSource) fresh(resource, source string) (Token, bool) {
	s.mu.Lock()
	c := s.cached
	s.mu.Unlock()
	if c.token == "" || c.resource != resource || !s.now().Before(c.until) {
		return Token{}, false
	}
	tok, err := NewToken(c.token, source)
	return tok, err == nil
}

// mintGitHub asks the GitHub Actions runtime for an id token whose
// audience is the Hub.
func (s *oidcSource) mintGitHub(ctx context.Context) (string, error) {
	requestURL := strings.TrimSpace(os.Getenv("ACTIONS_ID_TOKEN_REQUEST_URL"))
	requestToken := strings.TrimSpace(os.Getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN"))
	if requestURL == "" || requestToken == "" {
		return "", fmt.Errorf("%w (GitHub Actions gives no OIDC id token: the job needs \"permissions: id-token: write\")", ErrNoToken)
	}
	u, err := url.Parse(requestURL)
	if err != nil {
		return "", fmt.Errorf("%w (ACTIONS_ID_TOKEN_REQUEST_URL is not a URL)", ErrNoToken)
	}
	q := u.Query()
	q.Set("audience", s.oauth.hubURL())
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+requestToken)
	status, body, err := s.do(req)
	if err != nil {
		return "", fmt.Errorf("%w (minting the GitHub Actions OIDC id token failed: %s)", ErrNoToken, cleanText(redact.String(err.Error()), 256))
	}
	var answer struct {
		Value string `json:"value"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &answer) != nil || answer.Value == "" {
		return "", fmt.Errorf("%w (GitHub Actions did not mint an OIDC id token: HTTP %d)", ErrNoToken, status)
	}
	return answer.Value, nil
}

// exchange trades the id token for a Hugging Face token scoped to
// resource, as huggingface_hub sends it (a JSON body), returning its
// lifetime (an hour when the Hub does not say).
func (s *oidcSource) exchange(ctx context.Context, resource, idToken string) (string, time.Duration, error) {
	body, _ := json.Marshal(map[string]string{
		"grant_type": grantTokenExchange, "subject_token_type": idTokenType,
		"subject_token": idToken, "resource": resource,
	})
	tokenURL := s.oauth.hubURL() + "/oauth/token"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, bytes.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	status, data, err := s.do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", 0, ctx.Err()
		}
		return "", 0, s.refused(resource, 0, "", "", err, idToken)
	}
	var answer struct {
		AccessToken string      `json:"access_token"`
		ExpiresIn   json.Number `json:"expires_in"`
		Error       string      `json:"error"`
		Description string      `json:"error_description"`
	}
	_ = json.Unmarshal(data, &answer)
	if status != http.StatusOK || answer.AccessToken == "" {
		return "", 0, s.refused(resource, status, answer.Error, answer.Description, nil, idToken)
	}
	lifetime := time.Hour
	if n, err := answer.ExpiresIn.Int64(); err == nil && n > 0 {
		lifetime = time.Duration(n) * time.Second
	}
	return answer.AccessToken, lifetime, nil
}

// do sends req and reads at most 1 MiB of the answer.
func (s *oidcSource) do(req *http.Request) (int, []byte, error) {
	resp, err := s.oauth.httpClient().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, data, err
}

// refused is the error of an exchange the Hub refused, or that failed;
// the id token is removed from whatever the Hub said.
func (s *oidcSource) refused(resource string, status int, code, description string, cause error, idToken string) error {
	e := &APIError{Kind: ErrUnauthorized, StatusCode: status, hubURL: s.oauth.hubURL(), Cause: cause,
		Code: cleanText(redact.String(code, idToken), 64),
		fix: "Check the trusted publisher of " + resource + " on the Hub (its issuer and claims must match this job's id token, whose audience must be " +
			s.oauth.hubURL() + "), and that the job may mint an id token (GitHub Actions: permissions: id-token: write); or unset HF_OIDC_RESOURCE"}
	why := "failed"
	switch {
	case cause != nil:
		why += ": " + cleanText(redact.String(cause.Error(), idToken), 256)
	case code != "":
		why = "was refused: " + cleanText(redact.String(code, idToken), 64)
		if description != "" {
			why += ": " + cleanText(redact.String(description, idToken), 256)
		}
	default:
		why = fmt.Sprintf("was refused (HTTP %d)", status)
	}
	e.Message = "the OIDC token exchange for " + resource + " " + why
	return e
}
