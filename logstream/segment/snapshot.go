package segment

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Manifest describes a store at one point of the Raft log: what a Raft
// snapshot references instead of copying entries (docs/log-storage.md).
type Manifest struct {
	// First, Next and Applied are the store's at the snapshot.
	First, Next, Applied uint64
	// Segments are the segment files, oldest first.
	Segments []SegmentRef
}

// SegmentRef is one segment file of a Manifest.
type SegmentRef struct {
	// Name is the file's name in the store's and the snapshot's directory.
	Name string
	// Base and Next are the offsets of its first entry and one past its
	// last, at the snapshot.
	Base, Next uint64
	// Size is how many bytes of the file belong to the snapshot: all of a
	// sealed segment; of the active one, what was written up to the
	// snapshot (the file grows on, also through the snapshot's link).
	Size int64
}

// Snapshot hard-links every segment file into dir, which it creates and
// which must not exist, and returns the manifest of the store at this
// point. It copies no data: it costs a link per segment. Sealed segments
// never change, and the active one only grows past the manifest's size,
// so the snapshot stays valid while the store goes on, and the links keep
// trimmed segments on disk until dir is removed (the snapshot's Release).
//
// Snapshot is called by the writer (the FSM goroutine, in the module's
// Snapshot); it does not fsync. Before the snapshot may stand in for the
// Raft log, its contents must be durable: call Sync and SyncSnapshot (in
// Persist).
func (s *Store) Snapshot(dir string) (Manifest, error) {
	if s.closed {
		return Manifest{}, ErrClosed
	}
	if s.err != nil {
		return Manifest{}, s.err
	}
	if err := os.Mkdir(dir, 0o750); err != nil {
		return Manifest{}, fmt.Errorf("snapshot log segments: %w", err)
	}
	m := Manifest{First: s.first, Next: s.next, Applied: s.applied}
	for _, sg := range s.segs {
		name := filepath.Base(sg.path)
		if err := os.Link(sg.path, filepath.Join(dir, name)); err != nil {
			_ = os.RemoveAll(dir)
			return Manifest{}, fmt.Errorf("snapshot log segments: %w", err)
		}
		m.Segments = append(m.Segments, SegmentRef{Name: name, Base: sg.base, Next: sg.next, Size: sg.fileSize})
	}
	return m, nil
}

// SyncSnapshot makes a snapshot directory Snapshot created durable: its
// links and its own entry in its parent. It is slow (two fsyncs), so it
// belongs in Persist, with Sync, not in Snapshot on the FSM goroutine.
func SyncSnapshot(dir string) error {
	if err := syncDir(dir); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// installingSuffix marks a store directory being installed from a
// snapshot; RemoveLeftovers removes what a crash left.
const installingSuffix = "~installing"

// Install builds the store of a snapshot in dir, which must not exist:
// for each segment of m, open returns its content (from a peer's snapshot,
// say), of which the first Size bytes are written. The files are written
// and fsynced in dir+"~installing", which is then renamed to dir, so a
// crash never leaves a partial store under dir. The store is opened and
// must match m (first, next, applied), or Install fails with ErrCorrupt
// and leaves nothing behind.
func Install(dir string, m Manifest, cfg Config, open func(SegmentRef) (io.ReadCloser, error)) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("install log segments: %w", err)
	}
	switch _, err := os.Stat(dir); {
	case err == nil:
		return nil, fmt.Errorf("install log segments into %s: %w", dir, os.ErrExist)
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("install log segments: %w", err)
	}
	tmp := dir + installingSuffix
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("install log segments: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o750); err != nil {
		return nil, fmt.Errorf("install log segments: %w", err)
	}
	fail := func(err error) (*Store, error) {
		_ = os.RemoveAll(tmp)
		return nil, fmt.Errorf("install log segments into %s: %w", dir, err)
	}
	for _, ref := range m.Segments {
		if err := installFile(filepath.Join(tmp, ref.Name), ref, open); err != nil {
			return fail(err)
		}
	}
	if err := syncDir(tmp); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fail(err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return nil, err
	}
	s, err := Open(dir, cfg)
	if err == nil && (s.first != m.First || s.next != m.Next || s.applied != m.Applied) {
		err = fmt.Errorf("the installed store has first %d, next %d, applied %d; the manifest %d, %d, %d: %w",
			s.first, s.next, s.applied, m.First, m.Next, m.Applied, ErrCorrupt)
		_ = s.close(false)
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("install log segments into %s: %w", dir, err)
	}
	return s, nil
}

// installFile writes the first ref.Size bytes open returns to path and
// fsyncs it.
func installFile(path string, ref SegmentRef, open func(SegmentRef) (io.ReadCloser, error)) error {
	rc, err := open(ref)
	if err != nil {
		return fmt.Errorf("fetch segment %s: %w", ref.Name, err)
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(rc, ref.Size))
	if err == nil && n != ref.Size {
		err = fmt.Errorf("segment %s: got %d bytes of %d: %w", ref.Name, n, ref.Size, io.ErrUnexpectedEOF)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
