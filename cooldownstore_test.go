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

// releaseStore is a mapStore that says whether it is empty and gives one
// call at a time the probe of a candidate, as a fleet's store does: of the
// first candidate of a lookup that is neither cooling nor held, answered
// with now (see CooldownStore); it records the order of the probes given,
// cooldowns and releases.
type releaseStore struct {
	mapStore
	empty  bool
	held   map[string]bool
	events []string
}

func newReleaseStore() *releaseStore {
	return &releaseStore{mapStore: mapStore{until: map[string]time.Time{}}, held: map[string]bool{}}
}

func (s *releaseStore) Empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.empty
}

func (s *releaseStore) Lookup(ctx context.Context, keys []string, now time.Time) ([]time.Time, error) {
	out, err := s.mapStore.Lookup(ctx, keys, now)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	first := true
	for i, k := range keys {
		switch {
		case !out[i].IsZero():
		case s.held[k]:
			out[i] = now.Add(time.Minute) // another call probes it
		case first:
			s.held[k] = true
			s.events = append(s.events, "give "+k)
			out[i] = now
			first = false
		default:
			first = false
		}
	}
	return out, nil
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
	delete(s.held, key)
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

// A store with a Release method gives a call the probe of the candidate
// it tries first, and of each later one when the walk is about to try it
// (after a failure, as a hedge), never of one the walk does not reach; it
// hears of each probe it gave once the call's walk is over, after the
// call's cooldowns, and of a candidate that served; nothing when it
// reports itself empty.
func TestTheStoreHearsWhenACallIsDoneWithItsCandidates(t *testing.T) {
	r := newRouter(t)
	r.On("org/down", inferencetest.ProviderError(503))
	r.On("org/up", inferencetest.Reply("ok"))
	r.On("org/up", inferencetest.Reply("ok"))
	r.On("org/s", inferencetest.Stream("a ", "b"))
	store := newReleaseStore()
	c, err := r.Client(inference.WithCooldownStore(store), inference.WithRetry(inference.RetryPolicy{}),
		inference.WithFallback(inference.Candidate{Model: "org/up"}, inference.Candidate{Model: "org/spare", Provider: "groq"}))
	require.NoError(t, err)

	_, err = c.Chat(t.Context(), chatReq("org/down", ""))
	require.NoError(t, err)
	assert.Equal(t, []string{"give org/down", "cool org/down", "give org/up", "release org/down", "release org/up (served)"}, store.take(),
		"after the cooldown; the fallback given when the walk reached it, the candidate never tried never")

	s, err := c.ChatStream(t.Context(), chatReq("org/s", ""))
	require.NoError(t, err)
	assert.Equal(t, []string{"give org/s", "release org/s (served)"}, store.take(), "once the stream has opened")
	s.Close()

	// A hedged call: the hedge on the fallback wins, the primary is lost.
	r.On("org/slow", inferencetest.Delay(300*time.Millisecond, inferencetest.Reply("slow")))
	resp, err := c.Chat(t.Context(), chatReq("org/slow", ""), inference.WithHedge(20*time.Millisecond))
	require.NoError(t, err)
	require.Equal(t, "ok", resp.Text())
	assert.Equal(t, []string{"give org/slow", "give org/up", "release org/slow", "release org/up (served)"}, store.take(), "the hedge served")

	sent := len(r.Requests())
	_, err = c.Chat(t.Context(), chatReq("org/up", ""), inference.WithTokenSource(inference.OAuthToken(failingOAuth{})))
	require.ErrorIs(t, err, inference.ErrNoToken)
	require.Len(t, r.Requests(), sent, "nothing was sent")
	assert.Equal(t, []string{"give org/up", "release org/up"}, store.take(), "a call that tries nothing, for want of a token")

	store.mu.Lock()
	store.empty = true
	store.mu.Unlock()
	_, err = c.Chat(t.Context(), chatReq("org/up", ""))
	require.NoError(t, err)
	assert.Empty(t, store.take(), "an empty store holds no probe: nothing is built or called")
}

// A call releases only the probes its store gave it. Another call of the
// process probes org/held; this one tries it anyway (its only candidate,
// all cooling) and gives up: at 2383815 its walk's end released the
// other's probe, and another replica probed too. A later candidate the
// store says is held when the walk reaches it is skipped.
func TestACallReleasesOnlyTheProbesItWasGiven(t *testing.T) {
	r := newRouter(t)
	r.On("org/held", inferencetest.Hang())
	r.On("org/down", inferencetest.ProviderError(503))
	r.On("org/up", inferencetest.Reply("ok"))
	store := newReleaseStore()
	store.held["org/held"] = true // given to another call
	c, err := r.Client(inference.WithCooldownStore(store), inference.WithRetry(inference.RetryPolicy{}), inference.WithAttemptTimeout(2*time.Second))
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = c.Chat(ctx, chatReq("org/held", ""))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Empty(t, store.take(), "tried, never given: nothing released")
	assert.True(t, store.held["org/held"], "the other call's probe runs on")

	req := chatReq("org/down", "")
	req.Fallbacks = []inference.Candidate{{Model: "org/held"}, {Model: "org/up"}}
	resp, err := c.Chat(t.Context(), req)
	require.NoError(t, err)
	assert.Equal(t, []inference.Candidate{{Model: "org/held"}}, resp.Skipped, "held when the walk reached it: skipped")
	assert.Equal(t, []string{"give org/down", "cool org/down", "give org/up", "release org/down", "release org/up (served)"}, store.take())
	held := 0
	for _, m := range r.Models() {
		if m == "org/held" {
			held++
		}
	}
	assert.Equal(t, 1, held, "only the call that gave up tried it")
}
