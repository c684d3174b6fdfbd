package inference

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// MaxCitationTitleLen is the most characters (runes) a citation title
// holds. Longer titles are cut to MaxCitationTitleLen-3 characters and end
// in "...", so they still fit.
const MaxCitationTitleLen = 500

// UntitledCitation is the title given to a citation that has none.
const UntitledCitation = "Untitled source"

// maxCitationAuthors is how many authors String lists before "et al.".
const maxCitationAuthors = 3

// Citation is a source a research agent quotes. A Citation made by
// [NewCitation] or decoded from JSON always has a title of at most
// [MaxCitationTitleLen] characters, valid UTF-8, and either an absolute
// http(s) URL or none.
type Citation struct {
	// Source names where the citation was found, such as "pubmed" or
	// "web".
	Source string `json:"source,omitempty"`
	// Title is the work's title.
	Title string `json:"title"`
	// URL is an absolute http or https URL.
	URL string `json:"url,omitempty"`
	// Date is the publication date as the source gave it.
	Date string `json:"date,omitempty"`
	// Authors are the authors in order.
	Authors []string `json:"authors,omitempty"`
}

// NewCitation returns a citation with title normalised (trimmed, cut to
// [MaxCitationTitleLen] characters, [UntitledCitation] when empty) and url
// checked: it must be an absolute http or https URL.
func NewCitation(title, rawURL string) (Citation, error) {
	u, err := checkCitationURL(rawURL)
	if err != nil {
		return Citation{}, err
	}
	return Citation{Title: normalizeTitle(title), URL: u}, nil
}

// normalizeTitle makes a title valid UTF-8, folds its white space, cuts it
// to MaxCitationTitleLen runes without splitting one, and names an empty one.
func normalizeTitle(title string) string {
	t := strings.Join(strings.Fields(strings.ToValidUTF8(title, "\uFFFD")), " ")
	if t == "" {
		return UntitledCitation
	}
	if utf8.RuneCountInString(t) <= MaxCitationTitleLen {
		return t
	}
	cut, n := 0, 0
	for i := range t {
		if n == MaxCitationTitleLen-3 {
			cut = i
			break
		}
		n++
	}
	return strings.TrimRight(t[:cut], " ") + "..."
}

// checkCitationURL accepts absolute http and https URLs with a host.
func checkCitationURL(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		shown := s
		if utf8.RuneCountInString(shown) > 80 {
			shown = string([]rune(shown)[:80]) + "..."
		}
		return "", fmt.Errorf("inference: citation URL %q is not an absolute http or https URL", shown)
	}
	return s, nil
}

// UnmarshalJSON decodes a citation tolerantly and applies the rules of
// [NewCitation], so one bad search result never fails a batch: the title is
// normalised, a URL that is not absolute http(s) is dropped (left empty),
// and authors may be a list or a single string.
func (c *Citation) UnmarshalJSON(data []byte) error {
	var w struct {
		Source  json.RawMessage `json:"source"`
		Title   json.RawMessage `json:"title"`
		URL     json.RawMessage `json:"url"`
		Date    json.RawMessage `json:"date"`
		Authors json.RawMessage `json:"authors"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("inference: decoding a citation: %w", err)
	}
	*c = Citation{
		Source: jsonText(w.Source),
		Title:  normalizeTitle(jsonText(w.Title)),
		Date:   jsonText(w.Date),
	}
	if u, err := checkCitationURL(jsonText(w.URL)); err == nil {
		c.URL = u
	}
	a := bytes.TrimSpace(w.Authors)
	switch {
	case len(a) > 0 && a[0] == '[':
		var items []json.RawMessage
		if json.Unmarshal(a, &items) == nil {
			for _, it := range items {
				if s := strings.TrimSpace(jsonText(it)); s != "" {
					c.Authors = append(c.Authors, s)
				}
			}
		}
	case len(a) > 0:
		if s := strings.TrimSpace(jsonText(a)); s != "" {
			c.Authors = []string{s}
		}
	}
	return nil
}

// String formats the citation for a reference list: up to three authors
// then "et al.", the date in parentheses, the title, the source and the URL,
// leaving out what is missing.
func (c Citation) String() string {
	var parts []string
	if len(c.Authors) > 0 {
		authors := strings.Join(c.Authors[:min(len(c.Authors), maxCitationAuthors)], ", ")
		if len(c.Authors) > maxCitationAuthors {
			authors += " et al."
		}
		if c.Date != "" {
			authors += " (" + c.Date + ")"
		}
		parts = append(parts, authors)
	} else if c.Date != "" {
		parts = append(parts, "("+c.Date+")")
	}
	title := c.Title
	if title == "" {
		title = UntitledCitation
	}
	parts = append(parts, title)
	if c.Source != "" {
		parts = append(parts, c.Source)
	}
	if c.URL != "" {
		parts = append(parts, c.URL)
	}
	for i, p := range parts[:len(parts)-1] {
		if !strings.HasSuffix(p, ".") {
			parts[i] = p + "."
		}
	}
	return strings.Join(parts, " ")
}
