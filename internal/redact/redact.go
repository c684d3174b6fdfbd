// Package redact removes credentials from text before it is shown, logged or
// returned. It is used on everything that comes back from a server, because
// servers sometimes echo the Authorization header they were sent.
package redact

import (
	"regexp"
	"strings"
)

// Mask replaces a whole secret in text.
const Mask = "[redacted]"

// tokenShapes matches strings shaped like Hugging Face user, OAuth and
// organisation tokens, and the value of a Bearer credential. It catches tokens
// the caller did not name: a server may echo any token it was ever sent.
// Real tokens carry 30 or more characters after the prefix; requiring 20
// keeps names such as HF_TOKEN_PATH or hf_oauth_scopes intact.
var tokenShapes = regexp.MustCompile(`\b(?:hf_oauth_|hf_|api_org_)[A-Za-z0-9_\-]{20,}|\b(?i:bearer)\s+[A-Za-z0-9\-._~+/]+=*`)

// String returns s with every secret in secrets, and every substring shaped
// like a Hugging Face token or a Bearer credential, replaced. Secrets shorter
// than 4 bytes are ignored: replacing them would mangle ordinary text and
// could not protect anything.
func String(s string, secrets ...string) string {
	for _, secret := range secrets {
		if len(secret) >= 4 && strings.Contains(s, secret) {
			s = strings.ReplaceAll(s, secret, Mask)
		}
	}
	if !mayHoldToken(s) {
		return s
	}
	return tokenShapes.ReplaceAllStringFunc(s, func(m string) string {
		if len(m) > 6 && strings.EqualFold(m[:6], "bearer") {
			return m[:6] + " " + Mask
		}
		return Mask
	})
}

// mayHoldToken is a cheap pre-check, without allocation, so that the
// regular expression runs only on text that could match it.
func mayHoldToken(s string) bool {
	return strings.Contains(s, "hf_") || strings.Contains(s, "api_org_") || containsFold(s, "bearer")
}

// containsFold reports whether s contains the lower-case ASCII word w in
// any case.
func containsFold(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i]|0x20 == w[0] && strings.EqualFold(s[i:i+len(w)], w) {
			return true
		}
	}
	return false
}

// Prefix returns a short, non-secret label for a token: its well-known kind
// prefix and at most two more characters, then an ellipsis. It is enough to
// tell two tokens apart in a log, and too little to use. Short or unknown
// tokens show no characters at all.
func Prefix(token string) string {
	kind := ""
	for _, p := range []string{"hf_oauth_", "hf_", "api_org_"} {
		if strings.HasPrefix(token, p) {
			kind = p
			break
		}
	}
	rest := token[len(kind):]
	if len(rest) < 16 {
		return kind + "…"
	}
	return kind + rest[:2] + "…"
}
