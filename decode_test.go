package inference

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const usualCompletion = `{"id":"chatcmpl-1","object":"chat.completion","created":1765840584,"model":"m/a",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello there."},"logprobs":null,"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":24,"completion_tokens":3,"total_tokens":27},"system_fingerprint":"fp_1"}`

// completionBodies are success bodies in the shapes providers send, and
// some they should not. fast says whether the fast path must take them.
var completionBodies = []struct {
	name string
	body string
	fast bool
}{
	{"usual", usualCompletion, true},
	{"white space everywhere", " {\n \"id\" : \"x\" ,\r\n\t\"choices\" : [ { \"message\" : { \"role\" : \"assistant\" , \"content\" : \"hi\" } } ] }\n", true},
	{"escapes and unicode", `{"choices":[{"message":{"role":"assistant","content":"line\nnext \"q\" caf\u00e9 \ud83d\ude00 日本 \ud800"}}]}`, true},
	{"invalid utf-8 replaced", "{\"choices\":[{\"message\":{\"content\":\"a\xffb\"}}]}", true},
	{"tool calls", `{"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}},{"index":1,"id":"call_2","type":"function","function":{"name":"g","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}`, true},
	{"reasoning", `{"choices":[{"message":{"role":"assistant","content":"42","reasoning":"think","reasoning_content":"deeper"}}]}`, true},
	{"reasoning only", `{"choices":[{"message":{"role":"assistant","content":"42","reasoning":"think"}}]}`, true},
	{"nulls", `{"id":null,"created":null,"model":null,"provider":null,"choices":[null,{"index":null,"message":null,"finish_reason":null}],"usage":null,"system_fingerprint":null}`, true},
	{"no choices", `{"id":"x","choices":[]}`, true},
	{"null choices", `{"id":"x","choices":null}`, true},
	{"error object in a 200", `{"error":{"message":"overloaded","code":503}}`, true},
	{"error string", `{"error":"bad"}`, true},
	{"error null", `{"error":null,"choices":[{"message":{"content":"x"}}]}`, true},
	{"provider and name and tool id", `{"provider":"together","choices":[{"message":{"role":"tool","name":"n","tool_call_id":"c1","content":"r"}}]}`, true},
	{"unknown members of every kind", `{"x":[1,{"y":[true,false,null,-1.5e3]}],"choices":[{"extra":{},"message":{"audio":null,"content":"a"}}],"usage":{"prompt_tokens_details":{"cached_tokens":0},"total_tokens":5}}`, true},
	{"negative and large ints", `{"created":-9223372036854775808,"usage":{"prompt_tokens":9223372036854775807}}`, true},

	{"content as parts", `{"choices":[{"message":{"role":"assistant","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}]}`, false},
	{"key in another case", `{"Model":"m","choices":[{"message":{"content":"x"}}]}`, false},
	{"key with kelvin sign", "{\"usage\":{\"total_to\u212aens\":5}}", false},
	{"key with long s", "{\"choice\u017f\":[]}", false},
	{"escaped key", `{"\u0069d":"x"}`, false},
	{"repeated key", `{"id":"a","id":"b"}`, false},
	{"repeated choices", `{"choices":[{"message":{"content":"a"}}],"choices":[{"index":1}]}`, false},
	{"float where an int goes", `{"created":1.5}`, false},
	{"int overflow", `{"created":9223372036854775808}`, false},
	{"string where an int goes", `{"created":"1"}`, false},
	{"number where a string goes", `{"id":1}`, false},
	{"choices as object", `{"choices":{}}`, false},
	{"bad tool calls", `{"choices":[{"message":{"tool_calls":"x"}}]}`, false},
	{"top-level null", `null`, false},
	{"top-level array", `[]`, false},
	{"truncated", `{"choices":[{"message":{"content":"a`, false},
	{"trailing garbage", usualCompletion + `x`, false},
	{"two values", usualCompletion + ` {}`, false},
	{"trailing comma", `{"id":"a",}`, false},
	{"empty", ``, false},
}

func TestDecodeCompletionFastAgreesWithEncodingJSON(t *testing.T) {
	f13, err := os.ReadFile("testdata/fixtures/F13-multimodal-answer.json")
	require.NoError(t, err)
	bodies := append(completionBodies[:len(completionBodies):len(completionBodies)], struct {
		name string
		body string
		fast bool
	}{"F13 multimodal fixture", string(f13), strings.Contains(string(f13), `"content":"`)})
	for _, tc := range bodies {
		t.Run(tc.name, func(t *testing.T) {
			want, wantErr := decodeCompletionStd([]byte(tc.body))
			fast, ok := decodeCompletionFast([]byte(tc.body), "m/a")
			assert.Equal(t, tc.fast, ok, "fast path taken")
			if ok {
				require.NoError(t, wantErr, "the fast path accepted what encoding/json refuses")
				assert.Equal(t, want, fast)
			}
			got, err := decodeCompletion([]byte(tc.body), "m/a")
			assert.Equal(t, wantErr, err)
			assert.Equal(t, want, got)
		})
	}
}

func TestDecodeCompletionValues(t *testing.T) {
	w, ok := decodeCompletionFast([]byte(usualCompletion), "m/a")
	require.True(t, ok)
	assert.Equal(t, chatWire{ChatResponse: ChatResponse{
		ID: "chatcmpl-1", Created: 1765840584, Model: "m/a", SystemFingerprint: "fp_1",
		Choices: []Choice{{Index: 0, Message: Message{Role: RoleAssistant, Content: "Hello there."}, FinishReason: "stop"}},
		Usage:   Usage{PromptTokens: 24, CompletionTokens: 3, TotalTokens: 27},
	}}, w)
}

// longCompletion is a 1 KiB answer naming a model longer than the 32 bytes
// Go converts on the stack.
var longCompletion = []byte(`{"id":"chatcmpl-bench","object":"chat.completion","created":1765840584,"model":"meta-llama/Llama-3.3-70B-Instruct",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"` + strings.Repeat("Open models let anyone inspect, adapt and run them. ", 17) + `"},"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":24,"completion_tokens":180,"total_tokens":204}}`)

// escapedCompletion is an answer whose content has escapes (new lines),
// as most real answers do.
var escapedCompletion = []byte(`{"id":"chatcmpl-esc","model":"meta-llama/Llama-3.3-70B-Instruct","choices":[{"index":0,"message":{"role":"assistant","content":"` +
	strings.Repeat(`Open models let anyone inspect.\nAdapt and run them. `, 20) + `"},"finish_reason":"stop"}]}`)

// TestDecodeCompletionEscapedAllocations pins the cost of unescaping: one
// buffer of the escaped text's size, not append's doublings.
func TestDecodeCompletionEscapedAllocations(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		w, ok := decodeCompletionFast(escapedCompletion, "meta-llama/Llama-3.3-70B-Instruct")
		if !ok || !strings.Contains(w.Text(), "inspect.\nAdapt") {
			t.Fatal("fast path declined or did not unescape")
		}
	})
	assert.Equal(t, 4.0, allocs, "id, unescaping buffer, content, choices")
}

// TestDecodeCompletionAllocations pins the fast path's cost: the id, the
// content and the choices array, nothing else (role, finish reason and the
// model asked for are shared strings).
func TestDecodeCompletionAllocations(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		w, ok := decodeCompletionFast(longCompletion, "meta-llama/Llama-3.3-70B-Instruct")
		if !ok || w.Model != "meta-llama/Llama-3.3-70B-Instruct" {
			t.Fatal("fast path declined")
		}
	})
	assert.Equal(t, 3.0, allocs)
}

// FuzzDecodeCompletion checks the fast path against encoding/json on
// arbitrary bodies: whenever it accepts one, the result must be what
// encoding/json gives.
func FuzzDecodeCompletion(f *testing.F) {
	for _, tc := range completionBodies {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodeCompletionFast(data, "m/a")
		if !ok {
			return
		}
		want, err := decodeCompletionStd(data)
		if err != nil {
			t.Fatalf("fast path accepted %q, encoding/json: %v", data, err)
		}
		if !assert.ObjectsAreEqual(want, fast) {
			t.Fatalf("%q:\nfast %#v\nstd  %#v", data, fast, want)
		}
	})
}

func BenchmarkDecodeCompletion(b *testing.B) {
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := decodeCompletionFast(longCompletion, "meta-llama/Llama-3.3-70B-Instruct"); !ok {
				b.Fatal("declined")
			}
		}
	})
	b.Run("fast-escaped", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := decodeCompletionFast(escapedCompletion, "meta-llama/Llama-3.3-70B-Instruct"); !ok {
				b.Fatal("declined")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeCompletionStd(longCompletion); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// chunkBodies are stream chunks in the shapes providers send, and some they
// should not; fast says whether the fast path must take them.
var chunkBodies = []struct {
	name string
	body string
	fast bool
}{
	{"first", `{"id":"s1","object":"chat.completion.chunk","created":1765840584,"model":"m/a","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`, true},
	{"content", `{"id":"s1","object":"chat.completion.chunk","created":1765840584,"model":"m/a","choices":[{"index":0,"delta":{"content":"token "},"finish_reason":null}]}`, true},
	{"reasoning", `{"id":"s1","choices":[{"delta":{"reasoning_content":"hm","content":null}}]}`, true},
	{"tool call piece", `{"id":"s1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\""}}]}}]}`, true},
	{"finish", `{"id":"s1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`, true},
	{"usage", `{"id":"s1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}`, true},
	{"no id", `{"model":"m/b","created":7,"choices":[{"delta":{"content":"x"}}]}`, true},
	{"nulls", `{"id":null,"model":null,"created":null,"choices":[null,{"delta":null,"index":null}],"usage":null,"error":null}`, true},
	{"error event", `{"error":{"message":"overloaded","type":"server_error"}}`, true},
	{"escapes", `{"choices":[{"delta":{"content":"\n\u00e9\ud83d\ude00"}}]}`, true},

	{"content as parts", `{"choices":[{"delta":{"content":[{"type":"text","text":"a"}]}}]}`, false},
	{"key in another case", `{"Choices":[]}`, false},
	{"repeated key", `{"choices":[],"choices":[]}`, false},
	{"usage of the wrong kind", `{"usage":[1]}`, false},
	{"index as float", `{"choices":[{"index":1.5}]}`, false},
	{"not JSON", `{"choices":[`, false},
}

func TestDecodeChunkFastAgreesWithEncodingJSON(t *testing.T) {
	// Each body is decoded twice: as a stream's first chunk (meta unknown)
	// and as a later one (meta known), by both paths.
	for _, tc := range chunkBodies {
		for _, known := range []chunkMeta{{}, {ID: "s0", Created: 1, Model: "m/0"}} {
			t.Run(fmt.Sprintf("%s/meta=%q", tc.name, known.ID), func(t *testing.T) {
				std := chunkState{chunkMeta: known}
				want, wantErrEvent, wantErr := decodeChunkStd([]byte(tc.body), &std)
				meta := known
				got, errEvent, ok := decodeChunkFast([]byte(tc.body), &meta, "m/a")
				assert.Equal(t, tc.fast, ok, "fast path taken")
				if ok {
					require.NoError(t, wantErr, "the fast path accepted what encoding/json refuses")
					assert.Equal(t, want, got)
					assert.Equal(t, wantErrEvent, errEvent)
					assert.Equal(t, std.chunkMeta, meta)
				} else {
					assert.Equal(t, known, meta, "a declined chunk leaves the meta alone")
				}
			})
		}
	}
}

// TestDecodeChunkKeepsMetaAcrossChunks follows a stream whose first chunk
// has no id: the meta is read until one arrives, then kept.
func TestDecodeChunkKeepsMetaAcrossChunks(t *testing.T) {
	var fast, std chunkState
	for _, body := range []string{
		`{"model":"m/a","choices":[]}`,
		`{"id":"s1","created":5,"choices":[{"delta":{"content":"a"}}]}`,
		`{"id":"s2","model":"m/b","choices":[{"delta":{"content":"b"}}]}`,
	} {
		got, _, err := decodeChunk([]byte(body), &fast, "m/a")
		require.NoError(t, err)
		want, _, err := decodeChunkStd([]byte(body), &std)
		require.NoError(t, err)
		assert.Equal(t, want, got, body)
	}
	assert.Equal(t, chunkMeta{ID: "s1", Created: 5, Model: "m/a"}, fast.chunkMeta)
}

func TestDecodeChunkAllocations(t *testing.T) {
	body := []byte(chunkBodies[1].body)
	meta := chunkMeta{ID: "s1"}
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, ok := decodeChunkFast(body, &meta, "m/a"); !ok {
			t.Fatal("fast path declined")
		}
	})
	assert.Equal(t, 2.0, allocs, "the choices array and the content")
}

// FuzzDecodeChunk checks the chunk fast path against encoding/json, with
// the stream's meta unknown and known.
func FuzzDecodeChunk(f *testing.F) {
	for _, tc := range chunkBodies {
		f.Add([]byte(tc.body), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, metaKnown bool) {
		var known chunkMeta
		if metaKnown {
			known = chunkMeta{ID: "s0", Created: 1, Model: "m/0"}
		}
		meta := known
		got, errEvent, ok := decodeChunkFast(data, &meta, "m/a")
		if !ok {
			if meta != known {
				t.Fatalf("declined %q but changed the meta", data)
			}
			return
		}
		std := chunkState{chunkMeta: known}
		want, wantErrEvent, err := decodeChunkStd(data, &std)
		if err != nil {
			t.Fatalf("fast path accepted %q, encoding/json: %v", data, err)
		}
		if !assert.ObjectsAreEqual(want, got) || errEvent != wantErrEvent || std.chunkMeta != meta {
			t.Fatalf("%q:\nfast %#v %v %#v\nstd  %#v %v %#v", data, got, errEvent, meta, want, wantErrEvent, std.chunkMeta)
		}
	})
}

func BenchmarkDecodeChunk(b *testing.B) {
	body := []byte(chunkBodies[1].body)
	b.Run("fast", func(b *testing.B) {
		meta := chunkMeta{ID: "s1"}
		b.ReportAllocs()
		for b.Loop() {
			if _, _, ok := decodeChunkFast(body, &meta, "m/a"); !ok {
				b.Fatal("declined")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		w := chunkState{chunkMeta: chunkMeta{ID: "s1"}}
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := decodeChunkStd(body, &w); err != nil {
				b.Fatal(err)
			}
		}
	})
}
