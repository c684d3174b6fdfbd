package redisstore

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// writeQueue holds what waits to be written to Redis: cooldowns, one per
// candidate, the later deadline winning, so that a burst of failures is
// one write per candidate; the leases of probes that ended, to release;
// and whether to check that Redis takes writes again. The cooldowns are
// bounded: a full queue drops its oldest candidate (counted), and putting
// never blocks. Releases are at most one per candidate this process
// probed.
type writeQueue struct {
	mu      sync.Mutex
	pending map[string]time.Time
	// inflight is the batch the writer is sending, so that a refresh
	// does not take its candidates for missing from Redis.
	inflight map[string]time.Time
	order    []string           // candidates in the order they were queued
	releases map[string]release // by candidate
	checking bool
	limit    int
	wake     chan struct{}
}

func newWriteQueue(limit int) writeQueue {
	return writeQueue{pending: map[string]time.Time{}, releases: map[string]release{}, limit: limit, wake: make(chan struct{}, 1)}
}

// put queues a write and wakes the writer; it reports whether the
// candidate was not queued already.
func (q *writeQueue) put(key string, until time.Time, h *health) bool {
	q.mu.Lock()
	cur, queued := q.pending[key]
	switch {
	case queued:
		if until.After(cur) {
			q.pending[key] = until
		}
	default:
		for len(q.pending) >= q.limit && len(q.order) > 0 {
			oldest := q.order[0]
			q.order = q.order[1:]
			if _, ok := q.pending[oldest]; ok {
				delete(q.pending, oldest)
				h.writesDropped.Add(1)
			}
		}
		q.pending[key] = until
		q.order = append(q.order, key)
	}
	q.mu.Unlock()
	q.poke()
	return !queued
}

// release is a probe's lease to release: its owner, and whether the probe
// served.
type release struct {
	owner  string
	served bool
}

// release queues the release of a probe's lease, after any cooldown
// queued before it.
func (q *writeQueue) release(key, owner string, served bool) {
	q.mu.Lock()
	q.releases[key] = release{owner, served}
	q.mu.Unlock()
	q.poke()
}

// check asks the writer to find out whether Redis takes writes again.
func (q *writeQueue) check() {
	q.mu.Lock()
	q.checking = true
	q.mu.Unlock()
	q.poke()
}

func (q *writeQueue) poke() {
	select {
	case q.wake <- struct{}{}:
	default: // the writer is awake already
	}
}

// batch is one round trip of the writer.
type batch struct {
	cools    map[string]time.Time
	releases map[string]release
	renewals []renewal
	check    bool
}

// renewal is a lease to extend.
type renewal struct{ key, owner string }

// take empties the queue, returning what was in it.
func (q *writeQueue) take() batch {
	q.mu.Lock()
	defer q.mu.Unlock()
	b := batch{check: q.checking}
	q.checking = false
	if len(q.pending) > 0 {
		b.cools = q.pending
		q.pending, q.order, q.inflight = make(map[string]time.Time, len(b.cools)), nil, b.cools
	}
	if len(q.releases) > 0 {
		b.releases = q.releases
		q.releases = map[string]release{}
	}
	return b
}

// idle reports that nothing is queued or being sent; for tests.
func (q *writeQueue) idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending) == 0 && len(q.releases) == 0 && q.inflight == nil
}

// sent ends the batch in flight.
func (q *writeQueue) sent() {
	q.mu.Lock()
	q.inflight = nil
	q.mu.Unlock()
}

// busy reports whether a write of key is queued or being sent.
func (q *writeQueue) busy(key string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, pending := q.pending[key]
	_, inflight := q.inflight[key]
	return pending || inflight
}

// writer writes queued cooldowns and releases as they come, in batches,
// and renews the leases of the probes this process runs every third of a
// lease, until Close; then it tries once more with what is left, releasing
// every lease it holds. A cooldown Redis refuses or does not answer is not
// queued again: the next refresh that reaches Redis finds what it lacks
// and queues it (see apply).
func (s *Store) writer() {
	defer s.wg.Done()
	renew := time.NewTicker(max(s.lease/3, time.Millisecond))
	defer renew.Stop()
	for {
		select {
		case <-s.stop:
			s.releaseAll()
			s.flush(false)
			return
		case <-s.queue.wake:
			s.flush(false)
		case <-renew.C:
			if s.probing.Load() > 0 {
				s.flush(true)
			}
		}
	}
}

// releaseAll queues the release of every lease this process holds.
func (s *Store) releaseAll() {
	s.mu.Lock()
	var held []renewal
	for k, p := range s.mine {
		if p.leased {
			held = append(held, renewal{k, p.owner})
		}
		s.endProbe(k)
	}
	s.mu.Unlock()
	for _, r := range held {
		s.queue.release(r.key, r.owner, false)
	}
}

// renewals lists the leases to extend; a probe past ProbeTimeout is
// dropped and its lease released instead.
func (s *Store) renewals(b *batch) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, p := range s.mine {
		switch {
		case !p.leased:
		case now.After(p.until):
			// Longer than an attempt may last: the call never said it
			// was done; let another replica probe.
			s.endProbe(k)
			if b.releases == nil {
				b.releases = map[string]release{}
			}
			b.releases[k] = release{owner: p.owner}
		default:
			b.renewals = append(b.renewals, renewal{k, p.owner})
		}
	}
}

// flush sends what is queued (and, with renewing, the renewals of the
// leases held) in one round trip: cooldowns first, so that a probe that
// failed is cooling in Redis before its lease is released.
func (s *Store) flush(renewing bool) {
	b := s.queue.take()
	if renewing {
		s.renewals(&b)
	}
	if b.cools == nil && b.releases == nil && b.renewals == nil && !b.check {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(s.timeout, minBackground))
	defer cancel()
	pipe := s.rdb.Pipeline()
	lease := strconv.FormatInt(s.lease.Milliseconds(), 10)
	maxCool := strconv.FormatInt(s.maxCool.Milliseconds(), 10)
	cools := make(map[string]*redis.Cmd, len(b.cools))
	for key, until := range b.cools {
		cools[key] = coolScript.Eval(ctx, pipe, []string{s.tag + "key:" + key, s.index, s.servedKey(key)},
			strconv.FormatInt(until.UnixMilli(), 10), key, lease, maxCool)
	}
	nowMs := strconv.FormatInt(time.Now().UnixMilli(), 10)
	releases := make(map[string]*redis.Cmd, len(b.releases))
	for key, r := range b.releases {
		served := "0"
		if r.served {
			served = "1"
		}
		releases[key] = releaseScript.Eval(ctx, pipe, []string{s.leaseKey(key), s.probes, s.servedKey(key)}, r.owner, key, served, lease, nowMs)
	}
	end := strconv.FormatInt(time.Now().Add(s.lease).UnixMilli(), 10)
	renewals := make([]*redis.Cmd, len(b.renewals))
	for j, r := range b.renewals {
		renewals[j] = renewScript.Eval(ctx, pipe, []string{s.leaseKey(r.key), s.probes}, r.owner, lease, r.key, end)
	}
	var check *redis.StatusCmd
	if b.check {
		check = pipe.Set(ctx, s.tag+"health", "1", s.lease)
	}
	_, err := pipe.Exec(ctx)
	// The batch leaves the queue once told, so that idle means so; a
	// cooldown written is noted before, so that a refresh never finds it
	// missing.
	defer s.queue.sent()

	// Whether Redis takes writes: said by the cooldowns, renewals and the
	// check that wrote, not by a cooldown that had ended before it was
	// sent, nor by a renewal of a lease another replica holds (the
	// scripts return before they write), nor by releases, which write
	// only when the lease is still this replica's (an out-of-memory Redis
	// deletes the lease, then refuses to index its end: the others wait
	// for the end they read). A batch of releases alone tells its failure.
	var writeErr error
	told := false
	note := func(e error) {
		told = true
		if writeErr == nil && e != nil {
			writeErr = e
		}
	}
	var written, failed int64
	for key, c := range cools {
		switch n, cerr := c.Int64(); {
		case cerr != nil:
			failed++
			note(cerr)
		case n > 0:
			written++
			note(nil)
			s.written(key, b.cools[key])
		}
	}
	s.health.writes.Add(written)
	s.health.writesFailed.Add(failed)
	for _, c := range releases {
		if n, err := c.Int64(); err == nil && n == 1 {
			s.health.releases.Add(1) // not a lease another took since
		}
	}
	for j, c := range renewals {
		switch n, rerr := c.Int64(); {
		case rerr != nil:
			note(rerr)
		case n == 1:
			note(nil)
			s.health.renewals.Add(1)
		default:
			s.lostLease(b.renewals[j]) // another's lease: nothing written
		}
	}
	if check != nil {
		note(check.Err())
	}
	switch {
	case told:
		s.health.record(opWrite, writeErr)
	case err != nil:
		s.health.record(opWrite, err) // releases only, and Redis did not take them
	}
}

// written notes that Redis took a cooldown this replica wrote.
func (s *Store) written(key string, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.local[key]; ok && e.own && e.raw.Equal(until) {
		e.written, e.writtenAt = true, time.Now()
		s.local[key] = e
	}
}

// lostLease notes that another replica holds a lease this one renewed (its
// own had ended, a lease ago without renewal): the probe goes on, held
// here, but its lease is no longer this replica's to renew or release.
func (s *Store) lostLease(r renewal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.mine[r.key]; p != nil && p.owner == r.owner {
		p.leased = false
	}
}

// write sends cooldowns to Redis in one round trip; for tests and
// benchmarks.
func (s *Store) write(cools map[string]time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), max(s.timeout, minBackground))
	defer cancel()
	pipe := s.rdb.Pipeline()
	lease := strconv.FormatInt(s.lease.Milliseconds(), 10)
	maxCool := strconv.FormatInt(s.maxCool.Milliseconds(), 10)
	for key, until := range cools {
		coolScript.Eval(ctx, pipe, []string{s.tag + "key:" + key, s.index, s.servedKey(key)},
			strconv.FormatInt(until.UnixMilli(), 10), key, lease, maxCool)
	}
	_, err := pipe.Exec(ctx)
	return err
}
