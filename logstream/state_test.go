package logstream

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"shoal/internal/moduletest"
	"shoal/logstream/segment"
	"shoal/modules"
)

func ent(id, data string) newEntry { return newEntry{id: id, data: []byte(data)} }

func appendPayload(log string, max uint64, window time.Duration, entries ...newEntry) []byte {
	return encodeAppend(appendCmd{log: log, maxEntries: max, dedupWindow: window, entries: entries})
}

// mustAppend applies an append command and decodes its result.
func mustAppend(t *testing.T, n *testNode, log string, max uint64, window time.Duration, entries ...newEntry) appendResult {
	t.Helper()
	applied, err := n.apply(opAppend, appendPayload(log, max, window, entries...))
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	res, err := decodeResult(applied.Result)
	if err != nil {
		t.Fatalf("decode result: %v", err)
	}
	return res
}

func persist(t *testing.T, l *Log) []byte {
	t.Helper()
	snap, err := l.Snapshot()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	defer snap.Release()
	var buf bytes.Buffer
	if err := snap.Persist(&buf); err != nil {
		t.Fatalf("persist: %v", err)
	}
	return buf.Bytes()
}

// logContents returns a log's first index and entry ids and data as
// "id=data" strings, read from its store.
func logContents(l *Log, name string) (uint64, []string) {
	v, ok := l.lookup(name, false)
	if !ok {
		return 0, nil
	}
	var out []string
	for _, e := range mustRead(l, v) {
		out = append(out, e.ID+"="+string(e.Data))
	}
	return v.first, out
}

// mustRead reads every retained entry of v; it panics on an error (tests
// call it where reading must work).
func mustRead(l *Log, v view) []segment.Entry {
	var out []segment.Entry
	if v.store == nil {
		return nil // a log deleted after the snapshot: no files until the replay deletes it
	}
	for from := v.first; from < v.next; {
		entries, err := l.read(v, from, maxLimit, 0)
		if err != nil {
			panic(err)
		}
		out = append(out, entries...)
		from += uint64(len(entries))
	}
	return out
}

// digest describes l's whole state, entries included, in a form two
// nodes that applied the same commands share (snapshots differ in the
// names of their directories).
func digest(t *testing.T, l *Log) string {
	t.Helper()
	l.mu.RLock()
	names := make([]string, 0, len(l.st.logs))
	for name := range l.st.logs {
		names = append(names, name)
	}
	dedup := slices.Clone(l.st.dedupQ)
	entries := l.st.entries
	l.mu.RUnlock()
	slices.Sort(names)
	var b strings.Builder
	fmt.Fprintf(&b, "entries %d\n", entries)
	for _, name := range names {
		v, _ := l.lookup(name, false)
		fmt.Fprintf(&b, "log %s created %d [%d,%d) limits %+v\n", name, v.ls.created, v.first, v.next, v.ls.lim)
		for _, e := range mustRead(l, v) {
			fmt.Fprintf(&b, "  %d %q %s %d\n", e.Offset, e.ID, e.Data, e.Time)
		}
	}
	for _, rec := range dedup {
		fmt.Fprintf(&b, "dedup %s %q %d %d\n", rec.key.log, rec.key.id, rec.index, rec.time)
	}
	return b.String()
}

const day = 24 * time.Hour

func TestApply_Publishes(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	for want := uint64(1); want <= 3; want++ {
		res := mustAppend(t, n, "orders", 100, time.Minute, ent("", fmt.Sprintf(`{"n":%d}`, want)))
		if res.indexes[0] != want || res.duplicates[0] {
			t.Fatalf("publish %d: got %v/%v, want index %d, not duplicate", want, res.indexes, res.duplicates, want)
		}
		n.advance(time.Second)
	}
	first, got := logContents(n.log, "orders")
	if want := []string{`={"n":1}`, `={"n":2}`, `={"n":3}`}; first != 1 || !slices.Equal(got, want) {
		t.Fatalf("got first %d %v, want 1 %v", first, got, want)
	}
	v, _ := n.log.lookup("orders", false)
	tm := mustRead(n.log, v)[1].Time
	if want := testEpoch.Add(time.Second).UnixNano(); tm != want {
		t.Fatalf("entry time: got %d, want the command time %d", tm, want)
	}
	if st := n.log.Status().(Status); st.Logs != 1 || st.Entries != 3 || st.Bytes == 0 || st.Segments != 1 {
		t.Fatalf("status: got %+v", st)
	}
	if got := moduletest.MetricValue(t, n.reg, "shoal_log_entries"); got != 3 {
		t.Fatalf("entries gauge: got %v, want 3", got)
	}
}

func TestApply_BatchIsContiguousAndAtomic(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	mustAppend(t, n, "a", 100, time.Minute, ent("x", "1"))
	res := mustAppend(t, n, "a", 100, time.Minute, ent("p", "2"), ent("q", "3"), ent("p", "4"), ent("x", "5"))
	if want := []uint64{2, 3, 2, 1}; !slices.Equal(res.indexes, want) {
		t.Fatalf("indexes: got %v, want %v", res.indexes, want)
	}
	if want := []bool{false, false, true, true}; !slices.Equal(res.duplicates, want) {
		t.Fatalf("duplicates: got %v, want %v", res.duplicates, want)
	}

	before := digest(t, n.log)
	// A batch whose last entry is cut short is refused whole.
	bad := appendPayload("a", 100, time.Minute, ent("r", "6"), ent("s", "7"))
	bad = bad[:len(bad)-1]
	if _, err := n.apply(opAppend, bad); !errors.Is(err, ErrMalformedCommand) {
		t.Fatalf("got %v, want ErrMalformedCommand", err)
	}
	if after := digest(t, n.log); before != after {
		t.Fatalf("a refused batch changed the state")
	}
}

func TestApply_Dedup(t *testing.T) {
	const window = 10 * time.Minute
	type step struct {
		advance time.Duration
		log, id string
		window  time.Duration
		index   uint64
		dup     bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"same id within the window", []step{
			{0, "a", "k", window, 1, false},
			{window - 1, "a", "k", window, 1, true},
		}},
		{"expires after the window in command time", []step{
			{0, "a", "k", window, 1, false},
			{window, "a", "k", window, 2, false},
			{time.Second, "a", "k", window, 2, true},
		}},
		{"ids are per log", []step{
			{0, "a", "k", window, 1, false},
			{0, "b", "k", window, 1, false},
			{0, "b", "k", window, 1, true},
		}},
		{"empty id is never deduplicated", []step{
			{0, "a", "", window, 1, false},
			{0, "a", "", window, 2, false},
		}},
		{"zero window disables dedup", []step{
			{0, "a", "k", 0, 1, false},
			{0, "a", "k", 0, 2, false},
		}},
		{"the window stamped in the command decides", []step{
			{0, "a", "k", window, 1, false},
			{2 * time.Minute, "a", "k", time.Minute, 2, false},
			{0, "a", "k", day, 2, true},
		}},
		{"a duplicate does not extend the window", []step{
			{0, "a", "k", window, 1, false},
			{window / 2, "a", "k", window, 1, true},
			{window / 2, "a", "k", window, 2, false},
		}},
		{"command time going backwards keeps the id", []step{
			{0, "a", "k", window, 1, false},
			{-time.Hour, "a", "k", window, 1, true},
			{-time.Hour, "a", "j", window, 2, false},
			{2*time.Hour + window - 1, "a", "k", window, 1, true},
			{1, "a", "k", window, 3, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newTestNode(t, DefaultConfig())
			for i, s := range tt.steps {
				n.advance(s.advance)
				res := mustAppend(t, n, s.log, 100, s.window, ent(s.id, "null"))
				if res.indexes[0] != s.index || res.duplicates[0] != s.dup {
					t.Fatalf("step %d: got index %d dup %v, want %d %v", i, res.indexes[0], res.duplicates[0], s.index, s.dup)
				}
			}
		})
	}
}

func TestApply_DedupTableIsBounded(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	for i := range 100 {
		mustAppend(t, n, "a", 1000, time.Minute, ent(fmt.Sprint(i), "1"))
		n.advance(time.Second)
	}
	n.log.mu.RLock()
	size, queue := len(n.log.st.dedup), len(n.log.st.dedupQ)
	n.log.mu.RUnlock()
	// Ids older than a minute of command time are forgotten.
	if size != 60 || queue != 60 {
		t.Fatalf("dedup table: got %d ids, %d queued; want 60", size, queue)
	}
}

func TestApply_DedupTableIsBoundedByCount(t *testing.T) {
	defer func(old int) { maxDedupIDs = old }(maxDedupIDs)
	maxDedupIDs = 4 * maxBatch
	n := newTestNode(t, DefaultConfig()) // 64 MiB segments: no roll, no fsync
	batch := make([]newEntry, maxBatch)
	for b := range maxDedupIDs/maxBatch + 2 {
		for i := range batch {
			batch[i] = ent(fmt.Sprintf("b%d-%d", b, i), "1")
		}
		mustAppend(t, n, "a", 1<<40, time.Hour, batch...)
	}
	if size, queue := len(n.log.st.dedup), len(n.log.st.dedupQ); size != maxDedupIDs || queue != maxDedupIDs {
		t.Fatalf("dedup table: %d ids, %d queued; want %d", size, queue, maxDedupIDs)
	}
	// The oldest were forgotten: publishing one again appends it.
	if res := mustAppend(t, n, "a", 1<<40, time.Hour, ent("b0-0", "1"), ent(batch[maxBatch-1].id, "1")); !slices.Equal(res.duplicates, []bool{false, true}) {
		t.Fatalf("after the bound: %+v", res)
	}
}

func TestApply_RetentionUsesStampedMax(t *testing.T) {
	n := newTestNode(t, Config{MaxEntries: 1, DedupWindow: time.Minute, StreamHeartbeat: time.Second})
	steps := []struct {
		max       uint64
		count     int
		wantFirst uint64
		wantLast  uint64
	}{
		{3, 5, 3, 5},    // five into a log of three
		{10, 2, 3, 7},   // a larger limit trims nothing
		{2, 1, 7, 8},    // a smaller one trims down to it
		{2, 10, 17, 18}, // a batch larger than the limit keeps its tail
	}
	for i, s := range steps {
		var batch []newEntry
		for j := range s.count {
			batch = append(batch, ent("", fmt.Sprint(j)))
		}
		mustAppend(t, n, "r", s.max, 0, batch...)
		n.log.mu.RLock()
		ls := n.log.st.logs["r"]
		first, last, total := ls.first, ls.last(), n.log.st.entries
		n.log.mu.RUnlock()
		if first != s.wantFirst || last != s.wantLast || total != last-first+1 {
			t.Fatalf("step %d: got [%d,%d] total %d, want [%d,%d]", i, first, last, total, s.wantFirst, s.wantLast)
		}
	}
}

func TestApply_RejectsBadCommands(t *testing.T) {
	tests := []struct {
		name    string
		op      byte
		payload []byte
		want    error
	}{
		{"unknown op", 9, appendPayload("a", 1, 0, ent("", "1")), ErrUnknownOp},
		{"empty payload", opAppend, nil, ErrMalformedCommand},
		{"zero max entries", opAppend, appendPayload("a", 0, 0, ent("", "1")), ErrMalformedCommand},
		{"bad name", opAppend, appendPayload("a/b", 1, 0, ent("", "1")), ErrMalformedCommand},
		{"no entries", opAppend, appendPayload("a", 1, 0), ErrMalformedCommand},
		{"long id", opAppend, appendPayload("a", 1, 0, ent(string(make([]byte, 257)), "1")), ErrMalformedCommand},
		{"empty data", opAppend, appendPayload("a", 1, 0, ent("", "")), ErrMalformedCommand},
		{"trailing bytes", opAppend, append(appendPayload("a", 1, 0, ent("", "1")), 0), ErrMalformedCommand},
		{"truncated", opAppend, appendPayload("a", 1, 0, ent("", "12"))[:8], ErrMalformedCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newTestNode(t, DefaultConfig())
			if _, err := n.apply(tt.op, tt.payload); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if st := n.log.Status().(Status); st.Logs != 0 {
				t.Fatalf("a refused command created a log: %+v", st)
			}
		})
	}
}

// workload applies a deterministic mix of commands to n, calling between
// (if not nil) after each.
func workload(t *testing.T, n *testNode, between func(i int)) {
	t.Helper()
	for i := range 300 {
		log := fmt.Sprintf("log-%d", i%7)
		max := uint64(5 + i%11)
		window := time.Duration(i%4) * 30 * time.Second
		var batch []newEntry
		for j := range 1 + i%3 {
			id := ""
			if (i+j)%5 != 0 {
				id = fmt.Sprintf("id-%d", (i*j+i)%40)
			}
			batch = append(batch, ent(id, fmt.Sprintf(`{"i":%d,"j":%d}`, i, j)))
		}
		mustAppend(t, n, log, max, window, batch...)
		n.advance(time.Duration(i%13) * time.Second)
		if i%50 == 49 {
			n.advance(-20 * time.Second) // a leader with a slower clock
		}
		if between != nil {
			between(i)
		}
	}
}

func TestApply_IsDeterministic(t *testing.T) {
	a := newTestNode(t, DefaultConfig())
	b := newTestNode(t, Config{MaxEntries: 3, DedupWindow: 0, StreamHeartbeat: time.Hour}) // local config must not matter
	workload(t, a, nil)
	// b restores from its own snapshot along the way, as a follower would.
	workload(t, b, func(i int) {
		if i%97 == 0 {
			if err := b.log.Restore(bytes.NewReader(persist(t, b.log))); err != nil {
				t.Fatalf("restore: %v", err)
			}
		}
	})
	if da, db := digest(t, a.log), digest(t, b.log); da != db {
		t.Fatalf("two instances applying the same commands hold different states:\n%s\n%s", da, db)
	}
}

func TestSnapshot_RoundTrip(t *testing.T) {
	a := newTestNode(t, DefaultConfig())
	workload(t, a, nil)
	snap := persist(t, a.log)

	b := newTestNode(t, DefaultConfig())
	mustAppend(t, b, "stale", 10, 0, ent("", "1")) // replaced by Restore
	if err := b.log.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if da, db := digest(t, a.log), digest(t, b.log); da != db {
		t.Fatalf("restored state differs:\n%s\n%s", da, db)
	}
	a.log.mu.RLock()
	b.log.mu.RLock()
	la, lb := a.log.st.list(), b.log.st.list()
	da, db := a.log.st.dedup, b.log.st.dedup
	eq := reflect.DeepEqual(la, lb) && reflect.DeepEqual(da, db) && a.log.st.entries == b.log.st.entries
	a.log.mu.RUnlock()
	b.log.mu.RUnlock()
	if !eq {
		t.Fatalf("restored state differs:\n%v\n%v", la, lb)
	}
	for _, name := range []string{"log-0", "log-3", "log-6"} {
		fa, ea := logContents(a.log, name)
		fb, eb := logContents(b.log, name)
		if fa != fb || !slices.Equal(ea, eb) {
			t.Fatalf("log %s: got %d %v, want %d %v", name, fb, eb, fa, ea)
		}
	}
	// Both remember the same ids: the same command has the same outcome.
	b.now, b.index = a.now, a.index
	ra := mustAppend(t, a, "log-1", 100, time.Hour, ent("id-1", "0"), ent("id-2", "0"), ent("fresh", "0"))
	rb := mustAppend(t, b, "log-1", 100, time.Hour, ent("id-1", "0"), ent("id-2", "0"), ent("fresh", "0"))
	if !reflect.DeepEqual(ra, rb) {
		t.Fatalf("after restore: got %+v, want %+v", rb, ra)
	}
	if got := moduletest.MetricValue(t, b.reg, "shoal_log_logs"); got != 7 {
		t.Fatalf("logs gauge after restore: got %v, want 7", got)
	}
}

// snapshotBody decodes a persisted snapshot without its names, which
// differ between snapshots of the same state.
func snapshotBody(t *testing.T, b []byte) *snapshot {
	t.Helper()
	s, err := decodeSnapshot(b[len(snapshotMagic):])
	if err != nil {
		t.Fatalf("decode snapshot: %v", err)
	}
	s.name, s.origin = "", ""
	return s
}

func TestSnapshot_IsFrozenWhileApplying(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	mustAppend(t, n, "a", 4, time.Minute, ent("x", "1"), ent("y", "2"))
	want := snapshotBody(t, persist(t, n.log))
	snap, err := n.log.Snapshot()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	defer snap.Release()
	// Appends, trims, deletes and expiry after Snapshot must not show in
	// Persist, and the files it names must stay.
	n.advance(time.Hour)
	for range 20 {
		mustAppend(t, n, "a", 4, time.Minute, ent("z", "3"), ent("w", "4"), ent("v", strings.Repeat("5", 500)))
	}
	mustAppend(t, n, "b", 4, time.Minute, ent("x", "1"))
	if _, err := n.apply(opDelete, encodeDelete("a")); err != nil {
		t.Fatalf("delete: %v", err)
	}
	var got bytes.Buffer
	if err := snap.Persist(&got); err != nil {
		t.Fatalf("persist: %v", err)
	}
	if body := snapshotBody(t, got.Bytes()); !reflect.DeepEqual(body.logs, want.logs) || !reflect.DeepEqual(body.dedup, want.dedup) {
		t.Fatalf("snapshot changed after later commands:\n%+v\n%+v", body, want)
	}
	// Another node installs it from the files the snapshot linked.
	other := newTestNode(t, DefaultConfig())
	if err := other.log.RestoreAt(bytes.NewReader(got.Bytes()), 1); err != nil {
		t.Fatalf("install: %v", err)
	}
	if first, entries := logContents(other.log, "a"); first != 1 || !slices.Equal(entries, []string{"x=1", "y=2"}) {
		t.Fatalf("installed log: got %d %v", first, entries)
	}
}

func TestRestore_EmptyReaderIsEmptyState(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	mustAppend(t, n, "a", 4, time.Minute, ent("x", "1"))
	if err := n.log.Restore(bytes.NewReader(nil)); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if st := n.log.Status().(Status); st != (Status{}) {
		t.Fatalf("got %+v, want empty (no files either)", st)
	}
	res := mustAppend(t, n, "a", 4, time.Minute, ent("x", "1"))
	if res.indexes[0] != 1 || res.duplicates[0] {
		t.Fatalf("after empty restore: got %+v, want a fresh index 1", res)
	}
}

func TestRestore_BadSnapshotKeepsState(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	mustAppend(t, n, "a", 4, time.Minute, ent("x", "1"))
	good := persist(t, n.log)
	before := digest(t, n.log)
	tests := []struct {
		name string
		data []byte
	}{
		{"bad magic", []byte("NOPE\x01\x00\x00")},
		{"old format, bad version", []byte("SLOG\x02\x00\x00")},
		{"old format, huge length", []byte("SLOG\x01\x01\x01a\x01\x01\x00\x00\xff\xff\xff\xff\x0f")},
		{"truncated", good[:len(good)-3]},
		{"trailing", append(slices.Clone(good), 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := n.log.Restore(bytes.NewReader(tt.data)); !errors.Is(err, ErrMalformedSnapshot) {
				t.Fatalf("got %v, want ErrMalformedSnapshot", err)
			}
			if got := digest(t, n.log); got != before {
				t.Fatalf("a refused snapshot changed the state")
			}
		})
	}
}

func TestLog_ImplementsContract(t *testing.T) {
	info, ok := modules.Lookup("log")
	if !ok {
		t.Fatal("module log is not registered")
	}
	mod := info.New()
	if mod.ID() != "log" || mod.(modules.RaftHandler).Tag() != modules.TagLog {
		t.Fatalf("got id %q tag %d", mod.ID(), mod.(modules.RaftHandler).Tag())
	}
	cfg, ok := info.NewConfig().(*Config)
	if !ok || *cfg != DefaultConfig() {
		t.Fatalf("NewConfig: got %#v", info.NewConfig())
	}
}
