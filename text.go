package inference

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// cleanText makes server text safe to show: valid UTF-8, no control
// characters (a hostile server could send terminal escapes) nor
// bidirectional controls (which reorder what a log or a terminal shows),
// runs of white space folded to one space, and at most max bytes, cut on
// a rune boundary.
func cleanText(s string, max int) string {
	if s == "" || isClean(s, max) {
		return s
	}
	var b strings.Builder
	b.Grow(min(len(s), max+4))
	space := false
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if b.Len()+utf8.RuneLen(r) > max {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// isClean reports whether cleanText would return s unchanged: short
// enough, printable ASCII, no leading, trailing or doubled spaces. Most
// headers and messages are, and skip the copy.
func isClean(s string, max int) bool {
	if len(s) > max || s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || (c == ' ' && s[i+1] == ' ') {
			return false
		}
	}
	return true
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
