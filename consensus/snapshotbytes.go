package consensus

import (
	"errors"
	"time"

	"github.com/hashicorp/raft"
)

// Raft counts the entries since the last snapshot (SnapshotThreshold), and
// an entry of shoal's can be a batch of a thousand log entries or a single
// lock acquire. At 2,048 entries of 256 KiB batches, a restart replayed
// half a gigabyte of commands, and raft reads them into memory far faster
// than the modules apply them (its apply queue holds 128 batches): a
// node's memory peaked at 370 MB while restarting after a publish of a
// million entries, though it held 80 MB before. A snapshot once the log
// has grown by SnapshotBytes bounds that replay by bytes, whatever the
// commands; the modules' snapshots are cheap enough for it (the log
// module links its segment files).

// snapshotByBytesRetry is how soon a snapshot that could not start (most
// often because raft's own is running) is tried again.
const snapshotByBytesRetry = 250 * time.Millisecond

// runSnapshotsByBytes takes a snapshot whenever logs has stored
// SnapshotBytes more than at the last snapshot it took. It sleeps until
// the store says the bound is reached (an idle node does not wake for
// it), and runs until the node stops.
func (n *Node) runSnapshotsByBytes(logs *logCache) {
	defer n.wg.Done()
	limit := n.cfg.SnapshotBytes
	if limit == 0 {
		return
	}
	var last uint64 // logs.stored at the last snapshot by bytes
	for {
		logs.notifyAt.Store(last + limit)
		stored := logs.stored.Load() // after setting notifyAt: no growth is missed
		if stored-last < limit {
			select {
			case <-n.stop:
				return
			case <-logs.grown:
			}
			continue
		}
		start := time.Now()
		err := n.raft.Snapshot().Error()
		switch {
		case err == nil:
			n.cfg.Logger.Debug("snapshot by bytes", "bytes_since", stored-last, "took", time.Since(start))
			last = stored
		case errors.Is(err, raft.ErrNothingNewToSnapshot):
			last = stored
		case errors.Is(err, raft.ErrRaftShutdown):
			return
		default:
			n.cfg.Logger.Debug("snapshot by bytes deferred", "err", err)
			select {
			case <-n.stop:
				return
			case <-time.After(snapshotByBytesRetry):
			}
		}
	}
}

// LastSnapshotIndex returns the index of this node's newest snapshot (0
// if it has none).
func (n *Node) LastSnapshotIndex() uint64 {
	v, _ := parseUint(n.raft.Stats()["last_snapshot_index"])
	return v
}
