package inference

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/hfkit/inference/internal/redact"
)

// userAgent identifies the library to the router.
const userAgent = "hfkit-inference-go/0.1"

// exchange is one HTTP call the client makes: a chat completion to the
// router (streamed or not), or a GET of the router's model list or of a Hub
// endpoint. Every call goes the same way: built here, sent through the
// retry loop and the middleware chain, its failure read up to a cap and
// classified once.
type exchange struct {
	method string
	url    string
	body   []byte // nil for a GET
	accept string // the content type asked for
	// contentType is the body's, "" for JSON; header, headers of the
	// provider's own protocol (zai-org's channel), shared by the
	// calls of the client and never modified.
	contentType string
	header      http.Header
	// thirdParty marks a request to a host that is neither the router nor
	// the Hub (a result file on a provider's CDN), which needs cfg and a
	// zero tok: it goes through Client.direct, which has no auth
	// middleware and none of the user's middlewares, and carries no
	// X-HF-Bill-To and none of the call's headers.
	thirdParty bool
	// about is the model (and provider) the call concerns, for errors and
	// logs; zero for calls about no model.
	about Candidate
	tok   Token
	// race and limit are the attempt's per-try hooks: the race's (its
	// hedge clock) and the attempt's own (a stream's first-token limit).
	// send composes them.
	race, limit tryHooks
	// cfg, for a call's attempt, brings the call's retry loop, headers
	// and billing; nil for the client's own calls (the Hub, the model
	// list).
	cfg *callConfig
	// op names the operation in an error about it, before the candidate:
	// "chat with", "embeddings from", "response from"; empty for a GET,
	// which its URL names.
	op string
}

// send makes the call and returns a 2xx response, whose body the caller
// reads and closes, or the failure: the caller's context error when ctx
// ended, else an *APIError classified from the answer or the transport
// error. ctx is the caller's context, actx the attempt's (ctx with the
// attempt's timeout, or ctx itself). att, when not nil, gets the retries,
// the status and the request id.
func (c *Client) send(ctx, actx context.Context, x exchange, att *Attempt) (*http.Response, error) {
	var body any
	if x.body != nil {
		body = x.body
	}
	reqCtx, st := withAttempt(actx, x.tok, x.about)
	st.hooks = [2]tryHooks{x.race, x.limit}
	hreq, err := retryablehttp.NewRequestWithContext(reqCtx, x.method, x.url, body)
	if err != nil {
		return nil, fmt.Errorf("inference: building the request: %w", err)
	}
	if x.body != nil {
		ct := x.contentType
		if ct == "" {
			ct = "application/json"
		}
		hreq.Header.Set("Content-Type", ct)
	}
	hreq.Header.Set("Accept", x.accept)
	hreq.Header.Set("User-Agent", userAgent)
	for k, v := range x.header {
		hreq.Header[k] = v[:len(v):len(v)]
	}
	retry := c.call.http
	if x.cfg != nil {
		retry = x.cfg.http
	}
	if x.thirdParty {
		// The call's retry policy, over the client that skips the user's
		// middlewares and adds no token.
		retry = newRetryClient(c.direct, x.cfg.retry)
	}
	if x.cfg != nil && !x.thirdParty {
		for k, v := range x.cfg.headers {
			// Capped, so that a middleware's Add copies the list rather
			// than writing into the array the client's calls share.
			hreq.Header[k] = v[:len(v):len(v)]
		}
		if x.cfg.billTo != "" {
			hreq.Header.Set("X-HF-Bill-To", x.cfg.billTo)
		}
	}

	resp, err := retry.Do(hreq)
	if att != nil {
		att.Retries = st.retries
	}
	if err != nil {
		return nil, c.noAnswer(ctx, actx, x, err)
	}
	if att != nil {
		att.StatusCode = resp.StatusCode
		att.RoutedTo = servedBy(resp.Header, x.tok)
		att.RequestID = cleanText(redact.String(requestID(resp.Header), x.tok.value()), 256)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// The rest of a long body is dropped with the connection.
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			// The caller's deadline ended the read: theirs is the answer.
			return nil, x.ended(ctxErr)
		}
		return nil, c.classify(resp.StatusCode, resp.Header, data, x)
	}
	return resp, nil
}

// read reads a 2xx body of at most limit bytes. A longer one is a body that
// is not what was asked for.
func (c *Client) read(ctx, actx context.Context, resp *http.Response, x exchange, limit int) ([]byte, error) {
	tooLarge := func(data []byte) error {
		e := c.notWhatWasAsked(resp.StatusCode, resp.Header, data, x, "the answer is larger than "+sizeText(int64(limit)))
		e.overSize = true
		return e
	}
	if resp.ContentLength > int64(limit) {
		return nil, tooLarge(nil)
	}
	data, err := readCapped(resp.Body, limit, resp.ContentLength)
	if err != nil {
		return nil, c.noAnswer(ctx, actx, x, fmt.Errorf("reading the answer: %w", err))
	}
	if len(data) > limit {
		return nil, tooLarge(data)
	}
	return data, nil
}

// notWhatWasAsked is the failure of a 2xx answer that is not what was asked
// for (not JSON, an error object, a web page, the wrong content type, too
// large): an ErrProvider that says why, followed by the server's own words
// when the body has any; neither holds the token. It is the one place that
// rule is written.
func (c *Client) notWhatWasAsked(status int, header http.Header, body []byte, x exchange, why string) *APIError {
	// Only the start of the body is worth reading for a message.
	e := c.classify(status, header, body[:min(len(body), maxErrorBody)], x)
	e.Kind = ErrProvider
	// why may quote the server (a status it invented, a URL it named).
	why = cleanText(redact.String(why, x.tok.value()), maxMessageLen)
	if e.Message == "" || isHTML(header, bytes.TrimSpace(body)) {
		e.Message = why
	} else {
		e.Message = why + ": " + e.Message
	}
	return e
}

// servedBy is the provider that served an answer, from the router's
// X-Inference-Provider header, cleaned; "" when the router did not say.
func servedBy(h http.Header, tok Token) string {
	p := h.Get("X-Inference-Provider")
	if p == "" {
		return ""
	}
	return cleanText(redact.String(p, tok.value()), 64)
}

// ended is the error of a call whose caller's context ended.
func (x exchange) ended(ctxErr error) error {
	if x.op != "" && x.about.Model != "" {
		return fmt.Errorf("inference: %s %s: %w", x.op, x.about, ctxErr)
	}
	return fmt.Errorf("inference: %s %s: %w", x.method, x.url, ctxErr)
}

// noAnswer is the error of an attempt that got no usable answer: the
// caller's context error when it ended, else a provider failure whose cause
// is the transport error or the attempt's timeout.
func (c *Client) noAnswer(ctx, actx context.Context, x exchange, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return x.ended(ctxErr)
	}
	if actx.Err() != nil {
		err = context.Cause(actx)
	}
	cause := redactedCause(err, x.tok.value())
	return &APIError{
		Kind:     ErrProvider,
		Message:  cleanText(cause.Error(), maxMessageLen),
		Model:    x.about.Model,
		Provider: x.about.Provider,
		Cause:    cause,
		hubURL:   c.hub.String(),
	}
}

// classify wraps the classifier with what the client knows.
func (c *Client) classify(status int, header http.Header, body []byte, x exchange) *APIError {
	f := failure{
		status:  status,
		header:  header,
		body:    body,
		asked:   x.about,
		hubURL:  c.hub.String(),
		secrets: []string{x.tok.value()},
	}
	if x.cfg != nil && !x.thirdParty {
		f.billTo = x.cfg.billTo
	}
	return classify(f)
}

// redactedCause is a transport error whose text holds no token: a
// redirect's Location, in a *url.Error, may echo one. A *url.Error keeps
// its type with its URL made safe; anything else whose text would leak is
// wrapped so that its text is redacted and errors.As still reaches it.
func redactedCause(err error, secret string) error {
	if ue, ok := err.(*url.Error); ok {
		safe := *ue
		safe.URL = redact.String(withoutUserInfo(ue.URL), secret)
		err = &safe
	}
	if text := err.Error(); redact.String(text, secret) != text {
		return &redactedError{err: err, text: redact.String(text, secret)}
	}
	return err
}

// redactedError is an error shown with its tokens removed.
type redactedError struct {
	err  error
	text string
}

func (e *redactedError) Error() string { return e.text }

func (e *redactedError) Unwrap() error { return e.err }

// readCapped reads at most limit+1 bytes of r, so that the caller can tell
// an over-long body. A known size (a Content-Length, else -1) sizes the
// buffer at once: such a body costs one allocation of its size. A body of
// unknown size is read in chunks that grow with what was read (an eighth
// of it, from 64 KiB), joined once at the end: at its peak the read holds
// about twice the body, where doubling one buffer held up to three times.
func readCapped(r io.Reader, limit int, sizeHint int64) ([]byte, error) {
	lr := io.LimitReader(r, int64(limit)+1)
	first := 64 << 10
	if sizeHint > 0 && sizeHint <= int64(limit) {
		first = int(sizeHint) + 1 // +1 to see an over-long body without another chunk
	}
	buf := make([]byte, 0, min(first, limit+1))
	var chunks [][]byte // filled before buf
	done := 0           // their bytes
	for {
		if len(buf) == cap(buf) {
			if done+len(buf) > limit {
				break // over the limit: the caller needs no more
			}
			chunks, done = append(chunks, buf), done+len(buf)
			buf = make([]byte, 0, min(max(64<<10, done/8), limit+1-done))
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return joinChunks(chunks, buf), err
		}
	}
	return joinChunks(chunks, buf), nil
}

// joinChunks is the chunks, then last, in one slice; last itself when
// there are no chunks.
func joinChunks(chunks [][]byte, last []byte) []byte {
	if len(chunks) == 0 {
		return last
	}
	n := len(last)
	for _, c := range chunks {
		n += len(c)
	}
	out := make([]byte, 0, n)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return append(out, last...)
}

// sizeText is a size in words: "64 MiB", "1.5 MiB", "900 KiB", "12 bytes".
func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// get GETs url with the token, through the same path as chat calls, and
// hands the body of a 2xx answer (at most limit bytes) to decode. A body
// decode refuses is an answer that is not what was asked for; what names
// it in the error. It serves the Hub calls and the router's model list.
func (c *Client) get(ctx context.Context, tok Token, url string, about Candidate, limit int, what string, decode func([]byte) error) error {
	x := exchange{method: http.MethodGet, url: url, accept: "application/json", about: about, tok: tok}
	resp, err := c.send(ctx, ctx, x, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := c.read(ctx, ctx, resp, x, limit)
	if err != nil {
		return err
	}
	if err := decode(data); err != nil {
		return c.notWhatWasAsked(resp.StatusCode, resp.Header, data, x, what+": "+err.Error())
	}
	return nil
}
