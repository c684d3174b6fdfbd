package inference

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/hfkit/inference/internal/redact"
)

// Middleware wraps the transport that carries each HTTP attempt. It must not
// modify the request it is given (clone it first), must close the request
// body on its own error paths, and should pass responses through unchanged:
// turning a status into an error is the client's job. See [WithMiddleware]
// for the order in which middlewares run.
type Middleware func(next http.RoundTripper) http.RoundTripper

// RoundTripperFunc lets an ordinary function serve as an http.RoundTripper,
// which is handy for writing a [Middleware].
type RoundTripperFunc func(*http.Request) (*http.Response, error)

// RoundTrip calls f(r).
func (f RoundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// authMiddleware adds the call's token to requests for the router and the
// Hub only, and strips any Authorization header from requests to other
// origins, so that a redirect to another host (or from https to http) never
// carries the token.
func authMiddleware(allowed hostSet) Middleware {
	return func(next http.RoundTripper) http.RoundTripper {
		return RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
			st := attemptFrom(r.Context())
			send := st != nil && !st.token.IsZero() && allowed.allows(r.URL)
			if !send && r.Header.Get("Authorization") == "" {
				return next.RoundTrip(r)
			}
			// A shallow copy with its own header map: the caller's request
			// is not modified, and the header values are shared, not copied.
			r2 := new(http.Request)
			*r2 = *r
			r2.Header = make(http.Header, len(r.Header)+1)
			for k, v := range r.Header {
				if k != "Authorization" {
					r2.Header[k] = v
				}
			}
			if send {
				r2.Header["Authorization"] = st.token.authorization()
			}
			return next.RoundTrip(r2)
		})
	}
}

// keepHeadersOnOrigin is the redirect policy of the client's requests:
// their own headers (the organization billed, the call's headers, a
// provider protocol's, the Referer Go adds) go only to the origin each
// request was made to. A redirect to another host, such as a provider's
// own API host the router's answer names, carries what any HTTP client
// sends (Accept, User-Agent, Content-Type); Go itself drops only
// Authorization and cookies there, and authMiddleware adds the token to
// the router and the Hub alone. next, the caller's policy (nil: Go's,
// which stops after 10 redirects), decides then.
func keepHeadersOnOrigin(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if origin(req.URL) != origin(via[0].URL) {
			for k := range req.Header {
				switch k {
				case "Accept", "User-Agent", "Content-Type":
				default:
					delete(req.Header, k)
				}
			}
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects") // Go's words, which the retry loop knows
		}
		return nil
	}
}

// logMiddleware logs each HTTP attempt at debug: the lines a person
// debugging a 403 needs (which model and provider, which token source and
// whether it is OAuth, the status and request id), never the token.
func logMiddleware(logger *slog.Logger) Middleware {
	return func(next http.RoundTripper) http.RoundTripper {
		return RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
			ctx := r.Context()
			if !logger.Enabled(ctx, slog.LevelDebug) {
				return next.RoundTrip(r)
			}
			start := time.Now()
			resp, err := next.RoundTrip(r)
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("host", r.URL.Host),
				slog.Duration("duration", time.Since(start)),
			}
			// Header values come from the server, which may echo the token.
			secret := ""
			st := attemptFrom(ctx)
			if st != nil {
				secret = st.token.value()
				attrs = append(attrs,
					slog.String("model", st.cand.Model),
					slog.String("provider", st.cand.Provider),
					slog.String("token_source", st.token.Source),
					slog.Bool("oauth", st.token.OAuth),
					slog.String("token", st.token.Redacted()),
					slog.Int("retry", st.retries),
				)
			}
			if err != nil {
				attrs = append(attrs, slog.String("error", cleanText(redact.String(err.Error(), secret), 512)))
			} else {
				attrs = append(attrs, slog.Int("status", resp.StatusCode))
				if id := requestID(resp.Header); id != "" {
					attrs = append(attrs, slog.String("request_id", cleanText(redact.String(id, secret), 256)))
				}
				if p := resp.Header.Get("X-Inference-Provider"); p != "" {
					attrs = append(attrs, slog.String("served_by", cleanText(redact.String(p, secret), 64)))
				}
			}
			logger.LogAttrs(ctx, slog.LevelDebug, "inference: http attempt", attrs...)
			return resp, err
		})
	}
}

// defaultTransport suits many concurrent calls to one host: Go's default
// keeps only two idle connections per host, which under fan-out closes and
// reopens connections on most calls.
func defaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 128
	t.IdleConnTimeout = 90 * time.Second
	t.ForceAttemptHTTP2 = true
	return t
}
