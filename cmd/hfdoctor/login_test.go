package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference/inferencetest"
)

// loginHub is a fake Hub scripted for device logins, and an environment
// whose huggingface_hub files are in a temporary HF_HOME.
func loginHub(t *testing.T, l inferencetest.DeviceLogin) (*inferencetest.Router, string) {
	t.Helper()
	home := t.TempDir()
	for _, k := range []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_ENDPOINT", "HF_DEVICE_CODE_OAUTH_CLIENT_ID"} {
		t.Setenv(k, "")
	}
	t.Setenv("HF_HOME", home)
	r := inferencetest.NewRouter()
	t.Cleanup(r.Close)
	r.OnDeviceLogin(l)
	return r, home
}

func TestLoginSavesWhereHuggingfaceHubKeepsIt(t *testing.T) {
	r, home := loginHub(t, inferencetest.DeviceLogin{User: inferencetest.HubUser{Name: "alice"}, UserCode: "QWER-TYUI"})
	code, out, _ := doctor(t, "login", "-hub-url", r.URL())
	assert.Equal(t, 0, code, out)
	assert.Contains(t, out, r.URL()+"/oauth/device?user_code=QWER-TYUI")
	assert.Contains(t, out, "Logged in as alice (OAuth token, expires ")
	assert.Contains(t, out, `[ ok ] token may call Inference Providers: the login was granted the scope "inference-api"`)
	stored := filepath.Join(home, "stored_tokens")
	assert.Contains(t, out, `Saved as "oauth-alice" in `+stored)
	data, err := os.ReadFile(stored)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(data), "[oauth-alice]\nhf_token = hf_oauth_"))
	token, err := os.ReadFile(filepath.Join(home, "token"))
	require.NoError(t, err)
	assert.NotContains(t, out, string(token), "the token is never printed")
	assert.NotContains(t, out, string(token)[9:])

	// The doctor then finds the login, as the library does.
	r.AddModel(inferencetest.HubModel{ID: model, Providers: []inferencetest.HubProvider{{Name: "together", Status: "live"}}})
	r.On(model, inferencetest.Reply("OK"))
	code, out, _ = doctor(t, "-hub-url", r.URL(), "-router-url", r.URL(), "-model", model)
	assert.Equal(t, 0, code, out)
	assert.Contains(t, out, "token: OAuth token from token file "+filepath.Join(home, "token"))
}

func TestLoginWithoutInferenceScopeExitsOne(t *testing.T) {
	r, home := loginHub(t, inferencetest.DeviceLogin{User: inferencetest.HubUser{Name: "alice"}, Scopes: []string{"openid", "profile"}})
	code, out, _ := doctor(t, "login", "-hub-url", r.URL(), "-no-save", "-scope", "openid", "-scope", "profile")
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "[FAIL] token may call Inference Providers")
	assert.Contains(t, out, `cause: the login was granted the scopes "openid profile" but not "inference-api"`)
	assert.NoFileExists(t, filepath.Join(home, "token"), "-no-save")
}

func TestLoginDeniedOrExpiredExitsOne(t *testing.T) {
	for poll, want := range map[inferencetest.DevicePoll]string{
		inferencetest.DeviceDenied:  "The login was denied in the browser.",
		inferencetest.DeviceExpired: "The code expired before it was authorized: run `hfdoctor login` again.",
	} {
		r, home := loginHub(t, inferencetest.DeviceLogin{Polls: []inferencetest.DevicePoll{poll}})
		code, out, _ := doctor(t, "login", "-hub-url", r.URL())
		assert.Equal(t, 1, code, out)
		assert.Contains(t, out, want)
		assert.NoFileExists(t, filepath.Join(home, "token"))
	}
}

func TestLoginUsageErrorsExitTwo(t *testing.T) {
	code, _, errOut := doctor(t, "login", "now")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "unexpected arguments")
	code, _, errOut = doctor(t, "login", "-model", "x")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "flag provided but not defined")
	code, out, _ := doctor(t, "login", "-hub-url", "http://hub.example.com")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "clear text")
}

func TestLoginDemo(t *testing.T) {
	code, out, _ := doctor(t, "login", "-demo")
	assert.Equal(t, 0, code, out)
	for _, want := range []string{
		"demo: a local fake Hub",
		"/oauth/device?user_code=ABCD-EFGH",
		"Logged in as alice (OAuth token, expires ",
		"[ ok ] token may call Inference Providers",
	} {
		assert.Contains(t, out, want)
	}
	assert.NotContains(t, out, "Saved as")
}

// TestReadmeQuotesTheLoginDemo holds the README to `login -demo`'s real
// output, with the fake Hub's port written PORT and the expiry DATE.
func TestReadmeQuotesTheLoginDemo(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(readme), "Real\noutput of `login -demo`")
	if !ok {
		_, rest, ok = strings.Cut(string(readme), "Real output of `login -demo`")
	}
	require.True(t, ok, "the README quotes the login demo")
	_, rest, ok = strings.Cut(rest, "```text\n")
	require.True(t, ok)
	quoted, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)
	_, out, _ := doctor(t, "login", "-demo")
	normalize := func(s string) string {
		s = regexp.MustCompile(`127\.0\.0\.1:(\d+|PORT)`).ReplaceAllString(s, "127.0.0.1:PORT")
		s = regexp.MustCompile(`expires (\d{4}-\d\d-\d\d|DATE)`).ReplaceAllString(s, "expires DATE")
		return strings.TrimSpace(s)
	}
	assert.Equal(t, normalize(quoted), normalize(out), "the README's quote of hfdoctor login -demo is out of date")
}
