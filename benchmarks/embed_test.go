package benchmarks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"

	openaigo "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	goopenai "github.com/sashabaranov/go-openai"

	"github.com/hfkit/inference"
)

// The embeddings workloads: n inputs of 1,024 dimensions each, answered in
// OpenAI's shape (what together, scaleway and sambanova send through the
// router) with float32 values printed shortest, as providers do.
const (
	embedDims     = 1024
	embedModel    = "BAAI/bge-large-en-v1.5"
	embedProvider = "together"
)

// embedBody is the answer for n inputs, built once per n.
func embedBody(n int) []byte {
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	var b bytes.Buffer
	b.WriteString(`{"object":"list","data":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"object":"embedding","index":%d,"embedding":[`, i)
		for j := range embedDims {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatFloat(float64(float32(rng.NormFloat64()*0.05)), 'g', -1, 32))
		}
		b.WriteString("]}")
	}
	fmt.Fprintf(&b, `],"model":%q,"usage":{"prompt_tokens":%d,"total_tokens":%d}}`, embedModel, 8*n, 8*n)
	return b.Bytes()
}

// newEmbedRouter serves embeddings at {base}/v1/embeddings (the OpenAI
// clients) and {base}/together/v1/embeddings (this library, through the
// router), and the Hub's mapping of the model to together.
func newEmbedRouter(bodies map[int][]byte) *httptest.Server {
	mapping := []byte(fmt.Sprintf(`{"id":%q,"pipeline_tag":"feature-extraction","inferenceProviderMapping":{"together":{"status":"live","providerId":"bench/bge-large","task":"feature-extraction"}}}`, embedModel))
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/models/") {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(mapping)
			return
		}
		// The inputs are counted, not decoded: the server shares the
		// process, and its allocations would count as the clients'.
		data, _ := io.ReadAll(r.Body)
		body := bodies[bytes.Count(data, []byte(`"passage `))]
		if body == nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Inference-Provider", embedProvider)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	}))
}

// embedder is one contender: it embeds the inputs and returns the vectors'
// count and dimension, keeping the answer alive in keep for the heap
// measure.
type embedder struct {
	name  string
	embed func(ctx context.Context, inputs []string, keep *any) (n, dims int, err error)
}

func embedders(base string) []embedder {
	hf, err := inference.NewClient(inference.WithBaseURL(base), inference.WithHubURL(base), inference.WithToken(token),
		inference.WithRetry(inference.RetryPolicy{}), inference.WithHTTPClient(&http.Client{Transport: pooledTransport()}))
	if err != nil {
		panic(err)
	}
	oa := openaigo.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey(token),
		option.WithHTTPClient(&http.Client{Transport: pooledTransport()}), option.WithMaxRetries(0))
	goCfg := goopenai.DefaultConfig(token)
	goCfg.BaseURL = base + "/v1"
	goCfg.HTTPClient = &http.Client{Transport: pooledTransport()}
	goc := goopenai.NewClientWithConfig(goCfg)
	floorClient := &http.Client{Transport: pooledTransport()}
	return []embedder{
		{"floor-encoding-json", func(ctx context.Context, inputs []string, keep *any) (int, int, error) {
			body, _ := json.Marshal(map[string]any{"model": embedModel, "input": inputs})
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/embeddings", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := floorClient.Do(req)
			if err != nil {
				return 0, 0, err
			}
			defer resp.Body.Close()
			var out struct {
				Data []struct {
					Embedding []float32 `json:"embedding"`
				} `json:"data"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				return 0, 0, err
			}
			vectors := make([][]float32, len(out.Data))
			for i, d := range out.Data {
				vectors[i] = d.Embedding
			}
			*keep = vectors
			return len(vectors), len(vectors[0]), nil
		}},
		{"hfkit", func(ctx context.Context, inputs []string, keep *any) (int, int, error) {
			resp, err := hf.Embed(ctx, inference.EmbedRequest{Model: embedModel, Provider: embedProvider, Inputs: inputs, BatchSize: len(inputs)})
			if err != nil {
				return 0, 0, err
			}
			*keep = resp
			return len(resp.Vectors), resp.Dimensions(), nil
		}},
		{"openai-go", func(ctx context.Context, inputs []string, keep *any) (int, int, error) {
			resp, err := oa.Embeddings.New(ctx, openaigo.EmbeddingNewParams{Model: embedModel,
				Input: openaigo.EmbeddingNewParamsInputUnion{OfArrayOfStrings: inputs}, EncodingFormat: openaigo.EmbeddingNewParamsEncodingFormatFloat})
			if err != nil {
				return 0, 0, err
			}
			*keep = resp
			return len(resp.Data), len(resp.Data[0].Embedding), nil
		}},
		{"go-openai", func(ctx context.Context, inputs []string, keep *any) (int, int, error) {
			resp, err := goc.CreateEmbeddings(ctx, goopenai.EmbeddingRequestStrings{Input: inputs, Model: embedModel})
			if err != nil {
				return 0, 0, err
			}
			*keep = &resp
			return len(resp.Data), len(resp.Data[0].Embedding), nil
		}},
	}
}

// BenchmarkEmbed is one embeddings call of 1, 64 and 1,000 inputs of 1,024
// dimensions, one call at a time: time and allocations per call, and
// heap-B/resp, the heap the answer keeps alive once decoded.
func BenchmarkEmbed(b *testing.B) {
	sizes := []int{1, 64, 1000}
	bodies := map[int][]byte{}
	for _, n := range sizes {
		bodies[n] = embedBody(n)
	}
	srv := newEmbedRouter(bodies)
	defer srv.Close()
	contenders := embedders(srv.URL)
	for _, n := range sizes {
		inputs := make([]string, n)
		for i := range inputs {
			inputs[i] = fmt.Sprintf("passage %d", i)
		}
		for _, e := range contenders {
			b.Run(fmt.Sprintf("%dx%d/%s", n, embedDims, e.name), func(b *testing.B) {
				ctx := context.Background()
				var keep any
				check := func() {
					got, dims, err := e.embed(ctx, inputs, &keep)
					if err != nil || got != n || dims != embedDims {
						b.Fatalf("%d×%d, %v", got, dims, err)
					}
				}
				check() // warm: connections, the Hub's mapping
				b.ReportAllocs()
				b.SetBytes(int64(len(bodies[n])))
				for b.Loop() {
					check()
				}
				b.StopTimer()
				keep = nil
				b.ReportMetric(float64(retained(func() { check() }, &keep)), "heap-B/resp")
			})
		}
	}
}

// retained is the heap that what call leaves in keep holds, after a
// collection.
func retained(call func(), keep *any) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	call()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(*keep)
	if after.HeapAlloc < before.HeapAlloc {
		return 0
	}
	return after.HeapAlloc - before.HeapAlloc
}
