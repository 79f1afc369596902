package logstream

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"shoal/internal/wire"
	"shoal/logstream/segment"
	"shoal/modules"
)

// A snapshot references the logs' segment files instead of copying their
// entries (docs/log.md, "Snapshots"). SnapshotAt hard-links every store's
// segments into a snapshot directory named after the Raft index; Persist
// makes them durable and writes, every integer a minimal uvarint and every
// string length-prefixed:
//
//	"SLG2"
//	len(origin) origin len(snapshot) snapshot
//	logCount × ( len(name) name created first next set maxEntries maxBytes maxAge
//	             hasManifest [len(manifest) manifest] )
//	dedupCount × ( len(name) name len(id) id index time(zig-zag) )
//
// origin is the node that took the snapshot and snapshot its directory
// there: a node that restores the snapshot without the files (a follower
// sent it by the leader) fetches them from origin, or from any node that
// installed them. Logs are in name order and dedup records in the order
// they were remembered. The bytes do not grow with retained entries: a few
// dozen per log and per segment.
const snapshotMagic = "SLG2"

// maxSnapshotSection bounds the module's section of a snapshot (dedup
// records are the bulk of it).
const maxSnapshotSection = 1 << 30

// logSnap is one log in a snapshot.
type logSnap struct {
	name           string
	created        uint64
	first, next    uint64
	lim            limits
	hasManifest    bool
	manifest       segment.Manifest
	manifestSource string // the directory the manifest's files are linked in
}

// snapshot is a frozen view of the state.
type snapshot struct {
	origin, name string
	dir          string // this node's snapshot directory, "" if it made none
	logs         []logSnap
	dedup        []dedupRec
}

// SnapshotAt implements modules.IndexedSnapshotter. It runs on the FSM
// goroutine and costs a link per segment file, whatever the entries.
func (l *Log) SnapshotAt(index uint64) (modules.Snapshot, error) {
	l.init()
	st := l.st
	s := &snapshot{origin: l.nodeName(), name: snapshotName(index, time.Now().UnixNano())}
	names := make([]string, 0, len(st.logs))
	for name := range st.logs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		ls := st.logs[name]
		ps := logSnap{name: ls.name, created: ls.created, first: ls.first, next: ls.next, lim: ls.lim}
		if ls.store != nil {
			if s.dir == "" {
				s.dir = filepath.Join(l.disk.snapshots, s.name)
				// MkdirAll: an operator may have removed the directory of
				// snapshots; they are only links.
				if err := os.MkdirAll(s.dir, 0o750); err != nil {
					return nil, fmt.Errorf("log snapshot: %w", err)
				}
			}
			ps.manifestSource = filepath.Join(s.dir, dirName(ls.name, ls.created))
			m, err := ls.store.Snapshot(ps.manifestSource)
			if err != nil {
				_ = os.RemoveAll(s.dir)
				return nil, fmt.Errorf("log snapshot of %s: %w", ls.name, err)
			}
			ps.hasManifest, ps.manifest = true, m
		}
		s.logs = append(s.logs, ps)
	}
	n := len(st.dedupQ)
	s.dedup = st.dedupQ[:n:n]
	return s, nil
}

// Snapshot is SnapshotAt for a host that does not pass the index.
func (l *Log) Snapshot() (modules.Snapshot, error) { return l.SnapshotAt(l.host.Raft().AppliedIndex()) }

// Persist makes the snapshot's files durable (the rule of
// docs/log-storage.md: before Raft may drop its log up to the snapshot,
// every store must be durable up to it), then writes the snapshot to w.
// It runs beside ApplyCommand and reads only what SnapshotAt captured; the
// links keep the files even if a log is trimmed or deleted meanwhile.
func (s *snapshot) Persist(w io.Writer) error {
	if s.dir != "" {
		for _, ls := range s.logs {
			if !ls.hasManifest {
				continue
			}
			// Sealed segments were fsynced when sealed; the active one is
			// the same inode as the store's, so this flushes its tail.
			if segs := ls.manifest.Segments; len(segs) > 0 {
				if err := syncFile(filepath.Join(ls.manifestSource, segs[len(segs)-1].Name)); err != nil {
					return fmt.Errorf("persist log snapshot: %w", err)
				}
			}
			if err := syncDir(ls.manifestSource); err != nil {
				return fmt.Errorf("persist log snapshot: %w", err)
			}
		}
		if err := syncDir(s.dir); err != nil {
			return fmt.Errorf("persist log snapshot: %w", err)
		}
		if err := syncDir(filepath.Dir(s.dir)); err != nil {
			return fmt.Errorf("persist log snapshot: %w", err)
		}
	}
	if _, err := w.Write(s.encode()); err != nil {
		return fmt.Errorf("persist log snapshot: %w", err)
	}
	if s.dir != "" {
		if err := os.WriteFile(filepath.Join(s.dir, persistedMark), nil, 0o600); err != nil {
			return fmt.Errorf("persist log snapshot: %w", err)
		}
		if err := (&disk{snapshots: filepath.Dir(s.dir)}).pruneSnapshots(); err != nil {
			return fmt.Errorf("persist log snapshot: %w", err)
		}
	}
	return nil
}

// Release does nothing: snapshot directories are pruned by count when
// the next snapshot is persisted (Raft may still send this one to a
// follower after releasing it).
func (s *snapshot) Release() {}

func (s *snapshot) encode() []byte {
	b := append([]byte(nil), snapshotMagic...)
	b = wire.AppendBytes(b, s.origin)
	b = wire.AppendBytes(b, s.name)
	b = wire.AppendUvarint(b, uint64(len(s.logs)))
	for _, ls := range s.logs {
		b = wire.AppendBytes(b, ls.name)
		b = wire.AppendUvarint(b, ls.created)
		b = wire.AppendUvarint(b, ls.first)
		b = wire.AppendUvarint(b, ls.next)
		b = append(b, ls.lim.set)
		b = wire.AppendUvarint(b, ls.lim.maxEntries)
		b = wire.AppendUvarint(b, ls.lim.maxBytes)
		b = wire.AppendUvarint(b, ls.lim.maxAge)
		b = wire.AppendBool(b, ls.hasManifest)
		if ls.hasManifest {
			b = wire.AppendBytes(b, segment.AppendManifest(nil, ls.manifest))
		}
	}
	b = wire.AppendUvarint(b, uint64(len(s.dedup)))
	for _, rec := range s.dedup {
		b = wire.AppendBytes(b, rec.key.log)
		b = wire.AppendBytes(b, rec.key.id)
		b = wire.AppendUvarint(b, rec.index)
		b = wire.AppendVarint(b, rec.time)
	}
	return b
}

// decodeSnapshot decodes what encode wrote (after the magic). It never
// panics and checks every value a state could not hold.
func decodeSnapshot(b []byte) (*snapshot, error) {
	d := wire.NewDecoder(b)
	s := &snapshot{}
	s.origin = d.String("origin", 1024)
	s.name = d.String("snapshot name", 64)
	if d.Err() == nil && s.name != "" && !validSnapshotName(s.name) {
		d.Failf("snapshot name", "%q", s.name)
	}
	count := d.Count("log count", 12)
	nexts := map[string]uint64{}
	for i := 0; i < count && d.Err() == nil; i++ {
		var ls logSnap
		ls.name = d.String("log name", maxNameLen)
		ls.created = d.Uvarint("created index")
		ls.first = d.Uvarint("first index")
		ls.next = d.Uvarint("next index")
		ls.lim.set = d.Byte("limits set")
		ls.lim.maxEntries = d.Uvarint("max entries")
		ls.lim.maxBytes = d.Uvarint("max bytes")
		ls.lim.maxAge = d.Uvarint("max age")
		ls.hasManifest = d.Bool("has manifest")
		if ls.hasManifest {
			raw := d.Bytes("manifest", d.Len())
			if d.Err() == nil {
				m, err := segment.DecodeManifest(raw)
				if err != nil {
					d.Failf("manifest", "log %q: %v", ls.name, err)
				}
				ls.manifest = m
			}
		}
		if d.Err() != nil {
			break
		}
		switch {
		case checkLimits(ls.name, ls.lim) != nil:
			d.Failf("log", "%v", checkLimits(ls.name, ls.lim))
		case i > 0 && ls.name <= s.logs[i-1].name:
			d.Failf("log name", "%q out of order", ls.name)
		case ls.first == 0 || ls.first > ls.next || ls.next > maxIndex:
			d.Failf("log", "%q with first %d and next %d", ls.name, ls.first, ls.next)
		case ls.hasManifest && s.name == "":
			d.Failf("log", "%q has a manifest but the snapshot has no directory", ls.name)
		}
		s.logs = append(s.logs, ls)
		nexts[ls.name] = ls.next
	}
	dedupCount := d.Count("dedup count", 4)
	for i := 0; i < dedupCount && d.Err() == nil; i++ {
		name := d.String("dedup log name", maxNameLen)
		id := d.String("dedup id", maxIDLen)
		index := d.Uvarint("dedup index")
		t := d.Varint("dedup time")
		if d.Err() != nil {
			break
		}
		next, ok := nexts[name]
		if !ok || id == "" || index == 0 || index >= next {
			d.Failf("dedup record", "%q of log %q at index %d", id, name, index)
			break
		}
		s.dedup = append(s.dedup, dedupRec{key: dedupKey{log: name, id: id}, index: index, time: t})
	}
	if err := d.End(); err != nil {
		return nil, fmt.Errorf("restore log snapshot: %w: %w", ErrMalformedSnapshot, err)
	}
	return s, nil
}

// Restore is RestoreAt for a host that does not pass the index.
func (l *Log) Restore(r io.Reader) error { return l.RestoreAt(r, 0) }

// RestoreAt implements modules.IndexedSnapshotter: it replaces the whole
// state with the snapshot of the Raft log at index. A store on disk that
// holds at least what the snapshot says is kept as it is (a restart: Raft
// replays the commands after index, and those the store holds are not
// written again); a store that is missing or behind is installed from
// the snapshot's files on another node; a directory the snapshot does not
// know is removed, unless the log it holds was created after index. An
// empty reader is the empty state. On error the state is unchanged.
func (l *Log) RestoreAt(r io.Reader, index uint64) error {
	l.init()
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(len(snapshotMagic))
	var s *snapshot
	switch {
	case errors.Is(err, io.EOF) && len(magic) == 0:
		s = &snapshot{}
	case string(magic) == snapshotMagicV1:
		v1, err := readSnapshotV1(br)
		if err != nil {
			return err
		}
		return l.convertV1(v1, index)
	case string(magic) == portableMagic:
		return l.restorePortable(br, index)
	case string(magic) == snapshotMagic:
		raw, err := io.ReadAll(io.LimitReader(br, maxSnapshotSection+1))
		if err != nil {
			return fmt.Errorf("restore log snapshot: %w", err)
		}
		if len(raw) > maxSnapshotSection {
			return fmt.Errorf("restore log snapshot: over %d bytes: %w", maxSnapshotSection, ErrMalformedSnapshot)
		}
		if s, err = decodeSnapshot(raw[len(snapshotMagic):]); err != nil {
			return err
		}
	default:
		return fmt.Errorf("restore log snapshot: bad magic %q: %w", magic, ErrMalformedSnapshot)
	}
	return l.adopt(s, index)
}

// adopt makes s the state, reconciling it with the stores open and on
// disk (see RestoreAt).
func (l *Log) adopt(s *snapshot, index uint64) error {
	open := map[string]*segment.Store{} // by directory name
	for _, ls := range l.st.logs {
		if ls.store != nil {
			open[dirName(ls.name, ls.created)] = ls.store
		}
	}
	st := newState()
	var fresh []*segment.Store // opened or installed here: closed on error
	fail := func(err error) error {
		for _, store := range fresh {
			_ = store.Close()
		}
		return err
	}
	for _, ps := range s.logs {
		dir := dirName(ps.name, ps.created)
		store := open[dir]
		delete(open, dir)
		if store == nil && l.disk.exists(ps.name, ps.created) {
			var err error
			if store, err = l.disk.open(ps.name, ps.created); err != nil {
				l.logger.Warn("a log's files on disk cannot be opened; fetching them again", "log", ps.name, "err", err)
				if err := l.disk.removeLog(dir); err != nil {
					return fail(err)
				}
				store = nil
			} else {
				fresh = append(fresh, store)
			}
		}
		if store != nil && ps.hasManifest && store.Applied() < ps.manifest.Applied {
			l.logger.Warn("a log's files are behind the snapshot; fetching them again", "log", ps.name,
				"applied", store.Applied(), "snapshot", ps.manifest.Applied)
			if err := store.Delete(); err != nil {
				return fail(err)
			}
			fresh = slices.DeleteFunc(fresh, func(x *segment.Store) bool { return x == store })
			store = nil
		}
		if store == nil && ps.hasManifest && !l.disk.deleted(ps.name, ps.created) {
			var err error
			if store, err = l.install(s, ps); err != nil {
				return fail(err)
			}
			fresh = append(fresh, store)
		}
		// Else a log this node deleted after the snapshot: it has no
		// store until the replay deletes it again.
		ls := &logState{name: ps.name, created: ps.created, first: ps.first, next: ps.next, lim: ps.lim, store: store, notify: make(chan struct{})}
		st.logs[ls.name] = ls
		st.entries += ls.entries()
	}
	for _, rec := range s.dedup {
		rec.key.log = st.logs[rec.key.log].name
		st.dedupQ = append(st.dedupQ, rec)
		st.dedup[rec.key] = rec
	}
	// What the snapshot does not know goes, but for logs created after it
	// (the replay opens them again).
	for dir, store := range open {
		if _, created, _ := parseDirName(dir); created > index && index > 0 {
			_ = store.Close()
		} else if err := store.Delete(); err != nil {
			return fail(err)
		}
	}
	dirs, gone, err := l.disk.entries()
	if err != nil {
		return fail(err)
	}
	for _, dir := range dirs {
		name, created, _ := parseDirName(dir)
		if ls := st.logs[name]; ls != nil && ls.created == created {
			continue
		}
		if created > index && index > 0 {
			continue
		}
		if err := l.disk.removeLog(dir); err != nil {
			return fail(err)
		}
	}
	for _, mark := range gone {
		name, created, _ := parseDirName(strings.TrimSuffix(mark, goneSuffix))
		if ls := st.logs[name]; ls == nil || ls.created != created {
			_ = os.Remove(filepath.Join(l.disk.logs, mark))
		}
	}
	l.swap(st)
	return nil
}

// swap replaces the state and wakes every stream so it looks again.
func (l *Log) swap(st *state) {
	l.mu.Lock()
	old := l.st
	l.st = st
	old.wakeAll()
	logs, entries := len(st.logs), st.entries
	l.mu.Unlock()
	l.setGauges(logs, entries)
}

// convertV1 turns a snapshot of a release that kept entries in memory
// into stores: each log is written with the snapshot's index as its
// applied index (its trim, if any, just below), so the replay that follows
// writes exactly the commands after it. A store a previous start already
// converted is kept.
func (l *Log) convertV1(v1 *v1State, index uint64) error {
	s := &snapshot{}
	for _, lg := range v1.logs {
		ps := logSnap{name: lg.name, first: lg.first, next: lg.first + uint64(len(lg.entries))}
		s.logs = append(s.logs, ps)
		if l.disk.exists(lg.name, 0) {
			store, err := l.disk.open(lg.name, 0)
			if err != nil {
				return fmt.Errorf("convert log %s: %w", lg.name, err)
			}
			done := store.Applied() >= index
			if err := store.Close(); err != nil {
				return err
			}
			if done {
				continue
			}
			if err := l.disk.removeLog(dirName(lg.name, 0)); err != nil {
				return err
			}
		}
		if err := l.writeV1(lg, index); err != nil {
			return fmt.Errorf("convert log %s of an older release: %w", lg.name, err)
		}
	}
	s.dedup = v1.dedup
	l.logger.Info("converted a log snapshot of an older release into log files", "logs", len(v1.logs), "index", index)
	return l.adopt(s, index)
}

func (l *Log) writeV1(lg v1Log, index uint64) error {
	if index < 2 && lg.first > 1 {
		return fmt.Errorf("a snapshot at raft index %d cannot have trimmed log entries: %w", index, ErrMalformedSnapshot)
	}
	store, err := l.disk.open(lg.name, 0)
	if err != nil {
		return err
	}
	if lg.first > 1 {
		if err := store.Trim(index-1, lg.first); err != nil {
			_ = store.Close()
			return err
		}
	}
	batch := make([]segment.Entry, len(lg.entries))
	for i, e := range lg.entries {
		batch[i] = segment.Entry{ID: e.id, Data: e.data, Time: e.time}
	}
	if _, err := store.Append(index, batch); err != nil {
		_ = store.Close()
		return err
	}
	if err := store.Sync(); err != nil {
		_ = store.Close()
		return err
	}
	return store.Close()
}

// install fetches a log's files from a node that holds the snapshot: the
// one that took it first, then every other server (any that installed it
// keeps the same snapshot directory).
func (l *Log) install(s *snapshot, ps logSnap) (*segment.Store, error) {
	if l.host == nil || l.host.Cluster() == nil {
		return nil, fmt.Errorf("log %s: its files are not on this node and there is no cluster to fetch them from: %w", ps.name, ErrSnapshotFiles)
	}
	nodes := []string{s.origin}
	for _, srv := range l.host.Cluster().Servers() {
		if !srv.Local && srv.Name != s.origin {
			nodes = append(nodes, srv.Name)
		}
	}
	dir := dirName(ps.name, ps.created)
	var errs []error
	for _, node := range nodes {
		if node == l.nodeName() {
			continue
		}
		store, err := segment.Install(l.disk.path(ps.name, ps.created), ps.manifest, l.disk.cfg, func(ref segment.SegmentRef) (io.ReadCloser, error) {
			return l.fetchSegment(node, s.name, dir, ref)
		})
		if err == nil {
			l.m.installs.Inc()
			l.logger.Info("installed a log's files from a peer's snapshot", "log", ps.name, "from", node,
				"segments", len(ps.manifest.Segments), "first", ps.manifest.First, "next", ps.manifest.Next)
			// Link them into a snapshot directory of the same name, so this
			// node can serve the snapshot to others in turn.
			if err := l.relink(s.name, dir, store); err != nil {
				l.logger.Warn("cannot keep an installed log snapshot for other nodes", "log", ps.name, "err", err)
			}
			return store, nil
		}
		errs = append(errs, fmt.Errorf("from %s: %w", node, err))
	}
	return nil, fmt.Errorf("install log %s from snapshot %s: %w: %w", ps.name, s.name, ErrSnapshotFiles, errors.Join(errs...))
}

// relink links a freshly installed store's files into the snapshot
// directory name.
func (l *Log) relink(name, dir string, store *segment.Store) error {
	snapDir := filepath.Join(l.disk.snapshots, name)
	if err := os.MkdirAll(snapDir, 0o750); err != nil {
		return err
	}
	target := filepath.Join(snapDir, dir)
	if _, err := os.Stat(target); err == nil {
		return nil
	}
	if _, err := store.Snapshot(target); err != nil {
		return err
	}
	if err := segment.SyncSnapshot(target); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(snapDir, persistedMark), nil, 0o600)
}

func (l *Log) nodeName() string {
	if l.host == nil {
		return ""
	}
	return l.host.NodeName()
}
