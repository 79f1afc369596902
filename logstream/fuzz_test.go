package logstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"shoal/internal/httpjson"
	"shoal/logstream/segment"
	"shoal/modules"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/ and run in plain
// go test. Regenerate them with: go test -run TestFuzzSeeds -update-fuzz-seeds
var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpora in testdata/fuzz")

func FuzzDecodePublish(f *testing.F) {
	for _, seed := range publishSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		entries, batch, err := decodePublish(bytes.NewReader(body))
		if err != nil {
			var e *httpjson.Error
			if !errors.As(err, &e) || e.Status != 400 {
				t.Fatalf("error %v is not a 400 *httpjson.Error", err)
			}
			return
		}
		if len(entries) < 1 || len(entries) > maxBatch || (!batch && len(entries) != 1) {
			t.Fatalf("%d entries (batch %v)", len(entries), batch)
		}
		for i, e := range entries {
			var compact bytes.Buffer
			if len(e.id) > maxIDLen || json.Compact(&compact, e.data) != nil || !bytes.Equal(compact.Bytes(), e.data) {
				t.Fatalf("entry %d: id of %d bytes, data %q not compact JSON", i, len(e.id), e.data)
			}
		}
		// Whatever the API accepts, the state machine accepts unchanged.
		c := appendCmd{log: "fuzz", maxEntries: 10, dedupWindow: time.Minute, entries: entries}
		got, err := decodeAppend(encodeAppend(c))
		if err != nil {
			t.Fatalf("the command of an accepted body does not decode: %v", err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("command round trip: got %+v, want %+v", got, c)
		}
	})
}

func FuzzDecodeCommand(f *testing.F) {
	for _, seed := range commandSeeds() {
		f.Add(seed.op, seed.payload)
	}
	f.Fuzz(func(t *testing.T, op byte, payload []byte) {
		n := newTestNode(t, DefaultConfig())
		l := n.log
		res, err := l.ApplyCommand(modules.Command{Index: 1, Time: testEpoch, Op: op, Payload: payload})
		if err != nil {
			if !errors.Is(err, ErrMalformedCommand) && !errors.Is(err, ErrUnknownOp) && !errors.Is(err, ErrLogNotFound) {
				t.Fatalf("unexpected error %v", err)
			}
			if st := l.Status().(Status); st.Logs != 0 || st.Entries != 0 {
				t.Fatalf("a refused command changed the state: %+v", st)
			}
			return
		}
		if op == opAppend {
			r, err := decodeResult(res)
			if err != nil {
				t.Fatalf("result does not decode: %v", err)
			}
			c, err := decodeAppend(payload)
			if err != nil || len(r.indexes) != len(c.entries) {
				t.Fatalf("applied command: %v, %d results for %d entries", err, len(r.indexes), len(c.entries))
			}
			if again, err := decodeAppend(encodeAppend(c)); err != nil || !reflect.DeepEqual(again, c) {
				t.Fatalf("re-encoded command: got %+v, %v; want %+v", again, err, c)
			}
		}
		checkSnapshotRoundTrip(t, n)
	})
}

func FuzzRestore(f *testing.F) {
	for _, seed := range snapshotSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n := newTestNode(t, DefaultConfig())
		if err := n.log.RestoreAt(bytes.NewReader(data), 100); err != nil {
			if !errors.Is(err, ErrMalformedSnapshot) && !errors.Is(err, ErrSnapshotFiles) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		checkSnapshotRoundTrip(t, n)
		// A restored state takes new commands.
		payload := appendPayload("a", 3, time.Minute, ent("k", "1"), ent("", "2"))
		if _, err := n.log.ApplyCommand(modules.Command{Index: 101, Time: testEpoch, Op: opAppend, Payload: payload}); err != nil {
			t.Fatalf("apply after restore: %v", err)
		}
		checkSnapshotRoundTrip(t, n)
	})
}

// checkSnapshotRoundTrip checks that n's state persists and installs into
// another node, which then holds the same state.
func checkSnapshotRoundTrip(t *testing.T, n *testNode) {
	t.Helper()
	first := persist(t, n.log)
	other := newTestNode(t, DefaultConfig())
	if err := other.log.RestoreAt(bytes.NewReader(first), 1000); err != nil {
		t.Fatalf("restore of a persisted state: %v", err)
	}
	if a, b := digest(t, n.log), digest(t, other.log); a != b {
		t.Fatalf("snapshot round trip differs:\n%s\n%s", a, b)
	}
}

func publishSeeds() [][]byte {
	var big strings.Builder
	big.WriteString(`{"entries":[`)
	for i := range maxBatch {
		if i > 0 {
			big.WriteByte(',')
		}
		fmt.Fprintf(&big, `{"id":"%d","data":%d}`, i, i)
	}
	big.WriteString("]}")
	return [][]byte{
		[]byte(`{"id":"client-chosen-unique-id","data":{"a":[1,2,{"b":null}]}}`),
		[]byte(`{"data":"no id"}`),
		[]byte(`{"id":"","data":null}`),
		[]byte(` { "data" : [ 1 , 2 ] } `),
		[]byte(`{"entries":[{"id":"a","data":1},{"id":"a","data":2},{"data":"\u00e9\n"}]}`),
		[]byte(big.String()),
		[]byte(`{"entries":[]}`),
		[]byte(`{"entries":null,"data":true}`),
		[]byte(`{"entries":[{"data":1}],"id":"x"}`),
		[]byte(`{"id":"x"}`),
		[]byte(`{"id":"` + strings.Repeat("i", 257) + `","data":1}`),
		[]byte(`{"data":1,"unknown":2}`),
		[]byte(`{"data":1}{"data":2}`),
		[]byte(`{"data":`),
		[]byte(``),
		[]byte(`[]`),
	}
}

type commandSeed struct {
	op      byte
	payload []byte
}

// encodeCapped wraps an encoded opAppend or opConfigure payload, as
// Log.submission and the handlers do.
func encodeCapped(maxLogs uint64, op byte, payload []byte) []byte {
	return append(capHead(maxLogs, op, len(payload)), payload...)
}

func commandSeeds() []commandSeed {
	valid := appendPayload("orders", 1000, 10*time.Minute, ent("a", `{"x":1}`), ent("", "null"), ent("a", "2"))
	return []commandSeed{
		{opAppend, appendPayload("a", 1, 0, ent("", "1"))},
		{opAppend, valid},
		{opAppend, appendPayload("a", 2, time.Hour, ent("k", `"s"`), ent("j", "[]"), ent("i", "{}"))},
		{opAppend, valid[:len(valid)-2]},
		{opAppend, append(valid, 0)},
		{opAppend, appendPayload("bad name", 1, 0, ent("", "1"))},
		{opAppend, appendPayload("a", 1, 0, ent("", "{"))},
		{opAppend, nil},
		{0, valid},
		{2, valid},
		{opCapped, encodeCapped(2, opAppend, valid)},
		{opCapped, encodeCapped(0, opConfigure, encodeConfigure(configureCmd{log: "a", lim: limits{set: limitEntries, maxEntries: 5}}))},
		{opCapped, encodeCapped(1, opDelete, []byte("a"))},
		{opCapped, encodeCapped(1, opCapped, encodeCapped(1, opAppend, valid))},
		{opCapped, []byte{0x80}},
	}
}

func snapshotSeeds(tb testing.TB) [][]byte {
	v1, err := os.ReadFile(filepath.Join("testdata", "snapshot-v1.bin"))
	if err != nil {
		tb.Fatalf("read the old release's snapshot: %v", err)
	}
	// A snapshot of the current format without segment files to fetch
	// (its logs were deleted on the node that took it) and one with.
	var noFiles []byte
	noFiles = append(noFiles, snapshotMagic...)
	noFiles = append(noFiles, (&snapshot{logs: []logSnap{{name: "a", created: 3, first: 2, next: 5, lim: limits{set: limitAge, maxAge: 9}}},
		dedup: []dedupRec{{key: dedupKey{log: "a", id: "k"}, index: 4, time: 7}}}).encode()[len(snapshotMagic):]...)
	withFiles := append([]byte(nil), snapshotMagic...)
	withFiles = append(withFiles, (&snapshot{origin: "gone-node", name: snapshotName(12, 34), logs: []logSnap{{name: "b", created: 1, first: 1, next: 2, hasManifest: true,
		manifest: segment.Manifest{First: 1, Next: 2, Applied: 1, Segments: []segment.SegmentRef{{Name: "00000000000000000001.seg", Base: 1, Next: 2, Size: 100}}}}}}).encode()[len(snapshotMagic):]...)
	return [][]byte{
		nil,
		v1,
		v1[:len(v1)/2],
		append([]byte("SLOG\x01\x00"), 0),
		[]byte("SLOG\x01\x01\x01a\x01\x01\x00\x00\x011\x01\x01a\x01k\x01\x00"), // an entry and an id naming a missing one
		[]byte("SLOG\x02\x00\x00"),
		[]byte("NOTASNAPSHOT"),
		noFiles,
		noFiles[:len(noFiles)-1],
		withFiles,
	}
}

// TestFuzzSeeds writes the seed corpora when run with -update-fuzz-seeds.
func TestFuzzSeeds(t *testing.T) {
	if !*updateFuzzSeeds {
		t.Skip("run with -update-fuzz-seeds to rewrite testdata/fuzz")
	}
	write := func(fuzz string, i int, values ...string) {
		dir := filepath.Join("testdata", "fuzz", fuzz)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := "go test fuzz v1\n" + strings.Join(values, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, seed := range publishSeeds() {
		write("FuzzDecodePublish", i, fmt.Sprintf("[]byte(%q)", seed))
	}
	for i, seed := range commandSeeds() {
		write("FuzzDecodeCommand", i, fmt.Sprintf("byte(%q)", rune(seed.op)), fmt.Sprintf("[]byte(%q)", seed.payload))
	}
	for i, seed := range snapshotSeeds(t) {
		write("FuzzRestore", i, fmt.Sprintf("[]byte(%q)", seed))
	}
}
