package jsonread

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// skipAll reads data as one whole JSON text.
func skipAll(data []byte) bool {
	var r Reader
	r.Reset(data)
	r.Skip()
	return r.End()
}

func TestSkipAgreesWithEncodingJSON(t *testing.T) {
	for _, text := range []string{
		`{}`, `[]`, `""`, `0`, `-0`, `1.5e-3`, `1E+9`, `true`, `false`, `null`, ` {"a" : [1, {"b":null}] } `,
		`"\u00e9\ud83d\ude00\n\t\"\\\/"`, `"\ud800"`, "\"\xff\xfe\"", `{"a":1,"a":2}`,
		`{`, `}`, `[1,]`, `[,1]`, `{"a":1,}`, `{,"a":1}`, `{"a"}`, `{"a":}`, `{1:2}`, `01`, `-`, `1.`, `.5`, `1e`, `+1`,
		`nul`, `nullx`, `truefalse`, `"\x"`, `"\u12"`, `"\u12g4"`, "\"a\x01\"", `"abc`, `[1 2]`, `{"a":1 "b":2}`,
		`[1]]`, `{"a":[}`, `{"a":{]}`, `1 2`, ``, ` `, `[1}`, `"\'"`,
	} {
		assert.Equal(t, json.Valid([]byte(text)), skipAll([]byte(text)), "%q", text)
	}
}

func TestSkipFailsOnDeepNesting(t *testing.T) {
	deep := strings.Repeat("[", maxDepth+2) + strings.Repeat("]", maxDepth+2)
	require.True(t, json.Valid([]byte(deep)))
	assert.False(t, skipAll([]byte(deep)), "deeper than maxDepth is left to encoding/json")
	shallow := strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)
	assert.True(t, skipAll([]byte(shallow)))
}

func TestStringMatchesEncodingJSON(t *testing.T) {
	for _, text := range []string{
		`""`, `"plain"`, `"caf\u00e9"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\udc00\ud800"`,
		`"a\nb\r\t\b\f\/\\\""`, "\"bad \xff utf8 \xe2\x82\"", "\"surrogate in utf8 \xed\xa0\x80\"", `"\u0000"`,
		"\"caf\xc3\xa9\"",
	} {
		var want string
		require.NoError(t, json.Unmarshal([]byte(text), &want), text)
		var r Reader
		r.Reset([]byte(text))
		got := r.String()
		assert.True(t, r.End(), text)
		assert.Equal(t, want, got, text)
	}
}

func TestInt64(t *testing.T) {
	for _, tc := range []struct {
		text string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"-0", 0, true}, {"42", 42, true}, {"-42", -42, true},
		{"9223372036854775807", 1<<63 - 1, true}, {"-9223372036854775808", -1 << 63, true},
		{"9223372036854775808", 0, false}, {"-9223372036854775809", 0, false}, {"99999999999999999999", 0, false},
		{"1.0", 0, false}, {"1e3", 0, false}, {`"1"`, 0, false}, {"null", 0, false}, {"01", 0, false},
	} {
		var r Reader
		r.Reset([]byte(tc.text))
		got := r.Int64()
		ok := r.End()
		assert.Equal(t, tc.ok, ok, tc.text)
		if tc.ok {
			assert.Equal(t, tc.want, got, tc.text)
			var want int64
			require.NoError(t, json.Unmarshal([]byte(tc.text), &want))
			assert.Equal(t, want, got, tc.text)
		}
	}
}

func TestObjectWalk(t *testing.T) {
	var r Reader
	r.Reset([]byte(` { "a" : "x" , "b" : [ 1 , 2 ] , "c" : null } `))
	require.True(t, r.Object())
	var keys []string
	var nums []int64
	for r.More('}') {
		k := string(r.Key())
		keys = append(keys, k)
		switch k {
		case "a":
			assert.Equal(t, "x", r.String())
		case "b":
			require.True(t, r.Array())
			for r.More(']') {
				nums = append(nums, r.Int64())
			}
		case "c":
			assert.True(t, r.Null())
		}
	}
	assert.True(t, r.End())
	assert.Equal(t, []string{"a", "b", "c"}, keys)
	assert.Equal(t, []int64{1, 2}, nums)
}

func TestEscapedKeyFails(t *testing.T) {
	var r Reader
	r.Reset([]byte(`{"\u0069d":"x"}`))
	require.True(t, r.Object())
	require.True(t, r.More('}'))
	assert.Nil(t, r.Key())
	assert.False(t, r.OK())
}

func TestErrorsAreSticky(t *testing.T) {
	var r Reader
	r.Reset([]byte(`["x", 1]`))
	r.Int64() // not an array
	assert.False(t, r.OK())
	assert.False(t, r.Array())
	assert.Equal(t, "", r.String())
	assert.Equal(t, Invalid, r.Peek())
	assert.False(t, r.End())
}

// FuzzSkip checks that the reader accepts exactly the texts encoding/json
// accepts (short of its nesting bound), and decodes strings and integers
// as encoding/json does.
func FuzzSkip(f *testing.F) {
	for _, s := range []string{`{"a":[1,"b",null,true]}`, `"\ud83d\ude00"`, `-12`, `1.5e3`, "\"\xff\"", `[{}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		valid := json.Valid(data)
		ok := skipAll(data)
		if ok && !valid {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		if valid && !ok && nesting(data) <= maxDepth {
			t.Fatalf("refused valid JSON %q", data)
		}
		var r Reader
		r.Reset(data)
		if got := r.String(); r.End() {
			var want string
			if err := json.Unmarshal(data, &want); err != nil || want != got {
				t.Fatalf("string %q: got %q, encoding/json %q (%v)", data, got, want, err)
			}
		}
		r.Reset(data)
		if got := r.Int64(); r.End() {
			var want int64
			if err := json.Unmarshal(data, &want); err != nil || want != got {
				t.Fatalf("int %q: got %d, encoding/json %d (%v)", data, got, want, err)
			}
		}
	})
}

// nesting is the deepest nesting of brackets outside strings.
func nesting(data []byte) int {
	depth, deepest, inString, esc := 0, 0, false, false
	for _, c := range data {
		switch {
		case inString && esc:
			esc = false
		case inString && c == '\\':
			esc = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

func TestFloat32MatchesEncodingJSON(t *testing.T) {
	for _, text := range []string{"0", "-0", "1", "-1.5", "0.1", "3.4028234663852886e38", "1e-45", "1.17549435e-38",
		"-0.0123456789", "123456789", "2.5E+3", "7e-1"} {
		var r Reader
		r.Reset([]byte(text))
		got := r.Float32()
		require.True(t, r.OK() && r.End(), text)
		var want float32
		require.NoError(t, json.Unmarshal([]byte(text), &want))
		assert.Equal(t, want, got, text)
	}
	for _, text := range []string{"1e39", "-1e39", `"1"`, "null", "NaN", "1.", "--1"} {
		var r Reader
		r.Reset([]byte(text))
		r.Float32()
		assert.False(t, r.OK() && r.End(), text)
	}
}
