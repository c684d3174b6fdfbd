package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

const model = "meta-llama/Llama-3.3-70B-Instruct"

// setup is a fake Hub and router, and an environment whose HF_TOKEN is
// token.
func setup(t *testing.T, token string) *inferencetest.Router {
	t.Helper()
	t.Setenv("HF_TOKEN", token)
	t.Setenv("HUGGING_FACE_HUB_TOKEN", "")
	t.Setenv("HF_TOKEN_PATH", filepath.Join(t.TempDir(), "token"))
	r := inferencetest.NewRouter()
	t.Cleanup(r.Close)
	r.AddModel(inferencetest.HubModel{ID: model, PipelineTag: "text-generation", Providers: []inferencetest.HubProvider{{Name: "together", Status: "live"}, {Name: "groq", Status: "live"}}})
	r.On(model, inferencetest.Reply("OK"))
	return r
}

func doctor(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHealthySetupExitsZero(t *testing.T) {
	r := setup(t, inferencetest.Token)
	r.AddUser(inferencetest.Token, inferencetest.HubUser{Name: "alice", Role: "fineGrained", TokenName: "ci", Permissions: []string{inference.PermissionInferenceProviders}})
	code, out, _ := doctor(t, "-hub-url", r.URL(), "-router-url", r.URL(), "-model", model)
	assert.Equal(t, 0, code, out)
	assert.Contains(t, out, "token: access token from HF_TOKEN (hf_in…), user alice")
	assert.Contains(t, out, "[ ok ] providers serving "+model+": together (live), groq (live)")
	assert.Contains(t, out, "[ ok ] probe: "+model)
	assert.Contains(t, out, "No problem found.")
	assert.NotContains(t, out, inferencetest.Token[5:])
}

func TestFineGrainedTokenWithoutInferenceExitsOne(t *testing.T) {
	r := setup(t, inferencetest.Token)
	r.AddUser(inferencetest.Token, inferencetest.HubUser{Name: "alice", Role: "fineGrained", TokenName: "repos", Permissions: []string{"repo.content.read"}})
	r.ForToken(inferencetest.Token, inferencetest.MissingScope())
	code, out, _ := doctor(t, "-hub-url", r.URL(), "-router-url", r.URL(), "-model", model)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "[FAIL] token may call Inference Providers")
	assert.Contains(t, out, `fix:   Create a fine-grained token with "Make calls to Inference Providers"`)
	assert.NotContains(t, out, inferencetest.Token[5:])

	code, out, _ = doctor(t, "-hub-url", r.URL(), "-router-url", r.URL(), "-model", model, "-json")
	assert.Equal(t, 1, code)
	var report inference.Diagnosis
	require.NoError(t, json.Unmarshal([]byte(out), &report))
	assert.Equal(t, "alice", report.User)
	assert.NotEmpty(t, report.Problems())
	assert.NotContains(t, out, inferencetest.Token[5:])
}

func TestGatedModelIsReportedWithItsPage(t *testing.T) {
	r := setup(t, inferencetest.Token)
	r.AddUser(inferencetest.Token, inferencetest.HubUser{Name: "alice", Role: "write", TokenName: "w"})
	r.AddModel(inferencetest.HubModel{ID: "org/gated", Gated: "manual", Providers: []inferencetest.HubProvider{{Name: "together", Status: "live"}}})
	r.On("org/gated", inferencetest.Gated())
	code, out, _ := doctor(t, "-hub-url", r.URL(), "-router-url", r.URL(), "-model", "org/gated")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "[FAIL] model access: org/gated: gated (manual approval)")
	assert.Contains(t, out, "Visit "+r.URL()+"/org/gated, request access")
}

func TestNoTokenExitsOneAndSaysHowToSetIt(t *testing.T) {
	r := setup(t, "")
	code, out, _ := doctor(t, "-hub-url", r.URL(), "-router-url", r.URL(), "-model", model)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "[FAIL] token found")
	assert.Contains(t, out, "export HF_TOKEN=")
	assert.Empty(t, r.Requests())
}

func TestUsageErrorsExitTwo(t *testing.T) {
	code, _, errOut := doctor(t, "-nonsense")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "flag provided but not defined")
	code, _, errOut = doctor(t, "stray-argument")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "unexpected arguments")
	code, _, _ = doctor(t, "-model", "")
	assert.Equal(t, 2, code)
	code, _, errOut = doctor(t, "-router-url", "ftp://x")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "absolute http or https")
}

func TestDemo(t *testing.T) {
	code, out, _ := doctor(t, "-demo")
	assert.Equal(t, 1, code)
	for _, want := range []string{
		"demo: a local fake Hub and router",
		"token: OAuth token from oauth (hf_oauth_De…), user alice",
		"[FAIL] token may call Inference Providers",
		"[FAIL] router accepts the token from oauth",
		"[FAIL] model access: ardent-figment/gated-model: gated (manual approval)",
		"[FAIL] probe: meta-llama/Llama-3.3-70B-Instruct:hyperbolic",
		"[ ok ] probe: meta-llama/Llama-3.3-70B-Instruct:together",
	} {
		assert.Contains(t, out, want)
	}
	assert.NotContains(t, out, "DemoUserLoggedInWithoutScope")
	assert.NotContains(t, out, inferencetest.Token[5:])

	// Without probes nothing proves a problem: the OAuth scope and the
	// gated model's access stay unknown, which is not a failure.
	code, out, errOut := doctor(t, "-demo", "-json", "-no-probe")
	assert.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(strings.TrimSpace(out), "{"), "only JSON on stdout")
	assert.Contains(t, errOut, "demo:")
	var report inference.Diagnosis
	require.NoError(t, json.Unmarshal([]byte(out), &report))
	unknown := 0
	for _, c := range report.Checks {
		if c.Status == inference.CheckUnknown {
			unknown++
		}
	}
	assert.Equal(t, 2, unknown)
}

func TestBillToNonMemberExitsOne(t *testing.T) {
	r := setup(t, "hf_writeTokenCCCCCCCCCCCCCCCCCCCCCCCCCC")
	r.AddUser("hf_writeTokenCCCCCCCCCCCCCCCCCCCCCCCCCC", inferencetest.HubUser{Name: "alice", Role: "write", Orgs: []string{"acme-corp"}})
	var out, errOut bytes.Buffer
	code := run(t.Context(), []string{"-hub-url", r.URL(), "-router-url", r.URL(), "-model", model, "-bill-to", "other-org"}, &out, &errOut)
	assert.Equal(t, 1, code, errOut.String())
	assert.Contains(t, out.String(), "organization to bill: other-org")
	assert.Contains(t, out.String(), "alice is not a member of other-org")
	for _, q := range r.Requests() {
		assert.Equal(t, "other-org", q.Header.Get("X-HF-Bill-To"))
	}
	out.Reset()
	assert.Equal(t, 0, run(t.Context(), []string{"-hub-url", r.URL(), "-router-url", r.URL(), "-model", model, "-bill-to", "acme-corp"}, &out, &errOut), out.String())
}

// TestReadmeQuotesTheDemo holds the README to the demo's real output: the
// block after "Real output of `-demo`" must be what -demo prints, with the
// fake servers' port written PORT and the probe's time as it varies.
func TestReadmeQuotesTheDemo(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(readme), "Real output of `-demo`")
	require.True(t, ok, "the README quotes the demo")
	_, rest, ok = strings.Cut(rest, "```text\n")
	require.True(t, ok)
	quoted, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)

	_, out, _ := doctor(t, "-demo")
	normalize := func(s string) string {
		s = regexp.MustCompile(`127\.0\.0\.1:(\d+|PORT)`).ReplaceAllString(s, "127.0.0.1:PORT")
		s = regexp.MustCompile(`in [0-9.]+(µs|ms|s)\b`).ReplaceAllString(s, "in TIME")
		return strings.TrimSpace(s)
	}
	assert.Equal(t, normalize(quoted), normalize(out), "the README's quote of hfdoctor -demo is out of date")
}

// -h names the login subcommand as well as the diagnosis's flags. Found by
// trying the tool as a new user: login was nowhere in -h.
func TestHelpNamesTheLoginSubcommand(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(t.Context(), []string{"-h"}, &out, &errOut)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut.String(), "hfdoctor login")
	assert.Contains(t, errOut.String(), "-model")
}
