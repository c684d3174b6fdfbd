// Package otelinference reports the calls of a github.com/hfkit/inference
// client to OpenTelemetry, after the GenAI semantic conventions of
// semantic-conventions v1.41.0 (go.opentelemetry.io/otel/semconv/v1.41.0):
// a span per call and a child span per attempt, events for each move to
// another candidate and each candidate skipped while cooling down, and the
// metrics gen_ai.client.operation.duration, gen_ai.client.token.usage,
// gen_ai.client.operation.time_to_first_chunk and
// gen_ai.client.operation.time_per_output_chunk, plus hfkit.client.attempts
// by kind and provider. It sees what an HTTP middleware cannot: the walk,
// the kinds, the tokens of a stream, its chunks. The module's README lists
// every attribute with its requirement level.
//
// A call the caller ended (a stream closed before its end, a cancelled
// context) is not recorded as a failure: the service did not fail, and an
// error-rate dashboard must not count every reader who left. Its span
// status stays unset, it has no error.type, and hfkit.outcome says
// "closed" or "canceled". A call whose deadline passed is a failure
// (error.type deadline_exceeded): the time budget was spent waiting.
//
//	obs := otelinference.New(otelinference.Options{TracerProvider: tp, MeterProvider: mp})
//	c, err := inference.NewClient(inference.WithObserver(obs))
//
// Spans and attributes never hold a token, a prompt or an answer: only
// models, providers, statuses, request ids, kinds and counts. Trace context
// is sent to the router (a third party) only with Options.Propagate.
package otelinference

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/hfkit/inference"
)

// scope names the instrumentation.
const scope = "github.com/hfkit/inference/otelinference"

// Options configure an [Observer]. The zero value uses the global
// providers and propagates nothing.
type Options struct {
	// TracerProvider and MeterProvider default to the global ones.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// Propagator injects trace context into requests when Propagate is
	// set; it defaults to the global propagator.
	Propagator propagation.TextMapPropagator
	// Propagate sends the trace context (traceparent) to the router with
	// each request, through [Observer.Middleware]. Off by default: the
	// router is a third party.
	Propagate bool
}

// Observer is an [inference.Observer] over OpenTelemetry. It is safe for
// concurrent use.
type Observer struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	propagate  bool

	duration   metric.Float64Histogram
	tokens     metric.Int64Histogram
	firstChunk metric.Float64Histogram
	perChunk   metric.Float64Histogram
	attempts   metric.Int64Counter
}

// providerName is gen_ai.provider.name: the router is Hugging Face's, and
// the provider behind it is hfkit.provider.
const providerName = "huggingface"

// durationBuckets is the conventions' advice for the seconds histograms.
var durationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}

// chunkBuckets is the advice for time per output chunk.
var chunkBuckets = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}

var _ inference.Observer = (*Observer)(nil)

// New returns an observer. Instruments that cannot be made (a broken
// meter provider) are replaced by no-ops rather than failing.
func New(opts Options) *Observer {
	tp, mp, prop := opts.TracerProvider, opts.MeterProvider, opts.Propagator
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if prop == nil {
		prop = otel.GetTextMapPropagator()
	}
	meter := mp.Meter(scope)
	o := &Observer{tracer: tp.Tracer(scope), propagator: prop, propagate: opts.Propagate}
	o.duration, _ = meter.Float64Histogram("gen_ai.client.operation.duration",
		metric.WithUnit("s"), metric.WithDescription("GenAI operation duration"),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	o.tokens, _ = meter.Int64Histogram("gen_ai.client.token.usage",
		metric.WithUnit("{token}"), metric.WithDescription("Measures number of input and output tokens used"),
		metric.WithExplicitBucketBoundaries(1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864))
	o.firstChunk, _ = meter.Float64Histogram("gen_ai.client.operation.time_to_first_chunk",
		metric.WithUnit("s"), metric.WithDescription("Time to receive the first chunk in a streaming operation"),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	o.perChunk, _ = meter.Float64Histogram("gen_ai.client.operation.time_per_output_chunk",
		metric.WithUnit("s"), metric.WithDescription("Time per output chunk, recorded for each chunk received after the first one"),
		metric.WithExplicitBucketBoundaries(chunkBuckets...))
	o.attempts, _ = meter.Int64Counter("hfkit.client.attempts",
		metric.WithUnit("{attempt}"), metric.WithDescription("Attempts at a candidate, by provider and the kind of their failure"))
	return o
}

// Middleware injects the trace context into each request when
// Options.Propagate is set, and passes requests through unchanged
// otherwise. Give it to inference.WithMiddleware.
func (o *Observer) Middleware() inference.Middleware {
	return func(next http.RoundTripper) http.RoundTripper {
		if !o.propagate {
			return next
		}
		return inference.RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
			r2 := r.Clone(r.Context())
			o.propagator.Inject(r.Context(), propagation.HeaderCarrier(r2.Header))
			return next.RoundTrip(r2)
		})
	}
}

// StartCall starts the call's span, "{operation} {model}" ("chat
// {model}", "embeddings {model}", "text_to_image {model}", ...), of kind
// client, with the request's attributes.
func (o *Observer) StartCall(ctx context.Context, info inference.CallInfo) (context.Context, inference.CallObserver) {
	attrs := []attribute.KeyValue{
		semconv.GenAIOperationNameKey.String(info.Operation),
		semconv.GenAIProviderNameKey.String(providerName),
		semconv.GenAIRequestModel(info.Model),
		semconv.ServerAddress(info.ServerAddress),
		semconv.ServerPort(info.ServerPort),
	}
	if info.Stream {
		attrs = append(attrs, semconv.GenAIRequestStreamKey.Bool(true))
	}
	if info.Provider != "" {
		attrs = append(attrs, attribute.String("hfkit.request.provider", info.Provider))
	}
	if info.MaxTokens > 0 {
		attrs = append(attrs, semconv.GenAIRequestMaxTokens(info.MaxTokens))
	}
	if info.Temperature != nil {
		attrs = append(attrs, semconv.GenAIRequestTemperature(*info.Temperature))
	}
	if info.TopP != nil {
		attrs = append(attrs, semconv.GenAIRequestTopP(*info.TopP))
	}
	if info.FrequencyPenalty != nil {
		attrs = append(attrs, semconv.GenAIRequestFrequencyPenalty(*info.FrequencyPenalty))
	}
	if info.PresencePenalty != nil {
		attrs = append(attrs, semconv.GenAIRequestPresencePenalty(*info.PresencePenalty))
	}
	if info.Seed != nil {
		attrs = append(attrs, semconv.GenAIRequestSeed(int(*info.Seed)))
	}
	if len(info.StopSequences) > 0 {
		attrs = append(attrs, semconv.GenAIRequestStopSequences(info.StopSequences...))
	}
	if info.ChoiceCount > 1 {
		attrs = append(attrs, semconv.GenAIRequestChoiceCount(info.ChoiceCount))
	}
	if info.OutputType != "" {
		attrs = append(attrs, semconv.GenAIOutputTypeKey.String(info.OutputType))
	}
	ctx, span := o.tracer.Start(ctx, info.Operation+" "+info.Model, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx, &call{o: o, ctx: ctx, span: span, start: time.Now(), info: info}
}

// call observes one call.
type call struct {
	o     *Observer
	ctx   context.Context
	span  trace.Span
	start time.Time
	info  inference.CallInfo
}

var (
	_ inference.ChunkObserver      = (*call)(nil)
	_ inference.EmbeddingsObserver = (*call)(nil)
)

// Embedded records an embeddings call's vector dimension.
func (c *call) Embedded(_, dimensions int) {
	c.span.SetAttributes(semconv.GenAIEmbeddingsDimensionCount(dimensions))
}

// metricAttrs are the attributes every GenAI metric of the call carries.
func (c *call) metricAttrs() []attribute.KeyValue {
	return []attribute.KeyValue{
		semconv.GenAIOperationNameKey.String(c.info.Operation),
		semconv.GenAIProviderNameKey.String(providerName),
		semconv.GenAIRequestModel(c.info.Model),
		semconv.ServerAddress(c.info.ServerAddress),
		semconv.ServerPort(c.info.ServerPort),
	}
}

func (c *call) Skipped(cand inference.Candidate) {
	c.span.AddEvent("cooldown_skip", trace.WithAttributes(attribute.String("hfkit.candidate", cand.String())))
}

func (c *call) Moved(from, to inference.Candidate, err error) {
	c.span.AddEvent("fallback", trace.WithAttributes(
		attribute.String("hfkit.from", from.String()), attribute.String("hfkit.to", to.String()),
		attribute.String("error.type", errorType(err))))
}

func (c *call) StartAttempt(ctx context.Context, cand inference.Candidate, tokenSource string) context.Context {
	attrs := []attribute.KeyValue{
		attribute.String("hfkit.candidate", cand.String()),
		semconv.GenAIRequestModel(cand.Model),
		attribute.String("hfkit.token_source", tokenSource),
		semconv.ServerAddress(c.info.ServerAddress),
		semconv.ServerPort(c.info.ServerPort),
	}
	if cand.Provider != "" {
		// The router's choice is known only from its answer (EndAttempt).
		attrs = append(attrs, attribute.String("hfkit.provider", cand.Provider))
	}
	ctx, _ = c.o.tracer.Start(ctx, "attempt "+cand.String(), trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx
}

// providerOf is the provider an attempt reached: the one its answer
// named, else the one it asked for; "" when neither is known.
func providerOf(a inference.Attempt) string {
	if a.RoutedTo != "" {
		return a.RoutedTo
	}
	return a.Provider
}

func (c *call) EndAttempt(ctx context.Context, a inference.Attempt) {
	span := trace.SpanFromContext(ctx)
	attrs := []attribute.KeyValue{
		attribute.Int("hfkit.retries", a.Retries),
	}
	provider := providerOf(a)
	if provider != "" {
		attrs = append(attrs, attribute.String("hfkit.provider", provider))
	}
	if a.StatusCode != 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(a.StatusCode))
	}
	if a.RequestID != "" {
		attrs = append(attrs, attribute.String("hfkit.request_id", a.RequestID))
	}
	if a.TimedOut != "" {
		attrs = append(attrs, attribute.String("hfkit.timed_out", string(a.TimedOut)))
	}
	if a.Hedge {
		attrs = append(attrs, attribute.Bool("hfkit.hedge", true))
	}
	if a.Lost {
		attrs = append(attrs, attribute.Bool("hfkit.lost", true))
	}
	kind := errorType(a.Err)
	if failed(a.Err) {
		attrs = append(attrs, semconv.ErrorTypeKey.String(kind))
		// The status description would only repeat error.type.
		span.SetStatus(codes.Error, "")
	}
	span.SetAttributes(attrs...)
	span.End()
	outcome := kind
	switch {
	case a.Lost:
		outcome = "lost" // the other of a hedged pair answered first
	case a.Err == nil:
		outcome = "served"
	}
	metricAttrs := []attribute.KeyValue{semconv.GenAIRequestModel(a.Model), attribute.String("hfkit.outcome", outcome)}
	if provider != "" {
		metricAttrs = append(metricAttrs, attribute.String("hfkit.provider", provider))
	}
	c.o.attempts.Add(c.ctx, 1, metric.WithAttributes(metricAttrs...))
}

func (c *call) FirstChunk(elapsed time.Duration) {
	c.span.AddEvent("first_chunk")
	c.span.SetAttributes(semconv.GenAIResponseTimeToFirstChunk(elapsed.Seconds()))
	c.o.firstChunk.Record(c.ctx, elapsed.Seconds(), metric.WithAttributes(c.metricAttrs()...))
}

// Chunk records the time since the previous chunk, for each chunk after
// the first.
func (c *call) Chunk(sincePrevious time.Duration) {
	c.o.perChunk.Record(c.ctx, sincePrevious.Seconds(), metric.WithAttributes(c.metricAttrs()...))
}

func (c *call) End(res inference.CallResult, err error) {
	common := c.metricAttrs()
	if res.Model != "" {
		c.span.SetAttributes(semconv.GenAIResponseModel(res.Model))
		common = append(common, semconv.GenAIResponseModel(res.Model))
	}
	provider := res.Provider
	if provider == "" && err != nil && len(res.Attempts) > 0 {
		// A failed call: the provider whose answer ended it.
		provider = providerOf(res.Attempts[len(res.Attempts)-1])
	}
	if provider != "" {
		c.span.SetAttributes(attribute.String("hfkit.response.provider", provider))
	}
	if res.ID != "" {
		c.span.SetAttributes(semconv.GenAIResponseID(res.ID))
	}
	if len(res.FinishReasons) > 0 {
		c.span.SetAttributes(semconv.GenAIResponseFinishReasons(res.FinishReasons...))
	}
	if len(res.Attempts) > 0 {
		c.span.SetAttributes(attribute.Int("hfkit.attempts", len(res.Attempts)))
	}
	if u := res.Usage; u.TotalTokens > 0 || u.PromptTokens > 0 || u.CompletionTokens > 0 {
		c.span.SetAttributes(
			semconv.GenAIUsageInputTokens(u.PromptTokens),
			semconv.GenAIUsageOutputTokens(u.CompletionTokens))
		c.o.tokens.Record(c.ctx, int64(u.PromptTokens), metric.WithAttributes(append(common, semconv.GenAITokenTypeInput)...))
		c.o.tokens.Record(c.ctx, int64(u.CompletionTokens), metric.WithAttributes(append(common, semconv.GenAITokenTypeOutput)...))
	}
	switch {
	case failed(err):
		kind := errorType(err)
		c.span.SetAttributes(semconv.ErrorTypeKey.String(kind))
		c.span.SetStatus(codes.Error, "")
		common = append(common, semconv.ErrorTypeKey.String(kind))
	case err != nil:
		// The caller ended the call: not the service failing.
		c.span.SetAttributes(attribute.String("hfkit.outcome", errorType(err)))
	}
	c.o.duration.Record(c.ctx, time.Since(c.start).Seconds(), metric.WithAttributes(common...))
	c.span.End()
}

// failed reports an error that is the service's failure, not the caller
// ending the call (closing a stream, cancelling the context).
func failed(err error) bool {
	return err != nil && !errors.Is(err, inference.ErrStreamClosed) && !errors.Is(err, context.Canceled)
}

// errorType is the kind's name (such as gated_model), or for an error of
// no kind, what it is: the context's end, a stream closed early, or other.
func errorType(err error) string {
	switch {
	case err == nil:
		return ""
	case inference.KindName(err) != "":
		return inference.KindName(err)
	case errors.Is(err, inference.ErrStreamClosed):
		return "closed"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	}
	return "_OTHER"
}
