package consensus

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"
)

// A restarted node restores its last snapshot and learns what is committed
// only from the leader: until then its FSM can be far behind, and a local
// read would answer older state than before its restart. So a node is not
// caught up until it has applied the leader's commit index as of its
// start, learned with a read index (which the leader confirms with a
// quorum). The API's readiness waits for it, so load balancers and
// Kubernetes send no traffic to a node that would serve stale reads.

// runCatchUp learns the leader's commit index once after start and waits
// until the FSM has applied it. It is owned by the Node and stops with it.
func (n *Node) runCatchUp() {
	defer n.wg.Done()
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for {
		if target := n.catchUpTarget.Load(); target > 0 || n.catchUpKnown.Load() {
			if n.fsm.Applied() >= target {
				n.caughtUp.Store(true)
				n.cfg.Logger.Info("caught up with the cluster", "applied", n.fsm.Applied(), "leader_commit_at_start", target)
				// The replay read up to --snapshot-bytes of commands
				// into memory, faster than the modules applied them; that
				// is garbage now, and an idle node would hold the heap it
				// grew to until the runtime's next forced collection,
				// minutes away (99 MB after a restart with 10 M log
				// entries, 40 MB of it that garbage). Give it back once.
				debug.FreeOSMemory()
				return
			}
		} else if idx, ok := n.leaderCommit(); ok {
			n.catchUpTarget.Store(idx)
			n.catchUpKnown.Store(true)
			continue
		}
		select {
		case <-n.stop:
			return
		case <-ticker.C:
		}
	}
}

// leaderCommit asks the leader for a read index: every entry committed
// before the call is at or below it.
func (n *Node) leaderCommit() (uint64, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	go func() { // stop asking when the node stops
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	if n.IsLeader() {
		idx, err := n.LeaderReadIndex(ctx)
		return idx, err == nil
	}
	leaderID, _ := n.Leader()
	if leaderID == "" || n.forwarder == nil {
		return 0, false
	}
	idx, err := n.forwarder.ForwardReadIndex(ctx, leaderID)
	return idx, err == nil
}

// CaughtUp reports whether this node has applied everything committed as
// of its start (see runCatchUp) and everything it knows to be committed
// now. reason says what it is waiting for when it has not.
func (n *Node) CaughtUp() (ok bool, reason string) {
	if why := n.fsm.Halted(); why != "" {
		return false, "the state machine stopped applying commands: " + why
	}
	if !n.caughtUp.Load() {
		if !n.catchUpKnown.Load() {
			return false, "has not yet learned the leader's commit index since it started"
		}
		return false, fmt.Sprintf("catching up: applied %d of the %d the leader had committed when this node started",
			n.fsm.Applied(), n.catchUpTarget.Load())
	}
	if applied, commit := n.fsm.Applied(), n.raft.CommitIndex(); applied < commit {
		return false, fmt.Sprintf("still applying committed entries (%d of %d)", applied, commit)
	}
	return true, ""
}
