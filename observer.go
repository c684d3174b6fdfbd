package inference

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// Observer hears of a client's calls as they happen, to feed traces and
// metrics: github.com/hfkit/inference/otelinference is one, over
// OpenTelemetry. Give it to [WithObserver]; without one, nothing is
// observed and nothing is spent on it.
//
// StartCall is called once per call (Chat, ChatStream, each ask of
// ChatJSON, Embed, Respond, TextToImage, ...) and returns the context the
// call goes on with (it may carry a span, which attempts and their HTTP
// requests inherit) and the observer of that call. Observers are called synchronously on the call's path:
// they must be quick and safe for concurrent use. Nothing they are given
// holds a token: only the name of its source.
type Observer interface {
	StartCall(ctx context.Context, call CallInfo) (context.Context, CallObserver)
}

// CallInfo describes a call as it starts: what was asked, never the
// messages.
type CallInfo struct {
	// Operation is "chat" (Chat, ChatStream, ChatJSON, and the Responses
	// API), "embeddings", "text_to_image", "speech_to_text" or
	// "text_to_speech".
	Operation string
	// Model and Provider are the request's own candidate.
	Model, Provider string
	// Stream reports a ChatStream call.
	Stream bool
	// ServerAddress and ServerPort are the router's host and port.
	ServerAddress string
	ServerPort    int
	// The request's parameters, as set (zero or nil when not set).
	MaxTokens        int
	Temperature      *float64
	TopP             *float64
	FrequencyPenalty *float64
	PresencePenalty  *float64
	Seed             *int64
	StopSequences    []string
	// ChoiceCount is how many choices were asked for (Extra["n"]), 1 by
	// default.
	ChoiceCount int
	// OutputType is "json" when the request asks for JSON
	// (ResponseFormat), else "".
	OutputType string
}

// ChunkObserver is a [CallObserver] that also hears of each chunk with
// content after a stream's first, with the time since the previous one
// (for a time-per-chunk metric). The stream calls Chunk only when its
// call's observer implements it, so others pay nothing per chunk.
type ChunkObserver interface {
	Chunk(sincePrevious time.Duration)
}

// CallObserver hears of one call, from its start to its end.
type CallObserver interface {
	// Skipped is a candidate not tried because it was cooling down: when
	// the call was planned, or, with a shared store that gives probes,
	// when the walk reached it and another replica was probing it.
	Skipped(c Candidate)
	// StartAttempt is an attempt starting at a candidate with a token
	// from the named source; the context it returns is the attempt's,
	// and its HTTP requests'. It should derive from ctx; whatever it
	// returns, the attempt carries its values (then ctx's) and ends when
	// ctx ends (a hedge's loser, a cancelled call), not otherwise.
	StartAttempt(ctx context.Context, c Candidate, tokenSource string) context.Context
	// EndAttempt is the attempt's end, with its record (its Err is nil
	// for the attempt that served; a stream's serving attempt ends with
	// the stream). ctx is the one StartAttempt returned.
	EndAttempt(ctx context.Context, a Attempt)
	// Moved is the walk going from a failed candidate to the next one,
	// for err; a stream restarted on the same candidate moves to itself.
	Moved(from, to Candidate, err error)
	// FirstChunk is a stream's first chunk with content delivered, after
	// elapsed from the call's start.
	FirstChunk(elapsed time.Duration)
	// End is the call's end: what it delivered (for a stream, until it
	// ended) and its error, which is nil for a success. A failed call's
	// result has its attempts and skipped candidates only.
	End(res CallResult, err error)
}

// CallResult is what a call delivered, as its observer hears of it at its
// end, whatever the operation.
type CallResult struct {
	// ID, Model and Provider name the answer: its id, the model as the
	// provider named it, and the provider that served it.
	ID, Model, Provider string
	// FinishReasons say why each choice of a generation ended ("stop",
	// "length", ...; a response's status).
	FinishReasons []string
	// Usage counts the tokens, when the provider reported them.
	Usage Usage
	// Attempts and Skipped are the walk: every attempt in order, and the
	// candidates skipped while cooling down.
	Attempts []Attempt
	Skipped  []Candidate
	// Chat is the answer of a chat call (for a stream, what it
	// delivered); nil for the other operations and for a failed call.
	Chat *ChatResponse
}

// KindName is the snake_case name of err's kind, such as "gated_model" for
// [ErrGatedModel] or "rate_limited" for [ErrRateLimited], for metrics and
// logs; "" when err matches no kind (nil, or a cancelled context). A kind is
// always one of the Err sentinels ([Attempt.Kind] returns it); KindName is
// its name as text, never a second classification.
func KindName(err error) string {
	if err == nil {
		return ""
	}
	for _, k := range kinds {
		if errors.Is(err, k) {
			return kindNames[k]
		}
	}
	return ""
}

var kindNames = map[error]string{
	ErrNoToken: "no_token", ErrInvalidToken: "invalid_token", ErrUnauthorized: "unauthorized",
	ErrMissingScope: "missing_scope", ErrGatedModel: "gated_model", ErrModelNotFound: "model_not_found",
	ErrModelNotSupported: "model_not_supported", ErrPaymentRequired: "payment_required",
	ErrRateLimited: "rate_limited", ErrInvalidRequest: "invalid_request", ErrProvider: "provider_error",
	ErrContextLength: "context_length", ErrStream: "stream_error",
}

// ErrStreamClosed is what [CallObserver.End] receives for a stream its
// reader closed before its end. No call returns it: it is not a failure.
var ErrStreamClosed = errors.New("inference: the stream was closed before its end")

// WithObserver makes the client report its calls to o; see [Observer].
// It may also be given per call.
func WithObserver(o Observer) Option {
	return func(s *settings) error {
		if o == nil {
			return errors.New("inference: WithObserver: nil Observer")
		}
		s.observer = o
		return nil
	}
}

// callInfo describes a chat call to an observer.
func (req *ChatRequest) callInfo(stream bool) CallInfo {
	info := CallInfo{Operation: "chat", Model: req.Model, Provider: req.Provider, Stream: stream,
		MaxTokens: req.MaxTokens, Temperature: req.Temperature, TopP: req.TopP,
		FrequencyPenalty: req.FrequencyPenalty, PresencePenalty: req.PresencePenalty, Seed: req.Seed,
		StopSequences: req.Stop, ChoiceCount: req.choiceCount()}
	if req.ResponseFormat != nil && req.ResponseFormat.Type != "" && req.ResponseFormat.Type != "text" {
		info.OutputType = "json"
	}
	return info
}

// callResult is a chat answer as an observer hears of it.
func (r *ChatResponse) callResult() CallResult {
	if r == nil {
		return CallResult{}
	}
	res := CallResult{ID: r.ID, Model: r.Model, Provider: r.Provider, Usage: r.Usage, Attempts: r.Attempts, Skipped: r.Skipped, Chat: r}
	for _, ch := range r.Choices {
		if ch.FinishReason != "" {
			res.FinishReasons = append(res.FinishReasons, ch.FinishReason)
		}
	}
	return res
}

// routerHostPort is the router's host and port, the port from the scheme
// when the URL names none.
func (c *Client) routerHostPort() (string, int) {
	port, err := strconv.Atoi(c.base.Port())
	if err != nil {
		port = 443
		if c.base.Scheme == "http" {
			port = 80
		}
	}
	return c.base.Hostname(), port
}
