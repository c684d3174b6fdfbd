package redisstore

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// These tests run against a real redis-server: the one REDIS_URL names
// (.ci/run starts one and sets it), or, for the tests that stop and start
// Redis, one of their own. In CI they never skip.

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"))
}

// sharedRedis is the Redis of REDIS_URL, flushed of this test's prefix.
func sharedRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	url := os.Getenv("REDIS_URL")
	if url == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("REDIS_URL is not set: .ci/run starts a redis-server and sets it")
		}
		return ownRedis(t).client(t)
	}
	opts, err := redis.ParseURL(url)
	require.NoError(t, err)
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	require.NoError(t, rdb.Ping(t.Context()).Err(), "REDIS_URL %s does not answer", url)
	return rdb
}

// server is a redis-server this test starts, stops and starts again.
type server struct {
	port int
	args []string // more flags, such as --maxmemory
	dir  string
	cmd  *exec.Cmd
}

func ownRedis(t *testing.T, args ...string) *server {
	t.Helper()
	return ownRedisAt(t, 0, args...)
}

// ownRedisAt is ownRedis on the given port, or a free one for 0.
func ownRedisAt(t *testing.T, port int, args ...string) *server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not installed: .ci/run installs it")
		}
		t.Skip("redis-server is not installed (apt-get install redis-server)")
	}
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	s := &server{port: port, args: args, dir: t.TempDir()}
	s.start(t)
	t.Cleanup(s.kill)
	return s
}

func (s *server) start(t *testing.T) {
	t.Helper()
	s.cmd = exec.Command("redis-server", append([]string{"--port", fmt.Sprint(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir}, s.args...)...)
	require.NoError(t, s.cmd.Start())
	rdb := redis.NewClient(&redis.Options{Addr: s.addr()})
	defer rdb.Close()
	require.Eventually(t, func() bool { return rdb.Ping(context.Background()).Err() == nil }, 5*time.Second, 20*time.Millisecond)
}

func (s *server) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

func (s *server) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

func (s *server) client(t *testing.T) redis.UniversalClient {
	rdb := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1, DialTimeout: 50 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// prefix keeps each test's keys apart on a shared Redis.
func prefix(t *testing.T) string {
	return fmt.Sprintf("hfkit-test:%s:%d:", t.Name(), rand.Int64())
}

func newStore(t *testing.T, rdb redis.UniversalClient, opts Options) *Store {
	t.Helper()
	s := New(rdb, opts)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestTwoClientsShareACooldownWithinTheStalenessBound(t *testing.T) {
	rdb := sharedRedis(t)
	p := prefix(t)
	r := inferencetest.NewRouter()
	defer r.Close()
	r.On("org/down", inferencetest.ProviderError(503))
	r.On("org/up", inferencetest.Reply("ok"))
	client := func() *inference.Client {
		store := newStore(t, rdb, Options{Prefix: p, Refresh: 200 * time.Millisecond})
		c, err := r.Client(inference.WithCooldownStore(store), inference.WithRetry(inference.RetryPolicy{}),
			inference.WithFallback(inference.Candidate{Model: "org/up"}))
		require.NoError(t, err)
		return c
	}
	first, second := client(), client()

	_, err := first.Chat(t.Context(), chatReq("org/down"))
	require.NoError(t, err)
	cooled := time.Now()
	var seenAfter time.Duration
	require.Eventually(t, func() bool {
		resp, err := second.Chat(t.Context(), chatReq("org/down"))
		if err == nil && len(resp.Skipped) == 1 {
			seenAfter = time.Since(cooled)
			return true
		}
		return false
	}, 2*time.Second, 20*time.Millisecond)
	t.Logf("the second client skipped the candidate %s after the first cooled it (refresh 200ms)", seenAfter)
	assert.Less(t, seenAfter, 200*time.Millisecond+DefaultTimeout+100*time.Millisecond, "within the staleness bound")
}

func TestLatestDeadlineWinsUnderConcurrentWriters(t *testing.T) {
	rdb := sharedRedis(t)
	p := prefix(t)
	base := time.Now().Add(time.Minute) // within the store's MaxCooldown
	var wg sync.WaitGroup
	var latest time.Time
	var mu sync.Mutex
	writers := make([]*Store, 8)
	for w := range writers {
		s := newStore(t, rdb, Options{Prefix: p, Timeout: time.Second})
		writers[w] = s
		wg.Go(func() {
			for i := range 50 {
				until := base.Add(time.Duration(rand.IntN(100000)) * time.Millisecond).Truncate(time.Millisecond)
				mu.Lock()
				if until.After(latest) {
					latest = until
				}
				mu.Unlock()
				require.NoError(t, s.Cool(t.Context(), "org/m:together", until), "writer %d write %d", w, i)
			}
		})
	}
	wg.Wait()
	for _, s := range writers {
		s.Close() // writes what is still queued
	}
	got, err := rdb.Get(t.Context(), "{"+p+"}key:org/m:together").Int64()
	require.NoError(t, err)
	assert.Equal(t, latest.UnixMilli(), got, "the key holds the latest deadline written")
	score, err := rdb.ZScore(t.Context(), "{"+p+"}index", "org/m:together").Result()
	require.NoError(t, err)
	assert.Equal(t, float64(latest.UnixMilli()), score)

	reader := newStore(t, rdb, Options{Prefix: p})
	var untils []time.Time
	require.Eventually(t, func() bool {
		untils, err = reader.Lookup(t.Context(), []string{"org/m:together", "org/other"}, time.Now())
		return err == nil && !untils[0].IsZero()
	}, time.Second, 5*time.Millisecond, "the first refresh, in the background, fills the local copy")
	assert.Equal(t, latest.UnixMilli(), untils[0].UnixMilli())
	assert.True(t, untils[1].IsZero())
}

func TestKeysExpireAtTheirDeadline(t *testing.T) {
	rdb := sharedRedis(t)
	p := prefix(t)
	s := newStore(t, rdb, Options{Prefix: p, Refresh: 50 * time.Millisecond})
	deadline := time.Now().Add(300 * time.Millisecond)
	require.NoError(t, s.Cool(t.Context(), "org/m", deadline))
	var ttl time.Duration
	var err error
	require.Eventually(t, func() bool { // the write is the background writer's
		ttl, err = rdb.PTTL(t.Context(), "{"+p+"}key:org/m").Result()
		return err == nil && ttl > 0
	}, time.Second, 2*time.Millisecond)
	assert.Greater(t, ttl, 100*time.Millisecond)
	assert.LessOrEqual(t, ttl, 300*time.Millisecond)
	assert.False(t, s.Empty())
	var gone time.Time
	require.Eventually(t, func() bool {
		n, err := rdb.Exists(t.Context(), "{"+p+"}key:org/m", "{"+p+"}index").Result()
		gone = time.Now()
		return err == nil && n == 0
	}, 2*time.Second, 5*time.Millisecond)
	// The key expires at its deadline, the index a lease after the last.
	assert.False(t, gone.Before(deadline), "not before the deadline")
	assert.LessOrEqual(t, gone.Sub(deadline), s.lease+100*time.Millisecond, "the key and the index are gone with the last deadline")
	require.Eventually(t, s.Empty, time.Second, 5*time.Millisecond, "and the store is empty a lease later")
	untils, _ := s.Lookup(t.Context(), []string{"org/m"}, time.Now())
	assert.True(t, untils[0].IsZero())
}

func TestRedisDownThenBack(t *testing.T) {
	srv := ownRedis(t)
	p := prefix(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	rdb := srv.client(t)
	store := newStore(t, rdb, Options{Prefix: p, Refresh: 50 * time.Millisecond, Logger: logger})
	r := inferencetest.NewRouter()
	defer r.Close()
	r.On("org/down", inferencetest.ProviderError(503))
	r.On("org/up", inferencetest.Reply("ok"))
	c, err := r.Client(inference.WithCooldownStore(store), inference.WithRetry(inference.RetryPolicy{}),
		inference.WithCooldown(time.Minute), inference.WithFallback(inference.Candidate{Model: "org/up"}))
	require.NoError(t, err)

	srv.kill()
	start := time.Now()
	for range 20 {
		_, err := c.Chat(t.Context(), chatReq("org/down"))
		require.NoError(t, err, "no call fails because of Redis")
	}
	assert.Less(t, time.Since(start), 2*time.Second, "a dead Redis costs each call at most its timeout")
	down := 0
	for _, m := range r.Models() {
		if m == "org/down" {
			down++
		}
	}
	assert.Equal(t, 1, down, "the cooldown held locally: the primary was tried once in 20 calls")
	// The outage is logged once, as soon as a background operation fails
	// (go-redis may hold one a few seconds in its pool before it does).
	logged := func(s string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return strings.Contains(logs.String(), s)
		}
	}
	require.Eventually(t, logged("level=WARN msg=\"redisstore: Redis"), 8*time.Second, 10*time.Millisecond)
	failed := store.Stats().RefreshesFailed
	require.Eventually(t, func() bool { return store.Stats().RefreshesFailed >= failed+3 }, 5*time.Second, 5*time.Millisecond,
		"a few more refreshes fail")
	mu.Lock()
	assert.Equal(t, 1, strings.Count(logs.String(), "level=WARN msg=\"redisstore: Redis"), logs.String())
	mu.Unlock()

	srv.start(t)
	other := newStore(t, srv.client(t), Options{Prefix: p, Refresh: 50 * time.Millisecond})
	require.Eventually(t, func() bool {
		untils, _ := other.Lookup(t.Context(), []string{"org/down"}, time.Now())
		return !untils[0].IsZero()
	}, 8*time.Second, 20*time.Millisecond, "the cooldown written while Redis was down reaches it when it is back")
	require.Eventually(t, logged("Redis answers again"), 8*time.Second, 10*time.Millisecond)
	mu.Lock()
	assert.Equal(t, 1, strings.Count(logs.String(), "Redis answers again"), logs.String())
	mu.Unlock()
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestNoTokenInRedis makes calls with tokens that are refused and accepted,
// then reads every key and value the store wrote.
func TestNoTokenInRedis(t *testing.T) {
	rdb := sharedRedis(t)
	p := prefix(t)
	store := newStore(t, rdb, Options{Prefix: p})
	const userToken = "hf_oauth_UserTokenThatMustNotLeakAAAAAAAAAA"
	r := inferencetest.NewRouter()
	defer r.Close()
	r.ForToken(userToken, inferencetest.MissingScope())
	r.On("org/down", inferencetest.ProviderError(503))
	r.On("org/gated", inferencetest.Gated())
	r.On("org/up", inferencetest.Reply("ok"))
	c, err := r.Client(inference.WithCooldownStore(store), inference.WithRetry(inference.RetryPolicy{}),
		inference.WithTokenSource(inference.ChainTokens(inference.StaticToken(userToken), inference.StaticToken(inferencetest.Token))),
		inference.WithFallback(inference.Candidate{Model: "org/gated"}, inference.Candidate{Model: "org/up"}))
	require.NoError(t, err)
	for range 3 {
		_, err := c.Chat(t.Context(), chatReq("org/down"))
		require.NoError(t, err)
	}
	// The writes are the background writer's.
	require.Eventually(t, func() bool {
		n, _ := rdb.Exists(t.Context(), "{"+p+"}index").Result()
		return n == 1
	}, 5*time.Second, 10*time.Millisecond)
	var seen []string
	iter := rdb.Scan(t.Context(), 0, "{"+p+"}*", 100).Iterator()
	for iter.Next(t.Context()) {
		key := iter.Val()
		seen = append(seen, key)
		switch typ := rdb.Type(t.Context(), key).Val(); typ {
		case "string":
			seen = append(seen, rdb.Get(t.Context(), key).Val())
		case "zset":
			seen = append(seen, rdb.ZRange(t.Context(), key, 0, -1).Val()...)
		default:
			t.Errorf("unexpected %s key %s", typ, key)
		}
	}
	require.NoError(t, iter.Err())
	require.NotEmpty(t, seen)
	all := strings.Join(seen, "\n")
	assert.Contains(t, all, "org/down")
	// A gated model is refused per account: it is cooled in the client,
	// never for the fleet.
	assert.NotContains(t, all, "org/gated")
	for _, secret := range []string{userToken, userToken[9:20], inferencetest.Token, inferencetest.Token[3:15], "token source", "hf_"} {
		assert.NotContains(t, all, secret)
	}
}

func chatReq(model string) inference.ChatRequest {
	return inference.ChatRequest{Model: model, Messages: []inference.Message{inference.UserMessage("hi")}}
}

// A cooldown Redis holds as written is written once: a refresh compares
// it at the millisecond Redis keeps, so 20 refreshes of a Redis that never
// faulted write nothing more and refill nothing.
func TestAHealthyRedisIsNotRefilled(t *testing.T) {
	rdb := sharedRedis(t)
	// A timeout no refresh of a loaded machine exceeds: this is about
	// what is written, not about how fast.
	s := newStore(t, rdb, Options{Prefix: prefix(t), Refresh: 20 * time.Millisecond, Timeout: time.Second})
	require.NoError(t, s.Cool(t.Context(), "org/m:together", time.Now().Add(time.Minute)))
	require.Eventually(t, func() bool { return s.Stats().Writes >= 1 }, 2*time.Second, 2*time.Millisecond)
	from := s.Stats().Refreshes
	require.Eventually(t, func() bool { return s.Stats().Refreshes >= from+20 }, 10*time.Second, 5*time.Millisecond)
	st := s.Stats()
	t.Logf("one Cool, then %d refreshes: %+v", st.Refreshes-from, st)
	assert.Equal(t, int64(1), st.Writes, "one write")
	assert.Zero(t, st.Refilled, "nothing refilled")
	assert.Zero(t, st.RefreshesFailed)
}

// A replica misconfigured with MaxCooldown 24h writes a deadline an hour
// away; a replica with the default skips the candidate for at most its own
// MaxCooldown from when it read the deadline, refresh after refresh (the
// cap does not slide with each read).
func TestAReplicaCapsWhatItReads(t *testing.T) {
	rdb := sharedRedis(t)
	p := prefix(t)
	wrong := newStore(t, rdb, Options{Prefix: p, MaxCooldown: 24 * time.Hour})
	right := newStore(t, rdb, Options{Prefix: p, Refresh: 20 * time.Millisecond})
	hour := time.Now().Add(time.Hour)
	require.NoError(t, wrong.Cool(t.Context(), "org/m:together", hour))
	var first time.Time
	var read time.Time
	require.Eventually(t, func() bool {
		untils, _ := right.Lookup(t.Context(), []string{"org/m:together"}, time.Now())
		first, read = untils[0], time.Now()
		return !first.IsZero()
	}, 2*time.Second, 2*time.Millisecond)
	ms, err := rdb.Get(t.Context(), "{"+p+"}key:org/m:together").Int64()
	require.NoError(t, err)
	assert.WithinDuration(t, hour, time.UnixMilli(ms), time.Second, "Redis holds the misconfigured replica's hour")
	t.Logf("Redis holds %s; the replica with the default skips until %s from now", time.Until(time.UnixMilli(ms)).Round(time.Second), time.Until(first).Round(time.Second))
	assert.LessOrEqual(t, first, read.Add(DefaultMaxCooldown), "capped at its own MaxCooldown")

	from := right.Stats().Refreshes
	require.Eventually(t, func() bool { return right.Stats().Refreshes >= from+10 }, 5*time.Second, 5*time.Millisecond)
	untils, _ := right.Lookup(t.Context(), []string{"org/m:together"}, time.Now())
	assert.Equal(t, first, untils[0], "ten refreshes later, the same capped deadline")
}

// cooling reports, without a claim, whether key is cooling in s's local
// copy at now.
func (s *Store) cooling(key string, now time.Time) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.local[key].until.After(now)
}
