package replication

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pierrec/lz4/v4"

	"shoal/internal/httpjson"
	"shoal/internal/wire"
	"shoal/modules"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/ and run in plain go
// test. Regenerate them with: go test -run TestFuzzSeeds -update-fuzz-seeds
var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpora in testdata/fuzz")

func frameSeeds() [][]byte {
	var all []byte
	var seeds [][]byte
	for _, f := range sampleFrames() {
		one, _ := appendFrame(nil, f)
		seeds = append(seeds, one)
		all = append(all, one...)
	}
	bad, _ := appendFrame(nil, frame{typ: frameChunk, path: "../x", data: []byte("x")})
	corrupt := bytes.Clone(seeds[3])
	corrupt[7] ^= 1
	big, _ := appendFrame(nil, frame{typ: frameReplace, path: "c.json", pos: 9, data: bytes.Repeat([]byte(`{"k":"v"},`), 200)})
	compressed := compressFrame(big, new(lz4.Compressor))
	return append(seeds, all, all[:len(all)-5], bad, corrupt, []byte{0, 0, 0, 1}, nil, compressed)
}

// FuzzReadFrame reads frames from arbitrary bytes: it must never panic,
// every failure wraps ErrBadFrame, every decoded path is valid, and every
// frame it accepts encodes back to exactly the bytes it read.
func FuzzReadFrame(f *testing.F) {
	for _, s := range frameSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		br := bufio.NewReader(r)
		read := 0
		for {
			fr, err := readFrame(br)
			if err == io.EOF {
				return
			}
			if err != nil {
				if !errors.Is(err, ErrBadFrame) {
					t.Fatalf("error %v does not wrap ErrBadFrame", err)
				}
				return
			}
			for _, p := range append([]string{fr.path}, pathsOf(fr.entries)...) {
				if p != "" && !validPath(p) {
					t.Fatalf("accepted invalid path %q", p)
				}
			}
			again, err := appendFrame(nil, fr)
			if err != nil {
				t.Fatalf("re-encode %+v: %v", fr, err)
			}
			consumed := len(data) - r.Len() - br.Buffered()
			if data[read+4]&compressedBit != 0 {
				// Compressed: the plain form decodes to the same frame.
				back, err := readFrame(bufio.NewReader(bytes.NewReader(again)))
				if err != nil || !reflect.DeepEqual(normal(back), normal(fr)) {
					t.Fatalf("compressed frame %+v does not round-trip: %+v, %v", fr, back, err)
				}
			} else if !bytes.Equal(again, data[read:consumed]) {
				t.Fatalf("frame re-encodes as %x, read %x", again, data[read:consumed])
			}
			read = consumed
		}
	})
}

func pathsOf(es []indexEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Path)
	}
	return out
}

func commandSeeds() []command {
	return []command{
		{op: opClaim, node: "node0"},
		{op: opAdd, leader: "node0", node: "node1"},
		{op: opRemove, leader: "node0", node: "node2"},
		{op: opAdd, leader: "node1", node: "node2"},
		{op: opClaim, node: "node3"},
	}
}

// FuzzApplyCommand applies an arbitrary command to a known state: a
// refused command (malformed, unknown, or refused by the rules) leaves the
// state unchanged; an accepted one keeps the invariants (the set sorted,
// distinct, holding the leader) and survives a snapshot round trip.
func FuzzApplyCommand(f *testing.F) {
	for _, c := range commandSeeds() {
		f.Add(c.op, encodeCommand(c))
	}
	f.Add(byte(9), []byte{1, 'x'})
	f.Add(opAdd, []byte{0, 1, 'x'})
	f.Fuzz(func(t *testing.T, op byte, payload []byte) {
		m := new(Replication)
		for i, c := range commandSeeds()[:3] {
			if _, err := m.ApplyCommand(modules.Command{Index: uint64(i + 1), Op: c.op, Payload: encodeCommand(c)}); err != nil {
				t.Fatal(err)
			}
		}
		before := m.state()
		_, err := m.ApplyCommand(modules.Command{Index: 10, Op: op, Payload: payload})
		after := m.state()
		if err != nil {
			var e *httpjson.Error
			if !errors.Is(err, ErrMalformedCommand) && !errors.Is(err, ErrUnknownOp) && !errors.As(err, &e) {
				t.Fatalf("unexpected error %v", err)
			}
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("a refused command (%v) changed the state: %+v -> %+v", err, before, after)
			}
			return
		}
		checkState(t, after)
		again, err := decodeState(after.encode())
		if err != nil || !reflect.DeepEqual(again, after) {
			t.Fatalf("snapshot round trip: %+v, %v; want %+v", again, err, after)
		}
	})
}

func checkState(t *testing.T, s syncState) {
	t.Helper()
	for i := 1; i < len(s.inSync); i++ {
		if s.inSync[i-1] >= s.inSync[i] {
			t.Fatalf("in-sync set %v not sorted and distinct", s.inSync)
		}
	}
	if s.leader != "" && !s.has(s.leader) {
		t.Fatalf("leader %q outside the in-sync set %v", s.leader, s.inSync)
	}
}

func stateSeeds() [][]byte {
	return [][]byte{
		syncState{}.encode(),
		syncState{leader: "node0", inSync: []string{"node0", "node1", "node2"}}.encode(),
		{snapshotVersion, 0, 0, 2, 1, 'b', 1, 'a'},
		{2, 0, 0, 0},
		{snapshotVersion, 0, 7, 200},
		nil,
	}
}

// FuzzRestore restores arbitrary snapshots: a refused one wraps
// ErrMalformedSnapshot; an accepted one encodes back to the same bytes.
func FuzzRestore(f *testing.F) {
	for _, s := range stateSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(Replication)
		if err := m.Restore(bytes.NewReader(data)); err != nil {
			if !errors.Is(err, ErrMalformedSnapshot) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(data) > 0 && !bytes.Equal(m.state().encode(), data) {
			t.Fatalf("restored %x re-encodes as %x", data, m.state().encode())
		}
	})
}

// FuzzDecodeWrite decodes arbitrary forwarded writes: a refused one is a
// 400; an accepted one has a valid path and encodes back to its input.
func FuzzDecodeWrite(f *testing.F) {
	f.Add(encodeWrite(opWriteReplace, "a/b", []byte("data")))
	f.Add(encodeWrite(opWriteAppend, "log", nil))
	f.Add(encodeWrite(opWriteDelete, "../x", nil))
	f.Add([]byte{9, 1, 'a', 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		op, p, body, err := decodeWrite(data)
		if err != nil {
			if e := httpjson.As(err); e.Status != 400 {
				t.Fatalf("got %v, want a 400", err)
			}
			return
		}
		if !validPath(p) {
			t.Fatalf("accepted invalid path %q", p)
		}
		if again := encodeWrite(op, p, body); !bytes.Equal(again, data) {
			t.Fatalf("%x re-encodes as %x", data, again)
		}
	})
}

func cacheSeeds(tb testing.TB) [][]byte {
	dir := tb.TempDir()
	st, err := openStore(filepath.Join(dir, "files"), false)
	if err != nil {
		tb.Fatal(err)
	}
	defer st.close()
	for _, p := range []string{"a", "b/c"} {
		s, err := st.stage([]byte("content of " + p))
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := st.commit(s, p); err != nil {
			tb.Fatal(err)
		}
	}
	if err := st.saveCache(dir); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, cacheFile))
	if err != nil {
		tb.Fatal(err)
	}
	return [][]byte{b, {cacheVersion, 0}, {cacheVersion, 1, 2, '.', '.', 0, 0, 0}, {2, 0}, nil}
}

// FuzzDecodeCache decodes arbitrary hash cache files: never a panic, and
// every accepted entry has a valid path.
func FuzzDecodeCache(f *testing.F) {
	for _, s := range cacheSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := decodeCache(data)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		for p, c := range entries {
			if !validPath(p) || c.size < 0 {
				t.Fatalf("accepted entry %q %+v", p, c)
			}
		}
	})
}

func TestFuzzSeeds(t *testing.T) {
	if !*updateFuzzSeeds {
		t.Skip("run with -update-fuzz-seeds to rewrite testdata/fuzz")
	}
	write := func(name string, i int, args ...string) {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := "go test fuzz v1\n" + strings.Join(args, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range frameSeeds() {
		write("FuzzReadFrame", i, fmt.Sprintf("[]byte(%q)", s))
	}
	for i, c := range commandSeeds() {
		write("FuzzApplyCommand", i, fmt.Sprintf("byte(%d)", c.op), fmt.Sprintf("[]byte(%q)", encodeCommand(c)))
	}
	for i, s := range stateSeeds() {
		write("FuzzRestore", i, fmt.Sprintf("[]byte(%q)", s))
	}
	for i, s := range cacheSeeds(t) {
		write("FuzzDecodeCache", i, fmt.Sprintf("[]byte(%q)", s))
	}
	for i, s := range [][]byte{encodeWrite(opWriteReplace, "a/b", []byte("data")), encodeWrite(opWriteDelete, "../x", nil), {9, 1, 'a', 0}} {
		write("FuzzDecodeWrite", i, fmt.Sprintf("[]byte(%q)", s))
	}
}
