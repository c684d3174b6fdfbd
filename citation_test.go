package inference

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCitationTitles(t *testing.T) {
	tests := []struct {
		name  string
		title string
		want  string
		runes int
	}{
		{"short", "  A study\n of  things ", "A study of things", 17},
		{"exactly 500", strings.Repeat("a", 500), strings.Repeat("a", 500), 500},
		{"501 ascii", strings.Repeat("a", 501), strings.Repeat("a", 497) + "...", 500},
		{"long multibyte", strings.Repeat("é", 600), strings.Repeat("é", 497) + "...", 500},
		{"long emoji", strings.Repeat("🧬", 700), strings.Repeat("🧬", 497) + "...", 500},
		{"space at cut", strings.Repeat("a", 496) + " " + strings.Repeat("b", 100), strings.Repeat("a", 496) + "...", 499},
		{"empty", "", UntitledCitation, len(UntitledCitation)},
		{"blank", " \t\n", UntitledCitation, len(UntitledCitation)},
		{"invalid utf8", "caf\xe9 study", "caf\uFFFD study", 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCitation(tt.title, "https://example.org/paper")
			require.NoError(t, err)
			assert.Equal(t, tt.want, c.Title)
			assert.True(t, utf8.ValidString(c.Title))
			assert.Equal(t, tt.runes, utf8.RuneCountInString(c.Title))
			assert.LessOrEqual(t, utf8.RuneCountInString(c.Title), MaxCitationTitleLen)
		})
	}
}

func TestCitationURLs(t *testing.T) {
	for _, ok := range []string{"https://example.org/a?b=c#d", "http://example.org", " https://pubmed.ncbi.nlm.nih.gov/123/ "} {
		c, err := NewCitation("t", ok)
		require.NoError(t, err, ok)
		assert.Equal(t, strings.TrimSpace(ok), c.URL)
	}
	for _, bad := range []string{"", "example.org/a", "/relative", "ftp://example.org/x", "javascript:alert(1)", "https://", "http://[::1", strings.Repeat("x", 500)} {
		_, err := NewCitation("t", bad)
		require.Error(t, err, bad)
		assert.Contains(t, err.Error(), "absolute http or https URL")
		assert.Less(t, len(err.Error()), 200)
	}
}

func TestCitationJSONDecodingNeverFailsABatch(t *testing.T) {
	in := `[
		{"source":"web","title":"` + strings.Repeat("T", 800) + `","url":"https://a.example/1","date":"2025-01-02","authors":["A","B"]},
		{"title":"","url":"not a url"},
		{"title":null,"url":"https://b.example","authors":"Solo Author"},
		{"title":42,"url":"https://c.example","authors":[" X ", "", 7]},
		{}
	]`
	var got []Citation
	require.NoError(t, json.Unmarshal([]byte(in), &got))
	require.Len(t, got, 5)
	assert.Equal(t, 500, utf8.RuneCountInString(got[0].Title))
	assert.True(t, strings.HasSuffix(got[0].Title, "..."))
	assert.Equal(t, []string{"A", "B"}, got[0].Authors)
	assert.Equal(t, "web", got[0].Source)
	assert.Equal(t, UntitledCitation, got[1].Title)
	assert.Equal(t, "", got[1].URL, "an invalid URL is dropped")
	assert.Equal(t, []string{"Solo Author"}, got[2].Authors)
	assert.Equal(t, "42", got[3].Title)
	assert.Equal(t, []string{"X", "7"}, got[3].Authors)
	assert.Equal(t, UntitledCitation, got[4].Title)

	var one Citation
	assert.Error(t, json.Unmarshal([]byte(`"just a string"`), &one))

	out, err := json.Marshal(got[2])
	require.NoError(t, err)
	assert.JSONEq(t, `{"title":"Untitled source","url":"https://b.example","authors":["Solo Author"]}`, string(out))
}

func TestCitationString(t *testing.T) {
	tests := []struct {
		name string
		c    Citation
		want string
	}{
		{"no authors", Citation{Title: "Title", URL: "https://x.example"}, "Title. https://x.example"},
		{"one author and date", Citation{Title: "Title", Authors: []string{"Ada Lovelace"}, Date: "1843"}, "Ada Lovelace (1843). Title"},
		{"three authors", Citation{Title: "T.", Authors: []string{"A", "B", "C"}, Source: "pubmed"}, "A, B, C. T. pubmed"},
		{"four authors", Citation{Title: "T", Authors: []string{"A", "B", "C", "D"}}, "A, B, C et al. T"},
		{"date only", Citation{Title: "T", Date: "2024"}, "(2024). T"},
		{"zero value", Citation{}, UntitledCitation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.c.String())
		})
	}
}
