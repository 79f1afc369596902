package objectsync

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shoal/internal/httpjson"
	"shoal/modules"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/ and run in plain go
// test. Regenerate them with: go test -run TestFuzzSeeds -args -update-fuzz-seeds
var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpora in testdata/fuzz")

type commandSeed struct {
	op      byte
	payload []byte
}

// commandSeeds are valid and refused commands against the scenario state
// (whose object "a" is at the Raft index 2 and claimed by "n/i/1").
func commandSeeds() []commandSeed {
	return []commandSeed{
		{opWrite, fullWrite("a", "n/i/1", "3", `{"list":[],"name":"b"}`)},
		{opWrite, patchWrite("a", "n/i/1", 2, "3", `[{"op":"replace","path":"/name","value":"c"}]`)},
		{opWrite, patchWrite("a", "n/i/1", 2, "3", `[{"op":"move","from":"/list","path":"/moved"}]`)},
		{opWrite, patchWrite("a", "n/i/1", 2, "3", `[{"op":"copy","from":"/list","path":"/list/0"}]`)},
		{opWrite, patchWrite("a", "n/i/1", 1, "3", `[]`)},
		{opWrite, patchWrite("b-1", "", 3, "[2]", `[{"op":"test","path":"/deep/x","value":null}]`)},
		{opWrite, fullWrite("b-2", "", `{"dep":5,"other":1}`, `{"z":1}`)},
		{opWrite, fullWrite("new", "", "1", `{}`)},
		{opDelete, encodeID("b-1")},
		{opClaim, encodeClaim(claimCmd{id: "b-1", owner: "m/j/2"})},
		{opRelease, encodeClaim(claimCmd{id: "a", owner: "n/i/1"})},
		{opReleaseNode, encodeReleaseNode(releaseNodeCmd{node: "n"})},
		{opBump, encodeID("dep")},
		{opStall, encodeWrite(writeCmd{id: "b-2", to: `{"dep":6}`, history: 4, maxSize: 1 << 10})},
		{opStall, encodeWrite(writeCmd{id: "a", owner: "n/i/1", to: "3", history: 4, maxSize: 1 << 10})},
		{opWrite, []byte{0xff}},
		{99, nil},
		{opCapped, encodeCapped(caps{objects: 1, deps: 1}, opWrite, fullWrite("new2", "", "1", `{}`))},
		{opCapped, encodeCapped(caps{deps: 1}, opBump, encodeID("dep2"))},
		{opCapped, encodeCapped(caps{objects: 1}, opDelete, encodeID("a"))},
		{opCapped, []byte{0x80}},
	}
}

func scenarioBytes(tb testing.TB) []byte {
	f := newFSM()
	scenario(tb, f)
	return persist(tb, f.o)
}

func FuzzApplyCommand(f *testing.F) {
	for _, c := range commandSeeds() {
		f.Add(c.op, c.payload)
	}
	base := scenarioBytes(f)
	f.Fuzz(func(t *testing.T, op byte, payload []byte) {
		o := new(ObjectSync)
		if err := o.Restore(bytes.NewReader(base)); err != nil {
			t.Fatal(err)
		}
		_, err := o.ApplyCommand(modules.Command{Index: 100, Time: testEpoch.Add(time.Hour), Op: op, Payload: payload})
		if err != nil {
			var e *httpjson.Error
			switch {
			case errors.Is(err, ErrMalformedCommand), errors.Is(err, ErrUnknownOp):
			case errors.As(err, &e) && e.Status >= 400 && e.Status < 500:
			default:
				t.Fatalf("unexpected error %v", err)
			}
			if got := persist(t, o); !bytes.Equal(got, base) {
				t.Fatalf("a refused command (%v) changed the state", err)
			}
			return
		}
		checkRoundTrip(t, o)
	})
}

func FuzzRestore(f *testing.F) {
	for _, s := range snapshotSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o := new(ObjectSync)
		if err := o.Restore(bytes.NewReader(data)); err != nil {
			if !errors.Is(err, ErrMalformedSnapshot) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		checkRoundTrip(t, o)
		// A restored state takes new commands.
		for i, c := range commandSeeds() {
			_, _ = o.ApplyCommand(modules.Command{Index: 1 << 40, Time: testEpoch, Op: c.op, Payload: c.payload})
			if i%5 == 0 {
				checkRoundTrip(t, o)
			}
		}
	})
}

func snapshotSeeds(tb testing.TB) [][]byte {
	base := scenarioBytes(tb)
	empty := persist(tb, new(ObjectSync))
	return [][]byte{base, empty, nil, base[:len(base)/2]}
}

// checkRoundTrip checks that the state persists, restores and persists to
// the same bytes, which also checks every invariant Restore checks.
func checkRoundTrip(t *testing.T, o *ObjectSync) {
	t.Helper()
	b := persist(t, o)
	o2 := new(ObjectSync)
	if err := o2.Restore(bytes.NewReader(b)); err != nil {
		t.Fatalf("the state does not restore: %v", err)
	}
	if !bytes.Equal(b, persist(t, o2)) {
		t.Fatalf("the state does not round-trip")
	}
}

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
	for i, c := range commandSeeds() {
		write("FuzzApplyCommand", i, fmt.Sprintf("byte(%q)", rune(c.op)), fmt.Sprintf("[]byte(%q)", c.payload))
	}
	for i, s := range snapshotSeeds(t) {
		write("FuzzRestore", i, fmt.Sprintf("[]byte(%q)", s))
	}
}
