// Command otel traces a call that walks from a gated model to a served
// fallback, and prints its spans with OpenTelemetry's stdout exporter: the
// call span, "chat {model}", with an attempt child per candidate, the kind
// of each failure (error.type), the fallback event and the tokens used.
//
// Offline: the router is a local fake (inferencetest).
//
//	go run .
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
	"github.com/hfkit/inference/otelinference"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "otel:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	exporter, err := stdouttrace.New(stdouttrace.WithWriter(out), stdouttrace.WithPrettyPrint(), stdouttrace.WithoutTimestamps())
	if err != nil {
		return err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	defer tp.Shutdown(context.Background())

	router := inferencetest.NewRouter()
	defer router.Close()
	router.On("org/gated-model", inferencetest.Gated())
	router.On("org/backup:together", inferencetest.Reply("Traces show the walk."))

	obs := otelinference.New(otelinference.Options{TracerProvider: tp})
	client, err := router.Client(
		inference.WithObserver(obs),
		inference.WithFallback(inference.Candidate{Model: "org/backup", Provider: "together"}),
	)
	if err != nil {
		return err
	}
	resp, err := client.Chat(ctx, inference.ChatRequest{Model: "org/gated-model", Messages: []inference.Message{inference.UserMessage("hi")}})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "answer: %s (after %d attempts; the spans above show them)\n", resp.Text(), len(resp.Attempts))
	return nil
}
