package inference

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Attempt is one candidate tried during a call, and how it ended.
type Attempt struct {
	Candidate
	// Err is nil for the attempt that served the answer.
	Err error
	// StatusCode is the final HTTP status, or 0 when none arrived.
	StatusCode int
	// RequestID is the request id of the final answer, if any.
	RequestID string
	// RoutedTo is the provider the router sent the attempt to, as its
	// final answer named it (X-Inference-Provider), or "" when no answer
	// named one. For a candidate that leaves the provider to the router
	// (Provider "" or "auto"), it is the provider the router chose.
	RoutedTo string
	// TokenSource is the source of the token sent.
	TokenSource string
	// Retries is how many times the attempt was repeated.
	Retries int
	// Duration is the time the attempt took, retries and waits included;
	// for a stream, until its first content, or until it failed.
	Duration time.Duration
	// TimedOut names the client's limit that ended the attempt, if one
	// did: TimeoutAttempt, TimeoutFirstToken, TimeoutStreamIdle or
	// TimeoutJob.
	TimedOut Timeout
	// Hedge marks the attempt sent as a hedge ([WithHedge]): the next
	// candidate, started because the one before it had not answered in
	// the hedge delay. Lost marks the attempt of a hedged pair that was
	// cancelled because the other answered first: it is not a failure
	// (Err is nil), it cooled nothing and it delivered nothing.
	Hedge bool
	Lost  bool
}

// Timeout names one of the client's time limits on an attempt.
type Timeout string

// The limits that can end an attempt.
const (
	// TimeoutAttempt is WithAttemptTimeout: one candidate, retries
	// included, until an answer (for a stream, its first chunk).
	TimeoutAttempt Timeout = "attempt"
	// TimeoutFirstToken is WithFirstTokenTimeout: one HTTP try of a
	// stream, from sending to its first chunk with content.
	TimeoutFirstToken Timeout = "first token"
	// TimeoutStreamIdle is WithStreamIdleTimeout: the longest silence
	// between two events of an open stream.
	TimeoutStreamIdle Timeout = "stream idle"
	// TimeoutJob is WithJobDeadline: a provider's queued job (an image,
	// a transcript, speech), from its submission to its result.
	TimeoutJob Timeout = "job"
)

// timeoutError is the cause of an attempt that one of the client's limits
// ended, as opposed to the caller's context.
type timeoutError struct {
	limit Timeout
	d     time.Duration
}

func (e timeoutError) Error() string {
	switch e.limit {
	case TimeoutFirstToken:
		return fmt.Sprintf("no content within the first-token timeout of %s", e.d)
	case TimeoutStreamIdle:
		return fmt.Sprintf("no event within the stream idle timeout of %s", e.d)
	case TimeoutJob:
		return fmt.Sprintf("the job did not finish within the job deadline of %s", e.d)
	}
	return fmt.Sprintf("no answer within the attempt timeout of %s", e.d)
}

// timedOut is the limit that ended an attempt with err, or "".
func timedOut(err error) Timeout {
	// A walk down the chain by hand: errors.As would move its target to
	// the heap on every attempt, served ones included.
	for ; err != nil; err = errors.Unwrap(err) {
		if te, ok := err.(timeoutError); ok {
			return te.limit
		}
	}
	return ""
}

// summary is one attempt in a FallbackError's paragraph: the candidate, the
// token source, and why it failed, short.
func (a Attempt) summary() string {
	var b strings.Builder
	b.WriteString(a.Candidate.String())
	if a.TokenSource != "" {
		b.WriteString(" (token from ")
		b.WriteString(a.TokenSource)
		b.WriteString(")")
	}
	b.WriteString(": ")
	var apiErr *APIError
	switch {
	case a.Lost:
		b.WriteString("cancelled: the other of a hedged pair answered first")
		return b.String()
	case a.Err == nil:
		b.WriteString("served")
		return b.String()
	case errors.As(a.Err, &apiErr):
		b.WriteString(apiErr.render(formSummary))
	default:
		b.WriteString(strings.TrimPrefix(a.Err.Error(), "inference: "))
	}
	if a.Retries > 0 {
		fmt.Fprintf(&b, ", after %d %s", a.Retries, plural(a.Retries, "retry", "retries"))
	}
	if apiErr != nil && apiErr.RequestID != "" {
		b.WriteString(", request id ")
		b.WriteString(apiErr.RequestID)
	}
	return b.String()
}

// Kind returns the kind of the attempt's failure, the sentinel it matches
// (such as [ErrGatedModel]), or nil for the attempt that served the answer
// or a failure of no kind (a cancelled context). [KindName] of a.Err is the
// same kind's name as text ("gated_model").
func (a Attempt) Kind() error {
	var apiErr *APIError
	if errors.As(a.Err, &apiErr) {
		return apiErr.Kind
	}
	for _, k := range kinds {
		if errors.Is(a.Err, k) {
			return k
		}
	}
	return nil
}

// attemptState is what one call tells the transport chain about the
// request in flight: which token to send, for which candidate, and where
// the retry count is kept. It travels in the request's context because it
// belongs to that request alone; configuration never does.
type attemptState struct {
	token Token
	cand  Candidate
	// retries is how many times the retry loop has sent the request
	// again, as go-retryablehttp numbers its attempts; it is written only by
	// the goroutine running the call.
	retries int
	// hooks are called before each HTTP try (onTry) and when a try's
	// answer is to be retried (onBackoff): the race's hedge clock and a
	// stream's first-token limit run during tries, not during the waits
	// between them. They come from the attempt's arguments (exchange),
	// never from a context.
	hooks [2]tryHooks
}

// tried and backoff call the attempt's hooks.
func (st *attemptState) tried() {
	for _, h := range st.hooks {
		if h.onTry != nil {
			h.onTry()
		}
	}
}

func (st *attemptState) backoff() {
	for _, h := range st.hooks {
		if h.onBackoff != nil {
			h.onBackoff()
		}
	}
}

type attemptKey struct{}

// attemptContext carries an attemptState: one allocation where
// context.WithValue and the state would take two.
type attemptContext struct {
	context.Context
	st attemptState
}

func (c *attemptContext) Value(key any) any {
	if key == (attemptKey{}) {
		return &c.st
	}
	return c.Context.Value(key)
}

// withAttempt returns ctx carrying a new attemptState for token and
// candidate, and that state.
func withAttempt(ctx context.Context, token Token, cand Candidate) (context.Context, *attemptState) {
	c := &attemptContext{Context: ctx, st: attemptState{token: token, cand: cand}}
	return c, &c.st
}

func attemptFrom(ctx context.Context) *attemptState {
	st, _ := ctx.Value(attemptKey{}).(*attemptState)
	return st
}
