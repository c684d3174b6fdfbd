package redisstore

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// fleetResult is what a fleet saw of a primary's outage.
type fleetResult struct {
	requests        int
	primaryInOutage int
	recoveredAfter  time.Duration // from the outage's end to the primary serving again
	times           []time.Duration
	// knownAt is when every replica knew of the first failure (known
	// reported it), from the start; afterKnown counts the primary
	// attempts during the outage from then on.
	knownAt    time.Duration
	afterKnown int
}

// simulateFleet runs replicas clients, each with its own store (from
// store, nil for the memory default), against a primary that is down for
// outage while a fallback serves; requests come every interval, spread
// over the replicas, until after the outage. known, when not nil, is
// polled from the start until it reports that every replica knows the
// primary is cooling.
func simulateFleet(t *testing.T, replicas int, outage, cooldown, interval time.Duration, store func() inference.CooldownStore, known func() bool) fleetResult {
	r := inferencetest.NewRouter()
	defer r.Close()
	start := time.Now()
	var mu sync.Mutex
	var primaryServedAt time.Time
	r.On("org/primary", func(w http.ResponseWriter, req *inferencetest.Request) {
		if time.Since(start) < outage {
			inferencetest.ProviderError(503)(w, req)
			return
		}
		mu.Lock()
		if primaryServedAt.IsZero() {
			primaryServedAt = time.Now()
		}
		mu.Unlock()
		inferencetest.Reply("from the primary")(w, req)
	})
	r.On("org/fallback", inferencetest.Reply("from the fallback"))
	clients := make([]*inference.Client, replicas)
	for i := range clients {
		opts := []inference.Option{inference.WithRetry(inference.RetryPolicy{}), inference.WithCooldown(cooldown),
			inference.WithFallback(inference.Candidate{Model: "org/fallback"})}
		if store != nil {
			opts = append(opts, inference.WithCooldownStore(store()))
		}
		c, err := r.Client(opts...)
		require.NoError(t, err)
		clients[i] = c
	}
	var res fleetResult
	var wg sync.WaitGroup
	if known != nil {
		wg.Go(func() {
			for time.Since(start) < outage {
				if known() {
					res.knownAt = time.Since(start)
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	for i := 0; time.Since(start) < outage+2*cooldown; i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		c := clients[i%replicas]
		res.requests++
		wg.Go(func() {
			_, err := c.Chat(t.Context(), chatReq("org/primary"))
			assert.NoError(t, err, "every request is served")
		})
	}
	wg.Wait()
	for _, q := range r.Requests() {
		if q.Model == "org/primary" && q.Time.Sub(start) < outage {
			res.primaryInOutage++
			res.times = append(res.times, q.Time.Sub(start).Round(time.Millisecond))
			if known != nil && res.knownAt > 0 && q.Time.Sub(start) > res.knownAt {
				res.afterKnown++
			}
		}
	}
	res.recoveredAfter = primaryServedAt.Sub(start.Add(outage))
	return res
}

// TestFleetProbesAFailingPrimaryOncePerWindow is the fleet simulation:
// 8 replicas, a primary down for 3 s with a 1 s cooldown (the 60 s outage
// and 30 s cooldown of the README, scaled), requests every 10 ms spread
// over the replicas. With the memory default each replica probes the
// primary once per window; sharing through Redis, the fleet does, once
// every replica has read the first failure.
func TestFleetProbesAFailingPrimaryOncePerWindow(t *testing.T) {
	rdb := sharedRedis(t)
	const (
		replicas = 8
		outage   = 3 * time.Second
		cooldown = time.Second
		refresh  = 50 * time.Millisecond
		interval = 10 * time.Millisecond
	)
	memory := simulateFleet(t, replicas, outage, cooldown, interval, nil, nil)
	p := prefix(t)
	var stores []*Store
	var mu sync.Mutex
	shared := simulateFleet(t, replicas, outage, cooldown, interval, func() inference.CooldownStore {
		s := newStore(t, rdb, Options{Prefix: p, Refresh: refresh})
		mu.Lock()
		stores = append(stores, s)
		mu.Unlock()
		return s
	}, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range stores {
			if !s.cooling("org/primary", time.Now()) {
				return false
			}
		}
		return len(stores) == replicas
	})
	windows := int(outage / cooldown)
	t.Logf("memory stores: %d requests, %d primary attempts during the %s outage (%d windows), primary again %s after it recovered",
		memory.requests, memory.primaryInOutage, outage, windows, memory.recoveredAfter.Round(time.Millisecond))
	t.Logf("one Redis:     %d requests, %d primary attempts during the outage (%d once every replica knew, %s in), primary again %s after it recovered",
		shared.requests, shared.primaryInOutage, shared.afterKnown, shared.knownAt.Round(time.Millisecond), shared.recoveredAfter.Round(time.Millisecond))
	t.Logf("primary attempts at: memory %v; Redis %v", memory.times, shared.times)
	assert.GreaterOrEqual(t, memory.primaryInOutage, replicas*windows, "alone, every replica learns for itself")
	// Shared: the replicas that ask before the first failure reaches them
	// probe too (learning, about a refresh's worth of requests); once
	// every replica knows, one probe per window for the fleet.
	require.Positive(t, shared.knownAt, "every replica read the first failure during the outage")
	assert.LessOrEqual(t, shared.afterKnown, windows, "shared, one probe per window for the fleet")
	assert.Less(t, shared.primaryInOutage, memory.primaryInOutage)
	assert.LessOrEqual(t, shared.recoveredAfter, cooldown+refresh+200*time.Millisecond, "back within a cooldown and the staleness bound")
	assert.GreaterOrEqual(t, shared.recoveredAfter, time.Duration(0))
}
