package inference

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

func TestNormalizeToken(t *testing.T) {
	tests := []struct {
		name, in, want string
		invalid        bool
		why            string
	}{
		{name: "plain", in: testToken, want: testToken},
		{name: "surrounding space and newline", in: "  " + testToken + "\r\n", want: testToken},
		{name: "bearer prefix", in: "Bearer " + testToken, want: testToken},
		{name: "lower-case bearer and spaces", in: " bearer   " + testToken + " ", want: testToken},
		{name: "oauth", in: "hf_oauth_abcdefghijklmnopqrstuvwxyz0123", want: "hf_oauth_abcdefghijklmnopqrstuvwxyz0123"},
		{name: "jwt-like", in: "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl", want: "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl"},
		{name: "base64 padding", in: "abcd+/efgh==", want: "abcd+/efgh=="},
		{name: "empty", in: "", invalid: true, why: "empty"},
		{name: "only space", in: " \t\n", invalid: true, why: "empty"},
		{name: "bearer alone", in: "Bearer   ", invalid: true, why: "empty"},
		{name: "None", in: "None", invalid: true, why: "missing value"},
		{name: "null", in: "null", invalid: true, why: "missing value"},
		{name: "undefined", in: "undefined", invalid: true, why: "missing value"},
		{name: "inner space", in: "hf_abc def", invalid: true, why: "white space"},
		{name: "inner tab", in: "hf_abc\tdef", invalid: true, why: "white space"},
		{name: "gradio object", in: "<gradio.oauth.OAuthToken object at 0x7f3b2c1d0e50>", invalid: true, why: "printed object"},
		{name: "python repr", in: "OAuthToken(token='" + testToken + "', scope='openid profile', expires_at=1765840584)", invalid: true, why: "printed object"},
		{name: "dict", in: `{"token":"` + testToken + `"}`, invalid: true, why: "printed object"},
		{name: "control char", in: "hf_abc\x00def", invalid: true, why: "character"},
		{name: "non-ascii", in: "hf_abcé", invalid: true, why: "character"},
		{name: "equals inside", in: "ab=cd", invalid: true, why: "character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := NewToken(tt.in, "test")
			if tt.invalid {
				require.ErrorIs(t, err, ErrInvalidToken)
				assert.Equal(t, []error{ErrInvalidToken}, kindsMatched(err))
				assert.Contains(t, err.Error(), tt.why)
				assert.Contains(t, err.Error(), "from test")
				if tt.why != "missing value" && strings.TrimSpace(tt.in) != "" {
					assert.NotContains(t, err.Error(), tt.in, "the rejected text is not echoed")
				}
				assert.NotContains(t, err.Error(), testToken)
				assert.True(t, tok.IsZero())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, tok.value())
		})
	}
}

func TestTokenPrintedFormsAreRedacted(t *testing.T) {
	tok, err := NewToken(testToken, "HF_TOKEN")
	require.NoError(t, err)

	type holder struct {
		Exported Token
		hidden   Token
		ptr      *Token
	}
	h := holder{Exported: tok, hidden: tok, ptr: &tok}
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outputs = append(outputs, fmt.Sprintf(verb, tok), fmt.Sprintf(verb, h), fmt.Sprintf(verb, &h), fmt.Sprintf(verb, []Token{tok}))
	}
	js, err := json.Marshal(h)
	require.NoError(t, err)
	outputs = append(outputs, string(js), tok.String(), tok.GoString(), tok.Redacted())

	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	logger.Info("tok", "token", tok, "holder", h)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("tok", "token", tok, "holder", h)
	outputs = append(outputs, logs.String())

	secretPart := testToken[5:]
	for _, out := range outputs {
		assert.NotContains(t, out, secretPart, out)
	}
	assert.Equal(t, "Token(HF_TOKEN hf_Te…)", tok.String())
	assert.Contains(t, logs.String(), `"source":"HF_TOKEN"`)
	assert.Equal(t, "Token(none)", Token{}.String())
}

// envCase sets up the environment token discovery reads.
func clearTokenEnv(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	for _, k := range []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HOME", "XDG_CACHE_HOME"} {
		t.Setenv(k, "")
	}
	t.Setenv("HOME", home)
	return home
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
}

func TestEnvTokenDiscoveryOrder(t *testing.T) {
	const (
		envTok    = "hf_EnvTokenAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		legacyTok = "hf_LegacyTokenBBBBBBBBBBBBBBBBBBBBBBBBB"
		pathTok   = "hf_PathTokenCCCCCCCCCCCCCCCCCCCCCCCCCCC"
		hfHomeTok = "hf_HfHomeTokenDDDDDDDDDDDDDDDDDDDDDDDDD"
		xdgTok    = "hf_XdgTokenEEEEEEEEEEEEEEEEEEEEEEEEEEEE"
		homeTok   = "hf_HomeTokenFFFFFFFFFFFFFFFFFFFFFFFFFFF"
	)
	// setup puts a token in every place whose index is >= from, so each
	// case checks that the earlier place wins over all later ones.
	setup := func(t *testing.T, from int) {
		home := clearTokenEnv(t)
		dir := t.TempDir()
		places := []func(){
			func() { t.Setenv("HF_TOKEN", " "+envTok+"\n") },
			func() { t.Setenv("HUGGING_FACE_HUB_TOKEN", legacyTok) },
			func() {
				writeFile(t, filepath.Join(dir, "custom", "tok"), pathTok+"\n")
				t.Setenv("HF_TOKEN_PATH", filepath.Join(dir, "custom", "tok"))
			},
			func() {
				writeFile(t, filepath.Join(dir, "hfhome", "token"), hfHomeTok)
				t.Setenv("HF_HOME", filepath.Join(dir, "hfhome"))
			},
			func() {
				writeFile(t, filepath.Join(dir, "xdg", "huggingface", "token"), xdgTok)
				t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "xdg"))
			},
			func() { writeFile(t, filepath.Join(home, ".cache", "huggingface", "token"), "  "+homeTok+"\r\n") },
		}
		for _, p := range places[from:] {
			p()
		}
	}
	tests := []struct {
		from       int
		want       string
		sourceHint string
	}{
		{0, envTok, "HF_TOKEN"},
		{1, legacyTok, "HUGGING_FACE_HUB_TOKEN"},
		{2, pathTok, "custom"},
		{3, hfHomeTok, "hfhome"},
		{4, xdgTok, filepath.Join("xdg", "huggingface", "token")},
		{5, homeTok, filepath.Join(".cache", "huggingface", "token")},
	}
	for _, tt := range tests {
		t.Run(tt.sourceHint, func(t *testing.T) {
			setup(t, tt.from)
			tok, err := EnvToken().Token(t.Context())
			require.NoError(t, err)
			assert.Equal(t, tt.want, tok.value())
			assert.Contains(t, tok.Source, tt.sourceHint)
		})
	}
}

func TestEnvTokenTildeAndEmptyValues(t *testing.T) {
	home := clearTokenEnv(t)
	writeFile(t, filepath.Join(home, "tokens", "hf"), testToken)
	t.Setenv("HF_TOKEN", "   ") // blank counts as unset
	t.Setenv("HF_TOKEN_PATH", "~/tokens/hf")
	tok, err := EnvToken().Token(t.Context())
	require.NoError(t, err)
	assert.Equal(t, testToken, tok.value())

	writeFile(t, filepath.Join(home, "tokens", "hf"), "\n")
	_, err = EnvToken().Token(t.Context())
	require.ErrorIs(t, err, ErrNoToken)
	assert.Contains(t, err.Error(), "is empty")
}

func TestEnvTokenMissingAndInvalid(t *testing.T) {
	home := clearTokenEnv(t)
	_, err := EnvToken().Token(t.Context())
	require.ErrorIs(t, err, ErrNoToken)
	assert.Equal(t, []error{ErrNoToken}, kindsMatched(err))
	assert.Contains(t, err.Error(), filepath.Join(home, ".cache", "huggingface", "token"))

	t.Setenv("HF_TOKEN", "None")
	_, err = EnvToken().Token(t.Context())
	require.ErrorIs(t, err, ErrInvalidToken)
	assert.Contains(t, err.Error(), "HF_TOKEN")

	t.Setenv("HF_TOKEN", "")
	dir := filepath.Join(t.TempDir(), "a-directory")
	require.NoError(t, os.Mkdir(dir, 0o700))
	t.Setenv("HF_TOKEN_PATH", dir)
	_, err = EnvToken().Token(t.Context())
	require.ErrorIs(t, err, ErrNoToken)
	assert.Contains(t, err.Error(), "cannot be read")
}

func TestNoTokenSendsNothing(t *testing.T) {
	clearTokenEnv(t)
	rt := newRouter(t, completion("never"))
	c, err := NewClient(WithBaseURL(rt.URL()))
	require.NoError(t, err, "a missing token is not a NewClient error")
	_, err = c.Chat(t.Context(), chatReq("m/a", ""))
	require.ErrorIs(t, err, ErrNoToken)
	assert.Equal(t, []error{ErrNoToken}, kindsMatched(err))
	assert.Empty(t, rt.reqs())
}

func TestInvalidTokenSendsNothing(t *testing.T) {
	_, err := NewClient(WithToken("<gradio.oauth.OAuthToken object at 0x7f3b2c1d0e50>"))
	require.ErrorIs(t, err, ErrInvalidToken)
	assert.Contains(t, err.Error(), "oauth_token.token")

	clearTokenEnv(t)
	t.Setenv("HF_TOKEN", "null")
	rt := newRouter(t, completion("never"))
	c, err := NewClient(WithBaseURL(rt.URL()))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), chatReq("m/a", ""))
	require.ErrorIs(t, err, ErrInvalidToken)
	assert.Empty(t, rt.reqs())

	c, err = NewClient(WithBaseURL(rt.URL()), WithTokenSource(StaticToken("Bearer ")))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), chatReq("m/a", ""))
	require.ErrorIs(t, err, ErrInvalidToken)
	assert.Empty(t, rt.reqs())
}

func TestDefaultSourceIsEnvToken(t *testing.T) {
	clearTokenEnv(t)
	t.Setenv("HF_TOKEN", testToken)
	rt := newRouter(t, completion("ok"))
	c, err := NewClient(WithBaseURL(rt.URL()))
	require.NoError(t, err)
	_, err = c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "Bearer "+testToken, rt.reqs()[0].Authorization)
}

type errSource struct{ err error }

func (s errSource) Token(ctx context.Context) (Token, error) { return Token{}, s.err }

type emptySource struct{}

func (emptySource) Token(ctx context.Context) (Token, error) { return Token{}, nil }

func TestChainTokens(t *testing.T) {
	good := StaticToken(testToken)
	missing := errSource{fmt.Errorf("%w (nothing here)", ErrNoToken)}
	bad := StaticToken("None")

	tok, err := ChainTokens(missing, bad, good).Token(t.Context())
	require.NoError(t, err)
	assert.Equal(t, testToken, tok.value())

	_, err = ChainTokens(missing, emptySource{}, nil).Token(t.Context())
	require.ErrorIs(t, err, ErrNoToken)
	assert.Equal(t, []error{ErrNoToken}, kindsMatched(err))
	assert.Contains(t, err.Error(), "nothing here")
	assert.Contains(t, err.Error(), "returned an empty Token")

	_, err = ChainTokens(missing, bad).Token(t.Context())
	require.ErrorIs(t, err, ErrInvalidToken)
	assert.Equal(t, []error{ErrInvalidToken}, kindsMatched(err))

	_, err = ChainTokens().Token(t.Context())
	require.ErrorIs(t, err, ErrNoToken)

	assert.Equal(t, "ChainTokens(inference.errSource, StaticToken, EnvToken, OAuthToken)",
		fmt.Sprint(ChainTokens(missing, good, EnvToken(), OAuthToken(nil))))
}

func TestClientLogsSkippedChainSources(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rt := newRouter(t, completion("ok"))
	c, err := NewClient(WithBaseURL(rt.URL()), WithLogger(logger),
		WithTokenSource(ChainTokens(StaticToken("OAuthToken(token='"+testToken+"')"), OAuthToken(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "hf_oauth_" + testToken[3:]})))))
	require.NoError(t, err)
	resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "oauth", resp.Attempts[0].TokenSource)
	out := logs.String()
	assert.Contains(t, out, "token source skipped")
	assert.Contains(t, out, "printed object")
	assert.Contains(t, out, "token_source=oauth oauth=true")
	assert.NotContains(t, out, testToken[5:])
}

func TestOAuthToken(t *testing.T) {
	exp := time.Now().Add(time.Hour).Round(time.Second)
	src := OAuthToken(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "hf_oauth_abcdefghijklmnopqrstuvwxyz0123", Expiry: exp}))
	tok, err := src.Token(t.Context())
	require.NoError(t, err)
	assert.True(t, tok.OAuth)
	assert.Equal(t, "oauth", tok.Source)
	assert.Equal(t, exp, tok.Expiry)

	// A non-hf_ OAuth token is still OAuth because of where it came from.
	tok, err = OAuthToken(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "opaque-access-token-123"})).Token(t.Context())
	require.NoError(t, err)
	assert.True(t, tok.OAuth)

	_, err = OAuthToken(nil).Token(t.Context())
	require.ErrorIs(t, err, ErrNoToken)

	_, err = OAuthToken(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: ""})).Token(t.Context())
	require.ErrorIs(t, err, ErrInvalidToken)

	refreshFail := &oauth2.RetrieveError{
		Response:         &http.Response{StatusCode: 400},
		Body:             []byte(`{"error":"invalid_grant","access_token":"` + testToken + `"}`),
		ErrorCode:        "invalid_grant",
		ErrorDescription: "refresh token expired",
	}
	_, err = OAuthToken(failingOAuth{refreshFail}).Token(t.Context())
	require.ErrorIs(t, err, ErrNoToken)
	assert.Contains(t, err.Error(), "invalid_grant")
	assert.Contains(t, err.Error(), "refresh token expired")
	assert.Contains(t, err.Error(), "log the user in again")
	assert.NotContains(t, err.Error(), testToken)

	_, err = OAuthToken(failingOAuth{errors.New("dial failed with Bearer " + testToken)}).Token(t.Context())
	require.ErrorIs(t, err, ErrNoToken)
	assert.NotContains(t, err.Error(), testToken)

	_, err = OAuthToken(nilOAuth{}).Token(t.Context())
	require.ErrorIs(t, err, ErrNoToken)
}

type failingOAuth struct{ err error }

func (f failingOAuth) Token() (*oauth2.Token, error) { return nil, f.err }

type nilOAuth struct{}

func (nilOAuth) Token() (*oauth2.Token, error) { return nil, nil }

func TestSourcesHonourCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, s := range []TokenSource{StaticToken(testToken), EnvToken(), OAuthToken(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: testToken})), ChainTokens(errSource{ErrNoToken}, StaticToken(testToken))} {
		_, err := s.Token(ctx)
		assert.ErrorIs(t, err, context.Canceled, sourceName(s))
	}
}
