// Package redisstore shares the cooldowns of github.com/hfkit/inference
// clients through Redis, so that the replicas of an application skip a
// failing model or provider together: with N replicas and a 30 s cooldown,
// a dead provider is probed about once per window by the whole fleet, not
// N times.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
//	store := redisstore.New(rdb, redisstore.Options{Prefix: "myapp:cooldown:", Logger: logger})
//	defer store.Close()
//	c, err := inference.NewClient(inference.WithCooldownStore(store), inference.WithLogger(logger))
//
// A call never waits for Redis: the store answers from a local copy of the
// cooling candidates, which a background loop refreshes from Redis every
// Options.Refresh (1 s by default), so what another replica cooled is seen
// here at most about Refresh (plus one round trip) later. A failing call
// writes its candidate's cooldown locally at once and to Redis in one
// round trip, where a Lua script keeps the later of two deadlines and
// makes the key expire at it.
//
// When a cooldown ends, the replicas do not all probe the candidate at
// once: the first to ask takes a short probe lease in Redis (SET NX, one
// round trip, only in that moment), and the others go on skipping the
// candidate while the probe runs. So the fleet sends about one request per
// cooldown window to a provider that is down.
//
// Redis being slow or down never fails a call: every Redis operation has a
// short timeout (Options.Timeout, 50 ms by default), the local copy goes on
// serving, the outage is logged once when it begins and once when it ends,
// and when Redis answers again the cooldowns written meanwhile are pushed
// to it, so sharing resumes without a restart. Only candidates ("org/model"
// or "org/model:provider") are stored: the client keeps token sources'
// cooldowns in its own process, and nothing derived from a token reaches
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
)

// Options configure a [Store]. The zero value takes the defaults.
type Options struct {
	// Prefix starts every key the store writes, so that applications
	// sharing a Redis keep apart; DefaultPrefix when empty.
	Prefix string
	// Refresh is how often the local copy is refreshed from Redis: the
	// bound on how late a cooldown another replica wrote is seen here.
	// DefaultRefresh when zero.
	Refresh time.Duration
	// Timeout bounds each Redis operation; DefaultTimeout when zero.
	Timeout time.Duration
	// Logger hears of outages: once when Redis stops answering, once when
	// it answers again. Nil logs nothing.
	Logger *slog.Logger
}

// Store is an [inference.CooldownStore] over Redis with a local tier in
// front. It is safe for concurrent use. Close it to stop its refresh loop.
type Store struct {
	rdb     redis.UniversalClient
	index   string // a sorted set: candidate → deadline (Unix ms)
	prefix  string
	refresh time.Duration
	timeout time.Duration
	// lease is how long a replica that probes a candidate after its
	// cooldown ended has it to itself, and how long an ended cooldown is
	// remembered for that.
	lease  time.Duration
	logger *slog.Logger

	mu    sync.RWMutex
	local map[string]time.Time
	// latest is the latest deadline held locally, in Unix nanoseconds:
	// past it, nothing is cooling and calls skip the lookup.
	latest atomic.Int64
	down   atomic.Bool

	stop chan struct{}
	done chan struct{}
}

var _ inference.CooldownStore = (*Store)(nil)

// coolScript keeps the later of the recorded and the new deadline, makes
// the candidate's key expire at it, and indexes it for the refresh loop,
// dropping what has expired; all at once, so concurrent writers cannot
// leave an earlier deadline behind.
var coolScript = redis.NewScript(`
local untilMs = tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if untilMs > cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', untilMs)
  cur = untilMs
end
redis.call('ZADD', KEYS[2], 'GT', cur, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIREAT', KEYS[2], last[2])
end
return cur
`)

// New returns a store over rdb and starts its refresh loop.
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
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		rdb: rdb, index: opts.Prefix + "index", prefix: opts.Prefix,
		refresh: opts.Refresh, timeout: opts.Timeout, lease: opts.Refresh + opts.Timeout, logger: logger,
		local: map[string]time.Time{}, stop: make(chan struct{}), done: make(chan struct{}),
	}
	s.sync(context.Background())
	go s.loop()
	return s
}

// Close stops the refresh loop. The store still answers from its local
// copy afterwards.
func (s *Store) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	return nil
}

// Empty reports, without blocking, that nothing is cooling in the local
// copy, nor ended so recently that its probe is to be claimed: calls then
// skip Lookup.
func (s *Store) Empty() bool { return time.Now().UnixNano() >= s.latest.Load()+int64(s.lease) }

// Lookup answers from the local copy, without a round trip, except for a
// candidate whose cooldown has just ended: then one round trip claims the
// probe of it for this replica, or finds another replica probing it (and
// the candidate is skipped a little longer).
func (s *Store) Lookup(ctx context.Context, keys []string, now time.Time) ([]time.Time, error) {
	out := make([]time.Time, len(keys))
	var ended []int
	s.mu.RLock()
	for i, k := range keys {
		switch t := s.local[k]; {
		case t.After(now):
			out[i] = t
		case !t.IsZero() && now.Sub(t) < s.lease:
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
// Either way this process skips it for the lease while its probe runs.
// Without Redis, this replica probes.
func (s *Store) claim(ctx context.Context, keys []string, ended []int, out []time.Time, now time.Time) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	claims := make([]*redis.BoolCmd, len(ended))
	for j, i := range ended {
		claims[j] = pipe.SetNX(ctx, s.prefix+"probe:"+keys[i], "1", s.lease)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		s.failed(err)
		return
	}
	hold := now.Add(s.lease)
	for j, i := range ended {
		if !claims[j].Val() {
			out[i] = hold // another replica is probing it
		}
		s.keep(keys[i], hold)
	}
}

// Cool records the cooldown locally at once, then in Redis. A Redis that
// fails is logged (once per outage), not returned: the cooldown holds
// locally and reaches Redis when it answers again.
func (s *Store) Cool(ctx context.Context, key string, until time.Time) error {
	s.keep(key, until)
	if err := s.write(ctx, key, until); err != nil {
		s.failed(err)
	}
	return nil
}

// keep records a deadline in the local copy, the later one winning.
func (s *Store) keep(key string, until time.Time) {
	s.mu.Lock()
	if until.After(s.local[key]) {
		s.local[key] = until
	}
	s.mu.Unlock()
	for {
		latest := s.latest.Load()
		if until.UnixNano() <= latest || s.latest.CompareAndSwap(latest, until.UnixNano()) {
			return
		}
	}
}

func (s *Store) write(ctx context.Context, key string, until time.Time) error {
	now := time.Now()
	if !until.After(now) {
		return nil // already over
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	ms := until.UnixMilli()
	return coolScript.Run(ctx, s.rdb, []string{s.prefix + "key:" + key, s.index},
		strconv.FormatInt(ms, 10), key, strconv.FormatInt(now.UnixMilli(), 10), strconv.FormatInt(now.Add(-s.lease).UnixMilli(), 10)).Err()
}

// loop refreshes the local copy every refresh until Close.
func (s *Store) loop() {
	defer close(s.done)
	t := time.NewTicker(s.refresh)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.sync(context.Background())
		}
	}
}

// sync reads every cooling candidate from Redis into the local copy, in
// one round trip. After an outage it first pushes what was cooled locally
// meanwhile.
func (s *Store) sync(ctx context.Context) {
	now := time.Now()
	if s.down.Load() && !s.push(ctx, now) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// Cooldowns that ended within the lease are read too: the first
	// lookup after one claims the probe.
	entries, err := s.rdb.ZRangeByScoreWithScores(ctx, s.index, &redis.ZRangeBy{
		Min: strconv.FormatInt(now.Add(-s.lease).UnixMilli(), 10), Max: "+inf",
	}).Result()
	if err != nil {
		s.failed(err)
		return
	}
	s.recovered()
	fresh := make(map[string]time.Time, len(entries))
	var latest int64
	for _, e := range entries {
		key, ok := e.Member.(string)
		if !ok {
			continue
		}
		until := time.UnixMilli(int64(e.Score))
		fresh[key] = until
		latest = max(latest, until.UnixNano())
	}
	s.mu.Lock()
	for k, t := range s.local {
		// Keep a local deadline Redis does not have yet (a write in
		// flight, a probe's hold), drop what ended more than a lease ago.
		if now.Sub(t) < s.lease && t.After(fresh[k]) {
			fresh[k] = t
			latest = max(latest, t.UnixNano())
		}
	}
	s.local = fresh
	s.mu.Unlock()
	s.latest.Store(latest)
}

// push writes the local cooldowns to Redis after an outage; it reports
// whether Redis took them.
func (s *Store) push(ctx context.Context, now time.Time) bool {
	s.mu.RLock()
	pending := make(map[string]time.Time, len(s.local))
	for k, t := range s.local {
		if t.After(now) {
			pending[k] = t
		}
	}
	s.mu.RUnlock()
	for k, t := range pending {
		if err := s.write(ctx, k, t); err != nil {
			return false
		}
	}
	return true
}

func (s *Store) failed(err error) {
	if s.down.CompareAndSwap(false, true) {
		s.logger.Warn("redisstore: Redis does not answer; cooldowns go on in this process until it does",
			slog.String("error", err.Error()))
	}
}

func (s *Store) recovered() {
	if s.down.CompareAndSwap(true, false) {
		s.logger.Info("redisstore: Redis answers again; cooldowns are shared")
	}
}
