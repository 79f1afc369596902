package locks

import (
	"context"
	"time"
)

// The leader decides every expiry. While this node leads, one goroutine
// (the expiry loop) first commits opRearm, then repeatedly finds the
// leases and waits whose deadline has passed on this node's clock and
// commits opExpire for them; it sleeps until the next deadline or until
// the state changes. The loop ends when leadership ends (LeadershipChanged
// false) or the module stops; a later term starts a new loop only after
// the old one has returned, so two never run at once on one node.
//
// Re-arm rule: a new leader cannot know how much of a lease had run on
// its predecessor's clock, so before expiring anything it commits opRearm,
// which sets every lease to end no earlier than its full TTL after the
// re-arm command's time (and every wait no earlier than its full wait):
//
//	expires = max(expires, rearmTime + ttl)
//
// A leader change therefore never shortens a lease: a holder keeps at
// least the TTL that remained at the change, whatever the clock offset
// between the two leaders. The price is liveness only: a lease may last up
// to one full TTL longer (plus however far the new leader's clock lags the
// old one's).
//
// Expiry needs no other clock agreement: opExpire names the exact hold
// (token and deadline) and takes effect only if the command's own time
// (the appending leader's clock) has reached that deadline. This also
// covers a node that has just lost leadership without knowing it yet:
// modules.Raft.Apply forwards instead of refusing, so its last opExpire
// may reach the new leader, which appends it with its own time.

// LeadershipChanged starts the expiry loop when this node becomes leader
// and cancels it when it is no longer leader. It is called from one
// goroutine, in order, and never blocks.
func (l *Locks) LeadershipChanged(isLeader bool) {
	l.init()
	l.life.Lock()
	defer l.life.Unlock()
	if !isLeader {
		l.expiry.Stop()
		return
	}
	if l.stopped || l.host == nil {
		return
	}
	l.expiry.Start(l.ctx, &l.wg, l.lead)
}

// Expiry loop pacing.
const (
	minRetry = 50 * time.Millisecond
	maxRetry = 2 * time.Second
)

// lead is the expiry loop of one term.
func (l *Locks) lead(ctx context.Context) {
	l.leading.Store(true)
	defer l.leading.Store(false)
	retry := minRetry
	for {
		_, err := l.host.Raft().Apply(ctx, opRearm, nil)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		l.logger.Warn("commit re-arm of lock deadlines", "err", err)
		if !sleep(ctx, retry) {
			return
		}
		retry = min(2*retry, maxRetry)
	}
	l.logger.Debug("lock deadlines re-armed; expiring on this node")
	retry = minRetry
	for {
		now := time.Now()
		l.mu.RLock()
		items, next, hasNext := l.st.due(unixNano(now), maxExpireBatch)
		l.mu.RUnlock()
		if len(items) > 0 {
			applied, err := l.host.Raft().Apply(ctx, opExpire, encodeExpire(expireCmd{items: items}))
			if ctx.Err() != nil {
				return
			}
			var expired uint64
			if err == nil {
				expired, err = decodeExpireResult(applied.Result)
			}
			if err != nil {
				l.logger.Warn("commit lock expiry", "items", len(items), "err", err)
			}
			progress := err == nil && expired > 0
			if progress {
				retry = minRetry
				continue
			}
			// Nothing expired: the command's time was before a deadline
			// (this clock stepped back) or leadership just moved. Try
			// again later rather than spin.
			if !sleep(ctx, retry) {
				return
			}
			retry = min(2*retry, maxRetry)
			continue
		}
		var wake <-chan time.Time
		var t *time.Timer
		if hasNext {
			t = time.NewTimer(time.Duration(next - unixNano(now)))
			wake = t.C
		}
		select {
		case <-ctx.Done():
		case <-l.changed:
		case <-wake:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// due returns up to limit leases and waits whose deadline is at or before
// now, and the earliest deadline after now (hasNext false if none).
func (st *state) due(now int64, limit int) (items []expireItem, next int64, hasNext bool) {
	for _, tbl := range []map[string]*sem{st.sems, st.locks} {
		for _, s := range tbl {
			for _, h := range s.holders {
				if h.expires <= now {
					if len(items) < limit {
						items = append(items, expireItem{kind: s.kind, name: s.name, holder: h.id, id: h.token, deadline: h.expires})
					}
				} else if !hasNext || h.expires < next {
					next, hasNext = h.expires, true
				}
			}
			for _, w := range s.queue {
				if w.deadline <= now {
					if len(items) < limit {
						items = append(items, expireItem{kind: s.kind, name: s.name, waiter: true, holder: w.holder, id: w.nonce, deadline: w.deadline})
					}
				} else if !hasNext || w.deadline < next {
					next, hasNext = w.deadline, true
				}
			}
		}
	}
	return items, next, hasNext
}

// sleep waits for d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
