package redisstore

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// probe is a candidate a call of this process was given to try after its
// cooldown ended: the probe of it, for the fleet. Other calls of the
// process skip the candidate until the call is done with it (Release, or
// Cool when the probe failed).
type probe struct {
	// owner is the value of the probe's lease in Redis, unique to this
	// claim, so that a late release never ends a later lease.
	owner string
	// until bounds the renewals: the claim's time plus ProbeTimeout.
	until time.Time
	// leased: Redis granted the lease; the writer renews it while the
	// probe runs and releases it when it ends. A probe without a lease (a
	// claim not sent, not answered in time, or refused) is only held
	// locally.
	leased bool
}

// claimScript takes a probe's lease if nobody holds it, the candidate is
// not cooling again (a probe that failed a moment ago, whose cooldown this
// replica has not read yet) and no probe of it served a moment ago, and
// indexes the lease for the refresh loops (pruning leases that ended two
// leases ago by Redis's clock); otherwise it says how long the holder's
// lease has left, until when the candidate cools, or that it serves.
//
// KEYS: the lease, the probes' index, the candidate's cooldown, its mark
// of a probe that served. ARGV: the owner, the lease (ms), the candidate,
// the lease's end (Unix ms), now (Unix ms). Returns {1} when taken, {0,
// PTTL} when another holds it, {2, deadline} when it is cooling, {3} when
// a probe served.
var claimScript = redis.NewScript(`
local cooling = tonumber(redis.call('GET', KEYS[3]) or '0')
if cooling > tonumber(ARGV[5]) then
  return {2, cooling}
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  return {3}
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. string.format('%.0f', now - 2 * tonumber(ARGV[2])))
  redis.call('PEXPIRE', KEYS[2], 3 * tonumber(ARGV[2]))
  return {1}
end
return {0, redis.call('PTTL', KEYS[1])}
`)

// renewScript extends a probe's lease while the probe runs, and takes it
// again if Redis lost it (a restart, a flush); it leaves a lease another
// replica holds alone. Same KEYS and ARGV as claimScript; returns 1 when
// the lease is this owner's, 0 when another holds it.
var renewScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
redis.call('PEXPIRE', KEYS[2], 3 * tonumber(ARGV[2]))
return 1
`)

// releaseScript ends a probe's lease, if it is still this owner's: the
// lease stays indexed, ended at the release, so that every replica's
// refresh reads its end (a lease missing from the index was lost with
// Redis's data, and its probe runs on); a probe that served is marked for
// two leases, so that a replica's claim of it is answered that it serves.
//
// KEYS: the lease, the probes' index, the mark. ARGV: the owner, the
// candidate, "1" when the probe served, the lease (ms), the release's time
// (Unix ms).
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[2])
  if ARGV[3] == '1' then
    redis.call('SET', KEYS[3], '1', 'PX', 2 * tonumber(ARGV[4]))
  end
  return 1
end
return 0
`)

// leaseKey is the key of a candidate's probe lease.
func (s *Store) leaseKey(key string) string { return s.tag + "probe:" + key }

// servedKey is the key of a candidate's mark of a probe that served.
func (s *Store) servedKey(key string) string { return s.tag + "served:" + key }

// newOwner is the value of a new lease.
func (s *Store) newOwner() string {
	return s.owner + ":" + strconv.FormatUint(s.claimN.Add(1), 36)
}

// endProbe forgets the probe of key this process runs, and returns it (nil
// when there is none); s.mu is held.
func (s *Store) endProbe(key string) *probe {
	p := s.mine[key]
	if p != nil {
		delete(s.mine, key)
		s.probing.Add(-1)
	}
	return p
}

// claimAnswer is Redis's answer to a claim: for each candidate, whether
// this replica took the lease; when it did not, how long the holder's has
// left, until when the candidate cools again, or that a probe of it served
// (and it is to be used as it is). won is nil when Redis failed.
type claimAnswer struct {
	won     []bool
	left    []time.Duration
	cooling []time.Time
	served  []bool
}

// says is what a claim's answer (or its failure) tells of Redis: a lease
// taken, that it takes writes; an answer that wrote nothing (the holder's
// lease, a cooldown, a probe that served), only that it answers reads.
func (a claimAnswer) says(err error) (op, error) {
	if err == nil && !slices.Contains(a.won, true) {
		return opRead, nil
	}
	return opWrite, err
}

// claimWait hands a claim's answer to the call that waits for it, or,
// once the call stopped waiting, tells the claim's goroutine to settle it
// itself.
type claimWait struct {
	mu        sync.Mutex
	answer    chan claimAnswer
	abandoned bool
}

// deliver gives the call the answer, and reports false when the call no
// longer waits.
func (w *claimWait) deliver(a claimAnswer) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.abandoned {
		return false
	}
	w.answer <- a // buffered
	return true
}

// abandon stops waiting, unless the answer has just come.
func (w *claimWait) abandon() (claimAnswer, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case a := <-w.answer:
		return a, true
	default:
		w.abandoned = true
		return claimAnswer{}, false
	}
}

// claim asks Redis, for candidates whose cooldown has just ended, which
// replica probes each: a candidate this call probes is answered now (see
// Lookup); one another replica probes is skipped while its lease runs.
// Either way this process holds it meanwhile. Without an answer within
// the timeout, this call probes, and the claim's goroutine settles the late
// answer (a lease taken is then renewed, or released if the call is done).
func (s *Store) claim(ctx context.Context, keys []string, ended []int, out []time.Time, now time.Time) {
	var asked []int
	var owners []string
	s.mu.Lock()
	for _, i := range ended {
		k := keys[i]
		if s.mine[k] != nil { // another call of this process was quicker
			out[i] = now.Add(s.lease)
			continue
		}
		p := &probe{owner: s.newOwner(), until: now.Add(s.probeMax)}
		s.mine[k] = p
		s.probing.Add(1)
		out[i] = now // this call probes it, until it says otherwise
		asked = append(asked, i)
		owners = append(owners, p.owner)
	}
	s.mu.Unlock()
	if len(asked) == 0 {
		return
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
	cands := make([]string, len(asked))
	for j, i := range asked {
		cands[j] = keys[i]
	}
	wait := &claimWait{answer: make(chan claimAnswer, 1)}
	// The claim's goroutine is not one Close waits for: it ends when
	// go-redis gives up on its operation, and the slots bound how many
	// there are.
	go func() {
		defer func() { <-s.claims }()
		a, err := s.takeLeases(cands, owners, now)
		s.health.record(a.says(err))
		if !wait.deliver(a) {
			s.settleLate(cands, owners, a)
		}
	}()
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	var a claimAnswer
	select {
	case a = <-wait.answer:
	case <-t.C:
		var ok bool
		if a, ok = wait.abandon(); !ok {
			s.health.claimsTimedOut.Add(1)
			s.health.record(opRead, errNoAnswer)
			return
		}
	case <-ctx.Done():
		var ok bool
		if a, ok = wait.abandon(); !ok {
			return
		}
	}
	s.settle(cands, owners, asked, a, out, time.Now())
}

// settle applies a claim's answer that came in time: a lease taken is
// renewed while the probe runs; a candidate another replica probes is
// skipped while its lease runs. Without an answer (Redis failed), this
// call probes, holding the candidate locally only.
func (s *Store) settle(cands, owners []string, asked []int, a claimAnswer, out []time.Time, now time.Time) {
	if a.won == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for j, k := range cands {
		p := s.mine[k]
		if p == nil || p.owner != owners[j] {
			continue
		}
		if a.won[j] {
			p.leased = true
			s.health.claimsWon.Add(1)
			continue
		}
		s.endProbe(k)
		e := s.local[k]
		if a.served[j] {
			// Used as it is, by this call and the next, unclaimed.
			e.served, e.probe = now, time.Time{}
			s.local[k] = e
			out[asked[j]] = time.Time{}
			continue
		}
		if until := a.cooling[j]; !until.IsZero() {
			// Cooling again: what the next refresh would have said.
			e.until, e.raw, e.own, e.written = minTime(until, now.Add(s.maxCool)), until, false, false
			s.local[k] = e
			s.bump(e.until)
			out[asked[j]] = e.until
			continue
		}
		left := a.left[j]
		if left <= 0 || left > s.lease {
			left = s.lease // at most a lease, whatever the holder's
		}
		e.probe = now.Add(left)
		s.local[k] = e
		s.bump(e.probe)
		out[asked[j]] = e.probe
	}
}

// settleLate applies a claim's answer that came after its call stopped
// waiting (and probed): a lease taken is kept while the call still probes
// the candidate, and released at once if it is done with it.
func (s *Store) settleLate(cands, owners []string, a claimAnswer) {
	if a.won == nil {
		return
	}
	for j, k := range cands {
		if !a.won[j] {
			continue // another replica probes it too; nothing to undo
		}
		s.health.claimsWon.Add(1)
		s.mu.Lock()
		p := s.mine[k]
		mine := p != nil && p.owner == owners[j]
		if mine {
			p.leased = true
		}
		s.mu.Unlock()
		if !mine {
			s.queue.release(k, owners[j], false)
		}
	}
}

// takeLeases runs the claim script for each candidate, one round trip for
// all.
func (s *Store) takeLeases(cands, owners []string, now time.Time) (claimAnswer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	lease := strconv.FormatInt(s.lease.Milliseconds(), 10)
	end := strconv.FormatInt(now.Add(s.lease).UnixMilli(), 10)
	nowMs := strconv.FormatInt(now.UnixMilli(), 10)
	cmds := make([]*redis.Cmd, len(cands))
	for j, k := range cands {
		cmds[j] = claimScript.Eval(ctx, pipe, []string{s.leaseKey(k), s.probes, s.tag + "key:" + k, s.servedKey(k)}, owners[j], lease, k, end, nowMs)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return claimAnswer{}, err
	}
	a := claimAnswer{won: make([]bool, len(cmds)), left: make([]time.Duration, len(cmds)), cooling: make([]time.Time, len(cmds)), served: make([]bool, len(cmds))}
	for j, c := range cmds {
		reply, err := c.Int64Slice()
		if err != nil {
			return claimAnswer{}, err
		}
		if len(reply) == 0 || len(reply) == 1 && reply[0] != 1 && reply[0] != 3 {
			return claimAnswer{}, errors.New("unexpected reply to a probe claim")
		}
		switch reply[0] {
		case 1:
			a.won[j] = true
		case 3:
			a.served[j] = true
		case 2:
			a.cooling[j] = time.UnixMilli(reply[1])
		default:
			a.left[j] = time.Duration(reply[1]) * time.Millisecond
		}
	}
	return a, nil
}
