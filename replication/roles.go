package replication

import (
	"context"
	"errors"
	"time"
)

// Who leads replication. The replication leader is the node Raft records
// (syncState.leader), set by a committed claim. Only the Raft leader
// submits claims, and the state machine accepts a claim only for a member
// of the in-sync set, so whoever leads replication holds every
// acknowledged write. The Raft leader's duty (raftDuty) is:
//
//   - if it is in the in-sync set (or the set is empty: a new cluster), it
//     claims replication leadership for itself: leadership follows Raft;
//   - otherwise it leaves it with the recorded leader while that node is an
//     alive member of the set, or claims it for another alive member. It
//     never takes it itself: it may lack acknowledged writes. It follows
//     the replication leader like any follower, and rejoins the set once it
//     has caught up, after which it claims.
//
// A node serves as replication leader (leadLoop) while Raft records it as
// such, after a read barrier (so that it does not act on a stale state,
// after a restart say), and stops when Raft records another leader or it
// cannot reach the Raft leader for a while (cut off: it cannot know
// whether another node leads now, and its writes could not be
// acknowledged anyway).

// dutyInterval is how often the Raft leader re-examines its duty without a
// state change (a recorded leader may die without one).
const dutyInterval = 250 * time.Millisecond

// LeadershipChanged starts the Raft leader's duty when this node becomes
// Raft leader and stops it when it no longer is. It never blocks.
func (m *Replication) LeadershipChanged(isLeader bool) {
	m.init()
	m.raftLeader.Store(isLeader)
	m.life.Lock()
	if isLeader {
		m.startRaftDuty()
	} else if m.dutyCancel != nil {
		m.dutyCancel()
		m.dutyCancel = nil
		m.notInSync.Store(false)
	}
	m.life.Unlock()
	m.stateChanged()
}

// startRaftDuty starts the duty goroutine; the caller holds life.
func (m *Replication) startRaftDuty() {
	if m.stopped || !m.started || m.dutyCancel != nil || m.host == nil {
		return
	}
	ctx, cancel := context.WithCancel(m.ctx)
	prev, done := m.dutyDone, make(chan struct{})
	m.dutyCancel, m.dutyDone = cancel, done
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(done)
		if prev != nil {
			<-prev
		}
		m.raftDuty(ctx)
	}()
}

// raftDuty keeps replication leadership on a live in-sync node while this
// node leads Raft.
func (m *Replication) raftDuty(ctx context.Context) {
	for {
		st, ch := m.stateAndChan()
		target := m.chooseLeader(st)
		m.notInSync.Store(target == "")
		if target == "" {
			m.logger.Debug("no live member of the in-sync set can lead replication", "in_sync", st.inSync)
		} else if target != st.leader {
			_, err := m.host.Raft().ApplyOnLeader(ctx, opClaim, encodeCommand(command{op: opClaim, node: target}))
			switch {
			case err == nil:
				m.logger.Info("replication leadership claimed", "for", target)
			case ctx.Err() != nil:
				return
			case errors.Is(err, ErrNotInSync):
				// The set changed under us: look again.
			default:
				m.logger.Warn("claim replication leadership", "for", target, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-time.After(dutyInterval):
		}
	}
}

// chooseLeader says who should lead replication: this node if it is in
// the in-sync set (or the set is empty), else the recorded leader while it
// is an alive member, else the first alive member; "" if none is alive.
func (m *Replication) chooseLeader(st syncState) string {
	self := m.host.NodeName()
	if len(st.inSync) == 0 || st.has(self) {
		return self
	}
	alive := map[string]bool{}
	for _, s := range m.host.Cluster().Servers() {
		alive[s.Name] = s.Alive
	}
	if st.leader != "" && st.has(st.leader) && alive[st.leader] {
		return st.leader
	}
	for _, n := range st.inSync {
		if alive[n] {
			return n
		}
	}
	return ""
}

// leadLoop runs for the module's life and serves as replication leader
// whenever Raft records this node as such.
func (m *Replication) leadLoop(ctx context.Context) {
	self := m.host.NodeName()
	for {
		st, ch := m.stateAndChan()
		if ctx.Err() != nil {
			return
		}
		if st.leader != self {
			select {
			case <-ctx.Done():
				return
			case <-ch:
			}
			continue
		}
		// A read barrier: act on the latest state, not a replayed one.
		rctx, cancel := context.WithTimeout(ctx, m.cfg.AckTimeout)
		err := m.host.Raft().ReadIndex(rctx)
		cancel()
		if err == nil && m.state().leader == self {
			m.lead(ctx)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-time.After(dutyInterval):
		}
	}
}

// lead serves one replication leadership: it indexes the directory and
// serves writes and followers until Raft records another leader, the Raft
// leader cannot be reached for two ack timeouts, or ctx ends.
func (m *Replication) lead(ctx context.Context) {
	self := m.host.NodeName()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		m.watchLeadership(ctx, cancel, self)
	}()
	defer func() { cancel(); <-watchDone }()
	if !m.acquireDisk(ctx) {
		return
	}
	defer m.releaseDisk()
	entries, err := m.store.list("")
	if err != nil {
		m.logger.Error("index the replicated directory", "err", err)
		return
	}
	term := m.state().term
	l := newLeadership(ctx, m, entries)
	m.current.Store(l)
	m.logger.Info("replication leader", "files", len(entries), "term", term)
	m.hook(eventElected, term)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.watch()
	}()
	l.monitor()
	m.current.Store(nil)
	l.close()
	m.logger.Info("replication leadership ended", "term", term)
	m.hook(eventLost, term)
}

// watchLeadership cancels the leadership when Raft records another leader,
// or when read barriers fail for two ack timeouts in a row.
func (m *Replication) watchLeadership(ctx context.Context, cancel context.CancelFunc, self string) {
	tick := time.NewTicker(m.cfg.AckTimeout)
	defer tick.Stop()
	failures := 0
	for {
		st, ch := m.stateAndChan()
		if st.leader != self {
			cancel()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-tick.C:
			rctx, rcancel := context.WithTimeout(ctx, m.cfg.AckTimeout)
			err := m.host.Raft().ReadIndex(rctx)
			rcancel()
			if err == nil {
				failures = 0
			} else if failures++; failures >= 2 && ctx.Err() == nil {
				m.logger.Warn("cut off from the raft leader: stepping down as replication leader", "err", err)
				cancel()
				return
			}
		}
	}
}

// acquireDisk takes the directory for one role until releaseDisk.
func (m *Replication) acquireDisk(ctx context.Context) bool {
	select {
	case m.disk <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (m *Replication) releaseDisk() { <-m.disk }
