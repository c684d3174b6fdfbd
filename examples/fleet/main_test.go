package main

import (
	"bytes"
	"os"
	"testing"
)

func TestFleet(t *testing.T) {
	url := os.Getenv("REDIS_URL")
	if url == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("REDIS_URL is not set: .ci/run starts a redis-server and sets it")
		}
		t.Skip("set REDIS_URL to run against a Redis")
	}
	var out bytes.Buffer
	if err := run(t.Context(), &out, url); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`replica A: "served by the backup" after 2 attempts`,
		`replica B: "served by the backup" after 1 attempt, skipping [org/primary:flaky]`,
		"the primary was asked 1 time(s) in all",
	} {
		if !bytes.Contains(out.Bytes(), []byte(want)) {
			t.Errorf("missing %q in:\n%s", want, out.String())
		}
	}
}
