package inference

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// eventBodies are Responses API events in the shapes servers send, and
// some they should not. fast says whether the fast tier must take them.
var eventBodies = []struct {
	name string
	body string
	fast bool
}{
	{"text delta", `{"type":"response.output_text.delta","sequence_number":7,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"token "}`, true},
	{"text delta, OpenAI's extra members", `{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":" upon","logprobs":[],"obfuscation":"x2"}`, true},
	{"type last", `{"sequence_number":1,"item_id":"msg_1","output_index":2,"content_index":1,"delta":"a","type":"response.output_text.delta"}`, true},
	{"escapes and unicode", `{"type":"response.output_text.delta","item_id":"msg_\u00e9","delta":"line\nnext \"q\" caf\u00e9 \ud83d\ude00 日本 \ud800"}`, true},
	{"invalid utf-8 replaced", "{\"type\":\"response.output_text.delta\",\"delta\":\"a\xffb\"}", true},
	{"nulls", `{"type":"response.output_text.delta","sequence_number":null,"item_id":null,"delta":null}`, true},
	{"white space", " {\n \"type\" : \"response.reasoning_text.delta\" ,\r\n\t\"delta\" : \"think\" }\n", true},
	{"summary delta", `{"type":"response.reasoning_summary_text.delta","sequence_number":3,"item_id":"rs_1","output_index":0,"summary_index":1,"delta":"**Plan**"}`, true},
	{"arguments delta", `{"type":"response.function_call_arguments.delta","sequence_number":5,"item_id":"fc_1","output_index":1,"delta":"{\"city\":"}`, true},
	{"another type", `{"type":"response.output_text.done","item_id":"msg_1","text":"all"}`, false},
	{"an item", `{"type":"response.output_text.delta","delta":"a","item":{"type":"message"}}`, false},
	{"a response", `{"type":"response.output_text.delta","delta":"a","response":null}`, false},
	{"repeated member", `{"type":"response.output_text.delta","delta":"a","delta":"b"}`, false},
	{"member in another case", `{"type":"response.output_text.delta","Delta":"a"}`, false},
	{"fractional index", `{"type":"response.output_text.delta","output_index":1.5,"delta":"a"}`, false},
	{"object delta", `{"type":"response.output_text.delta","delta":{"text":"a"}}`, false},
	{"type not a string", `{"type":1,"delta":"a"}`, false},
	{"no type", `{"delta":"a"}`, false},
	{"error event", `{"type":"error","code":"server_error","message":"boom","sequence_number":2}`, false},
	{"not an object", `["response.output_text.delta"]`, false},
	{"invalid JSON", `{"type":"response.output_text.delta","delta":"a"`, false},
	{"trailing garbage", `{"type":"response.output_text.delta","delta":"a"} x`, false},
}

// decodeEventReference is what encoding/json gives for an event's plain
// members: the members as a map, each read into its Go type, a member of
// another kind as the zero value. ok is false for JSON that is not an
// object (or null).
func decodeEventReference(data []byte) (ev ResponseEvent, ok bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return ResponseEvent{}, false
	}
	str := func(k string) string {
		var s string
		if json.Unmarshal(m[k], &s) != nil {
			return ""
		}
		return s
	}
	num := func(k string) int {
		var n int
		if json.Unmarshal(m[k], &n) != nil {
			return 0
		}
		return n
	}
	return ResponseEvent{Type: str("type"), SequenceNumber: num("sequence_number"), ItemID: str("item_id"), OutputIndex: num("output_index"),
		ContentIndex: num("content_index"), SummaryIndex: num("summary_index"), Delta: str("delta")}, true
}

// plainMembers is an event without what decodeEventStd adds to the
// members the reference reads.
func plainMembers(ev ResponseEvent) ResponseEvent {
	ev.Item, ev.Response, ev.Raw, ev.item = nil, nil, nil, false
	return ev
}

func TestDecodeEventTiersMatchEncodingJSON(t *testing.T) {
	for _, tc := range eventBodies {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.body)
			want, wantOK := decodeEventReference(data)
			var fast ResponseEvent
			buf, _ := eventBuffer(data)
			ok := decodeEventFast(data, buf, &fast)
			assert.Equal(t, tc.fast, ok, "the fast tier takes it")
			if ok {
				assert.Equal(t, want, fast)
			}
			var std ResponseEvent
			_, err := decodeEventStd(data, &std)
			if !wantOK {
				require.Error(t, err)
				return
			}
			assert.Equal(t, want, plainMembers(std))
		})
	}
}

// FuzzDecodeEvent checks both tiers of the event decoder against
// encoding/json: the fast tier gives exactly what it gives or declines,
// and the standard tier reads the same members for any event.
func FuzzDecodeEvent(f *testing.F) {
	for _, tc := range eventBodies {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, wantOK := decodeEventReference(data)
		var fast ResponseEvent
		buf, _ := eventBuffer(data)
		if decodeEventFast(data, buf, &fast) {
			if !wantOK || !assert.ObjectsAreEqual(want, fast) {
				t.Fatalf("%q:\nfast %#v\nstd  %#v %v", data, fast, want, wantOK)
			}
		}
		var std ResponseEvent
		_, err := decodeEventStd(data, &std)
		switch {
		case !wantOK && err == nil:
			t.Fatalf("%q: encoding/json refuses it, the standard tier took it: %#v", data, std)
		case wantOK && !assert.ObjectsAreEqual(want, plainMembers(std)):
			t.Fatalf("%q:\nstandard  %#v\nencoding/json %#v", data, plainMembers(std), want)
		}
	})
}

// The event's strings and Raw are its own: the stream reader reuses the
// bytes it decoded from, and a caller may append to Raw.
func TestDecodeEventOwnsItsBytes(t *testing.T) {
	for _, body := range []string{eventBodies[0].body, eventBodies[3].body, `{"type":"response.output_text.done","item_id":"msg_1","text":"all"}`} {
		data := []byte(body)
		var ev ResponseEvent
		_, err := decodeEvent(data, &ev)
		require.NoError(t, err)
		typ, item, delta := strings.Clone(ev.Type), strings.Clone(ev.ItemID), strings.Clone(ev.Delta)
		for i := range data {
			data[i] = 'x'
		}
		assert.Equal(t, body, string(ev.Raw), "Raw is a copy")
		assert.Equal(t, len(ev.Raw), cap(ev.Raw), "Raw ends where the strings begin")
		raw := append(ev.Raw, strings.Repeat("y", 64)...)
		for i := range raw {
			raw[i] = 'z'
		}
		assert.Equal(t, []string{typ, item, delta}, []string{ev.Type, ev.ItemID, ev.Delta}, "the strings are untouched")
	}
}

// An output_text delta costs one allocation: its bytes (Raw, item id and
// delta); the stream engine reads the event itself, no chunk is made of it.
func TestResponseDeltaEventAllocations(t *testing.T) {
	data := []byte(eventBodies[0].body)
	var st chunkState
	allocs := testing.AllocsPerRun(100, func() {
		ev, failure, err := responseOp{}.decode(data, &st, "")
		if err != nil || failure != nil || ev.Delta != "token " {
			t.Fatal(ev, failure, err)
		}
	})
	assert.Equal(t, 1.0, allocs)
}

func BenchmarkDecodeEvent(b *testing.B) {
	data := []byte(eventBodies[0].body)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ev ResponseEvent
			if _, err := decodeEvent(data, &ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("standard", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ev ResponseEvent
			if _, err := decodeEventStd(data, &ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
