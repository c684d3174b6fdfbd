package inference

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The kinds of failure. Every error this package returns for a failed call
// matches exactly one of them with [errors.Is]; an [*APIError] carries the
// details. The fallback walk decides what to do next from the kind alone.
var (
	// ErrNoToken means no token source yielded a token, so nothing was sent.
	ErrNoToken = errors.New("inference: no Hugging Face token found: set HF_TOKEN to a token from https://huggingface-proxy-6ci.pages.dev/settings/tokens, run `hf auth login`, or log the user in with OAuth and pass WithTokenSource(OAuthToken(...))")

	// ErrInvalidToken means a token was found but cannot be one (empty,
	// "None", inner whitespace, a printed object instead of its string), so
	// nothing was sent.
	ErrInvalidToken = errors.New("inference: the token is not a valid Hugging Face token")

	// ErrUnauthorized means the server refused the credentials: an invalid or
	// expired token (401), or a 403 that is neither a missing scope nor a
	// gated model (an organization that requires fine-grained tokens, a
	// disabled resource).
	ErrUnauthorized = errors.New("inference: the token was refused")

	// ErrMissingScope means the token is valid but may not call Inference
	// Providers: an OAuth token without the inference-api scope, or an
	// access token without the "Make calls to Inference Providers" permission.
	ErrMissingScope = errors.New("inference: the token may not call Inference Providers")

	// ErrGatedModel means the model is gated and the token's user has not
	// been granted access.
	ErrGatedModel = errors.New("inference: the model is gated")

	// ErrModelNotFound means the model does not exist, or is private.
	ErrModelNotFound = errors.New("inference: the model was not found")

	// ErrModelNotSupported means the model exists but no enabled provider, or
	// not the provider asked for, serves it.
	ErrModelNotSupported = errors.New("inference: the model is not served by the provider")

	// ErrPaymentRequired means the account's Inference Providers credits are
	// depleted. It would fail for every model and provider.
	ErrPaymentRequired = errors.New("inference: payment required")

	// ErrRateLimited means a 429: too many requests or tokens for now.
	ErrRateLimited = errors.New("inference: rate limited")

	// ErrInvalidRequest means the request itself was refused (400, 422).
	ErrInvalidRequest = errors.New("inference: the request was refused")

	// ErrProvider means the provider or a gateway failed: a 5xx, an HTML
	// gateway page, a connection failure, an attempt that timed out, or a
	// success status whose body is not a chat completion.
	ErrProvider = errors.New("inference: the provider failed")

	// ErrStream means a stream failed after it had started.
	ErrStream = errors.New("inference: the stream failed")
)

// kinds lists every kind once, in a fixed order, for code that needs to walk
// them (tests, and the text of a fallback error).
var kinds = []error{
	ErrNoToken, ErrInvalidToken, ErrUnauthorized, ErrMissingScope, ErrGatedModel,
	ErrModelNotFound, ErrModelNotSupported, ErrPaymentRequired, ErrRateLimited,
	ErrInvalidRequest, ErrProvider, ErrStream,
}

// Limits on what an error keeps from a server.
const (
	// maxErrorBody is how much of an error body is read. The rest is
	// discarded with the connection: a server that sends 64 MiB of error
	// costs 64 KiB.
	maxErrorBody = 64 << 10
	// maxMessageLen bounds APIError.Message, so that error text stays short
	// whatever the server sent.
	maxMessageLen = 2048
)

// APIError is a failed call, classified. Use [errors.Is] with the Err kinds
// to branch, and [errors.As] to read the details:
//
//	var apiErr *inference.APIError
//	if errors.As(err, &apiErr) {
//		log.Println(apiErr.StatusCode, apiErr.RequestID, apiErr.Provider)
//	}
//
// Every text field is bounded and has any token the server echoed removed.
type APIError struct {
	// Kind is the sentinel this error matches, such as ErrGatedModel.
	Kind error
	// StatusCode is the HTTP status, or 0 when no response arrived.
	StatusCode int
	// Code is the machine-readable code the server gave, if any: the
	// X-Error-Code header, the body's code or error_type, or a provider's
	// reason.
	Code string
	// Message is the server's own explanation, at most 2 KiB. It is empty
	// when the server sent an HTML page: those are never shown.
	Message string
	// RequestID identifies the request for Hugging Face support: the
	// X-Request-Id header, else X-Amzn-Trace-Id, else X-Amz-Cf-Id, else a
	// provider's X-Trace-Id.
	RequestID string
	// Model is the model that was asked for.
	Model string
	// Provider is the provider that answered (X-Inference-Provider), else
	// the one asked for; empty when the router chose.
	Provider string
	// RetryAfter is how long the server asked the caller to wait, from
	// retry-after-ms, Retry-After (seconds or HTTP date) or the Hub's
	// RateLimit header; zero when it did not say.
	RetryAfter time.Duration
	// FromProvider reports whether the answer came from a provider behind
	// the router (an X-Inference-Provider header or a provider's own body
	// shape) rather than from the router or the Hub.
	FromProvider bool
	// Cause is the transport error when no response arrived (connection
	// refused, reset, attempt timeout), else nil. Its text holds no token
	// (a redirect's Location may echo one); use errors.As on it to reach a
	// *net.OpError or *url.Error.
	Cause error

	hubURL string
}

// Error says what happened in the server's words, what to do about it, and
// the request id to quote to support.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.kindText())
	b.WriteString(" (")
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
	} else {
		b.WriteString("no response")
	}
	if e.Model != "" {
		b.WriteString(", model ")
		b.WriteString(e.Model)
	}
	if e.Provider != "" {
		b.WriteString(", provider ")
		b.WriteString(e.Provider)
	}
	b.WriteString(")")
	switch {
	case e.Message != "":
		b.WriteString(": ")
		b.WriteString(strings.TrimRight(e.Message, ". "))
	case http.StatusText(e.StatusCode) != "":
		b.WriteString(": ")
		b.WriteString(http.StatusText(e.StatusCode))
	}
	if hint := e.hint(); hint != "" {
		b.WriteString(". ")
		b.WriteString(hint)
	}
	if e.RequestID != "" {
		b.WriteString(" (request id ")
		b.WriteString(e.RequestID)
		b.WriteString(")")
	}
	return b.String()
}

// Is reports whether target is this error's kind.
func (e *APIError) Is(target error) bool { return target != nil && target == e.Kind }

// Unwrap returns the transport error, if any, so that callers can inspect a
// *net.OpError or a *url.Error.
func (e *APIError) Unwrap() error { return e.Cause }

func (e *APIError) kindText() string {
	if e.Kind == nil {
		return "inference: request failed"
	}
	return e.Kind.Error()
}

// hint is the "what to do" part of the message: the troubleshooting page's
// fixes, in one sentence each.
func (e *APIError) hint() string {
	hub := e.hubURL
	if hub == "" {
		hub = defaultHubURL
	}
	switch e.Kind {
	case ErrMissingScope:
		return "Log the user in again with the OAuth scope \"inference-api\" (in a Space, add it to hf_oauth_scopes), " +
			"or use an access token with the fine-grained permission \"Make calls to Inference Providers\" (inference.serverless.write): " +
			hub + "/settings/tokens/new?ownUserPermissions=inference.serverless.write&tokenType=fineGrained"
	case ErrUnauthorized:
		if e.StatusCode == http.StatusForbidden {
			return "The token may not use this resource: if the organization requires fine-grained tokens, create one at " + hub + "/settings/tokens, otherwise check the token's permissions"
		}
		return "The token is invalid or expired: create a new one at " + hub + "/settings/tokens, or log in again"
	case ErrGatedModel:
		if e.Model != "" && strings.Contains(e.Message, hub+"/"+e.Model) {
			// The server's message links the same page already.
			return "Request access on that page and wait for approval, or use another model"
		}
		if e.Model != "" {
			return "Request access at " + hub + "/" + e.Model + " and wait for approval, or use another model"
		}
		return "Request access on the model's page and wait for approval, or use another model"
	case ErrModelNotFound:
		return "Check the model id; models served by Inference Providers are listed at " + hub + "/models?inference_provider=all"
	case ErrModelNotSupported:
		return "Use provider \"auto\", pick a provider that serves the model, or enable more providers at " + hub + "/settings/inference-providers"
	case ErrPaymentRequired:
		return "The account's Inference Providers credits are depleted: buy pre-paid credits or subscribe to PRO at " + hub + "/settings/billing"
	case ErrRateLimited:
		if e.RetryAfter > 0 {
			return "Wait " + e.RetryAfter.String() + " before retrying, or use another provider"
		}
		return "Slow down, or use another provider"
	case ErrInvalidRequest:
		return "Check the request's parameters against what the model and provider accept"
	case ErrProvider:
		return "Retry later, or use another provider or model"
	case ErrStream:
		return "What arrived before the failure is kept (ChatStream.Response); send the request again for a whole answer"
	}
	return ""
}
