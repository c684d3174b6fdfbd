package redisstore

import (
	"sync"
	"time"
)

// writeQueue holds the cooldowns waiting to be written to Redis: one per
// candidate, the later deadline winning, so that a burst of failures is
// one write per candidate. It is bounded: a full queue drops its oldest
// candidate (counted), and putting never blocks.
type writeQueue struct {
	mu      sync.Mutex
	pending map[string]time.Time
	// inflight is the batch the writer is sending, so that a refresh
	// does not take its candidates for missing from Redis.
	inflight map[string]time.Time
	order    []string // candidates in the order they were queued
	limit    int
	wake     chan struct{}
}

func newWriteQueue(limit int) writeQueue {
	return writeQueue{pending: map[string]time.Time{}, limit: limit, wake: make(chan struct{}, 1)}
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
	select {
	case q.wake <- struct{}{}:
	default: // the writer is awake already
	}
	return !queued
}

// take empties the queue, returning what was in it (nil when empty).
func (q *writeQueue) take() map[string]time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		return nil
	}
	batch := q.pending
	q.pending, q.order, q.inflight = make(map[string]time.Time, len(batch)), nil, batch
	return batch
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

// writer writes queued cooldowns as they come, in batches, until Close;
// then it tries once more with what is left. A batch Redis refuses or does
// not answer is not queued again: the next refresh that reaches Redis
// finds what it lacks and queues it (see sync).
func (s *Store) writer() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			s.flush()
			return
		case <-s.queue.wake:
			s.flush()
		}
	}
}

func (s *Store) flush() {
	batch := s.queue.take()
	if batch == nil {
		return
	}
	err := s.write(batch)
	s.queue.sent()
	s.health.record(opWrite, err)
	if err != nil {
		s.health.writesFailed.Add(int64(len(batch)))
		return
	}
	s.health.writes.Add(int64(len(batch)))
}
