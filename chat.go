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
	cc := &chatCall{req: req}
	ctx, err := c.begin(ctx, &cc.call, "chat with", opts, cc.req.validate, func() CallInfo { return cc.req.callInfo(false) })
	if err != nil {
		return nil, err
	}
	var room [4]Candidate
	cands := c.expand(ctx, &cc.req, cc.cfg.candidatesOf(cc.req.primary(), cc.req.Fallbacks, room[:0]))
	resp, err := runRace[*ChatResponse](ctx, &cc.call, cands, cc)
	if err != nil {
		cc.end(CallResult{}, err)
		return nil, err
	}
	resp.Attempts, resp.Skipped = cc.attempts, cc.skipped
	if cc.obs != nil {
		cc.end(resp.callResult(), nil)
	}
	return resp, nil
}

// chatCall is a Chat call in flight, its own attempter.
type chatCall struct {
	call
	req ChatRequest
}

func (cc *chatCall) attempt(ctx context.Context, cand Candidate, tok Token, hooks tryHooks) (*ChatResponse, Attempt, error) {
	return cc.chat(ctx, &cc.req, cand, tok, hooks)
}

// chat sends the request to one candidate, with retries, and reads the
// answer.
func (w *call) chat(ctx context.Context, req *ChatRequest, cand Candidate, tok Token, hooks tryHooks) (out *ChatResponse, att Attempt, err error) {
	c := w.c
	start := time.Now()
	att = Attempt{Candidate: cand, TokenSource: tok.Source}
	// The attempt's own deadline turns a provider that hangs into a failed
	// attempt; its cause tells it apart from the caller's deadline.
	actx, cancel := boundAttempt(ctx, w.cfg)
	defer cancel()
	x := exchange{method: http.MethodPost, url: c.chatURL, accept: "application/json", about: cand, tok: tok, cfg: w.cfg, op: w.op, race: hooks}
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
