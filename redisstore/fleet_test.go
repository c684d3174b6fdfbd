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
}

// simulateFleet runs replicas clients, each with its own store (from
// store, nil for the memory default), against a primary that is down for
// outage while a fallback serves; requests come every interval, spread
// over the replicas, until after the outage.
func simulateFleet(t *testing.T, replicas int, outage, cooldown, interval time.Duration, store func() inference.CooldownStore) fleetResult {
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
		}
	}
	res.recoveredAfter = primaryServedAt.Sub(start.Add(outage))
	return res
}

// TestFleetProbesAFailingPrimaryOncePerWindow is the fleet simulation:
// 8 replicas, a primary down for 3 s with a 1 s cooldown (the 60 s outage
// and 30 s cooldown of the README, scaled), requests every 10 ms spread
// over the replicas. With the memory default each replica probes the
// primary once per window; sharing through Redis, the fleet does.
func TestFleetProbesAFailingPrimaryOncePerWindow(t *testing.T) {
	rdb := sharedRedis(t)
	const (
		replicas = 8
		outage   = 3 * time.Second
		cooldown = time.Second
		refresh  = 50 * time.Millisecond
		interval = 10 * time.Millisecond
	)
	memory := simulateFleet(t, replicas, outage, cooldown, interval, nil)
	p := prefix(t)
	shared := simulateFleet(t, replicas, outage, cooldown, interval, func() inference.CooldownStore {
		return newStore(t, rdb, Options{Prefix: p, Refresh: refresh})
	})
	windows := int(outage / cooldown)
	t.Logf("memory stores: %d requests, %d primary attempts during the %s outage (%d windows), primary again %s after it recovered",
		memory.requests, memory.primaryInOutage, outage, windows, memory.recoveredAfter.Round(time.Millisecond))
	t.Logf("one Redis:     %d requests, %d primary attempts during the outage, primary again %s after it recovered",
		shared.requests, shared.primaryInOutage, shared.recoveredAfter.Round(time.Millisecond))
	t.Logf("primary attempts at: memory %v; Redis %v", memory.times, shared.times)
	assert.GreaterOrEqual(t, memory.primaryInOutage, replicas*windows, "alone, every replica learns for itself")
	// Shared: the replicas that ask before the first failure reaches them
	// (one refresh, requests every interval) probe too; after that, one
	// probe per window for the whole fleet.
	learning := int(refresh/interval) + 1
	assert.LessOrEqual(t, shared.primaryInOutage, learning+windows, "shared, about one probe per window for the fleet")
	assert.LessOrEqual(t, shared.recoveredAfter, cooldown+refresh+200*time.Millisecond, "back within a cooldown and the staleness bound")
	assert.GreaterOrEqual(t, shared.recoveredAfter, time.Duration(0))
}
