package inference

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// newRetryClient builds the one retry loop of the client: retryablehttp
// replays the request body, drains discarded answers, and sleeps with the
// context; the policy below decides when, and how long.
//
// The attempt count is kept per call in attemptState rather than in
// retryablehttp's RetryMax: retryablehttp closes the client's idle
// connections whenever it gives up with retries exhausted, which would throw
// away the pool under load. Stopping from CheckRetry ends the loop as a normal
// answer instead, and the caller classifies it.
func newRetryClient(hc *http.Client, p RetryPolicy) *retryablehttp.Client {
	return &retryablehttp.Client{
		HTTPClient:   hc,
		RetryWaitMin: p.MinWait,
		RetryWaitMax: p.MaxWait,
		RetryMax:     math.MaxInt32,
		RequestLogHook: func(_ retryablehttp.Logger, r *http.Request, _ int) {
			if st := attemptFrom(r.Context()); st != nil {
				st.tries++
			}
		},
		CheckRetry: func(ctx context.Context, resp *http.Response, err error) (bool, error) {
			return shouldRetry(ctx, p, resp, err)
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
	if st := attemptFrom(ctx); st != nil && st.tries > p.MaxRetries {
		return false, err
	}
	if err != nil {
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
