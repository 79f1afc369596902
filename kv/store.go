package kv

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketEntries = []byte("entries")
	bucketMeta    = []byte("meta")
	metaLastSync  = []byte("last_sync")
)

// meta is what the store keeps in memory about one key; values stay on
// disk.
type meta struct {
	ver     Version
	deleted bool
	expires int64  // Unix ms; 0 if the value does not expire
	hash    uint64 // entryHash, as toggled into the trees
	leaf    uint16
	settled bool // toggled into the settled tree too
}

// change is one visible change of a key, as merges and writes report it.
type change struct {
	typ EventType // EventNewKey, EventKeyChanged or EventKeyRemoved
	e   entry
}

// store is the node's copy of the keyspace: every record in a bolt file
// (key → version, flags, value), and in memory the version of every key,
// the digest tree over them and the tombstone index. All methods are safe
// for concurrent use.
//
// Writes are last-writer-wins twice over: persist writes a record only if
// it is newer than the stored one, apply changes memory only if the entry
// is newer than the one in memory. So the two steps commute with every
// other writer, and disk and memory both end at the newest version whatever
// the interleaving; callers persist first, then apply, so a change is
// visible (and its events fire) only once it is durable.
type store struct {
	db *bolt.DB

	mu       sync.RWMutex
	index    map[string]*meta
	leafKeys [numLeaves]map[string]struct{}
	tree     *tree // every entry: the digest the status reports
	tombs    map[string]struct{}

	// settled is the tree anti-entropy compares: it leaves out the
	// entries younger than grace, which broadcast is still delivering.
	// Under a steady stream of writes the full trees of two nodes never
	// match (each lacks what is in flight to it), and comparing them
	// would make every round expand down to the leaves for nothing. An
	// entry settles grace after min(its version's time, its arrival):
	// the same instant on every node for a normally delivered write, and
	// at once for an old entry that anti-entropy brings. Until it
	// settles, only broadcast (and the peer's own rounds) carry it.
	settled *tree
	pending pendingHeap
	// expiring holds the live values that expire, by expiry: the sweep
	// (dueExpired) pops them when their time has come.
	expiring    pendingHeap
	numExpiring int          // live values in index that expire
	grace       int64        // ms; 0 settles every entry at once
	nowMs       func() int64 // the module's clock, in Unix ms
	live        int
	// onChange is called with mu held for every visible change, in the
	// order of the changes; it must not block or call back into the store.
	onChange func(change)
}

// openStore opens (creating if needed) the bolt file at path and loads the
// index. It returns the newest version found, for the clock.
func openStore(path string, onChange func(change)) (*store, Version, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		return nil, Version{}, fmt.Errorf("open kv store %s: %w", path, err)
	}
	db.MaxBatchDelay = 2 * time.Millisecond
	s := &store{db: db, index: map[string]*meta{}, tree: newTree(), settled: newTree(), tombs: map[string]struct{}{},
		onChange: onChange, nowMs: func() int64 { return time.Now().UnixMilli() }}
	var newest Version
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketMeta); err != nil {
			return err
		}
		b, err := tx.CreateBucketIfNotExists(bucketEntries)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			ver, deleted, expires, err := decodeRecordVersion(v)
			if err == nil && (!validKey(string(k)) || !validNode(ver.Node)) {
				err = fmt.Errorf("%w: invalid key or node", ErrMalformedRecord)
			}
			if err != nil {
				return fmt.Errorf("record of key %q: %w", truncateKey(k), err)
			}
			s.insertLocked(string(k), ver, deleted, expires)
			if ver.Compare(newest) > 0 {
				newest = ver
			}
			return nil
		})
	})
	if err != nil {
		_ = db.Close()
		return nil, Version{}, fmt.Errorf("load kv store %s: %w", path, err)
	}
	return s, newest, nil
}

func (s *store) close() error { return s.db.Close() }

// setGrace makes entries written or merged from now on settle grace after
// min(version time, arrival) by the clock now (see store.settled).
func (s *store) setGrace(grace time.Duration, now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.grace = grace.Milliseconds()
	s.nowMs = func() int64 { return now().UnixMilli() }
}

// insertLocked sets the in-memory state of key to (ver, deleted,
// expires), replacing what was there; mu must be held for writing.
func (s *store) insertLocked(key string, ver Version, deleted bool, expires int64) {
	if old := s.index[key]; old != nil {
		s.removeLocked(key, old)
	}
	m := &meta{ver: ver, deleted: deleted, expires: expires, hash: entryHash(key, ver, deleted), leaf: uint16(leafOf(key))}
	if expires != 0 && !deleted {
		s.numExpiring++
		if len(s.expiring) >= 2*s.numExpiring+1024 {
			s.compactExpiringLocked()
		}
		heap.Push(&s.expiring, pendingEntry{at: expires, key: key, m: m})
	}
	s.index[key] = m
	if s.leafKeys[m.leaf] == nil {
		s.leafKeys[m.leaf] = map[string]struct{}{}
	}
	s.leafKeys[m.leaf][key] = struct{}{}
	s.tree.toggle(int(m.leaf), m.hash)
	if s.grace == 0 {
		s.settleLocked(m)
	} else {
		now := s.nowMs()
		if at := min(ver.Time, now) + s.grace; at <= now {
			s.settleLocked(m)
		} else {
			heap.Push(&s.pending, pendingEntry{at: at, key: key, m: m})
		}
	}
	if deleted {
		s.tombs[key] = struct{}{}
	} else {
		s.live++
	}
}

func (s *store) settleLocked(m *meta) {
	m.settled = true
	s.settled.toggle(int(m.leaf), m.hash)
}

// settleDueLocked moves the entries whose time has come into the settled
// tree; mu must be held for writing. Anti-entropy calls it (through the
// methods below) before it reads the settled tree.
func (s *store) settleDueLocked() {
	now := s.nowMs()
	for len(s.pending) > 0 && s.pending[0].at <= now {
		p := heap.Pop(&s.pending).(pendingEntry)
		if s.index[p.key] == p.m && !p.m.settled { // else replaced or removed since
			s.settleLocked(p.m)
		}
	}
}

// removeLocked forgets key, whose meta is m; mu must be held for writing.
func (s *store) removeLocked(key string, m *meta) {
	delete(s.index, key)
	delete(s.leafKeys[m.leaf], key)
	s.tree.toggle(int(m.leaf), m.hash)
	if m.settled {
		s.settled.toggle(int(m.leaf), m.hash)
	}
	if m.deleted {
		delete(s.tombs, key)
	} else {
		s.live--
	}
	if m.expires != 0 && !m.deleted {
		s.numExpiring--
	}
}

// compactExpiringLocked drops the entries of replaced or removed values
// from the expiry heap (a key overwritten often with a long TTL would
// otherwise leave one per write until its time); mu must be held for
// writing.
func (s *store) compactExpiringLocked() {
	kept := s.expiring[:0]
	for _, p := range s.expiring {
		if s.index[p.key] == p.m {
			kept = append(kept, p)
		}
	}
	clear(s.expiring[len(kept):])
	s.expiring = kept
	heap.Init(&s.expiring)
}

// accepts reports whether e should be merged: it is newer than what the
// store holds, and it is not a tombstone older than horizon (Unix ms) for
// a key the store does not hold (such a tombstone deletes nothing and
// would be collected at once).
func (s *store) acceptsLocked(e entry, horizon int64) bool {
	cur := s.index[e.Key]
	if cur == nil {
		return !e.Deleted || e.Version.Time >= horizon
	}
	return e.Version.Compare(cur.ver) > 0
}

// filter returns the entries of in that the store accepts, keeping only
// the newest of several entries for one key.
func (s *store) filter(in []entry, horizon int64) []entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	best := make(map[string]int, len(in))
	var out []entry
	for _, e := range in {
		if !s.acceptsLocked(e, horizon) {
			continue
		}
		if i, ok := best[e.Key]; ok {
			if e.Version.Compare(out[i].Version) > 0 {
				out[i] = e
			}
			continue
		}
		best[e.Key] = len(out)
		out = append(out, e)
	}
	return out
}

// persist writes the entries that are newer than their stored records, in
// one transaction (and one fsync). With batch, concurrent callers share a
// transaction (bolt's Batch; the function is idempotent, as Batch needs).
func (s *store) persist(entries []entry, batch bool) error {
	fn := func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		for _, e := range entries {
			k := []byte(e.Key)
			if old := b.Get(k); old != nil {
				if ver, _, _, err := decodeRecordVersion(old); err == nil && ver.Compare(e.Version) >= 0 {
					continue
				}
			}
			if err := b.Put(k, encodeRecord(e)); err != nil {
				return fmt.Errorf("put key %q: %w", truncateKey(k), err)
			}
		}
		return nil
	}
	if batch {
		return s.db.Batch(fn)
	}
	return s.db.Update(fn)
}

// apply makes the accepted entries visible in memory, reporting each
// visible change to onChange, and returns the entries it applied.
func (s *store) apply(entries []entry, horizon int64) []entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var applied []entry
	for _, e := range entries {
		if !s.acceptsLocked(e, horizon) {
			continue
		}
		cur := s.index[e.Key]
		wasLive := cur != nil && !cur.deleted
		s.insertLocked(e.Key, e.Version, e.Deleted, e.Expires)
		applied = append(applied, e)
		switch {
		case !e.Deleted && !wasLive:
			s.onChange(change{EventNewKey, e})
		case !e.Deleted:
			s.onChange(change{EventKeyChanged, e})
		case wasLive:
			s.onChange(change{EventKeyRemoved, e})
		}
	}
	return applied
}

// get returns the live entry of key at nowMs: a value that has expired is
// not live, whether or not the sweep has replaced it yet.
func (s *store) get(key string, nowMs int64) (entry, bool, error) {
	var e entry
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketEntries).Get([]byte(key))
		if v == nil {
			return nil
		}
		var err error
		e, err = decodeRecord([]byte(key), v)
		found = err == nil && !e.Deleted && !e.expiredAt(nowMs)
		return err
	})
	if err != nil {
		return entry{}, false, fmt.Errorf("read key %q: %w", key, err)
	}
	return e, found, nil
}

// list returns up to limit live entries (at nowMs) whose keys start with
// prefix and sort after after, in key order; more reports that another
// one follows. With tombstones, it returns the other entries too (a
// value that has expired as its tombstone).
func (s *store) list(prefix, after string, limit int, nowMs int64, tombstones bool) (items []entry, more bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEntries).Cursor()
		start := prefix
		if after > start {
			start = after
		}
		p := []byte(prefix)
		for k, v := c.Seek([]byte(start)); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			if after != "" && string(k) <= after {
				continue
			}
			e, err := decodeRecord(k, v)
			if err != nil {
				return err
			}
			if e.expiredAt(nowMs) {
				e = e.expiredTombstone()
			}
			if e.Deleted && !tombstones {
				continue
			}
			if len(items) == limit {
				more = true
				return nil
			}
			items = append(items, e)
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("list keys with prefix %q: %w", prefix, err)
	}
	return items, more, nil
}

// read returns the stored entries for wants whose version is at least the
// wanted one (a node never answers a want with an older version: that is
// how a node that has not synced yet cannot serve stale data).
func (s *store) read(wants []want) ([]entry, error) {
	var out []entry
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		for _, w := range wants {
			v := b.Get([]byte(w.Key))
			if v == nil {
				continue
			}
			e, err := decodeRecord([]byte(w.Key), v)
			if err != nil {
				return err
			}
			if e.Version.Compare(w.Version) >= 0 {
				out = append(out, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %d wanted keys: %w", len(wants), err)
	}
	return out, nil
}

// forEach calls fn with every stored entry, tombstones included, in key
// order, from one consistent read transaction.
func (s *store) forEach(fn func(entry) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
			e, err := decodeRecord(k, v)
			if err != nil {
				return err
			}
			return fn(e)
		})
	})
}

// removeIf deletes each entry whose stored version is still the given one,
// on disk and then in memory, and reports a live one's removal as
// key_removed (with the removed version). It returns how many it removed.
// Tombstone collection and the full-sync cleanup use it; neither writes a
// tombstone.
func (s *store) removeIf(ws []want) (int, error) {
	if len(ws) == 0 {
		return 0, nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		for _, w := range ws {
			k := []byte(w.Key)
			if old := b.Get(k); old != nil {
				if ver, _, _, err := decodeRecordVersion(old); err == nil && ver != w.Version {
					continue
				}
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("remove %d entries: %w", len(ws), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, w := range ws {
		m := s.index[w.Key]
		if m == nil || m.ver != w.Version {
			continue
		}
		s.removeLocked(w.Key, m)
		n++
		if !m.deleted {
			s.onChange(change{EventKeyRemoved, entry{Key: w.Key, Version: w.Version, Deleted: true}})
		}
	}
	return n, nil
}

// expiredTombstones lists the tombstones older than horizon (Unix ms).
func (s *store) expiredTombstones(horizon int64) []want {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []want
	for k := range s.tombs {
		if m := s.index[k]; m.ver.Time < horizon {
			out = append(out, want{Key: k, Version: m.ver})
		}
	}
	return out
}

// absentOlderThan lists the entries older than horizon whose keys are not
// in seen: after a full sync, what the source no longer has.
func (s *store) absentOlderThan(seen map[string]struct{}, horizon int64) []want {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []want
	for k, m := range s.index {
		if _, ok := seen[k]; !ok && m.ver.Time < horizon {
			out = append(out, want{Key: k, Version: m.ver})
		}
	}
	return out
}

// current returns the version of key's live value at nowMs, and whether
// it has one, from memory (for conditional writes).
func (s *store) current(key string, nowMs int64) (Version, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := s.index[key]
	if m == nil || m.deleted || m.expires != 0 && m.expires <= nowMs {
		return Version{}, false
	}
	return m.ver, true
}

// dueExpired returns the tombstones of the live values that have expired
// at nowMs (see entry.expiredTombstone), for the sweep to merge.
func (s *store) dueExpired(nowMs int64) []entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []entry
	for len(s.expiring) > 0 && s.expiring[0].at <= nowMs {
		p := heap.Pop(&s.expiring).(pendingEntry)
		if s.index[p.key] == p.m { // else replaced or removed since
			out = append(out, entry{Key: p.key, Version: p.m.ver, Expires: p.m.expires}.expiredTombstone())
		}
	}
	return out
}

// isNewer reports whether the store would accept a version v of key.
func (s *store) isNewer(key string, v Version) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	cur := s.index[key]
	return cur == nil || v.Compare(cur.ver) > 0
}

// counts returns the number of live keys, of tombstones, and the root hash.
func (s *store) counts() (live, tombs int, root uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.live, len(s.tombs), s.tree.root()
}

// hashes returns this store's settled hashes of the given nodes of level.
func (s *store) hashes(level int, indexes []int) []treeNode {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settleDueLocked()
	return s.settled.nodes(level, indexes)
}

// mismatched returns the indexes among theirs whose settled hash differs
// here.
func (s *store) mismatched(level int, theirs []treeNode) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settleDueLocked()
	var out []int
	for _, n := range theirs {
		if s.settled.hash(level, int(n.Index)) != n.Hash {
			out = append(out, int(n.Index))
		}
	}
	return out
}

// summaries returns the versions of every settled entry in the given
// leaves.
func (s *store) summaries(leaves []int) []leafSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settleDueLocked()
	out := make([]leafSummary, 0, len(leaves))
	for _, l := range leaves {
		ls := leafSummary{Leaf: uint32(l)}
		for k := range s.leafKeys[l] {
			if m := s.index[k]; m.settled {
				ls.Items = append(ls.Items, summaryItem{Key: k, Version: m.ver, Deleted: m.deleted})
			}
		}
		out = append(out, ls)
	}
	return out
}

// diff compares a peer's leaf summaries with this store: push lists the
// local versions the peer lacks or has older (of the absent keys, only
// settled ones: the others are still being broadcast), wants the peer's
// versions that are newer here or missing (except tombstones older than
// horizon of keys this store does not hold, which it would not accept).
func (s *store) diff(theirs []leafSummary, horizon int64) (push, wants []want) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settleDueLocked()
	for _, ls := range theirs {
		seen := make(map[string]struct{}, len(ls.Items))
		for _, it := range ls.Items {
			seen[it.Key] = struct{}{}
			e := entry{Key: it.Key, Version: it.Version, Deleted: it.Deleted}
			cur := s.index[it.Key]
			switch {
			case s.acceptsLocked(e, horizon):
				wants = append(wants, want{Key: it.Key, Version: it.Version})
			case cur != nil && cur.ver.Compare(it.Version) > 0:
				push = append(push, want{Key: it.Key, Version: cur.ver})
			}
		}
		for k := range s.leafKeys[ls.Leaf] {
			if _, ok := seen[k]; !ok && s.index[k].settled {
				push = append(push, want{Key: k, Version: s.index[k].ver})
			}
		}
	}
	return push, wants
}

// loadLastSync returns the time of the last sync recorded on disk.
func (s *store) loadLastSync() time.Time {
	var ms int64
	_ = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(metaLastSync); len(v) == 8 {
			ms = int64(binary.BigEndian.Uint64(v))
		}
		return nil
	})
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// saveLastSync records the time of the last sync on disk.
func (s *store) saveLastSync(t time.Time) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(t.UnixMilli()))
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaLastSync, buf[:]) })
}

// pendingEntry is an entry waiting to settle.
type pendingEntry struct {
	at  int64 // Unix ms
	key string
	m   *meta // the version it was for: a newer one replaces the meta
}

// pendingHeap orders pending entries by settle time (container/heap).
type pendingHeap []pendingEntry

func (h pendingHeap) Len() int           { return len(h) }
func (h pendingHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h pendingHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pendingHeap) Push(x any)        { *h = append(*h, x.(pendingEntry)) }
func (h *pendingHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
