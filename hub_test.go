package inference

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWhoamiShapes(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		token string
		want  WhoAmI
	}{
		{"classic write token", `{"type":"user","id":"62f2","name":"hub.js","fullname":"Hub JS","email":"x@y","canPay":false,"isPro":false,"orgs":[{"name":"huggingface"}],
			"auth":{"type":"access_token","accessToken":{"displayName":"ci-hub.js","role":"write","createdAt":"2024-01-01T00:00:00.000Z"}}}`, testToken,
			WhoAmI{Name: "hub.js", Type: "user", Fullname: "Hub JS", Orgs: []string{"huggingface"}, TokenKind: "access_token", TokenName: "ci-hub.js", Role: "write", CanCallInference: CapabilityYes}},
		{"fine-grained with the permission", `{"type":"user","name":"alice","auth":{"type":"access_token","accessToken":{"displayName":"infer","role":"fineGrained",
			"fineGrained":{"canReadGatedRepos":true,"global":["inference.serverless.write"],"scoped":[]}}}}`, testToken,
			WhoAmI{Name: "alice", Type: "user", TokenKind: "access_token", TokenName: "infer", Role: "fineGrained", Permissions: []string{"inference.serverless.write"}, CanCallInference: CapabilityYes}},
		{"fine-grained scoped to the user", `{"type":"user","name":"alice","auth":{"type":"access_token","accessToken":{"displayName":"s","role":"fineGrained",
			"fineGrained":{"global":[],"scoped":[{"entity":{"type":"user","name":"alice"},"permissions":["repo.write","inference.serverless.write"]}]}}}}`, testToken,
			WhoAmI{Name: "alice", Type: "user", TokenKind: "access_token", TokenName: "s", Role: "fineGrained", Permissions: []string{},
				Scoped: []ScopedPermissions{{Entity: "user/alice", Permissions: []string{"repo.write", "inference.serverless.write"}}}, CanCallInference: CapabilityYes}},
		{"fine-grained without it", `{"type":"user","name":"alice","auth":{"type":"access_token","accessToken":{"displayName":"repo-only","role":"fineGrained",
			"fineGrained":{"global":["discussion.write"],"scoped":[{"entity":{"type":"org","name":"acme"},"permissions":["inference.serverless.write"]}]},"expiration":"2027-01-02T03:04:05Z"}}}`, testToken,
			WhoAmI{Name: "alice", Type: "user", TokenKind: "access_token", TokenName: "repo-only", Role: "fineGrained", Permissions: []string{"discussion.write"},
				Scoped: []ScopedPermissions{{Entity: "org/acme", Permissions: []string{"inference.serverless.write"}}}, Expires: time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC), CanCallInference: CapabilityNo}},
		{"oauth, empty auth", `{"type":"user","name":"bob","auth":{}}`, "hf_oauth_abcdefghijklmnopqrstuvwxyz0123",
			WhoAmI{Name: "bob", Type: "user", TokenKind: "oauth", CanCallInference: CapabilityUnknown}},
		{"oauth type", `{"type":"oauth","name":"bob","expiresAt":"2026-12-01T00:00:00Z"}`, testToken,
			WhoAmI{Name: "bob", Type: "oauth", TokenKind: "oauth", Expires: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), CanCallInference: CapabilityUnknown}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := newRouter(t, status(200, tt.body))
			c, err := NewClient(WithHubURL(rt.URL()), WithToken(tt.token))
			require.NoError(t, err)
			got, err := c.Whoami(t.Context())
			require.NoError(t, err)
			assert.Equal(t, tt.want, *got)
			require.Len(t, rt.reqs(), 1)
			assert.Equal(t, "/api/whoami-v2", rt.reqs()[0].Path)
			assert.Equal(t, "Bearer "+tt.token, rt.reqs()[0].Authorization)
		})
	}
	assert.Equal(t, "no", CapabilityNo.String())
	text, _ := CapabilityYes.MarshalText()
	assert.Equal(t, "yes", string(text))
}

func TestWhoamiFailures(t *testing.T) {
	rt := newRouter(t, fromFixture(t, "F04-invalid-token.http"))
	c, err := NewClient(WithHubURL(rt.URL()), WithToken(testToken), WithRetry(RetryPolicy{}))
	require.NoError(t, err)
	_, err = c.Whoami(t.Context())
	require.ErrorIs(t, err, ErrUnauthorized)

	rt = newRouter(t, status(200, `not json`))
	c, err = NewClient(WithHubURL(rt.URL()), WithToken(testToken))
	require.NoError(t, err)
	_, err = c.Whoami(t.Context())
	require.ErrorIs(t, err, ErrProvider)

	clearTokenEnv(t)
	c, err = NewClient(WithHubURL(rt.URL()))
	require.NoError(t, err)
	_, err = c.Whoami(t.Context())
	require.ErrorIs(t, err, ErrNoToken)
	_, err = c.HubModel(t.Context(), "org/m")
	require.ErrorIs(t, err, ErrNoToken)
}

func TestModelInfo(t *testing.T) {
	tests := []struct {
		name string
		body string
		want ModelInfo
	}{
		{"object mapping keeps order", `{"_id":"x","id":"org/m","gated":"manual","pipeline_tag":"text-generation","inferenceProviderMapping":{
			"together":{"status":"live","providerId":"org/m-turbo","task":"conversational","isModelAuthor":false},
			"cerebras":{"status":"staging","providerId":"m","task":"conversational"},
			"groq":{"status":"live","providerId":"m-versatile","task":"conversational"}}}`,
			ModelInfo{ID: "org/m", Gated: "manual", PipelineTag: "text-generation", Providers: []ProviderMapping{
				{Provider: "together", Status: "live", ProviderID: "org/m-turbo", Task: "conversational"},
				{Provider: "cerebras", Status: "staging", ProviderID: "m", Task: "conversational"},
				{Provider: "groq", Status: "live", ProviderID: "m-versatile", Task: "conversational"}}}},
		{"array mapping, not gated", `{"id":"org/m","gated":false,"inferenceProviderMapping":[{"provider":"novita","hfModelId":"org/m","providerId":"n","status":"live","task":"conversational"}]}`,
			ModelInfo{ID: "org/m", Providers: []ProviderMapping{{Provider: "novita", Status: "live", ProviderID: "n", Task: "conversational"}}}},
		{"no mapping", `{"id":"org/m","gated":"auto"}`, ModelInfo{ID: "org/m", Gated: "auto"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := newRouter(t, status(200, tt.body))
			c, err := NewClient(WithHubURL(rt.URL()), WithToken(testToken))
			require.NoError(t, err)
			got, err := c.HubModel(t.Context(), "org/m")
			require.NoError(t, err)
			assert.Equal(t, tt.want, *got)
			assert.Equal(t, "/api/models/org/m", rt.reqs()[0].Path)
		})
	}
	m := ModelInfo{Providers: []ProviderMapping{{Provider: "a", Status: "live"}, {Provider: "b", Status: "staging"}}}
	assert.Equal(t, []ProviderMapping{{Provider: "a", Status: "live"}}, m.LiveProviders())
}

func TestModelInfoFailures(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		kind    error
	}{
		{"repo not found", fromFixture(t, "F03-repo-not-found.http"), ErrModelNotFound},
		{"401 on a private repo", status(401, `{"error":"Repository not found"}`), ErrModelNotFound},
		{"401 invalid credentials", fromFixture(t, "F04-invalid-token.http"), ErrUnauthorized},
		{"gated header", fromFixture(t, "F02-gated-403.http"), ErrGatedModel},
		{"bad mapping", status(200, `{"id":"org/m","inferenceProviderMapping":{"x":"y"}}`), ErrProvider},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := newRouter(t, tt.handler)
			c, err := NewClient(WithHubURL(rt.URL()), WithToken(testToken), WithRetry(RetryPolicy{}))
			require.NoError(t, err)
			_, err = c.HubModel(t.Context(), "org/m")
			require.ErrorIs(t, err, tt.kind)
		})
	}
	c, err := NewClient(WithToken(testToken))
	require.NoError(t, err)
	for _, bad := range []string{"", "org/m:together", "bad model"} {
		_, err = c.HubModel(t.Context(), bad)
		require.ErrorIs(t, err, ErrInvalidRequest, bad)
	}
}
