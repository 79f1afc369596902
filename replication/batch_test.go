package replication

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// offlineModule is a module with only its store (in dir, fsync on): enough
// for a follower session against a fake leader.
func offlineModule(t *testing.T, dir string) *Replication {
	t.Helper()
	st, err := openStore(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.close() })
	m := new(Replication)
	m.init()
	m.store = st
	return m
}

// TestCommitBatch_RenamesOnlyAtCommit: a staged file is not at its path
// until the batch commits; a discarded batch leaves nothing, not even its
// staging files.
func TestCommitBatch_RenamesOnlyAtCommit(t *testing.T) {
	st := offlineModule(t, t.TempDir()).store
	b := newCommitBatch(st)
	stage := func(p, content string) {
		t.Helper()
		sum := sha256.Sum256([]byte(content))
		s, f, err := st.stageOpen([]byte(content), &sum)
		if err != nil {
			t.Fatal(err)
		}
		b.add(f, s, p)
	}
	stage("x/one", "first")
	stage("two", "second")
	if !b.has("x/one") || b.has("three") {
		t.Fatalf("has: x/one %v, three %v", b.has("x/one"), b.has("three"))
	}
	if _, err := st.root.Stat("x/one"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a staged file is at its path before the commit: %v", err)
	}
	if err := b.commit(); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"x/one": "first", "two": "second"} {
		got, err := fs.ReadFile(st.root.FS(), p)
		if err != nil || string(got) != want {
			t.Fatalf("%s after the commit: %q, %v; want %q", p, got, err, want)
		}
		e, err := st.stat(p)
		if err != nil || e.Sum != sha256.Sum256([]byte(want)) {
			t.Fatalf("%s: cached sum %x, %v", p, e.Sum, err)
		}
	}
	if b.has("x/one") || len(b.files) != 0 {
		t.Fatal("the batch still holds files after its commit")
	}

	stage("gone", "never committed")
	b.discard()
	if _, err := st.root.Stat("gone"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a discarded file is at its path: %v", err)
	}
	if left, _ := fs.ReadDir(st.root.FS(), tmpDir); len(left) != 0 {
		t.Fatalf("staging files left after a discard: %v", left)
	}
}

// TestFollower_BatchKeepsEachPathInOrder drives a follower with a fake
// leader that sends one burst of live actions in which paths are replaced,
// appended to after a replace in the same batch, replaced twice and
// deleted: the directory ends as the actions say, the follower acks the
// last position, and an append after a replace whose sum came from the
// leader extends the right hash.
func TestFollower_BatchKeepsEachPathInOrder(t *testing.T) {
	m := offlineModule(t, t.TempDir())
	st := m.store

	leaderSide, followerSide := net.Pipe()
	defer leaderSide.Close()
	s := newFollowSession(m, "fake", followerSide)
	done := make(chan error, 1)
	go func() { done <- s.run(); _ = followerSide.Close() }()
	defer func() { _ = leaderSide.Close(); <-done; s.abort() }()

	var pos uint64
	replace := func(p, content string) frame {
		pos += actionSize(p, len(content))
		return frame{typ: frameReplace, path: p, pos: pos, sum: sha256.Sum256([]byte(content)), data: []byte(content)}
	}
	appendAt := func(p string, off int, content string) frame {
		pos += actionSize(p, len(content))
		return frame{typ: frameAppend, path: p, offset: uint64(off), pos: pos, data: []byte(content)}
	}
	del := func(p string) frame {
		pos += actionSize(p, 0)
		return frame{typ: frameDelete, path: p, pos: pos}
	}
	burst := []frame{
		replace("a", "one"),
		replace("b", "bee"),
		appendAt("a", 3, "+more"), // a's replace must be in place first
		replace("d/c", "first"),
		replace("d/c", "second"), // replaced twice in one batch
		del("b"),                 // b's replace must be in place first
		replace("e", "eee"),
	}
	go func() {
		_, _ = io.Copy(io.Discard, leaderSide)
	}()
	var out []byte
	out = appendHeader(out)
	out = append(out, mustFrame(t, frame{typ: frameIndexEnd})...)
	out = append(out, mustFrame(t, frame{typ: frameSyncDone})...)
	for _, f := range burst {
		out = append(out, mustFrame(t, f)...)
	}
	// The follower's acks are discarded above; its status, set after each
	// ack, says what it acked.
	if _, err := leaderSide.Write(out); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for m.follower.Load().AppliedBytes < pos {
		if time.Now().After(deadline) {
			t.Fatalf("the follower acked %d of %d", m.follower.Load().AppliedBytes, pos)
		}
		time.Sleep(5 * time.Millisecond)
	}
	want := map[string]string{"a": "one+more", "d/c": "second", "e": "eee"}
	got := map[string]string{}
	_ = fs.WalkDir(st.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && filepath.Dir(p) != tmpDir {
			b, _ := fs.ReadFile(st.root.FS(), p)
			got[p] = string(b)
		}
		return nil
	})
	if len(got) != len(want) {
		t.Fatalf("directory %v, want %v", got, want)
	}
	for p, w := range want {
		if got[p] != w {
			t.Fatalf("%s = %q, want %q (directory %v)", p, got[p], w, got)
		}
		e, err := st.stat(p)
		if err != nil || e.Sum != sha256.Sum256([]byte(w)) {
			t.Fatalf("%s: cached sum %x, %v; want the sum of %q", p, e.Sum, err, w)
		}
	}
	if left, _ := fs.ReadDir(st.root.FS(), tmpDir); len(left) != 0 {
		t.Fatalf("staging files left after the commits: %v", left)
	}
}

// TestLeadership_WatcherWaitsForTheWindow: the watcher may publish only
// while every streaming follower that makes progress is within the window
// of the stream's end; an ack opens it; a follower with no ack for the ack
// timeout is not waited for; the end of the term ends the wait.
func TestLeadership_WatcherWaitsForTheWindow(t *testing.T) {
	m := new(Replication)
	m.init()
	m.cfg = DefaultConfig()
	m.cfg.AckTimeout = time.Hour // only an ack or the end of the term ends a wait here
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := &leadership{m: m, ctx: ctx, stop: cancel, peers: map[string]*peer{}, changed: make(chan struct{})}
	now := time.Now()
	slow := &peer{name: "slow", streaming: true, connectedAt: now}
	l.peers[slow.name] = slow
	l.ackPos = watchWindow + 1

	waited := make(chan bool, 1)
	go func() { waited <- l.awaitWindow() }()
	select {
	case ok := <-waited:
		t.Fatalf("the watcher went on (%v) with a follower a window behind", ok)
	case <-time.After(100 * time.Millisecond):
	}
	l.onAck(slow, 2)
	if ok := <-waited; !ok {
		t.Fatal("the wait ended as if the term had ended")
	}

	// A follower that acked nothing for the ack timeout is not waited for.
	m.cfg.AckTimeout = time.Minute
	slow.ackedAt = now.Add(-2 * time.Minute)
	slow.connectedAt = slow.ackedAt
	l.ackPos = slow.acked + watchWindow + 1
	if !l.awaitWindow() {
		t.Fatal("the wait for a stuck follower ended as if the term had ended")
	}

	// The end of the term ends a wait.
	slow.ackedAt = time.Now()
	go func() { waited <- l.awaitWindow() }()
	cancel()
	if ok := <-waited; ok {
		t.Fatal("the watcher went on after its term ended")
	}
}
