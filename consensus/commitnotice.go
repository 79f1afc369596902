package consensus

import (
	"errors"
	"time"

	"github.com/hashicorp/raft"

	"shoal/modules"
)

// Followers learn that an entry is committed from the commit index the
// leader puts on its next AppendEntries. hashicorp/raft sends one when a
// new entry is appended, or, when writes stop, once every CommitTimeout
// (50–100 ms at raft's default 50 ms) on every follower's replication
// loop: the last write of a burst reached followers' state machines that
// much later, a write forwarded by a follower waited that long for the
// follower's own apply, and an idle leader sent each follower 13 empty
// AppendEntries a second only in case something had been committed
// (etcd's raft instead broadcasts an append as soon as its commit index
// moves; hashicorp/raft has no such hook).
//
// So the leader tells followers itself: when it has applied a write and
// nothing else is in flight, it commits a commit notice, a core entry that
// changes nothing, whose AppendEntries carries the commit index of the
// write. CommitTimeout can then be long (DefaultTiming), which makes an
// idle cluster quiet. A notice's own commit reaches followers only with
// the next entry or CommitTimeout later; no reader waits for it, because a
// read index names the last entry that is not a notice (LeaderReadIndex).

// commitNoticeDelay is how long the leader waits, idle, before a notice
// when a follower waits for it: a write arriving meanwhile carries the
// commit index instead, so a client writing in a loop does not double the
// entries.
const commitNoticeDelay = 2 * time.Millisecond

// maxNoticeHold bounds how long the leader holds a notice back when no
// follower waits for it (a follower waits when it forwarded a write, which
// returns once the follower applied it, or asked for a read index; then
// the notice goes after commitNoticeDelay). While writes keep coming, the
// next one carries the commit index of the last: a master changing an
// object 100 times a second (each change alone, 10 ms apart) needs no
// notice at all, where one after every write cost a second Raft round,
// an fsync on every server, per change. So the leader holds the notice
// for half again the longest of the last few gaps between writes, and
// starts over at each newer write; when writes are further apart than
// this allows, nothing is coming soon and the notice goes at once. A
// follower's own readers (a subscriber, a log tail) then see a write of
// such a stream up to a gap later, never more than maxNoticeHold.
const maxNoticeHold = 20 * time.Millisecond

// noticeHold is how long the leader holds a notice back when no follower
// waits, given the recent gap between writes (FSM.RecentGap), or the
// fixed hold of the timing (Timing.CommitNoticeHold, for tests).
func noticeHold(fixed, recentGap time.Duration) time.Duration {
	if fixed > 0 {
		return fixed
	}
	if hold := recentGap * 3 / 2; hold <= maxNoticeHold {
		return hold
	}
	return 0 // writes are sparse: none is coming soon
}

// commitNoticeMinTimeout: with a commit timeout shorter than this (the
// tests' LocalTiming), raft's own empty AppendEntries tell followers soon
// enough, and notices would only add entries.
const commitNoticeMinTimeout = 20 * time.Millisecond

var commitNotice = EncodeCommand(modules.TagNone, opCommitNotice, nil)

// followerWaits tells the notice loop that a follower waits to learn of a
// commit: the notice after the last write goes out without a hold. The
// leader calls it after applying a forwarded write and when it answers a
// follower's read index.
func (n *Node) followerWaits() {
	n.noticeWanted.Store(true)
	signal(n.noticeWake)
}

// runCommitNotices commits a notice after each write that leaves the
// leader idle. It is owned by the Node and stops with it.
func (n *Node) runCommitNotices() {
	defer n.wg.Done()
	timeout := n.cfg.Timing.CommitTimeout
	if timeout == 0 {
		timeout = raft.DefaultConfig().CommitTimeout // what New leaves raft with
	}
	if timeout < commitNoticeMinTimeout {
		return
	}
	timer := time.NewTimer(commitNoticeDelay)
	timer.Stop()
	moved := false // a newer write was applied while the loop waited
	for {
		if !moved {
			select {
			case <-n.stop:
				return
			case <-n.fsm.effectiveMoved:
			}
		}
		moved = false
		// A signal is looked at only after the delay: under load the
		// loop wakes at most once per delay, not once per applied entry.
		timer.Reset(commitNoticeDelay)
		select {
		case <-n.stop:
			timer.Stop()
			return
		case <-timer.C:
		}
		if !n.idleAfterWrite() {
			continue // more is in flight: its apply signals again
		}
		if hold := noticeHold(n.cfg.Timing.CommitNoticeHold, n.fsm.RecentGap()); hold > commitNoticeDelay && !n.noticeWanted.Load() {
			// Nobody waits, and writes keep coming: give the next one the
			// chance to carry the commit index. A follower that starts
			// waiting cuts the hold short; a newer write starts it over.
			timer.Reset(hold - commitNoticeDelay)
			select {
			case <-n.stop:
				timer.Stop()
				return
			case <-n.fsm.effectiveMoved:
				timer.Stop()
				moved = true
				continue
			case <-n.noticeWake:
				timer.Stop()
			case <-timer.C:
			}
			if !n.idleAfterWrite() {
				continue
			}
		}
		n.noticeWanted.Store(false)
		select {
		case <-n.noticeWake: // this notice answers it
		default:
		}
		err := n.raft.Apply(commitNotice, n.cfg.ApplyTimeout).Error()
		switch {
		case err == nil:
			n.metrics.commitNotices.Inc()
		case errors.Is(err, raft.ErrRaftShutdown):
			return
		default:
			// Leadership moved on: the next leader's own entries carry
			// the commit index.
			n.cfg.Logger.Debug("commit notice", "err", err)
		}
	}
}

// idleAfterWrite: this node leads, every entry of its log is applied, and
// the last one is a change, not a notice.
func (n *Node) idleAfterWrite() bool {
	if n.raft.State() != raft.Leader {
		return false
	}
	last := n.raft.LastIndex()
	return n.raft.AppliedIndex() == last && n.fsm.Effective() == last
}
