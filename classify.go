package inference

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hfkit/inference/internal/jsonread"
	"github.com/hfkit/inference/internal/redact"
)

// failure is one non-2xx answer (or a 2xx that is not what was asked for),
// as read from the wire, before classification.
type failure struct {
	status int
	header http.Header
	body   []byte
	asked  Candidate
	hubURL string
	// billTo is the organization the call was billed to, if any.
	billTo string
	// secrets are removed from every text the error keeps.
	secrets []string
}

// serverText is what the server said, gathered from whichever body shape it
// used.
type serverText struct {
	message      string
	code         string
	errorType    string
	fromProvider bool // the body has a provider's own shape
}

// classify turns a failed answer into an *APIError. It is the only place a
// status, header or body becomes a kind. It looks at, in order: a 429 (always
// a rate limit, whatever it says), the X-Error-Code header, the body's code
// and text, then the status alone.
func classify(f failure) *APIError {
	// Everything kept from the server is cleaned and has tokens removed: a
	// server may echo the Authorization header in any field.
	clean := func(s string, max int) string { return cleanText(redact.String(s, f.secrets...), max) }
	e := &APIError{
		StatusCode: f.status,
		RequestID:  clean(requestID(f.header), 256),
		Model:      f.asked.Model,
		Provider:   f.asked.Provider,
		RetryAfter: retryAfter(f.header, time.Now()),
		hubURL:     f.hubURL,
	}
	if p := f.header.Get("X-Inference-Provider"); p != "" {
		e.Provider = clean(p, 64)
		e.FromProvider = true
	}

	text := readServerText(f.header, f.body)
	e.FromProvider = e.FromProvider || text.fromProvider
	e.Message = clean(text.message, maxMessageLen)
	e.Code = clean(text.code, 128)
	if hfCode := f.header.Get("X-Error-Code"); hfCode != "" {
		e.Code = clean(hfCode, 128)
	}
	html := isHTML(f.header, bytes.TrimSpace(f.body))
	e.Kind = kindOf(f.status, f.header.Get("X-Error-Code"), html, e.FromProvider, text)
	if (f.status == http.StatusUnauthorized || f.status == http.StatusForbidden) && e.Kind == ErrUnauthorized &&
		f.header.Get("X-Inference-Provider") != "" {
		// The router forwarded a provider's own refusal: the key the
		// router holds for that provider, not the caller's Hugging Face
		// token. Another provider may serve.
		e.Kind = ErrProvider
	}
	if f.billTo != "" {
		e.BillTo = f.billTo
		e.billing, e.Kind = billingKind(f.status, e.Kind, f.billTo, text.message)
	}
	if f.status == http.StatusBadRequest && bytes.Contains(f.body, []byte(`"success"`)) {
		// The Responses API's validation failure: {"success": false,
		// "error": [issues]}, each issue with its path.
		var z struct {
			Success *bool           `json:"success"`
			Error   json.RawMessage `json:"error"`
		}
		if json.Unmarshal(f.body, &z) == nil && z.Success != nil && !*z.Success && len(z.Error) > 0 && z.Error[0] == '[' {
			e.zod = z.Error
		}
	}
	if html && e.Message == "" && (f.status < 200 || f.status > 299) {
		e.Message = clean(describePage(f.status, f.body), 256)
	}
	return e
}

// kindOf decides the kind. See classify for the order. Words decide only
// where the status leaves the kind open: the token, scope and gated texts
// for a 401 or 403, the model and billing texts for a 4xx the router or
// the Hub sent. A provider's own 4xx is decided by its code and status, so
// that "Invalid token in prompt" stays a refused request.
func kindOf(status int, errorCode string, html, fromProvider bool, text serverText) error {
	if status == http.StatusTooManyRequests {
		return ErrRateLimited
	}
	switch errorCode {
	case "GatedRepo":
		return ErrGatedModel
	case "RepoNotFound", "RevisionNotFound", "EntryNotFound":
		return ErrModelNotFound
	}
	if status < 400 || status >= 500 {
		// 5xx, and statuses that should never reach a client (1xx, 3xx, or
		// a 2xx that is not a chat completion): the far side failed.
		return ErrProvider
	}
	if k := kindFromCode(text); k != nil {
		return k
	}
	if (status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge ||
		status == http.StatusUnprocessableEntity) && tooLong(text.message) {
		return ErrContextLength
	}
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		if html && text.message == "" {
			// A CDN's or a proxy's page says nothing about the token.
			return ErrProvider
		}
		if k := credentialKind(text.message); k != nil {
			return k
		}
		return ErrUnauthorized
	case http.StatusPaymentRequired:
		return ErrPaymentRequired
	case http.StatusNotFound:
		return ErrModelNotFound
	case http.StatusGone:
		return ErrModelNotSupported
	case http.StatusRequestTimeout:
		return ErrProvider
	}
	if !fromProvider {
		if k := routerKind(text.message); k != nil {
			return k
		}
	}
	return ErrInvalidRequest
}

// kindFromCode reads the machine-readable codes the router and the
// providers use; a code decides whatever the 4xx status.
func kindFromCode(t serverText) error {
	switch strings.ToLower(t.code) {
	case "model_not_supported":
		return ErrModelNotSupported
	case "model_not_found":
		return ErrModelNotFound
	case "rate_limit_exceeded":
		return ErrRateLimited
	case "context_length_exceeded", "string_above_max_length":
		return ErrContextLength
	case "content_policy_violation", "content_filter":
		// The same request is refused anywhere: the walk stops on it.
		return ErrInvalidRequest
	}
	if t.errorType == "overloaded" {
		return ErrProvider
	}
	return nil
}

// failureKind is the kind of a failure a server reported inside a 200 (an
// error event before a stream's content, a failed response): a text that
// starts with an HTTP status ("403 ...", as the Responses server writes
// upstream errors) is classified as that status with those words would
// be; any other, by streamedKind.
func failureKind(t serverText) error {
	if status, words := embeddedStatus(t.message); status >= 400 {
		return kindOf(status, "", false, false, serverText{message: words, code: t.code, errorType: t.errorType})
	}
	return streamedKind(t)
}

// streamedKind is the kind of an error event a stream sent before any
// content, in a 200: the server's words decide as they would in an error
// status (a code, a context-length text, a token or gated text), a TGI
// validation error is a refused request, and anything else is the
// provider failing.
func streamedKind(t serverText) error {
	if k := kindFromCode(t); k != nil {
		return k
	}
	if tooLong(t.message) {
		return ErrContextLength
	}
	if k := credentialKind(t.message); k != nil {
		return k
	}
	if strings.EqualFold(t.errorType, "validation") {
		return ErrInvalidRequest
	}
	return ErrProvider
}

// billingKind reads a failure of a call billed to an organization
// (X-HF-Bill-To): the token may not bill it (a 401 or 403 about billing,
// the organization or its membership: ErrUnauthorized), it disallows the
// provider (a 403 about the provider: ErrModelNotSupported, so the walk
// tries another), or it reached its spending limit (402, or a 403 in words
// of a limit: ErrPaymentRequired). Other failures keep their kind. The
// first result names the case for the hint.
func billingKind(status int, kind error, org, message string) (string, error) {
	msg := strings.ToLower(message)
	switch {
	case kind == ErrMissingScope || kind == ErrGatedModel || kind == ErrRateLimited:
		return "", kind
	case status == http.StatusPaymentRequired,
		status == http.StatusForbidden && containsAny(msg, "spending limit", "spend limit", "usage limit", "budget"):
		return "limit", ErrPaymentRequired
	case status == http.StatusForbidden && strings.Contains(msg, "provider") &&
		containsAny(msg, "disabled", "not enabled", "not allowed", "not authorized", "restricted"):
		return "provider", ErrModelNotSupported
	case (status == http.StatusUnauthorized || status == http.StatusForbidden) &&
		(containsAny(msg, "bill", "organization", "member") || strings.Contains(msg, strings.ToLower(org))):
		return "refused", ErrUnauthorized
	}
	return "", kind
}

// tooLong reports the words servers use for an input that does not fit the
// model's context: OpenAI's and vLLM's "maximum context length", TGI's
// "`inputs` tokens + `max_new_tokens` must be <=" and "must have less than",
// vLLM's "too long to fit into the model" and "longer than the maximum model
// length", SGLang's "longer than the model's context length", and the
// plainer "prompt is too long", "input is too long", "context window".
func tooLong(message string) bool {
	msg := strings.ToLower(message)
	return containsAny(msg, "maximum context length", "context length exceeded", "context_length_exceeded",
		"tokens + `max_new_tokens` must be <=", "`inputs` must have less than",
		"too long to fit into the model", "longer than the maximum model length",
		"longer than the model's context length", "prompt is too long", "input is too long",
		"exceeds the context window", "exceeds the model's context window")
}

// credentialKind reads a 401's or 403's words (testdata/README.md): a
// missing scope, a gated model, or refused credentials.
func credentialKind(message string) error {
	switch msg := strings.ToLower(message); {
	case containsAny(msg, "sufficient permissions to call inference providers"):
		return ErrMissingScope
	case containsAny(msg, "is restricted and you are not in the authorized list",
		"you must have access to it and be authenticated",
		"unless the model owner gives you access",
		"gated repo", "gated model"):
		return ErrGatedModel
	}
	return nil
}

// routerKind reads the words of a 4xx the router or the Hub sent about the
// model or the account.
func routerKind(message string) error {
	switch msg := strings.ToLower(message); {
	case containsAny(msg, "not supported by any provider", "not supported by provider",
		"no longer supported by provider", "is not supported by the provider"):
		return ErrModelNotSupported
	case containsAny(msg, "repository not found"):
		return ErrModelNotFound
	case containsAny(msg, "depleted your monthly included credits", "exceeded your monthly included credits",
		"pre-paid credits"):
		return ErrPaymentRequired
	}
	return nil
}

// describePage is the message of an HTML error page, which is never shown:
// its status and, when it has a plain one, its title, such as "the gateway
// answered 504 Gateway Time-out with an HTML page".
func describePage(status int, body []byte) string {
	title := pageTitle(body)
	code := strconv.Itoa(status)
	switch {
	case strings.HasPrefix(title, code):
		return "the gateway answered " + title + " with an HTML page"
	case title != "":
		return "the gateway answered " + strings.TrimSpace(code+" "+http.StatusText(status)) + " with an HTML page titled \"" + title + "\""
	}
	return "the gateway answered " + strings.TrimSpace(code+" "+http.StatusText(status)) + " with an HTML page"
}

// pageTitle is the text of a page's <title>, when it is short and plain.
func pageTitle(body []byte) string {
	head := body[:min(len(body), 4096)]
	start := bytes.Index(bytes.ToLower(head), []byte("<title>"))
	if start < 0 {
		return ""
	}
	rest := head[start+len("<title>"):]
	end := bytes.IndexByte(rest, '<')
	if end < 0 {
		return ""
	}
	title := strings.TrimSpace(string(rest[:end]))
	if len(title) > 80 || strings.ContainsAny(title, "&;{}") {
		return ""
	}
	return cleanText(title, 80)
}

// readServerText gets the message and code out of any of the body shapes the
// router, the Hub and the providers use (testdata/README.md). HTML is never
// read: it is a gateway's page, not a message.
func readServerText(h http.Header, body []byte) serverText {
	var t serverText
	headerMsg := h.Get("X-Error-Message")
	trimmed := bytes.TrimSpace(body)
	switch {
	case isHTML(h, trimmed):
		// Nothing from the page: it is markup meant for a browser.
	case len(trimmed) > 0 && trimmed[0] == '{':
		t = readJSONError(trimmed)
	case len(trimmed) > 0 && trimmed[0] != '[' && isText(trimmed):
		t.message = string(trimmed)
	}
	if t.message == "" {
		t.message = headerMsg
	}
	return t
}

// isText reports a body that reads as words: UTF-8 (its last rune may be
// cut, as a capped read cuts it) without control characters but line
// breaks and tabs. A file (an image, audio) is not, and is never shown as
// the server's words.
func isText(b []byte) bool {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			if !utf8.FullRune(b[i:]) {
				return true // a rune the cap cut
			}
			return false
		case r < 0x20 && r != '\n' && r != '\r' && r != '\t', r == 0x7f:
			return false
		}
		i += size
	}
	return true
}

// readJSONError reads the JSON error envelopes: {"error":"..."},
// {"error":{"message","type","code"}}, TGI's {"error","error_type"}, OAuth's
// {"error","error_description"}, the Hub's {"errors":[{"message"}]}, and the
// providers' own {"code","reason","message"} and {"detail":...}.
func readJSONError(body []byte) serverText {
	var t serverText
	const (
		errorMember = iota
		errorDescription
		errorType
		errorsMember
		detail
		reason
		code
		message
	)
	var top [8]json.RawMessage
	if !pickMembers(body, []string{"error", "error_description", "error_type", "errors", "detail", "reason", "code", "message"}, top[:]) {
		// Not JSON after all: show it as text, bounded later.
		t.message = string(body)
		return t
	}
	if raw := top[errorMember]; raw != nil {
		switch {
		case isJSONString(raw):
			t.message = jsonString(raw)
		case len(raw) > 0 && raw[0] == '{':
			var inner [3]json.RawMessage // message, code, type
			if pickMembers(raw, []string{"message", "code", "type"}, inner[:]) {
				t.message = jsonText(inner[0])
				t.code = jsonText(inner[1])
				if t.code == "" {
					t.code = jsonText(inner[2])
				}
				t.errorType = jsonText(inner[2])
			}
		default:
			t.message = jsonText(raw)
		}
	}
	if desc := jsonText(top[errorDescription]); desc != "" {
		// OAuth: "error" is the code, the description says why.
		t.code, t.message = t.message, desc
	}
	if et := jsonText(top[errorType]); et != "" {
		t.errorType = et
		if t.code == "" {
			t.code = et
		}
	}
	if t.message == "" && top[errorsMember] != nil {
		t.message = jsonText(top[errorsMember])
	}
	if raw := top[detail]; raw != nil {
		t.fromProvider = true
		if t.message == "" {
			t.message = jsonText(raw)
		}
		if t.code == "" {
			t.code = detailType(raw)
		}
	}
	if top[reason] != nil || isJSONNumber(top[code]) {
		// A provider's native shape, such as Novita's
		// {"code":400,"reason":"INVALID_REQUEST_BODY","message":...}.
		t.fromProvider = true
		if r := jsonText(top[reason]); r != "" && t.code == "" {
			t.code = r
		}
	}
	if t.message == "" {
		t.message = jsonText(top[message])
	}
	if t.code == "" {
		t.code = jsonText(top[code])
	}
	return t
}

// detailType is the machine-readable type of the first error of a
// {"detail": [{"loc", "msg", "type"}]} list (FastAPI's, and fal's, whose
// content-policy refusal is the type content_policy_violation), "" for
// any other detail.
func detailType(raw json.RawMessage) string {
	var list []struct {
		Type string `json:"type"`
	}
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &list) != nil || len(list) == 0 {
		return ""
	}
	return list[0].Type
}

// pickMembers sets raw[i] to the value of the member names[i] of the JSON
// object body, as its JSON text (nil when absent, the last one when
// repeated), and reports whether body is an object: what decoding into a
// map[string]json.RawMessage and looking the names up gives, without the
// map. Bodies the reader declines (escaped names, very deep nesting,
// invalid JSON) are decoded into the map.
func pickMembers(body []byte, names []string, raw []json.RawMessage) bool {
	var r jsonread.Reader
	r.Reset(body)
	if r.Object() {
		clear(raw)
		for r.More('}') {
			key := r.Key()
			value := r.Skip()
			for i, name := range names {
				if string(key) == name {
					raw[i] = value
				}
			}
		}
		if r.End() {
			return true
		}
	}
	clear(raw)
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return false
	}
	for i, name := range names {
		raw[i] = m[name]
	}
	return true
}

// jsonText renders a JSON value as plain text: a string as itself, a number
// as written, an array as its items' texts joined, an object as its message,
// msg or detail field if it has one, else as compact JSON.
func jsonText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	switch raw[0] {
	case '"':
		return jsonString(raw)
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return ""
		}
		parts := make([]string, 0, len(items))
		for _, it := range items {
			if s := jsonText(it); s != "" {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, "; ")
	case '{':
		var fields [4]json.RawMessage
		if !pickMembers(raw, []string{"message", "msg", "detail", "error"}, fields[:]) {
			return ""
		}
		for _, f := range fields {
			if s := jsonText(f); s != "" {
				return s
			}
		}
		return string(raw)
	default:
		return string(raw)
	}
}

func isJSONString(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '"'
}

func isJSONNumber(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && (raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'))
}

// jsonString is the value of a JSON string, or "" when raw is not one.
func jsonString(raw json.RawMessage) string {
	var r jsonread.Reader
	r.Reset(raw)
	if s := r.String(); r.End() {
		return s
	}
	return ""
}

// isHTML reports whether a body is a web page, by its content type or its
// first bytes (gateways do not always label their pages).
func isHTML(h http.Header, body []byte) bool {
	if strings.Contains(strings.ToLower(h.Get("Content-Type")), "html") {
		return true
	}
	if len(body) == 0 || body[0] != '<' {
		return false
	}
	head := strings.ToLower(string(body[:min(len(body), 64)]))
	return strings.HasPrefix(head, "<!doctype") || strings.HasPrefix(head, "<html") ||
		strings.HasPrefix(head, "<head") || strings.HasPrefix(head, "<body") ||
		strings.HasPrefix(head, "<?xml")
}

// requestID picks the id to quote to support, in huggingface_hub's order,
// then a provider's trace id.
func requestID(h http.Header) string {
	for _, name := range []string{"X-Request-Id", "X-Amzn-Trace-Id", "X-Amz-Cf-Id", "X-Trace-Id"} {
		if v := h.Get(name); v != "" {
			return v
		}
	}
	return ""
}
