package consensus

import (
	"fmt"
	"sync"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// Workarounds for two bugs of hashicorp/raft-wal v0.4.0 that v0.4.1 fixes
// (raft-wal PRs #32 and #33). Both go away with an upgrade to v0.4.1 or
// later, which builds beside hashicorp/raft v1.7.

// indexlessSealFiler is raft-wal's segment filer, except that it can open a
// segment recorded as sealed without an index block (raft-wal#31).
//
// When raft truncates the log's tail (a follower drops entries the new
// leader does not have), v0.4.0 records the tail segment as sealed but
// never writes its index block. Nothing notices until the wal is opened
// again: every read from that segment then fails with "sealed segment has
// no index block", and raft panics in NewRaft. Such a segment is opened
// the way a tail is recovered: its frames are scanned and the index is
// rebuilt in memory. The scan only reads the file; the wal never appends
// to a segment that is not its tail, and it asks this one only for the
// indexes its metadata gives it (up to the truncation point).
type indexlessSealFiler struct {
	types.SegmentFiler
}

func newIndexlessSealFiler(dir string) indexlessSealFiler {
	return indexlessSealFiler{segment.NewFiler(dir, walfs.New())}
}

// Open implements types.SegmentFiler.
func (f indexlessSealFiler) Open(info types.SegmentInfo) (types.SegmentReader, error) {
	if !info.SealTime.IsZero() && info.IndexStart == 0 {
		r, err := f.SegmentFiler.RecoverTail(info)
		if err != nil {
			return nil, fmt.Errorf("open wal segment %d sealed without an index: %w", info.ID, err)
		}
		return r, nil
	}
	return f.SegmentFiler.Open(info)
}

// failStopLog is the wal as raft's log store, refusing every write after one
// failed (raft-wal#32): in v0.4.0 a failed append (a full disk, an I/O
// error) leaves the segment writer's buffer, offsets and checksum
// half-updated, and the next append writes on top of them. Reopening the
// wal recovers from the last complete commit, so the node must restart:
// until then, writes fail with the first error. Reads go on.
type failStopLog struct {
	*wal.WAL
	mu     sync.Mutex // serializes writes; raft writes from one goroutine anyway
	broken error
}

// StoreLog implements raft.LogStore.
func (l *failStopLog) StoreLog(e *raft.Log) error { return l.StoreLogs([]*raft.Log{e}) }

// StoreLogs implements raft.LogStore.
func (l *failStopLog) StoreLogs(logs []*raft.Log) error {
	return l.write(func() error { return l.WAL.StoreLogs(logs) })
}

// DeleteRange implements raft.LogStore.
func (l *failStopLog) DeleteRange(min, max uint64) error {
	return l.write(func() error { return l.WAL.DeleteRange(min, max) })
}

func (l *failStopLog) write(f func() error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken != nil {
		return fmt.Errorf("raft wal: refusing writes after an earlier one failed; restart the node to recover the log: %w", l.broken)
	}
	if err := f(); err != nil {
		l.broken = err
		return err
	}
	return nil
}

var (
	_ types.SegmentFiler     = indexlessSealFiler{}
	_ raft.LogStore          = (*failStopLog)(nil)
	_ raft.MonotonicLogStore = (*failStopLog)(nil)
	_ raft.StableStore       = (*failStopLog)(nil)
)
