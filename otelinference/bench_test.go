package otelinference

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// BenchmarkChat is one chat without an observer, and with this one over the
// real SDK (every span sampled, kept by a recorder-less processor; metrics
// aggregated by a manual reader): the cost the observer adds per call.
func BenchmarkChat(b *testing.B) {
	r := inferencetest.NewRouter()
	defer r.Close()
	r.On("org/m", inferencetest.Reply("ok"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer tp.Shutdown(context.Background())
	defer mp.Shutdown(context.Background())
	for _, tc := range []struct {
		name string
		opts []inference.Option
	}{
		{"no-observer", nil},
		{"otel", []inference.Option{inference.WithObserver(New(Options{TracerProvider: tp, MeterProvider: mp}))}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := r.Client(tc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			req := inference.ChatRequest{Model: "org/m", Messages: []inference.Message{inference.UserMessage("hi")}}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Chat(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
