package inference_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

const healthyModel = "meta-llama/Llama-3.3-70B-Instruct"

// hubRouter is a fake Hub and router where inferencetest.Token belongs to a
// user with a working fine-grained token and healthyModel is served.
func hubRouter(t *testing.T) *inferencetest.Router {
	r := newRouter(t)
	r.AddUser(inferencetest.Token, inferencetest.HubUser{Name: "alice", Role: "fineGrained", TokenName: "ci", Permissions: []string{inference.PermissionInferenceProviders}})
	r.AddModel(inferencetest.HubModel{ID: healthyModel, PipelineTag: "text-generation", Providers: []inferencetest.HubProvider{
		{Name: "together", Status: "live"}, {Name: "groq", Status: "live"}, {Name: "nebius", Status: "staging"}}})
	r.On(healthyModel, inferencetest.Reply("OK"))
	r.On(healthyModel+":groq", inferencetest.ReplyFrom("groq", "OK"))
	return r
}

// find returns the check whose name starts with prefix.
func find(t *testing.T, d *inference.Diagnosis, prefix string) inference.Check {
	t.Helper()
	for _, c := range d.Checks {
		if strings.HasPrefix(c.Name, prefix) {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", prefix, d.Checks)
	return inference.Check{}
}

func TestDiagnoseHealthySetup(t *testing.T) {
	r := hubRouter(t)
	c, err := r.Client()
	require.NoError(t, err)
	d := c.Diagnose(t.Context(), inference.DiagnoseOptions{Models: []string{healthyModel}, Providers: []string{"groq"}})
	assert.True(t, d.OK(), "%+v", d.Problems())
	assert.Equal(t, "alice", d.User)
	assert.Equal(t, "static", d.TokenSource)
	assert.Equal(t, "hf_in…", d.TokenPrefix)
	assert.Equal(t, "together (live), groq (live), nebius (staging)", find(t, d, "providers serving").Detail)
	assert.Equal(t, inference.CheckOK, find(t, d, "token may call Inference Providers").Status)
	assert.Equal(t, inference.CheckOK, find(t, d, "provider groq serves").Status)
	probe := find(t, d, "probe: "+healthyModel+":groq")
	assert.Equal(t, inference.CheckOK, probe.Status)
	assert.Contains(t, probe.Detail, "answered by groq")
	var body struct {
		MaxTokens int `json:"max_tokens"`
	}
	require.NoError(t, json.Unmarshal(r.Requests()[0].Body, &body))
	assert.Equal(t, 1, body.MaxTokens, "the probe asks for one token")
}

func TestDiagnoseFineGrainedTokenWithoutInference(t *testing.T) {
	r := hubRouter(t)
	r.AddUser(inferencetest.Token, inferencetest.HubUser{Name: "alice", Role: "fineGrained", TokenName: "repos-only", Permissions: []string{"repo.write"}})
	r.ForToken(inferencetest.Token, inferencetest.MissingScope())
	c, err := r.Client()
	require.NoError(t, err)
	d := c.Diagnose(t.Context(), inference.DiagnoseOptions{Models: []string{healthyModel}})
	assert.False(t, d.OK())
	perm := find(t, d, "token may call Inference Providers")
	assert.Equal(t, inference.CheckProblem, perm.Status)
	assert.Contains(t, perm.Cause, `"Make calls to Inference Providers"`)
	assert.Contains(t, perm.Fix, "/settings/tokens/new?ownUserPermissions=inference.serverless.write&tokenType=fineGrained")
	probe := find(t, d, "probe: ")
	assert.Equal(t, inference.CheckProblem, probe.Status)
	assert.Contains(t, probe.Fix, "inference-api")
}

func TestDiagnoseGatedModel(t *testing.T) {
	r := hubRouter(t)
	r.AddModel(inferencetest.HubModel{ID: "org/gated", Gated: "manual", Providers: []inferencetest.HubProvider{{Name: "together", Status: "live"}}})
	r.On("org/gated", inferencetest.Gated())
	c, err := r.Client()
	require.NoError(t, err)
	d := c.Diagnose(t.Context(), inference.DiagnoseOptions{Models: []string{"org/gated"}})
	access := find(t, d, "model access: org/gated")
	assert.Equal(t, inference.CheckProblem, access.Status)
	assert.Contains(t, access.Fix, r.URL()+"/org/gated")
	assert.Contains(t, find(t, d, "probe: org/gated").Cause, "the model is gated")

	// Gated, but this user has access: the probe says so.
	r.On("org/gated", inferencetest.Reply("OK"))
	d = c.Diagnose(t.Context(), inference.DiagnoseOptions{Models: []string{"org/gated"}})
	access = find(t, d, "model access: org/gated")
	assert.Equal(t, inference.CheckOK, access.Status)
	assert.Contains(t, access.Detail, "this user has access")

	// Without a probe, gating is reported as unknown.
	d = c.Diagnose(t.Context(), inference.DiagnoseOptions{Models: []string{"org/gated"}, NoProbe: true})
	assert.Equal(t, inference.CheckUnknown, find(t, d, "model access: org/gated").Status)
	for _, ch := range d.Checks {
		assert.NotContains(t, ch.Name, "probe")
	}
}

func TestDiagnoseModelAndProviderProblems(t *testing.T) {
	r := hubRouter(t)
	r.AddModel(inferencetest.HubModel{ID: "org/staging-only", Providers: []inferencetest.HubProvider{{Name: "nebius", Status: "staging"}}})
	r.AddModel(inferencetest.HubModel{ID: "org/unserved"})
	c, err := r.Client()
	require.NoError(t, err)
	d := c.Diagnose(t.Context(), inference.DiagnoseOptions{
		Models: []string{"nobody/missing", "org/staging-only", "org/unserved", healthyModel}, Providers: []string{"cerebras", "nebius", "auto"}, NoProbe: true})
	missing := find(t, d, "model exists: nobody/missing")
	assert.Equal(t, inference.CheckProblem, missing.Status)
	assert.Contains(t, missing.Fix, "models?inference_provider=all")
	assert.Equal(t, inference.CheckProblem, find(t, d, "providers serving org/staging-only").Status)
	assert.Equal(t, inference.CheckProblem, find(t, d, "providers serving org/unserved").Status)
	cerebras := find(t, d, "provider cerebras serves "+healthyModel)
	assert.Equal(t, inference.CheckProblem, cerebras.Status)
	assert.Contains(t, cerebras.Fix, `"auto"`)
	assert.Contains(t, cerebras.Fix, "together, groq")
	nebius := find(t, d, "provider nebius serves "+healthyModel)
	assert.Contains(t, nebius.Cause, "only in staging")
	for _, ch := range d.Checks {
		assert.NotEqual(t, "provider auto serves "+healthyModel, ch.Name, "policies are not providers")
	}
}

func TestDiagnoseTokenProblems(t *testing.T) {
	t.Run("no token", func(t *testing.T) {
		t.Setenv("HF_TOKEN", "")
		t.Setenv("HUGGING_FACE_HUB_TOKEN", "")
		t.Setenv("HF_TOKEN_PATH", t.TempDir()+"/none")
		r := hubRouter(t)
		c, err := inference.NewClient(inference.WithBaseURL(r.URL()), inference.WithHubURL(r.URL()))
		require.NoError(t, err)
		d := c.Diagnose(t.Context(), inference.DiagnoseOptions{Models: []string{healthyModel}})
		require.Len(t, d.Checks, 1)
		assert.Equal(t, inference.CheckProblem, d.Checks[0].Status)
		assert.Contains(t, d.Checks[0].Fix, "export HF_TOKEN=")
		assert.Empty(t, r.Requests())
	})
	t.Run("printed object", func(t *testing.T) {
		r := hubRouter(t)
		c, err := inference.NewClient(inference.WithHubURL(r.URL()), inference.WithTokenSource(inference.StaticToken("OAuthToken(token='hf_x')")))
		require.NoError(t, err)
		d := c.Diagnose(t.Context(), inference.DiagnoseOptions{})
		require.Len(t, d.Checks, 1)
		assert.Equal(t, "token is well formed", d.Checks[0].Name)
		assert.Contains(t, d.Checks[0].Fix, "oauth_token.token")
	})
	t.Run("invalid token", func(t *testing.T) {
		r := hubRouter(t)
		c, err := r.Client(inference.WithToken("hf_UnknownTokenXXXXXXXXXXXXXXXXXXXXXXXX"))
		require.NoError(t, err)
		d := c.Diagnose(t.Context(), inference.DiagnoseOptions{Models: []string{healthyModel}})
		last := d.Checks[len(d.Checks)-1]
		assert.Equal(t, "token accepted by the Hub", last.Name)
		assert.Equal(t, inference.CheckProblem, last.Status)
		assert.Contains(t, last.Fix, "invalid or expired")
	})
	t.Run("scope-less oauth token chained before HF_TOKEN", func(t *testing.T) {
		const scopeless = "hf_oauth_ScopelessUserXXXXXXXXXXXXXXXXXXXX"
		r := hubRouter(t)
		r.AddUser(scopeless, inferencetest.HubUser{Name: "bob", OAuth: true})
		r.ForToken(scopeless, inferencetest.MissingScope())
		chain := inference.ChainTokens(inference.StaticToken("None"), inference.OAuthToken(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: scopeless})), inference.StaticToken(inferencetest.Token))
		c, err := inference.NewClient(inference.WithBaseURL(r.URL()), inference.WithHubURL(r.URL()), inference.WithTokenSource(chain))
		require.NoError(t, err)
		d := c.Diagnose(t.Context(), inference.DiagnoseOptions{Models: []string{healthyModel}})
		assert.True(t, d.OAuth)
		assert.Equal(t, "bob", d.User)
		assert.Equal(t, inference.CheckProblem, find(t, d, "other token sources").Status)
		perm := find(t, d, "token may call Inference Providers")
		assert.Equal(t, inference.CheckProblem, perm.Status, "the probe confirms the missing scope")
		refusal := find(t, d, "router accepts the token from oauth")
		assert.Contains(t, refusal.Fix, "inference-api")
		assert.Equal(t, inference.CheckOK, find(t, d, "probe: ").Status, "HF_TOKEN served the probe")

		out, err := json.Marshal(d)
		require.NoError(t, err)
		for _, secret := range []string{scopeless[9:], inferencetest.Token[5:]} {
			assert.NotContains(t, string(out), secret)
			assert.NotContains(t, fmt.Sprintf("%+v", d), secret)
		}
	})
}
