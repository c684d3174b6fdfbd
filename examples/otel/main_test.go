package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestOtelOffline(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		`"Name": "attempt org/gated-model"`, `"Name": "attempt org/backup:together"`, `"Name": "chat org/gated-model"`,
		`"Value": "gated_model"`, `"Name": "fallback"`, `"Key": "gen_ai.usage.output_tokens"`,
		"answer: Traces show the walk. (after 2 attempts",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(text, "hf_") {
		t.Error("a token in the spans")
	}
}
