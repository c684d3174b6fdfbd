package inference

import (
	"fmt"
	"time"
)

// Defaults of the options that shape images and audio ([Client.TextToImage],
// [Client.Transcribe], [Client.Speak]).
const (
	// DefaultJobDeadline bounds a provider's queued job, from its
	// submission to its result: long enough for a busy queue, short enough
	// that a stuck one gives way to the next provider.
	DefaultJobDeadline = 5 * time.Minute
	// DefaultJobPoll is the wait before a queued job's first poll, as
	// @huggingface/inference polls; the wait grows by half at each poll,
	// up to DefaultJobPollMax.
	DefaultJobPoll    = 500 * time.Millisecond
	DefaultJobPollMax = 4 * time.Second
	// DefaultMaxResultSize caps a result file (an image, audio), decoded.
	DefaultMaxResultSize = 64 << 20
)

// JobProgress is where a provider's queued job stands, as [WithProgress]
// hears of it.
type JobProgress struct {
	// Candidate is the model and provider the job runs at.
	Candidate Candidate
	// JobID is the provider's id of the job (fal's request id, Replicate's
	// prediction id).
	JobID string
	// Status is the provider's own word: "IN_QUEUE", "IN_PROGRESS" (fal),
	// "starting", "processing" (Replicate), "created", "PROCESSING"...
	Status string
	// QueuePosition is the job's place in the provider's queue (0: next),
	// or -1 when the provider does not say.
	QueuePosition int
	// Polls counts the polls so far: 0 when the provider has just
	// accepted the job.
	Polls int
	// Elapsed is the time since the job was submitted.
	Elapsed time.Duration
}

// WithJobDeadline bounds each provider's queued job (fal-ai's queue, a
// Replicate prediction, wavespeed's and zai-org's tasks), from its
// submission to its result. When it passes, the provider's job is
// cancelled, the attempt fails with [ErrProvider] and [Attempt.TimedOut]
// [TimeoutJob], and the walk goes to the next provider. The call's context
// bounds the job too. Zero means no bound but the context's; the default
// is [DefaultJobDeadline]. Each HTTP request of a job (the submission,
// each poll, the result, the file's download) is bounded by the attempt
// timeout ([WithAttemptTimeout]) on its own. It may be given per call or
// to the client.
func WithJobDeadline(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return fmt.Errorf("inference: WithJobDeadline: negative duration %s", d)
		}
		s.jobDeadline = d
		return nil
	}
}

// WithJobPolling sets how often a queued job is polled: first after it is
// accepted, then each wait half again as long as the one before, up to
// max. The defaults are [DefaultJobPoll] and [DefaultJobPollMax]. It may
// be given per call or to the client (inferencetest's Router.Client polls
// every few milliseconds).
func WithJobPolling(first, max time.Duration) Option {
	return func(s *settings) error {
		if first <= 0 || max < first {
			return fmt.Errorf("inference: WithJobPolling: want 0 < first <= max, got %s and %s", first, max)
		}
		s.pollFirst, s.pollMax = first, max
		return nil
	}
}

// WithProgress calls fn with where a provider's queued job stands: once
// when the provider accepts it, then after each poll (for a progress bar
// around image generation). fn is called on the attempt's goroutine, which
// waits for it: it must return quickly. With [WithHedge], two attempts may
// call it at once, each about its own job, so it must be safe for
// concurrent use. Answers that come at once, and a job done when it is
// submitted, call it never. A panic in fn cancels the provider's job, then
// goes on up the attempt's goroutine: the caller's, where it may be
// recovered, except when [WithHedge] runs attempts on goroutines of their
// own (a call with a candidate to hedge to), where it ends the program. It
// may be given per call or to the client.
func WithProgress(fn func(JobProgress)) Option {
	return func(s *settings) error {
		if fn == nil {
			return fmt.Errorf("inference: WithProgress: nil function")
		}
		s.progress = fn
		return nil
	}
}

// WithMaxResultSize caps a result file (an image, audio) at n bytes,
// decoded; an answer over the cap is an [ErrProvider] attempt (read no
// further than the cap plus one byte) and the walk goes on. The default is
// [DefaultMaxResultSize]. It may be given per call or to the client.
func WithMaxResultSize(n int64) Option {
	return func(s *settings) error {
		if n <= 0 {
			return fmt.Errorf("inference: WithMaxResultSize: %d is not positive", n)
		}
		s.maxResult = n
		return nil
	}
}

// WithResultURL returns a result file's URL, where the provider left it (a
// CDN's), instead of downloading it: the response's URL is set and its
// bytes are nil. A provider that answers with the file itself (hf-inference,
// a base64 answer, a data URL) has no URL to give: its bytes are returned.
// It may be given per call or to the client.
func WithResultURL() Option {
	return func(s *settings) error {
		s.resultURL = true
		return nil
	}
}
