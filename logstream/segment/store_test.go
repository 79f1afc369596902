package segment

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestStore_EmptyLog(t *testing.T) {
	s := openStore(t, t.TempDir(), smallConfig())
	defer mustClose(t, s)
	if st := s.Stats(); st.First != 1 || st.Next != 1 || st.Applied != 0 || st.Segments != 1 {
		t.Fatalf("got %+v, want an empty log at 1 in one segment", st)
	}
	es, err := s.Read(1, 10, 0)
	if err != nil || len(es) != 0 {
		t.Fatalf("read of an empty log: got %d entries, %v", len(es), err)
	}
}

func TestStore_RoundTrip(t *testing.T) {
	s := openStore(t, t.TempDir(), smallConfig())
	defer mustClose(t, s)
	raft := appendN(t, s, 10, 500, 7)
	if st := s.Stats(); st.First != 1 || st.Next != 501 || st.Applied != raft-1 {
		t.Fatalf("got %+v, want first 1, next 501, applied %d", st, raft-1)
	}
	checkEntries(t, readAll(t, s, 13), 1, 501)
	for _, c := range []struct {
		from       uint64
		max, bytes int
		want       int
	}{
		{from: 1, max: 1, want: 1},
		{from: 250, max: 100, want: 100},
		{from: 450, max: 100, want: 51},
		{from: 501, max: 10, want: 0},
		{from: 9999, max: 10, want: 0},
		{from: 3, max: 0, want: 0},
		{from: 3, max: 100, bytes: 1, want: 1}, // at least one entry
		{from: 3, max: 100, bytes: len(entryData(3)) + 1, want: 2},
	} {
		es, err := s.Read(c.from, c.max, c.bytes)
		if err != nil {
			t.Fatalf("read %+v: %v", c, err)
		}
		if len(es) != c.want {
			t.Fatalf("read %+v: got %d entries, want %d", c, len(es), c.want)
		}
		if len(es) > 0 {
			checkEntries(t, es, c.from, c.from+uint64(len(es)))
		}
	}
	es, _ := s.Read(7, 1, 0)
	if es[0].RaftIndex != 10 || es[0].Time != 10*1000+6 {
		t.Fatalf("entry 7: raft index %d time %d, want 10 and 10006", es[0].RaftIndex, es[0].Time)
	}
}

func TestStore_ReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, smallConfig())
	appendN(t, s, 1, 400, 9)
	if err := s.Trim(1000, 57); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	mustClose(t, s)
	if before.Segments < 5 {
		t.Fatalf("only %d segments: the test wants several", before.Segments)
	}
	s = openStore(t, dir, smallConfig())
	defer mustClose(t, s)
	if after := s.Stats(); after != before {
		t.Fatalf("after reopening got %+v, want %+v", after, before)
	}
	checkEntries(t, readAll(t, s, 50), 57, 401)
	appendN(t, s, 1001, 10, 3)
	checkEntries(t, readAll(t, s, 50), 57, 411)
}

func TestStore_RefusesReplayedIndexes(t *testing.T) {
	s := openStore(t, t.TempDir(), smallConfig())
	defer mustClose(t, s)
	appendN(t, s, 5, 3, 3)
	_, err := s.Append(5, batchAt(4, 1, 0))
	wantErr(t, err, ErrStale)
	_, err = s.Append(4, batchAt(4, 1, 0))
	wantErr(t, err, ErrStale)
	wantErr(t, s.Trim(5, 2), ErrStale)
	_, err = s.Append(6, nil)
	wantErr(t, err, ErrInvalid)
	_, err = s.Append(6, []Entry{{Data: make([]byte, smallConfig().MaxEntryBytes+1)}})
	wantErr(t, err, ErrInvalid)
	if st := s.Stats(); st.Next != 4 || st.Applied != 5 {
		t.Fatalf("refused changes changed the store: %+v", st)
	}
}

func TestStore_RollsAtSegmentSize(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	s := openStore(t, dir, cfg)
	defer mustClose(t, s)
	appendN(t, s, 1, 600, 5)
	files := segFiles(t, dir)
	if st := s.Stats(); st.Segments != len(files) || st.Segments < 5 {
		t.Fatalf("stats say %d segments, the directory has %d", st.Segments, len(files))
	}
	var total int64
	for i, name := range files {
		size := fileSize(t, filepath.Join(dir, name))
		total += size
		// A segment is sealed before the batch that would take it past the
		// size; a footer is added on sealing.
		if i < len(files)-1 && size > cfg.SegmentBytes+2<<10 {
			t.Fatalf("segment %s has %d bytes, over %d by more than a batch and a footer", name, size, cfg.SegmentBytes)
		}
	}
	if st := s.Stats(); st.DiskBytes != total {
		t.Fatalf("stats say %d bytes on disk, the files hold %d", st.DiskBytes, total)
	}
	base, _ := parseSegName(files[len(files)-1])
	if es, _ := s.Read(base, 1, 0); len(es) != 1 || es[0].Offset != base {
		t.Fatalf("the newest segment's name %s does not give its first offset", files[len(files)-1])
	}
}

func TestStore_TrimDeletesWholeSegments(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, smallConfig())
	defer mustClose(t, s)
	raft := appendN(t, s, 1, 600, 5)
	filesBefore := len(segFiles(t, dir))
	// A trim inside the first segment deletes nothing.
	if err := s.Trim(raft, 3); err != nil {
		t.Fatal(err)
	}
	raft++
	if n := len(segFiles(t, dir)); n != filesBefore {
		t.Fatalf("a trim inside the first segment left %d files, want %d", n, filesBefore)
	}
	_, err := s.Read(2, 1, 0)
	wantErr(t, err, ErrTrimmed)
	if err := s.Trim(raft, 2); err != nil { // below First: no change
		t.Fatal(err)
	}
	if s.Applied() != raft-1 {
		t.Fatalf("a trim that changed nothing moved applied to %d", s.Applied())
	}
	if err := s.Trim(raft, 400); err != nil {
		t.Fatal(err)
	}
	raft++
	for _, name := range segFiles(t, dir)[1:] {
		_ = name
	}
	files := segFiles(t, dir)
	firstBase, _ := parseSegName(files[0])
	if firstBase > 400 || len(files) >= filesBefore {
		t.Fatalf("after trimming to 400 the oldest segment starts at %d (%d files, %d before)", firstBase, len(files), filesBefore)
	}
	if st := s.Stats(); st.Segments != len(files) {
		t.Fatalf("stats say %d segments, the directory has %d", st.Segments, len(files))
	}
	checkEntries(t, readAll(t, s, 64), 400, 601)

	// A trim past the end empties the log, which goes on from there.
	if err := s.Trim(raft, 1000); err != nil {
		t.Fatal(err)
	}
	raft++
	if st := s.Stats(); st.First != 1000 || st.Next != 1000 || st.Segments != 1 {
		t.Fatalf("after trimming past the end got %+v, want an empty log at 1000 in one segment", st)
	}
	if files := segFiles(t, dir); len(files) != 1 || files[0] != segName(1000) {
		t.Fatalf("after trimming past the end the files are %v", files)
	}
	raft = appendN(t, s, raft, 20, 6)
	checkEntries(t, readAll(t, s, 7), 1000, 1020)
	mustClose(t, s)
	s = openStore(t, dir, smallConfig())
	checkEntries(t, readAll(t, s, 7), 1000, 1020)
	if s.Applied() != raft-1 {
		t.Fatalf("applied %d after reopening, want %d", s.Applied(), raft-1)
	}
}

func TestStore_Delete(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "orders")
	m := new(Metrics)
	cfg := smallConfig()
	cfg.Metrics = m
	s := openStore(t, dir, cfg)
	appendN(t, s, 1, 300, 10)
	if err := s.Delete(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Fatalf("after delete the parent holds %d entries", len(ents))
	}
	if _, err := s.Read(1, 1, 0); err == nil {
		t.Fatal("read after delete succeeded")
	}
	_, err := s.Append(1000, batchAt(1, 1, 0))
	wantErr(t, err, ErrClosed)
	if m.DiskBytes.Load() != 0 || m.Segments.Load() != 0 {
		t.Fatalf("metrics after delete: %d bytes, %d segments", m.DiskBytes.Load(), m.Segments.Load())
	}
	// A crash in the middle of a delete leaves a renamed directory.
	if err := os.MkdirAll(filepath.Join(parent, "other"+deletedSuffix), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(parent, "third"+installingSuffix), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(parent, "kept.v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := RemoveLeftovers(parent); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 1 || ents[0].Name() != "kept.v1" {
		t.Fatalf("after RemoveLeftovers the parent holds %v", ents)
	}
}

func TestStore_Metrics(t *testing.T) {
	dir := t.TempDir()
	m := new(Metrics)
	cfg := smallConfig()
	cfg.Metrics = m
	cfg.Cache = NewCache(1 << 20)
	s := openStore(t, dir, cfg)
	appendN(t, s, 1, 300, 10)
	if err := s.Trim(100, 150); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if m.DiskBytes.Load() != st.DiskBytes || m.Segments.Load() != int64(st.Segments) {
		t.Fatalf("metrics %d bytes %d segments, stats %+v", m.DiskBytes.Load(), m.Segments.Load(), st)
	}
	// Appended entries are in the cache: reading them is all hits.
	readAll(t, s, 100)
	if m.CacheHits.Load() != 151 || m.DiskReads.Load() != 0 {
		t.Fatalf("hits %d disk reads %d, want 151 and 0", m.CacheHits.Load(), m.DiskReads.Load())
	}
	mustClose(t, s)
	if m.DiskBytes.Load() != 0 || m.Segments.Load() != 0 {
		t.Fatalf("metrics after close: %d bytes, %d segments", m.DiskBytes.Load(), m.Segments.Load())
	}
	if cfg.Cache.Bytes() != 0 {
		t.Fatalf("the cache holds %d bytes of a closed store", cfg.Cache.Bytes())
	}
	// Reopened, the cache is cold: reads go to the files, then hit.
	s = openStore(t, dir, cfg)
	defer mustClose(t, s)
	checkEntries(t, readAll(t, s, 100), 150, 301)
	if m.DiskReads.Load() != 151 {
		t.Fatalf("disk reads %d, want 151", m.DiskReads.Load())
	}
	checkEntries(t, readAll(t, s, 100), 150, 301)
	if m.CacheHits.Load() != 2*151 || m.DiskReads.Load() != 151 {
		t.Fatalf("hits %d disk reads %d, want 302 and 151", m.CacheHits.Load(), m.DiskReads.Load())
	}
	if m.Fsyncs.Load() == 0 {
		t.Fatal("no fsync counted")
	}
}

func TestCache_BoundedByBytes(t *testing.T) {
	c := NewCache(10_000)
	s := new(Store)
	for off := uint64(1); off <= 1000; off++ {
		c.put(s, Entry{Offset: off, Data: bytes.Repeat([]byte{'a'}, 100)})
		if c.Bytes() > 10_000 {
			t.Fatalf("cache holds %d bytes, over its 10000", c.Bytes())
		}
	}
	if _, ok := c.get(s, 1000); !ok {
		t.Fatal("the newest entry was evicted")
	}
	if _, ok := c.get(s, 1); ok {
		t.Fatal("the oldest entry is still cached")
	}
	c.put(s, Entry{Offset: 5000, Data: make([]byte, 5000)}) // over a quarter: not kept
	if _, ok := c.get(s, 5000); ok {
		t.Fatal("an entry over a quarter of the cache was kept")
	}
}

func TestStore_OffsetAtTime(t *testing.T) {
	s := openStore(t, t.TempDir(), smallConfig())
	defer mustClose(t, s)
	// Batch at raft r has times r*1000 + i.
	appendN(t, s, 1, 300, 10) // raft 1..30
	for _, c := range []struct {
		t    int64
		want uint64
	}{
		{0, 1},
		{1000, 1},
		{1005, 6},
		{1010, 11}, // batch 2 starts at 2000
		{15_000, 141},
		{30_009, 300},
		{30_010, 301},
	} {
		got, err := s.OffsetAtTime(c.t)
		if err != nil || got != c.want {
			t.Fatalf("offset at time %d: got %d, %v, want %d", c.t, got, err, c.want)
		}
	}
	if err := s.Trim(100, 200); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.OffsetAtTime(1000); got != 200 {
		t.Fatalf("offset at time 1000 after trimming to 200: got %d", got)
	}
}

// TestStore_ConcurrentReadsDuringWrites runs readers beside a writer that
// appends, rolls and trims; run it with -race. Every page a reader gets is
// contiguous, verified, and at or above a First it saw before reading.
func TestStore_ConcurrentReadsDuringWrites(t *testing.T) {
	cfg := smallConfig()
	cfg.Cache = NewCache(8 << 10)
	s := openStore(t, t.TempDir(), cfg)
	defer mustClose(t, s)
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				from := s.First() + uint64(r)
				es, err := s.Read(from, 20+r, 0)
				if err != nil && !bytes.Contains([]byte(err.Error()), []byte(ErrTrimmed.Error())) {
					errs <- err
					return
				}
				for i, e := range es {
					if e.Offset != from+uint64(i) || !bytes.Equal(e.Data, entryData(e.Offset)) {
						errs <- errOffset(e.Offset, from+uint64(i))
						return
					}
				}
			}
		}()
	}
	raft := uint64(1)
	for i := range 300 {
		raft = appendN(t, s, raft, 7, 7)
		if i%10 == 9 {
			if err := s.Trim(raft, s.Next()-50); err != nil {
				t.Fatal(err)
			}
			raft++
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

type offsetError struct{ got, want uint64 }

func (e offsetError) Error() string { return "bad entry" }

func errOffset(got, want uint64) error { return offsetError{got, want} }

// TestStore_MemoryDoesNotGrowWithEntries appends a million small entries
// (100,000 with -short) and checks that the store's memory, its sparse
// index, is bounded by segment bytes over the index interval, not by the
// number of entries.
func TestStore_MemoryDoesNotGrowWithEntries(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	cfg := DefaultConfig()
	cfg.SegmentBytes = 8 << 20
	s := openStore(t, t.TempDir(), cfg)
	defer mustClose(t, s)
	data := []byte(`{"v":1}`)
	batch := make([]Entry, 1000)
	for i := range batch {
		batch[i] = Entry{Data: data}
	}
	for raft := uint64(1); raft <= uint64(n/len(batch)); raft++ {
		if _, err := s.Append(raft, batch); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	bound := int(st.DiskBytes/cfg.IndexIntervalBytes) + st.Segments
	if st.Next != uint64(n)+1 || st.IndexEntries > bound {
		t.Fatalf("%d entries in %d bytes and %d segments: %d index entries, bound %d", st.Next-1, st.DiskBytes, st.Segments, st.IndexEntries, bound)
	}
	if st.IndexEntries*500 > n {
		t.Fatalf("%d index entries for %d entries: over one per 500", st.IndexEntries, n)
	}
	t.Logf("%d entries, %d bytes on disk, %d segments, %d index entries (%d bytes of index)",
		n, st.DiskBytes, st.Segments, st.IndexEntries, 8*st.IndexEntries)
	es, err := s.Read(uint64(n/2), 3, 0)
	if err != nil || len(es) != 3 || es[0].Offset != uint64(n/2) {
		t.Fatalf("read in the middle: %d entries, %v", len(es), err)
	}
}

func TestStore_AppendTrimIsOneChange(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, smallConfig())
	raft := appendN(t, s, 1, 300, 10)
	off, err := s.AppendTrim(raft, batchAt(301, 5, 0), 206)
	if err != nil || off != 301 {
		t.Fatalf("append and trim: offset %d, %v", off, err)
	}
	if st := s.Stats(); st.First != 206 || st.Next != 306 || st.Applied != raft {
		t.Fatalf("got %+v, want first 206, next 306, applied %d", st, raft)
	}
	mustClose(t, s)
	s = openStore(t, dir, smallConfig())
	checkEntries(t, readAll(t, s, 64), 206, 306)
	// A second command that deletes no segment, cut inside its write
	// (after its entries, inside its trim frame): the whole command is
	// gone, not only its trim.
	if _, err := s.AppendTrim(raft+1, batchAt(306, 5, 0), 210); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	files := segFiles(t, dir)
	tail := filepath.Join(dir, files[len(files)-1])
	if err := os.Truncate(tail, fileSize(t, tail)-3); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, smallConfig())
	defer mustClose(t, s)
	if st := s.Stats(); st.First != 206 || st.Next != 306 || st.Applied != raft {
		t.Fatalf("after cutting the trim frame got %+v, want first 206, next 306, applied %d", st, raft)
	}
}

func TestStore_OffsetForBytes(t *testing.T) {
	s := openStore(t, t.TempDir(), smallConfig())
	defer mustClose(t, s)
	// Entries of one size, so the answer is easy to state.
	frame := int64(entrySize(0, 10))
	for raft := uint64(1); raft <= 60; raft++ {
		batch := make([]Entry, 5)
		for i := range batch {
			batch[i] = Entry{Data: []byte("0123456789")}
		}
		if _, err := s.Append(raft, batch); err != nil {
			t.Fatal(err)
		}
	}
	if s.Stats().Segments < 3 {
		t.Fatalf("only %d segments", s.Stats().Segments)
	}
	for _, c := range []struct {
		max  int64
		want uint64
	}{
		{0, 301},
		{frame - 1, 301},
		{frame, 300},
		{10 * frame, 291},
		{10*frame + 5, 291},
		{150 * frame, 151},
		{299 * frame, 2},
		{300 * frame, 1},
		{1 << 40, 1},
	} {
		got, err := s.OffsetForBytes(c.max)
		if err != nil || got != c.want {
			t.Fatalf("offset for %d bytes (%d frames): got %d, %v, want %d", c.max, c.max/frame, got, err, c.want)
		}
	}
	if err := s.Trim(100, 200); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.OffsetForBytes(1 << 40); got != 200 {
		t.Fatalf("offset for all bytes after trimming to 200: got %d", got)
	}
}

// TestStore_ReadFromCacheThenFiles reads a range whose start is cached and
// whose rest is not: the read goes on from the files where the cache ends.
func TestStore_ReadFromCacheThenFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig()
	s := openStore(t, dir, cfg)
	appendN(t, s, 1, 300, 10)
	mustClose(t, s)
	m := new(Metrics)
	cfg.Metrics, cfg.Cache = m, NewCache(1<<20)
	s = openStore(t, dir, cfg)
	defer mustClose(t, s)
	es, err := s.Read(100, 11, 0) // 100..110 from the files, now cached
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, es, 100, 111)
	es, err = s.Read(100, 50, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, es, 100, 150)
	if m.CacheHits.Load() != 11 || m.DiskReads.Load() != 11+39 {
		t.Fatalf("hits %d, disk reads %d, want 11 and 50", m.CacheHits.Load(), m.DiskReads.Load())
	}
}

// TestStore_SyncBesideTheWriter runs Sync on another goroutine while the
// writer appends and rolls, as a snapshot's Persist does; run with -race.
func TestStore_SyncBesideTheWriter(t *testing.T) {
	s := openStore(t, t.TempDir(), smallConfig())
	defer mustClose(t, s)
	done := make(chan error)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := s.Sync(); err != nil {
				done <- err
				return
			}
		}
	}()
	appendN(t, s, 1, 500, 5)
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("sync: %v", err)
	}
	checkEntries(t, readAll(t, s, 100), 1, 501)
}

// TestStore_LowerMaxEntryKeepsData reopens a store with a MaxEntryBytes
// below the size of entries it holds: they are still served.
func TestStore_LowerMaxEntryKeepsData(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, smallConfig())
	big := bytes.Repeat([]byte{'b'}, 3000)
	if _, err := s.Append(1, []Entry{{Data: big}, {Data: big}}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	cfg := smallConfig()
	cfg.MaxEntryBytes = 100
	s = openStore(t, dir, cfg)
	defer mustClose(t, s)
	es, err := s.Read(1, 10, 0)
	if err != nil || len(es) != 2 || !bytes.Equal(es[1].Data, big) {
		t.Fatalf("read: %d entries, %v", len(es), err)
	}
	_, err = s.Append(2, []Entry{{Data: big}})
	wantErr(t, err, ErrInvalid)
}
