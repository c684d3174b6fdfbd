package inferencetest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hfkit/inference"
)

// Answer writes the router's response to one request. The ready-made
// answers below reproduce what the real router sends (the sources are in
// the repository's testdata/README.md); write your own for anything else.
type Answer func(w http.ResponseWriter, req *Request)

// Reply answers with a chat completion whose content is text, served by the
// provider the request pinned ("org/model:groq" is served by groq), else by
// "together". A streaming request gets the same text as a stream of chunks,
// a finish reason and [DONE]; a Responses API request, [ResponseReply].
func Reply(text string) Answer {
	return func(w http.ResponseWriter, req *Request) {
		if req.API == "responses" {
			ResponseReply(text)(w, req)
			return
		}
		if req.Stream {
			Stream(splitWords(text)...)(w, req)
			return
		}
		writeCompletion(w, req, text, providerOr(req, "together"))
	}
}

// ReplyFrom is Reply served by the named provider (the X-Inference-Provider
// header the router sets).
func ReplyFrom(provider, text string) Answer {
	return func(w http.ResponseWriter, req *Request) {
		w.Header().Set("X-Inference-Provider", provider)
		Reply(text)(w, req)
	}
}

func writeCompletion(w http.ResponseWriter, req *Request, text, provider string) {
	content, _ := json.Marshal(text)
	w.Header().Set("Content-Type", "application/json")
	if w.Header().Get("X-Inference-Provider") == "" {
		w.Header().Set("X-Inference-Provider", provider)
	}
	words := len(strings.Fields(text))
	fmt.Fprintf(w, `{"id":"fake-%d","object":"chat.completion","created":%d,"model":%q,`+
		`"choices":[{"index":0,"message":{"role":"assistant","content":%s},"finish_reason":"stop"}],`+
		`"usage":{"prompt_tokens":10,"completion_tokens":%d,"total_tokens":%d}}`,
		req.Time.UnixNano(), req.Time.Unix(), req.Model, content, words, 10+words)
}

// splitWords cuts text into chunks that keep their spaces, so that the
// chunks joined give text back.
func splitWords(text string) []string {
	var out []string
	for len(text) > 0 {
		i := strings.IndexByte(text[1:], ' ')
		if i < 0 {
			out = append(out, text)
			break
		}
		out = append(out, text[:i+1])
		text = text[i+1:]
	}
	if len(out) == 0 {
		out = []string{""}
	}
	return out
}

// Stream answers with one chunk per piece of text, then a finish reason, a
// usage chunk and [DONE], flushing after each event. A chat request that
// does not ask for a stream gets the pieces joined as one completion. Like
// StreamError and StreamCut, it sends chat chunks, never events of the
// Responses API (see [StreamScript]).
func Stream(pieces ...string) Answer {
	return func(w http.ResponseWriter, req *Request) {
		if !req.Stream {
			writeCompletion(w, req, strings.Join(pieces, ""), providerOr(req, "together"))
			return
		}
		startStream(w, req)
		for _, p := range pieces {
			writeEvent(w, chunkJSON(req, p))
		}
		writeEvent(w, `{"id":"fake","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`)
		writeEvent(w, fmt.Sprintf(`{"id":"fake","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":%d,"total_tokens":%d}}`, len(pieces), 10+len(pieces)))
		writeEvent(w, "[DONE]")
	}
}

// StreamError streams the pieces, then an error event with message, and
// ends without [DONE], as a provider that fails mid-generation does. A
// request that does not ask for a stream gets the same failure as a
// provider's 500 with message.
func StreamError(message string, pieces ...string) Answer {
	return func(w http.ResponseWriter, req *Request) {
		if !req.Stream {
			body, _ := json.Marshal(map[string]any{"error": map[string]string{"message": message, "type": "server_error"}})
			jsonError(http.StatusInternalServerError, string(body), "X-Inference-Provider", providerOr(req, "together"))(w, req)
			return
		}
		startStream(w, req)
		for _, p := range pieces {
			writeEvent(w, chunkJSON(req, p))
		}
		msg, _ := json.Marshal(message)
		writeEvent(w, `{"error":`+string(msg)+`,"error_type":"generation"}`)
	}
}

// StreamCut streams the pieces and stops: no finish reason, no [DONE]. A
// request that does not ask for a stream has its connection dropped, as
// [Drop] does: the same cut, before an answer.
func StreamCut(pieces ...string) Answer {
	return func(w http.ResponseWriter, req *Request) {
		if !req.Stream {
			Drop()(w, req)
			return
		}
		startStream(w, req)
		for _, p := range pieces {
			writeEvent(w, chunkJSON(req, p))
		}
	}
}

// startStream sends a stream's headers; the provider is the one the
// request pinned, else "together", unless an answer set it already.
func startStream(w http.ResponseWriter, req *Request) {
	w.Header().Set("Content-Type", "text/event-stream;charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache, no-transform")
	if w.Header().Get("X-Inference-Provider") == "" {
		w.Header().Set("X-Inference-Provider", providerOr(req, "together"))
	}
	w.WriteHeader(http.StatusOK)
}

func chunkJSON(req *Request, piece string) string {
	content, _ := json.Marshal(piece)
	return fmt.Sprintf(`{"id":"fake","object":"chat.completion.chunk","created":%d,"model":%q,"choices":[{"index":0,"delta":{"role":"assistant","content":%s},"finish_reason":null}]}`,
		req.Time.Unix(), req.Model, content)
}

func writeEvent(w http.ResponseWriter, data string) {
	_, _ = io.WriteString(w, "data: "+data+"\n\n")
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

// Raw answers with the status, headers and body given.
func Raw(status int, header http.Header, body string) Answer {
	return func(w http.ResponseWriter, req *Request) {
		for k, vs := range header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// jsonError is the router's {"error": ...} answer with an id.
func jsonError(status int, body string, header ...string) Answer {
	h := http.Header{"Content-Type": []string{"application/json; charset=utf-8"}}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return Raw(status, h, body)
}

// MissingScope is the router's 403 for a token that may not call Inference
// Providers: an OAuth token without the inference-api scope, or an access
// token without the "Make calls to Inference Providers" permission.
func MissingScope() Answer {
	return jsonError(403, `{"error":"This authentication method does not have sufficient permissions to call Inference Providers on behalf of user alice"}`,
		"X-Powered-By", "huggingface-moon", "X-Request-Id", "Xb3kP0aQ9mZt2LcV")
}

// InvalidToken is the router's 401 for a token it does not know.
func InvalidToken() Answer {
	return jsonError(401, `{"error":"Invalid credentials in Authorization header"}`,
		"X-Error-Message", "Invalid credentials in Authorization header",
		"Www-Authenticate", `Bearer realm="Authentication required", charset="UTF-8"`,
		"X-Request-Id", "TtpPGx80uP3e6pgl")
}

// Gated is the 403 for a gated model the user has not been granted.
func Gated() Answer {
	return func(w http.ResponseWriter, req *Request) {
		msg := "Access to model " + req.Model + " is restricted and you are not in the authorized list. Visit https://huggingface-proxy-6ci.pages.dev/" + req.Model + " to ask for access."
		body, _ := json.Marshal(map[string]string{"error": msg})
		jsonError(403, string(body), "X-Error-Code", "GatedRepo", "X-Error-Message", msg, "X-Request-Id", "ViT1Bf7O_026LGSQuVqfa")(w, req)
	}
}

// GatedUnauthenticated is the 401 variant of Gated.
func GatedUnauthenticated() Answer {
	return func(w http.ResponseWriter, req *Request) {
		msg := "Access to model " + req.Model + " is restricted. You must have access to it and be authenticated to access it. Please log in."
		body, _ := json.Marshal(map[string]string{"error": msg})
		jsonError(401, string(body), "X-Error-Code", "GatedRepo", "X-Request-Id", "ViT1Bf7O_026LGSQuVqfb")(w, req)
	}
}

// ModelNotFound is the router's 400 for a model id that does not exist.
func ModelNotFound() Answer {
	return func(w http.ResponseWriter, req *Request) {
		body, _ := json.Marshal(map[string]any{"error": map[string]string{
			"message": "The requested model '" + req.Model + "' does not exist.",
			"type":    "invalid_request_error", "param": "model", "code": "model_not_found",
		}})
		jsonError(400, string(body), "X-Powered-By", "huggingface-moon", "X-Request-Id", "fohf8hz3jMMmVCP8")(w, req)
	}
}

// NotSupported is the router's 400 for a model no enabled provider serves.
func NotSupported() Answer {
	return func(w http.ResponseWriter, req *Request) {
		body, _ := json.Marshal(map[string]any{"error": map[string]string{
			"message": "The requested model '" + req.Model + "' is not supported by any provider you have enabled.",
			"type":    "invalid_request_error", "param": "model", "code": "model_not_supported",
		}})
		jsonError(400, string(body), "X-Request-Id", "notSupp-1")(w, req)
	}
}

// PaymentRequired is the 402 for depleted Inference Providers credits.
func PaymentRequired() Answer {
	return jsonError(402, `{"error":"You have depleted your monthly included credits. Purchase pre-paid credits to continue using Inference Providers. Alternatively, subscribe to PRO to get 20x more included credits."}`,
		"X-Request-Id", "Root=1-6839ce97-12d449495e45e4c62490dedf;18f53311-5a51-4487-a338-41bf195d401d")
}

// RateLimited is a provider's 429 passed through the router, with a
// Retry-After of the given whole seconds, or none when retryAfter is 0.
func RateLimited(retryAfter time.Duration) Answer {
	return func(w http.ResponseWriter, req *Request) {
		h := []string{"X-Request-Id", "req_01kvh68nxjf999kg21vp9nv4gs", "X-Inference-Provider", providerOr(req, "groq")}
		if retryAfter > 0 {
			h = append(h, "Retry-After", strconv.Itoa(int((retryAfter+time.Second-1)/time.Second)))
		}
		jsonError(429, `{"error":{"message":"Rate limit reached for model. Please try again later.","type":"tokens","code":"rate_limit_exceeded"}}`, h...)(w, req)
	}
}

// ProviderError is a provider's 5xx passed through the router.
func ProviderError(status int) Answer {
	return func(w http.ResponseWriter, req *Request) {
		jsonError(status, `{"error":{"message":"Upstream service unavailable","type":"server_error"}}`,
			"X-Inference-Provider", providerOr(req, "together"))(w, req)
	}
}

// GatewayTimeout is the HTML 504 page of the CDN in front of the router.
func GatewayTimeout() Answer {
	return Raw(504, http.Header{
		"Content-Type": []string{"text/html"},
		"X-Cache":      []string{"Error from cloudfront"},
		"X-Amz-Cf-Id":  []string{"4s1eHdlzCZ-srTxUzxwoVRp6n3FItjfsWZgw7jqnOAy-wBm8Fdc8hQ=="},
	}, `<html><head><title>504 Gateway Time-out</title></head><body><center><h1>504 Gateway Time-out</h1></center></body></html>`)
}

// Validation is TGI's 422 for a parameter the model cannot take.
func Validation() Answer {
	return jsonError(422, "{\"error\":\"Input validation error: `temperature` must be strictly positive\",\"error_type\":\"validation\"}")
}

// ContextLengthExceeded is the 400 of an OpenAI-compatible provider for an
// input longer than the model's context, with code context_length_exceeded.
func ContextLengthExceeded() Answer {
	return BadRequest("context_length_exceeded", "This model's maximum context length is 8192 tokens. However, your messages resulted in 9631 tokens. Please reduce the length of the messages.")
}

// ContentPolicy is the 400 of a provider's safety system, with code
// content_policy_violation: the same request is refused anywhere.
func ContentPolicy() Answer {
	return BadRequest("content_policy_violation", "Your request was rejected as a result of our safety system.")
}

// BadRequest is a provider's 400 in the OpenAI envelope with the given code
// and message, such as BadRequest("invalid_prefill", "...").
func BadRequest(code, message string) Answer {
	return func(w http.ResponseWriter, req *Request) {
		body, _ := json.Marshal(map[string]any{"error": map[string]any{
			"message": message, "type": "invalid_request_error", "param": nil, "code": code,
		}})
		jsonError(400, string(body))(w, req)
	}
}

// ProviderBadRequest is a provider's own 400 (Novita's shape) for a feature
// it does not support.
func ProviderBadRequest() Answer {
	return jsonError(400, `{"code":400, "reason":"INVALID_REQUEST_BODY", "message":"model features vision not support", "metadata":{}}`,
		"X-Inference-Provider", "novita", "X-Trace-Id", "2cc3c5e741689ba673540eef4722106e")
}

// providerOr is the provider a request pinned, or def when it left the
// choice to the router ("", "auto" or a policy such as "fastest").
func providerOr(req *Request, def string) string {
	switch req.Provider {
	case "", inference.ProviderAuto, inference.ProviderFastest, inference.ProviderCheapest, inference.ProviderPreferred:
		return def
	}
	return req.Provider
}

// Delay waits d (or until the client goes away) before answering with a.
func Delay(d time.Duration, a Answer) Answer {
	return func(w http.ResponseWriter, req *Request) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			a(w, req)
		case <-req.HTTP.Context().Done():
		}
	}
}

// Hang never answers: the request waits until the client gives up.
func Hang() Answer {
	return func(w http.ResponseWriter, req *Request) { <-req.HTTP.Context().Done() }
}

// Drop closes the connection without answering, as a crashed proxy does.
func Drop() Answer {
	return func(w http.ResponseWriter, req *Request) {
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler)
		}
		conn, _, err := hj.Hijack()
		if err == nil {
			conn.Close()
		}
	}
}
