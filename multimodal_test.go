package inference

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMultimodalRequestGolden checks the request body byte for byte against
// the OpenAI-compatible shape: content as a string for plain text, as an
// array of parts otherwise.
func TestMultimodalRequestGolden(t *testing.T) {
	rt := newRouter(t, completion("ok"))
	c := newTestClient(t, rt)
	_, err := c.Chat(t.Context(), ChatRequest{
		Model: "Qwen/Qwen2.5-VL-7B-Instruct",
		Messages: []Message{
			SystemMessage("Describe images briefly."),
			UserParts(TextPart("What is in this image?"), ImagePart("https://example.org/cat.png"),
				ImageDataPart("image/png", []byte{0x89, 'P', 'N', 'G', '\r', '\n'})),
			{Role: RoleUser, Parts: []ContentPart{{Type: "image_url", ImageURL: &ImageURL{URL: "https://example.org/dog.jpg", Detail: "low"}}}},
		},
	})
	require.NoError(t, err)
	const golden = `{"model":"Qwen/Qwen2.5-VL-7B-Instruct","messages":[` +
		`{"role":"system","content":"Describe images briefly."},` +
		`{"role":"user","content":[{"type":"text","text":"What is in this image?"},{"type":"image_url","image_url":{"url":"https://example.org/cat.png"}},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0K"}}]},` +
		`{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.org/dog.jpg","detail":"low"}}]}]}`
	assert.Equal(t, golden, string(rt.reqs()[0].Body))
}

func TestMultimodalAnswerParses(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "fixtures", "F13-multimodal-answer.json"))
	require.NoError(t, err)
	rt := newRouter(t, status(200, string(body)))
	c := newTestClient(t, rt)
	resp, err := c.Chat(t.Context(), chatReq("Qwen/Qwen2.5-VL-7B-Instruct", ""))
	require.NoError(t, err)
	msg := resp.Choices[0].Message
	assert.Equal(t, "A cat on a windowsill.", msg.Content)
	assert.Equal(t, []ContentPart{TextPart("A cat "), TextPart("on a windowsill.")}, msg.Parts)
	assert.Equal(t, "The image shows fur, whiskers and a window frame.", msg.Reasoning)
	assert.Equal(t, 1299, resp.Usage.TotalTokens)

	// A message survives a round trip through its own JSON.
	out, err := json.Marshal(msg)
	require.NoError(t, err)
	var back Message
	require.NoError(t, json.Unmarshal(out, &back))
	assert.Equal(t, msg, back)
}

func TestReasoningIsKeptApartFromTheAnswer(t *testing.T) {
	rt := newRouter(t, status(200, `{"choices":[{"index":0,"message":{"role":"assistant","content":"42","reasoning":"6 times 7"},"finish_reason":"stop"}]}`))
	c := newTestClient(t, rt)
	resp, err := c.Chat(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	assert.Equal(t, "42", resp.Text())
	assert.Equal(t, "6 times 7", resp.Choices[0].Message.Reasoning)

	rt = newRouter(t, sseData(
		`{"choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"Let me "}}]}`,
		`{"choices":[{"index":0,"delta":{"reasoning_content":"think."}}]}`,
		`{"choices":[{"index":0,"delta":{"content":"Yes"}}]}`,
		`{"choices":[{"index":0,"delta":{"content":[{"type":"text","text":", surely."}]},"finish_reason":"stop"}]}`,
		"[DONE]"))
	c = newTestClient(t, rt)
	s, err := c.ChatStream(t.Context(), chatReq("m/a", ""))
	require.NoError(t, err)
	var reasoning, text string
	for s.Next() {
		ch := s.Current()
		reasoning += ch.Choices[0].Delta.Reasoning
		text += ch.Text()
	}
	require.NoError(t, s.Err())
	assert.Equal(t, "Let me think.", reasoning)
	assert.Equal(t, "Yes, surely.", text)
	got := s.Response().Choices[0].Message
	assert.Equal(t, "Let me think.", got.Reasoning)
	assert.Equal(t, "Yes, surely.", got.Content)
}

func TestContentPartValidation(t *testing.T) {
	tests := []struct {
		part ContentPart
		want string
	}{
		{ContentPart{Type: "video"}, "unknown part type"},
		{ContentPart{Type: "image_url"}, "no ImageURL"},
		{ImagePart("file:///etc/passwd"), "neither http(s) nor a data URL"},
		{ImagePart("data:image/png,rawbytes"), "base64 data URL"},
	}
	rt := newRouter(t, completion("never"))
	c := newTestClient(t, rt)
	for _, tt := range tests {
		_, err := c.Chat(t.Context(), ChatRequest{Model: "m/a", Messages: []Message{UserParts(TextPart("x"), tt.part)}})
		require.ErrorIs(t, err, ErrInvalidRequest)
		assert.Contains(t, err.Error(), tt.want)
	}
	assert.Empty(t, rt.reqs())
}

func TestEstimateTokens(t *testing.T) {
	req := &ChatRequest{MaxTokens: 100, Messages: []Message{UserMessage("12345678"), UserParts(TextPart("abcd"))}}
	assert.Equal(t, 103, estimateTokens(req))
}
