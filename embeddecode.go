package inference

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/hfkit/inference/internal/jsonread"
)

// embeddings is a decoded embeddings answer.
type embeddings struct {
	vectors [][]float32
	model   string
	usage   Usage
}

// perTokenError is an answer with one vector per token of each input: a
// model without pooling, not a sentence-embedding model.
type perTokenError struct {
	shape []int
}

func (e *perTokenError) Error() string {
	dims := make([]string, len(e.shape))
	for i, d := range e.shape {
		dims[i] = fmt.Sprint(d)
	}
	return "the model answers one vector per token (shape " + strings.Join(dims, "×") +
		"), not one per input as a sentence-embedding model does"
}

// decodeEmbeddings reads an answer of either wire shape, want vectors
// long: hf-inference's arrays of numbers (one vector, or one per input)
// or OpenAI's {"data":[{"embedding":[...],"index":i}],"model","usage"}.
// The numbers go into one float32 array that the vectors share. An answer
// with another count, ragged vectors or anything but numbers is refused
// with why; one with more levels is a perTokenError.
func decodeEmbeddings(data []byte, want int) (embeddings, error) {
	data = bytes.TrimSpace(data)
	// Every number but the first follows a comma: an upper bound on the
	// numbers, so the one array is allocated once.
	flat := make([]float32, 0, bytes.Count(data, []byte{','})+1)
	var out embeddings
	var spans [][2]int
	var err error
	switch {
	case len(data) > 0 && data[0] == '[':
		spans, flat, err = readNested(data, flat)
	case len(data) > 0 && data[0] == '{':
		spans, flat, out.model, out.usage, err = readOpenAI(data, flat)
	default:
		return out, fmt.Errorf("the answer is not embeddings (neither an array nor an object)")
	}
	if err != nil {
		return out, err
	}
	if len(spans) != want {
		return out, fmt.Errorf("the answer has %d vectors for %d inputs", len(spans), want)
	}
	out.vectors = make([][]float32, len(spans))
	for i, s := range spans {
		v := flat[s[0]:s[1]:s[1]]
		if len(v) == 0 {
			return out, fmt.Errorf("vector %d is empty", i)
		}
		if len(v) != spans[0][1]-spans[0][0] {
			return out, fmt.Errorf("vector %d has %d dimensions, vector 0 has %d", i, len(v), spans[0][1]-spans[0][0])
		}
		for _, f := range v {
			if math.IsInf(float64(f), 0) || math.IsNaN(float64(f)) {
				return out, fmt.Errorf("vector %d holds a number out of range", i)
			}
		}
		out.vectors[i] = v
	}
	return out, nil
}

// readNested reads hf-inference's shapes: [n, n, ...] (one vector) or
// [[...], [...]] (one per input); deeper arrays are per-token vectors.
func readNested(data []byte, flat []float32) ([][2]int, []float32, error) {
	var r jsonread.Reader
	r.Reset(data)
	r.Array()
	var spans [][2]int
	switch r.Peek() {
	case jsonread.Number:
		start := len(flat)
		for r.More(']') {
			flat = append(flat, r.Float32())
		}
		spans = append(spans, [2]int{start, len(flat)})
	case jsonread.Array:
		for r.More(']') {
			if !r.Array() {
				break
			}
			if r.Peek() == jsonread.Array {
				return nil, flat, &perTokenError{shape: nestedShape(data)}
			}
			start := len(flat)
			for r.More(']') {
				flat = append(flat, r.Float32())
			}
			spans = append(spans, [2]int{start, len(flat)})
		}
	default:
		r.More(']') // an empty array, or not one of numbers
	}
	if !r.End() {
		return nil, flat, fmt.Errorf("the answer is not arrays of numbers")
	}
	return spans, flat, nil
}

// nestedShape is the shape of nested arrays, read along their first
// elements, for the text of a per-token answer.
func nestedShape(data []byte) []int {
	var v any
	if json.Unmarshal(data, &v) != nil {
		return nil
	}
	var shape []int
	for {
		a, ok := v.([]any)
		if !ok {
			return shape
		}
		shape = append(shape, len(a))
		if len(a) == 0 {
			return shape
		}
		v = a[0]
	}
}

// readOpenAI reads {"data":[{"embedding":[...],"index":i},...],"model":...,
// "usage":{...}}, placing vectors by their index.
func readOpenAI(data []byte, flat []float32) (spans [][2]int, _ []float32, model string, usage Usage, err error) {
	var r jsonread.Reader
	r.Reset(data)
	r.Object()
	type item struct {
		index int64
		span  [2]int
	}
	var items []item
	for r.More('}') {
		switch string(r.Key()) {
		case "data":
			if r.Peek() == jsonread.Null {
				r.Null()
				continue
			}
			r.Array()
			for r.More(']') {
				it := item{index: -1, span: [2]int{-1, -1}}
				r.Object()
				for r.More('}') {
					switch string(r.Key()) {
					case "embedding":
						if r.Peek() != jsonread.Array {
							return nil, flat, "", usage, fmt.Errorf("an embedding is not an array of numbers (base64?)")
						}
						r.Array()
						start := len(flat)
						for r.More(']') {
							if r.Peek() == jsonread.Array {
								return nil, flat, "", usage, &perTokenError{shape: nil}
							}
							flat = append(flat, r.Float32())
						}
						it.span = [2]int{start, len(flat)}
					case "index":
						it.index = r.Int64()
					default:
						r.Skip()
					}
				}
				if it.span[0] < 0 {
					return nil, flat, "", usage, fmt.Errorf("an item of data has no embedding")
				}
				items = append(items, it)
			}
		case "model":
			if r.Peek() == jsonread.String {
				model = r.String()
			} else {
				r.Skip()
			}
		case "usage":
			raw := r.Skip()
			var u struct {
				PromptTokens int `json:"prompt_tokens"`
				TotalTokens  int `json:"total_tokens"`
			}
			if len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, &u) == nil {
				usage = Usage{PromptTokens: u.PromptTokens, TotalTokens: u.TotalTokens}
			}
		case "error":
			r.Skip()
			return nil, flat, "", usage, fmt.Errorf("the answer is an error, not embeddings")
		default:
			r.Skip()
		}
	}
	if !r.End() {
		return nil, flat, "", usage, fmt.Errorf("the answer is not a JSON embeddings object")
	}
	spans = make([][2]int, len(items))
	seen := make([]bool, len(items))
	for i, it := range items {
		at := it.index
		if at < 0 {
			at = int64(i) // no index: in order
		}
		if at >= int64(len(items)) || seen[at] {
			return nil, flat, "", usage, fmt.Errorf("the answer's indexes are not 0 to %d, each once", len(items)-1)
		}
		seen[at] = true
		spans[at] = it.span
	}
	return spans, flat, model, usage, nil
}
