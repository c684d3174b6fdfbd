package redisstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// snapshot is what one refresh read from Redis: the cooldowns' index and
// the running probes' leases.
type snapshot struct {
	index, probes []redis.Z
	err           error
	// at is when the read was sent: a write answered later may be
	// missing from it.
	at time.Time
}

// loop refreshes the local copy now and every refresh until Close. Each
// refresh reads Redis in a goroutine of its own and is waited for on the
// store's own timer: a refresh Redis does not answer within the timeout
// marks an outage at once, however long go-redis goes on waiting (its
// read timeout, its dial retries), and while it waits no other read is
// sent: the ticks meanwhile count as failed refreshes.
func (s *Store) loop() {
	defer s.wg.Done()
	tick := time.NewTicker(s.refresh)
	defer tick.Stop()
	deadline := time.NewTimer(s.timeout)
	defer deadline.Stop()
	results := make(chan snapshot, 1) // buffered: a read ends even after Close
	waiting, late := false, false
	read := func() {
		s.health.refreshes.Add(1)
		waiting, late = true, false
		go func() { results <- s.read() }()
		deadline.Reset(s.timeout)
	}
	read()
	for {
		select {
		case <-s.stop:
			return
		case snap := <-results:
			waiting = false
			deadline.Stop()
			if snap.err != nil && !late {
				s.health.refreshesFailed.Add(1)
			}
			s.apply(snap)
		case <-deadline.C:
			if waiting && !late {
				late = true
				s.health.refreshesFailed.Add(1)
				s.health.record(opRead, errNoAnswer)
			}
		case <-tick.C:
			if waiting {
				// Still waiting for the last read: this refresh fails too.
				s.health.refreshes.Add(1)
				s.health.refreshesFailed.Add(1)
				continue
			}
			read()
		}
	}
}

// sync is one refresh, waited for whatever it takes; for tests.
func (s *Store) sync() {
	s.health.refreshes.Add(1)
	snap := s.read()
	if snap.err != nil {
		s.health.refreshesFailed.Add(1)
	}
	s.apply(snap)
}

// read reads the index and the probes' leases in one round trip.
func (s *Store) read() snapshot {
	ctx, cancel := context.WithTimeout(context.Background(), max(s.timeout, minBackground))
	defer cancel()
	pipe := s.rdb.Pipeline()
	index := pipe.ZRangeWithScores(ctx, s.index, 0, -1)
	probes := pipe.ZRangeWithScores(ctx, s.probes, 0, -1)
	at := time.Now()
	if _, err := pipe.Exec(ctx); err != nil {
		return snapshot{err: err, at: at}
	}
	return snapshot{index: index.Val(), probes: probes.Val(), at: at}
}

// apply makes a snapshot the local copy, and queues again the cooldowns
// this replica wrote that Redis lacks or holds with an earlier deadline
// (a Redis restarted empty, flushed, evicted, or a write lost in an
// outage). A deadline read is capped at MaxCooldown from when this replica
// first read it, the end of a probe's lease at a lease. A cooldown another replica wrote that Redis no longer
// holds is kept until it ends (Redis may have lost it), but never written
// again by this one.
func (s *Store) apply(snap snapshot) {
	s.health.record(opRead, snap.err)
	if snap.err != nil {
		return
	}
	now := time.Now()
	fresh := make(map[string]entry, len(snap.index)+len(snap.probes))
	var missing []string
	var untils []time.Time
	s.mu.Lock()
	for _, z := range snap.index {
		key, ok := z.Member.(string)
		if !ok {
			continue
		}
		raw := time.UnixMilli(int64(z.Score))
		if now.Sub(raw) >= s.lease {
			continue // ended long ago; Redis prunes it at the next write
		}
		old := s.local[key]
		e := entry{raw: raw, until: minTime(raw, now.Add(s.maxCool))}
		if old.raw.Equal(raw) {
			// Read before: capped from then, not from now.
			e.until, e.own, e.written, e.writtenAt = old.until, old.own, old.own, old.writtenAt
		}
		fresh[key] = e
	}
	for key, old := range s.local {
		f, held := fresh[key]
		if old.raw.IsZero() || now.Sub(old.until) >= s.lease || held && !old.raw.After(f.raw) {
			continue // nothing to keep, or Redis holds it (or later)
		}
		switch {
		case old.own:
			// This replica's deadline, which Redis lacks or holds
			// earlier: kept, and written again unless Redis took it
			// (and shortened it to the maximum by its clock), or took it
			// after this read was sent.
			late := old.written && old.writtenAt.After(snap.at)
			if old.until.After(now) && (!held || !old.written) && !late {
				missing = append(missing, key)
				untils = append(untils, old.raw)
			}
		case held:
			continue // another's: Redis's deadline is the one to follow
		}
		old.probe = time.Time{}
		fresh[key] = old
	}
	for _, z := range snap.probes {
		key, ok := z.Member.(string)
		if !ok {
			continue
		}
		end := time.UnixMilli(int64(z.Score))
		if now.Sub(end) >= s.lease {
			continue // a lease that ended long ago
		}
		// The lease's end by the prober's clock, and a lease from when it
		// was first read at most: a prober whose clock runs ahead (or
		// that was misconfigured) and died holds nobody off longer.
		e := fresh[key]
		seen := now
		if old := s.local[key]; old.probeRaw.Equal(end) {
			seen = old.probeSeen
		}
		e.probe, e.probeRaw, e.probeSeen = minTime(end, seen.Add(s.lease)), end, seen
		fresh[key] = e
	}
	for key, old := range s.local {
		if e := fresh[key]; e.probe.IsZero() && old.probe.After(now) {
			// A running probe's lease Redis no longer holds: lost with
			// its data (a restart, a flush, a failover), since a release
			// leaves it indexed. The prober writes it again at its next
			// renewal; until then, or until it ends, it is kept.
			e.probe, e.probeRaw, e.probeSeen = old.probe, old.probeRaw, old.probeSeen
			fresh[key] = e
		}
	}
	var latest int64
	for key, e := range fresh {
		if served := s.local[key].served; served.After(e.served) {
			e.served = served // a probe served: not claimed again for it
			fresh[key] = e
		}
		latest = max(latest, e.until.UnixNano(), e.probe.UnixNano())
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
		// Redis holds every cooldown written here; whether it takes
		// writes again, a short-lived key tells.
		s.queue.check()
	}
}
