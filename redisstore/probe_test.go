package redisstore

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
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

// These tests hold the promise of one probe of a candidate in flight in
// the whole fleet, however slowly its provider answers: the lease of the
// replica that probes is renewed while the probe runs, and released the
// moment it answers.

// inFlight counts the requests a provider is answering, at most at once
// and in all.
type inFlight struct {
	mu         sync.Mutex
	now, most  int
	total      int
	answeredAt []time.Time
}

// answer wraps a: the request is counted while a runs.
func (f *inFlight) answer(a inferencetest.Answer) inferencetest.Answer {
	return func(w http.ResponseWriter, req *inferencetest.Request) {
		f.mu.Lock()
		f.now++
		f.total++
		f.most = max(f.most, f.now)
		f.mu.Unlock()
		a(w, req)
		f.mu.Lock()
		f.now--
		f.answeredAt = append(f.answeredAt, time.Now())
		f.mu.Unlock()
	}
}

func (f *inFlight) counts() (most, total int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.most, f.total
}

// slowFleet is replicas clients, each with its own store over rdb, whose
// primary "org/slow" is cooling until end in every replica, and whose
// fallback serves.
type slowFleet struct {
	r       *inferencetest.Router
	clients []*inference.Client
	stores  []*Store
	end     time.Time
}

func newSlowFleet(t *testing.T, rdb redis.UniversalClient, replicas int, slow inferencetest.Answer, opts Options, more ...inference.Option) *slowFleet {
	t.Helper()
	opts.Prefix = prefix(t)
	f := &slowFleet{r: inferencetest.NewRouter()}
	t.Cleanup(f.r.Close)
	f.r.On("org/slow", slow)
	f.r.On("org/up", inferencetest.Reply("ok"))
	for range replicas {
		s := newStore(t, rdb, opts)
		c, err := f.r.Client(append([]inference.Option{inference.WithCooldownStore(s), inference.WithRetry(inference.RetryPolicy{}),
			inference.WithCooldown(time.Second), inference.WithFallback(inference.Candidate{Model: "org/up"})}, more...)...)
		require.NoError(t, err)
		f.stores = append(f.stores, s)
		f.clients = append(f.clients, c)
	}
	// The primary failed a moment ago: every replica knows it is cooling,
	// until end.
	f.end = time.Now().Add(600 * time.Millisecond)
	require.NoError(t, f.stores[0].Cool(t.Context(), "org/slow", f.end))
	for _, s := range f.stores {
		require.Eventually(t, func() bool {
			untils, _ := s.Lookup(t.Context(), []string{"org/slow"}, time.Now())
			return !untils[0].IsZero()
		}, 2*time.Second, 5*time.Millisecond, "every replica reads the cooldown")
	}
	require.True(t, time.Now().Before(f.end), "the cooldown is still running when the calls start")
	return f
}

// calls sends a call every interval, spread over the replicas, until the
// given time after the cooldown's end, and waits for them all.
func (f *slowFleet) calls(t *testing.T, interval, until time.Duration) int {
	return f.callsOf(t, interval, until, func(int) inference.ChatRequest { return chatReq("org/slow") })
}

// callsOf is calls with the i-th call's request req(i).
func (f *slowFleet) callsOf(t *testing.T, interval, until time.Duration, req func(i int) inference.ChatRequest) int {
	var wg sync.WaitGroup
	n := 0
	for i := 0; time.Now().Before(f.end.Add(until)); i++ {
		c := f.clients[i%len(f.clients)]
		n++
		r := req(i)
		wg.Go(func() {
			_, err := c.Chat(t.Context(), r)
			assert.NoError(t, err, "every call is served")
		})
		time.Sleep(interval)
	}
	wg.Wait()
	return n
}

// slowOptions are the stores' options in the slow-probe tests: Refresh
// 100 ms as in the case, and Timeout 250 ms rather than 50 ms, so
// that on a loaded machine (the stalls of two busy loops beside the test)
// a claim is answered in time and a renewal goes out before the lease
// ends: a call whose claim is not answered probes without asking (the
// store fails open), which is not what these tests are about. The lease
// (350 ms) is still much shorter than the probes.
var slowOptions = Options{Refresh: 100 * time.Millisecond, Timeout: 250 * time.Millisecond}

// TestASlowProviderIsProbedOncePerWindow is the case: 4 replicas,
// a provider that answers 503 after 1.2 s, a call every 20 ms for 2.4 s
// after the cooldown ends. One probe is in flight at a time, and about one
// per window: the first at the cooldown's end, the next a cooldown (1 s)
// after it failed.
func TestASlowProviderIsProbedOncePerWindow(t *testing.T) {
	rdb := sharedRedis(t)
	var probes inFlight
	f := newSlowFleet(t, rdb, 4, probes.answer(inferencetest.Delay(1200*time.Millisecond, inferencetest.ProviderError(503))), slowOptions)
	calls := f.calls(t, 20*time.Millisecond, 2400*time.Millisecond)
	most, total := probes.counts()
	var renewals, released int64
	for _, s := range f.stores {
		renewals += s.Stats().Renewals
		released += s.Stats().Releases
	}
	t.Logf("%d calls over 4 replicas: %d probes of the slow provider, at most %d at once; %d lease renewals, %d releases",
		calls, total, most, renewals, released)
	assert.Equal(t, 1, most, "one probe in flight in the fleet at a time")
	assert.LessOrEqual(t, total, 2, "about one probe per window (probe 1.2 s + cooldown 1 s)")
	assert.Positive(t, total)
}

// A slow probe that serves ends the hold at once: the lease is released
// the moment it answers, and the other replicas use the candidate again
// within a refresh.
func TestASlowProbeThatServesIsReleasedAtOnce(t *testing.T) {
	rdb := sharedRedis(t)
	var probes inFlight
	refresh := slowOptions.Refresh
	w := watchStalls(t)
	f := newSlowFleet(t, rdb, 4, probes.answer(inferencetest.Delay(600*time.Millisecond, inferencetest.Reply("slow but well"))), slowOptions)
	var mu sync.Mutex
	var served []time.Time // when a call was served by the primary
	var wg sync.WaitGroup
	for i := 0; time.Now().Before(f.end.Add(1500 * time.Millisecond)); i++ {
		c := f.clients[i%len(f.clients)]
		wg.Go(func() {
			resp, err := c.Chat(t.Context(), chatReq("org/slow"))
			if assert.NoError(t, err) && resp.Text() == "slow but well" {
				mu.Lock()
				served = append(served, time.Now())
				mu.Unlock()
			}
		})
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	// While the probe ran (600 ms), nobody else tried the primary: its
	// first answer came alone; the next calls that used the primary were
	// sent after it.
	r := f.r.Requests()
	var sent []time.Time
	for _, q := range r {
		if q.Model == "org/slow" {
			sent = append(sent, q.Time)
		}
	}
	require.NotEmpty(t, sent)
	probes.mu.Lock()
	firstAnswer := probes.answeredAt[0]
	probes.mu.Unlock()
	var during int
	var next time.Time
	for _, at := range sent[1:] {
		if at.Before(firstAnswer) {
			during++
		} else if next.IsZero() {
			next = at
		}
	}
	t.Logf("probe sent %s after the cooldown ended, answered %s later; %d other requests to the primary meanwhile; the next %s after the answer (refresh %s)",
		sent[0].Sub(f.end).Round(time.Millisecond), firstAnswer.Sub(sent[0]).Round(time.Millisecond), during,
		next.Sub(firstAnswer).Round(time.Millisecond), refresh)
	most, _ := probes.counts()
	stalled := w.during(firstAnswer, next)
	t.Logf("%d requests to the primary in all, at most %d at once; the process stalled %s before the next", len(sent), most, stalled)
	assert.Zero(t, during, "one probe in flight while it runs")
	require.False(t, next.IsZero(), "the primary is used again")
	assert.Greater(t, most, 10, "by every replica at once, unclaimed: it serves")
	assert.LessOrEqual(t, next.Sub(firstAnswer)-stalled, refresh+100*time.Millisecond, "released at once: used again within a refresh")
	assert.Greater(t, len(sent), 30, "the replicas went back to the primary")
}

// A probe that ends with no verdict is made again by the next call to ask,
// one at a time: here the probing call's hedge (on the fallback) answers
// first and the probe of the hanging primary is cancelled. Released as
// if it had answered, the primary was left to every call of every replica
// at once (15 to 20 requests hanging at the same moment at 2383815, each until
// its hedge won).
func TestAProbeItsHedgeBeatIsMadeAgainOneAtATime(t *testing.T) {
	rdb := sharedRedis(t)
	var probes inFlight
	f := newSlowFleet(t, rdb, 4, probes.answer(inferencetest.Hang()), slowOptions, inference.WithHedge(300*time.Millisecond))
	calls := f.calls(t, 20*time.Millisecond, 2400*time.Millisecond)
	most, total := probes.counts()
	t.Logf("%d hedged calls over 4 replicas: %d probes of the hanging primary, at most %d at once", calls, total, most)
	assert.Equal(t, 1, most, "one probe in flight in the fleet at a time")
	assert.GreaterOrEqual(t, total, 2, "each probe beaten by its hedge is made again")
}

// A call may claim the probe of a candidate its walk never reaches (its
// first candidate serves): the next call to ask probes it, and nobody
// else meanwhile. Here half the calls try a slow fallback first and the
// hanging primary second. At 2383815 the candidate was left to everyone
// once the first such call ended: 40 requests hung on it at once.
func TestAProbeItsCallNeverTriedGoesToTheNextCaller(t *testing.T) {
	rdb := sharedRedis(t)
	var probes inFlight
	f := newSlowFleet(t, rdb, 4, probes.answer(inferencetest.Hang()), slowOptions, inference.WithAttemptTimeout(2*time.Second))
	f.r.On("org/up", inferencetest.Delay(500*time.Millisecond, inferencetest.Reply("ok")))
	calls := f.callsOf(t, 20*time.Millisecond, 1500*time.Millisecond, func(i int) inference.ChatRequest {
		if i%2 == 1 {
			return chatReq("org/slow")
		}
		req := chatReq("org/up")
		req.Fallbacks = []inference.Candidate{{Model: "org/slow"}}
		return req
	})
	most, total := probes.counts()
	t.Logf("%d calls over 4 replicas: %d probes of the hanging primary, at most %d at once", calls, total, most)
	assert.Equal(t, 1, most, "one probe in flight in the fleet at a time")
	assert.Positive(t, total, "a call that tries it first probes it")
}

// TestAProbeWhoseProcessDiesIsTakenOver runs the prober in a process of
// its own and kills it (SIGKILL) while its probe hangs: its lease is no
// longer renewed, and another replica probes within about a lease.
func TestAProbeWhoseProcessDiesIsTakenOver(t *testing.T) {
	if os.Getenv("REDISSTORE_PROBER") != "" {
		return // the helper below runs in the child
	}
	srv := ownRedis(t)
	rdb := srv.client(t)
	refresh, timeout := slowOptions.Refresh, slowOptions.Timeout
	lease := refresh + timeout
	w := watchStalls(t)
	var probes inFlight
	r := inferencetest.NewRouter()
	t.Cleanup(r.Close)
	r.On("org/slow", probes.answer(inferencetest.Hang()))
	r.On("org/up", inferencetest.Reply("ok"))
	p := prefix(t)
	opts := Options{Prefix: p, Refresh: refresh, Timeout: timeout}
	parent := newStore(t, rdb, opts)
	require.NoError(t, parent.Cool(t.Context(), "org/slow", time.Now().Add(300*time.Millisecond)))

	child := exec.Command(os.Args[0], "-test.run=^TestProberHelper$", "-test.v")
	child.Env = append(os.Environ(), "REDISSTORE_PROBER=1", "PROBER_REDIS="+srv.addr(), "PROBER_PREFIX="+p,
		"PROBER_ROUTER="+r.URL(), fmt.Sprintf("PROBER_REFRESH=%d", refresh), fmt.Sprintf("PROBER_TIMEOUT=%d", timeout))
	out, err := os.CreateTemp(t.TempDir(), "prober")
	require.NoError(t, err)
	child.Stdout, child.Stderr = out, out
	require.NoError(t, child.Start())
	t.Cleanup(func() {
		_ = child.Process.Kill()
		_ = child.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(out.Name())
			t.Logf("the prober's output:\n%s", log)
		}
	})
	require.Eventually(t, func() bool { _, total := probes.counts(); return total == 1 }, 10*time.Second, 5*time.Millisecond,
		"the child claims the probe, which hangs")
	// The parent skips the candidate while the child's lease is renewed
	// (a call of the parent's would ask its store exactly this).
	probesNow := func() bool {
		now := time.Now()
		untils, _ := parent.Lookup(t.Context(), []string{"org/slow"}, now)
		if !untils[0].After(now) {
			parent.Release("org/slow", false)
			return true
		}
		return false
	}
	for deadline := time.Now().Add(3 * lease); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		require.False(t, probesNow(), "the child probes it: the parent skips it")
	}
	_, total := probes.counts()
	require.Equal(t, 1, total)

	require.NoError(t, child.Process.Signal(syscall.SIGKILL))
	killed := time.Now()
	_ = child.Wait()
	var took time.Duration
	require.Eventually(t, func() bool {
		if probesNow() {
			took = time.Since(killed)
			return true
		}
		return false
	}, 5*time.Second, 5*time.Millisecond, "a replica probes again after the prober died")
	w.settle()
	stalled := w.during(killed, killed.Add(took))
	t.Logf("the parent probed %s after the prober was killed (lease %s, refresh %s; the parent stalled %s meanwhile)",
		took.Round(time.Millisecond), lease, refresh, stalled.Round(time.Millisecond))
	assert.LessOrEqual(t, took-stalled, lease+refresh+50*time.Millisecond, "within about a lease")
}

// A call that tries a candidate another call of its process probes (its
// only candidate, all cooling) and gives up (its deadline) leaves the probe
// to its prober: at 2383815 its walk's end released the prober's lease,
// and another replica probed the hanging provider too.
func TestACallThatGivesUpOnAHeldCandidateLeavesTheProbeToItsProber(t *testing.T) {
	rdb := sharedRedis(t)
	var probes inFlight
	f := newSlowFleet(t, rdb, 2, probes.answer(inferencetest.Hang()), slowOptions, inference.WithAttemptTimeout(3*time.Second))
	time.Sleep(time.Until(f.end))
	prober := make(chan error, 1)
	go func() {
		_, err := f.clients[0].Chat(t.Context(), chatReq("org/slow"))
		prober <- err
	}()
	require.Eventually(t, func() bool { _, n := probes.counts(); return n == 1 }, 2*time.Second, time.Millisecond, "the probe hangs")

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	only := chatReq("org/slow")
	only.Fallbacks = []inference.Candidate{}
	_, err := f.clients[0].Chat(ctx, only)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "it tried the candidate all the same, and gave up")
	_, n := probes.counts()
	require.Equal(t, 2, n)

	// The other replica, for a second: the probe still runs.
	var wg sync.WaitGroup
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		wg.Go(func() {
			_, err := f.clients[1].Chat(t.Context(), chatReq("org/slow"))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	most, total := probes.counts()
	t.Logf("requests to the hanging provider: %d in all, at most %d at once", total, most)
	assert.Equal(t, 2, total, "the other replica left it to the prober")
	assert.NoError(t, <-prober)
}

// Redis restarted empty (or flushed, or failed over to a replica that had
// not caught up) while a probe runs: the other replicas go on skipping the
// candidate until the prober's next renewal writes its lease again, rather
// than taking its absence for the probe's end. At 2383815 a refresh in
// that moment left the candidate to every call of the replica until its
// next refresh (or let it claim a second probe).
func TestAProbeOutlivesARedisThatLostItsLease(t *testing.T) {
	rdb := sharedRedis(t)
	opts := Options{Prefix: prefix(t), Refresh: time.Second, Timeout: 200 * time.Millisecond}
	prober, other := newStore(t, rdb, opts), newStore(t, rdb, opts)
	require.NoError(t, prober.Cool(t.Context(), "org/slow", time.Now().Add(100*time.Millisecond)))
	require.Eventually(t, func() bool { return !prober.cooling("org/slow", time.Now()) }, 2*time.Second, time.Millisecond)
	now := time.Now()
	untils, _ := prober.Lookup(t.Context(), []string{"org/slow"}, now)
	require.Equal(t, now, untils[0], "the prober's call probes it")
	other.sync()
	now = time.Now()
	untils, _ = other.Lookup(t.Context(), []string{"org/slow"}, now)
	require.True(t, untils[0].After(now), "the other replica skips it while the probe runs")

	// The keys go (FLUSHALL is a restart empty without the wait), and the
	// other replica refreshes before the prober renews its lease.
	for {
		require.NoError(t, rdb.Del(t.Context(), prober.leaseKey("org/slow"), prober.probes, prober.index).Err())
		other.sync()
		if n, _ := rdb.Exists(t.Context(), prober.leaseKey("org/slow")).Result(); n == 0 {
			break // no renewal came between: the refresh read Redis without the lease
		}
	}
	now = time.Now()
	untils, _ = other.Lookup(t.Context(), []string{"org/slow"}, now)
	assert.True(t, untils[0].After(now), "still skipped: the probe runs on, its lease lost")
	assert.Zero(t, other.Stats().ClaimsWon, "and not claimed twice")

	// The prober's renewal writes the lease again; its probe serves: the
	// other replica uses the candidate at once.
	require.Eventually(t, func() bool {
		n, _ := rdb.Exists(t.Context(), prober.leaseKey("org/slow")).Result()
		return n == 1
	}, time.Second, time.Millisecond, "renewed")
	prober.Release("org/slow", true)
	require.Eventually(t, func() bool {
		n, _ := rdb.Exists(t.Context(), prober.leaseKey("org/slow")).Result()
		return n == 0
	}, time.Second, time.Millisecond, "released")
	other.sync()
	now = time.Now()
	untils, _ = other.Lookup(t.Context(), []string{"org/slow"}, now)
	assert.True(t, untils[0].IsZero(), "it served: used by every call at once")
}

// A replica whose clock runs an hour ahead claims a probe (its lease's end
// is indexed by its clock, an hour away) and dies: the others skip the
// candidate for at most a lease from when they read that end, then probe
// it. At 2383815 they skipped it for the hour, for as long as the probes'
// index lived (here another probe's renewals keep it).
func TestAProberWhoseClockRunsAheadIsTakenOverWithinALease(t *testing.T) {
	rdb := sharedRedis(t)
	opts := Options{Prefix: prefix(t), Refresh: slowOptions.Refresh, Timeout: slowOptions.Timeout}
	s := newStore(t, rdb, opts)
	ahead := newStore(t, rdb, opts)
	for _, k := range []string{"org/m", "org/other"} {
		require.NoError(t, s.Cool(t.Context(), k, time.Now().Add(200*time.Millisecond)))
	}
	require.Eventually(t, func() bool { return !s.cooling("org/other", time.Now()) }, 2*time.Second, time.Millisecond)
	now := time.Now()
	untils, _ := s.Lookup(t.Context(), []string{"org/other"}, now)
	require.Equal(t, now, untils[0], "s probes org/other, and renews its lease until the test ends")

	a, err := ahead.takeLeases([]string{"org/m"}, []string{ahead.newOwner()}, time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.True(t, a.won[0], "the replica ahead claims org/m, then dies")
	claimed := time.Now()
	var took time.Duration
	require.Eventually(t, func() bool {
		now := time.Now()
		untils, _ := s.Lookup(t.Context(), []string{"org/m"}, now)
		if untils[0].Equal(now) {
			took = time.Since(claimed)
			return true
		}
		return false
	}, 5*time.Second, 5*time.Millisecond, "another replica probes it")
	t.Logf("probed %s after a replica an hour ahead claimed it and died (lease %s, refresh %s)", took.Round(time.Millisecond), s.lease, s.refresh)
	assert.LessOrEqual(t, took, 2*s.lease+s.refresh, "within about a lease of reading its end")
}

// Stats().Releases counts leases released, not releases sent: a lease
// Redis lost (a restart, a flush) and another replica took since is not
// this replica's to release, and the release leaves it alone. At 2383815
// it was counted all the same.
func TestReleasesCountOnlyTheLeasesReleased(t *testing.T) {
	rdb := sharedRedis(t)
	s := newStore(t, rdb, Options{Prefix: prefix(t), Refresh: 50 * time.Millisecond, Timeout: 250 * time.Millisecond})
	for _, k := range []string{"org/kept", "org/lost"} {
		justEnded(s, k)
		now := time.Now()
		untils, _ := s.Lookup(t.Context(), []string{k}, now)
		require.Equal(t, now, untils[0], "this call probes %s", k)
	}
	require.Equal(t, int64(2), s.Stats().ClaimsWon)
	require.NoError(t, rdb.Set(t.Context(), s.leaseKey("org/lost"), "another replica's", time.Minute).Err())
	s.Release("org/kept", true)
	s.Release("org/lost", false)
	require.Eventually(t, func() bool {
		n, err := rdb.Exists(t.Context(), s.leaseKey("org/kept")).Result()
		return err == nil && n == 0
	}, 2*time.Second, 5*time.Millisecond, "the lease held is released")
	s.Close() // the writer's last round trip is over
	v, err := rdb.Get(t.Context(), s.leaseKey("org/lost")).Result()
	require.NoError(t, err)
	assert.Equal(t, "another replica's", v, "the other's lease is left alone")
	assert.Equal(t, int64(1), s.Stats().Releases, "one lease released")
}

// TestProberHelper is the prober of TestAProbeWhoseProcessDiesIsTakenOver,
// run in a child process: it waits for the cooldown to end, claims the
// probe with a call, and hangs in it until killed.
func TestProberHelper(t *testing.T) {
	if os.Getenv("REDISSTORE_PROBER") == "" {
		t.Skip("the child process of TestAProbeWhoseProcessDiesIsTakenOver")
	}
	var refresh, timeout time.Duration
	_, err := fmt.Sscan(os.Getenv("PROBER_REFRESH"), &refresh)
	require.NoError(t, err)
	_, err = fmt.Sscan(os.Getenv("PROBER_TIMEOUT"), &timeout)
	require.NoError(t, err)
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv("PROBER_REDIS")})
	s := New(rdb, Options{Prefix: os.Getenv("PROBER_PREFIX"), Refresh: refresh, Timeout: timeout})
	c, err := inference.NewClient(inference.WithBaseURL(os.Getenv("PROBER_ROUTER")), inference.WithHubURL(os.Getenv("PROBER_ROUTER")),
		inference.WithToken(inferencetest.Token), inference.WithCooldownStore(s), inference.WithRetry(inference.RetryPolicy{}),
		inference.WithFallback(inference.Candidate{Model: "org/up"}))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		untils, _ := s.Lookup(t.Context(), []string{"org/slow"}, time.Now())
		return !untils[0].IsZero()
	}, 5*time.Second, 5*time.Millisecond, "the prober reads the cooldown first")
	for {
		resp, err := c.Chat(t.Context(), chatReq("org/slow"))
		require.NoError(t, err)
		if len(resp.Skipped) == 0 {
			t.Fatal("the probe answered; it should hang until this process is killed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
