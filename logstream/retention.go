package logstream

import (
	"context"
	"time"

	"shoal/logstream/segment"
)

// Retention by count is part of each append command. Retention by bytes
// and by age depends on the sizes and times in a log's store, and age on a
// clock: the leader alone decides it, from its own store and clock, and
// replicates the outcome as an opTrim carrying the new first index, so
// every node drops exactly the same entries whatever its segment layout or
// clock.

// retentionLoop runs until ctx ends, checking every log's limits while
// this node leads.
func (l *Log) retentionLoop(ctx context.Context) {
	defer close(l.retentionDone)
	ticker := time.NewTicker(l.cfg.RetentionInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if l.host.Raft().IsLeader() {
			l.enforceRetention(ctx, time.Now())
		}
	}
}

// retentionCheck is one log to check, read under the lock.
type retentionCheck struct {
	name           string
	created, first uint64
	last           uint64
	store          *segment.Store
	maxBytes       uint64
	maxAge         time.Duration
}

// enforceRetention submits a trim for every log past its byte or age
// limit at now.
func (l *Log) enforceRetention(ctx context.Context, now time.Time) {
	var checks []retentionCheck
	l.mu.RLock()
	for _, ls := range l.st.logs {
		c := retentionCheck{name: ls.name, created: ls.created, first: ls.first, last: ls.last(), store: ls.store,
			maxBytes: uint64(l.cfg.MaxBytes), maxAge: l.cfg.MaxAge}
		if ls.lim.set&limitBytes != 0 {
			c.maxBytes = ls.lim.maxBytes
		}
		if ls.lim.set&limitAge != 0 {
			c.maxAge = time.Duration(ls.lim.maxAge)
		}
		if c.store != nil && ls.entries() > 1 && (c.maxBytes > 0 || c.maxAge > 0) {
			checks = append(checks, c)
		}
	}
	l.mu.RUnlock()
	for _, c := range checks {
		target := c.first
		if c.maxBytes > 0 {
			if off, err := c.store.OffsetForBytes(int64(c.maxBytes)); err == nil {
				target = max(target, off)
			}
		}
		if c.maxAge > 0 {
			if off, err := c.store.OffsetAtTime(now.Add(-c.maxAge).UnixNano()); err == nil {
				target = max(target, off)
			}
		}
		target = min(target, c.last) // the newest entry stays
		if target <= c.first {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := l.host.Raft().ApplyOnLeader(cctx, opTrim, encodeTrim(trimCmd{log: c.name, created: c.created, first: target}))
		cancel()
		if err != nil {
			l.logger.Debug("retention trim not applied", "log", c.name, "first", target, "err", err)
			continue
		}
		l.m.trims.Inc()
	}
}
