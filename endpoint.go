package inference

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/hfkit/inference/internal/redact"
)

// Default endpoints.
const (
	// DefaultBaseURL is the Inference Providers router.
	DefaultBaseURL = "https://router.huggingface.co"
	defaultHubURL  = "https://huggingface-proxy-6ci.pages.dev"
)

// parseBase checks an endpoint URL and returns it without a trailing slash.
// Its errors never quote user info or a query, where a token may hide.
func parseBase(opt, raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("inference: %s: %q is not a URL", opt, safeURL(raw))
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("inference: %s: %q must be an absolute http or https URL", opt, safeURL(raw))
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("inference: %s: %q must not carry user info, a query or a fragment", opt, safeURL(raw))
	}
	u.Path = strings.TrimRight(u.Path, "/")
	if opt == "WithBaseURL" {
		for _, endpoint := range []string{"/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/models"} {
			if strings.HasSuffix(u.Path, endpoint) {
				endpoint = strings.TrimPrefix(endpoint, "/v1")
				// A whole endpoint pasted as the base: every call would go
				// to a path that does not exist, and its 404 would read
				// as a missing model.
				base := *u
				base.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, endpoint), "/v1")
				return nil, fmt.Errorf("inference: %s: %q is an endpoint, not the router's base URL: pass %q (the client adds /v1%s itself)",
					opt, safeURL(raw), base.String(), endpoint)
			}
		}
		// The router's API lives under /v1, which OpenAI clients put in
		// the base URL; the client adds it itself.
		u.Path = strings.TrimSuffix(u.Path, "/v1")
	}
	u.RawPath = ""
	return u, nil
}

// withoutUserInfo is raw with any user info replaced, for a URL the
// client requested or was redirected to; its query is the client's own.
func withoutUserInfo(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return safeURL(raw)
	}
	if u.User != nil {
		u.User = url.User("redacted")
	}
	return u.String()
}

// safeURL is a URL fit for an error message: user info and query values
// replaced, fragments dropped, and anything shaped like a token redacted.
func safeURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		// Not parsable: cut what could be user info or a query.
		s := raw
		if at := strings.LastIndex(s, "@"); at >= 0 {
			s = "[redacted]@" + s[at+1:]
			if i := strings.Index(raw, "//"); i >= 0 && i < at {
				s = raw[:i+2] + s
			}
		}
		if q := strings.IndexAny(s, "?#"); q >= 0 {
			s = s[:q] + "?[redacted]"
		}
		return redact.String(s)
	}
	if u.User != nil {
		u.User = url.User("redacted")
	}
	if u.RawQuery != "" {
		u.RawQuery = "[redacted]"
	}
	u.Fragment, u.RawFragment = "", ""
	return redact.String(u.String())
}

// checkTransportSecurity refuses a plain-http endpoint off loopback unless
// WithInsecureHTTP was given.
func checkTransportSecurity(opt string, u *url.URL, allowHTTP bool) error {
	if u.Scheme == "https" || allowHTTP || isLoopback(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("inference: %s: %q would send the token in clear text: use https, or WithInsecureHTTP() for a trusted network", opt, u.String())
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// hostSet is the origins (scheme and host with port) that may receive the
// token.
type hostSet []string

func origin(u *url.URL) string { return u.Scheme + "://" + u.Host }

func (h hostSet) allows(u *url.URL) bool {
	o := origin(u)
	for _, allowed := range h {
		if o == allowed {
			return true
		}
	}
	return false
}
