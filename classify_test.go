package inference

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
)

// pickMembersStd is what pickMembers must agree with: decoding into a map
// and looking the names up.
func pickMembersStd(body []byte, names []string) ([]json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil, false
	}
	raw := make([]json.RawMessage, len(names))
	for i, name := range names {
		raw[i] = m[name]
	}
	return raw, true
}

var errorBodies = []string{
	`{"error":"Access to model x is restricted."}`,
	`{"error":{"message":"m","type":"t","code":"c"}}`,
	`{"error":"invalid_grant","error_description":"expired"}`,
	`{"errors":[{"message":"a"},{"message":"b"}]}`,
	`{"code":400,"reason":"INVALID_REQUEST_BODY","message":"bad"}`,
	`{"detail":[{"loc":["body"],"msg":"field required"}]}`,
	`{"error":null,"reason":null}`,
	`{"message":"first","message":"second"}`,
	`{"\u0065rror":"escaped name"}`,
	` { "error" : "spaced" } `,
	`{"error":"x"`, `[]`, `null`, `"s"`, `{}`,
}

func TestPickMembersAgreesWithAMap(t *testing.T) {
	names := []string{"error", "message", "reason", "detail"}
	for _, body := range errorBodies {
		want, wantOK := pickMembersStd([]byte(body), names)
		got := make([]json.RawMessage, len(names))
		ok := pickMembers([]byte(body), names, got)
		assert.Equal(t, wantOK, ok, body)
		if ok {
			assert.Equal(t, want, got, body)
		}
	}
}

func FuzzPickMembers(f *testing.F) {
	for _, body := range errorBodies {
		f.Add([]byte(body))
	}
	names := []string{"error", "message", "code", "detail"}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, wantOK := pickMembersStd(data, names)
		got := make([]json.RawMessage, len(names))
		if ok := pickMembers(data, names, got); ok != wantOK || ok && !assert.ObjectsAreEqual(want, got) {
			t.Fatalf("%q: got %q %v, a map gives %q %v", data, got, ok, want, wantOK)
		}
	})
}
