package replication

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
)

// store is this node's replicated directory. Every file operation goes
// through an os.Root, so no path, and no symlink inside the directory, can
// reach a file outside it; only regular files are read, listed or
// replicated.
//
// It caches each file's SHA-256 (and the hash state at its end, so an
// append extends the hash without reading the file again), keyed by size,
// mtime and inode: a file changed behind the cache's back is hashed again.
// Methods are safe for concurrent use; callers serialise writes to one
// file themselves (the leader under its write lock, a follower in its one
// session goroutine).
type store struct {
	dir   string
	root  *os.Root
	fsync bool

	mu    sync.Mutex
	cache map[string]cacheEntry
	dirty map[string]*os.File // files written since the last flush, open
	dirs  map[string]bool     // directories changed since the last flush
}

// cacheEntry is a file's hash as of one version of the file.
type cacheEntry struct {
	size  int64
	mtime int64
	ino   uint64
	sum   [32]byte
	state []byte // the sha256 state after size bytes
}

// tmpDir is where replaces are staged before their atomic rename.
var tmpDir = path.Join(reservedDir, "tmp")

func openStore(dir string, fsync bool) (*store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create replicated directory %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open replicated directory %s: %w", dir, err)
	}
	// Staged files of an earlier run are garbage.
	if err := root.RemoveAll(tmpDir); err != nil {
		_ = root.Close()
		return nil, fmt.Errorf("clear %s in %s: %w", tmpDir, dir, err)
	}
	if err := root.MkdirAll(tmpDir, 0o755); err != nil {
		_ = root.Close()
		return nil, fmt.Errorf("create %s in %s: %w", tmpDir, dir, err)
	}
	return &store{dir: dir, root: root, fsync: fsync, cache: map[string]cacheEntry{},
		dirty: map[string]*os.File{}, dirs: map[string]bool{}}, nil
}

func (s *store) close() error {
	s.mu.Lock()
	for p, f := range s.dirty {
		_ = f.Close()
		delete(s.dirty, p)
	}
	s.mu.Unlock()
	return s.root.Close()
}

// errNotRegular: the path names something other than a regular file.
var errNotRegular = errors.New("not a regular file")

// openRegular opens p for reading if it is a regular file (a symlink, even
// one inside the directory, is refused) and returns it with its stat.
func (s *store) openRegular(p string) (*os.File, fs.FileInfo, error) {
	fi, err := s.root.Lstat(p)
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fi, fmt.Errorf("%s: %w", p, errNotRegular)
	}
	f, err := s.root.Open(p)
	if err != nil {
		return nil, nil, err
	}
	fi, err = f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		_ = f.Close()
		if err == nil {
			err = fmt.Errorf("%s: %w", p, errNotRegular)
		}
		return nil, nil, err
	}
	return f, fi, nil
}

// entry returns p's index entry, from the cache if it matches the file's
// stat, else by hashing f (whose first fi.Size() bytes are read).
func (s *store) entry(p string, f *os.File, fi fs.FileInfo) (indexEntry, error) {
	key := cacheEntry{size: fi.Size(), mtime: fi.ModTime().UnixNano(), ino: inode(fi)}
	s.mu.Lock()
	c, ok := s.cache[p]
	s.mu.Unlock()
	if ok && c.size == key.size && c.mtime == key.mtime && c.ino == key.ino {
		return indexEntry{Path: p, Size: uint64(c.size), Mtime: c.mtime, Sum: c.sum}, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, key.size)); err != nil {
		return indexEntry{}, fmt.Errorf("hash %s: %w", p, err)
	}
	key.sum, key.state = sumOf(h), stateOf(h)
	s.mu.Lock()
	s.cache[p] = key
	s.mu.Unlock()
	return indexEntry{Path: p, Size: uint64(key.size), Mtime: key.mtime, Sum: key.sum}, nil
}

// stat returns p's index entry, hashing the file if the cache is stale.
func (s *store) stat(p string) (indexEntry, error) {
	f, fi, err := s.openRegular(p)
	if err != nil {
		return indexEntry{}, err
	}
	defer f.Close()
	return s.entry(p, f, fi)
}

// list returns the entries of every regular file under prefix (all when
// empty), sorted by path, hashing what the cache does not know. Files that
// vanish during the walk are skipped.
func (s *store) list(prefix string) ([]indexEntry, error) {
	stats, _, err := s.walkStats(".")
	if err != nil {
		return nil, err
	}
	out := make([]indexEntry, 0, len(stats))
	for p := range stats {
		if !strings.HasPrefix(p, prefix) {
			continue
		}
		e, err := s.stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, errNotRegular):
			continue
		case err != nil:
			return nil, fmt.Errorf("list %s: %w", s.dir, err)
		}
		out = append(out, e)
	}
	sortEntries(out)
	return out, nil
}

// sortEntries sorts entries by path.
func sortEntries(es []indexEntry) {
	slices.SortFunc(es, func(a, b indexEntry) int { return strings.Compare(a.Path, b.Path) })
}

// removeSpecial removes what a follower's directory holds besides regular
// files and directories (symbolic links, sockets, ...): the leader never
// replicates them, and a link could lead a later write out of the
// directory. Only the entries are removed, never what a link points to.
func (s *store) removeSpecial() error {
	var special []string
	err := fs.WalkDir(s.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return nil
		case p == reservedDir:
			return fs.SkipDir
		case p != "." && !d.IsDir() && !d.Type().IsRegular():
			special = append(special, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan %s: %w", s.dir, err)
	}
	for _, p := range special {
		if err := s.root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	return nil
}

// staged is a file written in tmpDir, ready to be renamed into place.
type staged struct {
	name  string
	size  int64
	sum   [32]byte
	state []byte
}

// stage writes data to a new file in tmpDir, fsynced if configured.
func (s *store) stage(data []byte) (staged, error) {
	st, f, err := s.stageOpen(data, nil)
	if err != nil {
		return staged{}, err
	}
	if err := s.finishTemp(f); err != nil {
		s.discard(st)
		return staged{}, err
	}
	return st, nil
}

// stageOpen writes data to a new file in tmpDir and returns it open,
// neither fsynced nor closed. With sum (the SHA-256 of data, as the leader
// computed it), data is not hashed again: a follower takes the leader's
// sum for a replace that arrived in a checksummed frame, and hashes the
// file only if an append must extend the hash.
func (s *store) stageOpen(data []byte, sum *[32]byte) (staged, *os.File, error) {
	f, name, err := s.createTemp()
	if err != nil {
		return staged{}, nil, err
	}
	st := staged{name: name, size: int64(len(data))}
	if sum != nil {
		st.sum = *sum
	} else {
		h := sha256.New()
		h.Write(data)
		st.sum, st.state = sumOf(h), stateOf(h)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		_ = s.root.Remove(name)
		return staged{}, nil, fmt.Errorf("write staged file: %w", err)
	}
	return st, f, nil
}

// createTemp creates an empty file in tmpDir.
func (s *store) createTemp() (*os.File, string, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	name := path.Join(tmpDir, hex.EncodeToString(rnd[:]))
	f, err := s.root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, "", fmt.Errorf("create staged file: %w", err)
	}
	return f, name, nil
}

// finishTemp fsyncs (if configured) and closes a staged file.
func (s *store) finishTemp(f *os.File) error {
	if s.fsync {
		if err := f.Sync(); err != nil {
			_ = f.Close()
			return fmt.Errorf("fsync staged file: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close staged file: %w", err)
	}
	return nil
}

// discard removes a staged file that will not be committed.
func (s *store) discard(st staged) { _ = s.root.Remove(st.name) }

// commit renames a staged file to p, creating p's parent directories; the
// directory is fsynced at the next flush.
func (s *store) commit(st staged, p string) (indexEntry, error) {
	dir := path.Dir(p)
	if err := s.root.MkdirAll(dir, 0o755); err != nil {
		return indexEntry{}, fmt.Errorf("replace %s: %w", p, err)
	}
	if fi, err := s.root.Lstat(p); err == nil && !fi.Mode().IsRegular() {
		return indexEntry{}, fmt.Errorf("replace %s: %w", p, errNotRegular)
	}
	s.forgetDirty(p)
	if err := s.root.Rename(st.name, p); err != nil {
		return indexEntry{}, fmt.Errorf("replace %s: %w", p, err)
	}
	fi, err := s.root.Lstat(p)
	if err != nil {
		return indexEntry{}, fmt.Errorf("replace %s: %w", p, err)
	}
	c := cacheEntry{size: st.size, mtime: fi.ModTime().UnixNano(), ino: inode(fi), sum: st.sum, state: st.state}
	s.mu.Lock()
	s.cache[p] = c
	s.markDirs(dir)
	s.mu.Unlock()
	return indexEntry{Path: p, Size: uint64(c.size), Mtime: c.mtime, Sum: c.sum}, nil
}

// errOffset: an append whose offset is not the file's size.
var errOffset = errors.New("append offset is not the file's size")

// appendTo appends data to p at offset (the file's current size; -1 for
// whatever it is), creating the file and its directories if offset is 0
// or -1. The file is fsynced at the next flush.
func (s *store) appendTo(p string, offset int64, data []byte) (indexEntry, error) {
	if fi, err := s.root.Lstat(p); err == nil && !fi.Mode().IsRegular() {
		return indexEntry{}, fmt.Errorf("append to %s: %w", p, errNotRegular)
	} else if err != nil && offset <= 0 {
		if err := s.root.MkdirAll(path.Dir(p), 0o755); err != nil {
			return indexEntry{}, fmt.Errorf("append to %s: %w", p, err)
		}
		s.mu.Lock()
		s.markDirs(path.Dir(p))
		s.mu.Unlock()
	}
	f, err := s.fileForAppend(p, offset <= 0)
	if err != nil {
		return indexEntry{}, fmt.Errorf("append to %s: %w", p, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return indexEntry{}, fmt.Errorf("append to %s: %w", p, err)
	}
	size := fi.Size()
	if offset >= 0 && size != offset {
		return indexEntry{}, fmt.Errorf("append to %s at %d, size %d: %w", p, offset, size, errOffset)
	}
	h, err := s.hashState(p, f, fi)
	if err != nil {
		return indexEntry{}, err
	}
	if _, err := f.WriteAt(data, size); err != nil {
		return indexEntry{}, fmt.Errorf("append to %s: %w", p, err)
	}
	h.Write(data)
	if fi, err = f.Stat(); err != nil {
		return indexEntry{}, fmt.Errorf("append to %s: %w", p, err)
	}
	c := cacheEntry{size: fi.Size(), mtime: fi.ModTime().UnixNano(), ino: inode(fi), sum: sumOf(h), state: stateOf(h)}
	s.mu.Lock()
	s.cache[p] = c
	s.mu.Unlock()
	return indexEntry{Path: p, Size: uint64(c.size), Mtime: c.mtime, Sum: c.sum}, nil
}

// fileForAppend returns p open for writing, kept in the dirty set until
// the next flush.
func (s *store) fileForAppend(p string, create bool) (*os.File, error) {
	s.mu.Lock()
	f := s.dirty[p]
	s.mu.Unlock()
	if f != nil {
		return f, nil
	}
	flag := os.O_WRONLY
	if create {
		flag |= os.O_CREATE
	}
	f, err := s.root.OpenFile(p, flag, 0o644)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.dirty[p] = f
	s.mu.Unlock()
	return f, nil
}

// hashState returns the sha256 state after p's first fi.Size() bytes.
func (s *store) hashState(p string, f *os.File, fi fs.FileInfo) (hash.Hash, error) {
	h := sha256.New()
	s.mu.Lock()
	c, ok := s.cache[p]
	s.mu.Unlock()
	if ok && c.size == fi.Size() && c.mtime == fi.ModTime().UnixNano() && c.ino == inode(fi) && c.state != nil {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(c.state); err == nil {
			return h, nil
		}
		h.Reset()
	}
	r, err := s.root.Open(p)
	if err != nil {
		return nil, fmt.Errorf("hash %s: %w", p, err)
	}
	defer r.Close()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, fi.Size())); err != nil {
		return nil, fmt.Errorf("hash %s: %w", p, err)
	}
	return h, nil
}

// remove deletes p and the directories it leaves empty; it reports whether
// p existed.
func (s *store) remove(p string) (bool, error) {
	fi, err := s.root.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err == nil && fi.IsDir() {
		return false, fmt.Errorf("delete %s: %w", p, errNotRegular)
	}
	s.forgetDirty(p)
	if err := s.root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("delete %s: %w", p, err)
	}
	s.mu.Lock()
	delete(s.cache, p)
	s.mu.Unlock()
	dir := path.Dir(p)
	for dir != "." {
		if s.root.Remove(dir) != nil { // not empty (or gone): stop
			break
		}
		dir = path.Dir(dir)
	}
	s.mu.Lock()
	s.markDirs(dir)
	s.mu.Unlock()
	return true, nil
}

// forgetDirty closes p's open handle, fsyncing it first: p is about to be
// renamed over or removed.
func (s *store) forgetDirty(p string) {
	s.mu.Lock()
	f := s.dirty[p]
	delete(s.dirty, p)
	s.mu.Unlock()
	if f != nil {
		if s.fsync {
			_ = f.Sync()
		}
		_ = f.Close()
	}
}

// markDirs records that dir's entries changed. The caller holds mu.
func (s *store) markDirs(dir string) { s.dirs[dir] = true }

// flush fsyncs (if configured) and closes every file written since the
// last flush, then fsyncs the directories whose entries changed.
func (s *store) flush() error { return s.syncSet(s.takeDirty()) }

// takeDirty returns, and forgets, what was written since the last flush.
func (s *store) takeDirty() (map[string]*os.File, map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	files, dirs := s.dirty, s.dirs
	s.dirty, s.dirs = map[string]*os.File{}, map[string]bool{}
	return files, dirs
}

// syncSet fsyncs (if configured) and closes files, then fsyncs dirs.
func (s *store) syncSet(files map[string]*os.File, dirs map[string]bool) error {
	var errs []error
	for p, f := range files {
		if s.fsync {
			if err := f.Sync(); err != nil {
				errs = append(errs, fmt.Errorf("fsync %s: %w", p, err))
			}
		}
		_ = f.Close()
	}
	if s.fsync {
		for dir := range dirs {
			if err := s.syncDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (s *store) syncDir(dir string) error {
	d, err := s.root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

func sumOf(h hash.Hash) (s [32]byte) {
	h.Sum(s[:0])
	return s
}

func stateOf(h hash.Hash) []byte {
	b, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil
	}
	return b
}
