package inference

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRecordedEmbeddingsDecode decodes the five exchanges of
// testdata/embeddings (the shapes @huggingface/inference recorded) as the
// recorded answers were decoded.
func TestRecordedEmbeddingsDecode(t *testing.T) {
	tests := []struct {
		file     string
		inputs   int
		perToken []int // the shape of a per-token answer
		dims     int
		model    string
		usage    Usage
	}{
		{"E1-bart-base-two-inputs.http", 2, []int{2, 1, 3, 768}, 0, "", Usage{}},
		{"E2-bart-base-one-input.http", 1, []int{1, 7, 768}, 0, "", Usage{}},
		{"E3-distilbert-nli-mean-tokens.http", 1, nil, 768, "", Usage{}},
		{"E4-paraphrase-xlm-r-multilingual.http", 1, nil, 768, "", Usage{}},
		{"E5-sambanova-e5-mistral.http", 1, nil, 4096, "E5-Mistral-7B-Instruct", Usage{PromptTokens: 16, TotalTokens: 16}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f := loadFixture(t, "../embeddings/"+tt.file)
			require.Equal(t, 200, f.status)
			dec, err := decodeEmbeddings(f.body, tt.inputs)
			if tt.perToken != nil {
				var pt *perTokenError
				require.True(t, errors.As(err, &pt), "%v", err)
				assert.Equal(t, tt.perToken, pt.shape)
				assert.Contains(t, err.Error(), "one vector per token")
				return
			}
			require.NoError(t, err)
			require.Len(t, dec.vectors, tt.inputs)
			assert.Len(t, dec.vectors[0], tt.dims)
			assert.Equal(t, tt.model, dec.model)
			assert.Equal(t, tt.usage, dec.usage)
			assert.Equal(t, cap(dec.vectors[0]), len(dec.vectors[0]), "a vector cannot grow into the next")
		})
	}
}

func TestMalformedEmbeddingsAreRefused(t *testing.T) {
	tests := map[string]struct {
		body string
		want string
	}{
		"too few":         {`[[1,2],[3,4]]`, "2 vectors for 3 inputs"},
		"ragged":          {`[[1,2],[3],[5,6]]`, "vector 1 has 1 dimensions"},
		"a string":        {`[[1,"2"],[3,4],[5,6]]`, "not arrays of numbers"},
		"null":            {`[[1,null],[3,4],[5,6]]`, "not arrays of numbers"},
		"NaN":             {`[[1,NaN],[3,4],[5,6]]`, "not arrays of numbers"},
		"out of range":    {`[[1,1e39],[3,4],[5,6]]`, "not arrays of numbers"},
		"empty vector":    {`[[],[],[]]`, "vector 0 is empty"},
		"object, no data": {`{"model":"m"}`, "0 vectors for 3 inputs"},
		"duplicate index": {`{"data":[{"embedding":[1],"index":0},{"embedding":[2],"index":0},{"embedding":[3],"index":2}]}`, "indexes are not 0 to 2"},
		"base64":          {`{"data":[{"embedding":"AAAA","index":0}]}`, "base64"},
		"error object":    {`{"error":"overloaded"}`, "an error, not embeddings"},
		"text":            {`upstream timed out`, "neither an array nor an object"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := decodeEmbeddings([]byte(tt.body), 3)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	// OpenAI's items out of order are put back in input order.
	dec, err := decodeEmbeddings([]byte(`{"data":[{"index":2,"embedding":[3,3]},{"embedding":[1,1],"index":0},{"index":1,"embedding":[2,2]}]}`), 3)
	require.NoError(t, err)
	assert.Equal(t, [][]float32{{1, 1}, {2, 2}, {3, 3}}, dec.vectors)
}
