// Command streaming prints an answer as it arrives, then shows a stream
// that fails midway being handled: the error says what happened, and the
// text received before it is kept.
//
// Offline by default, against a local fake router. With -live and HF_TOKEN
// set, it streams from the real router.
//
//	go run ./examples/streaming
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

func main() {
	live := flag.Bool("live", false, "call the real router (needs HF_TOKEN)")
	model := flag.String("model", "meta-llama/Llama-3.3-70B-Instruct", "model id on the Hub")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, *live, *model); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, live bool, model string) error {
	var opts []inference.Option
	failing := ""
	if !live {
		router := inferencetest.NewRouter()
		defer router.Close()
		router.On(model, inferencetest.Reply("Streams let a reader see the answer as it is written, word by word."))
		failing = "demo/flaky-provider"
		router.On(failing, inferencetest.StreamError("Request failed during generation: CUDA out of memory", "The first ", "words arrive, ", "then"))
		opts = append(opts, inference.WithBaseURL(router.URL()), inference.WithToken(inferencetest.Token))
		fmt.Fprintln(out, "offline: streaming from a local fake router")
	}
	client, err := inference.NewClient(opts...)
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "\n%s:\n", model)
	if err := stream(ctx, out, client, model); err != nil {
		return err
	}
	if failing != "" {
		fmt.Fprintf(out, "\n%s:\n", failing)
		err := stream(ctx, out, client, failing)
		switch {
		case errors.Is(err, inference.ErrStream):
			fmt.Fprintf(out, "the stream failed after content arrived: %v\n", err)
		case err != nil:
			return err
		}
	}
	return nil
}

// stream prints one streamed answer as it arrives. A failure after content
// is returned with the partial text already printed and kept.
func stream(ctx context.Context, out io.Writer, client *inference.Client, model string) error {
	s, err := client.ChatStream(ctx, inference.ChatRequest{
		Model:        model,
		Messages:     []inference.Message{inference.UserMessage("Why stream answers? One sentence.")},
		MaxTokens:    60,
		IncludeUsage: true,
	})
	if err != nil {
		return err
	}
	defer s.Close()
	for s.Next() {
		fmt.Fprint(out, s.Current().Text())
	}
	fmt.Fprintln(out)
	resp := s.Response()
	if err := s.Err(); err != nil {
		fmt.Fprintf(out, "kept %d characters received before the failure\n", len(resp.Text()))
		return err
	}
	fmt.Fprintf(out, "(%s, %d completion tokens, finish reason %q)\n", resp.Provider, resp.Usage.CompletionTokens, resp.Choices[0].FinishReason)
	return nil
}
