// Command fleet shows two replicas of an application sharing their
// cooldowns through Redis: the primary model's provider is down; replica A
// learns it, and replica B, which never called it, skips it too.
//
// It needs a Redis: set REDIS_URL (redis://host:port/db). Without one it
// says so and exits 0. The router is a local fake (inferencetest), so no
// token or network is needed.
//
//	REDIS_URL=redis://127.0.0.1:6379/0 go run .
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
	"github.com/hfkit/inference/redisstore"
)

func main() {
	url := os.Getenv("REDIS_URL")
	if url == "" {
		fmt.Println("fleet: REDIS_URL is not set, so there is no Redis to share cooldowns through; set it (redis://127.0.0.1:6379/0) to run the example")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout, url); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, url string) error {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	// The store never fails a call when Redis is away, so the example
	// checks first: without Redis there is nothing to show.
	pingCtx, cancelPing := context.WithTimeout(ctx, 3*time.Second)
	defer cancelPing()
	if err := rdb.Ping(pingCtx).Err(); err != nil {
		return fmt.Errorf("the Redis at %s is unreachable (%v): start one (redis-server --port 6379) or fix REDIS_URL", opts.Addr, err)
	}

	router := inferencetest.NewRouter()
	defer router.Close()
	router.On("org/primary:flaky", inferencetest.ProviderError(503))
	router.On("org/backup", inferencetest.Reply("served by the backup"))

	// Each replica has its own client and store; the prefix is the
	// application's, shared by its replicas.
	prefix := fmt.Sprintf("fleet-example:%d:", time.Now().UnixNano())
	logger := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	replica := func() (*inference.Client, *redisstore.Store, error) {
		store := redisstore.New(rdb, redisstore.Options{Prefix: prefix, Refresh: 100 * time.Millisecond, Logger: logger})
		c, err := router.Client(
			inference.WithCooldownStore(store),
			inference.WithRetry(inference.RetryPolicy{}),
			inference.WithFallback(inference.Candidate{Model: "org/backup"}),
			inference.WithLogger(logger),
		)
		return c, store, err
	}
	a, storeA, err := replica()
	if err != nil {
		return err
	}
	defer storeA.Close()
	b, storeB, err := replica()
	if err != nil {
		return err
	}
	defer storeB.Close()

	req := inference.ChatRequest{Model: "org/primary", Provider: "flaky", Messages: []inference.Message{inference.UserMessage("hi")}}
	resp, err := a.Chat(ctx, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "replica A: %q after %d attempts (the primary failed and cools down for the fleet)\n", resp.Text(), len(resp.Attempts))

	time.Sleep(200 * time.Millisecond) // B's local copy refreshes every 100 ms
	resp, err = b.Chat(ctx, req)
	if err != nil {
		return err
	}
	if len(resp.Skipped) == 0 {
		return fmt.Errorf("replica B did not learn of the failing primary through Redis (it tried %d candidates)", len(resp.Attempts))
	}
	fmt.Fprintf(out, "replica B: %q after %d attempt, skipping %v: it learned from A through Redis\n", resp.Text(), len(resp.Attempts), resp.Skipped)
	fmt.Fprintf(out, "the primary was asked %d time(s) in all\n", count(router.Models(), "org/primary:flaky"))
	return nil
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}
