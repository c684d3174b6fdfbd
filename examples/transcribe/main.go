// Command transcribe turns a recording into text through the Hugging Face
// Inference Providers router, walking the model's providers for speech
// recognition, and prints the transcript with its timed chunks.
//
// By default it runs offline, against the library's fake router
// (inferencetest), with a second of generated audio: the model's first
// provider (fal-ai) answers a 503, the second (hf-inference) serves. With
// -live, HF_TOKEN set (or a token saved by `hf auth login`) and -file, it
// sends that recording to https://router.huggingface.co.
//
//	go run ./examples/transcribe
//	HF_TOKEN=hf_... go run ./examples/transcribe -live -file meeting.flac -language en
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

func main() {
	live := flag.Bool("live", false, `call the real router (needs HF_TOKEN, or the token "hf auth login" saved, and -file)`)
	model := flag.String("model", "openai/whisper-large-v3", "speech recognition model id on the Hub")
	provider := flag.String("provider", "", `a provider's name, or "" for every provider of the model in the Hub's order`)
	file := flag.String("file", "", "the recording (wav, mp3, flac, webm); offline, a generated tone")
	language := flag.String("language", "", `the spoken language's code ("en"), or "" to let the model tell`)
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, *live, *model, *provider, *file, *language); err != nil {
		fmt.Fprintln(os.Stderr, "transcribe:", err)
		os.Exit(1)
	}
}

// run does the example's work, so that a test can run it too.
func run(ctx context.Context, out io.Writer, live bool, model, provider, file, language string) error {
	audio := tone()
	if file != "" {
		var err error
		if audio, err = os.ReadFile(file); err != nil {
			return err
		}
	} else if live {
		return errors.New("-live needs -file: a recording to transcribe")
	}

	var client *inference.Client
	var err error
	if live {
		fmt.Fprintln(out, "calling https://router.huggingface.co with the token from HF_TOKEN or `hf auth login`")
		client, err = inference.NewClient()
	} else {
		router := inferencetest.NewRouter()
		defer router.Close()
		router.AddModel(inferencetest.HubModel{ID: model, PipelineTag: "automatic-speech-recognition", Providers: []inferencetest.HubProvider{
			{Name: "fal-ai", Status: "live", ProviderID: "fal-ai/whisper"},
			{Name: "hf-inference", Status: "live", ProviderID: model},
		}})
		router.On(model+":fal-ai", inferencetest.ProviderError(503))
		router.On(model+":hf-inference", inferencetest.Transcription("Open models, open minds.",
			inference.TranscriptChunk{Text: "Open models,", End: 400 * time.Millisecond},
			inference.TranscriptChunk{Text: " open minds.", Start: 400 * time.Millisecond, End: time.Second}))
		fmt.Fprintln(out, "offline: using a local fake router at", router.URL(), "(pass -live to call the real one)")
		client, err = router.Client(inference.WithRetry(inference.RetryPolicy{}))
	}
	if err != nil {
		return err
	}

	resp, err := client.Transcribe(ctx, inference.TranscribeRequest{Model: model, Provider: provider, Audio: audio, Language: language})
	if err != nil {
		return err
	}
	for i, a := range resp.Attempts {
		status := "served"
		if a.Err != nil {
			status = a.Err.Error()
		}
		fmt.Fprintf(out, "attempt %d: %s: %s\n", i+1, a.Candidate, status)
	}
	fmt.Fprintf(out, "%s transcribed %d bytes of audio with %s:\n%s\n", resp.Provider, len(audio), resp.Model, resp.Text)
	for _, c := range resp.Chunks {
		fmt.Fprintf(out, "  [%5.2fs – %5.2fs] %s\n", c.Start.Seconds(), c.End.Seconds(), c.Text)
	}
	return nil
}

// tone is a second of a 440 Hz tone, as a 16 kHz mono 16-bit WAV.
func tone() []byte {
	const rate = 16000
	samples := make([]int16, rate)
	for i := range samples {
		samples[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/rate))
	}
	var b bytes.Buffer
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, uint32(36+2*len(samples)))
	b.WriteString("WAVEfmt ")
	// The format: PCM, one channel, rate samples of 2 bytes a second.
	_ = binary.Write(&b, binary.LittleEndian, struct {
		Size                   uint32
		Format, Channels       uint16
		Rate, ByteRate         uint32
		BlockAlign, SampleBits uint16
	}{16, 1, 1, rate, 2 * rate, 2, 16})
	b.WriteString("data")
	_ = binary.Write(&b, binary.LittleEndian, uint32(2*len(samples)))
	_ = binary.Write(&b, binary.LittleEndian, samples)
	return b.Bytes()
}
