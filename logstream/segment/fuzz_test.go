package segment

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/ and run in plain go
// test. Regenerate them with:
//
//	go test ./logstream/segment -run TestFuzzSeeds -args -update-fuzz-seeds
var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpora in testdata/fuzz")

// FuzzDecodeRecord checks the frame decoder's contract: it never panics;
// it fails only with errShort or ErrCorrupt; and what it accepts is
// canonical: encoding the record again gives back exactly the bytes read.
func FuzzDecodeRecord(f *testing.F) {
	for _, seed := range recordSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := decodeRecord(b, maxBodyLen)
		if err != nil {
			if !errors.Is(err, errShort) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if n < frameHeaderSize || n > len(b) {
			t.Fatalf("decoded %d bytes of %d", n, len(b))
		}
		var again []byte
		switch r.kind {
		case kindEntry:
			again = appendEntryFrame(nil, r.off, r.raft, Entry{ID: string(r.id), Data: r.data, Time: r.time}, r.end)
		case kindTrim:
			again = appendTrimFrame(nil, r.raft, r.first)
		case kindFooter:
			again = appendFooterFrame(nil, r.foot)
		default:
			t.Fatalf("accepted kind %d", r.kind)
		}
		if !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoding gives %x, want %x", again, b[:n])
		}
	})
}

// FuzzOpen writes a sealed segment and a tail as the files of a store and
// opens it. Open never panics and fails only with ErrCorrupt; a store it
// opens serves exactly the offsets First..Next-1 in order (or reports
// damage, never serves it), knows an applied index at least that of every
// entry, takes an append at Next, and opens again the same.
func FuzzOpen(f *testing.F) {
	for _, seed := range openSeeds(f) {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, sealed, tail []byte) {
		dir := t.TempDir()
		name := func(b []byte, fallback uint64) string {
			if h, err := decodeHeader(b); err == nil {
				return segName(h.base)
			}
			return segName(fallback)
		}
		sealedName := name(sealed, 1)
		if len(sealed) > 0 {
			if err := os.WriteFile(filepath.Join(dir, sealedName), sealed, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if tailName := name(tail, 1<<40); len(tail) > 0 && tailName != sealedName {
			if err := os.WriteFile(filepath.Join(dir, tailName), tail, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cfg := smallConfig()
		cfg.noSync = true // durability is not under test here; speed is welcome
		s, err := Open(dir, cfg)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open: unexpected error %v", err)
			}
			return
		}
		defer func() { _ = s.Close() }()
		st := s.Stats()
		if st.First > st.Next || st.First == 0 {
			t.Fatalf("stats %+v", st)
		}
		damaged := false
		for from := st.First; from < st.Next; {
			es, err := s.Read(from, 64, 0)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("read from %d: unexpected error %v", from, err)
				}
				damaged = true
				break
			}
			if len(es) == 0 {
				t.Fatalf("read from %d below next %d: no entries and no error", from, st.Next)
			}
			for i, e := range es {
				if e.Offset != from+uint64(i) || e.RaftIndex > st.Applied {
					t.Fatalf("entry %d: offset %d raft %d (applied %d)", from+uint64(i), e.Offset, e.RaftIndex, st.Applied)
				}
			}
			from += uint64(len(es))
		}
		if damaged || st.Applied == 1<<64-1 || st.Next >= 1<<62 {
			return
		}
		if off, err := s.Append(st.Applied+1, []Entry{{ID: "x", Data: []byte("1")}}); err != nil || off != st.Next {
			t.Fatalf("append after open: offset %d, %v; stats %+v", off, err, st)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = Open(dir, cfg)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		if got := s.Stats(); got.First != st.First || got.Next != st.Next+1 || got.Applied != st.Applied+1 {
			t.Fatalf("reopened %+v, want first %d next %d applied %d", got, st.First, st.Next+1, st.Applied+1)
		}
	})
}

// FuzzDecodeManifest checks the manifest decoder: it never panics, fails
// only with ErrCorrupt, accepts only manifests Validate accepts, and what
// it accepts is canonical (encoding it again gives back the input).
func FuzzDecodeManifest(f *testing.F) {
	for _, seed := range manifestSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted an invalid manifest: %v", err)
		}
		if again := AppendManifest(nil, m); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding gives %x, want %x", again, b)
		}
	})
}

func manifestSeeds() [][]byte {
	m := Manifest{First: 5, Next: 30, Applied: 77, Segments: []SegmentRef{
		{Name: segName(1), Base: 1, Next: 12, Size: 4000},
		{Name: segName(12), Base: 12, Next: 30, Size: 2000},
	}}
	valid := AppendManifest(nil, m)
	gap := m
	gap.Segments = []SegmentRef{m.Segments[0], {Name: segName(13), Base: 13, Next: 30, Size: 2000}}
	return [][]byte{
		valid,
		AppendManifest(nil, Manifest{First: 9, Next: 9, Segments: []SegmentRef{{Name: segName(9), Base: 9, Next: 9, Size: headerSize}}}),
		valid[:len(valid)-1],
		append(bytes.Clone(valid), 0),
		AppendManifest(nil, gap),
		AppendManifest(nil, Manifest{First: 1, Next: 1}),
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		{},
	}
}

func recordSeeds() [][]byte {
	entry := appendEntryFrame(nil, 7, 42, Entry{ID: "order-1", Data: []byte(`{"x":1}`), Time: 1e18}, true)
	return [][]byte{
		entry,
		appendEntryFrame(nil, 1, 1, Entry{Data: []byte("null")}, false),
		appendTrimFrame(nil, 9, 100),
		appendFooterFrame(nil, footer{next: 20, raft: 9, first: 3, minTime: -5, maxTime: 99,
			index: []indexEntry{{0, 40}, {9, 1100}}, pos: 2000}),
		entry[:len(entry)-1],
		append(bytes.Clone(entry), 0xff),
		{},
		{4, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0},
		[]byte("NOTAFRAME"),
	}
}

// openSeeds are pairs (sealed segment, tail) taken from a real store, cut
// and damaged.
func openSeeds(tb testing.TB) [][2][]byte {
	dir := tb.TempDir()
	cfg := smallConfig()
	cfg.SegmentBytes = 2 << 10
	s, err := Open(dir, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	raft := uint64(1)
	for len(segFiles(tb, dir)) < 2 {
		if _, err := s.Append(raft, batchAt(s.Next(), 3, int64(raft))); err != nil {
			tb.Fatal(err)
		}
		raft++
	}
	for range 3 {
		if _, err := s.Append(raft, batchAt(s.Next(), 2, int64(raft))); err != nil {
			tb.Fatal(err)
		}
		raft++
	}
	if _, err := s.AppendTrim(raft, batchAt(s.Next(), 2, int64(raft)), 2); err != nil {
		tb.Fatal(err)
	}
	raft++
	if err := s.Trim(raft, 3); err != nil {
		tb.Fatal(err)
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	files := segFiles(tb, dir)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	sealed, tail := read(files[0]), read(files[1])
	flipped := bytes.Clone(tail)
	flipped[len(flipped)-30] ^= 1
	badFooter := bytes.Clone(sealed)
	badFooter[len(badFooter)-20] ^= 1
	return [][2][]byte{
		{sealed, tail},
		{sealed, tail[:len(tail)-7]},
		{sealed, tail[:headerSize]},
		{sealed, tail[:headerSize-1]},
		{sealed, flipped},
		{badFooter, tail},
		{sealed[:len(sealed)-5], nil},
		{nil, sealed},
		{nil, tail},
		{nil, nil},
		{[]byte("SHOALSEG garbage"), nil},
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
	for i, seed := range recordSeeds() {
		write("FuzzDecodeRecord", i, fmt.Sprintf("[]byte(%q)", seed))
	}
	for i, seed := range manifestSeeds() {
		write("FuzzDecodeManifest", i, fmt.Sprintf("[]byte(%q)", seed))
	}
	for i, seed := range openSeeds(t) {
		write("FuzzOpen", i, fmt.Sprintf("[]byte(%q)", seed[0]), fmt.Sprintf("[]byte(%q)", seed[1]))
	}
}
