package inference

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type assessment struct {
	Verdict    string   `json:"verdict" description:"pass or fail"`
	Score      float64  `json:"score"`
	Reasons    []string `json:"reasons,omitempty"`
	Confidence *int     `json:"confidence,omitempty"`
}

func TestExtractJSON(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"bare object", `{"a":1}`, `{"a":1}`},
		{"bare array with space", "  [1, 2]\n", `[1, 2]`},
		{"json fence", "```json\n{\"a\":1}\n```", `{"a":1}`},
		{"plain fence after prose", "Sure!\n```\n{\"a\":[1]}\n```\nHope this helps.", `{"a":[1]}`},
		{"unclosed fence", "```json\n{\"a\":2}", `{"a":2}`},
		{"prose before", `Here is the assessment: {"verdict":"pass","score":0.9} Let me know!`, `{"verdict":"pass","score":0.9}`},
		{"braces in prose first", `Use {like this} format: {"a":"}"}`, `{"a":"}"}`},
		{"escaped quote in string", `x {"a":"he said \"}\" ok"} y`, `{"a":"he said \"}\" ok"}`},
		{"second fence is json", "```python\nprint(1)\n```\n```json\n{\"b\":true}\n```", `{"b":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := extractJSON(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(got))
		})
	}
	for _, bad := range []string{"", "   ", "no json here", "{not: json}", "```json\n{broken\n```"} {
		_, err := extractJSON(bad)
		assert.Error(t, err, bad)
	}
}

func FuzzExtractJSON(f *testing.F) {
	for _, seed := range []string{`{"a":1}`, "```json\n{\"a\":1}\n```", `prose {"a":[1,{"b":"}"}]} tail`, "```", "{[", `"\"`, "[]{}", "```json\n"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := extractJSON(in)
		if err != nil {
			return
		}
		assert.True(t, json.Valid(got), "extracted text is valid JSON")
		assert.Contains(t, in, string(got), "extracted text comes from the reply")
		if utf8.ValidString(in) {
			assert.True(t, utf8.Valid(got))
		}
	})
}

func TestJSONSchemaDerivation(t *testing.T) {
	type inner struct {
		N int `json:"n"`
	}
	type Embedded struct {
		E string `json:"e"`
	}
	type all struct {
		Embedded
		S      string            `json:"s"`
		B      bool              `json:"b,omitempty"`
		I      int64             `json:"i,string"`
		F      float32           `json:"f"`
		T      time.Time         `json:"t"`
		Raw    json.RawMessage   `json:"raw,omitzero"`
		Bytes  []byte            `json:"bytes"`
		List   []inner           `json:"list"`
		Map    map[string]int    `json:"map"`
		Any    any               `json:"any"`
		Ptr    *inner            `json:"ptr,omitempty"`
		Skip   string            `json:"-"`
		NoTag  string            //nolint
		hidden string            //lint:ignore U1000 an unexported field must not reach the schema
		Nested map[string][]bool `json:"nested"`
	}
	rf := responseFormatFor(reflect.TypeFor[all]())
	require.Equal(t, "json_schema", rf.Type)
	assert.Equal(t, "all", rf.JSONSchema.Name)
	assert.JSONEq(t, `{
		"type":"object",
		"properties":{
			"e":{"type":"string"},
			"s":{"type":"string"},
			"b":{"type":"boolean"},
			"i":{"type":"string"},
			"f":{"type":"number"},
			"t":{"type":"string","format":"date-time"},
			"raw":{},
			"bytes":{"type":"string"},
			"list":{"type":"array","items":{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}},
			"map":{"type":"object","additionalProperties":{"type":"integer"}},
			"any":{},
			"ptr":{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]},
			"NoTag":{"type":"string"},
			"nested":{"type":"object","additionalProperties":{"type":"array","items":{"type":"boolean"}}}
		},
		"required":["e","s","i","f","t","bytes","list","map","any","NoTag","nested"]
	}`, string(rf.JSONSchema.Schema))

	rf = responseFormatFor(reflect.TypeFor[assessment]())
	assert.Contains(t, string(rf.JSONSchema.Schema), `"description":"pass or fail"`)

	type recursive struct {
		Children []recursive `json:"children"`
	}
	type withChan struct {
		C chan int `json:"c"`
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[recursive](), reflect.TypeFor[withChan](), reflect.TypeFor[map[int]string](), reflect.TypeFor[any]()} {
		assert.Equal(t, &ResponseFormat{Type: "json_object"}, responseFormatFor(typ), typ.String())
	}
	// A root that is not an object is asked for by its schema: json_object
	// would forbid it.
	assert.JSONEq(t, `{"type":"array","items":{"type":"string"}}`, string(responseFormatFor(reflect.TypeFor[[]string]()).JSONSchema.Schema))
	assert.JSONEq(t, `{"type":"integer"}`, string(responseFormatFor(reflect.TypeFor[int]()).JSONSchema.Schema))
	assert.Equal(t, "json_schema", responseFormatFor(reflect.TypeFor[map[string]string]()).Type)
	assert.Equal(t, "response", schemaName(reflect.TypeFor[map[string]string]()))
}

// jsonReplies answers chat requests with the given contents in turn.
func jsonReplies(t *testing.T, contents ...string) *router {
	handlers := make([]http.HandlerFunc, len(contents))
	for i, c := range contents {
		handlers[i] = completion(c)
	}
	return newRouter(t, handlers...)
}

func TestChatJSON(t *testing.T) {
	tests := []struct {
		name    string
		replies []string
		calls   int
	}{
		{"plain", []string{`{"verdict":"pass","score":0.8,"reasons":["clear"]}`}, 1},
		{"fenced", []string{"```json\n{\"verdict\":\"pass\",\"score\":0.8,\"reasons\":[\"clear\"]}\n```"}, 1},
		{"prose before", []string{`Here is my assessment: {"verdict":"pass","score":0.8,"reasons":["clear"]}`}, 1},
		{"re-ask succeeds", []string{`I think it passes with a score of 0.8.`, `{"verdict":"pass","score":0.8,"reasons":["clear"]}`}, 2},
		{"wrong shape then right", []string{`{"verdict":"pass","score":"high"}`, `{"verdict":"pass","score":0.8,"reasons":["clear"]}`}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := jsonReplies(t, tt.replies...)
			c := newTestClient(t, rt)
			v, resp, err := ChatJSON[assessment](t.Context(), c, chatReq("m/a", ""))
			require.NoError(t, err)
			assert.Equal(t, assessment{Verdict: "pass", Score: 0.8, Reasons: []string{"clear"}}, v)
			require.NotNil(t, resp)
			reqs := rt.reqs()
			require.Len(t, reqs, tt.calls)

			var first struct {
				ResponseFormat ResponseFormat `json:"response_format"`
				Messages       []Message      `json:"messages"`
			}
			require.NoError(t, json.Unmarshal(reqs[0].Body, &first))
			assert.Equal(t, "json_schema", first.ResponseFormat.Type)
			assert.Equal(t, "assessment", first.ResponseFormat.JSONSchema.Name)
			if tt.calls == 2 {
				var second struct{ Messages []Message }
				require.NoError(t, json.Unmarshal(reqs[1].Body, &second))
				require.Len(t, second.Messages, 3)
				assert.Equal(t, RoleAssistant, second.Messages[1].Role)
				assert.Equal(t, tt.replies[0], second.Messages[1].Content)
				assert.Contains(t, second.Messages[2].Content, "could not be read as the JSON value")
			}
		})
	}
}

func TestChatJSONReaskFails(t *testing.T) {
	rt := jsonReplies(t, "I'd rather not.", "Still no JSON, sorry.")
	c := newTestClient(t, rt)
	req := chatReq("m/a", "")
	_, resp, err := ChatJSON[assessment](t.Context(), c, req)
	require.Error(t, err)
	var de *JSONDecodeError
	require.True(t, errors.As(err, &de))
	assert.Equal(t, "Still no JSON, sorry.", de.Raw)
	assert.Equal(t, "I'd rather not.", de.FirstRaw)
	assert.Contains(t, err.Error(), "no JSON object or array")
	assert.Equal(t, "Still no JSON, sorry.", resp.Text())
	assert.Len(t, req.Messages, 1, "the caller's messages are not changed")
	assert.Len(t, rt.reqs(), 2)
}

func TestChatJSONKeepsCallerFormatAndReportsCallErrors(t *testing.T) {
	rt := jsonReplies(t, `{"k":"v"}`)
	c := newTestClient(t, rt)
	req := chatReq("m/a", "")
	req.ResponseFormat = &ResponseFormat{Type: "json_object"}
	v, _, err := ChatJSON[map[string]string](t.Context(), c, req)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"k": "v"}, v)
	assert.True(t, strings.Contains(string(rt.reqs()[0].Body), `"response_format":{"type":"json_object"}`))

	rt = newRouter(t, fromFixture(t, "F06-credits-depleted.http"))
	c = newTestClient(t, rt)
	_, resp, err := ChatJSON[assessment](t.Context(), c, chatReq("m/a", ""))
	require.ErrorIs(t, err, ErrPaymentRequired)
	assert.Nil(t, resp)

	_, _, err = ChatJSON[assessment](t.Context(), nil, chatReq("m/a", ""))
	assert.Error(t, err)
}
