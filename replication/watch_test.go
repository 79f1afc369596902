package replication

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"shoal/internal/testcluster"
)

// TestCluster_WatchedDirectory has a process write into the leader's
// directory itself: a new file, appends to it (which must travel as
// appends), a replace by rename, a new directory, and a delete. Every
// follower converges to the leader's directory.
func TestCluster_WatchedDirectory(t *testing.T) {
	c := newCluster(t, nil)
	leader := replLeader(t, c)
	lm := module(t, leader)
	dir := lm.cfg.Dir
	r := rand.New(rand.NewPCG(7, 8))

	seg := filepath.Join(dir, "segments", "0001.seg")
	if err := os.MkdirAll(filepath.Dir(seg), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(seg, randomBytes(r, 100<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, c, nil)
	appendsBefore := lm.watchedAppends.Load()
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := f.Write(randomBytes(r, 4<<10)); err != nil {
			t.Fatal(err)
		}
		waitConverged(t, c, nil)
	}
	_ = f.Close()
	if got := lm.watchedAppends.Load() - appendsBefore; got == 0 {
		t.Fatalf("growth of a watched file was not sent as appends")
	}

	// A replace by rename, a new directory with files, a delete.
	tmp := filepath.Join(dir, "conf.json.tmp")
	if err := os.WriteFile(tmp, []byte(`{"v":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "conf.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "new", "deep"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(dir, "new", "deep", fmt.Sprint(i)), randomBytes(r, 1000*i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, c, nil)
	if err := os.Remove(filepath.Join(dir, "new", "deep", "1")); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, c, nil)
	got := tree(t, c.Followers()[0])
	if _, ok := got["new/deep/1"]; ok || len(got) != 4 {
		t.Fatalf("follower has %v, want 4 files without new/deep/1", got)
	}
	// Writes through the API still work beside outside writers.
	mustWrite(t, c.Followers()[0], "POST", "/v1/files/segments/0001.seg?append", []byte("api"))
	waitConverged(t, c, nil)
	b, err := os.ReadFile(seg)
	if err != nil || !bytes.HasSuffix(b, []byte("api")) {
		t.Fatalf("leader's segment does not end with the API append: %v", err)
	}
}

// TestCluster_CompressedStream streams with --replication-compress: live
// replaces and appends and a follower's catch-up carry compressed frames,
// and every node converges.
func TestCluster_CompressedStream(t *testing.T) {
	testcluster.FullRunOnly(t, "the compressed stream end to end")
	cfg := testConfig()
	cfg.Compress = true
	c := newCluster(t, cfg)
	leader := replLeader(t, c)
	text := bytes.Repeat([]byte("a line of a log that compresses well\n"), 2000)
	mustWrite(t, leader, "PUT", "/v1/files/log.txt", text)
	mustWrite(t, c.Node((leader.Index+1)%3), "POST", "/v1/files/log.txt?append", text)
	waitConverged(t, c, nil)
	victim := (leader.Index + 2) % 3
	c.Kill(victim)
	waitInSync(t, c, 2)
	mustWrite(t, leader, "PUT", "/v1/files/other.txt", text)
	c.Restart(victim)
	waitInSync(t, c, 3)
	waitConverged(t, c, nil)
}

// TestCluster_LargeOutsideChangeResyncs writes a file larger than one
// frame into the leader's directory: the followers' streams end and their
// catch-up moves it.
func TestCluster_LargeOutsideChangeResyncs(t *testing.T) {
	testcluster.FullRunOnly(t, "a large outside change resynced")
	c := newCluster(t, nil)
	leader := replLeader(t, c)
	lm := module(t, leader)
	r := rand.New(rand.NewPCG(13, 14))
	if err := os.WriteFile(filepath.Join(lm.cfg.Dir, "big.bin"), randomBytes(r, maxData+1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, c, nil)
	if lm.dropped.Load() == 0 {
		t.Fatalf("no follower stream was ended to resync")
	}
	waitInSync(t, c, 3)
}

// TestCluster_WatchedTreeOverflowsAQueue drops a tree of pooled-size files
// (96 KiB to 1 MiB, each different) into the leader's directory, more
// than a follower's 1 MiB queue holds: the watcher's buffers go through
// queues, senders, dropped queues and the pool, and every node ends with
// the exact content (run under -race, a buffer reused while a sender
// still reads it is also a reported race).
func TestCluster_WatchedTreeOverflowsAQueue(t *testing.T) {
	cfg := testConfig()
	cfg.MaxQueueBytes = 1 << 20
	c := newCluster(t, cfg)
	dir := module(t, replLeader(t, c)).cfg.Dir
	r := rand.New(rand.NewPCG(9, 10))
	staging := filepath.Join(filepath.Dir(dir), "tree-staging")
	for i := range 24 {
		p := filepath.Join(staging, fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%02d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, randomBytes(r, 96<<10+r.IntN(928<<10)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(staging, filepath.Join(dir, "tree")); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, c, nil)
	if got := len(tree(t, c.Followers()[0])); got != 24 {
		t.Fatalf("a follower holds %d files, want 24", got)
	}
	t.Logf("streams dropped for a full queue: %d", module(t, replLeader(t, c)).dropped.Load())
}
