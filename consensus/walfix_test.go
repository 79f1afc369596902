package consensus_test

import (
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"shoal/consensus"
)

// TestOpenStores_WALReadsATruncatedTailAfterRestart is raft-wal#31: a
// follower drops the tail of its log for the new leader's entries, and
// must still read its log after a restart (raft-wal v0.4.0 left the old
// tail segment unreadable: raft panicked at start).
func TestOpenStores_WALReadsATruncatedTailAfterRestart(t *testing.T) {
	dir := t.TempDir()
	want := writeStores(t, dir, consensus.LogStoreWAL, 1, 100, 0, stableState{term: 1})
	s := mustOpen(t, dir, consensus.LogStoreWAL)
	if err := s.Log.DeleteRange(81, 100); err != nil { // what raft does on a conflict
		t.Fatal(err)
	}
	want = want[:80]
	for i := uint64(81); i <= 90; i++ {
		want = append(want, testEntry(i, 2))
	}
	if err := s.Log.StoreLogs(want[80:]); err != nil {
		t.Fatal(err)
	}
	closeStores(t, s)

	for range 2 { // and again, once the truncated segment has been reopened
		got, _ := readStores(t, dir, consensus.LogStoreWAL)
		if err := sameEntries(got, want); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenStores_WALRefusesWritesAfterAFailedOne is raft-wal#32: after a
// failed write the wal's writer may be half-updated, so every later write
// fails until a restart; reads go on, and the reopened wal works.
func TestOpenStores_WALRefusesWritesAfterAFailedOne(t *testing.T) {
	dir := t.TempDir()
	want := writeStores(t, dir, consensus.LogStoreWAL, 1, 10, 0, stableState{term: 1})
	s := mustOpen(t, dir, consensus.LogStoreWAL)
	if err := s.Log.StoreLogs([]*raft.Log{testEntry(13, 1)}); err == nil { // a gap: refused
		t.Fatal("the wal accepted entry 13 after 10")
	}
	err := s.Log.StoreLogs([]*raft.Log{testEntry(11, 1)})
	if err == nil || !strings.Contains(err.Error(), "restart the node") {
		t.Fatalf("got %v, want a refusal until restart", err)
	}
	var e raft.Log
	if err := s.Log.GetLog(10, &e); err != nil || e.Index != 10 {
		t.Fatalf("read after the failure: %v (index %d)", err, e.Index)
	}
	closeStores(t, s)

	s = mustOpen(t, dir, consensus.LogStoreWAL)
	want = append(want, testEntry(11, 1))
	if err := s.Log.StoreLogs(want[10:]); err != nil {
		t.Fatalf("write after a restart: %v", err)
	}
	closeStores(t, s)
	got, _ := readStores(t, dir, consensus.LogStoreWAL)
	if err := sameEntries(got, want); err != nil {
		t.Fatal(err)
	}
}
