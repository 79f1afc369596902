package consensus

import (
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

// countingStore is an in-memory log store that counts the reads that
// reach it, to tell a cache hit from a miss.
type countingStore struct {
	*raft.InmemStore
	reads int
}

func (s *countingStore) GetLog(idx uint64, l *raft.Log) error {
	s.reads++
	return s.InmemStore.GetLog(idx, l)
}

func entries(from, to uint64, size int) []*raft.Log {
	var ls []*raft.Log
	for i := from; i <= to; i++ {
		ls = append(ls, &raft.Log{Index: i, Term: 1, Data: make([]byte, size)})
	}
	return ls
}

// cached reports which of indexes lo..hi the cache answers without the
// store; every one of them must be readable either way.
func cached(t *testing.T, c *logCache, s *countingStore, lo, hi uint64) []uint64 {
	t.Helper()
	var hits []uint64
	for i := lo; i <= hi; i++ {
		before := s.reads
		var l raft.Log
		if err := c.GetLog(i, &l); err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		if l.Index != i {
			t.Fatalf("get %d returned entry %d", i, l.Index)
		}
		if s.reads == before {
			hits = append(hits, i)
		}
	}
	return hits
}

func TestLogCache_BoundedByCountAndBytes(t *testing.T) {
	s := &countingStore{InmemStore: raft.NewInmemStore()}
	c, err := newLogCache(s, 4, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StoreLogs(entries(1, 6, 100)); err != nil {
		t.Fatal(err)
	}
	if got := cached(t, c, s, 1, 6); len(got) != 4 || got[0] != 3 {
		t.Fatalf("by count: cached %v, want 3..6", got)
	}
	// Three entries of 300 bytes: with 6 (100 bytes) that is the 1,000
	// the cache may hold; with 5 as well it would be over.
	if err := c.StoreLogs(entries(7, 9, 300)); err != nil {
		t.Fatal(err)
	}
	if got := cached(t, c, s, 1, 9); len(got) != 4 || got[0] != 6 {
		t.Fatalf("by bytes: cached %v, want 6..9", got)
	}
	// An entry larger than the budget is still the newest one kept.
	if err := c.StoreLog(entries(10, 10, 5000)[0]); err != nil {
		t.Fatal(err)
	}
	if got := cached(t, c, s, 1, 10); len(got) != 1 || got[0] != 10 {
		t.Fatalf("oversized: cached %v, want only 10", got)
	}
	if c.bytes != 5000 || c.count != 1 {
		t.Fatalf("accounting: %d bytes in %d entries, want 5000 in 1", c.bytes, c.count)
	}
}

func TestLogCache_GapsAndDeletesEmptyIt(t *testing.T) {
	s := &countingStore{InmemStore: raft.NewInmemStore()}
	c, _ := newLogCache(s, 8, 1<<20)
	if err := c.StoreLogs(entries(1, 4, 10)); err != nil {
		t.Fatal(err)
	}
	// A snapshot restore leaves the store and continues past a gap.
	if err := c.StoreLogs(entries(10, 11, 10)); err != nil {
		t.Fatal(err)
	}
	if got := cached(t, c, s, 1, 4); len(got) != 0 {
		t.Fatalf("after a gap, the older run is still cached: %v", got)
	}
	if got := cached(t, c, s, 10, 11); len(got) != 2 {
		t.Fatalf("after a gap: cached %v, want 10 and 11", got)
	}
	// A conflicting suffix is deleted and written again with a new term.
	if err := c.DeleteRange(11, 11); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := c.GetLog(11, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("a deleted entry: %v, want not found", err)
	}
	replaced := &raft.Log{Index: 11, Term: 2, Data: []byte("new")}
	if err := c.StoreLog(replaced); err != nil {
		t.Fatal(err)
	}
	if err := c.GetLog(11, &l); err != nil || l.Term != 2 {
		t.Fatalf("the rewritten entry: term %d, %v; want term 2", l.Term, err)
	}
}
