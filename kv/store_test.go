package kv

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// openTestStore opens a store in a fresh directory and records its
// changes.
func openTestStore(t *testing.T) (*store, *[]change) {
	t.Helper()
	return openTestStoreAt(t, filepath.Join(t.TempDir(), "kv.db"))
}

func openTestStoreAt(t *testing.T, path string) (*store, *[]change) {
	t.Helper()
	var mu sync.Mutex
	changes := &[]change{}
	st, _, err := openStore(path, func(c change) {
		mu.Lock()
		defer mu.Unlock()
		*changes = append(*changes, c)
	})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.close() })
	return st, changes
}

// mergeAll persists and applies entries the way merge does.
func mergeAll(t *testing.T, st *store, horizon int64, entries ...entry) []entry {
	t.Helper()
	accepted := st.filter(entries, horizon)
	if err := st.persist(accepted, false); err != nil {
		t.Fatalf("persist: %v", err)
	}
	return st.apply(accepted, horizon)
}

func ver(time int64, counter uint32, node string) Version {
	return Version{Time: time, Counter: counter, Node: node}
}

func TestStore_LastWriterWins(t *testing.T) {
	val := func(v Version, s string) entry { return entry{Key: "k", Value: s, Version: v} }
	tomb := func(v Version) entry { return entry{Key: "k", Version: v, Deleted: true} }
	tests := []struct {
		name    string
		in      []entry
		want    string // value after; "" with wantDel for a tombstone
		wantDel bool
		events  []EventType
	}{
		{"newer value replaces", []entry{val(ver(1, 0, "a"), "1"), val(ver(2, 0, "a"), "2")}, "2", false,
			[]EventType{EventNewKey, EventKeyChanged}},
		{"older value loses, no event", []entry{val(ver(2, 0, "a"), "2"), val(ver(1, 0, "a"), "1")}, "2", false,
			[]EventType{EventNewKey}},
		{"counter orders within a millisecond", []entry{val(ver(2, 1, "a"), "b"), val(ver(2, 0, "z"), "a")}, "b", false,
			[]EventType{EventNewKey}},
		{"node name breaks ties", []entry{val(ver(2, 0, "b"), "b"), val(ver(2, 0, "a"), "a")}, "b", false,
			[]EventType{EventNewKey}},
		{"same version twice is one change", []entry{val(ver(2, 0, "a"), "x"), val(ver(2, 0, "a"), "x")}, "x", false,
			[]EventType{EventNewKey}},
		{"tombstone wins over older value", []entry{val(ver(1, 0, "a"), "1"), tomb(ver(2, 0, "b"))}, "", true,
			[]EventType{EventNewKey, EventKeyRemoved}},
		{"tombstone loses to newer value", []entry{val(ver(3, 0, "a"), "3"), tomb(ver(2, 0, "b"))}, "3", false,
			[]EventType{EventNewKey}},
		{"value after tombstone is new again", []entry{val(ver(1, 0, "a"), "1"), tomb(ver(2, 0, "b")), val(ver(3, 0, "a"), "3")}, "3", false,
			[]EventType{EventNewKey, EventKeyRemoved, EventNewKey}},
		{"tombstone of an unknown key: no event", []entry{tomb(ver(2, 0, "b"))}, "", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, changes := openTestStore(t)
			for _, e := range tt.in { // one at a time, as separate messages
				mergeAll(t, st, 0, e)
			}
			e, ok, err := st.get("k", 0)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantDel {
				if ok {
					t.Fatalf("got live value %q, want deleted", e.Value)
				}
				if _, tombs, _ := st.counts(); tombs != 1 {
					t.Fatalf("got %d tombstones, want 1", tombs)
				}
			} else if !ok || e.Value != tt.want {
				t.Fatalf("got %q (live %v), want %q", e.Value, ok, tt.want)
			}
			var got []EventType
			for _, c := range *changes {
				got = append(got, c.typ)
			}
			if !slices.Equal(got, tt.events) {
				t.Fatalf("got events %v, want %v", got, tt.events)
			}
		})
	}
}

// TestStore_MergeOrderDoesNotMatter applies the same versions in random
// orders and batchings to several stores: all end with the same state and
// digest.
func TestStore_MergeOrderDoesNotMatter(t *testing.T) {
	var all []entry
	for i := range 200 {
		key := fmt.Sprintf("k%d", i%40)
		e := entry{Key: key, Value: fmt.Sprint(i), Version: ver(int64(i%17), uint32(i%3), fmt.Sprint("n", i%4))}
		if i%7 == 0 {
			e.Value, e.Deleted = "", true
		}
		all = append(all, e)
	}
	var digests []uint64
	var lists [][]entry
	for run := range 4 {
		st, _ := openTestStore(t)
		in := slices.Clone(all)
		r := rand.New(rand.NewPCG(uint64(run), 1))
		r.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
		for len(in) > 0 {
			n := min(len(in), 1+r.IntN(30))
			mergeAll(t, st, 0, in[:n]...)
			in = in[n:]
		}
		_, _, root := st.counts()
		digests = append(digests, root)
		items, _, err := st.list("", "", maxListLimit, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		lists = append(lists, items)
	}
	for i := 1; i < len(digests); i++ {
		if digests[i] != digests[0] || !slices.Equal(lists[i], lists[0]) {
			t.Fatalf("run %d differs from run 0: digest %x vs %x", i, digests[i], digests[0])
		}
	}
}

func TestStore_PersistNeverOverwritesNewer(t *testing.T) {
	st, _ := openTestStore(t)
	newer := entry{Key: "k", Value: "new", Version: ver(5, 0, "a")}
	older := entry{Key: "k", Value: "old", Version: ver(4, 0, "a")}
	// The disk sees the newer version first, then a racing older one.
	if err := st.persist([]entry{newer}, true); err != nil {
		t.Fatal(err)
	}
	if err := st.persist([]entry{older}, false); err != nil {
		t.Fatal(err)
	}
	if e, _, _ := st.get("k", 0); e.Value != "new" {
		t.Fatalf("disk holds %q, want the newer %q", e.Value, "new")
	}
}

func TestStore_ReopenRestoresIndexAndDigest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	st, _ := openTestStoreAt(t, path)
	mergeAll(t, st, 0,
		entry{Key: "a", Value: "1", Version: ver(1, 0, "n")},
		entry{Key: "b", Version: ver(2, 0, "n"), Deleted: true},
		entry{Key: "c", Value: "3", Version: ver(9, 4, "z")},
	)
	live, tombs, root := st.counts()
	if err := st.close(); err != nil {
		t.Fatal(err)
	}
	again, _, err := openStore(path, func(change) {})
	if err != nil {
		t.Fatal(err)
	}
	defer again.close()
	l2, t2, r2 := again.counts()
	if l2 != live || t2 != tombs || r2 != root {
		t.Fatalf("reopened: %d live, %d tombstones, digest %x; want %d, %d, %x", l2, t2, r2, live, tombs, root)
	}
}

func TestStore_OpenReturnsNewestVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	st, _ := openTestStoreAt(t, path)
	mergeAll(t, st, 0, entry{Key: "a", Value: "1", Version: ver(7, 2, "b")}, entry{Key: "b", Value: "1", Version: ver(7, 1, "z")})
	_ = st.close()
	again, newest, err := openStore(path, func(change) {})
	if err != nil {
		t.Fatal(err)
	}
	defer again.close()
	if newest != ver(7, 2, "b") {
		t.Fatalf("got newest %+v, want {7 2 b}", newest)
	}
}

func TestStore_OldTombstoneOfUnknownKeyIsIgnored(t *testing.T) {
	st, changes := openTestStore(t)
	horizon := int64(100)
	if got := mergeAll(t, st, horizon, entry{Key: "gone", Version: ver(50, 0, "n"), Deleted: true}); len(got) != 0 {
		t.Fatalf("applied %v, want nothing", got)
	}
	// But it still deletes an older value the store holds.
	mergeAll(t, st, 0, entry{Key: "k", Value: "v", Version: ver(40, 0, "n")})
	mergeAll(t, st, horizon, entry{Key: "k", Version: ver(50, 0, "n"), Deleted: true})
	if _, ok, _ := st.get("k", 0); ok {
		t.Fatalf("the old tombstone did not delete the older value")
	}
	if n := len(*changes); n != 2 {
		t.Fatalf("got %d changes, want new_key and key_removed", n)
	}
}

func TestStore_RemoveIfKeepsNewerVersions(t *testing.T) {
	st, changes := openTestStore(t)
	mergeAll(t, st, 0,
		entry{Key: "t", Version: ver(1, 0, "n"), Deleted: true},
		entry{Key: "v", Value: "x", Version: ver(1, 0, "n")},
		entry{Key: "w", Value: "y", Version: ver(1, 0, "n")},
	)
	expired := st.expiredTombstones(2)
	if len(expired) != 1 || expired[0].Key != "t" {
		t.Fatalf("got expired %v, want [t]", expired)
	}
	// w changed since it was listed: its removal must be skipped.
	mergeAll(t, st, 0, entry{Key: "w", Value: "z", Version: ver(3, 0, "n")})
	*changes = nil
	n, err := st.removeIf(append(expired, want{Key: "v", Version: ver(1, 0, "n")}, want{Key: "w", Version: ver(1, 0, "n")}))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("removed %d, want 2 (t and v)", n)
	}
	if e, ok, _ := st.get("w", 0); !ok || e.Value != "z" {
		t.Fatalf("w: got %q %v, want the newer z", e.Value, ok)
	}
	if live, tombs, _ := st.counts(); live != 1 || tombs != 0 {
		t.Fatalf("got %d live, %d tombstones; want 1, 0", live, tombs)
	}
	if len(*changes) != 1 || (*changes)[0].typ != EventKeyRemoved || (*changes)[0].e.Key != "v" {
		t.Fatalf("got changes %+v, want one key_removed of v", *changes)
	}
}

func TestStore_ListPagesInKeyOrder(t *testing.T) {
	st, _ := openTestStore(t)
	keys := []string{"a", "app/1", "app/2", "app/3", "app/é", "apq", "b"}
	for i, k := range keys {
		mergeAll(t, st, 0, entry{Key: k, Value: k, Version: ver(int64(i+1), 0, "n")})
	}
	mergeAll(t, st, 0, entry{Key: "app/2", Version: ver(99, 0, "n"), Deleted: true})
	tests := []struct {
		prefix, after string
		limit         int
		want          []string
		more          bool
	}{
		{"app/", "", 10, []string{"app/1", "app/3", "app/é"}, false},
		{"app/", "", 2, []string{"app/1", "app/3"}, true},
		{"app/", "app/3", 2, []string{"app/é"}, false},
		{"app/", "app/1", 1, []string{"app/3"}, true},
		{"", "apq", 10, []string{"b"}, false},
		{"app/", "a", 10, []string{"app/1", "app/3", "app/é"}, false},
		{"app/", "b", 10, nil, false},
		{"zzz", "", 10, nil, false},
	}
	for _, tt := range tests {
		items, more, err := st.list(tt.prefix, tt.after, tt.limit, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range items {
			got = append(got, e.Key)
		}
		if !slices.Equal(got, tt.want) || more != tt.more {
			t.Fatalf("list(%q, after %q, %d): got %v more=%v, want %v more=%v", tt.prefix, tt.after, tt.limit, got, more, tt.want, tt.more)
		}
	}
}

// TestStore_SettledTree checks what anti-entropy compares: a new entry
// joins the settled tree grace after its version's time, an old one at
// once, a version replaced while pending never, and the full tree has
// everything at once.
func TestStore_SettledTree(t *testing.T) {
	st, _ := openTestStore(t)
	now := time.UnixMilli(1_000_000)
	st.setGrace(2*time.Second, func() time.Time { return now })
	settledRoot := func() uint64 { return st.hashes(0, []int{0})[0].Hash }
	val := func(key string, v Version) entry { return entry{Key: key, Value: "x", Version: v} }

	mergeAll(t, st, 0, val("old", ver(now.UnixMilli()-5000, 0, "a")))
	oldOnly := settledRoot()
	if oldOnly == 0 {
		t.Fatal("an entry older than the grace is not settled at once")
	}
	mergeAll(t, st, 0, val("new", ver(now.UnixMilli()-500, 0, "a")))
	if got := settledRoot(); got != oldOnly {
		t.Fatal("an entry younger than the grace is settled already")
	}
	if _, _, full := st.counts(); full == oldOnly {
		t.Fatal("the full tree (the status digest) lacks the pending entry")
	}
	if n := len(st.summaries([]int{leafOf("new")})[0].Items); leafOf("new") != leafOf("old") && n != 0 {
		t.Fatalf("summary lists %d entries of a leaf whose only entry is pending", n)
	}

	// Replaced while pending: the first version must never settle.
	mergeAll(t, st, 0, val("new", ver(now.UnixMilli()-400, 0, "a")))
	now = now.Add(1600 * time.Millisecond) // the second version is due, not the first's slot twice
	_, _, full := st.counts()
	if got := settledRoot(); got != full {
		t.Fatalf("after the grace the settled root %x differs from the full root %x", got, full)
	}

	// A version with a time in the future (a writer whose clock is ahead)
	// settles grace after its arrival.
	mergeAll(t, st, 0, val("ahead", ver(now.UnixMilli()+3*3600*1000, 0, "b")))
	before := settledRoot()
	now = now.Add(2 * time.Second)
	if settledRoot() == before {
		t.Fatal("an entry from a clock that is ahead did not settle grace after its arrival")
	}
}
