package inference

import (
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

// exchange sends the request for one candidate through the retry loop and
// returns a 2xx response, whose body the caller closes, or the classified
// failure. ctx is the caller's context, actx the attempt's (ctx with the
// attempt timeout).
func (c *Client) exchange(ctx, actx context.Context, req *ChatRequest, cand Candidate, tok Token, stream bool, att *Attempt) (*http.Response, error) {
	body, err := req.encode(cand, stream)
	if err != nil {
		return nil, err
	}
	reqCtx, st := withAttempt(actx, tok, cand)
	hreq, err := retryablehttp.NewRequestWithContext(reqCtx, http.MethodPost, c.chatURL, body)
	if err != nil {
		return nil, fmt.Errorf("inference: building the request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if stream {
		hreq.Header.Set("Accept", "text/event-stream")
	} else {
		hreq.Header.Set("Accept", "application/json")
	}
	hreq.Header.Set("User-Agent", userAgent)

	resp, err := c.http.Do(hreq)
	att.Retries = max(st.tries-1, 0)
	if err != nil {
		return nil, c.noAnswer(ctx, actx, cand, tok, err)
	}
	att.StatusCode = resp.StatusCode
	att.RequestID = cleanText(redact.String(requestID(resp.Header), tok.value()), 256)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// The rest of a long body is dropped with the connection.
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			// The caller's deadline ended the read: theirs is the answer.
			return nil, fmt.Errorf("inference: chat with %s: %w", cand, ctxErr)
		}
		return nil, c.classify(resp, data, cand, tok)
	}
	return resp, nil
}

// noAnswer is the error of an attempt that got no usable answer: the
// caller's context error when it ended, else a provider failure whose cause
// is the transport error or the attempt's timeout.
func (c *Client) noAnswer(ctx, actx context.Context, cand Candidate, tok Token, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("inference: chat with %s: %w", cand, ctxErr)
	}
	if actx.Err() != nil {
		err = context.Cause(actx)
	}
	return c.transportError(cand, tok, err)
}

// classify wraps the classifier with what the client knows.
func (c *Client) classify(resp *http.Response, body []byte, cand Candidate, tok Token) *APIError {
	return classify(failure{
		status:  resp.StatusCode,
		header:  resp.Header,
		body:    body,
		asked:   cand,
		hubURL:  c.hub.String(),
		secrets: []string{tok.value()},
	})
}

// transportError is an attempt that got no answer: refused, reset, timed
// out. It is a provider failure, with the transport error as its cause.
func (c *Client) transportError(cand Candidate, tok Token, err error) *APIError {
	provider := cand.Provider
	if provider == ProviderAuto {
		provider = ""
	}
	cause := redactedCause(err, tok.value())
	return &APIError{
		Kind:     ErrProvider,
		Message:  cleanText(cause.Error(), maxMessageLen),
		Model:    cand.Model,
		Provider: provider,
		Cause:    cause,
		hubURL:   c.hub.String(),
	}
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
// buffer at once; an unknown one doubles from 64 KiB, so that what is
// allocated stays under twice what is read.
func readCapped(r io.Reader, limit int, sizeHint int64) ([]byte, error) {
	size := 64 << 10
	if sizeHint > 0 && sizeHint <= int64(limit) {
		size = int(sizeHint) + 1 // +1 to see an over-long body without growing
	}
	buf := make([]byte, 0, min(size, limit+1))
	lr := io.LimitReader(r, int64(limit)+1)
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				return buf, nil // over the limit: the caller needs no more
			}
			next := 2 * cap(buf)
			if next >= limit {
				next = limit + 1 // the last step includes the byte that shows an over-long body
			}
			grown := make([]byte, len(buf), next)
			copy(grown, buf)
			buf = grown
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// get GETs url with the token, through the same retries and middleware as
// chat calls, and returns the body of a 2xx answer (at most limit bytes) or
// the classified failure. It serves the Hub calls and the model list.
func (c *Client) get(ctx context.Context, tok Token, url string, about Candidate, limit int) ([]byte, error) {
	reqCtx, _ := withAttempt(ctx, tok, about)
	hreq, err := retryablehttp.NewRequestWithContext(reqCtx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("inference: building the request for %s: %w", url, err)
	}
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", userAgent)
	resp, err := c.http.Do(hreq)
	if err != nil {
		return nil, c.noAnswer(ctx, ctx, about, tok, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("inference: GET %s: %w", url, ctxErr)
		}
		return nil, c.classify(resp, data, about, tok)
	}
	data, err := readCapped(resp.Body, limit, resp.ContentLength)
	if err != nil {
		return nil, c.noAnswer(ctx, ctx, about, tok, fmt.Errorf("reading the answer: %w", err))
	}
	if len(data) > limit {
		return nil, &APIError{Kind: ErrProvider, StatusCode: resp.StatusCode, Model: about.Model,
			Message: fmt.Sprintf("the answer is larger than %d MiB", limit>>20), hubURL: c.hub.String()}
	}
	return data, nil
}
