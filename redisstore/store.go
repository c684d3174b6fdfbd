// Package redisstore shares the cooldowns of github.com/hfkit/inference
// clients through Redis, so that the replicas of an application skip a
// failing model or provider together: with N replicas and a 30 s cooldown,
// a dead provider is probed about once per window by the whole fleet, not
// N times.
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
//     once: the first to ask claims a short probe lease in Redis (SET NX),
//     and the others go on skipping the candidate while the probe runs.
//     That claim is the one round trip on a call's path, only in that
//     moment, and the call waits for it at most Options.Timeout on a timer
//     of its own; then it probes, as it would without Redis, and the late
//     answer is dropped. At most two claims wait on Redis at once; a call
//     that finds both slots taken probes without asking.
//
// So a silent Redis (a partition that drops packets, a frozen server, a
// primary behind a stale address) costs a call at most Timeout, and the
// store holds at most four goroutines of its own however many calls fail:
// the refresh loop, the writer, and two claims, each ending when go-redis
// gives up on its operation. [New] returns at once (its first refresh runs
// in the background), and [Store.Close] returns within Timeout.
//
// # Keys, Cluster and failover
//
// Every key of a store carries one hash tag, the prefix in braces
// ("{hfkit:cooldown:}index", "{hfkit:cooldown:}key:org/m:together"), so
// that the script's keys live in one slot of a Cluster: a store's keys are
// few and small (one per cooling candidate, an index, short probe leases),
// so one slot holds them well; give applications that share a Cluster
// different prefixes to spread them. A [redis.FailoverClient] (Sentinel)
// needs nothing more: the store uses plain commands and one script, which
// it routes to the primary like any other (tested with a real Sentinel
// failing a primary over to its replica: a write that reached the old
// primary just before it was demoted is lost with it, and the next refresh
// writes it again on the new one).
//
// The go-redis client's own options still decide how it connects (address,
// TLS, credentials, pool size: the store uses at most four of its
// connections at once); its timeouts only decide when the store's
// background operations give up, and ContextTimeoutEnabled is not needed.
//
// # Failing open, and saying why
//
// Redis being slow, down, full or misconfigured never fails a call: the
// local copy goes on serving, the outage is logged once when it begins,
// with its cause in words an operator can act on ("Redis did not answer
// within 50ms", "Redis refused: CROSSSLOT ...", "Redis is out of memory"),
// and once when it ends; [Store.Stats] counts writes, drops, timeouts and
// outages for a health endpoint. At every refresh the store compares what
// Redis holds with the cooldowns it holds itself, and writes again what
// Redis lacks (a Redis restarted empty, flushed or evicted is refilled
// within a refresh or two). Ended entries are pruned by Redis's own clock,
// never a replica's, and no deadline further away than
// Options.MaxCooldown is stored, so that one replica with a wrong clock or
// setting cannot impose it on the others. Only candidates ("org/model" or
// "org/model:provider") are stored: nothing derived from a token reaches
// Redis.
package redisstore

import (
	"context"
	"log/slog"
	"strconv"
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
)

// claimSlots is how many probe claims may wait on Redis at once.
const claimSlots = 2

// minBackground is the shortest deadline of the background operations
// (refreshes, writes): they keep no call waiting, so they may give Redis
// longer than a call would, and report why it failed (go-redis retries a
// refused connection for about two seconds before it says so).
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
	// the deadline of each Redis operation; DefaultTimeout when zero.
	Timeout time.Duration
	// MaxCooldown is the furthest deadline the store writes; a later one
	// is shortened to it. DefaultMaxCooldown when zero.
	MaxCooldown time.Duration
	// Queue bounds the cooldowns waiting to be written; DefaultQueue when
	// zero.
	Queue int
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
	tag     string
	index   string // a sorted set: candidate → deadline (Unix ms)
	refresh time.Duration
	timeout time.Duration
	maxCool time.Duration
	// lease is how long a replica that probes a candidate after its
	// cooldown ended has it to itself, and how long an ended cooldown is
	// remembered for that.
	lease time.Duration

	// mu guards local and latest together, so that Empty never reads a
	// latest older than an entry it should cover.
	mu    sync.RWMutex
	local map[string]entry
	// latest is the latest deadline held locally, in Unix nanoseconds:
	// past it (and a lease), nothing is cooling and calls skip Lookup.
	latest atomic.Int64

	queue  writeQueue
	claims chan struct{} // a slot per claim waiting on Redis
	health health

	stop      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// entry is one candidate in the local copy: until when it is skipped, and
// whether that is a cooldown to share (shared) or this replica's hold
// while it probes (not written to Redis).
type entry struct {
	until  time.Time
	shared bool
}

var _ inference.CooldownStore = (*Store)(nil)

// coolScript keeps the later of the recorded and the new deadline, no
// further than the maximum from Redis's own clock, makes the candidate's
// key expire at it, and indexes it for the refresh loops, dropping what
// ended more than a lease ago by Redis's clock; all at once, so concurrent
// writers cannot leave an earlier deadline behind.
//
// KEYS: the candidate's key, the index. ARGV: the deadline (Unix ms), the
// candidate, the lease (ms), the maximum (ms).
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
	tag := "{" + opts.Prefix + "}"
	s := &Store{
		rdb: rdb, tag: tag, index: tag + "index",
		refresh: opts.Refresh, timeout: opts.Timeout, maxCool: opts.MaxCooldown, lease: opts.Refresh + opts.Timeout,
		local:  map[string]entry{},
		queue:  newWriteQueue(opts.Queue),
		claims: make(chan struct{}, claimSlots),
		stop:   make(chan struct{}),
	}
	s.health.timeout = opts.Timeout
	if opts.Logger != nil {
		s.health.own = true
		s.health.logger.Store(opts.Logger)
	}
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
// the cooldowns still queued. It returns within about Options.Timeout even
// when Redis does not answer: an operation already sent ends when go-redis
// gives up on it, and its goroutine with it. The store still answers from
// its local copy afterwards.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.health.stop()
	})
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	return nil
}

// Empty reports, without blocking, that nothing is cooling in the local
// copy, nor ended so recently that its probe is to be claimed: calls then
// skip Lookup.
func (s *Store) Empty() bool { return time.Now().UnixNano() >= s.latest.Load()+int64(s.lease) }

// Lookup answers from the local copy, without a round trip, except for a
// candidate whose cooldown has just ended: then one round trip, bounded by
// Options.Timeout, claims the probe of it for this replica, or finds
// another replica probing it (and the candidate is skipped a little
// longer).
func (s *Store) Lookup(ctx context.Context, keys []string, now time.Time) ([]time.Time, error) {
	out := make([]time.Time, len(keys))
	var ended []int
	s.mu.RLock()
	for i, k := range keys {
		switch e := s.local[k]; {
		case e.until.After(now):
			out[i] = e.until
		case !e.until.IsZero() && now.Sub(e.until) < s.lease:
			ended = append(ended, i)
		}
	}
	s.mu.RUnlock()
	if len(ended) > 0 {
		s.claim(ctx, keys, ended, out, now)
	}
	return out, nil
}

// claim asks Redis, for candidates whose cooldown has just ended, which
// replica probes each: a candidate this replica may probe keeps a zero
// time in out; one another replica probes is cooling for the lease.
// Either way this process holds it for the lease while its probe runs.
// Without an answer within the timeout, this replica probes.
func (s *Store) claim(ctx context.Context, keys []string, ended []int, out []time.Time, now time.Time) {
	hold := now.Add(s.lease)
	for _, i := range ended {
		s.keep(keys[i], hold, false)
	}
	select {
	case s.claims <- struct{}{}:
	default:
		s.health.claimsSkipped.Add(1) // two claims wait already: probe
		return
	}
	select {
	case <-s.stop:
		<-s.claims // closed: probe without asking
		return
	default:
	}
	s.health.claimsAsked.Add(1)
	probes := make([]string, len(ended))
	for j, i := range ended {
		probes[j] = s.tag + "probe:" + keys[i]
	}
	answer := make(chan []bool, 1) // buffered: a late answer is dropped
	// The claim's goroutine is not one Close waits for: it ends when
	// go-redis gives up on its operation, and the slots bound how many
	// there are.
	go func() {
		defer func() { <-s.claims }()
		won, err := s.setNX(probes)
		s.health.record(opWrite, err)
		answer <- won
	}()
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	select {
	case won := <-answer:
		for j, i := range ended {
			if won != nil && !won[j] {
				out[i] = hold // another replica is probing it
			}
		}
	case <-t.C:
		s.health.claimsTimedOut.Add(1)
		s.health.record(opRead, errNoAnswer)
	case <-ctx.Done():
	}
}

// setNX takes the probe leases, one round trip for all; won is nil when
// Redis failed.
func (s *Store) setNX(probes []string) (won []bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.BoolCmd, len(probes))
	for j, p := range probes {
		cmds[j] = pipe.SetNX(ctx, p, "1", s.lease)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	won = make([]bool, len(cmds))
	for j, c := range cmds {
		won[j] = c.Val()
	}
	return won, nil
}

// Cool records the cooldown locally at once and queues its write to
// Redis; it never waits for Redis and never fails. A deadline further away
// than Options.MaxCooldown is shortened to it.
func (s *Store) Cool(_ context.Context, key string, until time.Time) error {
	now := time.Now()
	until = minTime(until, now.Add(s.maxCool))
	if !until.After(now) {
		return nil
	}
	s.keep(key, until, true)
	s.queue.put(key, until, &s.health)
	return nil
}

// keep records a deadline in the local copy, the later one winning.
func (s *Store) keep(key string, until time.Time, shared bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.local[key]; until.After(cur.until) {
		s.local[key] = entry{until: until, shared: shared}
	}
	if n := until.UnixNano(); n > s.latest.Load() {
		s.latest.Store(n)
	}
}

// loop refreshes the local copy now and every refresh until Close.
func (s *Store) loop() {
	defer s.wg.Done()
	t := time.NewTicker(s.refresh)
	defer t.Stop()
	for {
		s.sync()
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// sync reads every indexed candidate from Redis into the local copy, in
// one round trip, and queues again the cooldowns held here that Redis
// lacks or holds with an earlier deadline (a Redis restarted empty,
// flushed, evicted, or a write lost in an outage).
func (s *Store) sync() {
	ctx, cancel := context.WithTimeout(context.Background(), max(s.timeout, minBackground))
	defer cancel()
	entries, err := s.rdb.ZRangeWithScores(ctx, s.index, 0, -1).Result()
	s.health.refreshes.Add(1)
	if err != nil {
		s.health.refreshesFailed.Add(1)
		s.health.record(opRead, err)
		return
	}
	s.health.record(opRead, nil)
	now := time.Now()
	fresh := make(map[string]entry, len(entries))
	for _, e := range entries {
		key, ok := e.Member.(string)
		if !ok {
			continue
		}
		fresh[key] = entry{until: time.UnixMilli(int64(e.Score)), shared: true}
	}
	var missing []string
	var untils []time.Time
	s.mu.Lock()
	var latest int64
	for k, e := range fresh {
		if now.Sub(e.until) >= s.lease {
			delete(fresh, k) // ended long ago; Redis prunes it at the next write
			continue
		}
		latest = max(latest, e.until.UnixNano())
	}
	for k, e := range s.local {
		if now.Sub(e.until) >= s.lease || !e.until.After(fresh[k].until) {
			continue
		}
		// A deadline Redis does not have (yet): kept, and, when it is a
		// live cooldown, written again.
		if e.shared && e.until.After(now) {
			missing = append(missing, k)
			untils = append(untils, e.until)
		}
		fresh[k] = e
		latest = max(latest, e.until.UnixNano())
	}
	s.local = fresh
	s.latest.Store(latest)
	s.mu.Unlock()
	for i, k := range missing {
		if s.queue.busy(k) {
			continue // on its way
		}
		if s.queue.put(k, untils[i], &s.health) {
			s.health.refilled.Add(1)
		}
	}
	if len(missing) == 0 && s.health.writesDown() {
		// Redis holds every cooldown held here; whether it takes writes
		// again, a short-lived key tells.
		ctx, cancel := context.WithTimeout(context.Background(), max(s.timeout, minBackground))
		err := s.rdb.Set(ctx, s.tag+"health", "1", s.lease).Err()
		cancel()
		s.health.record(opWrite, err)
	}
}

// write sends a batch of cooldowns to Redis in one round trip.
func (s *Store) write(batch map[string]time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), max(s.timeout, minBackground))
	defer cancel()
	pipe := s.rdb.Pipeline()
	lease := strconv.FormatInt(s.lease.Milliseconds(), 10)
	maxCool := strconv.FormatInt(s.maxCool.Milliseconds(), 10)
	for key, until := range batch {
		coolScript.Eval(ctx, pipe, []string{s.tag + "key:" + key, s.index},
			strconv.FormatInt(until.UnixMilli(), 10), key, lease, maxCool)
	}
	_, err := pipe.Exec(ctx)
	return err
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
