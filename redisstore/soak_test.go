package redisstore

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// The chaos soak: N replicas (REDISSTORE_SOAK_REPLICAS, 6 by default),
// each with its own client and its own go-redis client built as the
// package godoc shows, share one Redis while two providers fail for
// periods (one fails at once, one after half a second) and a schedule of
// faults hits Redis: SIGSTOP, kill -9 and restart empty, CLIENT PAUSE,
// FLUSHALL, maxmemory; then the same over a three-node Cluster whose
// master of the store's slot is killed and started again. It runs for
// REDISSTORE_SOAK (a duration: .ci/run runs 30s; RELIABILITY.md has the
// table of a 5m run), two thirds on one redis-server, a third on the
// Cluster, prints a table and asserts:
//
//   - no error reached a caller (a fallback always serves);
//   - no call waited for the store longer than Timeout + 20 ms;
//   - while Redis is healthy, once every replica knows a provider is down,
//     about one probe per window of it (a cooldown plus the time a probe
//     takes to fail) reaches it: at most 1.2 on average, for each;
//   - no goroutine of the stores is left after Close.

const (
	soakRefresh  = 100 * time.Millisecond
	soakTimeout  = 50 * time.Millisecond
	soakCooldown = time.Second
	soakSlow     = 500 * time.Millisecond // the slow provider fails after this
	soakInterval = 10 * time.Millisecond  // a call, fleet-wide
	// soakMargin is how long after a fault ends, or after a replica last
	// said Redis was down, Redis is not yet counted healthy: the time for
	// every replica to refresh its copy.
	soakMargin = 2*soakRefresh + soakRefresh + soakTimeout
)

func TestChaosSoak(t *testing.T) {
	env := os.Getenv("REDISSTORE_SOAK")
	if env == "" {
		t.Skip("set REDISSTORE_SOAK to a duration (30s in .ci/run; 5m for RELIABILITY.md) to run the chaos soak")
	}
	total, err := time.ParseDuration(env)
	require.NoError(t, err, "REDISSTORE_SOAK is a duration, such as 30s")
	require.GreaterOrEqual(t, total, 20*time.Second, "the soak needs room for its schedule")
	replicas := 6
	if n := os.Getenv("REDISSTORE_SOAK_REPLICAS"); n != "" {
		replicas, err = strconv.Atoi(n)
		require.NoError(t, err)
		require.Positive(t, replicas)
	}

	var results []soakResult
	t.Run("one redis-server", func(t *testing.T) {
		srv := ownRedis(t)
		admin := godocClient(t, srv.addr()) // retries: its connection dies with the server
		pauseFor := time.Second
		faults := []soakFault{
			{"SIGSTOP", 1500 * time.Millisecond,
				func() error { return srv.cmd.Process.Signal(syscall.SIGSTOP) },
				func() error { return srv.cmd.Process.Signal(syscall.SIGCONT) }},
			{"kill -9, restart empty", 500 * time.Millisecond,
				func() error { srv.kill(); return nil },
				func() error { return srv.restart() }},
			{"CLIENT PAUSE", pauseFor,
				func() error {
					return admin.Do(context.Background(), "CLIENT", "PAUSE", strconv.Itoa(int(pauseFor.Milliseconds())), "ALL").Err()
				},
				func() error { return admin.Ping(context.Background()).Err() }}, // waits for the pause to end
			{"FLUSHALL", 0,
				func() error { return admin.FlushAll(context.Background()).Err() },
				func() error { return nil }},
			{"maxmemory (out of memory)", 1500 * time.Millisecond,
				func() error { return admin.ConfigSet(context.Background(), "maxmemory", "1").Err() },
				func() error { return admin.ConfigSet(context.Background(), "maxmemory", "0").Err() }},
		}
		results = append(results, runSoak(t, soakConfig{
			name: "one redis-server", replicas: replicas, duration: total * 2 / 3, faults: faults,
			client: func() redis.UniversalClient { return godocClient(t, srv.addr()) },
		}))
	})
	t.Run("three-node Cluster", func(t *testing.T) {
		nodes := ownCluster(t)
		var addrs []string
		for _, n := range nodes {
			addrs = append(addrs, n.addr())
		}
		p := prefix(t)
		var killed *server
		faults := []soakFault{{"Cluster: the master of the store's slot killed -9, restarted", 1500 * time.Millisecond,
			func() error {
				killed = masterOf(t, nodes, "{"+p+"}index")
				if killed == nil {
					return fmt.Errorf("no master serves the store's slot")
				}
				killed.kill()
				return nil
			},
			func() error {
				if err := killed.restart(); err != nil {
					return err
				}
				deadline := time.Now().Add(15 * time.Second)
				for _, a := range addrs {
					for !clusterOK(a) {
						if time.Now().After(deadline) {
							return fmt.Errorf("the Cluster is not whole again after 15s")
						}
						time.Sleep(20 * time.Millisecond)
					}
				}
				return nil
			}}}
		results = append(results, runSoak(t, soakConfig{
			name: "three-node Cluster", replicas: replicas, duration: total - total*2/3, faults: faults, prefix: p,
			client: func() redis.UniversalClient {
				rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
				t.Cleanup(func() { rdb.Close() })
				return rdb
			},
		}))
	})
	t.Log(soakTable(total, replicas, results))
	require.Len(t, results, 2, "both phases ran")
	assertProbesPerWindow(t, results)
}

// soakFault is a fault on Redis: started, held, ended.
type soakFault struct {
	name       string
	hold       time.Duration
	start, end func() error
}

type soakConfig struct {
	name     string
	replicas int
	duration time.Duration
	faults   []soakFault
	client   func() redis.UniversalClient
	prefix   string // "" for a fresh one
}

// soakResult is what one phase of the soak measured.
type soakResult struct {
	name          string
	calls, errors int64
	firstErrors   []string
	longestWait   time.Duration
	// worstWait is the longest wait less the process's stalls during it
	// (worstStalled): the store's own share.
	worstWait, worstStalled time.Duration
	faults                  map[string]int
	fast, slow              probeCount
	goroutines              int
	stats                   Stats
	warnings, recovered     int
	healthy, duration       time.Duration
}

// probeCount is what one failing provider saw.
type probeCount struct {
	cycle time.Duration // a window: a cooldown plus the time a probe takes to fail
	// probes reached it while it was down, Redis was healthy and every
	// replica knew; windows is the time of that, in windows.
	probes  int
	windows float64
	// learning: before every replica knew; faulted: while Redis was not
	// healthy (each replica probes on its own then).
	learning, faulted int
}

func (p probeCount) perWindow() float64 {
	if p.windows == 0 {
		return 0
	}
	return float64(p.probes) / p.windows
}

// timedStore measures how long each call waits for the store.
type timedStore struct {
	*Store
	waits *waits
}

// waits are the longest waits on the stores, and each wait longer than
// the timeout, for the stalls of the process during it to be subtracted.
type waits struct {
	mu      sync.Mutex
	longest time.Duration
	long    []interval
}

func (s timedStore) note(start time.Time) {
	end := time.Now()
	d := end.Sub(start)
	s.waits.mu.Lock()
	defer s.waits.mu.Unlock()
	s.waits.longest = max(s.waits.longest, d)
	if d > soakTimeout {
		s.waits.long = append(s.waits.long, interval{start, end})
	}
}

// worst is the longest wait less the stalls of the process during it,
// and those stalls.
func (w *waits) worst(stalls *stallWatch) (worst, stalled time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	worst = min(w.longest, soakTimeout)
	for _, iv := range w.long {
		s := stalls.during(iv.from, iv.to)
		if d := iv.to.Sub(iv.from) - s; d > worst {
			worst, stalled = d, s
		}
	}
	return worst, stalled
}

func (s timedStore) Lookup(ctx context.Context, keys []string, now time.Time) ([]time.Time, error) {
	defer s.note(time.Now())
	return s.Store.Lookup(ctx, keys, now)
}

func (s timedStore) Cool(ctx context.Context, key string, until time.Time) error {
	defer s.note(time.Now())
	return s.Store.Cool(ctx, key, until)
}

func (s timedStore) Release(key string, served bool) {
	defer s.note(time.Now())
	s.Store.Release(key, served)
}

// interval is [from, to).
type interval struct{ from, to time.Time }

// downSchedule says when a provider fails: for the first down of every
// period, from offset.
type downSchedule struct {
	period, down, offset time.Duration
}

func (d downSchedule) isDown(since time.Duration) bool {
	if since < d.offset {
		return false
	}
	return (since-d.offset)%d.period < d.down
}

// periods lists the down periods within [start, start+length).
func (d downSchedule) periods(start time.Time, length time.Duration) []interval {
	var out []interval
	for at := d.offset; at < length; at += d.period {
		out = append(out, interval{start.Add(at), start.Add(min(at+d.down, length))})
	}
	return out
}

func runSoak(t *testing.T, cfg soakConfig) soakResult {
	res := soakResult{name: cfg.name, faults: map[string]int{}, duration: cfg.duration}
	schedules := map[string]downSchedule{
		"org/fast": {period: 7 * time.Second, down: 5 * time.Second, offset: 500 * time.Millisecond},
		"org/slow": {period: 9 * time.Second, down: 6 * time.Second, offset: 1500 * time.Millisecond},
	}
	r := inferencetest.NewRouter()
	t.Cleanup(r.Close)
	var start time.Time
	var started atomic.Bool
	provider := func(name string, fail inferencetest.Answer) inferencetest.Answer {
		return func(w http.ResponseWriter, req *inferencetest.Request) {
			if started.Load() && schedules[name].isDown(time.Since(start)) {
				fail(w, req)
				return
			}
			inferencetest.Reply("from "+name)(w, req)
		}
	}
	r.On("org/fast", provider("org/fast", inferencetest.ProviderError(503)))
	r.On("org/slow", provider("org/slow", inferencetest.Delay(soakSlow, inferencetest.ProviderError(503))))
	r.On("org/up", inferencetest.Reply("from the fallback"))

	p := cfg.prefix
	if p == "" {
		p = prefix(t)
	}
	var logs logBuffer
	var waited waits
	stalls := watchStalls(t)
	stores := make([]*Store, cfg.replicas)
	clients := make([]*inference.Client, cfg.replicas)
	for i := range stores {
		stores[i] = New(cfg.client(), Options{Prefix: p, Refresh: soakRefresh, Timeout: soakTimeout, Logger: logs.logger()})
		c, err := r.Client(inference.WithCooldownStore(timedStore{stores[i], &waited}), inference.WithRetry(inference.RetryPolicy{}),
			inference.WithCooldown(soakCooldown), inference.WithFallback(inference.Candidate{Model: "org/up"}))
		require.NoError(t, err)
		clients[i] = c
	}
	closed := false
	defer func() {
		if !closed {
			for _, s := range stores {
				s.Close()
			}
		}
	}()
	require.Eventually(t, func() bool {
		for _, s := range stores {
			if st := s.Stats(); st.Refreshes == 0 || st.Down {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "every replica reads Redis before the soak starts")

	start = time.Now()
	started.Store(true)
	end := start.Add(cfg.duration)
	var (
		mu       sync.Mutex
		faulted  []interval                 // faults, and a margin after each
		storeOut []interval                 // when a store said Redis was down
		known    = map[string][]time.Time{} // per provider: when every replica knew, per down period
	)
	var bg sync.WaitGroup
	stop := make(chan struct{})

	// The faults: a healthy stretch, a fault, again, until the end.
	bg.Go(func() {
		gap := 2500 * time.Millisecond
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(gap):
			}
			f := cfg.faults[i%len(cfg.faults)]
			if time.Until(end) < f.hold+soakMargin+time.Second {
				return
			}
			from := time.Now()
			if err := f.start(); err != nil {
				t.Errorf("%s: %v", f.name, err)
				return
			}
			time.Sleep(f.hold)
			if err := f.end(); err != nil {
				t.Errorf("%s, ending: %v", f.name, err)
				return
			}
			mu.Lock()
			faulted = append(faulted, interval{from, time.Now().Add(soakMargin)})
			res.faults[f.name]++
			mu.Unlock()
		}
	})
	// What the replicas know and say, sampled.
	bg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		period := map[string]int{}
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			now := time.Now()
			for name, sched := range schedules {
				ps := sched.periods(start, cfg.duration)
				k := -1
				for j, iv := range ps {
					if !now.Before(iv.from) && now.Before(iv.to) {
						k = j
					}
				}
				if k < 0 || k < period[name] {
					continue
				}
				all := true
				for _, s := range stores {
					if !s.cooling(name, now) {
						all = false
						break
					}
				}
				if all {
					mu.Lock()
					for len(known[name]) < k {
						known[name] = append(known[name], time.Time{}) // a period nobody learned in
					}
					known[name] = append(known[name], now)
					mu.Unlock()
					period[name] = k + 1
				}
			}
			for _, s := range stores {
				if s.Stats().Down {
					mu.Lock()
					storeOut = append(storeOut, interval{now, now.Add(soakMargin)})
					mu.Unlock()
					break
				}
			}
		}
	})

	// The load: a call every interval, spread over the replicas, half with
	// each failing provider first.
	var calls sync.WaitGroup
	var errMu sync.Mutex
	for i := 0; time.Now().Before(end); i++ {
		c := clients[i%len(clients)]
		primary := "org/fast"
		if i%2 == 1 {
			primary = "org/slow"
		}
		res.calls++
		calls.Go(func() {
			_, err := c.Chat(context.Background(), chatReq(primary))
			if err != nil {
				errMu.Lock()
				res.errors++
				if len(res.firstErrors) < 3 {
					res.firstErrors = append(res.firstErrors, err.Error())
				}
				errMu.Unlock()
			}
		})
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * soakInterval)))
	}
	calls.Wait()
	close(stop)
	bg.Wait()

	stalls.settle()
	res.longestWait = waited.longest
	res.worstWait, res.worstStalled = waited.worst(stalls)
	for _, s := range stores {
		st := s.Stats()
		res.stats.Writes += st.Writes
		res.stats.WritesFailed += st.WritesFailed
		res.stats.WritesDropped += st.WritesDropped
		res.stats.Claims += st.Claims
		res.stats.ClaimsWon += st.ClaimsWon
		res.stats.ClaimsTimedOut += st.ClaimsTimedOut
		res.stats.ClaimsSkipped += st.ClaimsSkipped
		res.stats.Renewals += st.Renewals
		res.stats.Releases += st.Releases
		res.stats.Refreshes += st.Refreshes
		res.stats.RefreshesFailed += st.RefreshesFailed
		res.stats.Refilled += st.Refilled
		res.stats.Outages += st.Outages
	}
	for _, s := range stores {
		s.Close()
	}
	closed = true
	require.Eventually(t, func() bool { return storeGoroutines() == 0 }, 10*time.Second, 10*time.Millisecond,
		"no goroutine of the stores outlives Close")
	res.goroutines = storeGoroutines()
	res.warnings = strings.Count(logs.String(), "level=WARN")
	res.recovered = strings.Count(logs.String(), "Redis answers again")

	unhealthy := append(append([]interval(nil), faulted...), storeOut...)
	isHealthy := func(at time.Time) bool {
		for _, iv := range unhealthy {
			if !at.Before(iv.from) && at.Before(iv.to) {
				return false
			}
		}
		return true
	}
	res.healthy = healthyTime(start, end, unhealthy)
	requests := r.Requests()
	for name, sched := range schedules {
		pc := probeCount{cycle: soakCooldown}
		if name == "org/slow" {
			pc.cycle += soakSlow
		}
		for k, iv := range sched.periods(start, cfg.duration) {
			knew := time.Time{}
			if k < len(known[name]) {
				knew = known[name][k]
			}
			counted := interval{iv.to, iv.to} // nothing, unless every replica learned
			if !knew.IsZero() {
				counted = interval{knew, iv.to}
			}
			for _, q := range requests {
				if q.Model != name || q.Time.Before(iv.from) || !q.Time.Before(iv.to) {
					continue
				}
				switch {
				case !isHealthy(q.Time):
					pc.faulted++
				case q.Time.Before(counted.from):
					pc.learning++
				default:
					pc.probes++
				}
			}
			pc.windows += float64(healthyTime(counted.from, counted.to, unhealthy)) / float64(pc.cycle)
		}
		if name == "org/fast" {
			res.fast = pc
		} else {
			res.slow = pc
		}
	}
	t.Logf("%s: %d calls, %d errors %v; longest wait on the store %s (%s less the process's stalls); probes per window fast %.2f (%d in %.1f), slow %.2f (%d in %.1f); faults %v; healthy %s of %s; %+v",
		cfg.name, res.calls, res.errors, res.firstErrors, res.longestWait.Round(100*time.Microsecond), res.worstWait.Round(100*time.Microsecond),
		res.fast.perWindow(), res.fast.probes, res.fast.windows, res.slow.perWindow(), res.slow.probes, res.slow.windows,
		res.faults, res.healthy.Round(100*time.Millisecond), cfg.duration, res.stats)

	assert.Zero(t, res.errors, "no error reaches a caller: %v", res.firstErrors)
	assert.LessOrEqual(t, res.worstWait, soakTimeout+20*time.Millisecond,
		"no call waits for the store longer than Timeout + 20 ms (the process's own stalls, %s, subtracted)", res.worstStalled)
	assert.Zero(t, res.goroutines)
	assert.Positive(t, len(res.faults), "faults hit Redis")
	return res
}

// assertProbesPerWindow checks, over every phase, that about one probe per
// window reached each failing provider while Redis was healthy.
func assertProbesPerWindow(t *testing.T, results []soakResult) {
	var fast, slow probeCount
	for _, r := range results {
		fast.probes, fast.windows = fast.probes+r.fast.probes, fast.windows+r.fast.windows
		slow.probes, slow.windows = slow.probes+r.slow.probes, slow.windows+r.slow.windows
	}
	t.Logf("probes per window while Redis was healthy, over the soak: fast-failing %.2f (%d in %.1f), slow-failing %.2f (%d in %.1f)",
		fast.perWindow(), fast.probes, fast.windows, slow.perWindow(), slow.probes, slow.windows)
	for name, pc := range map[string]probeCount{"fast": fast, "slow": slow} {
		require.GreaterOrEqual(t, pc.windows, 3.0, "the %s-failing provider was down with Redis healthy for a few windows", name)
		assert.LessOrEqual(t, pc.perWindow(), 1.2, "about one probe per window of the %s-failing provider while Redis is healthy", name)
	}
}

// healthyTime is how much of [from, to) no unhealthy interval covers.
func healthyTime(from, to time.Time, unhealthy []interval) time.Duration {
	if !to.After(from) {
		return 0
	}
	ivs := make([]interval, 0, len(unhealthy))
	for _, iv := range unhealthy {
		a, b := iv.from, iv.to
		if a.Before(from) {
			a = from
		}
		if b.After(to) {
			b = to
		}
		if b.After(a) {
			ivs = append(ivs, interval{a, b})
		}
	}
	sort.Slice(ivs, func(i, j int) bool { return ivs[i].from.Before(ivs[j].from) })
	covered := time.Duration(0)
	var cur interval
	for i, iv := range ivs {
		switch {
		case i == 0:
			cur = iv
		case !iv.from.After(cur.to):
			if iv.to.After(cur.to) {
				cur.to = iv.to
			}
		default:
			covered += cur.to.Sub(cur.from)
			cur = iv
		}
	}
	if len(ivs) > 0 {
		covered += cur.to.Sub(cur.from)
	}
	return to.Sub(from) - covered
}

// masterOf is the server among nodes that serves key's slot.
func masterOf(t *testing.T, nodes []*server, key string) *server {
	rdb := redis.NewClient(&redis.Options{Addr: nodes[0].addr()})
	defer rdb.Close()
	slot, err := rdb.ClusterKeySlot(context.Background(), key).Result()
	if err != nil {
		t.Errorf("CLUSTER KEYSLOT: %v", err)
		return nil
	}
	shards, err := rdb.ClusterShards(context.Background()).Result()
	if err != nil {
		t.Errorf("CLUSTER SHARDS: %v", err)
		return nil
	}
	for _, sh := range shards {
		for _, r := range sh.Slots {
			if slot < r.Start || slot > r.End {
				continue
			}
			for _, node := range sh.Nodes {
				for _, n := range nodes {
					if node.Role == "master" && n.port == int(node.Port) {
						return n
					}
				}
			}
		}
	}
	return nil
}

// restart starts a killed server again on its port and its folder, and
// waits for it to answer; for goroutines other than the test's.
func (s *server) restart() error {
	s.cmd = exec.Command("redis-server", append([]string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir}, s.args...)...)
	if err := s.cmd.Start(); err != nil {
		return err
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.addr()})
	defer rdb.Close()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if rdb.Ping(context.Background()).Err() == nil {
			return nil
		}
	}
	return fmt.Errorf("redis-server on %d does not answer after a restart", s.port)
}

// soakTable is the table the soak prints.
func soakTable(total time.Duration, replicas int, results []soakResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "chaos soak, %s, %d replicas (Refresh %s, Timeout %s, cooldown %s; one provider fails at once, one after %s; a call every %s)\n",
		total, replicas, soakRefresh, soakTimeout, soakCooldown, soakSlow, soakInterval)
	b.WriteString("| Redis | faults | calls | errors that reached a caller | longest wait on the store | probes per window while healthy: fast-failing | slow-failing | probes while learning / faulted (fast, slow) | goroutines after Close |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		var faults []string
		for name, n := range r.faults {
			faults = append(faults, fmt.Sprintf("%s ×%d", name, n))
		}
		sort.Strings(faults)
		longest := r.longestWait.Round(100 * time.Microsecond).String()
		if r.worstStalled > 0 {
			longest += fmt.Sprintf(" (%s less the process's stalls)", r.worstWait.Round(100*time.Microsecond))
		}
		fmt.Fprintf(&b, "| %s (%s, healthy %s) | %s | %d | %d | %s | %.2f (%d in %.1f windows) | %.2f (%d in %.1f windows) | %d / %d, %d / %d | %d |\n",
			r.name, r.duration.Round(time.Second), r.healthy.Round(time.Second), strings.Join(faults, ", "), r.calls, r.errors,
			longest, r.fast.perWindow(), r.fast.probes, r.fast.windows,
			r.slow.perWindow(), r.slow.probes, r.slow.windows, r.fast.learning, r.fast.faulted, r.slow.learning, r.slow.faulted, r.goroutines)
	}
	b.WriteString("\nStats, summed over the replicas:\n")
	b.WriteString("| Redis | Writes | WritesFailed | WritesDropped | Claims | ClaimsWon | ClaimsTimedOut | ClaimsSkipped | Renewals | Releases | Refreshes | RefreshesFailed | Refilled | Outages | WARN / \"answers again\" lines |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		s := r.stats
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d / %d |\n", r.name,
			s.Writes, s.WritesFailed, s.WritesDropped, s.Claims, s.ClaimsWon, s.ClaimsTimedOut, s.ClaimsSkipped,
			s.Renewals, s.Releases, s.Refreshes, s.RefreshesFailed, s.Refilled, s.Outages, r.warnings, r.recovered)
	}
	return b.String()
}
