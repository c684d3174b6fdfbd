// Command images generates an image through the Hugging Face Inference
// Providers router: it walks the model's providers, falls back from one
// whose job fails to the next, prints a line for each poll of the queued
// job, and writes the image to a file.
//
// By default it runs offline, against the library's fake router
// (inferencetest): the model's first provider (replicate) fails its job,
// the second (fal-ai) queues it for a few polls and serves. With -live and
// HF_TOKEN set (or a token saved by `hf auth login`) it calls
// https://router.huggingface.co.
//
//	go run ./examples/images
//	HF_TOKEN=hf_... go run ./examples/images -live -prompt "a lighthouse at dusk, oil painting"
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime"
	"os"
	"path/filepath"
	"time"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

func main() {
	live := flag.Bool("live", false, `call the real router (needs HF_TOKEN, or the token "hf auth login" saved)`)
	model := flag.String("model", "black-forest-labs/FLUX.1-schnell", "text-to-image model id on the Hub")
	provider := flag.String("provider", "", `a provider's name, or "" for every provider of the model in the Hub's order`)
	prompt := flag.String("prompt", "a lighthouse at dusk, oil painting", "what to draw")
	dir := flag.String("out", "", "where to write the image (default: a new temporary folder)")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, *live, *model, *provider, *prompt, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

// run does the example's work, so that a test can run it too.
func run(ctx context.Context, out io.Writer, live bool, model, provider, prompt, dir string) error {
	var client *inference.Client
	var err error
	if live {
		fmt.Fprintln(out, "calling https://router.huggingface.co with the token from HF_TOKEN or `hf auth login`")
		client, err = inference.NewClient()
	} else {
		router := inferencetest.NewRouter()
		defer router.Close()
		// The Hub maps the model to two providers: replicate's job fails,
		// fal-ai's waits in the queue for three polls, runs, and serves.
		router.AddModel(inferencetest.HubModel{ID: model, PipelineTag: "text-to-image", Providers: []inferencetest.HubProvider{
			{Name: "replicate", Status: "live", ProviderID: "black-forest-labs/flux-schnell"},
			{Name: "fal-ai", Status: "live", ProviderID: "fal-ai/flux/schnell"},
		}})
		router.On(model+":replicate", inferencetest.Job{Running: 1, Fail: "CUDA out of memory"}.Image(nil))
		router.On(model+":fal-ai", inferencetest.Job{Queued: 3, Running: 1}.Image(sunset()))
		fmt.Fprintln(out, "offline: using a local fake router at", router.URL(), "(pass -live to call the real one)")
		client, err = router.Client(inference.WithJobPolling(50*time.Millisecond, 200*time.Millisecond))
	}
	if err != nil {
		return err
	}

	progress := func(p inference.JobProgress) {
		where := ""
		if p.QueuePosition >= 0 {
			where = fmt.Sprintf(", %d ahead in the queue", p.QueuePosition)
		}
		fmt.Fprintf(out, "  %s: %s%s (poll %d, %s)\n", p.Candidate.Provider, p.Status, where, p.Polls, p.Elapsed.Round(time.Millisecond))
	}
	resp, err := client.TextToImage(ctx, inference.ImageRequest{Model: model, Provider: provider, Prompt: prompt, Width: 1024, Height: 768},
		inference.WithProgress(progress))
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

	if dir == "" {
		if dir, err = os.MkdirTemp("", "images-"); err != nil {
			return err
		}
	}
	ext := ".img"
	if exts, _ := mime.ExtensionsByType(resp.ContentType); len(exts) > 0 {
		ext = exts[len(exts)-1]
	}
	path := filepath.Join(dir, "image"+ext)
	if err := os.WriteFile(path, resp.Image, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s served %s (%d bytes, %s, job %s): %s\n", resp.Provider, resp.Model, len(resp.Image), resp.ContentType, resp.RequestID, path)
	return nil
}

// sunset is the offline image: a 64×48 gradient, as a PNG.
func sunset() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for y := range 48 {
		for x := range 64 {
			img.Set(x, y, color.RGBA{R: 255, G: uint8(200 - 3*y), B: uint8(60 + 2*x), A: 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err)
	}
	return b.Bytes()
}
