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
		l := new(Log)
		res, err := l.ApplyCommand(modules.Command{Index: 1, Time: testEpoch, Op: op, Payload: payload})
		if err != nil {
			if !errors.Is(err, ErrMalformedCommand) && !errors.Is(err, ErrUnknownOp) {
				t.Fatalf("unexpected error %v", err)
			}
			if st := l.Status().(Status); st != (Status{}) {
				t.Fatalf("a refused command changed the state: %+v", st)
			}
			return
		}
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
		checkSnapshotRoundTrip(t, l)
	})
}

func FuzzRestore(f *testing.F) {
	for _, seed := range snapshotSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l := new(Log)
		if err := l.Restore(bytes.NewReader(data)); err != nil {
			if !errors.Is(err, ErrMalformedSnapshot) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		checkSnapshotRoundTrip(t, l)
		// A restored state takes new commands.
		payload := appendPayload("a", 3, time.Minute, ent("k", "1"), ent("", "2"))
		if _, err := l.ApplyCommand(modules.Command{Index: 2, Time: testEpoch, Op: opAppend, Payload: payload}); err != nil {
			t.Fatalf("apply after restore: %v", err)
		}
		checkSnapshotRoundTrip(t, l)
	})
}

// checkSnapshotRoundTrip checks that l's state persists, restores into a
// new instance and persists to the same bytes again.
func checkSnapshotRoundTrip(t *testing.T, l *Log) {
	t.Helper()
	first := persist(t, l)
	other := new(Log)
	if err := other.Restore(bytes.NewReader(first)); err != nil {
		t.Fatalf("restore of a persisted state: %v", err)
	}
	if again := persist(t, other); !bytes.Equal(first, again) {
		t.Fatalf("snapshot round trip differs")
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
	}
}

func snapshotSeeds(tb testing.TB) [][]byte {
	l := new(Log)
	now := testEpoch
	for i := range 12 {
		payload := appendPayload(fmt.Sprintf("log-%d", i%3), 4, time.Minute,
			ent(fmt.Sprintf("id-%d", i%5), fmt.Sprintf(`{"i":%d}`, i)), ent("", "[]"))
		if _, err := l.ApplyCommand(modules.Command{Index: uint64(i + 1), Time: now, Op: opAppend, Payload: payload}); err != nil {
			tb.Fatalf("apply: %v", err)
		}
		now = now.Add(10 * time.Second)
	}
	snap, err := l.Snapshot()
	if err != nil {
		tb.Fatalf("snapshot: %v", err)
	}
	var full bytes.Buffer
	if err := snap.Persist(&full); err != nil {
		tb.Fatalf("persist: %v", err)
	}
	b := full.Bytes()
	return [][]byte{
		nil,
		b,
		b[:len(b)/2],
		append([]byte("SLOG\x01\x00"), 0),
		[]byte("SLOG\x01\x01\x01a\x01\x01\x00\x00\x011\x01\x01a\x01k\x01\x00"), // an entry and an id naming a missing one
		[]byte("SLOG\x02\x00\x00"),
		[]byte("NOTASNAPSHOT"),
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
