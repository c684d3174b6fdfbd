// Command embeddings embeds a few sentences and ranks them by cosine
// similarity against a query: the retrieval step of a research agent. It
// runs offline against the library's fake router (inferencetest), whose
// vectors are bags of hashed words, so sentences that share the query's
// words rank first. Against the real router, drop the fake and set
// HF_TOKEN.
//
//	go run ./examples/embeddings
package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"sort"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

const model = "sentence-transformers/all-MiniLM-L6-v2"

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "embeddings:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	router := inferencetest.NewRouter()
	defer router.Close()
	// The Hub maps the model to two providers; the first is down, so the
	// second serves, in the same vector space.
	router.AddModel(inferencetest.HubModel{ID: model, PipelineTag: "feature-extraction", Providers: []inferencetest.HubProvider{
		{Name: "together", Status: "live", ProviderID: "togethercomputer/m2-bert-80M-8k-retrieval"},
		{Name: "hf-inference", Status: "live"},
	}})
	router.On(model+":together", inferencetest.ProviderError(503))
	router.On(model+":hf-inference", inferencetest.EmbeddingReply(256))
	client, err := router.Client(inference.WithRetry(inference.RetryPolicy{}))
	if err != nil {
		return err
	}

	query := "which providers serve open models"
	passages := []string{
		"The router sends each request to one of many providers.",
		"Open models can be served by several providers at once.",
		"A gated model needs the owner's approval before use.",
		"Bananas are rich in potassium.",
		"Providers serve models through one OpenAI-compatible API.",
	}
	resp, err := client.Embed(ctx, inference.EmbedRequest{Model: model, Inputs: append([]string{query}, passages...)})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%d vectors of %d dimensions from %s (provider %s, after %d attempts)\n",
		len(resp.Vectors), resp.Dimensions(), resp.Model, resp.Provider, len(resp.Attempts))

	type ranked struct {
		text  string
		score float64
	}
	var ranking []ranked
	for i, p := range passages {
		ranking = append(ranking, ranked{p, cosine(resp.Vectors[0], resp.Vectors[i+1])})
	}
	sort.SliceStable(ranking, func(a, b int) bool { return ranking[a].score > ranking[b].score })
	fmt.Fprintf(out, "query: %s\n", query)
	for i, r := range ranking {
		fmt.Fprintf(out, "%d. %.3f  %s\n", i+1, r.score, r.text)
	}
	return nil
}

func cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}
