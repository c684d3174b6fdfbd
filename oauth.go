package inference

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/oauth2"
)

// OAuth scopes of Hugging Face (https://huggingface-proxy-6ci.pages.dev/docs/hub/oauth).
const (
	// ScopeInferenceAPI lets an OAuth token call Inference Providers on
	// behalf of the user. Without it every call is [ErrMissingScope].
	ScopeInferenceAPI = "inference-api"
	// ScopeOpenID and ScopeProfile are always requested; a Space adds them
	// itself.
	ScopeOpenID  = "openid"
	ScopeProfile = "profile"
)

// HubOAuthEndpoint is the OAuth endpoint of a Hub, such as
// https://huggingface-proxy-6ci.pages.dev (an empty hubURL means that one).
func HubOAuthEndpoint(hubURL string) oauth2.Endpoint {
	hub := strings.TrimRight(hubURL, "/")
	if hub == "" {
		hub = defaultHubURL
	}
	return oauth2.Endpoint{
		AuthURL:       hub + "/oauth/authorize",
		TokenURL:      hub + "/oauth/token",
		DeviceAuthURL: hub + "/oauth/device",
		AuthStyle:     oauth2.AuthStyleInHeader,
	}
}

// OAuthConfig is an oauth2 configuration for logging users in with Hugging
// Face so that their token may call Inference Providers: its scopes always
// include "openid profile inference-api", then extraScopes. A public app
// (no secret) should use PKCE (oauth2.GenerateVerifier).
func OAuthConfig(clientID, clientSecret, redirectURL string, extraScopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		RedirectURL:  redirectURL,
		Endpoint:     HubOAuthEndpoint(""),
		Scopes:       withInferenceScopes(extraScopes),
	}
}

// withInferenceScopes puts openid, profile and inference-api first and
// keeps the others once each, in order.
func withInferenceScopes(extra []string) []string {
	return mergeScopes([]string{ScopeOpenID, ScopeProfile, ScopeInferenceAPI}, extra)
}

// mergeScopes appends the scopes in extra (each may hold several, space
// separated) that scopes lacks.
func mergeScopes(scopes, extra []string) []string {
	for _, s := range extra {
		for _, f := range strings.Fields(s) {
			if !slices.Contains(scopes, f) {
				scopes = append(scopes, f)
			}
		}
	}
	return scopes
}

// SpaceOAuth is the OAuth setup of a Hugging Face Space with "hf_oauth: true",
// read from the variables the Space runtime sets.
type SpaceOAuth struct {
	// Config is ready for the login flow; its RedirectURL is
	// https://{SPACE_HOST}/login/callback unless overridden.
	Config *oauth2.Config
	// Scopes are the scopes the Space grants (OAUTH_SCOPES).
	Scopes []string
	// Warnings name problems found before any user logs in, such as a
	// missing inference-api scope.
	Warnings []string
}

// SpaceOAuthConfig reads a Space's OAuth variables: OAUTH_CLIENT_ID,
// OAUTH_CLIENT_SECRET, OAUTH_SCOPES, OPENID_PROVIDER_URL and SPACE_HOST. It
// warns when OAUTH_SCOPES lacks inference-api: users who log in would get
// tokens that cannot call Inference Providers (add inference-api to
// hf_oauth_scopes in the Space's README). It fails when OAUTH_CLIENT_ID is
// unset, that is, outside a Space with OAuth enabled.
func SpaceOAuthConfig() (*SpaceOAuth, error) {
	id := strings.TrimSpace(os.Getenv("OAUTH_CLIENT_ID"))
	if id == "" {
		return nil, errors.New("inference: OAUTH_CLIENT_ID is not set: enable OAuth in the Space's README with `hf_oauth: true`")
	}
	scopes := strings.Fields(os.Getenv("OAUTH_SCOPES"))
	hub := strings.TrimSpace(os.Getenv("OPENID_PROVIDER_URL"))
	cfg := &oauth2.Config{
		ClientID:     id,
		ClientSecret: os.Getenv("OAUTH_CLIENT_SECRET"),
		Endpoint:     HubOAuthEndpoint(hub),
		// Only what the Space grants: asking for more fails the login.
		Scopes: mergeScopes([]string{ScopeOpenID, ScopeProfile}, scopes),
	}
	if host := strings.TrimSpace(os.Getenv("SPACE_HOST")); host != "" {
		cfg.RedirectURL = "https://" + host + "/login/callback"
	}
	out := &SpaceOAuth{Config: cfg, Scopes: scopes}
	if !slices.Contains(scopes, ScopeInferenceAPI) {
		out.Warnings = append(out.Warnings, fmt.Sprintf(
			"OAUTH_SCOPES (%q) lacks %q: tokens of users who log in cannot call Inference Providers; add it to hf_oauth_scopes in the Space's README",
			strings.Join(scopes, " "), ScopeInferenceAPI))
	}
	if out.Config.ClientSecret == "" {
		out.Warnings = append(out.Warnings, "OAUTH_CLIENT_SECRET is not set: use PKCE for the login flow")
	}
	return out, nil
}
