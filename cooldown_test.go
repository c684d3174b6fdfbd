package inference

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestMemoryCooldownUnderConcurrency writes and reads the same keys from
// many goroutines: afterwards each key holds the latest end any writer set,
// and readers never saw an end earlier than one already recorded.
func TestMemoryCooldownUnderConcurrency(t *testing.T) {
	m := newMemoryCooldown()
	base := time.Now().Add(time.Hour)
	const writers, keys, rounds = 50, 8, 200
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				key := coolKey{subject: fmt.Sprintf("k%d", (w+r)%keys)}
				end := base.Add(time.Duration(w*rounds+r) * time.Millisecond)
				m.CoolDown(key, end)
				if got := m.Until(key, time.Now()); got.Before(end) {
					t.Errorf("%s: read %v after writing %v", key.subject, got, end)
				}
			}
		}()
	}
	wg.Wait()
	latest := map[coolKey]time.Time{}
	for w := 0; w < writers; w++ {
		for r := 0; r < rounds; r++ {
			key := coolKey{subject: fmt.Sprintf("k%d", (w+r)%keys)}
			if end := base.Add(time.Duration(w*rounds+r) * time.Millisecond); end.After(latest[key]) {
				latest[key] = end
			}
		}
	}
	for k, want := range latest {
		assert.Equal(t, want, m.Until(k, time.Now()), k.subject)
	}
	assert.Equal(t, keys, m.len())
}
