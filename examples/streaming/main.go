// Command streaming prints an answer as it arrives, then shows a stream
// that fails midway being handled: the error says what happened, and the
// text received before it is kept. Last, with WithStreamRecovery, a stream
// cut midway is taken over by a fallback, and the reader sees one unbroken
// answer; the loop shows how to honour a Restarted chunk.
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
	failing, cut, backup := "", "", ""
	if !live {
		router := inferencetest.NewRouter()
		defer router.Close()
		router.On(model, inferencetest.Reply("Streams let a reader see the answer as it is written, word by word."))
		failing = "demo/flaky-provider"
		router.On(failing, inferencetest.StreamError("Request failed during generation: CUDA out of memory", "The first ", "words arrive, ", "then"))
		cut, backup = "demo/cut-provider", "demo/backup"
		const answer = "A stream that breaks is sent again, and the reader never notices."
		router.On(cut, inferencetest.StreamScript{Text: answer, CutAfter: 5, Every: time.Millisecond}.Answer())
		router.On(backup, inferencetest.StreamScript{Text: answer, Every: time.Millisecond}.Answer())
		opts = append(opts, inference.WithBaseURL(router.URL()), inference.WithHubURL(router.URL()), inference.WithToken(inferencetest.Token))
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
	if cut != "" {
		recovering, err := inference.NewClient(append(opts, inference.WithStreamRecovery(),
			inference.WithFallback(inference.Candidate{Model: backup}))...)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\n%s, with WithStreamRecovery and a fallback:\n", cut)
		if err := streamRecovering(ctx, out, recovering, cut); err != nil {
			return err
		}
	}
	return nil
}

// streamRecovering prints an answer from a client with WithStreamRecovery.
// When a restarted attempt's answer differs from what was shown, its first
// chunk is Restarted and carries the new answer from its start: the reader
// drops what it showed. Here the fallback reproduces the cut answer, so the
// restart is seamless and no chunk is Restarted.
func streamRecovering(ctx context.Context, out io.Writer, client *inference.Client, model string) error {
	s, err := client.ChatStream(ctx, inference.ChatRequest{Model: model,
		Messages: []inference.Message{inference.UserMessage("What happens when a stream breaks? One sentence.")}})
	if err != nil {
		return err
	}
	defer s.Close()
	for s.Next() {
		chunk := s.Current()
		if chunk.Restarted {
			// A terminal cannot take back what it printed: say so. A UI
			// would clear the message instead.
			fmt.Fprint(out, "\n[the answer started again]\n")
		}
		fmt.Fprint(out, chunk.Text())
	}
	fmt.Fprintln(out)
	if err := s.Err(); err != nil {
		return err
	}
	for i, a := range s.Attempts() {
		outcome := "served"
		if a.Err != nil {
			outcome = fmt.Sprint(a.Kind())
		}
		fmt.Fprintf(out, "attempt %d: %s: %s\n", i+1, a.Candidate, outcome)
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
