package inference

import (
	"context"
	"net/http"
	"time"
)

// ChatResponse is a chat completion.
type ChatResponse struct {
	ID      string `json:"id"`
	Created int64  `json:"created"`
	// Model is the model as the provider names it (without ":provider").
	Model string `json:"model"`
	// Provider is who served the answer, from X-Inference-Provider; empty
	// when the router did not say.
	Provider          string   `json:"provider,omitempty"`
	Choices           []Choice `json:"choices"`
	Usage             Usage    `json:"usage"`
	SystemFingerprint string   `json:"system_fingerprint,omitempty"`
	// RequestID is the id to quote to support, when the answer had one.
	RequestID string `json:"request_id,omitempty"`
	// Attempts lists every attempt of the call in order; the last one
	// served the answer.
	Attempts []Attempt `json:"-"`
	// Skipped are the candidates not tried because they were cooling down
	// after failing in an earlier call.
	Skipped []Candidate `json:"-"`
}

// Text returns the content of the first choice, or "" when there is none.
func (r *ChatResponse) Text() string {
	if r == nil || len(r.Choices) == 0 {
		return ""
	}
	return r.Choices[0].Message.Content
}

// Choice is one of the answers of a completion.
type Choice struct {
	Index        int     `json:"index"`
	Message      Message `json:"message"`
	FinishReason string  `json:"finish_reason"`
}

// Usage counts the tokens of a call.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// maxChatBody bounds a success body; a chat completion is far smaller.
const maxChatBody = 32 << 20

// Chat sends a chat completion request through the router and returns the
// answer. The model is sent as "model" when Provider is "" or "auto", else
// as "model:provider".
//
// When the request's model fails in a way another could fix (gated, not
// served, provider down, rate limited), Chat tries the request's Fallbacks,
// else the client's [WithFallback] list, as [DefaultFallbackPolicy] (or
// [WithFallbackPolicy]) directs; when a token of a [ChainTokens] is refused,
// it tries the next source's token. The answer's Attempts list every
// attempt. When none serves, the error is a [*FallbackError] listing them.
//
// Use [errors.Is] with the Err kinds and [errors.As] with [*APIError] on
// the error, never its concrete type. A cancelled or expired ctx ends the
// call at once, retry waits included, and the error then matches
// context.Canceled or context.DeadlineExceeded.
func (c *Client) Chat(ctx context.Context, req ChatRequest, opts ...Option) (*ChatResponse, error) {
	cfg, err := c.prepare(ctx, &req, opts)
	if err != nil {
		return nil, err
	}
	ctx, obs := c.startCall(ctx, cfg, &req, false)
	var resp *ChatResponse
	var tr trail
	if cfg.hedge > 0 {
		// A hedged call's attempts run on goroutines of their own: its
		// request is a copy they may share, so that a call without a
		// hedge keeps its own on its stack.
		hreq := req
		resp, tr, err = walkHedged(ctx, c, cfg, obs, &hreq, func(ctx context.Context, cand Candidate, tok Token) (*ChatResponse, Attempt, error) {
			return c.attempt(ctx, cfg, &hreq, cand, tok)
		})
	} else {
		resp, tr, err = walk(ctx, c, cfg, obs, false, &req, func(ctx context.Context, cand Candidate, tok Token) (*ChatResponse, Attempt, error) {
			return c.attempt(ctx, cfg, &req, cand, tok)
		})
	}
	if err == nil {
		resp.Attempts, resp.Skipped = tr.attempts, tr.skipped
	}
	if obs != nil {
		obs.End(resp, err)
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// attempt sends the request to one candidate, with retries, and reads the
// answer.
func (c *Client) attempt(ctx context.Context, cfg *callConfig, req *ChatRequest, cand Candidate, tok Token) (out *ChatResponse, att Attempt, err error) {
	start := time.Now()
	att = Attempt{Candidate: cand, TokenSource: tok.Source}
	// The attempt's own deadline turns a provider that hangs into a failed
	// attempt; its cause tells it apart from the caller's deadline.
	actx, cancel := boundAttempt(ctx, cfg)
	defer cancel()
	x := exchange{method: http.MethodPost, url: c.chatURL, accept: "application/json", about: cand, op: "chat with", tok: tok, cfg: cfg}
	var resp *http.Response
	x.body, err = req.encode(cand, false)
	if err == nil {
		resp, err = c.send(ctx, actx, x, &att)
	}
	if err == nil {
		out, err = c.decodeChat(ctx, actx, resp, x)
		resp.Body.Close()
		if out != nil {
			out.RequestID = att.RequestID
		}
	}
	att.Err = err
	att.Duration = time.Since(start)
	att.TimedOut = timedOut(err)
	return out, att, err
}

// decodeChat reads a 2xx answer. A body that is not a chat completion (not
// JSON, no choices, an error object, a web page) is an ErrProvider failure,
// not an empty answer.
func (c *Client) decodeChat(ctx, actx context.Context, resp *http.Response, x exchange) (*ChatResponse, error) {
	data, err := c.read(ctx, actx, resp, x, maxChatBody)
	if err != nil {
		return nil, err
	}
	notCompletion := func(why string) error { return c.notWhatWasAsked(resp.StatusCode, resp.Header, data, x, why) }
	if isHTML(resp.Header, data) {
		return nil, notCompletion("the answer is a web page, not a chat completion")
	}
	w, err := decodeCompletion(data, x.about.Model)
	if err != nil {
		return nil, notCompletion("the answer is not a JSON chat completion")
	}
	if len(w.Choices) == 0 {
		if isJSONError(w.Error) {
			return nil, notCompletion("the answer is an error, not a chat completion")
		}
		return nil, notCompletion("the answer has no choices")
	}
	out := w.ChatResponse
	if p := servedBy(resp.Header, x.tok); p != "" {
		out.Provider = p
	}
	return &out, nil
}
