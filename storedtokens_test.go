package inference

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// python3 runs testdata/hfhub/stored_tokens.py, which reads and writes
// stored_tokens with configparser as huggingface_hub does; tests that use
// it skip where python3 is absent.
func python3(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: huggingface_hub's reader cannot be run")
	}
	script, err := filepath.Abs(filepath.Join("testdata", "hfhub", "stored_tokens.py"))
	require.NoError(t, err)
	cmd := exec.CommandContext(t.Context(), py, append([]string{script}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.Output()
	require.NoError(t, err, "python3 %v", args)
	return out
}

// asPython is what the Python reader prints for st, or for a parse error.
func asPython(st *storedTokens, err error) string {
	if err != nil {
		return `{"error"}`
	}
	out := [][]any{}
	for _, s := range st.sections {
		fields := [][]string{}
		for _, f := range s.fields {
			fields = append(fields, []string{f.key, f.value})
		}
		out = append(out, []any{s.name, fields})
	}
	data, _ := json.Marshal(out)
	return string(data)
}

// pythonRead is what huggingface_hub reads from the file at path, in
// asPython's form.
func pythonRead(t *testing.T, path string) string {
	out := python3(t, nil, "read", path)
	var probe map[string]any
	if json.Unmarshal(out, &probe) == nil && probe["error"] != nil {
		return `{"error"}`
	}
	var v any
	require.NoError(t, json.Unmarshal(out, &v))
	data, _ := json.Marshal(v)
	return string(data)
}

// iniCases are stored_tokens files, the usual and the odd, that
// configparser reads one way or refuses.
var iniCases = []struct {
	name, text string
	// want is the sections as asPython prints them; `{"error"}` when
	// configparser refuses the file.
	want string
}{
	{"huggingface_hub's own", "[a]\nhf_token = hf_A\n\n[oauth-b]\nhf_token = hf_oauth_B\nrefresh_token = rt_%_x\nexpires_at = 1752192000\n\n",
		`[["a",[["hf_token","hf_A"]]],["oauth-b",[["hf_token","hf_oauth_B"],["refresh_token","rt_%_x"],["expires_at","1752192000"]]]]`},
	{"empty", "", `[]`},
	{"colon, no spaces, upper-case key, CRLF", "[a]\r\nHF_TOKEN:hf_A\r\nexpires_at=12\r\n",
		`[["a",[["hf_token","hf_A"],["expires_at","12"]]]]`},
	{"comments and blank lines", "# who\n; what\n[a]\n  # inside\nhf_token = hf_A\n\n\n[b]\nhf_token = hf_B\n",
		`[["a",[["hf_token","hf_A"]]],["b",[["hf_token","hf_B"]]]]`},
	{"continuation lines", "[a]\nhf_token = one\n  two\n\n  three\nother = x\n",
		`[["a",[["hf_token","one\ntwo\n\nthree"],["other","x"]]]]`},
	{"DEFAULT inherited", "[DEFAULT]\nexpires_at = 5\nx = d\n[a]\nhf_token = hf_A\nx = own\n",
		`[["a",[["expires_at","5"],["x","own"],["hf_token","hf_A"]]]]`},
	{"empty value and inline hash", "[a]\nhf_token =\nnote = a # b\n", `[["a",[["hf_token",""],["note","a # b"]]]]`},
	{"text after the header", "[a] tail\nhf_token = x\n", `[["a",[["hf_token","x"]]]]`},
	{"key before any section", "hf_token = x\n[a]\n", `{"error"}`},
	{"section twice", "[a]\nk = 1\n[a]\nk = 2\n", `{"error"}`},
	{"key twice", "[a]\nk = 1\nK = 2\n", `{"error"}`},
	{"a line that is neither", "[a]\njust words\n", `{"error"}`},
	{"empty key", "[a]\n= x\n", `{"error"}`},
	{"byte order mark", "\ufeff[a]\nk = 1\n", `{"error"}`},
	// Python reads the file with universal newlines, and its white space
	// (str.isspace, re's \s) is wider than ASCII's.
	{"a lone carriage return ends a line", "[a]\rhf_token = x\rexpires_at = 5\r", `[["a",[["hf_token","x"],["expires_at","5"]]]]`},
	{"information separators are white space", "[a]\x1c\nhf_token = x\x1f\n\x1e\nk\x1d= y\n", `[["a",[["hf_token","x"],["k","y"]]]]`},
	{"no-break spaces indent, counted in characters", "[a]\n\u00a0\u00a0k = v\n w\n", `{"error"}`},
	{"a deeper indent continues", "[a]\n\u00a0\u00a0k = v\n   w\n", `[["a",[["k","v\nw"]]]]`},
}

func TestStoredTokensParsedAsConfigparserDoes(t *testing.T) {
	for _, tc := range iniCases {
		t.Run(tc.name, func(t *testing.T) {
			assert.JSONEq(t, jsonOrError(tc.want), jsonOrError(asPython(parseStoredTokens([]byte(tc.text)))))
		})
	}
}

// jsonOrError makes the error form comparable as JSON.
func jsonOrError(s string) string {
	if s == `{"error"}` {
		return `{"error": true}`
	}
	return s
}

// TestStoredTokensCasesAgreeWithPython runs each case through Python's
// configparser itself, so that the table above is not the Go reader's
// opinion.
func TestStoredTokensCasesAgreeWithPython(t *testing.T) {
	dir := t.TempDir()
	paths := make([]string, len(iniCases))
	for i, tc := range iniCases {
		paths[i] = filepath.Join(dir, "case"+string(rune('a'+i)))
		require.NoError(t, os.WriteFile(paths[i], []byte(tc.text), 0o600))
	}
	var results []json.RawMessage
	require.NoError(t, json.Unmarshal(python3(t, nil, append([]string{"read-all"}, paths...)...), &results))
	require.Len(t, results, len(iniCases))
	for i, tc := range iniCases {
		got := string(results[i])
		if strings.HasPrefix(got, `{"error"`) {
			got = `{"error"}`
		}
		assert.JSONEq(t, jsonOrError(tc.want), jsonOrError(got), tc.name)
	}
}

// TestStoredTokensWrittenAsHuggingfaceHubWrites holds encode to Python's
// bytes, and the fixture (a file as huggingface_hub writes it, in the
// shapes of its tests: an access token, and a browser login with a
// refresh token holding a "%") to a byte-identical round trip.
func TestStoredTokensWrittenAsHuggingfaceHubWrites(t *testing.T) {
	fixture, err := os.ReadFile(filepath.Join("testdata", "hfhub", "stored_tokens"))
	require.NoError(t, err)
	st, err := parseStoredTokens(fixture)
	require.NoError(t, err)
	assert.Equal(t, string(fixture), string(st.encode()))

	rec := st.section("oauth-alice").login()
	assert.Equal(t, "rt_with_%_inside", rec.refresh)
	assert.Equal(t, time.Unix(1752192000, 0), rec.expires)
	assert.True(t, rec.renewable())
	assert.False(t, st.section("ci-write").login().renewable())

	// A new login, and a value with a line break, sorted and written as
	// configparser writes them.
	st.putLogin(loginRecord{name: "0-first", access: "hf_oauth_new", refresh: "rt", expires: time.Unix(42, 0)})
	st.sections = append(st.sections, storedSection{name: "multi", fields: []storedField{{"hf_token", "a\nb"}}})
	mine := st.encode()
	var sections [][]any
	require.NoError(t, json.Unmarshal([]byte(asPython(st, nil)), &sections))
	input, _ := json.Marshal(sections)
	out := filepath.Join(t.TempDir(), "stored_tokens")
	python3(t, input, "write", out)
	theirs, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, string(theirs), string(mine))
}

func TestStoredLoginRecordReadsExpiryAsPythonInt(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  time.Time
	}{
		{"1752192000", time.Unix(1752192000, 0)},
		{" 17 ", time.Unix(17, 0)},
		{"-5", time.Unix(-5, 0)},
		{"1.5", time.Time{}},
		{"soon", time.Time{}},
		{"", time.Time{}},
	} {
		s := storedSection{name: "x", fields: []storedField{{"hf_token", "t"}, {"refresh_token", "r"}, {"expires_at", tc.value}}}
		assert.Equal(t, tc.want, s.login().expires, tc.value)
		assert.Equal(t, !tc.want.IsZero(), s.login().renewable(), tc.value)
	}
}
