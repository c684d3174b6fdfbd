package inference

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// CooldownStore remembers, across the processes of a fleet, which
// candidates are being skipped after a failure and until when, so that N
// replicas probe a failing provider about once per cooldown, not N times.
// Give one to [WithCooldownStore]; without it a client keeps cooldowns in its
// own memory. The module github.com/hfkit/inference/redisstore implements it
// over Redis.
//
// Keys are candidates as the router receives them ("org/model" or
// "org/model:provider"); token sources are never shared, and nothing derived
// from a token is ever passed to a store. Times are absolute, so replicas'
// clocks should agree (NTP). Cooldowns are hints: a store may be eventually
// consistent and may drop entries. It must be safe for concurrent use.
//
// Only failures that concern every caller reach a store: a provider that
// fails (5xx, the client's own timeouts, broken streams, a provider's 429)
// or a model no provider serves. What depends on the account (a gated or
// not-found model, a billing refusal or an organization's provider ban
// under WithBillTo, the router's rate limit on the account) is kept in the
// process for the client's own calls, and not at all for a call made with
// a user's token; a limit a call set for itself cools nothing. A deadline
// a server asked for (Retry-After) is capped by [WithMaxCooldown] before it
// reaches a store.
//
// A call asks Lookup once, for all its candidates; only failing calls call
// Cool. Both run on the call's path: a store must answer at once (from a
// local copy) and bound any round trip itself. A store may also have a
// method Empty() bool that reports, without blocking, that nothing is
// cooling: calls then skip Lookup; a method SetLogger(*slog.Logger),
// which NewClient calls with the client's logger (WithLogger), for a store
// to report its own outages when it has no logger of its own; and a method
// Release(key string, served bool), which a call calls for each candidate
// it was to try once its walk is over (served, failed or stopped: every
// attempt has ended, and every failure has been cooled), served telling
// whether that candidate answered the call, for a store that lets one
// replica probe a candidate whose cooldown ended, and holds the others off
// while the probe runs, to end that probe for the fleet at once (and,
// when it served, to let the others use the candidate again). Release must
// not block (a store does any I/O in the background) and should cost
// nothing for a candidate it holds no probe of; a call skips it when Empty
// reports true. A store's error never fails a call: the client falls back
// to its own memory, and logs the outage once when it begins and once when
// it ends.
type CooldownStore interface {
	// Lookup returns, for each key, when its cooldown ends, or the zero
	// time when it is not cooling at now; one round trip for all keys.
	Lookup(ctx context.Context, keys []string, now time.Time) ([]time.Time, error)
	// Cool makes key cool until the given time, keeping a later end
	// already recorded: the latest deadline wins, atomically.
	Cool(ctx context.Context, key string, until time.Time) error
}

// cooldownStore is a client's own memory of which candidates (by
// "model:provider", alone or with an account suffix, see coolScope) and
// which token sources are being skipped, and until when. Every call of a
// client reads it and failing calls write it, from many goroutines at once.
// It is never shared: a CooldownStore shares the candidates' cooldowns that
// concern every caller, and this memory keeps them too, so that the
// process honours them while the shared store cannot be reached.
type cooldownStore interface {
	// Until returns when key's cooldown ends, or the zero time when it is
	// not cooling at now.
	Until(key string, now time.Time) time.Time
	// CoolDown makes key cool until the given time, keeping a later end
	// already recorded.
	CoolDown(key string, until time.Time)
	// Empty reports, without blocking, that nothing is recorded, so that
	// a client whose calls have not failed skips the lookups.
	Empty() bool
}

// sweepAt is the size at which the memory store drops expired entries, so
// that it stays bounded by the number of candidates in use.
const sweepAt = 256

// memoryCooldown is a cooldownStore for one process.
type memoryCooldown struct {
	mu    sync.Mutex
	until map[string]time.Time
	// size mirrors len(until) for Empty, which every call asks without
	// taking the lock.
	size atomic.Int64
}

// Empty implements cooldownStore.
func (m *memoryCooldown) Empty() bool { return m.size.Load() == 0 }

func newMemoryCooldown() *memoryCooldown {
	return &memoryCooldown{until: make(map[string]time.Time)}
}

// Until implements cooldownStore.
func (m *memoryCooldown) Until(key string, now time.Time) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.until[key]
	if !ok || !t.After(now) {
		return time.Time{}
	}
	return t
}

// CoolDown implements cooldownStore.
func (m *memoryCooldown) CoolDown(key string, until time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.until) >= sweepAt {
		now := time.Now()
		for k, t := range m.until {
			if !t.After(now) {
				delete(m.until, k)
			}
		}
	}
	if until.After(m.until[key]) {
		m.until[key] = until
	}
	m.size.Store(int64(len(m.until)))
}

// len reports how many entries are held, expired or not; for tests.
func (m *memoryCooldown) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.until)
}
