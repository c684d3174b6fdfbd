// Package redisstore shares the cooldowns of github.com/hfkit/inference
// clients through Redis, so that the replicas of an application skip a
// failing model or provider together: with N replicas and a 30 s cooldown,
// a dead provider is probed about once per window by the whole fleet, not
// N times, however slowly it fails.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
//	store := redisstore.New(rdb, redisstore.Options{Prefix: "myapp:cooldown:"})
//	defer store.Close()
//	c, err := inference.NewClient(inference.WithCooldownStore(store), inference.WithLogger(logger))
//
// A Redis Cluster works the same way, through a [redis.ClusterClient]:
//
//	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"}})
//
// # What a call waits for
//
// Nothing, or at most Options.Timeout, whatever the go-redis client's own
// options say (its dial, read and write timeouts of seconds do not reach a
// call, and ContextTimeoutEnabled is not needed). The store measures that
// bound itself:
//
//   - A lookup answers from a local copy of the cooling candidates, which a
//     background loop refreshes from Redis every Options.Refresh (1 s by
//     default): what another replica cooled is seen here at most about
//     Refresh plus one round trip later.
//   - A cooldown (Cool) is recorded locally at once and handed to a
//     background writer through a bounded queue (Options.Queue, 1,024
//     candidates by default) that keeps one pending write per candidate,
//     the later deadline winning; a full queue drops its oldest write and
//     counts it (Stats). A Lua script in Redis keeps the later of two
//     deadlines and makes the key expire at it.
//   - When a cooldown ends, the replicas do not all probe the candidate at
//     once: the first to ask claims the probe in Redis (a lease, SET NX),
//     and the others go on skipping the candidate while the probe runs.
//     That claim is the one round trip on a call's path, only in that
//     moment, and the call waits for it at most Options.Timeout on a timer
//     of its own; then it probes, as it would without Redis, and the late
//     answer is dropped. At most two claims wait on Redis at once; a call
//     that finds both slots taken probes without asking.
//
// # One probe, however slow the provider
//
// A provider that is down often does not fail at once: it hangs until the
// client's attempt timeout (2 min by default), or answers 503 after
// seconds. The replica that claimed the probe keeps its lease while the
// probe runs: its background writer renews the lease (every third of it)
// for as long as the call that claimed it is trying the candidate, up to
// Options.ProbeTimeout (the client's attempt timeout, which ends the probe
// anyway), and releases it the moment the call is done with the candidate
// (the client tells the store, through Release), whether the probe served
// or failed. The leases of running probes are indexed in Redis, so that
// every replica's refresh sees them and skips the candidate without a
// round trip. The probe goes to a call that tries the candidate: the one
// a call tries first, or a later one when its walk reaches it (after a
// failure, or as a hedge), never one it may not reach. A probe that ends
// with no verdict (the call's hedge answered first, the call gave up or
// failed in a way that says nothing of the candidate) is to be made
// again, by the next call to claim it anywhere in the fleet. So one probe
// of a candidate is in flight in the whole fleet at a time, and there is
// about one per cooldown window whatever the provider's speed. If the
// prober's process dies, its lease ends within Options.Refresh +
// Options.Timeout (a lease), and another replica probes; a replica reads
// a lease's end at most a lease ahead, so that a prober whose clock runs
// ahead holds nobody off longer. A running probe's lease that Redis loses
// with its data (a restart, a flush, a failover) is kept by the replicas
// that read it, until the prober writes it again at its next renewal, or
// until it ends.
//
// So a silent Redis (a partition that drops packets, a frozen server, a
// primary behind a stale address) costs a call at most Timeout, and the
// store holds at most five goroutines of its own however many calls fail:
// the refresh loop and its one read of Redis, the writer, and two claims,
// each ending when go-redis gives up on its operation. [New] returns at
// once (its first refresh runs in the background), and [Store.Close]
// returns within Timeout.
//
// # Keys, Cluster and failover
//
// Every key of a store carries one hash tag, the prefix in braces
// ("{hfkit:cooldown:}index", "{hfkit:cooldown:}key:org/m:together"), so
// that the scripts' keys live in one slot of a Cluster: a store's keys are
// few and small (one per cooling candidate, an index, short probe leases
// and their index), so one slot holds them well; give applications that
// share a Cluster different prefixes to spread them. A
// [redis.FailoverClient] (Sentinel) needs nothing more: the store uses
// plain commands and a few scripts, which it routes to the primary like
// any other (tested with a real Sentinel failing a primary over to its
// replica: a write that reached the old primary just before it was demoted
// is lost with it, and the next refresh writes it again on the new one).
//
// The go-redis client's own options still decide how it connects (address,
// TLS, credentials, pool size: the store uses at most four of its
// connections at once); its timeouts only decide when the store's
// background operations give up, and ContextTimeoutEnabled is not needed.
// New adds a hook to the client that only watches its dials, so that an
// outage is reported with its cause ("refused the connection") as soon as
// it is noticed.
//
// # Failing open, and saying why
//
// Redis being slow, down, full or misconfigured never fails a call: the
// local copy goes on serving, the outage is logged once when it begins,
// with its cause in words an operator can act on ("Redis did not answer
// within 50ms", "Redis refused the connection", "Redis refused: CROSSSLOT
// ...", "Redis is out of memory"), and once when it ends; [Store.Stats]
// counts writes, drops, timeouts and outages for a health endpoint. Every
// refresh is bounded by Timeout on the store's own timer too, so an outage
// longer than Refresh + Timeout is noticed (Stats and the log) within
// Refresh + Timeout, whatever go-redis's dial and read timeouts are. At
// every refresh the store compares what Redis holds with the cooldowns it
// wrote itself, and writes again what Redis lacks (a Redis restarted
// empty, flushed or evicted is refilled within a refresh or two); a
// cooldown Redis holds as written is never written again. Ended entries are
// pruned by Redis's own clock, never a replica's, and no deadline further
// away than Options.MaxCooldown is stored, nor honoured when read: a
// replica skips a candidate for at most its own MaxCooldown from when it
// learned of the cooldown, so that one replica with a wrong clock or
// setting cannot impose its deadline on the others. Only candidates
// ("org/model" or "org/model:provider") are stored: nothing derived from a
// token reaches Redis.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hfkit/inference"
)

// Defaults of [Options].
const (
	DefaultPrefix  = "hfkit:cooldown:"
	DefaultRefresh = time.Second
	DefaultTimeout = 50 * time.Millisecond
	// DefaultMaxCooldown is the furthest deadline a store writes: twice
	// the client's own cap (inference.DefaultMaxCooldown), so that it only
	// bounds a replica whose settings are wrong.
	DefaultMaxCooldown = 10 * time.Minute
	// DefaultQueue is how many candidates' writes may wait for Redis.
	DefaultQueue = 1024
	// DefaultProbeTimeout is the longest a probe's lease is kept: the
	// client's default attempt timeout, which ends a probe anyway.
	DefaultProbeTimeout = inference.DefaultAttemptTimeout
)

// claimSlots is how many probe claims may wait on Redis at once.
const claimSlots = 2

// minBackground is the shortest deadline of the background operations
// (refreshes, writes): they keep no call waiting, and the store times a
// refresh on its own timer, so they may give go-redis longer than a call
// would, to set up a connection or say why it could not.
const minBackground = 2 * time.Second

// Options configure a [Store]. The zero value takes the defaults.
type Options struct {
	// Prefix starts every key the store writes, inside a hash tag, so
	// that applications sharing a Redis keep apart; DefaultPrefix when
	// empty.
	Prefix string
	// Refresh is how often the local copy is refreshed from Redis: the
	// bound on how late a cooldown another replica wrote is seen here.
	// DefaultRefresh when zero.
	Refresh time.Duration
	// Timeout is the longest a call waits for Redis (a probe claim), and
	// the longest the store waits for each refresh before it takes Redis
	// for down; DefaultTimeout when zero. Set it above the round trip to
	// Redis.
	Timeout time.Duration
	// MaxCooldown is the furthest deadline the store writes, and honours
	// when it reads one another replica wrote: a later one is shortened to
	// it. DefaultMaxCooldown when zero.
	MaxCooldown time.Duration
	// Queue bounds the cooldowns waiting to be written; DefaultQueue when
	// zero.
	Queue int
	// ProbeTimeout is the longest the store keeps the lease of a probe
	// running in this replica (renewing it in Redis so that no other
	// replica probes the candidate meanwhile); the client releases it as
	// soon as the probe ends, so this only bounds a call that never says
	// so. Set it to the client's WithAttemptTimeout when you change that;
	// DefaultProbeTimeout when zero.
	ProbeTimeout time.Duration
	// Logger hears of outages: once when Redis stops answering, once when
	// it answers again. Nil uses the logger of the client the store is
	// given to (inference.WithLogger), if any.
	Logger *slog.Logger
}

// Store is an [inference.CooldownStore] over Redis with a local tier in
// front. It is safe for concurrent use. Close it to stop its background
// work.
type Store struct {
	rdb redis.UniversalClient
	// tag is the prefix as a hash tag, which starts every key.
	tag    string
	index  string // a sorted set: candidate → deadline (Unix ms)
	probes string // a sorted set: candidate → its probe lease's end (Unix ms)
	// owner starts the value of every probe lease this store takes, so
	// that it renews and releases only its own.
	owner    string
	refresh  time.Duration
	timeout  time.Duration
	maxCool  time.Duration
	probeMax time.Duration
	// lease is how long a replica that probes a candidate after its
	// cooldown ended has it to itself before it renews the lease, and how
	// long an ended cooldown or lease is remembered for that.
	lease time.Duration

	// mu guards local, mine and latest together, so that Empty never
	// reads a latest older than an entry it should cover.
	mu    sync.RWMutex
	local map[string]entry
	// mine are the candidates a call of this process probes (or claims).
	mine    map[string]*probe
	probing atomic.Int64 // len(mine), for Release and Empty without the lock
	claimN  atomic.Uint64
	// latest is the latest deadline held locally, in Unix nanoseconds:
	// past it (and a lease), nothing is cooling and calls skip Lookup.
	latest atomic.Int64

	queue  writeQueue
	claims chan struct{} // a slot per claim waiting on Redis
	health health

	stop      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	closed    chan struct{} // closed when the background work is over
}

// entry is one candidate in the local copy.
type entry struct {
	// until is the cooldown's deadline, at the millisecond as Redis keeps
	// it, shortened to MaxCooldown from when this replica learned it.
	until time.Time
	// raw is the deadline as written, before that cap: a refresh that
	// reads the same deadline keeps until rather than capping it again
	// from a later now.
	raw time.Time
	// own: this replica wrote the deadline (Cool); written: Redis took
	// that write, when the write's answer came (writtenAt). An own
	// deadline Redis lacks is written again.
	own, written bool
	writtenAt    time.Time
	// probe is when the lease of a probe of the candidate ends, as last
	// seen (a refresh, a lost claim): another replica probes it until
	// then. Zero when no probe is known. A refresh caps it at a lease from
	// when it first read the same end (probeRaw, at probeSeen).
	probe               time.Time
	probeRaw, probeSeen time.Time
	// served is when a probe of the candidate was seen to serve, after
	// which it is not claimed again until it cools or is probed anew.
	served time.Time
}

// claimable reports whether a call should claim the candidate's probe: its
// cooldown, or the lease of a probe that was not released, ended less than
// a lease ago, and no probe has served since.
func (e entry) claimable(now time.Time, lease time.Duration) bool {
	last := e.until
	if e.probe.After(last) {
		last = e.probe
	}
	return !last.IsZero() && !last.After(now) && now.Sub(last) < lease && !e.served.After(last)
}

var _ inference.CooldownStore = (*Store)(nil)

// coolScript keeps the later of the recorded and the new deadline, no
// further than the maximum from Redis's own clock, makes the candidate's
// key expire at it, and indexes it for the refresh loops, dropping what
// ended more than a lease ago by Redis's clock; all at once, so concurrent
// writers cannot leave an earlier deadline behind. A mark that a probe of
// the candidate served a moment ago goes.
//
// KEYS: the candidate's key, the index, its mark of a probe that served.
// ARGV: the deadline (Unix ms), the candidate, the lease (ms), the maximum
// (ms).
var coolScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untilMs = math.min(tonumber(ARGV[1]), now + tonumber(ARGV[4]))
if untilMs <= now then
  return 0
end
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if untilMs > cur then
  redis.call('SET', KEYS[1], string.format('%.0f', untilMs), 'PXAT', string.format('%.0f', untilMs))
  cur = untilMs
end
redis.call('DEL', KEYS[3])
redis.call('ZADD', KEYS[2], 'GT', string.format('%.0f', cur), ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. string.format('%.0f', now - tonumber(ARGV[3])))
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIREAT', KEYS[2], string.format('%.0f', tonumber(last[2]) + tonumber(ARGV[3])))
end
return cur
`)

// New returns a store over rdb and starts its background work: the first
// refresh runs at once, in the background, so New never waits for Redis.
// It adds a hook to rdb that watches its dials (see the package doc).
func New(rdb redis.UniversalClient, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.Refresh <= 0 {
		opts.Refresh = DefaultRefresh
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxCooldown <= 0 {
		opts.MaxCooldown = DefaultMaxCooldown
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.ProbeTimeout <= 0 {
		opts.ProbeTimeout = DefaultProbeTimeout
	}
	tag := "{" + opts.Prefix + "}"
	var id [8]byte
	_, _ = rand.Read(id[:])
	s := &Store{
		rdb: rdb, tag: tag, index: tag + "index", probes: tag + "probes", owner: hex.EncodeToString(id[:]),
		refresh: opts.Refresh, timeout: opts.Timeout, maxCool: opts.MaxCooldown, probeMax: opts.ProbeTimeout,
		lease:  opts.Refresh + opts.Timeout,
		local:  map[string]entry{},
		mine:   map[string]*probe{},
		queue:  newWriteQueue(opts.Queue),
		claims: make(chan struct{}, claimSlots),
		stop:   make(chan struct{}),
	}
	s.health.timeout = opts.Timeout
	if opts.Logger != nil {
		s.health.own = true
		s.health.logger.Store(opts.Logger)
	}
	s.health.dials.watch(rdb)
	s.wg.Add(2)
	go s.loop()
	go s.writer()
	return s
}

// SetLogger gives the store the logger of the client it serves
// (inference.NewClient calls it with WithLogger's), used when
// Options.Logger was nil.
func (s *Store) SetLogger(l *slog.Logger) {
	if !s.health.own && l != nil {
		s.health.setLogger(l)
	}
}

// Close stops the store's background work, after one last attempt to write
// the cooldowns still queued and release the leases of probes still
// running. It returns within about Options.Timeout even when Redis does not
// answer: an operation already sent ends when go-redis gives up on it, and
// its goroutine with it. The store still answers from its local copy
// afterwards.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		// One wait for the background work, however many Closes.
		s.closed = make(chan struct{})
		go func() {
			s.wg.Wait()
			close(s.closed)
		}()
	})
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	select {
	case <-s.closed:
	case <-t.C:
	}
	return nil
}

// Empty reports, without blocking, that nothing is cooling in the local
// copy, nor probed, nor ended so recently that its probe is to be claimed:
// calls then skip Lookup.
func (s *Store) Empty() bool {
	return s.probing.Load() == 0 && time.Now().UnixNano() >= s.latest.Load()+int64(s.lease)
}

// Lookup answers from the local copy, without a round trip, except for a
// candidate whose cooldown (or an unreleased probe of it) has just ended
// and that the call tries first (keys come in the order the call tries
// them: the first key neither cooling nor probed elsewhere): then one
// round trip, bounded by Options.Timeout, claims the probe of it for this
// call, or finds another replica probing it (and the candidate is skipped
// while that probe runs). A candidate whose probe this call is given is
// answered with now, a time that is not a cooldown, so that the call
// knows to Release it; a later candidate whose cooldown has just ended is
// not claimed (the call may never reach it, and would hold the others off
// it meanwhile): the call asks again, for it alone, when it is about to
// try it.
func (s *Store) Lookup(ctx context.Context, keys []string, now time.Time) ([]time.Time, error) {
	out := make([]time.Time, len(keys))
	var ended []int
	first := true // no key before this one is one the call may use
	s.mu.RLock()
	for i, k := range keys {
		switch e := s.local[k]; {
		case e.until.After(now):
			out[i] = e.until
		case s.mine[k] != nil:
			out[i] = now.Add(s.lease) // a call of this process probes it
		case e.probe.After(now):
			out[i] = e.probe // another replica probes it
		case e.claimable(now, s.lease):
			if first {
				ended = append(ended, i)
			}
			first = false
		default:
			first = false
		}
	}
	s.mu.RUnlock()
	if len(ended) > 0 {
		s.claim(ctx, keys, ended, out, now)
	}
	return out, nil
}

// Cool records the cooldown locally at once and queues its write to
// Redis; it never waits for Redis and never fails. A deadline further away
// than Options.MaxCooldown is shortened to it. A probe of the candidate
// that this process ran has failed: its lease is released once the
// cooldown is written.
func (s *Store) Cool(_ context.Context, key string, until time.Time) error {
	now := time.Now()
	until = minTime(until, now.Add(s.maxCool))
	until = time.UnixMilli(until.UnixMilli()) // as Redis keeps it
	if !until.After(now) {
		return nil
	}
	s.mu.Lock()
	if cur := s.local[key]; until.After(cur.until) {
		cur.until, cur.raw, cur.own, cur.written = until, until, true, false
		s.local[key] = cur
		s.bump(until)
	}
	p := s.endProbe(key)
	s.mu.Unlock()
	s.queue.put(key, until, &s.health)
	if p != nil && p.leased {
		s.queue.release(key, p.owner, false)
	}
	return nil
}

// Release tells the store that a call is done with a candidate it looked
// up: its attempt at it ended, served (served true) or failed, or the call
// ended without trying it. If that call was probing the candidate, its
// lease is released in the background, so that the fleet sees the probe's
// end at once. A probe that served also leaves a short mark in Redis, so
// that the replicas that have not yet read its end use the candidate
// without claiming it again. A probe that ended with no verdict (the call
// never tried the candidate, its hedge won, it gave up; a failure is
// cooled, through Cool, before its release) is to be made again: the
// candidate is claimable at once, here and in the fleet, by the next call
// to ask, rather than left to every replica at once. It never blocks, and
// costs an atomic load when this process probes nothing.
func (s *Store) Release(key string, served bool) {
	if s.probing.Load() == 0 {
		return
	}
	now := time.Now()
	s.mu.Lock()
	p := s.endProbe(key)
	if p != nil {
		e := s.local[key]
		if served {
			e.probe, e.served = time.Time{}, now
		} else {
			// The probe ended now, unmade: claimable for a lease.
			e.probe = now
			s.bump(now)
		}
		s.local[key] = e
	}
	s.mu.Unlock()
	if p != nil && p.leased {
		s.queue.release(key, p.owner, served)
	}
}

// bump raises latest to t; s.mu is held.
func (s *Store) bump(t time.Time) {
	if n := t.UnixNano(); n > s.latest.Load() {
		s.latest.Store(n)
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
