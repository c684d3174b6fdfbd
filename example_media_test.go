package inference_test

import (
	"context"
	"fmt"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

func ExampleClient_TextToImage() {
	router := inferencetest.NewRouter()
	defer router.Close()
	// The Hub maps the model to fal-ai, whose queue holds the job for two
	// polls.
	router.AddModel(inferencetest.HubModel{ID: "black-forest-labs/FLUX.1-schnell", PipelineTag: "text-to-image",
		Providers: []inferencetest.HubProvider{{Name: "fal-ai", Status: "live", ProviderID: "fal-ai/flux/schnell"}}})
	router.Otherwise(inferencetest.Job{Queued: 2}.Image([]byte("\x89PNG\r\n\x1a\n...")))
	c, _ := router.Client()

	resp, err := c.TextToImage(context.Background(), inference.ImageRequest{
		Model:  "black-forest-labs/FLUX.1-schnell",
		Prompt: "a lighthouse at dusk",
	}, inference.WithProgress(func(p inference.JobProgress) {
		fmt.Println(p.Status, p.QueuePosition)
	}))
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Provider, resp.ContentType, len(resp.Image), "bytes")
	// Output:
	// IN_QUEUE 2
	// IN_QUEUE 1
	// IN_QUEUE 0
	// COMPLETED -1
	// fal-ai image/png 11 bytes
}

func ExampleClient_Transcribe() {
	router := inferencetest.NewRouter()
	defer router.Close()
	router.AddModel(inferencetest.HubModel{ID: "openai/whisper-large-v3", PipelineTag: "automatic-speech-recognition",
		Providers: []inferencetest.HubProvider{{Name: "hf-inference", Status: "live"}}})
	router.Otherwise(inferencetest.Transcription("hello world"))
	c, _ := router.Client()

	wav := []byte("RIFF\x24\x00\x00\x00WAVEfmt ") // a recording's first bytes
	resp, err := c.Transcribe(context.Background(), inference.TranscribeRequest{Model: "openai/whisper-large-v3", Audio: wav})
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Text, resp.Provider)
	// Output:
	// hello world hf-inference
}

func ExampleClient_Speak() {
	router := inferencetest.NewRouter()
	defer router.Close()
	router.AddModel(inferencetest.HubModel{ID: "hexgrad/Kokoro-82M", PipelineTag: "text-to-speech",
		Providers: []inferencetest.HubProvider{{Name: "replicate", Status: "live", ProviderID: "jaaari/kokoro-82m:dfdf537b"}}})
	router.Otherwise(inferencetest.Job{Running: 1}.Speech([]byte("RIFF...WAVE"), "audio/wav"))
	c, _ := router.Client()

	resp, err := c.Speak(context.Background(), inference.SpeechRequest{Model: "hexgrad/Kokoro-82M", Text: "Hello."})
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Provider, resp.ContentType, len(resp.Audio), "bytes, downloaded from", resp.URL[:7])
	// Output:
	// replicate audio/wav 11 bytes, downloaded from http://
}
