package logstream

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"shoal/modules"
)

// mixedWorkload applies appends with count retention, limit changes,
// leader trims, deletions and re-creations to n, calling between (if not
// nil) after each command.
func mixedWorkload(t *testing.T, n *testNode, rounds int, between func(i int)) {
	t.Helper()
	for i := range rounds {
		log := fmt.Sprintf("log-%d", i%5)
		switch {
		case i%41 == 40:
			if _, err := n.apply(opDelete, encodeDelete(log)); err != nil && !errors.Is(err, ErrLogNotFound) {
				t.Fatalf("delete: %v", err)
			}
		case i%17 == 16:
			lim := limits{set: limitEntries, maxEntries: uint64(3 + i%9)}
			if _, err := n.apply(opConfigure, encodeConfigure(configureCmd{log: log, lim: lim})); err != nil {
				t.Fatalf("configure: %v", err)
			}
		case i%13 == 12:
			v, ok := n.log.lookup(log, false)
			if ok && v.next > v.first+1 {
				c := trimCmd{log: log, created: v.ls.created, first: v.first + (v.next-v.first)/2}
				if _, err := n.apply(opTrim, encodeTrim(c)); err != nil {
					t.Fatalf("trim: %v", err)
				}
			}
		default:
			var batch []newEntry
			for j := range 1 + i%4 {
				id := ""
				if (i+j)%3 != 0 {
					id = fmt.Sprintf("id-%d", (i*j+i)%50)
				}
				batch = append(batch, ent(id, fmt.Sprintf(`{"i":%d,"j":%d,"pad":%q}`, i, j, strings.Repeat("x", i%200))))
			}
			mustAppend(t, n, log, uint64(20+i%30), time.Minute, batch...)
		}
		n.advance(time.Duration(i%7) * time.Second)
		if between != nil {
			between(i)
		}
	}
}

// replay applies commands to n as Raft replays them after a restart.
func replay(t *testing.T, n *testNode, cmds []modules.Command) {
	t.Helper()
	for _, cmd := range cmds {
		if _, err := n.log.ApplyCommand(cmd); err != nil && !errors.Is(err, ErrLogNotFound) {
			t.Fatalf("replay of index %d: %v", cmd.Index, err)
		}
		n.index, n.now = cmd.Index, cmd.Time
	}
}

// A restart restores the newest snapshot and replays the commands after
// it, most of which the stores on disk already hold: the state must come
// out exactly as before, nothing written twice, nothing lost; with every
// snapshot of a long history and with none.
func TestRestart_ReplayMatchesTheStores(t *testing.T) {
	a := newTestNode(t, DefaultConfig())
	type snap struct {
		data  []byte
		index uint64
	}
	snaps := []snap{{nil, 0}} // no snapshot: replay from the start
	mixedWorkload(t, a, 400, func(i int) {
		if i%67 == 66 {
			snaps = append(snaps, snap{persist(t, a.log), a.index})
		}
	})
	want := digest(t, a.log)
	for _, s := range snaps {
		t.Run(fmt.Sprintf("snapshot at %d", s.index), func(t *testing.T) {
			// The restarted node works on a copy of a's files as they are
			// now: ahead of the snapshot.
			dir := t.TempDir()
			copyDir(t, a.dir, dir)
			b := newTestNodeIn(t, DefaultConfig(), dir)
			if err := b.log.RestoreAt(bytes.NewReader(s.data), s.index); err != nil {
				t.Fatalf("restore: %v", err)
			}
			replay(t, b, a.history[s.index:])
			if got := digest(t, b.log); got != want {
				t.Fatalf("after the replay:\n%s\nwant:\n%s", got, want)
			}
			// And it goes on like a.
			mustAppend(t, b, "log-1", 100, time.Minute, ent("after", `"restart"`))
		})
	}
}

// A follower far behind installs the leader's snapshot: the files come
// from the leader's snapshot directory over the peer stream, and the
// follower then serves the same entries.
func TestInstall_FromAPeerThenReplay(t *testing.T) {
	a := newTestNode(t, DefaultConfig())
	var data []byte
	var index uint64
	mixedWorkload(t, a, 300, func(i int) {
		if i == 200 {
			data, index = persist(t, a.log), a.index
		}
	})
	b := newTestNode(t, DefaultConfig())
	mustAppend(t, b, "log-1", 5, 0, ent("", `"stale"`)) // a follower's old state, replaced
	if err := b.log.RestoreAt(bytes.NewReader(data), index); err != nil {
		t.Fatalf("install: %v", err)
	}
	replay(t, b, a.history[index:])
	if got, want := digest(t, b.log), digest(t, a.log); got != want {
		t.Fatalf("after install and replay:\n%s\nwant:\n%s", got, want)
	}
	// b can serve the same snapshot to a third node, even with a gone.
	c := newTestNode(t, DefaultConfig())
	testPeers.Delete(a.name)
	if err := c.log.RestoreAt(bytes.NewReader(data), index); err != nil {
		t.Fatalf("install from the node that installed it: %v", err)
	}
}

// A node upgraded from the release that kept entries in memory converts
// its snapshot (testdata/snapshot-v1.bin, written by that release: "orders"
// holds indexes 11-30 of 30 with ids, "audit.v1" two entries) into files
// on its first start, and keeps them on the next.
func TestRestore_ConvertsTheOldFormat(t *testing.T) {
	old, err := os.ReadFile(filepath.Join("testdata", "snapshot-v1.bin"))
	if err != nil {
		t.Fatal(err)
	}
	const index = 31 // the Raft index that release's snapshot was taken at
	n := newTestNode(t, DefaultConfig())
	for range 2 { // the second start finds the converted files
		if err := n.log.RestoreAt(bytes.NewReader(old), index); err != nil {
			t.Fatalf("restore: %v", err)
		}
		first, entries := logContents(n.log, "orders")
		if first != 11 || len(entries) != 20 || entries[0] != `id-k0={"n":0}` || entries[19] != `id-d1={"n":9}` {
			t.Fatalf("orders: got first %d, %d entries %v", first, len(entries), entries)
		}
		if first, entries := logContents(n.log, "audit.v1"); first != 1 || !slices.Equal(entries, []string{`="one"`, `x=[1,2]`}) {
			t.Fatalf("audit.v1: got %d %v", first, entries)
		}
	}
	// The remembered ids came along: publishing one again is a duplicate.
	n.index, n.now = index, testEpoch.Add(31*time.Second)
	res := mustAppend(t, n, "orders", 20, time.Hour, ent("id-d1", "1"), ent("new", "2"))
	if !slices.Equal(res.duplicates, []bool{true, false}) || !slices.Equal(res.indexes, []uint64{30, 31}) {
		t.Fatalf("after the conversion: got %+v", res)
	}
}

// Limits, trims and deletion change the state and the files the same way
// on every node; a deleted log's directory is gone.
func TestApply_ConfigureTrimDelete(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	for i := range 30 {
		mustAppend(t, n, "a", 100, 0, ent("", fmt.Sprintf(`{"i":%d,"pad":%q}`, i, strings.Repeat("p", 300))))
	}
	if _, err := n.apply(opConfigure, encodeConfigure(configureCmd{log: "a", lim: limits{set: limitEntries | limitAge, maxEntries: 10, maxAge: uint64(time.Hour)}})); err != nil {
		t.Fatal(err)
	}
	if first, entries := logContents(n.log, "a"); first != 21 || len(entries) != 10 {
		t.Fatalf("a lowered max_entries trims at once: got %d, %d entries", first, len(entries))
	}
	// The log's own limit wins over the one stamped in the command.
	mustAppend(t, n, "a", 1000, 0, ent("", "1"))
	if first, _ := logContents(n.log, "a"); first != 22 {
		t.Fatalf("after an append: first %d, want 22", first)
	}
	v, _ := n.log.lookup("a", false)
	if _, err := n.apply(opTrim, encodeTrim(trimCmd{log: "a", created: v.ls.created + 1, first: 25})); err != nil {
		t.Fatal(err)
	}
	if first, _ := logContents(n.log, "a"); first != 22 {
		t.Fatalf("a trim for another incarnation changed the log: first %d", first)
	}
	if _, err := n.apply(opTrim, encodeTrim(trimCmd{log: "a", created: v.ls.created, first: 1000})); err != nil {
		t.Fatal(err)
	}
	if first, entries := logContents(n.log, "a"); first != 31 || len(entries) != 1 {
		t.Fatalf("a trim past the end keeps the newest entry: got %d, %d entries", first, len(entries))
	}
	info := func() logInfo { l, _ := n.log.lookup("a", true); return l.info }()
	if info.MaxEntries == nil || *info.MaxEntries != 10 || info.MaxAge == nil || *info.MaxAge != "1h0m0s" || info.MaxBytes != nil {
		t.Fatalf("info: %+v", info)
	}
	dir := n.log.disk.path("a", v.ls.created)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the log's directory: %v", err)
	}
	if _, err := n.apply(opDelete, encodeDelete("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a deleted log's directory is still there: %v", err)
	}
	if _, err := n.apply(opDelete, encodeDelete("a")); !errors.Is(err, ErrLogNotFound) {
		t.Fatalf("deleting a missing log: got %v, want ErrLogNotFound", err)
	}
	// Created again, it starts from index 1 in a new directory.
	if res := mustAppend(t, n, "a", 100, 0, ent("", "1")); res.indexes[0] != 1 {
		t.Fatalf("re-created log: %+v", res)
	}
	if st := n.log.Status().(Status); st.Logs != 1 || st.Entries != 1 {
		t.Fatalf("status: %+v", st)
	}
}

// The leader trims by bytes and age from its own store; the trims are
// commands, so they reach every node.
func TestRetention_ByBytesAndAge(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SegmentBytes, cfg.RetentionInterval = 4<<10, time.Hour
	n := newTestNode(t, cfg)
	n.raft.IsLeaderFunc = func() bool { return true }
	for i := range 40 {
		mustAppend(t, n, "bytes", 1000, 0, ent("", fmt.Sprintf(`%q`, strings.Repeat("b", 100+i))))
		mustAppend(t, n, "age", 1000, 0, ent("", fmt.Sprint(i)))
		n.advance(time.Minute)
	}
	for _, c := range []configureCmd{
		{log: "bytes", lim: limits{set: limitBytes, maxBytes: 2000}},
		{log: "age", lim: limits{set: limitAge, maxAge: uint64(10*time.Minute + 30*time.Second)}},
	} {
		if _, err := n.apply(opConfigure, encodeConfigure(c)); err != nil {
			t.Fatal(err)
		}
	}
	n.log.enforceRetention(t.Context(), n.now)
	first, entries := logContents(n.log, "age")
	// Entry i (index i+1) was written at minute i; at minute 40 the last
	// 10m30s hold minutes 30 to 39.
	if first != 31 || len(entries) != 10 {
		t.Fatalf("age: got first %d, %d entries; want the 10 of the last 10m30s", first, len(entries))
	}
	v, _ := n.log.lookup("bytes", false)
	size := 0
	for _, e := range mustRead(n.log, v) {
		size += len(e.Data) + 36
	}
	if size > 2000 || size+200 < 2000 {
		t.Fatalf("bytes: %d bytes retained (%d entries), want just under 2000", size, v.next-v.first)
	}
	// Nothing more to do: no further trim.
	before := len(n.history)
	n.log.enforceRetention(t.Context(), n.now)
	if len(n.history) != before {
		t.Fatalf("a second pass submitted %d commands", len(n.history)-before)
	}
}

// copyDir copies a directory tree (files by content, not links).
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		target := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o750)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o600)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", from, err)
	}
}

// A backup carries every entry (a Raft snapshot only names files on the
// node that took it): restored on another node, at another Raft index, it
// gives the same logs, entries, limits and remembered ids, and a restart
// that restores it again keeps what the first restore wrote.
func TestPortableSnapshot_RestoresAnywhere(t *testing.T) {
	a := newTestNode(t, Config{MaxEntries: 1000, DedupWindow: time.Hour, StreamHeartbeat: time.Second})
	mixedWorkload(t, a, 300, nil)
	var portable bytes.Buffer
	if err := a.log.PortableSnapshot(bytes.NewReader(persist(t, a.log)), &portable); err != nil {
		t.Fatalf("portable: %v", err)
	}
	created := regexp.MustCompile(`created \d+ `)
	want := created.ReplaceAllString(digest(t, a.log), "")

	b := newTestNode(t, DefaultConfig())
	mustAppend(t, b, "replaced", 10, 0, ent("", "1"))
	for range 2 { // the second time, as after a restart, the files are there
		if err := b.log.RestoreAt(bytes.NewReader(portable.Bytes()), 5000); err != nil {
			t.Fatalf("restore: %v", err)
		}
		if got := created.ReplaceAllString(digest(t, b.log), ""); got != want {
			t.Fatalf("restored:\n%s\nwant:\n%s", got, want)
		}
	}
	// Later commands are written: their Raft indexes are above the one the
	// backup was restored at.
	b.index, b.now = 5000, a.now
	res := mustAppend(t, b, "log-1", 1000, time.Hour, ent("after", "1"))
	if first, entries := logContents(b.log, "log-1"); entries[len(entries)-1] != "after=1" || res.indexes[0] != first+uint64(len(entries))-1 {
		t.Fatalf("after the restore: %+v, log from %d: %v", res, first, entries)
	}
	// A damaged backup changes nothing.
	before := digest(t, b.log)
	bad := portable.Bytes()[:portable.Len()-5]
	if err := b.log.RestoreAt(bytes.NewReader(bad), 6000); !errors.Is(err, ErrMalformedSnapshot) {
		t.Fatalf("truncated backup: got %v", err)
	}
	if digest(t, b.log) != before {
		t.Fatalf("a refused backup changed the state")
	}
	if left, _ := filepath.Glob(filepath.Join(b.dir, "logs", "*@6000*")); len(left) > 0 {
		t.Fatalf("a refused backup left directories: %v", left)
	}
}
