// Command quickstart sends one chat request through the Hugging Face
// Inference Providers router and prints the answer.
//
// By default it runs offline: it starts a local fake router and talks to it
// with a placeholder token, so it works on a fresh clone with no token and no
// network. With -live and HF_TOKEN set (or a token saved by `hf auth login`)
// it calls https://router.huggingface.co.
//
//	go run ./examples/quickstart
//	HF_TOKEN=hf_... go run ./examples/quickstart -live -model meta-llama/Llama-3.3-70B-Instruct
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

func main() {
	live := flag.Bool("live", false, `call the real router (needs HF_TOKEN, or the token "hf auth login" saved)`)
	model := flag.String("model", "meta-llama/Llama-3.3-70B-Instruct", "model id on the Hub")
	provider := flag.String("provider", "auto", `provider name, or "auto", "fastest", "cheapest", "preferred"`)
	verbose := flag.Bool("v", false, "log each HTTP attempt")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, *live, *model, *provider, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run does the example's work, so that a test can run it too.
func run(ctx context.Context, out io.Writer, live bool, model, provider string, verbose bool) error {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	opts := []inference.Option{
		inference.WithLogger(slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level}))),
	}
	if live {
		fmt.Fprintln(out, "calling https://router.huggingface.co with the token from HF_TOKEN or `hf auth login`")
	} else {
		router := inferencetest.NewRouter()
		defer router.Close()
		router.On(model, inferencetest.Reply("Open models let anyone inspect, adapt and run the systems they depend on."))
		router.On(model+":"+provider, inferencetest.Reply("Open models let anyone inspect, adapt and run the systems they depend on."))
		fmt.Fprintln(out, "offline: using a local fake router at", router.URL(), "(pass -live to call the real one)")
		opts = append(opts,
			inference.WithBaseURL(router.URL()),
			inference.WithHubURL(router.URL()),
			inference.WithToken(inferencetest.Token))
	}

	client, err := inference.NewClient(opts...)
	if err != nil {
		return err
	}
	resp, err := client.Chat(ctx, inference.ChatRequest{
		Model:     model,
		Provider:  provider,
		Messages:  []inference.Message{inference.UserMessage("In one sentence: why do open models matter?")},
		MaxTokens: 100,
	})
	if err != nil {
		// One message says what happened and what to do about it.
		var apiErr *inference.APIError
		if errors.As(err, &apiErr) && apiErr.RequestID != "" {
			fmt.Fprintln(out, "request id for support:", apiErr.RequestID)
		}
		return err
	}
	fmt.Fprintf(out, "%s answered: %s\n", resp.Provider, resp.Text())
	fmt.Fprintf(out, "tokens: %d prompt + %d completion\n", resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
	for i, a := range resp.Attempts {
		fmt.Fprintf(out, "attempt %d: %s status %d, retried %d×, token from %s\n", i+1, a.Candidate, a.StatusCode, a.Retries, a.TokenSource)
	}
	return nil
}
