package inference

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBillingFailuresAreOneKindNamingTheOrganization classifies the
// failures of a call billed to an organization (testdata/README.md says
// which fixtures are reconstructed).
func TestBillingFailuresAreOneKindNamingTheOrganization(t *testing.T) {
	tests := []struct {
		fixture string
		kind    error
		hint    string
	}{
		{"F17-bill-to-refused-403.http", ErrUnauthorized, "may not bill the organization acme-corp"},
		{"F17b-bill-to-refused-401.http", ErrUnauthorized, "may not bill the organization acme-corp"},
		{"F18-org-provider-disabled.http", ErrModelNotSupported, "acme-corp does not allow this provider"},
		{"F19-org-spending-limit.http", ErrPaymentRequired, "acme-corp has reached its spending limit"},
		{"F01-missing-scope.http", ErrMissingScope, "inference-api"}, // billing changes nothing here
		{"F06-credits-depleted.http", ErrPaymentRequired, "acme-corp has reached its spending limit"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			rt := newRouter(t, fromFixture(t, tt.fixture))
			c := newTestClient(t, rt, WithBillTo("acme-corp"))
			_, err := c.Chat(t.Context(), chatReq("m/a", "together"))
			require.Error(t, err)
			assert.Equal(t, []error{tt.kind}, kindsMatched(err), "%v", err)
			assert.Contains(t, err.Error(), tt.hint)
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, "acme-corp", apiErr.BillTo)
			assert.Equal(t, "acme-corp", rt.reqs()[0].Header.Get("X-HF-Bill-To"))
		})
	}
	// Without billing, the same 403 is a refused token, not about an
	// organization the call did not name.
	rt := newRouter(t, fromFixture(t, "F17-bill-to-refused-403.http"))
	_, err := newTestClient(t, rt).Chat(t.Context(), chatReq("m/a", ""))
	assert.Equal(t, []error{ErrUnauthorized}, kindsMatched(err))
	assert.NotContains(t, err.Error(), "may not bill")
}

func TestToolCallArgumentsObjectFixture(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "fixtures", "F20-tool-call-arguments-object.json"))
	require.NoError(t, err)
	w, err := decodeCompletion(data, "Qwen/Qwen3-32B")
	require.NoError(t, err)
	require.Len(t, w.Choices[0].Message.ToolCalls, 1)
	assert.Equal(t, `{"city":"Paris","unit":"celsius"}`, w.Choices[0].Message.ToolCalls[0].Function.Arguments)
	_, fastOK := decodeCompletionFast(data, "")
	std, err := decodeCompletionStd(data)
	require.NoError(t, err)
	assert.Equal(t, std, w, "both tiers agree (fast: %v)", fastOK)
}
