package main

import (
	"bytes"
	"net"
	"os"
	"strings"
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

// With a REDIS_URL where nothing listens, the example says Redis is
// unreachable instead of claiming replica B learned anything.
func TestFleetWithoutRedis(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var out bytes.Buffer
	err = run(t.Context(), &out, "redis://"+addr+"/0")
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("want an unreachable error, got %v; output:\n%s", err, out.String())
	}
	if strings.Contains(out.String(), "learned") {
		t.Errorf("claims to have learned through Redis:\n%s", out.String())
	}
}
