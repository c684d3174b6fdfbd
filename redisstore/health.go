package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Stats are a store's counters since New, for a health endpoint or an
// observer. Reading them costs a few atomic loads.
type Stats struct {
	// Writes counts cooldowns written to Redis (not one that had ended
	// by the time it was sent, which Redis rightly skips); WritesFailed,
	// those whose batch Redis refused or did not answer (they are written
	// again once a refresh reaches Redis); WritesDropped, those dropped
	// from a full queue.
	Writes, WritesFailed, WritesDropped int64
	// Claims counts probe claims sent on a call's path; ClaimsWon, the
	// candidates whose probe lease this replica took (its calls probed
	// them for the fleet); ClaimsTimedOut, claims Redis did not answer
	// within Options.Timeout (the call probed without waiting longer);
	// ClaimsSkipped, those not sent because two claims were waiting
	// already.
	Claims, ClaimsWon, ClaimsTimedOut, ClaimsSkipped int64
	// Renewals counts the renewals of the leases of probes still running
	// (a slow provider); Releases, leases released when their probe ended
	// (not those Redis had lost, nor another replica had taken since).
	Renewals, Releases int64
	// Refreshes counts refreshes of the local copy; RefreshesFailed, those
	// that failed or that Redis did not answer within Options.Timeout;
	// Refilled, cooldowns this replica wrote, queued again because Redis
	// lacked them.
	Refreshes, RefreshesFailed, Refilled int64
	// Outages counts the times Redis stopped answering or refusing
	// writes; Down reports one under way, and Cause says why.
	Outages int64
	Down    bool
	Cause   string
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	h := &s.health
	h.mu.Lock()
	down, cause := h.readDown || h.writeDown, h.cause
	h.mu.Unlock()
	return Stats{
		Writes: h.writes.Load(), WritesFailed: h.writesFailed.Load(), WritesDropped: h.writesDropped.Load(),
		Claims: h.claimsAsked.Load(), ClaimsWon: h.claimsWon.Load(), ClaimsTimedOut: h.claimsTimedOut.Load(), ClaimsSkipped: h.claimsSkipped.Load(),
		Renewals: h.renewals.Load(), Releases: h.releases.Load(),
		Refreshes: h.refreshes.Load(), RefreshesFailed: h.refreshesFailed.Load(), Refilled: h.refilled.Load(),
		Outages: h.outages.Load(), Down: down, Cause: cause,
	}
}

// op is the kind of Redis operation a result is about: reads (refreshes)
// and writes (cooldowns, probe claims) fail apart, as when Redis is out of
// memory: it answers reads and refuses writes.
type op int

const (
	opRead op = iota
	opWrite
)

// errNoAnswer is an operation the store stopped waiting for (a claim, a
// refresh) after Options.Timeout.
var errNoAnswer = errors.New("no answer")

// health is what the store knows of Redis: whether reads or writes fail,
// why, and its counters. An outage is logged once when the first of the
// two starts failing, with its cause, and once when both work again: never
// per call, and never back and forth when only writes fail.
type health struct {
	timeout time.Duration
	logger  atomic.Pointer[slog.Logger]
	own     bool // the logger is the store's own (Options.Logger)
	dials   dialWatch

	mu                  sync.Mutex
	readDown, writeDown bool
	cause               string
	// announced: the outage under way was logged (there was a logger);
	// vague: its cause is only that Redis did not answer in time.
	announced, vague bool

	writes, writesFailed, writesDropped                   atomic.Int64
	claimsAsked, claimsWon, claimsTimedOut, claimsSkipped atomic.Int64
	renewals, releases                                    atomic.Int64
	refreshes, refreshesFailed, refilled                  atomic.Int64
	outages                                               atomic.Int64
}

// record notes the result of an operation of kind o. The first failure
// starts an outage, announced at once with its cause: an operation that
// did not answer in time is said so, unless go-redis's last dial failed,
// which then names the cause (a refused connection, an unknown host). A
// later, more telling error replaces a cause that only said Redis did not
// answer, in Stats.
func (h *health) record(o op, err error) {
	h.mu.Lock()
	wasDown := h.readDown || h.writeDown
	flag := &h.readDown
	if o == opWrite {
		flag = &h.writeDown
	}
	*flag = err != nil
	isDown := h.readDown || h.writeDown
	logger := h.logger.Load()
	var tell, recovered bool
	switch {
	case err != nil:
		if !wasDown {
			h.outages.Add(1)
			h.cause, h.vague = "", false
		}
		if dialErr := h.dials.failure(); dialErr != nil && isNoAnswer(err) {
			err = dialErr
		}
		vague := isNoAnswer(err)
		if h.cause == "" || h.vague && !vague {
			h.cause, h.vague = cause(err, h.timeout), vague
		}
		tell = !h.announced && logger != nil
	case wasDown && !isDown:
		recovered = h.announced && logger != nil
		h.cause, h.vague, h.announced = "", false, false
	}
	h.announced = h.announced || tell
	msg := h.cause
	h.mu.Unlock()
	switch {
	case tell:
		logOutage(logger, msg)
	case recovered:
		logger.LogAttrs(context.Background(), slog.LevelInfo, "redisstore: Redis answers again; cooldowns are shared")
	}
}

// isNoAnswer reports an operation that ended because time ran out, which
// says nothing of why Redis did not answer.
func isNoAnswer(err error) bool {
	return errors.Is(err, errNoAnswer) || errors.Is(err, context.DeadlineExceeded)
}

// writesDown reports that the last write failed.
func (h *health) writesDown() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.writeDown
}

// setLogger gives health a logger, and tells it of an outage under way
// that no logger heard of.
func (h *health) setLogger(l *slog.Logger) {
	h.mu.Lock()
	h.logger.Store(l)
	tell := (h.readDown || h.writeDown) && !h.announced
	msg := h.cause
	h.announced = h.announced || tell
	h.mu.Unlock()
	if tell {
		logOutage(l, msg)
	}
}

func logOutage(l *slog.Logger, msg string) {
	l.LogAttrs(context.Background(), slog.LevelWarn,
		"redisstore: "+msg+"; cooldowns go on in this process, and calls do not wait for Redis")
}

// cause says why Redis failed, in words an operator can act on.
func cause(err error, timeout time.Duration) string {
	var netErr net.Error
	msg := strings.TrimSpace(err.Error())
	switch {
	case errors.Is(err, errNoAnswer):
		return fmt.Sprintf("Redis did not answer within %s", timeout)
	case errors.Is(err, context.DeadlineExceeded):
		return "Redis did not answer in time (" + msg + ")"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "Redis did not answer (" + msg + ")"
	case strings.HasPrefix(msg, "OOM"):
		return "Redis is out of memory and refuses writes (" + msg + "): raise maxmemory or choose an eviction policy"
	case strings.HasPrefix(msg, "CROSSSLOT"), strings.HasPrefix(msg, "MOVED"), strings.HasPrefix(msg, "NOSCRIPT"),
		strings.HasPrefix(msg, "READONLY"), strings.HasPrefix(msg, "NOPERM"), strings.HasPrefix(msg, "WRONGPASS"),
		strings.HasPrefix(msg, "NOAUTH"), strings.HasPrefix(msg, "CLUSTERDOWN"), strings.HasPrefix(msg, "TRYAGAIN"),
		strings.HasPrefix(msg, "LOADING"), strings.HasPrefix(msg, "MASTERDOWN"), strings.HasPrefix(msg, "ERR"):
		return "Redis refused: " + msg
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return "Redis closed the connection (" + msg + "): it stopped, restarted or dropped the client"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "Redis refused the connection (" + msg + "): is it running at that address?"
	}
	return "Redis failed: " + msg
}
