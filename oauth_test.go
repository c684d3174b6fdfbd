package inference

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

func TestOAuthConfig(t *testing.T) {
	cfg := OAuthConfig("id", "secret", "https://app.example/callback", "email inference-api", "read-repos")
	assert.Equal(t, []string{"openid", "profile", "inference-api", "email", "read-repos"}, cfg.Scopes)
	assert.Equal(t, "https://huggingface-proxy-6ci.pages.dev/oauth/authorize", cfg.Endpoint.AuthURL)
	assert.Equal(t, "https://huggingface-proxy-6ci.pages.dev/oauth/token", cfg.Endpoint.TokenURL)
	url := cfg.AuthCodeURL("state-1", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	assert.Contains(t, url, "scope=openid+profile+inference-api+email+read-repos")
	assert.Equal(t, "https://hub.example/oauth/device", HubOAuthEndpoint("https://hub.example/").DeviceAuthURL)
}

func TestSpaceOAuthConfig(t *testing.T) {
	for _, k := range []string{"OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "OPENID_PROVIDER_URL", "SPACE_HOST"} {
		t.Setenv(k, "")
	}
	_, err := SpaceOAuthConfig()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "hf_oauth: true")

	t.Setenv("OAUTH_CLIENT_ID", "client-1")
	t.Setenv("OAUTH_CLIENT_SECRET", "s3cret")
	t.Setenv("OAUTH_SCOPES", "openid profile")
	t.Setenv("OPENID_PROVIDER_URL", "https://huggingface-proxy-6ci.pages.dev")
	t.Setenv("SPACE_HOST", "alice-demo.hf.space")
	sp, err := SpaceOAuthConfig()
	require.NoError(t, err)
	assert.Equal(t, "https://alice-demo.hf.space/login/callback", sp.Config.RedirectURL)
	assert.Equal(t, []string{"openid", "profile"}, sp.Config.Scopes, "never more than the Space grants")
	require.Len(t, sp.Warnings, 1)
	assert.Contains(t, sp.Warnings[0], `lacks "inference-api"`)
	assert.Contains(t, sp.Warnings[0], "hf_oauth_scopes")

	t.Setenv("OAUTH_SCOPES", "openid profile inference-api")
	t.Setenv("OAUTH_CLIENT_SECRET", "")
	sp, err = SpaceOAuthConfig()
	require.NoError(t, err)
	assert.Equal(t, []string{"openid", "profile", "inference-api"}, sp.Config.Scopes)
	assert.Equal(t, []string{"OAUTH_CLIENT_SECRET is not set: use PKCE for the login flow"}, sp.Warnings)
}
