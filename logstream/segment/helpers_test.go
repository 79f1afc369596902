package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// smallConfig rolls segments every 4 KiB with an index entry per KiB, so
// tests see many segments.
func smallConfig() Config {
	c := DefaultConfig()
	c.SegmentBytes = 4 << 10
	c.IndexIntervalBytes = 1 << 10
	c.MaxEntryBytes = 1 << 20
	return c
}

func openStore(t testing.TB, dir string, cfg Config) *Store {
	t.Helper()
	s, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	return s
}

// entryData is the deterministic data of the entry at off: readers can
// check every entry they get.
func entryData(off uint64) []byte {
	return fmt.Appendf(nil, `{"off":%d,"pad":"%s"}`, off, bytes.Repeat([]byte{'x'}, int(off%37)))
}

func entryID(off uint64) string {
	if off%3 == 0 {
		return ""
	}
	return fmt.Sprintf("id-%d", off)
}

// batchAt is a batch of n entries that will get offsets from next on.
func batchAt(next uint64, n int, time int64) []Entry {
	b := make([]Entry, n)
	for i := range b {
		off := next + uint64(i)
		b[i] = Entry{ID: entryID(off), Data: entryData(off), Time: time + int64(i)}
	}
	return b
}

// appendN appends batches of size batch (the last one shorter) until n
// entries are appended, one Raft index per batch from raft on, and returns
// the next Raft index.
func appendN(t testing.TB, s *Store, raft uint64, n, batch int) uint64 {
	t.Helper()
	for n > 0 {
		k := min(n, batch)
		next := s.Next()
		got, err := s.Append(raft, batchAt(next, k, int64(raft)*1000))
		if err != nil {
			t.Fatalf("append at raft %d: %v", raft, err)
		}
		if got != next {
			t.Fatalf("append: got first offset %d, want %d", got, next)
		}
		n -= k
		raft++
	}
	return raft
}

// readAll reads every retained entry in pages of page.
func readAll(t testing.TB, s *Store, page int) []Entry {
	t.Helper()
	var out []Entry
	for from := s.First(); ; {
		es, err := s.Read(from, page, 0)
		if err != nil {
			t.Fatalf("read from %d: %v", from, err)
		}
		if len(es) == 0 {
			return out
		}
		out = append(out, es...)
		from = es[len(es)-1].Offset + 1
	}
}

// checkEntries checks that es are the entries first..next-1 with the data
// appendN wrote.
func checkEntries(t testing.TB, es []Entry, first, next uint64) {
	t.Helper()
	if uint64(len(es)) != next-first {
		t.Fatalf("got %d entries, want %d (offsets %d..%d)", len(es), next-first, first, next-1)
	}
	for i, e := range es {
		off := first + uint64(i)
		if e.Offset != off || e.ID != entryID(off) || !bytes.Equal(e.Data, entryData(off)) {
			t.Fatalf("entry %d: got offset %d id %q data %q, want offset %d id %q data %q",
				i, e.Offset, e.ID, e.Data, off, entryID(off), entryData(off))
		}
	}
}

// segFiles lists the segment files of dir, sorted.
func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if _, ok := parseSegName(e.Name()); ok {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names
}

// copyDir copies the regular files of src into a new directory.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		copyFile(t, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
	}
	return dst
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func mustClose(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}
