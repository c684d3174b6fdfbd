package inference

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"golang.org/x/oauth2"
)

func TestLoginCapabilitySaysWhatIsMissing(t *testing.T) {
	hub := hubLinks("https://hub.example")
	for _, tc := range []struct {
		name    string
		who     WhoAmI
		scopes  []string
		want    Capability
		missing string
	}{
		{"OAuth with inference-api", WhoAmI{TokenKind: "oauth"}, []string{"openid", ScopeInferenceAPI}, CapabilityYes, ""},
		{"OAuth without", WhoAmI{TokenKind: "oauth"}, []string{"openid"}, CapabilityNo, `the login was granted the scopes "openid" but not "inference-api"`},
		{"OAuth, scopes unknown", WhoAmI{TokenKind: "oauth"}, nil, CapabilityUnknown, ""},
		{"fine-grained without the permission", WhoAmI{TokenKind: "access_token", Role: "fineGrained", CanCallInference: CapabilityNo}, nil, CapabilityNo,
			`the token lacks the fine-grained permission "Make calls to Inference Providers" (inference.serverless.write): add it at https://hub.example/settings/tokens`},
		{"a read token", WhoAmI{TokenKind: "access_token", Role: "read", CanCallInference: CapabilityYes}, nil, CapabilityYes, ""},
	} {
		got, missing := loginCapability(&tc.who, tc.scopes, hub)
		assert.Equal(t, tc.want, got, tc.name)
		if tc.missing == "" {
			assert.Empty(t, missing, tc.name)
		} else {
			assert.Contains(t, missing, tc.missing, tc.name)
		}
	}
}

// TestTokenRecordReadsExpiresIn as huggingface_hub does: now plus
// expires_in in whole seconds, from JSON or a form answer; none without
// it; the old refresh token when the answer has none.
func TestTokenRecordReadsExpiresIn(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	for _, tc := range []struct {
		name string
		tok  *oauth2.Token
		want time.Time
	}{
		{"JSON number", (&oauth2.Token{AccessToken: "a"}).WithExtra(map[string]any{"expires_in": float64(3600)}), now.Add(time.Hour)},
		{"form string", (&oauth2.Token{AccessToken: "a"}).WithExtra(map[string]any{"expires_in": "60"}), now.Add(time.Minute)},
		{"zero", (&oauth2.Token{AccessToken: "a"}).WithExtra(map[string]any{"expires_in": float64(0)}), now},
		{"absent", (&oauth2.Token{AccessToken: "a"}).WithExtra(map[string]any{}), time.Time{}},
		{"not a number, Expiry known", (&oauth2.Token{AccessToken: "a", Expiry: now.Add(90 * time.Second)}).WithExtra(map[string]any{"expires_in": "soon"}), now.Add(90 * time.Second)},
		{"negative", (&oauth2.Token{AccessToken: "a"}).WithExtra(map[string]any{"expires_in": float64(-5)}), time.Time{}},
	} {
		rec := tokenRecord(tc.tok, "rt-old", now)
		assert.Equal(t, tc.want, rec.expires, tc.name)
		assert.Equal(t, "rt-old", rec.refresh, tc.name)
	}
	rotated := tokenRecord((&oauth2.Token{AccessToken: "a", RefreshToken: "rt-new"}).WithExtra(map[string]any{}), "rt-old", now)
	assert.Equal(t, "rt-new", rotated.refresh)
}
