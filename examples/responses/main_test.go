package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestToolCallRoundTrip(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), &out))
	assert.Equal(t, "attempt org/overloaded: provider_error\n"+
		"attempt openai/gpt-oss-120b: served\n"+
		"the model calls weather({\"city\":\"Paris\"})\n"+
		"answer: It is 21 °C and sunny in Paris.\n", out.String())
}
