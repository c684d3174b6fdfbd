package inference

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Fuzz targets for everything that reads untrusted input. Their seed
// corpora (the recorded fixtures and hand-picked cases) run as ordinary
// tests in CI; `go test -fuzz=FuzzClassify -fuzztime=5m .` runs one for
// longer.

// FuzzClassify feeds any status, headers and body to the classifier: it
// must pick exactly one kind, keep its text short, and never let the token
// through, even when the server echoes it.
func FuzzClassify(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "fixtures", "*.http"))
	require.NoError(f, err)
	for _, name := range files {
		fx := loadFixture(f, filepath.Base(name))
		f.Add(fx.status, fx.header.Get("X-Error-Code"), fx.header.Get("Retry-After"), fx.header.Get("Content-Type"), string(fx.body))
	}
	f.Add(403, "", "", "application/json", `{"error":"Bearer `+testToken+` lacks sufficient permissions to call Inference Providers"}`)
	f.Add(200, "", "", "text/event-stream", "data: {}")
	f.Add(-1, "\x00", "1e400", "", "{\"error\":{\"message\":[1,{\"msg\":null}]}}")
	f.Fuzz(func(t *testing.T, status int, errorCode, retry, contentType, body string) {
		h := http.Header{}
		h.Set("X-Error-Code", errorCode)
		h.Set("Retry-After", retry)
		h.Set("Content-Type", contentType)
		h.Set("X-Request-Id", "id-"+testToken)
		e := classify(failure{status: status, header: h, body: []byte(body + testToken), asked: Candidate{Model: "m/a"}, secrets: []string{testToken}})
		require.NotNil(t, e.Kind)
		assert.Len(t, kindsMatched(e), 1, "exactly one kind")
		text := e.Error()
		assert.Less(t, len(text), 16<<10)
		assert.NotContains(t, text, testToken)
		assert.NotContains(t, e.RequestID, testToken)
		assert.True(t, utf8.ValidString(text))
		assert.GreaterOrEqual(t, e.RetryAfter, time.Duration(0))
	})
}

// FuzzNormalizeToken: no panic; an accepted token has no white space and
// no printable-object shape; a refusal never quotes a long input.
func FuzzNormalizeToken(f *testing.F) {
	for _, s := range []string{testToken, "Bearer " + testToken, "None", "", " ", "<gradio.oauth.OAuthToken object at 0x1>", "OAuthToken(token='x')", "a b", "abc==", "ab=c", "bearer", "\t\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		v, err := normalizeToken(in)
		if err != nil {
			if len(strings.TrimSpace(in)) >= 12 {
				assert.NotContains(t, err.Error(), strings.TrimSpace(in))
			}
			return
		}
		assert.NotEmpty(t, v)
		assert.False(t, strings.ContainsAny(v, " \t\r\n<>(){}'\""), v)
		again, err := normalizeToken(v)
		require.NoError(t, err, "a normalised token stays valid")
		assert.Equal(t, v, again)
	})
}

// FuzzCitation: titles always fit, are valid UTF-8 and never empty; JSON
// objects always decode.
func FuzzCitation(f *testing.F) {
	for _, s := range []string{"", "title", strings.Repeat("é", 600), "\xff\xfe", strings.Repeat("a ", 300)} {
		f.Add(s, "https://example.org/x")
	}
	f.Add("t", "not a url")
	f.Fuzz(func(t *testing.T, title, rawURL string) {
		c, err := NewCitation(title, rawURL)
		if err == nil {
			assert.LessOrEqual(t, utf8.RuneCountInString(c.Title), MaxCitationTitleLen)
			assert.True(t, utf8.ValidString(c.Title))
			assert.NotEmpty(t, c.Title)
		}
		doc, _ := json.Marshal(map[string]any{"title": title, "url": rawURL, "authors": []string{title}})
		var d Citation
		require.NoError(t, json.Unmarshal(doc, &d))
		assert.LessOrEqual(t, utf8.RuneCountInString(d.Title), MaxCitationTitleLen)
		assert.NotEmpty(t, d.Title)
		if d.URL != "" {
			_, err := checkCitationURL(d.URL)
			assert.NoError(t, err)
		}
	})
}
