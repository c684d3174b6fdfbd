package inferencetest

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode"
)

// The router serves embeddings where the real one does: hf-inference's
// feature-extraction pipeline, POST /hf-inference/models/{model}/pipeline/feature-extraction
// with {"inputs": ...}, and a provider's OpenAI-shaped endpoint, POST
// /{provider}/v1/embeddings (deepinfra: /v1/openai/embeddings) with
// {"model": <the provider's id>, "input": ...}. Script them like chat, by
// "model:provider" (the Hub id; a provider's id is mapped back through the
// models given to AddModel) or "model"; the Request has Inputs set.

// embeddingsRoute reports whether path is an embeddings endpoint, and of
// which provider.
func embeddingsRoute(path string) (string, bool) {
	if strings.HasPrefix(path, "/hf-inference/models/") && strings.HasSuffix(path, "/pipeline/feature-extraction") {
		return "hf-inference", true
	}
	for _, suffix := range []string{"/v1/embeddings", "/v1/openai/embeddings"} {
		if provider, ok := strings.CutSuffix(path, suffix); ok && strings.Count(provider, "/") == 1 && len(provider) > 1 {
			return provider[1:], true
		}
	}
	return "", false
}

func (r *Router) serveEmbeddings(w http.ResponseWriter, hr *http.Request, provider string) {
	body, _ := io.ReadAll(io.LimitReader(hr.Body, maxBody))
	var wire struct {
		Model  string          `json:"model"`
		Inputs json.RawMessage `json:"inputs"`
		Input  json.RawMessage `json:"input"`
	}
	_ = json.Unmarshal(body, &wire)
	model := wire.Model
	raw := wire.Input
	if provider == "hf-inference" {
		model = strings.TrimSuffix(strings.TrimPrefix(hr.URL.Path, "/hf-inference/models/"), "/pipeline/feature-extraction")
		raw = wire.Inputs
	} else {
		model = r.hubIDOf(provider, model)
	}
	req := newRequest(hr, model, provider, body)
	req.Inputs, req.API = texts(raw), "embeddings"
	r.answer(w, hr, req, model+":"+provider, model)
}

// hubIDOf maps a provider's model id back to the Hub id AddModel gave.
func (r *Router) hubIDOf(provider, providerID string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.models {
		for _, p := range m.Providers {
			if p.Name == provider && p.ProviderID == providerID {
				return m.ID
			}
		}
	}
	return providerID
}

// texts reads a string or an array of strings.
func texts(raw json.RawMessage) []string {
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		return many
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}
	}
	return nil
}

// EmbeddingVector is the vector [EmbeddingReply] gives text: a bag of
// words hashed into dims dimensions and scaled to length 1, so that texts
// sharing words have a cosine similarity above texts that share none.
func EmbeddingVector(text string, dims int) []float32 {
	v := make([]float32, dims)
	for _, word := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		h := fnv.New64a()
		h.Write([]byte(word))
		sum := h.Sum64()
		sign := float32(1)
		if sum>>63 == 1 {
			sign = -1
		}
		v[sum%uint64(dims)] += sign
	}
	var norm float64
	for _, f := range v {
		norm += float64(f) * float64(f)
	}
	if norm == 0 {
		v[0] = 1
		return v
	}
	scale := float32(1 / math.Sqrt(norm))
	for i := range v {
		v[i] *= scale
	}
	return v
}

// EmbeddingReply answers an embeddings request with [EmbeddingVector] of
// each input, dims numbers long, in the wire shape of the endpoint asked:
// arrays of numbers for hf-inference, OpenAI's {"data": [...], "model",
// "usage"} for the other providers (with X-Inference-Provider set, as the
// router does).
func EmbeddingReply(dims int) Answer {
	return func(w http.ResponseWriter, req *Request) {
		vectors := make([][]float32, len(req.Inputs))
		for i, in := range req.Inputs {
			vectors[i] = EmbeddingVector(in, dims)
		}
		writeEmbeddings(w, req, vectors)
	}
}

// TokenEmbeddings answers with one vector of dims numbers per word of each
// input, as a model without pooling (facebook/bart-base) does: an answer
// the client refuses, naming the shape.
func TokenEmbeddings(dims int) Answer {
	return func(w http.ResponseWriter, req *Request) {
		out := make([][][]float32, len(req.Inputs))
		for i, in := range req.Inputs {
			for _, word := range strings.Fields(in) {
				out[i] = append(out[i], EmbeddingVector(word, dims))
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Inference-Provider", req.Provider)
		_ = json.NewEncoder(w).Encode(out)
	}
}

// RawEmbeddings answers with the body given, as JSON from the request's
// provider: for malformed answers (a vector short, ragged, a string among
// the numbers).
func RawEmbeddings(body string) Answer {
	return func(w http.ResponseWriter, req *Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Inference-Provider", req.Provider)
		_, _ = io.WriteString(w, body)
	}
}

func writeEmbeddings(w http.ResponseWriter, req *Request, vectors [][]float32) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Inference-Provider", req.Provider)
	var b strings.Builder
	writeVector := func(v []float32) {
		b.WriteByte('[')
		for j, f := range v {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatFloat(float64(f), 'g', -1, 32))
		}
		b.WriteByte(']')
	}
	if req.Provider == "hf-inference" {
		b.WriteByte('[')
		for i, v := range vectors {
			if i > 0 {
				b.WriteByte(',')
			}
			writeVector(v)
		}
		b.WriteByte(']')
	} else {
		tokens := 0
		for _, in := range req.Inputs {
			tokens += len(strings.Fields(in))
		}
		b.WriteString(`{"object":"list","data":[`)
		for i, v := range vectors {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"object":"embedding","index":%d,"embedding":`, i)
			writeVector(v)
			b.WriteByte('}')
		}
		fmt.Fprintf(&b, `],"model":%q,"usage":{"prompt_tokens":%d,"total_tokens":%d}}`, req.Model, tokens, tokens)
	}
	_, _ = io.WriteString(w, b.String())
}
