// Command errors shows each kind of failure handled with errors.Is and
// errors.As, and the message a user would be shown for it.
//
// Offline by default, against a local fake router that answers each model
// with a different failure. With -live and HF_TOKEN set, it sends a few
// requests that fail on the real router (an unknown model, a bad token).
//
//	go run ./examples/errors
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// scenarios are the failures the offline router plays, one model each.
var scenarios = []struct {
	model  string
	answer inferencetest.Answer
}{
	{"demo/missing-scope", inferencetest.MissingScope()},
	{"demo/gated", inferencetest.Gated()},
	{"demo/unknown", inferencetest.ModelNotFound()},
	{"demo/unserved", inferencetest.NotSupported()},
	{"demo/no-credits", inferencetest.PaymentRequired()},
	{"demo/busy", inferencetest.RateLimited(30 * time.Second)},
	{"demo/too-long", inferencetest.ContextLengthExceeded()},
	{"demo/bad-setting", inferencetest.Validation()},
	{"demo/refused", inferencetest.ContentPolicy()},
	{"demo/down", inferencetest.GatewayTimeout()},
	{"demo/bad-token", inferencetest.InvalidToken()},
}

func main() {
	live := flag.Bool("live", false, "call the real router (needs HF_TOKEN)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, *live); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, live bool) error {
	// One try per call, no fallback: each failure is shown as it comes.
	opts := []inference.Option{inference.WithRetry(inference.RetryPolicy{})}
	models := []string{"this-org/does-not-exist"}
	if !live {
		router := inferencetest.NewRouter()
		defer router.Close()
		models = models[:0]
		for _, s := range scenarios {
			router.On(s.model, s.answer)
			models = append(models, s.model)
		}
		opts = append(opts, inference.WithBaseURL(router.URL()), inference.WithHubURL(router.URL()), inference.WithToken(inferencetest.Token))
	}
	client, err := inference.NewClient(opts...)
	if err != nil {
		return err
	}
	for _, model := range models {
		_, err := client.Chat(ctx, inference.ChatRequest{Model: model, Messages: []inference.Message{inference.UserMessage("hi")}})
		show(out, model, err)
	}

	// Failures found before anything is sent.
	_, err = inference.NewClient(inference.WithToken("<gradio.oauth.OAuthToken object at 0x7f3b2c1d0e50>"))
	show(out, "a printed token object", err)
	empty, err := inference.NewClient(inference.WithTokenSource(emptySource{}))
	if err != nil {
		return err
	}
	_, err = empty.Chat(ctx, inference.ChatRequest{Model: "demo/any", Messages: []inference.Message{inference.UserMessage("hi")}})
	show(out, "no token anywhere", err)
	return nil
}

// show prints what an application would tell its user for err.
func show(out io.Writer, what string, err error) {
	if err == nil {
		fmt.Fprintf(out, "%s: no error\n\n", what)
		return
	}
	var advice string
	switch {
	case errors.Is(err, inference.ErrMissingScope):
		advice = "Please log in again and allow \"Inference API\" access."
	case errors.Is(err, inference.ErrGatedModel):
		advice = "This model needs the owner's approval: request access on its page."
	case errors.Is(err, inference.ErrModelNotFound), errors.Is(err, inference.ErrModelNotSupported):
		advice = "This model is not available right now; pick another."
	case errors.Is(err, inference.ErrPaymentRequired):
		advice = "The account has run out of inference credits."
	case errors.Is(err, inference.ErrRateLimited):
		advice = "Too many requests: try again shortly."
	case errors.Is(err, inference.ErrContextLength):
		advice = "The conversation is too long for this model: start a new one, or let the app summarise it."
	case errors.Is(err, inference.ErrInvalidRequest):
		advice = "The request was refused: change its settings or its content."
	case errors.Is(err, inference.ErrProvider):
		advice = "The model's provider is having trouble: try again later."
	case errors.Is(err, inference.ErrUnauthorized), errors.Is(err, inference.ErrInvalidToken), errors.Is(err, inference.ErrNoToken):
		advice = "Sign in again, or set a valid HF_TOKEN."
	default:
		advice = "Something went wrong."
	}
	fmt.Fprintf(out, "%s\n  user sees: %s\n  log line:  %v\n", what, advice, err)
	var apiErr *inference.APIError
	if errors.As(err, &apiErr) {
		fmt.Fprintf(out, "  details:   status %d, request id %q, provider %q, retry after %s\n", apiErr.StatusCode, apiErr.RequestID, apiErr.Provider, apiErr.RetryAfter)
	}
	fmt.Fprintln(out)
}

// emptySource is a token source with no token, as when HF_TOKEN is unset
// and nobody logged in.
type emptySource struct{}

func (emptySource) Token(context.Context) (inference.Token, error) {
	return inference.Token{}, fmt.Errorf("%w (no user logged in)", inference.ErrNoToken)
}
