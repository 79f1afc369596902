package consensus

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// logCache keeps the newest Raft log entries in memory in front of the log
// store, so that the leader sends them to a follower a step behind, and a
// follower applies what it has just stored, without reading them back from
// disk. It is raft.LogCache bounded by bytes as well as by count: a
// command of shoal's can be a batch of up to 4 MiB, and a cache of 64 such
// entries held 16 MB of a node's 34 MB heap after a publish of a million
// entries (bench/run log-retention), for no gain: a follower more than a
// few megabytes behind reads from the store anyway, at disk speed.
//
// The entries it holds are always a contiguous run of indexes, the newest
// stored: raft stores entries in index order and deletes only whole ranges
// (compaction from the front, a conflicting suffix from the back), and any
// other pattern empties the cache rather than leaving a gap in it.
type logCache struct {
	store    raft.LogStore
	maxBytes int
	// stored counts the bytes of every entry stored through the cache,
	// for snapshots by bytes: grown gets a token once stored reaches
	// notifyAt (snapshotbytes.go).
	stored   atomic.Uint64
	notifyAt atomic.Uint64
	grown    chan struct{}

	mu    sync.RWMutex
	ring  []*raft.Log // ring[i % len(ring)] for i in [first, first+count)
	first uint64
	count int
	bytes int
}

// newLogCache returns a cache of at most maxEntries entries and maxBytes
// bytes of their data (the newest entry is kept even when larger).
func newLogCache(store raft.LogStore, maxEntries, maxBytes int) (*logCache, error) {
	if maxEntries <= 0 || maxBytes <= 0 {
		return nil, fmt.Errorf("log cache bounds must be positive, got %d entries and %d bytes", maxEntries, maxBytes)
	}
	c := &logCache{store: store, maxBytes: maxBytes, ring: make([]*raft.Log, maxEntries), grown: make(chan struct{}, 1)}
	c.notifyAt.Store(math.MaxUint64)
	return c, nil
}

func logCost(l *raft.Log) int { return len(l.Data) + len(l.Extensions) }

// IsMonotonic passes on what the store says: raft then knows it must not
// leave gaps when it restores a snapshot.
func (c *logCache) IsMonotonic() bool {
	if m, ok := c.store.(raft.MonotonicLogStore); ok {
		return m.IsMonotonic()
	}
	return false
}

func (c *logCache) GetLog(idx uint64, log *raft.Log) error {
	c.mu.RLock()
	if c.count > 0 && idx >= c.first && idx < c.first+uint64(c.count) {
		*log = *c.ring[idx%uint64(len(c.ring))]
		c.mu.RUnlock()
		return nil
	}
	c.mu.RUnlock()
	return c.store.GetLog(idx, log)
}

func (c *logCache) StoreLog(log *raft.Log) error { return c.StoreLogs([]*raft.Log{log}) }

func (c *logCache) StoreLogs(logs []*raft.Log) error {
	if err := c.store.StoreLogs(logs); err != nil {
		return fmt.Errorf("store raft log entries: %w", err)
	}
	var size uint64
	for _, l := range logs {
		size += uint64(logCost(l))
	}
	if c.stored.Add(size) >= c.notifyAt.Load() {
		signal(c.grown)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range logs {
		if c.count > 0 && l.Index != c.first+uint64(c.count) {
			c.clearLocked()
		}
		if c.count == 0 {
			c.first = l.Index
		}
		if c.count == len(c.ring) {
			c.dropOldestLocked()
		}
		c.ring[l.Index%uint64(len(c.ring))] = l
		c.count++
		c.bytes += logCost(l)
		for c.bytes > c.maxBytes && c.count > 1 {
			c.dropOldestLocked()
		}
	}
	return nil
}

func (c *logCache) dropOldestLocked() {
	slot := c.first % uint64(len(c.ring))
	c.bytes -= logCost(c.ring[slot])
	c.ring[slot] = nil
	c.first++
	c.count--
}

func (c *logCache) clearLocked() {
	clear(c.ring)
	c.first, c.count, c.bytes = 0, 0, 0
}

func (c *logCache) FirstIndex() (uint64, error) { return c.store.FirstIndex() }
func (c *logCache) LastIndex() (uint64, error)  { return c.store.LastIndex() }

// DeleteRange empties the cache, as raft.LogCache does: deletions are
// compactions and conflict truncations, both rare next to appends.
func (c *logCache) DeleteRange(lo, hi uint64) error {
	c.mu.Lock()
	c.clearLocked()
	c.mu.Unlock()
	return c.store.DeleteRange(lo, hi)
}
