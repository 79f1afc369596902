package consensus

import (
	"sync"
	"testing"

	"github.com/hashicorp/raft"
)

// TestDistinctSnapshotStore_NamesDiffer: snapshots of one term and index
// created at once get different names; raft's file store alone names
// them by the millisecond, and two in one millisecond wrote into one
// directory (TestCluster_SnapshotSaveAndRestore failed that way: CRC
// mismatches on followers, installs sent again and again).
func TestDistinctSnapshotStore_NamesDiffer(t *testing.T) {
	files, err := raft.NewFileSnapshotStoreWithLogger(t.TempDir(), 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := &distinctSnapshotStore{SnapshotStore: files}
	// At once, as a follower's own snapshot and an install can be.
	sinks := make([]raft.SnapshotSink, 5)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			sink, err := store.Create(raft.SnapshotVersionMax, 158, 2, raft.Configuration{}, 1, nil)
			if err != nil {
				t.Error(err)
				return
			}
			sinks[i] = sink
		}()
	}
	close(start)
	wg.Wait()
	seen := map[string]bool{}
	for _, sink := range sinks {
		if sink == nil {
			t.FailNow()
		}
		if seen[sink.ID()] {
			t.Fatalf("two snapshots named %s", sink.ID())
		}
		seen[sink.ID()] = true
	}
	for _, sink := range sinks {
		if _, err := sink.Write([]byte("state")); err != nil {
			t.Fatal(err)
		}
		if err := sink.Close(); err != nil {
			t.Fatalf("close %s: %v", sink.ID(), err)
		}
	}
	list, err := store.List()
	if err != nil || len(list) != 5 {
		t.Fatalf("listed %d snapshots (%v), want 5", len(list), err)
	}
}
