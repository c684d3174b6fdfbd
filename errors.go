package inference

import (
	"encoding/json"
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

	// ErrContextLength means the input does not fit the model's context
	// (code context_length_exceeded, "maximum context length", TGI's
	// "`inputs` tokens + `max_new_tokens` must be <="). The walk moves to the
	// next candidate at once, which may have a longer context; when none
	// takes it, shorten the conversation (an agent compacts its context on
	// errors.Is(err, ErrContextLength)) or lower MaxTokens.
	ErrContextLength = errors.New("inference: the input is longer than the model's context")

	// ErrStream means a stream failed after it had started.
	ErrStream = errors.New("inference: the stream failed")
)

// requestError is a request the client refused before sending anything:
// a bad option, a malformed request, a nil context. It matches
// [ErrInvalidRequest], whose own text ("the request was refused") speaks
// of a server that refused it; this one says the request is invalid.
type requestError struct {
	msg   string
	cause error
}

func (e *requestError) Error() string { return "inference: the request is invalid: " + e.msg }

// Is reports ErrInvalidRequest, the kind of every request refused before
// it was sent.
func (e *requestError) Is(target error) bool { return target == ErrInvalidRequest }

// Unwrap returns the option's own error, if one was the cause.
func (e *requestError) Unwrap() error { return e.cause }

// configError is an option's refusal in NewClient: its own text, of the
// kind ErrInvalidRequest, as the same option's refusal per call is.
type configError struct{ err error }

func (e *configError) Error() string        { return e.err.Error() }
func (e *configError) Is(target error) bool { return target == ErrInvalidRequest }
func (e *configError) Unwrap() error        { return e.err }

// invalidRequest is a requestError whose text is format with args.
func invalidRequest(format string, args ...any) error {
	return &requestError{msg: fmt.Sprintf(format, args...)}
}

// invalidOption is the requestError of an option that refused its value:
// its text once, without a second package prefix.
func invalidOption(err error) error {
	return &requestError{msg: strings.TrimPrefix(err.Error(), "inference: "), cause: err}
}

// kinds lists every kind once, in a fixed order, for code that needs to walk
// them (tests, and the text of a fallback error).
var kinds = []error{
	ErrNoToken, ErrInvalidToken, ErrUnauthorized, ErrMissingScope, ErrGatedModel,
	ErrModelNotFound, ErrModelNotSupported, ErrPaymentRequired, ErrRateLimited,
	ErrInvalidRequest, ErrProvider, ErrContextLength, ErrStream,
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
// [APIError.Fix] is the "what to do" part of the text alone, for an app to
// show its user.
//
// Failures raised before anything is sent are not *APIError: [ErrNoToken]
// and [ErrInvalidToken] (wrapped, naming the token source), an invalid
// request or option ([ErrInvalidRequest], "the request is invalid: ..."),
// and a cancelled or expired context (matching context.Canceled or
// context.DeadlineExceeded). A call whose candidates all failed returns a
// [*FallbackError], whether it had one candidate or several: errors.As
// reaches the last attempt's *APIError through it, and its Attempts list
// every attempt. A stream that fails after its first content returns the
// *APIError itself ([ErrStream]), a later batch of embeddings an
// [*EmbedBatchError], and a [*JSONDecodeError] is a served answer that was
// not the JSON asked for.
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
	// BillTo is the organization the call was billed to ([WithBillTo]), if
	// any: a refusal, a spending limit or a provider the organization does
	// not allow is about it, and the hint names it.
	BillTo string
	// Cause is the transport error when no response arrived (connection
	// refused, reset, attempt timeout), else nil. Its text holds no token
	// (a redirect's Location may echo one); use errors.As on it to reach a
	// *net.OpError or *url.Error.
	Cause error

	hubURL string
	// billing says what about the billed organization went wrong, for the
	// hint: "refused", "limit" or "provider".
	billing string
	// recovering marks a stream's failure that WithStreamRecovery answered
	// by sending the request again, for the hint.
	recovering bool
	// overSize: the answer was larger than the call could take (a
	// result file over WithMaxResultSize, say): a per-call cap's refusal
	// says nothing of the candidate (see coolScope).
	overSize bool
	// fix, when set, is the hint: what to do is more particular than the
	// kind's (a per-token embeddings answer).
	fix string
	// zod is the issues of a request the Responses API could not
	// validate ({"success": false, "error": [...]}), for their text.
	zod json.RawMessage
}

// Error says what happened in the server's words, what to do about it, and
// the request id to quote to support.
func (e *APIError) Error() string { return e.render(formFull) }

// textForm is a way of showing an error: whole, or as a clause of a longer
// text.
type textForm int

const (
	// formFull is Error's text: "inference: the model is gated (HTTP 403,
	// model m, provider p): the server's words. What to do (request id r)".
	formFull textForm = iota
	// formSummary is one attempt in a fallback paragraph: "the model is
	// gated, HTTP 403, the server's words (at most 200 bytes)"; the request
	// id follows the retries, added by the caller.
	formSummary
	// formCause is a diagnosis's cause: "the model is gated (HTTP 403): the
	// server's words [request id r]"; the hint goes in the check's Fix.
	formCause
)

// render is the one place an error's text is built, in each form.
func (e *APIError) render(form textForm) string {
	var b strings.Builder
	kind := e.kindText()
	if form != formFull {
		kind = strings.TrimPrefix(kind, "inference: ")
	}
	b.WriteString(kind)
	switch form {
	case formFull:
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
	case formSummary:
		if e.StatusCode != 0 {
			fmt.Fprintf(&b, ", HTTP %d", e.StatusCode)
		}
	case formCause:
		if e.StatusCode != 0 {
			fmt.Fprintf(&b, " (HTTP %d)", e.StatusCode)
		}
	}
	words := e.Message
	if form == formFull && words == "" {
		words = http.StatusText(e.StatusCode)
	}
	if words != "" {
		switch form {
		case formFull:
			b.WriteString(": ")
			b.WriteString(strings.TrimRight(words, ". "))
		case formSummary:
			b.WriteString(", ")
			b.WriteString(cleanText(strings.TrimRight(words, ". "), 200))
		case formCause:
			b.WriteString(": ")
			b.WriteString(words)
		}
	}
	switch form {
	case formFull:
		if hint := e.hint(); hint != "" {
			b.WriteString(". ")
			b.WriteString(hint)
		}
		if e.RequestID != "" {
			b.WriteString(" (request id " + e.RequestID + ")")
		}
	case formCause:
		if e.RequestID != "" {
			b.WriteString(" [request id " + e.RequestID + "]")
		}
	}
	return b.String()
}

// Fix is what to do about the failure, the last part of Error's text: a
// sentence such as "Request access at https://huggingface-proxy-6ci.pages.dev/org/model and wait
// for approval, or use another model"; "" when there is nothing to do but
// report it.
func (e *APIError) Fix() string { return e.hint() }

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
	if e.fix != "" {
		return e.fix
	}
	return hintFor(e.Kind, hintFacts{hub: hubLinks(e.hubURL), status: e.StatusCode, model: e.Model,
		message: e.Message, code: e.Code, retryAfter: e.RetryAfter, billTo: e.BillTo, billing: e.billing,
		recovering: e.recovering, fromProvider: e.FromProvider})
}

// hintFacts is what a hint may name.
type hintFacts struct {
	hub        hubLinks
	status     int
	model      string
	message    string
	retryAfter time.Duration
	billTo     string
	billing    string
	code       string
	// recovering: the failure was a stream's, and WithStreamRecovery was
	// on, so the library itself sent the request again.
	recovering bool
	// fromProvider: a provider sent the answer (X-Inference-Provider).
	fromProvider bool
}

// hintFor is the table of hints, one per kind: what to do about a failure
// of that kind. An error's text and a diagnosis's fixes both come from it.
func hintFor(kind error, f hintFacts) string {
	switch org := f.billTo; {
	case org == "":
	case f.billing == "refused" || kind == ErrUnauthorized && f.status == http.StatusForbidden:
		return "The token may not bill the organization " + org + ": its user must be a member of " + org +
			" allowed to use its billing (" + f.hub.orgSettings(org, "members") + "); or call without WithBillTo to bill the user"
	case f.billing == "limit" || kind == ErrPaymentRequired:
		return "The organization " + org + " has reached its spending limit or has no credits left: its admins can raise the limit at " +
			f.hub.orgSettings(org, "billing") + "; or call without WithBillTo to bill the user"
	case f.billing == "provider":
		return "The organization " + org + " does not allow this provider: use another provider, or ask its admins to enable it at " +
			f.hub.orgSettings(org, "inference-providers")
	}
	switch kind {
	case ErrNoToken:
		return "export HF_TOKEN=your_token_here with a token from " + f.hub.tokens() + ", or run `hf auth login`; in an app with Hugging Face login, pass the user's token with OAuthToken"
	case ErrInvalidToken:
		return "Pass the token as a string (in Gradio, oauth_token.token, not the object), without quotes or spaces"
	case ErrMissingScope:
		return scopeFix + ", or use an access token with the fine-grained permission \"Make calls to Inference Providers\" (" +
			PermissionInferenceProviders + "): " + f.hub.fineGrainedToken()
	case ErrUnauthorized:
		if f.status == http.StatusForbidden {
			return "The token may not use this resource: if the organization requires fine-grained tokens, create one at " + f.hub.tokens() + ", otherwise check the token's permissions"
		}
		return "The token is invalid or expired: create a new one at " + f.hub.tokens() + ", or log in again"
	case ErrGatedModel:
		switch page := f.hub.model(f.model); {
		case f.model != "" && strings.Contains(f.message, page):
			// The server's message links the same page already.
			return "Request access on that page and wait for approval, or use another model"
		case f.model != "":
			return "Request access at " + page + " and wait for approval, or use another model"
		}
		return "Request access on the model's page and wait for approval, or use another model"
	case ErrModelNotFound:
		return "Check the model id (it is case-sensitive); models served by Inference Providers are listed at " + f.hub.servedModels()
	case ErrModelNotSupported:
		return "Use provider \"auto\", pick a provider that serves the model, or enable more providers at " + f.hub.providerSettings()
	case ErrPaymentRequired:
		return "The account's Inference Providers credits are depleted: buy pre-paid credits or subscribe to PRO at " + f.hub.billing()
	case ErrRateLimited:
		if f.retryAfter > 0 {
			return "Wait " + f.retryAfter.String() + " before retrying, or use another provider"
		}
		return "Slow down, or use another provider"
	case ErrInvalidRequest:
		if isContentPolicy(f.code) {
			return "A safety system refused the content of the request: every model and provider would refuse it as it is, so change the messages (or the prompt), not the parameters"
		}
		return "Check the request's parameters against what the model and provider accept"
	case ErrProvider:
		if f.fromProvider && (f.status == http.StatusUnauthorized || f.status == http.StatusForbidden) {
			// The provider refused the key it was called with: the
			// router's, or the user's own key for that provider.
			return "The provider refused the key it was called with: if you set your own key for this provider at " +
				f.hub.providerSettings() + ", check it there; otherwise retry later, or use another provider or model"
		}
		return "Retry later, or use another provider or model"
	case ErrContextLength:
		return "Shorten the conversation (drop or summarise earlier turns) or lower MaxTokens, or use a model with a longer context; errors.Is(err, ErrContextLength) tells an agent to compact its context"
	case ErrStream:
		if f.recovering {
			return "WithStreamRecovery sends the request again after such a failure while a candidate remains: the attempts after this one say how that went"
		}
		return "What arrived before the failure is kept (ChatStream.Response); send the request again for a whole answer, or let WithStreamRecovery do it"
	}
	return ""
}

// scopeFix is how to give an OAuth login the scope Inference Providers
// need.
const scopeFix = "Log the user in again with " + scopeName

// scopeName names the scope and where a Space asks for it.
const scopeName = "the OAuth scope \"inference-api\" (in a Space, add it to hf_oauth_scopes)"

// hubLinks builds the Hub's pages that hints link to, on the configured Hub
// (a mirror's, or https://huggingface-proxy-6ci.pages.dev).
type hubLinks string

func (h hubLinks) base() string {
	if h == "" {
		return defaultHubURL
	}
	return string(h)
}
func (h hubLinks) tokens() string { return h.base() + "/settings/tokens" }
func (h hubLinks) fineGrainedToken() string {
	return h.base() + "/settings/tokens/new?ownUserPermissions=" + PermissionInferenceProviders + "&tokenType=fineGrained"
}
func (h hubLinks) model(id string) string   { return h.base() + "/" + id }
func (h hubLinks) servedModels() string     { return h.base() + "/models?inference_provider=all" }
func (h hubLinks) providerSettings() string { return h.base() + "/settings/inference-providers" }
func (h hubLinks) billing() string          { return h.base() + "/settings/billing" }

func (h hubLinks) orgSettings(org, page string) string {
	return h.base() + "/organizations/" + org + "/settings/" + page
}
