package consensus

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// distinctSnapshotStore gives every snapshot it creates its own name.
// raft's FileSnapshotStore names a snapshot term-index-milliseconds, in a
// directory of that name: two snapshots of one index created within the
// same millisecond (a follower's own snapshot and one the leader installs,
// or two installs of a leader's snapshot retried) write into one
// directory, and the first to finish renames it from under the other,
// whose metadata write then fails and whose state fails its CRC, which
// makes the leader send it again. Creates here are serialised and at
// least a millisecond apart, so the names differ. A Create takes a
// millisecond at worst; snapshots are rare.
type distinctSnapshotStore struct {
	raft.SnapshotStore
	mu   sync.Mutex
	last int64 // the millisecond by which the last Create had named its snapshot
}

func (s *distinctSnapshotStore) Create(version raft.SnapshotVersion, index, term uint64,
	configuration raft.Configuration, configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for time.Now().UnixMilli() <= s.last {
		time.Sleep(100 * time.Microsecond)
	}
	sink, err := s.SnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	s.last = time.Now().UnixMilli()
	return sink, err
}

var _ raft.SnapshotStore = (*distinctSnapshotStore)(nil)
