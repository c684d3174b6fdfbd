package redisstore

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// BenchmarkChat is one chat through a client whose cooldowns live in its
// memory (the default) or in Redis, when nothing is cooling (no lookup at
// all: the local tier is empty) and when the primary is cooling (skipped,
// the fallback serves: a lookup in the local tier, still no round trip).
// It needs REDIS_URL (or a redis-server to start).
func BenchmarkChat(b *testing.B) {
	rdb := benchRedis(b)
	r := inferencetest.NewRouter()
	defer r.Close()
	r.On("org/m", inferencetest.Reply("ok"))
	r.On("org/cooling", inferencetest.ProviderError(503))
	r.On("org/fallback", inferencetest.Reply("ok"))
	stores := map[string]func() inference.CooldownStore{
		"memory": nil,
		"redis": func() inference.CooldownStore {
			s := New(rdb, Options{Prefix: "hfkit-bench:" + time.Now().String() + ":"})
			b.Cleanup(func() { s.Close() })
			return s
		},
	}
	for _, cooling := range []bool{false, true} {
		for _, name := range []string{"memory", "redis"} {
			label := "nothing-cooling/" + name
			if cooling {
				label = "primary-cooling/" + name
			}
			b.Run(label, func(b *testing.B) {
				opts := []inference.Option{inference.WithRetry(inference.RetryPolicy{}), inference.WithCooldown(time.Hour),
					inference.WithFallback(inference.Candidate{Model: "org/fallback"})}
				if stores[name] != nil {
					opts = append(opts, inference.WithCooldownStore(stores[name]()))
				}
				c, err := r.Client(opts...)
				if err != nil {
					b.Fatal(err)
				}
				model := "org/m"
				if cooling {
					model = "org/cooling"
					if _, err := c.Chat(context.Background(), chatReq(model)); err != nil { // cools it
						b.Fatal(err)
					}
				}
				req := chatReq(model)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.Chat(context.Background(), req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func benchRedis(b *testing.B) redis.UniversalClient {
	url := os.Getenv("REDIS_URL")
	if url == "" {
		b.Skip("set REDIS_URL to a redis-server to benchmark against")
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		b.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	b.Cleanup(func() { rdb.Close() })
	return rdb
}

// BenchmarkStore is the store's own cost: a lookup of three candidates
// (local, no round trip), a cooldown as a failing call pays it (recorded
// locally and queued: no round trip), and the background writer's round
// trip for one cooldown (the Lua script), which no call waits for.
func BenchmarkStore(b *testing.B) {
	s := New(benchRedis(b), Options{Prefix: "hfkit-bench-store:" + time.Now().String() + ":"})
	defer s.Close()
	ctx := context.Background()
	keys := []string{"org/a", "org/b:together", "org/c"}
	_ = s.Cool(ctx, "org/b:together", time.Now().Add(time.Hour))
	b.Run("lookup", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Lookup(ctx, keys, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cool", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Cool(ctx, "org/a", time.Now().Add(time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("background-write", func(b *testing.B) {
		b.ReportAllocs()
		batch := map[string]time.Time{"org/a": time.Now().Add(time.Minute)}
		for b.Loop() {
			if err := s.write(batch); err != nil {
				b.Fatal(err)
			}
		}
	})
}
