package otelinference

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// TestConventions holds each row of the README's table of what is
// emitted, against the real SDK's in-memory recorders: a streamed call with
// every request parameter set, a failing call, and a stream its reader
// closed.
func TestConventions(t *testing.T) {
	s := newSetup(t, Options{})
	s.router.On("org/m", inferencetest.Stream("one ", "two ", "three"))
	s.router.On("org/gated", inferencetest.Gated())
	c := s.client(t, inference.WithRetry(inference.RetryPolicy{}))

	req := chatReq("org/m")
	req.MaxTokens, req.Temperature, req.TopP, req.Seed = 64, inference.Float64(0.2), inference.Float64(0.9), inference.Int64(7)
	req.FrequencyPenalty, req.PresencePenalty = inference.Float64(0.1), inference.Float64(0.3)
	req.Stop = []string{"END"}
	req.Extra = map[string]any{"n": 2}
	req.ResponseFormat = &inference.ResponseFormat{Type: "json_object"}
	req.IncludeUsage = true
	st, err := c.ChatStream(t.Context(), req)
	require.NoError(t, err)
	for st.Next() {
	}
	require.NoError(t, st.Err())
	require.NoError(t, st.Close())
	streamSpan := callSpan(t, s, "chat org/m")
	streamed := attrs(streamSpan.Attributes())

	_, err = c.Chat(t.Context(), chatReq("org/gated"))
	require.ErrorIs(t, err, inference.ErrGatedModel)
	failedSpan := callSpan(t, s, "chat org/gated")
	failedAttrs := attrs(failedSpan.Attributes())

	host, port := "127.0.0.1", s.router.URL()[len("http://127.0.0.1:"):]

	spanRows := []struct {
		attribute string
		level     string
		got       map[string]any
		want      any
	}{
		{"gen_ai.operation.name", "Required", streamed, "chat"},
		{"gen_ai.provider.name", "Required", streamed, "huggingface"},
		{"gen_ai.request.model", "Conditionally Required", streamed, "org/m"},
		{"error.type", "Conditionally Required", failedAttrs, "gated_model"},
		{"server.port", "Conditionally Required", streamed, int64(atoi(t, port))},
		{"gen_ai.request.choice.count", "Conditionally Required", streamed, int64(2)},
		{"gen_ai.request.seed", "Conditionally Required", streamed, int64(7)},
		{"gen_ai.output.type", "Conditionally Required", streamed, "json"},
		{"gen_ai.request.stream", "Conditionally Required", streamed, true},
		{"server.address", "Recommended", streamed, host},
		{"gen_ai.request.max_tokens", "Recommended", streamed, int64(64)},
		{"gen_ai.request.temperature", "Recommended", streamed, 0.2},
		{"gen_ai.request.top_p", "Recommended", streamed, 0.9},
		{"gen_ai.request.frequency_penalty", "Recommended", streamed, 0.1},
		{"gen_ai.request.presence_penalty", "Recommended", streamed, 0.3},
		{"gen_ai.request.stop_sequences", "Recommended", streamed, []string{"END"}},
		{"gen_ai.response.id", "Recommended", streamed, "fake"},
		{"gen_ai.response.finish_reasons", "Recommended", streamed, []string{"stop"}},
		{"gen_ai.usage.output_tokens", "Recommended", streamed, int64(3)},
		{"gen_ai.usage.input_tokens", "Recommended", streamed, int64(10)},
	}
	for _, row := range spanRows {
		t.Run("span/"+row.attribute, func(t *testing.T) {
			assert.Equal(t, row.want, row.got[row.attribute], "%s (%s)", row.attribute, row.level)
		})
	}
	t.Run("span/gen_ai.response.time_to_first_chunk", func(t *testing.T) {
		v, ok := streamed["gen_ai.response.time_to_first_chunk"].(float64)
		require.True(t, ok)
		assert.Positive(t, v)
	})
	t.Run("span/status", func(t *testing.T) {
		assert.Equal(t, codes.Error, failedSpan.Status().Code)
		assert.Empty(t, failedSpan.Status().Description, "the description does not repeat error.type")
		assert.Equal(t, codes.Unset, streamSpan.Status().Code)
	})
	t.Run("span/no content", func(t *testing.T) {
		for _, key := range []string{"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "gen_ai.tool.definitions"} {
			assert.NotContains(t, streamed, key, "opt-in content attributes are never emitted")
		}
	})

	m := s.metrics(t)
	required := map[string]any{
		"gen_ai.operation.name": "chat", "gen_ai.provider.name": "huggingface", "gen_ai.request.model": "org/m",
		"server.address": host, "server.port": int64(atoi(t, port)),
	}
	advice := []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	for _, row := range []struct {
		name    string
		buckets []float64
	}{
		{"gen_ai.client.operation.duration", advice},
		{"gen_ai.client.operation.time_to_first_chunk", advice},
		{"gen_ai.client.operation.time_per_output_chunk", []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}},
	} {
		t.Run("metric/"+row.name, func(t *testing.T) {
			data, ok := m[row.name].Data.(metricdata.Histogram[float64])
			require.True(t, ok, "%s recorded", row.name)
			dp := pointFor(t, data.DataPoints, "org/m")
			assert.Equal(t, row.buckets, dp.Bounds)
			got := attrs(dp.Attributes.ToSlice())
			for k, v := range required {
				assert.Equal(t, v, got[k], "%s on %s", k, row.name)
			}
			assert.Equal(t, "s", m[row.name].Unit)
		})
	}
	t.Run("metric/gen_ai.client.operation.time_per_output_chunk count", func(t *testing.T) {
		dp := pointFor(t, m["gen_ai.client.operation.time_per_output_chunk"].Data.(metricdata.Histogram[float64]).DataPoints, "org/m")
		assert.Equal(t, uint64(3), dp.Count, "one per chunk after the first: two words and the finish")
	})
	t.Run("metric/gen_ai.client.token.usage", func(t *testing.T) {
		usage := m["gen_ai.client.token.usage"].Data.(metricdata.Histogram[int64])
		types := map[string]bool{}
		for _, dp := range usage.DataPoints {
			got := attrs(dp.Attributes.ToSlice())
			for k, v := range required {
				assert.Equal(t, v, got[k], k)
			}
			types[got["gen_ai.token.type"].(string)] = true
		}
		assert.Equal(t, map[string]bool{"input": true, "output": true}, types)
		assert.Equal(t, "{token}", m["gen_ai.client.token.usage"].Unit)
	})
	t.Run("metric/error.type on the failed call's duration", func(t *testing.T) {
		dp := pointFor(t, m["gen_ai.client.operation.duration"].Data.(metricdata.Histogram[float64]).DataPoints, "org/gated")
		assert.Equal(t, "gated_model", attrs(dp.Attributes.ToSlice())["error.type"])
	})
}

func callSpan(t *testing.T, s *setup, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	for _, sp := range s.spans.Ended() {
		if sp.Name() == name {
			return sp
		}
	}
	t.Fatalf("no span %q", name)
	return nil
}

func pointFor(t *testing.T, points []metricdata.HistogramDataPoint[float64], model string) metricdata.HistogramDataPoint[float64] {
	t.Helper()
	for _, dp := range points {
		if v, _ := dp.Attributes.Value(attribute.Key("gen_ai.request.model")); v.AsString() == model {
			return dp
		}
	}
	t.Fatalf("no data point for %s", model)
	return metricdata.HistogramDataPoint[float64]{}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, c := range s {
		require.True(t, c >= '0' && c <= '9', s)
		n = n*10 + int(c-'0')
	}
	return n
}

// TestEmbeddingsConventions: an embeddings call is the operation
// "embeddings", with its dimension count and input tokens.
func TestEmbeddingsConventions(t *testing.T) {
	s := newSetup(t, Options{})
	s.router.AddModel(inferencetest.HubModel{ID: "org/embed", PipelineTag: "feature-extraction",
		Providers: []inferencetest.HubProvider{{Name: "together", Status: "live", ProviderID: "together/embed"}}})
	s.router.On("org/embed:together", inferencetest.EmbeddingReply(384))
	c := s.client(t)
	_, err := c.Embed(t.Context(), inference.EmbedRequest{Model: "org/embed", Inputs: []string{"one two", "three"}})
	require.NoError(t, err)
	sp := callSpan(t, s, "embeddings org/embed")
	a := attrs(sp.Attributes())
	for key, want := range map[string]any{
		"gen_ai.operation.name":             "embeddings",
		"gen_ai.provider.name":              "huggingface",
		"gen_ai.request.model":              "org/embed",
		"gen_ai.embeddings.dimension.count": int64(384),
		"gen_ai.usage.input_tokens":         int64(3),
		"gen_ai.response.model":             "org/embed",
	} {
		t.Run(key, func(t *testing.T) { assert.Equal(t, want, a[key]) })
	}
	assert.NotContains(t, a, "gen_ai.request.stream")
	dur := s.metrics(t)["gen_ai.client.operation.duration"].Data.(metricdata.Histogram[float64])
	dp := pointFor(t, dur.DataPoints, "org/embed")
	assert.Equal(t, "embeddings", attrs(dp.Attributes.ToSlice())["gen_ai.operation.name"])
}

// TestMediaConventions: images and audio are operations of their own,
// named as CallInfo names them, each attempt (a queued job, polls
// included) a span, the job's id the response's.
func TestMediaConventions(t *testing.T) {
	s := newSetup(t, Options{})
	s.router.AddModel(inferencetest.HubModel{ID: "org/flux", PipelineTag: "text-to-image", Providers: []inferencetest.HubProvider{
		{Name: "replicate", Status: "live", ProviderID: "org/flux-rep"}, {Name: "fal-ai", Status: "live", ProviderID: "fal-ai/flux"}}})
	s.router.AddModel(inferencetest.HubModel{ID: "org/whisper", PipelineTag: "automatic-speech-recognition", Providers: []inferencetest.HubProvider{
		{Name: "hf-inference", Status: "live", ProviderID: "org/whisper"}}})
	s.router.AddModel(inferencetest.HubModel{ID: "org/kokoro", PipelineTag: "text-to-speech", Providers: []inferencetest.HubProvider{
		{Name: "hf-inference", Status: "live", ProviderID: "org/kokoro"}}})
	s.router.On("org/flux:replicate", inferencetest.ProviderError(502))
	s.router.On("org/flux:fal-ai", inferencetest.Job{Queued: 2}.Image([]byte("\x89PNG\r\n\x1a\n0000")))
	s.router.On("org/whisper:hf-inference", inferencetest.Transcription("hello"))
	s.router.On("org/kokoro:hf-inference", inferencetest.Speech([]byte("fLaC0000"), "audio/flac"))
	c := s.client(t, inference.WithRetry(inference.RetryPolicy{}))
	img, err := c.TextToImage(t.Context(), inference.ImageRequest{Model: "org/flux", Prompt: "a fox"})
	require.NoError(t, err)
	_, err = c.Transcribe(t.Context(), inference.TranscribeRequest{Model: "org/whisper", Audio: []byte("RIFF0000WAVEfmt 0000"), ContentType: "audio/wav"})
	require.NoError(t, err)
	_, err = c.Speak(t.Context(), inference.SpeechRequest{Model: "org/kokoro", Text: "hello"})
	require.NoError(t, err)

	sp := callSpan(t, s, "text_to_image org/flux")
	a := attrs(sp.Attributes())
	for key, want := range map[string]any{
		"gen_ai.operation.name":   "text_to_image",
		"gen_ai.provider.name":    "huggingface",
		"gen_ai.request.model":    "org/flux",
		"gen_ai.response.model":   "org/flux",
		"gen_ai.response.id":      img.RequestID,
		"hfkit.response.provider": "fal-ai",
		"hfkit.attempts":          int64(2),
	} {
		t.Run(key, func(t *testing.T) { assert.Equal(t, want, a[key]) })
	}
	assert.NotContains(t, a, "gen_ai.usage.input_tokens")
	var attempts []string
	for _, span := range s.spans.Ended() {
		if strings.HasPrefix(span.Name(), "attempt org/flux") {
			attempts = append(attempts, span.Name())
		}
	}
	assert.Equal(t, []string{"attempt org/flux:replicate", "attempt org/flux:fal-ai"}, attempts, "one span per attempt, the job's polls in the second")
	callSpan(t, s, "speech_to_text org/whisper")
	callSpan(t, s, "text_to_speech org/kokoro")
	dur := s.metrics(t)["gen_ai.client.operation.duration"].Data.(metricdata.Histogram[float64])
	for model, op := range map[string]string{"org/flux": "text_to_image", "org/whisper": "speech_to_text", "org/kokoro": "text_to_speech"} {
		dp := pointFor(t, dur.DataPoints, model)
		assert.Equal(t, op, attrs(dp.Attributes.ToSlice())["gen_ai.operation.name"])
	}
}
