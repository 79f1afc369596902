package replication

import (
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// The watched directory: processes on the leader's machine may write into
// the replicated directory themselves. The leader notices their changes
// through fsnotify (a scan of the paths an event names, shortly after it)
// and a periodic scan of the whole directory (--replication-scan-interval,
// the backstop for lost events), and streams them:
//
//   - a file that grew, keeping its inode, is sent as an append of the new
//     bytes (its hash is extended from the cached state, reading only the
//     new bytes); a writer that rewrites bytes in place AND grows the file
//     is therefore not supported;
//   - any other change (new file, other size or mtime, new inode) is sent
//     as a replace of the whole content, or, beyond one frame (16 MiB),
//     makes the followers resync by checksum, which moves that file;
//   - a file that disappeared is sent as a delete.
//
// A change is taken only if the file's size and mtime did not change while
// it was read; otherwise the next scan takes it. Nothing of this is
// acknowledged to the writer; followers get a copy eventually (about one
// debounce or scan interval, plus the stream), and may get a state the
// writer was in the middle of producing (a half-written file), which a
// later scan corrects. Writers that want followers to never see a partial
// file should write a temporary file and rename it into place.

// debounce is how long the watcher gathers events before it scans.
const debounce = 20 * time.Millisecond

// changeKind is what examine found.
type changeKind int

const (
	changeGrow  changeKind = iota + 1 // data: the bytes after the old size
	changeWhole                       // data: the whole content
	changeLarge                       // too large for one frame: resync
)

// errChangedWhileRead: the file changed while examine read it.
var errChangedWhileRead = errors.New("file changed while it was read")

// examine reads a file changed behind the module's back: if it grew from
// old (the version the followers have), only the new bytes; else the whole
// content (if it fits a frame). It returns its new entry, and the bytes
// read, held once by the caller (nil for changeLarge).
func (s *store) examine(p string, old indexEntry, hadOld bool) (_ indexEntry, _ changeKind, data *sharedData, err error) {
	defer func() {
		if err != nil {
			data.release()
			data = nil
		}
	}()
	f, fi, err := s.openRegular(p)
	if err != nil {
		return indexEntry{}, 0, nil, err
	}
	defer f.Close()
	size, mtime, ino := fi.Size(), fi.ModTime().UnixNano(), inode(fi)
	s.mu.Lock()
	c, cached := s.cache[p]
	s.mu.Unlock()
	h := sha256.New()
	var kind changeKind
	from := int64(0)
	if hadOld && cached && c.ino == ino && c.size == int64(old.Size) && c.sum == old.Sum && size > c.size && c.state != nil &&
		h.(encoding.BinaryUnmarshaler).UnmarshalBinary(c.state) == nil {
		kind, from = changeGrow, c.size
	} else {
		h.Reset()
		kind = changeWhole
	}
	if size-from > maxData {
		kind = changeLarge
		if _, err := io.Copy(h, io.NewSectionReader(f, from, size-from)); err != nil {
			return indexEntry{}, 0, nil, fmt.Errorf("hash %s: %w", p, err)
		}
	} else {
		data = getShared(int(size - from))
		if _, err := f.ReadAt(data.buf, from); err != nil && !errors.Is(err, io.EOF) {
			return indexEntry{}, 0, data, fmt.Errorf("read %s: %w", p, err)
		}
		h.Write(data.buf)
	}
	if fi2, err := f.Stat(); err != nil || fi2.Size() != size || fi2.ModTime().UnixNano() != mtime {
		return indexEntry{}, 0, data, fmt.Errorf("%s: %w", p, errChangedWhileRead)
	}
	e := cacheEntry{size: size, mtime: mtime, ino: ino, sum: sumOf(h), state: stateOf(h)}
	s.mu.Lock()
	s.cache[p] = e
	s.mu.Unlock()
	return indexEntry{Path: p, Size: uint64(size), Mtime: mtime, Sum: e.sum}, kind, data, nil
}

// diskStat is what a scan compares with the index.
type diskStat struct{ size, mtime int64 }

// walkStats lists the regular files under dir ("." for all) with their
// size and mtime, without hashing.
func (s *store) walkStats(dir string) (map[string]diskStat, []string, error) {
	out := map[string]diskStat{}
	var dirs []string
	err := fs.WalkDir(s.root.FS(), dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if p == reservedDir {
			return fs.SkipDir
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		if !d.Type().IsRegular() || !validPath(p) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // gone
		}
		out[p] = diskStat{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("scan %s: %w", s.dir, err)
	}
	return out, dirs, nil
}

// watch runs for the leadership's term: it rescans the paths fsnotify
// reports, after a short debounce, and the whole directory every scan
// interval.
func (l *leadership) watch() {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		l.m.logger.Warn("watch the replicated directory: only periodic scans will see outside writes", "err", err)
	}
	watched := map[string]bool{}
	var events chan fsnotify.Event
	var errs chan error
	if w != nil {
		defer w.Close()
		events, errs = w.Events, w.Errors
	}
	addWatches := func(dirs []string) {
		if w == nil {
			return
		}
		for _, d := range dirs {
			if !watched[d] {
				if err := w.Add(filepath.Join(l.m.cfg.Dir, filepath.FromSlash(d))); err == nil {
					watched[d] = true
				}
			}
		}
	}
	l.rescan(nil, addWatches)
	scan := time.NewTicker(l.m.cfg.ScanInterval)
	defer scan.Stop()
	var fire <-chan time.Time
	pending := map[string]bool{}
	for {
		select {
		case <-l.ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if rel, ok := l.relPath(ev.Name); ok {
				pending[rel] = true
				if fire == nil {
					fire = time.After(debounce)
				}
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			l.m.logger.Debug("directory watch", "err", err) // an overflow: the periodic scan catches up
		case <-fire:
			fire = nil
			paths := make([]string, 0, len(pending))
			for p := range pending {
				paths = append(paths, p)
			}
			clear(pending)
			l.rescan(paths, addWatches)
		case <-scan.C:
			l.rescan(nil, addWatches)
			for d := range watched { // forget removed directories
				if fi, err := l.m.store.root.Lstat(d); err != nil || !fi.IsDir() {
					delete(watched, d)
				}
			}
		}
	}
}

// relPath turns an event's absolute name into a path relative to the
// directory; false for the directory itself and the reserved directory.
func (l *leadership) relPath(name string) (string, bool) {
	rel, err := filepath.Rel(l.m.cfg.Dir, name)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return "", false
	}
	rel = filepath.ToSlash(rel)
	if rel == reservedDir || strings.HasPrefix(rel, reservedDir+"/") {
		return "", false
	}
	return rel, true
}

// rescan compares the directory (all of it when paths is nil, else the
// given paths and what is under them) with the index, and streams what
// changed. It takes the write lock only to compare an index entry and
// publish, never while it reads or hashes.
func (l *leadership) rescan(paths []string, addWatches func([]string)) {
	disk := map[string]diskStat{}
	var scope []string // index prefixes the scan covers; nil: everything
	if paths == nil {
		d, dirs, err := l.m.store.walkStats(".")
		if err != nil {
			l.m.logger.Warn("scan the replicated directory", "err", err)
			return
		}
		disk = d
		addWatches(dirs)
	} else {
		for _, p := range paths {
			if !validPath(p) {
				continue
			}
			scope = append(scope, p)
			d, dirs, err := l.m.store.walkStats(p)
			if err != nil {
				continue
			}
			for k, v := range d {
				disk[k] = v
			}
			addWatches(dirs)
		}
	}
	inScope := func(p string) bool {
		if scope == nil {
			return true
		}
		for _, s := range scope {
			if p == s || strings.HasPrefix(p, s+"/") {
				return true
			}
		}
		return false
	}
	l.writeMu.Lock()
	if l.closed {
		l.writeMu.Unlock()
		return
	}
	var gone []indexEntry
	known := make(map[string]indexEntry, len(disk))
	for p, e := range l.index {
		if _, ok := disk[p]; ok {
			known[p] = e
		} else if inScope(p) {
			gone = append(gone, e)
		}
	}
	l.writeMu.Unlock()
	for _, e := range gone {
		l.externalDelete(e)
	}
	// In path order: files of one directory go out together, and a tree
	// arrives in the order a listing shows it.
	for _, p := range slices.Sorted(maps.Keys(disk)) {
		d := disk[p]
		old, had := known[p]
		if had && int64(old.Size) == d.size && old.Mtime == d.mtime {
			continue
		}
		if !l.awaitWindow() {
			return
		}
		ne, kind, data, err := l.m.store.examine(p, old, had)
		if err != nil {
			l.m.logger.Debug("examine a changed file", "path", p, "err", err)
			continue
		}
		l.externalChange(old, had, ne, kind, data)
	}
}

// watchWindow bounds how far the watcher runs ahead of the followers: it
// reads the next changed file only once every streaming follower that is
// making progress has acknowledged all but watchWindow bytes of the
// stream. Without it, a tree dropped into the directory was read into
// memory as fast as the disk gave it, far ahead of what followers could
// write, until their queues overflowed and they resynced from scratch.
const watchWindow = 64 << 20

// awaitWindow waits until the watcher may publish more (see watchWindow);
// false if the term ended. A follower that acknowledged nothing for the
// ack timeout is not waited for: it leaves the in-sync set, and its queue
// bound ends its stream.
func (l *leadership) awaitWindow() bool {
	var timer *time.Timer
	for {
		now := time.Now()
		timeout := l.m.cfg.AckTimeout
		l.mu.Lock()
		wait := false
		for _, p := range l.peers {
			last := p.ackedAt
			if last.Before(p.connectedAt) {
				last = p.connectedAt
			}
			if p.streaming && l.ackPos-p.acked > watchWindow && now.Sub(last) < timeout {
				wait = true
				break
			}
		}
		ch, closed := l.changed, l.closed
		l.mu.Unlock()
		if closed {
			return false
		}
		if !wait {
			return true
		}
		if timer == nil {
			timer = time.NewTimer(timeout)
			defer timer.Stop()
		}
		select {
		case <-ch:
		case <-timer.C:
			return true
		case <-l.ctx.Done():
			return false
		}
	}
}

// externalDelete streams the deletion of a file that vanished, if the
// index still has the version that was scanned.
func (l *leadership) externalDelete(old indexEntry) {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if cur, ok := l.index[old.Path]; l.closed || !ok || cur != old {
		return
	}
	if _, err := l.m.store.root.Lstat(old.Path); !errors.Is(err, fs.ErrNotExist) {
		return
	}
	delete(l.index, old.Path)
	l.m.store.forget(old.Path)
	l.pos += actionSize(old.Path, 0)
	l.publish(action{typ: frameDelete, path: old.Path, pos: l.pos})
	l.m.watched.Add(1)
}

// externalChange streams a change examine read, if the index still has
// the version it was based on and the file is still as examine read it.
// It releases the caller's hold on the content.
func (l *leadership) externalChange(old indexEntry, had bool, ne indexEntry, kind changeKind, shared *sharedData) {
	defer shared.release() // after publish: the queues hold it now
	var data []byte
	if shared != nil {
		data = shared.buf
	}
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	cur, ok := l.index[ne.Path]
	if l.closed || ok != had || (ok && cur != old) {
		return // an API write got there first; the next scan looks again
	}
	fi, err := l.m.store.root.Lstat(ne.Path)
	if err != nil || !fi.Mode().IsRegular() || uint64(fi.Size()) != ne.Size || fi.ModTime().UnixNano() != ne.Mtime {
		return
	}
	l.index[ne.Path] = ne
	l.m.watched.Add(1)
	switch kind {
	case changeGrow:
		l.pos += actionSize(ne.Path, len(data))
		l.publish(action{typ: frameAppend, path: ne.Path, offset: old.Size, data: data, pos: l.pos, shared: shared})
		l.m.watchedAppends.Add(1)
	case changeWhole:
		l.pos += actionSize(ne.Path, len(data))
		l.publish(action{typ: frameReplace, path: ne.Path, data: data, sum: ne.Sum, pos: l.pos, shared: shared})
	case changeLarge:
		l.pos += actionSize(ne.Path, 0)
		l.resyncFollowers()
		l.mu.Lock()
		l.ackPos = l.pos
		l.broadcast()
		l.mu.Unlock()
	}
}

// resyncFollowers ends every follower's stream: each reconnects and
// catches up by checksum. The caller holds writeMu.
func (l *leadership) resyncFollowers() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.peers {
		p.qmu.Lock()
		releaseActions(p.queue)
		p.overflow, p.queue = true, nil
		p.qmu.Unlock()
		select {
		case p.signal <- struct{}{}:
		default:
		}
	}
}

// forget drops p's cached hash.
func (s *store) forget(p string) {
	s.mu.Lock()
	delete(s.cache, p)
	s.mu.Unlock()
}
