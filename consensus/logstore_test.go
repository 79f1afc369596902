package consensus_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"shoal/consensus"
	"shoal/internal/agent"
	"shoal/internal/testcluster"
)

// stableState is what raft keeps in its stable store.
type stableState struct {
	term, voteTerm uint64
	voteCand       []byte
}

// testEntry is entry i of the logs these tests write: every field of
// raft.Log set, sizes and types varied.
func testEntry(i, term uint64) *raft.Log {
	e := &raft.Log{
		Index:      i,
		Term:       term,
		Type:       raft.LogCommand,
		Data:       []byte(fmt.Sprintf("entry %d %s", i, strings.Repeat("x", int(i%300)))),
		AppendedAt: time.Unix(1_700_000_000+int64(i), int64(i)).UTC(),
	}
	switch i % 50 {
	case 0:
		e.Type = raft.LogConfiguration
	case 1:
		e.Type = raft.LogNoop
		e.Data = nil
	case 2:
		e.Extensions = []byte{1, 2, byte(i)}
	}
	return e
}

// writeStores writes entries first..last (terms rising every 1000
// entries) and st into a new store of kind in dir, then deletes the
// entries below keepFrom, as raft compacts after a snapshot. It returns the
// entries kept.
func writeStores(t *testing.T, dir, kind string, first, last, keepFrom uint64, st stableState) []*raft.Log {
	t.Helper()
	s := mustOpen(t, dir, kind)
	defer closeStores(t, s)
	var all []*raft.Log
	for i := first; i <= last; i++ {
		all = append(all, testEntry(i, 1+i/1000))
	}
	for len(all) > 0 {
		n := min(len(all), 500)
		if err := s.Log.StoreLogs(all[:n]); err != nil {
			t.Fatal(err)
		}
		all = all[n:]
	}
	if keepFrom > first {
		if err := s.Log.DeleteRange(first, keepFrom-1); err != nil {
			t.Fatal(err)
		}
	}
	setStable(t, s, st)
	var kept []*raft.Log
	for i := max(first, keepFrom); i <= last; i++ {
		kept = append(kept, testEntry(i, 1+i/1000))
	}
	return kept
}

func setStable(t *testing.T, s *consensus.Stores, st stableState) {
	t.Helper()
	if st.term > 0 {
		if err := s.Stable.SetUint64([]byte("CurrentTerm"), st.term); err != nil {
			t.Fatal(err)
		}
	}
	if st.voteTerm > 0 {
		if err := s.Stable.SetUint64([]byte("LastVoteTerm"), st.voteTerm); err != nil {
			t.Fatal(err)
		}
	}
	if st.voteCand != nil {
		if err := s.Stable.Set([]byte("LastVoteCand"), st.voteCand); err != nil {
			t.Fatal(err)
		}
	}
}

// mustOpen opens the stores of kind in dir.
func mustOpen(t *testing.T, dir, kind string) *consensus.Stores {
	t.Helper()
	s, err := consensus.OpenStores(dir, consensus.StoreOptions{Kind: kind})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func closeStores(t *testing.T, s *consensus.Stores) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Errorf("close stores: %v", err)
	}
}

// readStores opens the store of kind in dir and returns its log and
// stable state.
func readStores(t *testing.T, dir, kind string) ([]*raft.Log, stableState) {
	t.Helper()
	s := mustOpen(t, dir, kind)
	defer closeStores(t, s)
	first, err := s.Log.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.Log.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	var log []*raft.Log
	for i := first; last > 0 && i <= last; i++ {
		e := new(raft.Log)
		if err := s.Log.GetLog(i, e); err != nil {
			t.Fatalf("entry %d of %d..%d: %v", i, first, last, err)
		}
		log = append(log, e)
	}
	var st stableState
	st.term = mustUint64(t, s, "CurrentTerm")
	st.voteTerm = mustUint64(t, s, "LastVoteTerm")
	if st.voteCand, err = s.Stable.Get([]byte("LastVoteCand")); err != nil && err.Error() != "not found" {
		t.Fatal(err) // bolt says "not found" as raft expects; wal returns nil
	}
	return log, st
}

func mustUint64(t *testing.T, s *consensus.Stores, key string) uint64 {
	t.Helper()
	v, err := s.Stable.GetUint64([]byte(key))
	if err != nil && err.Error() != "not found" {
		t.Fatal(err)
	}
	return v
}

// sameEntries reports the first difference between two logs.
func sameEntries(got, want []*raft.Log) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d entries, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Index != w.Index || g.Term != w.Term || g.Type != w.Type || !bytes.Equal(g.Data, w.Data) ||
			!bytes.Equal(g.Extensions, w.Extensions) || !g.AppendedAt.Equal(w.AppendedAt) {
			return fmt.Errorf("entry %d: got %+v, want %+v", w.Index, g, w)
		}
	}
	return nil
}

func checkFiles(t *testing.T, dir string, want map[string]bool) {
	t.Helper()
	for name, present := range want {
		_, err := os.Stat(filepath.Join(dir, name))
		if got := err == nil; got != present {
			t.Errorf("%s present: %v, want %v (stat: %v)", name, got, present, err)
		}
	}
}

// migratedFiles is a Raft directory after a migration.
var migratedFiles = map[string]bool{"wal": true, "raft.db": false, "raft.db.migrated": true, "wal.migrating": false}

func TestMigrateBoltToWAL_CopiesEveryEntryAndStableKey(t *testing.T) {
	dir := t.TempDir()
	st := stableState{term: 11, voteTerm: 10, voteCand: []byte("node2@127.0.0.1:7481")}
	// Entries 1..1500 were compacted away after a snapshot; 8500 remain,
	// more than one copy batch, and more than one 256 KiB wal segment.
	want := writeStores(t, dir, consensus.LogStoreBolt, 1, 10_000, 1501, st)
	m, err := consensus.MigrateBoltToWAL(dir, consensus.StoreOptions{WALSegmentSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	wantM := consensus.Migration{First: 1501, Last: 10_000, Entries: 8500, Term: 11, StableKeys: 3}
	m.Took = 0
	if m != wantM {
		t.Fatalf("got %+v, want %+v", m, wantM)
	}
	checkFiles(t, dir, migratedFiles)
	got, gotSt := readStores(t, dir, consensus.LogStoreWAL)
	if err := sameEntries(got, want); err != nil {
		t.Fatal(err)
	}
	if gotSt.term != st.term || gotSt.voteTerm != st.voteTerm || !bytes.Equal(gotSt.voteCand, st.voteCand) {
		t.Fatalf("stable state: got %+v, want %+v", gotSt, st)
	}
}

// TestMigrateBoltToWAL_NodeThatNeverVoted: a node that joined and never
// voted has a term but no vote, and a new node may have no entries.
func TestMigrateBoltToWAL_NodeThatNeverVoted(t *testing.T) {
	for _, last := range []uint64{0, 3} {
		t.Run(fmt.Sprintf("last index %d", last), func(t *testing.T) {
			dir := t.TempDir()
			want := writeStores(t, dir, consensus.LogStoreBolt, 1, last, 0, stableState{term: 4})
			m, err := consensus.MigrateBoltToWAL(dir, consensus.StoreOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if m.Entries != last || m.Term != 4 || m.StableKeys != 1 {
				t.Fatalf("got %+v, want %d entries, term 4, 1 stable key", m, last)
			}
			got, st := readStores(t, dir, consensus.LogStoreWAL)
			if err := sameEntries(got, want); err != nil {
				t.Fatal(err)
			}
			if st.term != 4 || st.voteTerm != 0 || st.voteCand != nil {
				t.Fatalf("stable state: got %+v, want term 4 and no vote", st)
			}
		})
	}
}

// TestMigrateBoltToWAL_RedoesAnInterruptedMigration: a crash during a
// migration leaves a partial wal in wal.migrating and raft.db untouched.
// The next attempt throws the partial copy away and copies again.
func TestMigrateBoltToWAL_RedoesAnInterruptedMigration(t *testing.T) {
	dir := t.TempDir()
	st := stableState{term: 7, voteTerm: 7, voteCand: []byte("node0@127.0.0.1:7481")}
	want := writeStores(t, dir, consensus.LogStoreBolt, 1, 3000, 0, st)

	// The partial copy: the first 1000 entries, then a torn segment file
	// and no stable keys, in wal.migrating.
	scratch := t.TempDir()
	writeStores(t, scratch, consensus.LogStoreWAL, 1, 1000, 0, stableState{})
	partial := filepath.Join(dir, "wal.migrating")
	if err := os.Rename(filepath.Join(scratch, "wal"), partial); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(partial, "00000000000000001001-0000000000000002.wal"), []byte("torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, dir, map[string]bool{"raft.db": true, "wal.migrating": true, "wal": false})

	m, err := consensus.MigrateBoltToWAL(dir, consensus.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Discarded || m.Entries != 3000 || m.Term != 7 {
		t.Fatalf("got %+v, want the partial copy discarded and 3000 entries of term 7 copied", m)
	}
	checkFiles(t, dir, migratedFiles)
	got, gotSt := readStores(t, dir, consensus.LogStoreWAL)
	if err := sameEntries(got, want); err != nil {
		t.Fatal(err)
	}
	if gotSt.term != 7 || !bytes.Equal(gotSt.voteCand, st.voteCand) {
		t.Fatalf("stable state: got %+v, want %+v", gotSt, st)
	}
}

// TestOpenStores_FinishesAMigrationCutShortAfterItsCommit: a crash after
// wal.migrating became wal but before raft.db was renamed. The wal is
// complete and may have grown since: it is kept, never migrated again.
func TestOpenStores_FinishesAMigrationCutShortAfterItsCommit(t *testing.T) {
	dir := t.TempDir()
	want := writeStores(t, dir, consensus.LogStoreBolt, 1, 200, 0, stableState{term: 2})
	if _, err := consensus.MigrateBoltToWAL(dir, consensus.StoreOptions{}); err != nil {
		t.Fatal(err)
	}
	// Entries appended on the wal after the migration, which migrating
	// raft.db again would lose.
	s := mustOpen(t, dir, consensus.LogStoreWAL)
	for i := uint64(201); i <= 210; i++ {
		want = append(want, testEntry(i, 3))
	}
	if err := s.Log.StoreLogs(want[200:]); err != nil {
		t.Fatal(err)
	}
	closeStores(t, s)
	if err := os.Rename(filepath.Join(dir, "raft.db.migrated"), filepath.Join(dir, "raft.db")); err != nil {
		t.Fatal(err)
	}

	got, _ := readStores(t, dir, consensus.LogStoreWAL)
	if err := sameEntries(got, want); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, dir, migratedFiles)
}

// TestOpenStores_RefusesToStartWithoutItsLog: a directory that holds a wal
// refuses bolt, and one whose wal is gone refuses to start empty. Neither
// refusal creates anything.
func TestOpenStores_RefusesToStartWithoutItsLog(t *testing.T) {
	tests := []struct {
		name    string
		kind    string
		prepare func(t *testing.T, dir string)
		want    error
		files   map[string]bool
	}{
		{"bolt on a migrated directory", consensus.LogStoreBolt, func(t *testing.T, dir string) {}, consensus.ErrWALPresent, migratedFiles},
		{"bolt on a directory that only ever had a wal", consensus.LogStoreBolt, func(t *testing.T, dir string) {
			if err := os.Rename(filepath.Join(dir, "raft.db.migrated"), filepath.Join(t.TempDir(), "elsewhere")); err != nil {
				t.Fatal(err)
			}
		}, consensus.ErrWALPresent, map[string]bool{"wal": true, "raft.db": false}},
		{"wal whose wal is gone", consensus.LogStoreWAL, func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, "wal")); err != nil {
				t.Fatal(err)
			}
		}, consensus.ErrWALMissing, map[string]bool{"wal": false, "raft.db": false, "raft.db.migrated": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeStores(t, dir, consensus.LogStoreBolt, 1, 10, 0, stableState{term: 1})
			if _, err := consensus.MigrateBoltToWAL(dir, consensus.StoreOptions{}); err != nil {
				t.Fatal(err)
			}
			tt.prepare(t, dir)
			s, err := consensus.OpenStores(dir, consensus.StoreOptions{Kind: tt.kind})
			if err == nil {
				closeStores(t, s)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			checkFiles(t, dir, tt.files)
		})
	}
}

func TestOpenStores_WALPublishesItsMetricsUntilClosed(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := consensus.OpenStores(t.TempDir(), consensus.StoreOptions{Kind: consensus.LogStoreWAL, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Log.StoreLogs([]*raft.Log{testEntry(1, 1), testEntry(2, 1)}); err != nil {
		t.Fatal(err)
	}
	values := func() map[string]float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			m := mf.GetMetric()[0]
			out[mf.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		return out
	}
	got := values()
	if got["shoal_raft_wal_log_appends_total"] != 1 || got["shoal_raft_wal_log_entries_written_total"] != 2 {
		t.Fatalf("got %v, want 1 append of 2 entries", got)
	}
	closeStores(t, s)
	if got := values(); len(got) != 0 {
		t.Fatalf("after Close the registry still has %v", got)
	}
}

func TestConfig_ValidatesTheLogStore(t *testing.T) {
	for _, tt := range []struct {
		store string
		ok    bool
	}{{consensus.LogStoreWAL, true}, {consensus.LogStoreBolt, true}, {"", false}, {"rocksdb", false}, {"WAL", false}} {
		cfg := consensus.DefaultConfig()
		cfg.NodeID, cfg.Dir, cfg.LogStore = "n1", t.TempDir(), tt.store
		if err := cfg.Validate(); (err == nil) != tt.ok {
			t.Errorf("log store %q: got %v, want ok=%v", tt.store, err, tt.ok)
		}
	}
}

// TestCluster_UpgradeFromBoltToWALKeepsTheLog is the upgrade of a running
// cluster: its nodes wrote their logs with bolt, stop, and start again
// with wal. Every node must migrate its own log (every committed entry
// byte for byte; the unit tests above check uncommitted ones too), keep its
// term, replay its log into the modules and keep serving writes.
func TestCluster_UpgradeFromBoltToWALKeepsTheLog(t *testing.T) {
	testcluster.FullRunOnly(t, "a cluster upgraded from bolt to wal (the migration itself is tested under -short)")
	dirs := make([]string, 3)
	c := testcluster.New(t, 3, testcluster.WithModules("register"),
		testcluster.WithConfig(func(i int, cfg *agent.Config) {
			cfg.RaftLogStore = consensus.LogStoreBolt
			dirs[i] = filepath.Join(cfg.DataDir, "raft")
		}))
	var acked []string
	for i := range 60 {
		v := fmt.Sprint("bolt-", i)
		mustApply(t, c.Node(i%3), v) // two thirds are forwarded
		acked = append(acked, v)
	}
	for _, n := range c.Nodes() {
		waitValues(t, n, acked) // every node has every entry in its log
	}
	// Entries up to a node's commit index can never change; those after
	// it may still be replaced by a new leader's, after the upgrade too.
	committed := make([]uint64, 3)
	for i, n := range c.Nodes() {
		committed[i] = n.Agent().Raft().Stats().CommitIndex
		c.Stop(i)
	}
	boltLogs := make([][]*raft.Log, 3)
	boltTerms := make([]uint64, 3)
	for i, dir := range dirs {
		checkFiles(t, dir, map[string]bool{"raft.db": true, "wal": false})
		var st stableState
		boltLogs[i], st = readStores(t, dir, consensus.LogStoreBolt)
		boltTerms[i] = st.term
		if len(boltLogs[i]) < len(acked) || boltLogs[i][0].Index != 1 {
			t.Fatalf("node%d's bolt log has %d entries from index %d; want every entry of the %d writes", i, len(boltLogs[i]), boltLogs[i][0].Index, len(acked))
		}
		boltLogs[i] = boltLogs[i][:committed[i]] // indexes start at 1
	}

	for i := range c.Nodes() {
		// One attempt per poll: a port of the stopped node may still be
		// held for a moment.
		testcluster.Eventually(t, 10*time.Second, func() error {
			return c.TryRestart(i, func(cfg *agent.Config) { cfg.RaftLogStore = consensus.LogStoreWAL })
		})
		st := c.Node(i).Agent().Raft().Stats()
		if st.Term < boltTerms[i] || st.LastIndex < committed[i] {
			t.Fatalf("node%d restarted on wal at term %d, last index %d; on bolt it had term %d, commit index %d",
				i, st.Term, st.LastIndex, boltTerms[i], committed[i])
		}
		checkFiles(t, dirs[i], migratedFiles)
	}
	// The modules start empty and are rebuilt from the migrated logs (no
	// snapshot was ever taken: 8192 entries make one).
	for _, n := range c.Nodes() {
		waitValues(t, n, acked)
	}
	for i := range 30 {
		v := fmt.Sprint("wal-", i)
		mustApply(t, c.Node(i%3), v)
		acked = append(acked, v)
	}
	for _, n := range c.Nodes() {
		waitValues(t, n, acked)
	}

	for i := range c.Nodes() {
		c.Stop(i)
	}
	for i, dir := range dirs {
		walLog, st := readStores(t, dir, consensus.LogStoreWAL)
		if err := sameEntries(walLog[:min(len(walLog), len(boltLogs[i]))], boltLogs[i]); err != nil {
			t.Errorf("node%d's wal against the committed part of its bolt log: %v", i, err)
		}
		if len(walLog) <= len(boltLogs[i]) {
			t.Errorf("node%d's wal has %d entries, no more than its bolt log (%d): the new writes are missing", i, len(walLog), len(boltLogs[i]))
		}
		if st.term < boltTerms[i] {
			t.Errorf("node%d's term went back from %d to %d", i, boltTerms[i], st.term)
		}
	}
}
