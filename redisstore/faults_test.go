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
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// These tests try to break the store's promises on real servers: a Redis
// that accepts and never answers, one frozen with SIGSTOP, one that
// refuses, one paused, one restarted empty, one out of memory, and a
// Cluster. Each asserts a bound on what a call waits for, and that
// cooldowns are shared again afterwards with no restart of the store.

// faultTimeout is the stores' Options.Timeout in these tests, and slack
// what scheduling on a busy two-core machine under -race may add.
const (
	faultTimeout = 50 * time.Millisecond
	slack        = 20 * time.Millisecond
)

// silentRedis is a listener that accepts connections and never answers,
// as a partition that drops packets or a frozen server looks to a client.
type silentRedis struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newSilentRedis(t *testing.T) *silentRedis {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &silentRedis{l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *silentRedis) addr() string { return s.l.Addr().String() }

// close ends the listener and its connections: go-redis's blocked reads
// end then, and their goroutines with them.
func (s *silentRedis) close() {
	s.l.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// godocClient is a go-redis client built exactly as the package godoc
// shows: no timeouts of ours, go-redis's own (5 s dial, 3 s read).
func godocClient(t *testing.T, addr string) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// failover is a router whose primary fails and whose fallback serves, and
// a way to make clients over it.
type failover struct {
	r *inferencetest.Router
}

func newFailover(t *testing.T) failover {
	r := inferencetest.NewRouter()
	t.Cleanup(r.Close)
	r.On("org/down", inferencetest.ProviderError(503))
	r.On("org/up", inferencetest.Reply("ok"))
	return failover{r: r}
}

// client cools for cooldown, so that calls spaced a little more find the
// cooldown just ended and claim the probe: the one Redis round trip on a
// call's path.
func (f failover) client(t *testing.T, store inference.CooldownStore, cooldown time.Duration) *inference.Client {
	opts := []inference.Option{inference.WithRetry(inference.RetryPolicy{}), inference.WithCooldown(cooldown),
		inference.WithFallback(inference.Candidate{Model: "org/up"})}
	if store != nil {
		opts = append(opts, inference.WithCooldownStore(store))
	}
	c, err := f.r.Client(opts...)
	require.NoError(t, err)
	return c
}

// slowest makes n failing calls, gap apart, and returns the slowest, less
// the stalls of the process during it (see stallWatch), and those stalls.
func slowest(t *testing.T, w *stallWatch, c *inference.Client, n int, gap time.Duration) (worst, stalled time.Duration) {
	for range n {
		start := time.Now()
		_, err := c.Chat(t.Context(), chatReq("org/down"))
		end := time.Now()
		require.NoError(t, err, "no call fails because of Redis")
		w.settle()
		s := w.during(start, end)
		if d := end.Sub(start) - s; d > worst {
			worst, stalled = d, s
		}
		time.Sleep(gap)
	}
	return worst, stalled
}

// assertBounded makes 15 failing calls through a client with store and
// through one without, and asserts that the slowest with the store is
// within the timeout (plus slack) of the slowest without, the stalls of
// the process on a loaded machine subtracted from each.
func assertBounded(t *testing.T, f failover, store *Store) {
	t.Helper()
	const cooldown, gap = 20 * time.Millisecond, 30 * time.Millisecond
	w := watchStalls(t)
	without, stalledWithout := slowest(t, w, f.client(t, nil, cooldown), 15, gap)
	claimsBefore := store.Stats().Claims
	with, stalledWith := slowest(t, w, f.client(t, store, cooldown), 15, gap)
	t.Logf("slowest of 15 failing calls: %s with the store, %s without (timeout %s), the process's stalls during each (%s, %s) subtracted; claims sent %d, timed out %d",
		with.Round(time.Millisecond), without.Round(time.Millisecond), faultTimeout, stalledWith.Round(time.Millisecond),
		stalledWithout.Round(time.Millisecond), store.Stats().Claims-claimsBefore, store.Stats().ClaimsTimedOut)
	assert.LessOrEqual(t, with, without+faultTimeout+slack, "a call waits for Redis at most the timeout")
	assert.Greater(t, store.Stats().Claims, claimsBefore, "the calls did go to Redis (probe claims)")
}

// storeGoroutines counts the goroutines running the store's code.
func storeGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		// Goroutines the store started, not the callers' own (a call
		// waiting on a claim runs the store's code in its goroutine).
		if bytes.Contains(g, []byte("created by github.com/hfkit/inference/redisstore.New")) ||
			bytes.Contains(g, []byte("created by github.com/hfkit/inference/redisstore.(*Store)")) {
			count++
		}
	}
	return count
}

// logBuffer is a logger whose lines a test reads.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func TestSilentRedis(t *testing.T) {
	silent := newSilentRedis(t)
	rdb := godocClient(t, silent.addr())
	var logs logBuffer
	w := watchStalls(t)

	start := time.Now()
	store := New(rdb, Options{Prefix: prefix(t), Timeout: faultTimeout, Refresh: 100 * time.Millisecond, Logger: logs.logger()})
	took := time.Since(start)
	w.settle()
	t.Logf("New returned in %s", took)
	assert.Less(t, took-w.during(start, start.Add(took)), 50*time.Millisecond, "New does not wait for Redis")

	f := newFailover(t)
	assertBounded(t, f, store)

	// 1,000 failing calls, 50 at a time: the store's goroutines stay
	// within its bound (the refresh loop and its one read, the writer,
	// two claims).
	c := f.client(t, store, time.Millisecond)
	var peak int
	var peakMu sync.Mutex
	sampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			select {
			case <-sampling:
				return
			case <-time.After(5 * time.Millisecond):
			}
			n := storeGoroutines()
			peakMu.Lock()
			peak = max(peak, n)
			peakMu.Unlock()
		}
	})
	work := make(chan int)
	var workers sync.WaitGroup
	for range 50 {
		workers.Go(func() {
			for range work {
				_, err := c.Chat(t.Context(), chatReq("org/down"))
				assert.NoError(t, err)
			}
		})
	}
	for i := range 1000 {
		work <- i
	}
	close(work)
	workers.Wait()
	close(sampling)
	sampler.Wait()
	after := storeGoroutines()
	stats := store.Stats()
	t.Logf("1,000 failing calls: at most %d goroutines in the store's code, %d after; stats %+v", peak, after, stats)
	assert.LessOrEqual(t, peak, 3+claimSlots, "the refresh loop and its read, the writer and the claims, however many calls")
	assert.LessOrEqual(t, after, 3+claimSlots)
	assert.Positive(t, stats.ClaimsTimedOut+stats.ClaimsSkipped)

	// The outage is logged once, in words an operator can act on, never
	// per call.
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "Redis did not answer") }, 4*time.Second, 10*time.Millisecond)
	assert.Equal(t, 1, strings.Count(logs.String(), "level=WARN"), logs.String())
	assert.Equal(t, int64(1), store.Stats().Outages)

	start = time.Now()
	require.NoError(t, store.Close())
	closed := time.Since(start)
	w.settle()
	stalled := w.during(start, start.Add(closed))
	t.Logf("Close returned in %s (the process stalled %s meanwhile)", closed, stalled)
	assert.LessOrEqual(t, closed-stalled, faultTimeout+slack, "Close returns within about the timeout")

	// The silent server goes away: go-redis's reads end, and every
	// goroutine of the store with them.
	silent.close()
	assert.Eventually(t, func() bool { return storeGoroutines() == 0 }, 6*time.Second, 20*time.Millisecond,
		"no goroutine of the store outlives the operation it waits on")
}

// Close called again while the store's last operations still wait on a
// silent Redis starts no goroutine: at 2383815 each call left one more
// waiting for the store's background work (three Closes, seven
// goroutines, over the five promised).
func TestCloseCalledAgainStartsNoGoroutine(t *testing.T) {
	silent := newSilentRedis(t)
	s := New(godocClient(t, silent.addr()), Options{Prefix: prefix(t), Timeout: faultTimeout, Refresh: 100 * time.Millisecond})
	for i := range 5 {
		k := fmt.Sprintf("org/m%d", i)
		justEnded(s, k)
		_, _ = s.Lookup(t.Context(), []string{k}, time.Now()) // the claims wait on the silent Redis
	}
	require.NoError(t, s.Cool(t.Context(), "org/x", time.Now().Add(time.Minute)))
	require.Eventually(t, func() bool { return storeGoroutines() == 3+claimSlots }, 2*time.Second, 5*time.Millisecond,
		"the refresh loop and its read, the writer, two claims")
	for range 3 {
		start := time.Now()
		require.NoError(t, s.Close())
		assert.Less(t, time.Since(start), faultTimeout+100*time.Millisecond, "each Close returns within about the timeout")
	}
	n := storeGoroutines()
	t.Logf("after three Closes: %d goroutines of the store", n)
	assert.LessOrEqual(t, n, 3+claimSlots, "the writer's last round trip, the read, two claims, and one wait for them")
	silent.close()
	assert.Eventually(t, func() bool { return storeGoroutines() == 0 }, 6*time.Second, 20*time.Millisecond)
}

func TestFrozenRedis(t *testing.T) {
	srv := ownRedis(t)
	rdb := godocClient(t, srv.addr())
	p := prefix(t)
	var logs logBuffer
	store := newStore(t, rdb, Options{Prefix: p, Timeout: faultTimeout, Refresh: 100 * time.Millisecond, Logger: logs.logger()})
	other := newStore(t, srv.client(t), Options{Prefix: p, Timeout: faultTimeout, Refresh: 100 * time.Millisecond})
	f := newFailover(t)
	require.Eventually(t, func() bool { return store.Stats().Refreshes > 0 }, time.Second, 5*time.Millisecond)

	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGSTOP))
	stopped := true
	defer func() {
		if stopped {
			_ = srv.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	assertBounded(t, f, store)
	// A cooldown written while Redis is frozen.
	require.NoError(t, store.Cool(t.Context(), "org/frozen", time.Now().Add(time.Minute)))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "Redis did not answer") }, 4*time.Second, 10*time.Millisecond)

	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGCONT))
	stopped = false
	require.Eventually(t, func() bool {
		untils, _ := other.Lookup(t.Context(), []string{"org/frozen"}, time.Now())
		return !untils[0].IsZero()
	}, 8*time.Second, 20*time.Millisecond, "what was cooled while Redis was frozen reaches the others")
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "Redis answers again") }, 8*time.Second, 20*time.Millisecond)
	assert.Equal(t, 1, strings.Count(logs.String(), "level=WARN"), logs.String())
	assertShared(t, store, other)
}

// assertShared checks that a cooldown written by one store now reaches
// another within the staleness bound.
func assertShared(t *testing.T, from, to *Store) {
	t.Helper()
	key := fmt.Sprintf("org/after-%d", time.Now().UnixNano())
	require.NoError(t, from.Cool(t.Context(), key, time.Now().Add(time.Minute)))
	require.Eventually(t, func() bool {
		untils, _ := to.Lookup(t.Context(), []string{key}, time.Now())
		return !untils[0].IsZero()
	}, 2*to.refresh+2*faultTimeout+500*time.Millisecond, 10*time.Millisecond, "sharing resumed without a restart")
}

func TestRedisRefusesConnections(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	var logs logBuffer
	w := watchStalls(t)
	start := time.Now()
	store := newStore(t, godocClient(t, addr), Options{Prefix: prefix(t), Timeout: faultTimeout, Refresh: 100 * time.Millisecond, Logger: logs.logger()})
	took := time.Since(start)
	w.settle()
	assert.Less(t, took-w.during(start, start.Add(took)), 50*time.Millisecond)
	assertBounded(t, newFailover(t), store)
	// The cause: go-redis reports the refusal only after its own dial
	// retries (about 2 s when nothing else waits on its pool, longer when
	// claims do); until then the store says Redis did not answer.
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "level=WARN") }, 4*time.Second, 10*time.Millisecond)
	assert.Regexp(t, "refused the connection|did not answer", logs.String())
	assert.Equal(t, 1, strings.Count(logs.String(), "level=WARN"), logs.String())
}

func TestPausedRedis(t *testing.T) {
	srv := ownRedis(t)
	p := prefix(t)
	admin := srv.client(t)
	store := newStore(t, godocClient(t, srv.addr()), Options{Prefix: p, Timeout: faultTimeout, Refresh: 100 * time.Millisecond})
	other := newStore(t, srv.client(t), Options{Prefix: p, Timeout: faultTimeout, Refresh: 100 * time.Millisecond})
	require.NoError(t, admin.Do(t.Context(), "CLIENT", "PAUSE", "1500", "ALL").Err())
	paused := time.Now()
	assertBounded(t, newFailover(t), store)
	require.Less(t, time.Since(paused), 1500*time.Millisecond, "the calls ran while Redis was paused")
	// The pause ends by itself (a PING waits for it); sharing goes on.
	require.NoError(t, admin.Ping(t.Context()).Err())
	assertShared(t, store, other)
}

func TestRedisRestartedEmpty(t *testing.T) {
	srv := ownRedis(t)
	p := prefix(t)
	a := newStore(t, srv.client(t), Options{Prefix: p, Timeout: faultTimeout, Refresh: 100 * time.Millisecond})
	require.NoError(t, a.Cool(t.Context(), "org/held", time.Now().Add(time.Minute)))
	require.Eventually(t, func() bool { return a.Stats().Writes > 0 }, time.Second, 5*time.Millisecond)

	srv.kill()
	srv.start(t) // empty: no persistence
	b := newStore(t, srv.client(t), Options{Prefix: p, Timeout: faultTimeout, Refresh: 100 * time.Millisecond})
	start := time.Now()
	require.Eventually(t, func() bool {
		untils, _ := b.Lookup(t.Context(), []string{"org/held"}, time.Now())
		return !untils[0].IsZero()
	}, 3*time.Second, 10*time.Millisecond, "A pushes what it holds to the empty Redis")
	t.Logf("refilled %s after the restart (refresh 100ms); A's stats %+v", time.Since(start).Round(time.Millisecond), a.Stats())
	assert.Positive(t, a.Stats().Refilled)
}

func TestRedisFlushedIsRefilled(t *testing.T) {
	rdb := sharedRedis(t)
	p := prefix(t)
	a := newStore(t, rdb, Options{Prefix: p, Refresh: 100 * time.Millisecond})
	b := newStore(t, rdb, Options{Prefix: p, Refresh: 100 * time.Millisecond})
	require.NoError(t, a.Cool(t.Context(), "org/held", time.Now().Add(time.Minute)))
	require.Eventually(t, func() bool { return a.Stats().Writes > 0 }, time.Second, 5*time.Millisecond)
	// Delete the store's keys, as FLUSHALL or an eviction would.
	keys, err := rdb.Keys(t.Context(), "{"+p+"}*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	require.NoError(t, rdb.Del(t.Context(), keys...).Err())
	require.Eventually(t, func() bool {
		n, _ := rdb.Exists(t.Context(), "{"+p+"}key:org/held").Result()
		return n == 1
	}, 3*a.refresh+time.Second, 10*time.Millisecond, "within a refresh or two the cooldown is back")
	require.Eventually(t, func() bool {
		untils, _ := b.Lookup(t.Context(), []string{"org/held"}, time.Now())
		return !untils[0].IsZero()
	}, 3*b.refresh+time.Second, 10*time.Millisecond, "and the other replica sees it again")
}

func TestRedisOutOfMemory(t *testing.T) {
	srv := ownRedis(t, "--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
	admin := srv.client(t)
	// Fill the keyspace until Redis refuses writes.
	filler := strings.Repeat("x", 64<<10)
	for i := 0; ; i++ {
		err := admin.Set(t.Context(), fmt.Sprintf("filler:%d", i), filler, 0).Err()
		if err != nil {
			require.Contains(t, err.Error(), "OOM")
			break
		}
		require.Less(t, i, 10000, "Redis never ran out of memory")
	}
	p := prefix(t)
	var logs logBuffer
	store := newStore(t, godocClient(t, srv.addr()), Options{Prefix: p, Timeout: faultTimeout, Refresh: 100 * time.Millisecond, Logger: logs.logger()})
	other := newStore(t, srv.client(t), Options{Prefix: p, Timeout: faultTimeout, Refresh: 100 * time.Millisecond})
	assertBounded(t, newFailover(t), store)
	require.NoError(t, store.Cool(t.Context(), "org/held", time.Now().Add(time.Minute)))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "out of memory") }, 2*time.Second, 10*time.Millisecond)
	assert.Equal(t, 1, strings.Count(logs.String(), "level=WARN"), logs.String())
	assert.Positive(t, store.Stats().WritesFailed)

	// Memory freed: what was refused reaches Redis, and sharing resumes.
	require.NoError(t, admin.FlushAll(t.Context()).Err())
	require.Eventually(t, func() bool {
		untils, _ := other.Lookup(t.Context(), []string{"org/held"}, time.Now())
		return !untils[0].IsZero()
	}, 3*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "Redis answers again") }, 3*time.Second, 10*time.Millisecond)
	assertShared(t, store, other)
}

// A cooldown that ended before the writer sent it (a short one, a busy
// machine) is not written: the script returns before it writes. That is
// no write, and says nothing of whether Redis takes writes: at 2383815 it
// counted in Writes, and, Redis out of memory, logged "Redis answers
// again" and then the outage once more (TestRedisOutOfMemory failed so
// on a loaded machine).
func TestACooldownEndedBeforeItsWriteIsNoWrite(t *testing.T) {
	srv := ownRedis(t, "--maxmemory-policy", "noeviction")
	admin := srv.client(t)
	var logs logBuffer
	s := newStore(t, srv.client(t), Options{Prefix: prefix(t), Timeout: time.Second, Refresh: time.Hour, Logger: logs.logger()})
	ended := func(key string) {
		s.queue.put(key, time.Now().Add(-time.Second), &s.health) // as if Cool had queued it a second ago
	}
	ended("org/healthy")
	require.Eventually(t, func() bool { return s.queue.idle() }, 2*time.Second, time.Millisecond)
	assert.Zero(t, s.Stats().Writes, "nothing written")

	require.NoError(t, admin.ConfigSet(t.Context(), "maxmemory", "1").Err()) // out of memory
	require.NoError(t, s.Cool(t.Context(), "org/refused", time.Now().Add(time.Minute)))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "out of memory") }, 2*time.Second, time.Millisecond)
	ended("org/ended")
	require.Eventually(t, func() bool { return s.queue.idle() }, 2*time.Second, time.Millisecond)
	assert.NotContains(t, logs.String(), "answers again", "still out of memory")
	assert.True(t, s.Stats().Down)
	assert.Zero(t, s.Stats().Writes)
	require.NoError(t, admin.ConfigSet(t.Context(), "maxmemory", "0").Err())
}

// A probe claim that Redis answers without writing (the candidate cools
// again, another replica holds the lease, a probe served) says nothing of
// whether Redis takes writes: out of memory, at 2383815, such a claim
// logged "Redis answers again", and the next write the outage once more.
func TestAClaimThatWritesNothingSaysNothingOfWrites(t *testing.T) {
	srv := ownRedis(t, "--maxmemory-policy", "noeviction")
	admin := srv.client(t)
	var logs logBuffer
	s := newStore(t, srv.client(t), Options{Prefix: prefix(t), Timeout: time.Second, Refresh: time.Hour, Logger: logs.logger()})
	require.NoError(t, s.Cool(t.Context(), "org/cooling", time.Now().Add(time.Minute)))
	require.Eventually(t, func() bool { return s.Stats().Writes == 1 }, 2*time.Second, time.Millisecond)

	require.NoError(t, admin.ConfigSet(t.Context(), "maxmemory", "1").Err()) // out of memory
	defer admin.ConfigSet(context.Background(), "maxmemory", "0")
	require.NoError(t, s.Cool(t.Context(), "org/refused", time.Now().Add(time.Minute)))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "out of memory") }, 2*time.Second, time.Millisecond)

	// This replica takes the cooldown for ended (as a replica that had
	// not read it would): its claim finds it cooling in Redis.
	justEnded(s, "org/cooling")
	now := time.Now()
	untils, _ := s.Lookup(t.Context(), []string{"org/cooling"}, now)
	require.True(t, untils[0].After(now), "cooling again, as Redis says")
	assert.NotContains(t, logs.String(), "answers again", "still out of memory")
	assert.True(t, s.Stats().Down)
}

// Nor does a renewal that finds another replica's lease (it writes
// nothing): out of memory, at 2383815, it logged "Redis answers again".
func TestARenewalThatWritesNothingSaysNothingOfWrites(t *testing.T) {
	srv := ownRedis(t, "--maxmemory-policy", "noeviction")
	admin := srv.client(t)
	var logs logBuffer
	s := newStore(t, srv.client(t), Options{Prefix: prefix(t), Timeout: 100 * time.Millisecond, Refresh: 200 * time.Millisecond, Logger: logs.logger()})
	justEnded(s, "org/probed")
	now := time.Now()
	untils, _ := s.Lookup(t.Context(), []string{"org/probed"}, now)
	require.Equal(t, now, untils[0], "this replica probes it")
	// Its lease is lost and taken by another replica, then Redis runs out
	// of memory.
	require.NoError(t, admin.Set(t.Context(), s.leaseKey("org/probed"), "another replica's", time.Minute).Err())
	require.NoError(t, admin.ConfigSet(t.Context(), "maxmemory", "1").Err())
	defer admin.ConfigSet(context.Background(), "maxmemory", "0")
	require.NoError(t, s.Cool(t.Context(), "org/refused", time.Now().Add(time.Minute)))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "out of memory") }, 2*time.Second, time.Millisecond)
	require.Eventually(t, func() bool {
		s.mu.RLock()
		defer s.mu.RUnlock()
		return !s.mine["org/probed"].leased
	}, 2*time.Second, time.Millisecond, "a renewal found the other's lease")
	s.Close() // the writer's round trip is over, and told
	assert.NotContains(t, logs.String(), "answers again", "still out of memory")
	assert.True(t, s.Stats().Down)
}

// cluster is three redis-servers with --cluster-enabled yes, joined into
// one Cluster with redis-cli --cluster create: the addresses in
// REDIS_CLUSTER_ADDRS (.ci/run starts one), else one of the test's own.
func cluster(t *testing.T) []string {
	if env := os.Getenv("REDIS_CLUSTER_ADDRS"); env != "" {
		return strings.Split(env, ",")
	}
	if os.Getenv("CI") != "" {
		t.Fatal("REDIS_CLUSTER_ADDRS is not set: .ci/run starts a three-node Redis Cluster and sets it")
	}
	var addrs []string
	for _, srv := range ownCluster(t) {
		addrs = append(addrs, srv.addr())
	}
	return addrs
}

// ownCluster is three redis-servers of the test's own joined into one
// Cluster, which the test may stop and start again (each keeps its
// nodes.conf, and so its place in the Cluster).
func ownCluster(t *testing.T) []*server {
	var servers []*server
	var addrs []string
	for range 3 {
		srv := ownRedisAt(t, clusterPort(t), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
		servers = append(servers, srv)
		addrs = append(addrs, srv.addr())
	}
	args := append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	// Every node must see the cluster whole, not only the first.
	for _, addr := range addrs {
		require.Eventually(t, func() bool { return clusterOK(addr) }, 10*time.Second, 50*time.Millisecond)
	}
	return servers
}

// clusterOK reports whether the node at addr sees the Cluster serving
// every slot.
func clusterOK(addr string) bool {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	info, err := rdb.ClusterInfo(context.Background()).Result()
	return err == nil && strings.Contains(info, "cluster_state:ok")
}

// clusterPort is a free port whose cluster bus port (+10000) is free too,
// and so below 55536.
func clusterPort(t *testing.T) int {
	for range 100 {
		p := 20000 + rand.IntN(30000)
		a, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		b, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000))
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		return p
	}
	t.Fatal("no free port pair for a Cluster node")
	return 0
}

func TestCluster(t *testing.T) {
	addrs := cluster(t)
	p := prefix(t)
	var logs logBuffer
	const refresh = 100 * time.Millisecond
	stores := make([]*Store, 3)
	for i := range stores {
		rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
		t.Cleanup(func() { rdb.Close() })
		stores[i] = newStore(t, rdb, Options{Prefix: p, Refresh: refresh, Logger: logs.logger()})
	}
	// Two replicas write; the third sees both within the staleness bound.
	require.NoError(t, stores[0].Cool(t.Context(), "org/a:together", time.Now().Add(time.Minute)))
	require.NoError(t, stores[1].Cool(t.Context(), "org/b:groq", time.Now().Add(time.Minute)))
	written := time.Now()
	var seenAfter time.Duration
	require.Eventually(t, func() bool {
		untils, _ := stores[2].Lookup(t.Context(), []string{"org/a:together", "org/b:groq"}, time.Now())
		if !untils[0].IsZero() && !untils[1].IsZero() {
			seenAfter = time.Since(written)
			return true
		}
		return false
	}, 2*time.Second, 5*time.Millisecond)
	t.Logf("the third replica saw both cooldowns %s after they were written (refresh %s)", seenAfter.Round(time.Millisecond), refresh)
	assert.LessOrEqual(t, seenAfter, refresh+2*DefaultTimeout+slack, "within the staleness bound")
	// The probe claim goes through the Cluster too.
	justEnded(stores[0], "org/ended")
	now := time.Now()
	untils, _ := stores[0].Lookup(t.Context(), []string{"org/ended"}, now)
	assert.Equal(t, now, untils[0], "this replica claimed the probe: the call is given it")
	assert.Equal(t, int64(1), stores[0].Stats().ClaimsWon)
	assertBounded(t, newFailover(t), stores[0])
	for _, s := range stores {
		st := s.Stats()
		assert.Zero(t, st.Outages, "%+v", st)
		assert.Zero(t, st.WritesFailed)
	}
	assert.NotContains(t, logs.String(), "CROSSSLOT")
	assert.NotContains(t, logs.String(), "level=WARN")
}

// justEnded makes key's cooldown end a moment ago in s's local copy, as if
// a refresh had read it: the next lookup claims its probe.
func justEnded(s *Store, key string) {
	ended := time.UnixMilli(time.Now().Add(-time.Millisecond).UnixMilli())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.local[key] = entry{until: ended, raw: ended}
}

// Empty never says nothing is cooling while a cooldown is held, however
// refreshes and writes interleave.
func TestEmptyNeverHidesAHeldCooldown(t *testing.T) {
	rdb := sharedRedis(t)
	s := newStore(t, rdb, Options{Prefix: prefix(t), Refresh: time.Millisecond})
	deadline := time.Now().Add(300 * time.Millisecond)
	for i := 0; time.Now().Before(deadline); i++ {
		until := time.Now().Add(time.Minute)
		require.NoError(t, s.Cool(t.Context(), fmt.Sprintf("org/m%d", i), until))
		require.False(t, s.Empty(), "a cooldown is held")
		s.sync() // a refresh between keep and the next check
		require.False(t, s.Empty(), "a cooldown is held after a refresh")
	}
}

// A replica whose clock runs ahead does not prune the others' live
// entries: pruning uses Redis's clock.
func TestAClockAheadDoesNotPruneOthers(t *testing.T) {
	rdb := sharedRedis(t)
	p := prefix(t)
	a := newStore(t, rdb, Options{Prefix: p})
	require.NoError(t, a.Cool(t.Context(), "org/live", time.Now().Add(30*time.Second)))
	require.Eventually(t, func() bool { return a.Stats().Writes >= 1 }, time.Second, 5*time.Millisecond)
	// A replica an hour ahead writes its own cooldown: with its clock,
	// "ended a lease ago" would cover org/live.
	ahead := time.Now().Add(time.Hour)
	require.NoError(t, a.write(map[string]time.Time{"org/ahead": ahead.Add(time.Second)}))
	score, err := rdb.ZScore(t.Context(), "{"+p+"}index", "org/live").Result()
	require.NoError(t, err, "org/live is still indexed")
	assert.Positive(t, score)
	n, err := rdb.Exists(t.Context(), "{"+p+"}key:org/live").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	// And the replica ahead cannot write a deadline past the maximum.
	ms, err := rdb.Get(t.Context(), "{"+p+"}key:org/ahead").Int64()
	require.NoError(t, err)
	assert.LessOrEqual(t, time.UnixMilli(ms), time.Now().Add(DefaultMaxCooldown+time.Second))
}

// A deadline further than MaxCooldown is shortened, locally and in Redis.
func TestStoreCapsDeadlines(t *testing.T) {
	rdb := sharedRedis(t)
	p := prefix(t)
	s := newStore(t, rdb, Options{Prefix: p, MaxCooldown: time.Minute})
	require.NoError(t, s.Cool(t.Context(), "org/m", time.Date(2100, 12, 31, 23, 59, 59, 0, time.UTC)))
	untils, _ := s.Lookup(t.Context(), []string{"org/m"}, time.Now())
	assert.WithinDuration(t, time.Now().Add(time.Minute), untils[0], 2*time.Second)
	require.Eventually(t, func() bool { return s.Stats().Writes >= 1 }, time.Second, 5*time.Millisecond)
	ms, err := rdb.Get(t.Context(), "{"+p+"}key:org/m").Int64()
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(time.Minute), time.UnixMilli(ms), 2*time.Second)
}

// A full queue drops its oldest write and counts it; a burst of failures
// of one candidate is one write.
func TestWriteQueueCoalescesAndDrops(t *testing.T) {
	silent := newSilentRedis(t)
	s := New(godocClient(t, silent.addr()), Options{Prefix: prefix(t), Queue: 4, Timeout: faultTimeout})
	defer func() {
		s.Close()
		silent.close()
	}()
	// The writer takes the first write and blocks on the silent Redis.
	require.NoError(t, s.Cool(t.Context(), "org/first", time.Now().Add(time.Minute)))
	require.Eventually(t, func() bool {
		s.queue.mu.Lock()
		defer s.queue.mu.Unlock()
		return len(s.queue.pending) == 0
	}, time.Second, time.Millisecond)
	for i := range 100 {
		require.NoError(t, s.Cool(t.Context(), "org/burst", time.Now().Add(time.Duration(i)*time.Second+time.Minute)))
	}
	s.queue.mu.Lock()
	assert.Len(t, s.queue.pending, 1, "one write per candidate")
	s.queue.mu.Unlock()
	for i := range 6 {
		require.NoError(t, s.Cool(t.Context(), fmt.Sprintf("org/m%d", i), time.Now().Add(time.Minute)))
	}
	s.queue.mu.Lock()
	_, burst := s.queue.pending["org/burst"]
	n := len(s.queue.pending)
	s.queue.mu.Unlock()
	assert.Equal(t, 4, n)
	assert.False(t, burst, "the oldest was dropped")
	assert.Equal(t, int64(3), s.Stats().WritesDropped)
}

// The client's logger hears the store's outages when the store has none.
func TestOutagesReachTheClientsLogger(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	var logs logBuffer
	store := newStore(t, godocClient(t, addr), Options{Prefix: prefix(t), Refresh: 50 * time.Millisecond})
	_, err = inference.NewClient(inference.WithCooldownStore(store), inference.WithLogger(logs.logger()))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "redisstore: Redis refused the connection") },
		5*time.Second, 10*time.Millisecond)
}

// fitReplica reports whether Sentinel would promote this replica (as
// SENTINEL REPLICAS describes it): not down or disconnected, linked to its
// primary, pinged and read (INFO) recently.
func fitReplica(r map[string]string) bool {
	ms := func(field string) int64 {
		var n int64
		if _, err := fmt.Sscan(r[field], &n); err != nil {
			return 1 << 62
		}
		return n
	}
	return r["flags"] == "slave" && r["master-link-status"] == "ok" && r["slave-priority"] != "0" &&
		ms("info-refresh") < 10_000 && ms("last-ok-ping-reply") < 2_000 && ms("master-link-down-time") == 0
}

// TestSentinelFailover checks the godoc's word that a FailoverClient needs
// no special code: two stores share through a primary that Sentinel
// watches, the primary is failed over to its replica, and cooldowns are
// shared again through the new primary, with no restart.
func TestSentinelFailover(t *testing.T) {
	primary := ownRedis(t)
	replica := ownRedis(t, "--replicaof", "127.0.0.1", "0") // pointed at the primary below
	admin := replica.client(t)
	require.NoError(t, admin.Do(t.Context(), "REPLICAOF", "127.0.0.1", fmt.Sprint(primary.port)).Err())
	require.Eventually(t, func() bool {
		info, _ := admin.Info(t.Context(), "replication").Result()
		return strings.Contains(info, "master_link_status:up")
	}, 10*time.Second, 20*time.Millisecond)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	sentinelPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor hfkit 127.0.0.1 %d 1\n"+
		"sentinel down-after-milliseconds hfkit 1000\nsentinel failover-timeout hfkit 5000\n", sentinelPort, dir, primary.port)
	confPath := dir + "/sentinel.conf"
	require.NoError(t, os.WriteFile(confPath, []byte(conf), 0o600))
	sentinel := exec.Command("redis-server", confPath, "--sentinel")
	require.NoError(t, sentinel.Start())
	t.Cleanup(func() {
		_ = sentinel.Process.Kill()
		_ = sentinel.Wait()
	})
	sentinelAddr := fmt.Sprintf("127.0.0.1:%d", sentinelPort)
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinelAddr})
	t.Cleanup(func() { sc.Close() })
	// A failover picks only a replica Sentinel finds fit: linked to the
	// primary, answering its pings, and whose INFO it has read (until
	// then "info-refresh" counts from 1970). Asking earlier, on a busy
	// machine, gets NOGOODSLAVE: wait for that state, not for a time.
	var seen []map[string]string
	require.Eventually(t, func() bool {
		replicas, err := sc.Replicas(t.Context(), "hfkit").Result()
		seen = replicas
		return err == nil && len(replicas) == 1 && fitReplica(replicas[0])
	}, 30*time.Second, 50*time.Millisecond, "Sentinel knows the replica fit to be promoted: %v", &seen)

	p := prefix(t)
	failoverStore := func() *Store {
		rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "hfkit", SentinelAddrs: []string{sentinelAddr}})
		t.Cleanup(func() { rdb.Close() })
		return newStore(t, rdb, Options{Prefix: p, Refresh: 100 * time.Millisecond, Timeout: faultTimeout})
	}
	a, b := failoverStore(), failoverStore()
	assertShared(t, a, b)

	require.NoError(t, sc.Failover(t.Context(), "hfkit").Err())
	replicaAddr := fmt.Sprint(replica.port)
	require.Eventually(t, func() bool {
		addr, err := sc.GetMasterAddrByName(t.Context(), "hfkit").Result()
		return err == nil && addr[1] == replicaAddr
	}, 15*time.Second, 50*time.Millisecond, "Sentinel promoted the replica")
	// Sharing resumes through the new primary.
	key := fmt.Sprintf("org/after-failover-%d", time.Now().UnixNano())
	require.Eventually(t, func() bool {
		require.NoError(t, a.Cool(t.Context(), key, time.Now().Add(time.Minute)))
		untils, _ := b.Lookup(t.Context(), []string{key}, time.Now())
		return !untils[0].IsZero()
	}, 15*time.Second, 100*time.Millisecond, "cooldowns are shared through the new primary")
	// A write that reached the old primary in the moment before it was
	// demoted is lost when it resyncs; the refresh finds it missing and
	// writes it again, on the new primary.
	assert.Eventually(t, func() bool {
		n, err := admin.Exists(t.Context(), "{"+p+"}key:"+key).Result()
		return err == nil && n == 1
	}, 10*time.Second, 50*time.Millisecond, "on the promoted replica")
	t.Logf("after the failover: A %+v; B %+v", a.Stats(), b.Stats())
}

// TestAnOutageIsNoticedWithinRefreshAndTimeout freezes (SIGSTOP) or kills
// a Redis that no call is using (no probe claim to notice it): the store,
// over a go-redis client built as the godoc shows (5 s dial, 3 s read
// timeouts), reports the outage in Stats and in one WARN line within
// Refresh + Timeout, with its cause in the right words, goes on counting
// refreshes while Redis is away, and says once when it answers again.
func TestAnOutageIsNoticedWithinRefreshAndTimeout(t *testing.T) {
	const refresh = 100 * time.Millisecond
	for _, fault := range []struct {
		name, words string
		start, end  func(t *testing.T, srv *server)
	}{
		{"frozen", "Redis did not answer within 50ms",
			func(t *testing.T, srv *server) { require.NoError(t, srv.cmd.Process.Signal(syscall.SIGSTOP)) },
			func(t *testing.T, srv *server) { require.NoError(t, srv.cmd.Process.Signal(syscall.SIGCONT)) }},
		{"killed", "Redis refused the connection",
			func(t *testing.T, srv *server) { srv.kill() },
			func(t *testing.T, srv *server) { srv.start(t) }},
	} {
		t.Run(fault.name, func(t *testing.T) {
			srv := ownRedis(t)
			var logs logBuffer
			store := newStore(t, godocClient(t, srv.addr()), Options{Prefix: prefix(t), Refresh: refresh, Timeout: faultTimeout, Logger: logs.logger()})
			require.Eventually(t, func() bool { return store.Stats().Refreshes >= 2 }, 2*time.Second, time.Millisecond)
			require.False(t, store.Stats().Down)

			w := watchStalls(t)
			fault.start(t, srv)
			ended := false
			defer func() {
				if !ended {
					fault.end(t, srv)
				}
			}()
			at := time.Now()
			var down, logged time.Duration
			require.Eventually(t, func() bool {
				if down == 0 && store.Stats().Down {
					down = time.Since(at)
				}
				if logged == 0 && strings.Contains(logs.String(), "level=WARN") {
					logged = time.Since(at)
				}
				return down > 0 && logged > 0
			}, 5*time.Second, time.Millisecond, "the outage is noticed")
			w.settle()
			stalledDown, stalledLog := w.during(at, at.Add(down)), w.during(at, at.Add(logged))
			from := store.Stats().Refreshes
			require.Eventually(t, func() bool { return store.Stats().Refreshes >= from+5 }, 5*refresh+time.Second, time.Millisecond,
				"refreshes go on being counted while Redis is away")
			st := store.Stats()
			t.Logf("%s: Stats().Down %s after, the WARN %s after (Refresh %s + Timeout %s; the process stalled %s meanwhile); %+v", fault.name,
				down.Round(time.Millisecond), logged.Round(time.Millisecond), refresh, faultTimeout, stalledLog.Round(time.Millisecond), st)
			assert.LessOrEqual(t, down-stalledDown, refresh+faultTimeout+slack, "Stats say so within Refresh + Timeout")
			assert.LessOrEqual(t, logged-stalledLog, refresh+faultTimeout+slack, "and the log")
			assert.Contains(t, logs.String(), fault.words)
			assert.Contains(t, st.Cause, fault.words)
			assert.Equal(t, int64(1), st.Outages)
			assert.Positive(t, st.RefreshesFailed)

			fault.end(t, srv)
			ended = true
			require.Eventually(t, func() bool { return strings.Contains(logs.String(), "Redis answers again") }, 8*time.Second, 5*time.Millisecond)
			assert.False(t, store.Stats().Down)
			assert.Equal(t, 1, strings.Count(logs.String(), "level=WARN"), logs.String())
			assert.Equal(t, int64(1), store.Stats().Outages)
		})
	}
}
