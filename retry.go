package inference

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// retryAfter reads how long the server asked the caller to wait: from
// retry-after-ms, else Retry-After (delay-seconds or an HTTP date), else the
// Hub's RateLimit header when its remaining count r is 0. It returns 0 when
// none says, and never a negative duration.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 && ms < 1e12 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil {
			if s > 0 && s < 1e9 {
				return time.Duration(s * float64(time.Second))
			}
			return 0
		}
		if t, err := http.ParseTime(v); err == nil {
			if d := t.Sub(now); d > 0 {
				return d
			}
			return 0
		}
	}
	if v := h.Get("RateLimit"); v != "" {
		return rateLimitReset(v)
	}
	return 0
}

// rateLimitReset reads the IETF draft header the Hub sends,
// `"api";r=0;t=55`: when nothing remains (r=0), wait t seconds.
func rateLimitReset(v string) time.Duration {
	var remaining, reset = -1, -1
	for _, part := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil {
			continue
		}
		switch strings.TrimSpace(k) {
		case "r":
			remaining = n
		case "t":
			reset = n
		}
	}
	if remaining == 0 && reset > 0 {
		return time.Duration(reset) * time.Second
	}
	return 0
}

// RetryPolicy bounds the retries of one candidate (one model and provider).
// Only connection failures, 5xx answers and 429s are retried; a 429 or 5xx
// whose Retry-After asks for longer than MaxWait is not waited for.
type RetryPolicy struct {
	// MaxRetries is how many times a failed attempt is repeated; 0 means
	// no retry.
	MaxRetries int
	// MinWait is the first backoff; zero means 500 ms.
	MinWait time.Duration
	// MaxWait caps every wait, including one a server asks for; zero
	// means 8 s.
	MaxWait time.Duration
}

// Defaults of [RetryPolicy], used when no [WithRetry] is given.
const (
	DefaultMaxRetries = 2
	DefaultMinWait    = 500 * time.Millisecond
	DefaultMaxWait    = 8 * time.Second
	// DefaultCooldown is how long a failing candidate is skipped.
	DefaultCooldown = 30 * time.Second
	// DefaultAttemptTimeout bounds the time spent on one candidate.
	DefaultAttemptTimeout = 2 * time.Minute
)

// withDefaults fills the zero waits.
func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MinWait == 0 {
		p.MinWait = DefaultMinWait
	}
	if p.MaxWait == 0 {
		p.MaxWait = DefaultMaxWait
	}
	return p
}

// newRetryClient builds the one retry loop of the client, go-retryablehttp
// used as it is meant to be: it replays the request body, drains discarded
// answers, sleeps with the context, and gives up after p.MaxRetries; the
// policy below decides which answers are worth another try and how long to
// wait. When it gives up, it hands back the last answer (or transport
// error) for the caller to classify.
//
// Giving up makes retryablehttp call the http.Client's
// CloseIdleConnections, which reaches the transport only when the
// outermost RoundTripper has that method; the client's middleware chain
// does not, so the pool survives (TestGivingUpKeepsThePool).
func newRetryClient(hc *http.Client, p RetryPolicy) *retryablehttp.Client {
	return &retryablehttp.Client{
		HTTPClient:   hc,
		RetryWaitMin: p.MinWait,
		RetryWaitMax: p.MaxWait,
		RetryMax:     p.MaxRetries,
		RequestLogHook: func(_ retryablehttp.Logger, r *http.Request, n int) {
			if st := attemptFrom(r.Context()); st != nil {
				st.retries = n
				st.tried()
			}
		},
		CheckRetry: func(ctx context.Context, resp *http.Response, err error) (bool, error) {
			retry, err := shouldRetry(ctx, p, resp, err)
			if st := attemptFrom(ctx); retry && st != nil {
				st.backoff()
			}
			return retry, err
		},
		Backoff: func(minWait, maxWait time.Duration, n int, resp *http.Response) time.Duration {
			return backoff(minWait, maxWait, n, resp, time.Now())
		},
		ErrorHandler: func(resp *http.Response, err error, _ int) (*http.Response, error) {
			if err != nil {
				if resp != nil {
					resp.Body.Close()
				}
				return nil, err
			}
			return resp, nil
		},
	}
}

// shouldRetry retries connection failures, 5xx answers (gateway pages
// included) and 429s, never other 4xx, and never once the context has
// ended. An answer that asks for a longer wait than MaxWait is not waited
// for: the caller moves on and the candidate cools down instead.
func shouldRetry(ctx context.Context, p RetryPolicy, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		if errors.As(err, new(refusedRedirect)) {
			return false, err
		}
		// retryablehttp knows which transport errors are permanent
		// (redirect loops, bad schemes, untrusted certificates).
		retry, _ := retryablehttp.DefaultRetryPolicy(ctx, nil, err)
		return retry, err
	}
	if !retryableStatus(resp.StatusCode) {
		return false, nil
	}
	if wait := retryAfter(resp.Header, time.Now()); wait > p.MaxWait {
		return false, nil
	}
	return true, nil
}

// retryableStatus is the classifier's view of which answers may succeed if
// sent again unchanged: rate limits and server-side failures.
func retryableStatus(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusRequestTimeout ||
		(status >= 500 && status != http.StatusNotImplemented && status != http.StatusHTTPVersionNotSupported)
}

// backoff waits what the server asked for when it said, else an exponential
// delay from minWait, doubling per attempt, capped at maxWait, with jitter so
// that many clients do not retry in step.
func backoff(minWait, maxWait time.Duration, n int, resp *http.Response, now time.Time) time.Duration {
	if resp != nil {
		if wait := retryAfter(resp.Header, now); wait > 0 {
			return min(wait, maxWait)
		}
	}
	d := minWait
	for i := 0; i < n && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	// Equal jitter: half fixed, half random, never below minWait.
	half := d / 2
	d = half + rand.N(half+1)
	return max(d, minWait)
}
