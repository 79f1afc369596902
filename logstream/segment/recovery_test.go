package segment

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// boundary is the store's state after one batch: the tail file's size and
// what the store reports.
type boundary struct {
	size                 int64
	first, next, applied uint64
}

// retain is the count retention of the fixtures: each batch also trims
// the log to its newest retain entries, in the same write.
const retain = 100

func appendRetain(t *testing.T, s *Store, raft uint64, n int) {
	t.Helper()
	next := s.Next()
	trim := uint64(0)
	if end := next + uint64(n); end > retain {
		trim = end - retain
	}
	if _, err := s.AppendTrim(raft, batchAt(next, n, int64(raft)), trim); err != nil {
		t.Fatalf("append at raft %d: %v", raft, err)
	}
}

// tornTailFixture fills a store with small segments until its tail holds
// several batches, and returns the directory, the tail's name, and the
// state after each batch written to the tail (the first is the tail's
// creation).
func tornTailFixture(t *testing.T) (dir, tail string, bounds []boundary) {
	t.Helper()
	dir = t.TempDir()
	s := openStore(t, dir, smallConfig())
	raft := uint64(1)
	for {
		files := segFiles(t, dir)
		name := files[len(files)-1]
		if len(files) >= 2 {
			if name != tail {
				tail = name
				bounds = []boundary{{size: fileSize(t, filepath.Join(dir, name)), first: s.First(), next: s.Next(), applied: s.Applied()}}
			}
			if len(bounds) > 4 {
				break
			}
		}
		appendRetain(t, s, raft, 3)
		raft++
		if files := segFiles(t, dir); len(files) >= 2 && files[len(files)-1] == tail {
			bounds = append(bounds, boundary{size: fileSize(t, filepath.Join(dir, tail)), first: s.First(), next: s.Next(), applied: s.Applied()})
		}
	}
	mustClose(t, s)
	return dir, tail, bounds
}

// TestRecovery_TornTailAtEveryByte cuts the tail segment at every length
// inside its last two batches and reopens: the store keeps exactly the
// whole batches before the cut, never part of one, reports the applied
// Raft index of the last of them, cuts the file there, and appends after
// it.
func TestRecovery_TornTailAtEveryByte(t *testing.T) {
	dir, tail, bounds := tornTailFixture(t)
	full := bounds[len(bounds)-1].size
	for cut := bounds[len(bounds)-3].size; cut <= full; cut++ {
		want := bounds[0]
		for _, b := range bounds {
			if b.size <= cut {
				want = b
			}
		}
		d := copyDir(t, dir)
		if err := os.Truncate(filepath.Join(d, tail), cut); err != nil {
			t.Fatal(err)
		}
		s, err := Open(d, smallConfig())
		if err != nil {
			t.Fatalf("cut at %d: open: %v", cut, err)
		}
		if s.First() != want.first || s.Next() != want.next || s.Applied() != want.applied {
			t.Fatalf("cut at %d: first %d next %d applied %d, want %d, %d and %d",
				cut, s.First(), s.Next(), s.Applied(), want.first, want.next, want.applied)
		}
		if got := fileSize(t, filepath.Join(d, tail)); got != want.size {
			t.Fatalf("cut at %d: the tail has %d bytes after opening, want %d", cut, got, want.size)
		}
		checkEntries(t, readAll(t, s, 100), want.first, want.next)
		if off, err := s.Append(want.applied+1, batchAt(want.next, 2, 0)); err != nil || off != want.next {
			t.Fatalf("cut at %d: append after recovery: offset %d, %v", cut, off, err)
		}
		mustClose(t, s)
	}
}

func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x20
	if _, err := f.WriteAt(b[:], at); err != nil {
		t.Fatal(err)
	}
}

// TestRecovery_CorruptTailIsCut flips one byte inside a batch of the tail:
// the checksum catches it, and the store is cut at the end of the batch
// before (what follows is re-applied from Raft).
func TestRecovery_CorruptTailIsCut(t *testing.T) {
	dir, tail, bounds := tornTailFixture(t)
	for i := 1; i < len(bounds); i++ {
		d := copyDir(t, dir)
		at := (bounds[i-1].size + bounds[i].size) / 2
		flipByte(t, filepath.Join(d, tail), at)
		s := openStore(t, d, smallConfig())
		want := bounds[i-1]
		if s.First() != want.first || s.Next() != want.next || s.Applied() != want.applied {
			t.Fatalf("byte %d flipped: first %d next %d applied %d, want %d, %d and %d",
				at, s.First(), s.Next(), s.Applied(), want.first, want.next, want.applied)
		}
		checkEntries(t, readAll(t, s, 100), want.first, want.next)
		mustClose(t, s)
	}
}

// TestRecovery_SealedSegmentDamage: a sealed segment is trusted by its
// footer; a damaged footer makes Open scan the segment; damage a read
// meets is reported, never served; damage Open meets is ErrCorrupt.
func TestRecovery_SealedSegmentDamage(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, smallConfig())
	appendN(t, s, 1, 300, 5)
	mustClose(t, s)
	first := filepath.Join(dir, segFiles(t, dir)[0])
	size := fileSize(t, first)
	s = openStore(t, dir, smallConfig())
	footerPos := int64(s.segs[0].size)
	segNext := s.segs[0].next
	mustClose(t, s)

	t.Run("footer", func(t *testing.T) {
		d := copyDir(t, dir)
		flipByte(t, filepath.Join(d, filepath.Base(first)), size-20)
		s := openStore(t, d, smallConfig())
		defer mustClose(t, s)
		checkEntries(t, readAll(t, s, 64), 1, 301)
	})
	t.Run("record", func(t *testing.T) {
		d := copyDir(t, dir)
		flipByte(t, filepath.Join(d, filepath.Base(first)), footerPos-10)
		s := openStore(t, d, smallConfig())
		defer mustClose(t, s)
		_, err := s.Read(segNext-1, 1, 0)
		wantErr(t, err, ErrCorrupt)
		if es, err := s.Read(segNext, 5, 0); err != nil || len(es) != 5 {
			t.Fatalf("read past the damage: %d entries, %v", len(es), err)
		}
	})
	t.Run("record and footer", func(t *testing.T) {
		d := copyDir(t, dir)
		flipByte(t, filepath.Join(d, filepath.Base(first)), footerPos-10)
		flipByte(t, filepath.Join(d, filepath.Base(first)), size-20)
		_, err := Open(d, smallConfig())
		wantErr(t, err, ErrCorrupt)
	})
	t.Run("header", func(t *testing.T) {
		d := copyDir(t, dir)
		flipByte(t, filepath.Join(d, filepath.Base(first)), 15)
		_, err := Open(d, smallConfig())
		wantErr(t, err, ErrCorrupt)
	})
	t.Run("missing segment", func(t *testing.T) {
		d := copyDir(t, dir)
		if err := os.Remove(filepath.Join(d, segFiles(t, d)[2])); err != nil {
			t.Fatal(err)
		}
		_, err := Open(d, smallConfig())
		wantErr(t, err, ErrCorrupt)
	})
}

// rollFixture appends until a batch makes the store roll, and returns the
// directory, the sealed segment, the new one, the state before that batch
// and where the sealed segment's footer starts.
func rollFixture(t *testing.T) (dir, sealed, fresh string, before boundary, footerPos int64) {
	t.Helper()
	dir = t.TempDir()
	s := openStore(t, dir, smallConfig())
	raft := uint64(1)
	for {
		before = boundary{next: s.Next(), applied: s.Applied()}
		raft = appendN(t, s, raft, 4, 4)
		if files := segFiles(t, dir); len(files) == 2 {
			sealed, fresh = files[0], files[1]
			footerPos = int64(s.segs[0].size)
			break
		}
	}
	mustClose(t, s)
	return dir, sealed, fresh, before, footerPos
}

// TestRecovery_CrashDuringRoll leaves the files in every state a roll
// passes through (footer cut at each byte; sealed without a new segment;
// new segment with a cut header; new segment with only its header) and
// checks that the store opens with the state before the batch that rolled,
// and goes on.
func TestRecovery_CrashDuringRoll(t *testing.T) {
	dir, sealed, fresh, before, footerPos := rollFixture(t)
	sealedSize := fileSize(t, filepath.Join(dir, sealed))
	check := func(t *testing.T, d string) {
		t.Helper()
		s := openStore(t, d, smallConfig())
		defer mustClose(t, s)
		if s.Next() != before.next || s.Applied() != before.applied {
			t.Fatalf("next %d applied %d, want %d and %d", s.Next(), s.Applied(), before.next, before.applied)
		}
		checkEntries(t, readAll(t, s, 100), 1, before.next)
		raft := appendN(t, s, before.applied+1, 30, 4)
		checkEntries(t, readAll(t, s, 100), 1, before.next+30)
		mustClose(t, s)
		s = openStore(t, d, smallConfig())
		checkEntries(t, readAll(t, s, 100), 1, before.next+30)
		if s.Applied() != raft-1 {
			t.Fatalf("applied %d after reopening, want %d", s.Applied(), raft-1)
		}
	}
	t.Run("footer cut", func(t *testing.T) {
		for cut := footerPos; cut < sealedSize; cut++ {
			d := copyDir(t, dir)
			if err := os.Remove(filepath.Join(d, fresh)); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(filepath.Join(d, sealed), cut); err != nil {
				t.Fatal(err)
			}
			check(t, d)
		}
	})
	t.Run("sealed, no new segment", func(t *testing.T) {
		d := copyDir(t, dir)
		if err := os.Remove(filepath.Join(d, fresh)); err != nil {
			t.Fatal(err)
		}
		check(t, d)
	})
	t.Run("new segment header cut", func(t *testing.T) {
		for cut := int64(0); cut <= headerSize; cut++ {
			d := copyDir(t, dir)
			if err := os.Truncate(filepath.Join(d, fresh), cut); err != nil {
				t.Fatal(err)
			}
			check(t, d)
		}
	})
}

// TestRecovery_CrashDuringTrim: a trim writes its record, fsyncs, then
// deletes segments; a trim past the end also rolls. Crashes between those
// steps leave the trimmed segments, or the trim record without its new
// segment; Open finishes the work.
func TestRecovery_CrashDuringTrim(t *testing.T) {
	t.Run("segments not yet deleted", func(t *testing.T) {
		dir := t.TempDir()
		s := openStore(t, dir, smallConfig())
		raft := appendN(t, s, 1, 300, 5)
		mustClose(t, s)
		saved := copyDir(t, dir)
		s = openStore(t, dir, smallConfig())
		if err := s.Trim(raft, 200); err != nil {
			t.Fatal(err)
		}
		want := s.Stats()
		mustClose(t, s)
		for _, name := range segFiles(t, saved) { // put back what the trim deleted
			if _, err := os.Stat(filepath.Join(dir, name)); errors.Is(err, os.ErrNotExist) {
				copyFile(t, filepath.Join(saved, name), filepath.Join(dir, name))
			}
		}
		s = openStore(t, dir, smallConfig())
		defer mustClose(t, s)
		if got := s.Stats(); got != want {
			t.Fatalf("got %+v, want %+v", got, want)
		}
		if n := len(segFiles(t, dir)); n != want.Segments {
			t.Fatalf("%d files left, want %d", n, want.Segments)
		}
		checkEntries(t, readAll(t, s, 64), 200, 301)
	})
	t.Run("trim past the end before its roll", func(t *testing.T) {
		dir := t.TempDir()
		s := openStore(t, dir, smallConfig())
		raft := appendN(t, s, 1, 300, 5)
		mustClose(t, s)
		// The files after the trim record was written and fsynced: the
		// active segment ends with it; no segment was sealed or deleted.
		files := segFiles(t, dir)
		tail := filepath.Join(dir, files[len(files)-1])
		f, err := os.OpenFile(tail, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(appendTrimFrame(nil, raft, 1000)); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		s = openStore(t, dir, smallConfig())
		defer mustClose(t, s)
		if st := s.Stats(); st.First != 1000 || st.Next != 1000 || st.Applied != raft || st.Segments != 1 {
			t.Fatalf("got %+v, want an empty log at 1000, applied %d, in one segment", st, raft)
		}
		if files := segFiles(t, dir); len(files) != 1 || files[0] != segName(1000) {
			t.Fatalf("files %v", files)
		}
		appendN(t, s, raft+1, 5, 5)
		checkEntries(t, readAll(t, s, 64), 1000, 1005)
	})
}

// model is the log a sequence of commands must produce.
type model struct{ first, next, applied uint64 }

// TestRecovery_ReplayNeverDuplicatesOrLoses plays the module's part: it
// applies a random history of appends and trims, syncs at "snapshots",
// and crashes at random points, losing a random part of what was written
// since the last fsync. After each crash it reopens and replays the
// commands after the last snapshot, skipping those at or below Applied.
// The store must end exactly like the model: no entry lost or duplicated.
func TestRecovery_ReplayNeverDuplicatesOrLoses(t *testing.T) {
	seeds, rounds := 10, 200
	if testing.Short() {
		seeds, rounds = 3, 40
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) { replayHistory(t, seed, rounds) })
	}
}

func replayHistory(t *testing.T, seed uint64, rounds int) {
	rng := rand.New(rand.NewPCG(seed, 2))
	type command struct {
		raft  uint64
		n     int    // entries to append, or 0 for a trim
		first uint64 // trim to (with an append: retention by count, 0 for none)
	}
	dir := t.TempDir()
	metrics := new(Metrics)
	cfg := smallConfig()
	cfg.Metrics = metrics
	s := openStore(t, dir, cfg)
	defer func() { _ = s.Close() }()
	var (
		history  []command
		m        = model{first: 1, next: 1}
		raft     uint64
		snapshot uint64 // Raft index of the last snapshot: the store is durable up to it
		// snapApplied is the model's applied index at the snapshot: the
		// last change at or below it (a trim that changed nothing is none).
		snapApplied uint64
		// syncedTail and syncedSize are the tail and its size at the last
		// Sync: a crash cannot take that back.
		syncedTail string
		syncedSize int64
	)
	// markDurable records the tail and its size as durable: after a Sync,
	// after any change during which the store fsynced (it fsyncs a trim
	// before deleting segments: a crash cannot take such a trim back, so
	// the simulated crash must not either), and after recovery (what a
	// crash left is what is on disk).
	fsyncs := uint64(0)
	markDurable := func() {
		files := segFiles(t, dir)
		syncedTail = files[len(files)-1]
		syncedSize = fileSize(t, filepath.Join(dir, syncedTail))
		fsyncs = metrics.Fsyncs.Load()
	}
	apply := func(c command) {
		t.Helper()
		defer func() {
			if metrics.Fsyncs.Load() != fsyncs {
				markDurable()
			}
		}()
		if c.raft <= s.Applied() {
			return // replayed: already in the store
		}
		if c.n > 0 {
			if _, err := s.AppendTrim(c.raft, batchAt(s.Next(), c.n, int64(c.raft)), c.first); err != nil {
				t.Fatalf("append at %d: %v", c.raft, err)
			}
			return
		}
		if err := s.Trim(c.raft, c.first); err != nil {
			t.Fatalf("trim at %d: %v", c.raft, err)
		}
	}
	for round := range rounds {
		for range 1 + rng.IntN(20) {
			raft += 1 + uint64(rng.IntN(2)) // other modules' commands between
			c := command{raft: raft}
			if rng.IntN(5) == 0 {
				c.first = max(m.first+uint64(rng.IntN(40)), 6) - 5
				if rng.IntN(20) == 0 {
					c.first = m.next + 3 // past the end
				}
				if c.first > m.first {
					m.first, m.applied = c.first, c.raft
				}
				m.next = max(m.next, m.first)
			} else {
				c.n = 1 + rng.IntN(8)
				m.next += uint64(c.n)
				m.applied = c.raft
				if keep := uint64(30 + rng.IntN(200)); rng.IntN(3) == 0 && m.next-m.first > keep {
					c.first = m.next - keep
					m.first = c.first
				}
			}
			history = append(history, c)
			apply(c)
			if rng.IntN(10) == 0 {
				if err := s.Sync(); err != nil {
					t.Fatal(err)
				}
				snapshot, snapApplied = c.raft, m.applied
				markDurable()
			}
		}
		// Crash: the tail loses a random part of what it got since its
		// last fsync (when it was created or at the last Sync), and may get
		// garbage in its place. Older segments were fsynced when sealed.
		tailBefore := segFiles(t, dir)
		_ = s.Close()
		tail := filepath.Join(dir, tailBefore[len(tailBefore)-1])
		size := fileSize(t, tail)
		synced := int64(headerSize)
		if tailBefore[len(tailBefore)-1] == syncedTail {
			synced = syncedSize
		}
		if size > synced && round%3 != 0 {
			cut := synced + rng.Int64N(size-synced+1)
			if err := os.Truncate(tail, cut); err != nil {
				t.Fatal(err)
			}
			if rng.IntN(2) == 0 {
				f, err := os.OpenFile(tail, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				garbage := make([]byte, 1+rng.IntN(64))
				for i := range garbage {
					garbage[i] = byte(rng.Uint32())
				}
				_, _ = f.Write(garbage)
				_ = f.Close()
			}
		}
		var err error
		s, err = Open(dir, cfg)
		if err != nil {
			t.Fatalf("round %d: open after the crash: %v", round, err)
		}
		if s.Applied() < snapApplied {
			t.Fatalf("round %d: applied %d after the crash, below %d, the last change before the snapshot at %d",
				round, s.Applied(), snapApplied, snapshot)
		}
		markDurable()
		for _, c := range history {
			if c.raft > snapshot {
				apply(c)
			}
		}
		if st := s.Stats(); st.First != m.first || st.Next != m.next || st.Applied != m.applied {
			t.Fatalf("round %d: after replay got %+v, want first %d next %d applied %d", round, st, m.first, m.next, m.applied)
		}
		checkEntries(t, readAll(t, s, 100), m.first, m.next)
	}
}

// TestOpen_FailureClosesFiles opens damaged stores many times and checks
// that no file descriptor is left behind.
func TestOpen_FailureClosesFiles(t *testing.T) {
	if _, err := os.ReadDir("/proc/self/fd"); err != nil {
		t.Skip("no /proc/self/fd")
	}
	dir := t.TempDir()
	s := openStore(t, dir, smallConfig())
	appendN(t, s, 1, 300, 5)
	mustClose(t, s)
	gap := copyDir(t, dir)
	if err := os.Remove(filepath.Join(gap, segFiles(t, gap)[1])); err != nil {
		t.Fatal(err)
	}
	flipByte(t, filepath.Join(dir, segFiles(t, dir)[0]), 15) // a bad sealed header
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := fds()
	for range 25 {
		for _, d := range []string{dir, gap} {
			_, err := Open(d, smallConfig())
			wantErr(t, err, ErrCorrupt)
		}
	}
	if after := fds(); after > before+5 { // other tests' goroutines may hold a few
		t.Fatalf("%d open files after 50 failed opens, %d before", after, before)
	}
}
