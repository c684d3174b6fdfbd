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
	"golang.org/x/oauth2"

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

// releaseStore is a mapStore that says whether it is empty and hears when
// a call is done with its candidates (Release), recording the order of
// cooldowns and releases.
type releaseStore struct {
	mapStore
	empty  bool
	events []string
}

func (s *releaseStore) Empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.empty
}

func (s *releaseStore) Cool(ctx context.Context, key string, until time.Time) error {
	s.mu.Lock()
	s.events = append(s.events, "cool "+key)
	s.mu.Unlock()
	return s.mapStore.Cool(ctx, key, until)
}

func (s *releaseStore) Release(key string, served bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if served {
		key += " (served)"
	}
	s.events = append(s.events, "release "+key)
}

func (s *releaseStore) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.events
	s.events = nil
	return e
}

type failingOAuth struct{}

func (failingOAuth) Token() (*oauth2.Token, error) { return nil, errors.New("the session expired") }

// A store with a Release method hears, once a call's walk is over, of
// every candidate the call was to try (the probe it ran, if it was the
// first to find a cooldown ended, ends there for the fleet), after the
// call's cooldowns; and nothing when it reports itself empty.
func TestTheStoreHearsWhenACallIsDoneWithItsCandidates(t *testing.T) {
	r := newRouter(t)
	r.On("org/down", inferencetest.ProviderError(503))
	r.On("org/up", inferencetest.Reply("ok"))
	r.On("org/up", inferencetest.Reply("ok"))
	r.On("org/s", inferencetest.Stream("a ", "b"))
	store := &releaseStore{mapStore: mapStore{until: map[string]time.Time{}}}
	c, err := r.Client(inference.WithCooldownStore(store), inference.WithRetry(inference.RetryPolicy{}),
		inference.WithFallback(inference.Candidate{Model: "org/up"}, inference.Candidate{Model: "org/spare", Provider: "groq"}))
	require.NoError(t, err)

	_, err = c.Chat(t.Context(), chatReq("org/down", ""))
	require.NoError(t, err)
	assert.Equal(t, []string{"cool org/down", "release org/down", "release org/up (served)", "release org/spare:groq"}, store.take(),
		"after the cooldown; the candidate never tried too")

	s, err := c.ChatStream(t.Context(), chatReq("org/s", ""))
	require.NoError(t, err)
	assert.Equal(t, []string{"release org/s (served)", "release org/up", "release org/spare:groq"}, store.take(), "once the stream has opened")
	s.Close()

	// A hedged call: the hedge on the fallback wins, the primary is lost.
	r.On("org/slow", inferencetest.Delay(300*time.Millisecond, inferencetest.Reply("slow")))
	resp, err := c.Chat(t.Context(), chatReq("org/slow", ""), inference.WithHedge(20*time.Millisecond))
	require.NoError(t, err)
	require.Equal(t, "ok", resp.Text())
	assert.Equal(t, []string{"release org/slow", "release org/up (served)", "release org/spare:groq"}, store.take(), "the hedge served")

	sent := len(r.Requests())
	_, err = c.Chat(t.Context(), chatReq("org/up", ""), inference.WithTokenSource(inference.OAuthToken(failingOAuth{})))
	require.ErrorIs(t, err, inference.ErrNoToken)
	require.Len(t, r.Requests(), sent, "nothing was sent")
	assert.Equal(t, []string{"release org/up", "release org/spare:groq"}, store.take(), "a call that tries nothing, for want of a token")

	store.mu.Lock()
	store.empty = true
	store.mu.Unlock()
	_, err = c.Chat(t.Context(), chatReq("org/up", ""))
	require.NoError(t, err)
	assert.Empty(t, store.take(), "an empty store holds no probe: nothing is built or called")
}
