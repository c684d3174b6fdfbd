// Command fallback shows one call surviving a gated model and a failing
// provider: the client walks to the candidate that serves, and prints every
// attempt and the log lines a user would see.
//
// Offline by default, against a local fake router scripted with those
// failures. With -live and HF_TOKEN set, it walks the same kind of list on
// the real router.
//
//	go run ./examples/fallback
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

// The walk: a gated model first, then a provider that fails, then one that serves.
var (
	primary    = inference.Candidate{Model: "meta-llama/Llama-3.1-8B-Instruct", Provider: "nebius"}
	fallbacks  = []inference.Candidate{{Model: "Qwen/Qwen3-Next-80B-A3B-Instruct", Provider: "hyperbolic"}, {Model: "meta-llama/Llama-3.3-70B-Instruct", Provider: "together"}}
	liveModels = []inference.Candidate{{Model: "meta-llama/Llama-3.3-70B-Instruct"}, {Model: "Qwen/Qwen2.5-72B-Instruct"}}
)

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
	logger := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		// Drop the time so the output reads the same each run.
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	}))
	opts := []inference.Option{
		inference.WithLogger(logger),
		inference.WithRetry(inference.RetryPolicy{MaxRetries: 1, MinWait: 10 * time.Millisecond, MaxWait: 2 * time.Second}),
	}
	req := inference.ChatRequest{
		Model:     primary.Model,
		Provider:  primary.Provider,
		Messages:  []inference.Message{inference.UserMessage("Name one benefit of open models, in five words.")},
		MaxTokens: 30,
		Fallbacks: fallbacks,
	}
	if live {
		req.Fallbacks = liveModels
	} else {
		router := inferencetest.NewRouter()
		defer router.Close()
		router.On(primary.String(), inferencetest.Gated())
		router.On(fallbacks[0].String(), inferencetest.ProviderError(502))
		router.On(fallbacks[1].String(), inferencetest.Reply("Anyone can inspect them."))
		opts = append(opts, inference.WithBaseURL(router.URL()), inference.WithHubURL(router.URL()), inference.WithToken(inferencetest.Token))
		fmt.Fprintln(out, "offline: a fake router where the first model is gated and the second provider fails")
	}

	client, err := inference.NewClient(opts...)
	if err != nil {
		return err
	}
	resp, err := client.Chat(ctx, req)
	if err != nil {
		var fe *inference.FallbackError
		if errors.As(err, &fe) {
			printAttempts(out, fe.Attempts)
		}
		return err
	}
	fmt.Fprintf(out, "\nanswer from %s: %s\n\nattempts:\n", resp.Provider, resp.Text())
	printAttempts(out, resp.Attempts)
	return nil
}

func printAttempts(out io.Writer, attempts []inference.Attempt) {
	for i, a := range attempts {
		outcome := "served"
		if a.Err != nil {
			outcome = fmt.Sprint(a.Kind())
		}
		fmt.Fprintf(out, "  %d. %-50s HTTP %d, retried %d×: %s\n", i+1, a.Candidate, a.StatusCode, a.Retries, outcome)
	}
}
