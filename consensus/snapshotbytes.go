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

// snapshotByBytesCheck is how often the bytes stored are compared with
// the bound.
const snapshotByBytesCheck = 250 * time.Millisecond

// runSnapshotsByBytes takes a snapshot whenever logs has stored
// SnapshotBytes more than at the last snapshot it took. It runs until the
// node stops.
func (n *Node) runSnapshotsByBytes(logs *logCache) {
	defer n.wg.Done()
	limit := n.cfg.SnapshotBytes
	if limit == 0 {
		return
	}
	ticker := time.NewTicker(snapshotByBytesCheck)
	defer ticker.Stop()
	var last uint64 // logs.stored at the last snapshot by bytes
	for {
		select {
		case <-n.stop:
			return
		case <-ticker.C:
		}
		stored := logs.stored.Load()
		if stored-last < limit {
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
			// Most often raft's own snapshot is running; try again at the
			// next check.
			n.cfg.Logger.Debug("snapshot by bytes deferred", "err", err)
		}
	}
}

// LastSnapshotIndex returns the index of this node's newest snapshot (0
// if it has none).
func (n *Node) LastSnapshotIndex() uint64 {
	v, _ := parseUint(n.raft.Stats()["last_snapshot_index"])
	return v
}
