package acl

import (
	"context"
	"time"
)

// The leader removes expired tokens. While this node leads, one goroutine
// (the expiry loop) looks every --acl-expiry-interval for tokens whose
// expiry has passed on this node's clock and commits opExpire for them,
// through ApplyOnLeader (a node that is no longer leader commits nothing).
// opExpire takes effect for a token only if the command's own time (the
// leader's clock when it appended the command) has reached the token's
// expiry, so every node removes exactly the same tokens.
//
// The loop is housekeeping only: Authenticate refuses an expired token on
// every node at once, by its own clock, whether or not it was removed. The
// loop ends when leadership ends or the module stops; a later term starts
// a new loop only after the old one has returned.

// LeadershipChanged starts the expiry loop when this node becomes leader
// and cancels it when it is no longer leader. It is called from one
// goroutine, in order, and never blocks.
func (a *ACL) LeadershipChanged(isLeader bool) {
	a.init()
	a.life.Lock()
	defer a.life.Unlock()
	if !isLeader {
		a.expiry.Stop()
		return
	}
	if a.stopped || a.host == nil {
		return
	}
	a.expiry.Start(a.ctx, &a.wg, a.lead)
}

// lead is the expiry loop of one term.
func (a *ACL) lead(ctx context.Context) {
	a.leading.Store(true)
	defer a.leading.Store(false)
	t := time.NewTicker(a.cfg.ExpiryInterval)
	defer t.Stop()
	for {
		a.expireDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// expireDue commits the removal of every token due on this node's clock,
// in batches; it gives up until the next tick on the first failure.
func (a *ACL) expireDue(ctx context.Context) {
	for ctx.Err() == nil {
		a.mu.RLock()
		due := a.st.due(a.now().UnixNano(), maxExpireBatch)
		a.mu.RUnlock()
		if len(due) == 0 {
			return
		}
		applied, err := a.host.Raft().ApplyOnLeader(ctx, opExpire, encodeExpire(expireCmd{accessors: due}))
		if ctx.Err() != nil {
			return
		}
		n := 0
		if err == nil {
			n, err = decodeExpireResult(applied.Result)
		}
		if err != nil {
			a.logger.Warn("commit acl token expiry", "tokens", len(due), "err", err)
			return
		}
		if n == 0 {
			// The command's time was before the expiries (this clock is
			// ahead of the one that appended it): try at the next tick.
			return
		}
		a.logger.Debug("expired acl tokens", "tokens", n)
	}
}
