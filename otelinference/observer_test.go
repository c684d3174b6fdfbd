package otelinference

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// setup is a fake router, the real SDK's recorders, and a client observed
// by them.
type setup struct {
	router *inferencetest.Router
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	obs    *Observer
	tp     *sdktrace.TracerProvider
}

func newSetup(t *testing.T, opts Options) *setup {
	s := &setup{router: inferencetest.NewRouter(), spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	t.Cleanup(s.router.Close)
	s.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(s.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(s.reader))
	t.Cleanup(func() { _ = s.tp.Shutdown(context.Background()); _ = mp.Shutdown(context.Background()) })
	opts.TracerProvider, opts.MeterProvider = s.tp, mp
	s.obs = New(opts)
	return s
}

func (s *setup) client(t *testing.T, opts ...inference.Option) *inference.Client {
	c, err := s.router.Client(append([]inference.Option{inference.WithObserver(s.obs), inference.WithMiddleware(s.obs.Middleware())}, opts...)...)
	require.NoError(t, err)
	return c
}

func attrs(kvs []attribute.KeyValue) map[string]any {
	out := map[string]any{}
	for _, kv := range kvs {
		out[string(kv.Key)] = kv.Value.AsInterface()
	}
	return out
}

func (s *setup) metrics(t *testing.T) map[string]metricdata.Metrics {
	var rm metricdata.ResourceMetrics
	require.NoError(t, s.reader.Collect(context.Background(), &rm))
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

func chatReq(model string) inference.ChatRequest {
	return inference.ChatRequest{Model: model, Messages: []inference.Message{inference.UserMessage("hi")}}
}

// TestGatedPrimaryThenServedFallback: one call span with two attempt
// children, the first gated, the fallback event, usage on the call.
func TestGatedPrimaryThenServedFallback(t *testing.T) {
	s := newSetup(t, Options{})
	s.router.On("org/gated", inferencetest.Gated())
	s.router.On("org/backup:together", inferencetest.Reply("hello there"))
	c := s.client(t, inference.WithFallback(inference.Candidate{Model: "org/backup", Provider: "together"}))
	resp, err := c.Chat(t.Context(), chatReq("org/gated"))
	require.NoError(t, err)

	ended := s.spans.Ended()
	require.Len(t, ended, 3)
	callSpan := ended[2]
	assert.Equal(t, "chat org/gated", callSpan.Name())
	assert.Equal(t, trace.SpanKindClient, callSpan.SpanKind())
	a := attrs(callSpan.Attributes())
	assert.Equal(t, "chat", a["gen_ai.operation.name"])
	assert.Equal(t, "org/gated", a["gen_ai.request.model"])
	assert.Equal(t, "org/backup", a["gen_ai.response.model"])
	assert.Equal(t, int64(10), a["gen_ai.usage.input_tokens"])
	assert.Equal(t, int64(2), a["gen_ai.usage.output_tokens"])
	assert.Equal(t, "together", a["hfkit.response.provider"])
	assert.Equal(t, int64(2), a["hfkit.attempts"])
	assert.NotContains(t, a, "error.type", "the call succeeded")
	assert.Equal(t, codes.Unset, callSpan.Status().Code)
	require.Len(t, callSpan.Events(), 1)
	ev := callSpan.Events()[0]
	assert.Equal(t, "fallback", ev.Name)
	assert.Equal(t, map[string]any{"hfkit.from": "org/gated", "hfkit.to": "org/backup:together", "error.type": "gated_model"}, attrs(ev.Attributes))

	first, second := ended[0], ended[1]
	for _, sp := range []sdktrace.ReadOnlySpan{first, second} {
		assert.Equal(t, callSpan.SpanContext().SpanID(), sp.Parent().SpanID(), "attempts are children of the call")
		assert.Equal(t, callSpan.SpanContext().TraceID(), sp.SpanContext().TraceID())
	}
	assert.Equal(t, "attempt org/gated", first.Name())
	fa := attrs(first.Attributes())
	assert.Equal(t, "gated_model", fa["error.type"])
	assert.Equal(t, int64(403), fa["http.response.status_code"])
	assert.Equal(t, "ViT1Bf7O_026LGSQuVqfa", fa["hfkit.request_id"])
	assert.Equal(t, "org/gated", fa["hfkit.candidate"])
	assert.Equal(t, "static", fa["hfkit.token_source"])
	assert.Equal(t, int64(0), fa["hfkit.retries"])
	assert.Equal(t, codes.Error, first.Status().Code)
	sa := attrs(second.Attributes())
	assert.Equal(t, "attempt org/backup:together", second.Name())
	assert.Equal(t, "together", sa["hfkit.provider"])
	assert.Equal(t, int64(200), sa["http.response.status_code"])
	assert.NotContains(t, sa, "error.type")

	m := s.metrics(t)
	dur := m["gen_ai.client.operation.duration"].Data.(metricdata.Histogram[float64])
	require.Len(t, dur.DataPoints, 1)
	assert.Equal(t, uint64(1), dur.DataPoints[0].Count)
	da := attrs(dur.DataPoints[0].Attributes.ToSlice())
	assert.Equal(t, "org/backup", da["gen_ai.response.model"])
	assert.Equal(t, "chat", da["gen_ai.operation.name"])
	usage := m["gen_ai.client.token.usage"].Data.(metricdata.Histogram[int64])
	byType := map[string]int64{}
	for _, dp := range usage.DataPoints {
		byType[attrs(dp.Attributes.ToSlice())["gen_ai.token.type"].(string)] = dp.Sum
	}
	assert.Equal(t, map[string]int64{"input": 10, "output": 2}, byType)
	counts := map[string]int64{}
	for _, dp := range m["hfkit.client.attempts"].Data.(metricdata.Sum[int64]).DataPoints {
		at := attrs(dp.Attributes.ToSlice())
		provider, named := at["hfkit.provider"].(string)
		if !named {
			provider = "(no provider)" // the router's gated answer named none: no empty attribute
		}
		counts[at["gen_ai.request.model"].(string)+" "+provider+" "+at["hfkit.outcome"].(string)] = dp.Value
	}
	assert.Equal(t, map[string]int64{"org/gated (no provider) gated_model": 1, "org/backup together served": 1}, counts)
	assert.Equal(t, "hello there", resp.Text())
}

func TestProviderFailuresAreCountedByKindAndProvider(t *testing.T) {
	s := newSetup(t, Options{})
	s.router.On("org/m:flaky", inferencetest.ProviderError(503))
	c := s.client(t, inference.WithRetry(inference.RetryPolicy{MaxRetries: 1, MinWait: time.Millisecond, MaxWait: time.Millisecond}), inference.WithCooldown(0))
	for range 3 {
		_, err := c.Chat(t.Context(), inference.ChatRequest{Model: "org/m", Provider: "flaky", Messages: []inference.Message{inference.UserMessage("hi")}})
		require.ErrorIs(t, err, inference.ErrProvider)
	}
	var got int64
	for _, dp := range s.metrics(t)["hfkit.client.attempts"].Data.(metricdata.Sum[int64]).DataPoints {
		at := attrs(dp.Attributes.ToSlice())
		if at["hfkit.provider"] == "flaky" && at["hfkit.outcome"] == "provider_error" {
			got = dp.Value
		}
	}
	assert.Equal(t, int64(3), got, "a dashboard shows provider flaky failed 3 times with ErrProvider")
	for _, sp := range s.spans.Ended() {
		if strings.HasPrefix(sp.Name(), "attempt") {
			assert.Equal(t, int64(1), attrs(sp.Attributes())["hfkit.retries"])
		} else {
			assert.Equal(t, "provider_error", attrs(sp.Attributes())["error.type"])
		}
	}
}

func TestStreamRecordsTimeToFirstChunk(t *testing.T) {
	s := newSetup(t, Options{})
	s.router.On("org/m", inferencetest.StreamScript{Text: "one two three", FirstTokenAfter: 30 * time.Millisecond}.Answer())
	c := s.client(t)
	st, err := c.ChatStream(t.Context(), chatReq("org/m"))
	require.NoError(t, err)
	assert.Empty(t, s.spans.Ended(), "the call and its attempt last as long as the stream")
	for st.Next() {
	}
	require.NoError(t, st.Err())
	require.NoError(t, st.Close())

	ended := s.spans.Ended()
	require.Len(t, ended, 2)
	callSpan := ended[1]
	assert.Equal(t, "chat org/m", callSpan.Name())
	a := attrs(callSpan.Attributes())
	assert.Equal(t, true, a["gen_ai.request.stream"])
	assert.Equal(t, int64(3), a["gen_ai.usage.output_tokens"])
	require.Len(t, callSpan.Events(), 1)
	assert.Equal(t, "first_chunk", callSpan.Events()[0].Name)
	ttfc := s.metrics(t)["gen_ai.client.operation.time_to_first_chunk"].Data.(metricdata.Histogram[float64])
	require.Len(t, ttfc.DataPoints, 1)
	assert.Equal(t, uint64(1), ttfc.DataPoints[0].Count)
	assert.GreaterOrEqual(t, ttfc.DataPoints[0].Sum, 0.03)
}

func TestCancelledAndClosedCallsEndTheirSpans(t *testing.T) {
	s := newSetup(t, Options{})
	s.router.On("org/hang", inferencetest.Hang())
	s.router.On("org/long", inferencetest.StreamScript{Text: strings.Repeat("word ", 50), Every: 10 * time.Millisecond}.Answer())
	c := s.client(t)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Chat(ctx, chatReq("org/hang"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	st, err := c.ChatStream(t.Context(), chatReq("org/long"))
	require.NoError(t, err)
	require.True(t, st.Next())
	require.NoError(t, st.Close()) // closed early

	types, statuses := map[string]any{}, map[string]codes.Code{}
	for _, sp := range s.spans.Ended() {
		if strings.HasPrefix(sp.Name(), "chat") {
			a := attrs(sp.Attributes())
			types[sp.Name()] = a["error.type"]
			statuses[sp.Name()] = sp.Status().Code
			if sp.Name() == "chat org/long" {
				assert.Equal(t, "closed", a["hfkit.outcome"])
			}
		}
	}
	// The deadline passed while waiting: a failure. The reader who
	// closed the stream early: not one.
	assert.Equal(t, map[string]any{"chat org/hang": "deadline_exceeded", "chat org/long": nil}, types)
	assert.Equal(t, map[string]codes.Code{"chat org/hang": codes.Error, "chat org/long": codes.Unset}, statuses)
	assert.Len(t, s.spans.Started(), len(s.spans.Ended()), "every span started has ended")
}

func TestTraceContextOnlyWhenAsked(t *testing.T) {
	for _, propagate := range []bool{false, true} {
		s := newSetup(t, Options{Propagate: propagate, Propagator: propagation.TraceContext{}})
		s.router.On("org/m", inferencetest.Reply("ok"))
		_, err := s.client(t).Chat(t.Context(), chatReq("org/m"))
		require.NoError(t, err)
		tp := s.router.Requests()[0].Header.Get("Traceparent")
		if !propagate {
			assert.Empty(t, tp)
			continue
		}
		attempt := s.spans.Ended()[0]
		assert.Contains(t, tp, attempt.SpanContext().TraceID().String())
		assert.Contains(t, tp, attempt.SpanContext().SpanID().String(), "the request is the attempt's child")
	}
}

func TestNoTokenInAnySpanOrMetric(t *testing.T) {
	s := newSetup(t, Options{})
	const userToken = "hf_oauth_SecretUserTokenAAAAAAAAAAAAAAAAAAAA"
	s.router.ForToken(userToken, inferencetest.MissingScope())
	s.router.On("org/m", inferencetest.Reply("ok"))
	c := s.client(t, inference.WithTokenSource(inference.ChainTokens(inference.StaticToken(userToken), inference.StaticToken(inferencetest.Token))))
	_, err := c.Chat(t.Context(), chatReq("org/m"))
	require.NoError(t, err)
	var all strings.Builder
	for _, sp := range s.spans.Ended() {
		all.WriteString(sp.Name())
		for _, kv := range sp.Attributes() {
			all.WriteString(kv.Value.String())
		}
		for _, ev := range sp.Events() {
			for _, kv := range ev.Attributes {
				all.WriteString(kv.Value.String())
			}
		}
	}
	for _, m := range s.metrics(t) {
		all.WriteString(m.Name)
	}
	assert.NotContains(t, all.String(), "hf_")
	assert.NotContains(t, all.String(), userToken[9:20])
	assert.Contains(t, all.String(), "missing_scope")
}

// noEmptyAttributes fails for any attribute of a recorded span, event or
// metric point whose value is an empty string.
func (s *setup) noEmptyAttributes(t *testing.T) {
	t.Helper()
	check := func(where string, kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			if kv.Value.Type() == attribute.STRING && kv.Value.AsString() == "" {
				t.Errorf("%s: %s is emitted empty", where, kv.Key)
			}
		}
	}
	for _, sp := range s.spans.Ended() {
		check("span "+sp.Name(), sp.Attributes())
		for _, ev := range sp.Events() {
			check("event "+ev.Name, ev.Attributes)
		}
	}
	for name, m := range s.metrics(t) {
		switch data := m.Data.(type) {
		case metricdata.Sum[int64]:
			for _, dp := range data.DataPoints {
				check("metric "+name, dp.Attributes.ToSlice())
			}
		case metricdata.Histogram[float64]:
			for _, dp := range data.DataPoints {
				check("metric "+name, dp.Attributes.ToSlice())
			}
		case metricdata.Histogram[int64]:
			for _, dp := range data.DataPoints {
				check("metric "+name, dp.Attributes.ToSlice())
			}
		}
	}
}

// Contract holes III, item 11: a call that leaves the provider to the
// router (the default) names the provider the router's answer named on
// attempt spans, the attempts metric and the call span, failed or served;
// no attribute is emitted empty. On ac8b712 the attempt span had
// hfkit.provider="" and the metric hfkit.provider="", and a failed call's
// span had neither a provider nor an attempt count.
func TestTheRoutersChoiceOfProviderIsNamed(t *testing.T) {
	s := newSetup(t, Options{})
	s.router.On("org/down", inferencetest.ProviderError(503))
	s.router.On("org/up", inferencetest.Reply("hello"))
	c := s.client(t, inference.WithRetry(inference.RetryPolicy{}), inference.WithCooldown(0))
	_, err := c.Chat(t.Context(), chatReq("org/down"))
	require.ErrorIs(t, err, inference.ErrProvider)
	_, err = c.Chat(t.Context(), chatReq("org/up"))
	require.NoError(t, err)

	ended := s.spans.Ended()
	require.Len(t, ended, 4)
	byName := map[string]map[string]any{}
	for _, sp := range ended {
		byName[sp.Name()] = attrs(sp.Attributes())
	}
	assert.Equal(t, "together", byName["attempt org/down"]["hfkit.provider"])
	assert.Equal(t, "together", byName["attempt org/up"]["hfkit.provider"])
	assert.Equal(t, "together", byName["chat org/down"]["hfkit.response.provider"], "the failed call names the provider that failed it")
	assert.Equal(t, int64(1), byName["chat org/down"]["hfkit.attempts"])
	assert.Equal(t, "together", byName["chat org/up"]["hfkit.response.provider"])
	assert.NotContains(t, byName["chat org/up"], "hfkit.request.provider", "the request named none")

	outcomes := map[string]any{}
	for _, dp := range s.metrics(t)["hfkit.client.attempts"].Data.(metricdata.Sum[int64]).DataPoints {
		at := attrs(dp.Attributes.ToSlice())
		outcomes[fmt.Sprint(at["gen_ai.request.model"], " ", at["hfkit.outcome"])] = at["hfkit.provider"]
	}
	assert.Equal(t, map[string]any{"org/down provider_error": "together", "org/up served": "together"}, outcomes)
	s.noEmptyAttributes(t)
}
