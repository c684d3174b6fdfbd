package inference_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// mapStore is a CooldownStore over a map, shared by several clients as a
// key-value service would be; down makes it fail.
type mapStore struct {
	mu      sync.Mutex
	until   map[string]time.Time
	lookups int
	down    bool
}

func (m *mapStore) Lookup(_ context.Context, keys []string, now time.Time) ([]time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lookups++
	if m.down {
		return nil, errors.New("connection refused")
	}
	out := make([]time.Time, len(keys))
	for i, k := range keys {
		if t := m.until[k]; t.After(now) {
			out[i] = t
		}
	}
	return out, nil
}

func (m *mapStore) Cool(_ context.Context, key string, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return errors.New("connection refused")
	}
	if until.After(m.until[key]) {
		m.until[key] = until
	}
	return nil
}

func TestSharedCooldownStore(t *testing.T) {
	r := newRouter(t)
	r.On("org/down", inferencetest.ProviderError(503))
	r.On("org/up", inferencetest.Reply("ok"))
	store := &mapStore{until: map[string]time.Time{}}
	var logs bytes.Buffer
	opts := []inference.Option{inference.WithCooldownStore(store), inference.WithRetry(inference.RetryPolicy{}),
		inference.WithFallback(inference.Candidate{Model: "org/up"}), inference.WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))}
	first, err := r.Client(opts...)
	require.NoError(t, err)
	second, err := r.Client(opts...)
	require.NoError(t, err)

	_, err = first.Chat(t.Context(), chatReq("org/down", ""))
	require.NoError(t, err)
	assert.Contains(t, store.until, "org/down", "the failing candidate is shared")
	resp, err := second.Chat(t.Context(), chatReq("org/down", ""))
	require.NoError(t, err)
	assert.Equal(t, []inference.Candidate{{Model: "org/down"}}, resp.Skipped, "another client skips it")
	assert.Equal(t, []string{"org/down", "org/up", "org/up"}, r.Models())
	for k := range store.until {
		assert.NotContains(t, k, "token", "token sources stay in the process")
	}

	// The store goes down: calls go on, with one line when it fails and
	// one when it is back.
	store.mu.Lock()
	store.down = true
	store.mu.Unlock()
	for range 5 {
		_, err := second.Chat(t.Context(), chatReq("org/down", ""))
		require.NoError(t, err)
	}
	store.mu.Lock()
	store.down = false
	store.mu.Unlock()
	_, err = second.Chat(t.Context(), chatReq("org/down", ""))
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(logs.String(), "the cooldown store failed"), logs.String())
	assert.Equal(t, 1, strings.Count(logs.String(), "the cooldown store answers again"))

	_, err = second.Chat(t.Context(), chatReq("org/down", ""), inference.WithCooldownStore(store))
	assert.ErrorIs(t, err, inference.ErrInvalidRequest, "a client's store, not a call's")
}
