package segment

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Store is the on-disk store of one log: a directory of segment files.
// See the package documentation for the threading contract: Append, Trim,
// Close and Delete from one goroutine; Sync from any; reads from any.
type Store struct {
	dir     string
	cfg     Config
	m       *Metrics // nil while recovering, then cfg.Metrics
	maxBody int
	logger  *slog.Logger

	mu      sync.RWMutex
	segs    []*segment // by base offset; the last is the active one
	first   uint64     // first retained offset
	next    uint64     // offset the next appended entry gets
	applied uint64     // Raft index of the last change
	closed  bool
	torn    bool  // recovery cut a torn tail
	err     error // sticky: a failed write leaves the files in an unknown state

	// Writer-only scratch.
	buf []byte
	pos []int64
}

// Open opens the store in dir, creating dir and an empty log (first and
// next offset 1) if there is none, and recovers from a crash (dir must not
// be open in another Store): a torn or
// corrupt tail is cut, files an interrupted roll or trim left are removed,
// and the applied Raft index is the one of the last complete record. It
// fails with ErrCorrupt when a sealed segment is damaged or segments are
// missing: the log then needs a snapshot from a peer.
func Open(dir string, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open log segments: %w", err)
	}
	s := &Store{dir: dir, cfg: cfg, maxBody: maxBodyLen, logger: cfg.Logger}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if err := s.recover(); err != nil {
		for _, sg := range s.segs {
			sg.release()
		}
		return nil, fmt.Errorf("open log segments in %s: %w", dir, err)
	}
	var disk int64
	for _, sg := range s.segs {
		disk += sg.fileSize
	}
	s.m = cfg.Metrics
	s.m.addDisk(disk, int64(len(s.segs)))
	if s.torn {
		s.m.tornTail()
	}
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// First returns the first retained offset. The log is empty when First
// equals Next.
func (s *Store) First() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.first
}

// Next returns the offset the next appended entry gets (the last offset
// plus one).
func (s *Store) Next() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.next
}

// Applied returns the Raft index of the last change (append or trim) the
// store holds. A command at or below it was already applied.
func (s *Store) Applied() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.applied
}

// Stats describes a store.
type Stats struct {
	First, Next, Applied uint64
	// Segments and DiskBytes are the segment files and their total size.
	Segments  int
	DiskBytes int64
	// IndexEntries is the number of sparse index entries in memory (8
	// bytes each), the part of the store's memory that grows with data:
	// at most one per IndexIntervalBytes of segment.
	IndexEntries int
}

// Stats returns the store's current figures.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Stats{First: s.first, Next: s.next, Applied: s.applied, Segments: len(s.segs)}
	for _, sg := range s.segs {
		st.DiskBytes += sg.fileSize
		st.IndexEntries += len(sg.index)
	}
	return st
}

func (s *Store) active() *segment { return s.segs[len(s.segs)-1] }

// writable checks that a change at Raft index raft may be written.
func (s *Store) writable(raft uint64) error {
	switch {
	case s.closed:
		return ErrClosed
	case s.err != nil:
		return s.err
	case raft <= s.applied:
		return fmt.Errorf("change at raft index %d, applied %d: %w", raft, s.applied, ErrStale)
	}
	return nil
}

// fail makes err sticky: after a failed write the store refuses further
// changes, and the node must restart (recovery cuts what was half
// written, and Raft replays the rest).
func (s *Store) fail(err error) error {
	s.mu.Lock()
	if s.err == nil {
		s.err = fmt.Errorf("log segments in %s: %w", s.dir, err)
	}
	err = s.err
	s.mu.Unlock()
	return err
}

// Append writes batch as the entries of the command at Raft index raft,
// with consecutive offsets from Next, and returns the first one. It is
// AppendTrim without a trim.
func (s *Store) Append(raft uint64, batch []Entry) (uint64, error) {
	return s.AppendTrim(raft, batch, 0)
}

// AppendTrim writes batch as the entries of the command at Raft index
// raft, with consecutive offsets from Next, then, if trim is above First,
// drops the entries below offset trim (retention by count), and returns
// the batch's first offset. The entries and the trim are one write: a crash
// keeps all of the command or none of it. It is called by the writer only;
// raft must be above Applied (ErrStale). Entries' Offset and RaftIndex are
// ignored and set by the store. Nothing is fsynced (see the package
// documentation) unless the write rolls a segment or the trim deletes
// segments. Data may be kept by the Cache: the caller must not modify it
// afterwards.
func (s *Store) AppendTrim(raft uint64, batch []Entry, trim uint64) (uint64, error) {
	if err := s.writable(raft); err != nil {
		return 0, err
	}
	return s.appendTrim(raft, batch, trim)
}

// Import appends batch like Append, but at a Raft index that may equal
// Applied: it builds a store from a backup, one batch after another, all
// at the index the backup is restored at. A crash in the middle leaves a
// store that looks whole at that index, so Import is only for a directory
// that is renamed into place once complete (and removed otherwise).
func (s *Store) Import(raft uint64, batch []Entry) (uint64, error) {
	if raft == s.Applied() && raft > 0 {
		return s.appendTrim(raft, batch, 0)
	}
	return s.AppendTrim(raft, batch, 0)
}

func (s *Store) appendTrim(raft uint64, batch []Entry, trim uint64) (uint64, error) {
	switch {
	case s.closed:
		return 0, ErrClosed
	case s.err != nil:
		return 0, s.err
	}
	if len(batch) == 0 {
		return 0, fmt.Errorf("append an empty batch: %w", ErrInvalid)
	}
	size := 0
	for i, e := range batch {
		if len(e.ID) > maxIDLen || len(e.ID)+len(e.Data) > s.cfg.MaxEntryBytes {
			return 0, fmt.Errorf("append entry %d with an id of %d and data of %d bytes: %w", i, len(e.ID), len(e.Data), ErrInvalid)
		}
		size += entrySize(len(e.ID), len(e.Data))
	}
	trimmed := trim > s.first
	if trimmed {
		size += frameHeaderSize + trimBodySize
	}
	if size > maxBatchBytes {
		return 0, fmt.Errorf("append a batch of %d bytes: %w", size, ErrInvalid)
	}
	act := s.active()
	if act.entries() > 0 && act.size+int64(size) > s.cfg.SegmentBytes {
		if err := s.roll(); err != nil {
			return 0, s.fail(err)
		}
		act = s.active()
	}
	first := s.next
	buf, pos := s.buf[:0], s.pos[:0]
	for i, e := range batch {
		pos = append(pos, act.size+int64(len(buf)))
		buf = appendEntryFrame(buf, first+uint64(i), raft, e, i == len(batch)-1 && !trimmed)
	}
	if trimmed {
		buf = appendTrimFrame(buf, raft, trim)
	}
	if _, err := act.f.WriteAt(buf, act.size); err != nil {
		return 0, s.fail(fmt.Errorf("append at raft index %d: %w", raft, err))
	}
	s.mu.Lock()
	for i, e := range batch {
		act.noteEntry(first+uint64(i), e.Time, pos[i], s.cfg.IndexIntervalBytes)
	}
	act.size += int64(len(buf))
	act.fileSize = act.size
	s.next = first + uint64(len(batch))
	if trimmed {
		s.first = trim
	}
	s.applied = raft
	s.mu.Unlock()
	s.m.addDisk(int64(len(buf)), 0)
	for i, e := range batch {
		e.Offset, e.RaftIndex = first+uint64(i), raft
		s.cfg.Cache.put(s, e)
	}
	if cap(buf) > 1<<20 {
		buf = nil // do not hold a large batch's buffer
	}
	s.buf, s.pos = buf, pos
	if trimmed {
		if err := s.afterTrim(); err != nil {
			return first, err
		}
	}
	return first, nil
}

// Trim drops every entry below offset first, as the command at Raft index
// raft; a first at or below First changes nothing. A first past Next
// empties the log, and the next entry appended gets offset first (a log
// restored from a peer starts this way). Segments wholly below first are
// deleted once the trim is durable. Called by the writer only.
func (s *Store) Trim(raft, first uint64) error {
	if err := s.writable(raft); err != nil {
		return err
	}
	if first <= s.first {
		return nil
	}
	act := s.active()
	buf := appendTrimFrame(s.buf[:0], raft, first)
	if _, err := act.f.WriteAt(buf, act.size); err != nil {
		return s.fail(fmt.Errorf("trim at raft index %d: %w", raft, err))
	}
	s.mu.Lock()
	act.size += int64(len(buf))
	act.fileSize = act.size
	s.first, s.applied = first, raft
	s.mu.Unlock()
	s.m.addDisk(int64(len(buf)), 0)
	return s.afterTrim()
}

// afterTrim finishes a trim whose record is written: a First past Next
// starts the log over at First, in a segment of its own (a segment's
// offsets have no gaps), and segments wholly below First are deleted.
func (s *Store) afterTrim() error {
	if s.first > s.next {
		s.mu.Lock()
		s.next = s.first
		s.mu.Unlock()
		if err := s.roll(); err != nil {
			return s.fail(err)
		}
	}
	if err := s.dropBelow(); err != nil {
		return s.fail(err)
	}
	return nil
}

// dropBelow deletes the segments, other than the active one, whose
// entries are all below First. The active segment is fsynced first, so the
// trim record that moved First is durable before any data disappears.
func (s *Store) dropBelow() error {
	k := 0
	for k < len(s.segs)-1 && s.segs[k].next <= s.first {
		k++
	}
	if k == 0 {
		return nil
	}
	if err := s.syncFile(s.active().f); err != nil {
		return err
	}
	s.mu.Lock()
	doomed := slices.Clone(s.segs[:k])
	s.segs = slices.Clone(s.segs[k:])
	s.mu.Unlock()
	for _, sg := range doomed {
		if err := os.Remove(sg.path); err != nil {
			return fmt.Errorf("remove trimmed segment: %w", err)
		}
		s.m.addDisk(-sg.fileSize, -1)
		sg.release() // closed once the last reader is done
	}
	return s.syncDir(s.dir)
}

// roll seals the active segment (footer, fsync) and starts a new one at
// Next. Crash states it can leave, and how Open handles them, are listed
// in docs/log-storage.md.
func (s *Store) roll() error {
	act := s.active()
	buf := appendFooterFrame(s.buf[:0], act.footer(s.first, s.applied))
	if _, err := act.f.WriteAt(buf, act.size); err != nil {
		return fmt.Errorf("seal segment %s: %w", act.path, err)
	}
	if err := s.syncFile(act.f); err != nil {
		return err
	}
	s.mu.Lock()
	act.sealed = true
	act.fileSize = act.size + int64(len(buf))
	s.mu.Unlock()
	s.m.addDisk(int64(len(buf)), 0)
	return s.create(header{base: s.next, first: s.first, raft: s.applied})
}

// create starts a new active segment with header h. The header is fsynced,
// and the directory, before any record is written to the file.
func (s *Store) create(h header) error {
	path := filepath.Join(s.dir, segName(h.base))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	if _, err := f.WriteAt(appendHeader(nil, h), 0); err != nil {
		_ = f.Close()
		return fmt.Errorf("create segment %s: %w", path, err)
	}
	if err := s.syncFile(f); err != nil {
		_ = f.Close()
		return err
	}
	if err := s.syncDir(s.dir); err != nil {
		_ = f.Close()
		return err
	}
	sg := &segment{summary: summary{base: h.base, size: headerSize, next: h.base, lastIndexed: -1}, path: path, f: f, fileSize: headerSize}
	sg.refs.Store(1)
	s.mu.Lock()
	s.segs = append(s.segs, sg)
	s.mu.Unlock()
	s.m.addDisk(headerSize, 1)
	return nil
}

// Sync makes every change appended before the call durable. The module
// calls it before Raft may compact its log past the store's applied index
// (when a snapshot is persisted). It may run concurrently with the writer.
func (s *Store) Sync() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	act := s.active()
	act.acquire()
	s.mu.RUnlock()
	defer act.release()
	// Sealed segments were fsynced when sealed, and the active one's
	// directory entry when it was created.
	return s.syncFile(act.f)
}

func (s *Store) syncFile(f *os.File) error {
	if s.cfg.noSync {
		return nil
	}
	s.m.fsync()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", f.Name(), err)
	}
	return nil
}

func (s *Store) syncDir(dir string) error {
	if s.cfg.noSync {
		return nil
	}
	s.m.fsync()
	return syncDir(dir)
}

// SyncDir fsyncs a directory, making the entries created, renamed or
// removed in it durable.
func SyncDir(dir string) error { return syncDir(dir) }

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// Close fsyncs the active segment and closes the store; reads in flight
// finish on their own file handles. Called by the writer.
func (s *Store) Close() error { return s.close(true) }

func (s *Store) close(sync bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	segs, failed := s.segs, s.err != nil
	s.segs = nil
	s.mu.Unlock()
	var err error
	if sync && !failed && len(segs) > 0 {
		err = s.syncFile(segs[len(segs)-1].f)
	}
	for _, sg := range segs {
		s.m.addDisk(-sg.fileSize, -1)
		sg.release()
	}
	s.cfg.Cache.purge(s)
	return err
}

// deletedSuffix marks a store directory being deleted. '~' is not allowed
// in log names, so no live log's directory ends with it.
const deletedSuffix = "~deleted"

// Delete closes the store and removes its directory. The directory is
// first renamed (atomically) to its name with "~deleted" appended, so a
// crash never leaves a half-deleted log that Open would take for a damaged
// one; RemoveLeftovers removes what a crash left. Called by the writer.
func (s *Store) Delete() error {
	_ = s.close(false) // the files go: nothing to make durable
	tomb := s.dir + deletedSuffix
	if err := os.RemoveAll(tomb); err != nil {
		return fmt.Errorf("delete log segments: %w", err)
	}
	if err := os.Rename(s.dir, tomb); err != nil {
		return fmt.Errorf("delete log segments: %w", err)
	}
	if err := syncDir(filepath.Dir(s.dir)); err != nil {
		return err
	}
	if err := os.RemoveAll(tomb); err != nil {
		return fmt.Errorf("delete log segments: %w", err)
	}
	return nil
}

// RemoveLeftovers removes the directories in parent that a Delete or an
// Install interrupted by a crash left behind. The module calls it before
// opening its stores.
func RemoveLeftovers(parent string) error {
	ents, err := os.ReadDir(parent)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove deleted logs: %w", err)
	}
	for _, e := range ents {
		if e.IsDir() && (strings.HasSuffix(e.Name(), deletedSuffix) || strings.HasSuffix(e.Name(), installingSuffix)) {
			if err := os.RemoveAll(filepath.Join(parent, e.Name())); err != nil {
				return fmt.Errorf("remove deleted log: %w", err)
			}
		}
	}
	return nil
}

// segmentAt returns the index in segs of the segment that holds offset
// off (the last one whose base is at or below off).
func segmentAt(segs []*segment, off uint64) int {
	i := sort.Search(len(segs), func(i int) bool { return segs[i].base > off })
	return max(i-1, 0)
}
