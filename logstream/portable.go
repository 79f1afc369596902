package logstream

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"shoal/internal/wire"
	"shoal/logstream/segment"
	"shoal/modules"
)

// A backup holds the log module's state in its portable form (a Raft
// snapshot only refers to segment files on the node that took it), every
// integer a varint (times signed) and every string length-prefixed:
//
//	"SLG3"
//	logCount × ( len(name) name first next set maxEntries maxBytes maxAge
//	             count  count × ( len(id) id time len(data) data ) )
//	dedupCount × ( len(name) name len(id) id index time )
//
// with count = next − first. RestoreAt writes each log into a new store
// whose changes carry the index the backup is restored at (logs are
// created anew there).
const portableMagic = "SLG3"

// importBatch is how many entries a restore writes at a time.
const importBatch = 4096

// PortableSnapshot implements modules.PortableSnapshotter: it reads a
// section Persist wrote on this node and writes it with every entry,
// read from the snapshot's own segment files.
func (l *Log) PortableSnapshot(section io.Reader, w io.Writer) error {
	raw, err := io.ReadAll(io.LimitReader(section, maxSnapshotSection+1))
	if err != nil {
		return err
	}
	s := &snapshot{}
	if len(raw) > 0 {
		if string(raw[:min(len(raw), len(snapshotMagic))]) != snapshotMagic {
			return fmt.Errorf("portable log snapshot: not a snapshot of this release: %w", ErrMalformedSnapshot)
		}
		if s, err = decodeSnapshot(raw[len(snapshotMagic):]); err != nil {
			return err
		}
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString(portableMagic)
	var buf []byte
	kept := map[string]bool{}
	var logs []logSnap
	for _, ls := range s.logs {
		if ls.hasManifest { // a log without files was deleted after the snapshot
			logs = append(logs, ls)
			kept[ls.name] = true
		}
	}
	bw.Write(binary.AppendUvarint(nil, uint64(len(logs))))
	for _, ls := range logs {
		buf = wire.AppendBytes(buf[:0], ls.name)
		buf = binary.AppendUvarint(buf, ls.manifest.First)
		buf = binary.AppendUvarint(buf, ls.manifest.Next)
		buf = append(buf, ls.lim.set)
		buf = binary.AppendUvarint(buf, ls.lim.maxEntries)
		buf = binary.AppendUvarint(buf, ls.lim.maxBytes)
		buf = binary.AppendUvarint(buf, ls.lim.maxAge)
		buf = binary.AppendUvarint(buf, ls.manifest.Next-ls.manifest.First)
		bw.Write(buf)
		if err := l.copyEntries(s.name, ls, bw); err != nil {
			return fmt.Errorf("portable log snapshot of %s: %w", ls.name, err)
		}
	}
	var dedup []dedupRec
	for _, rec := range s.dedup {
		if kept[rec.key.log] {
			dedup = append(dedup, rec)
		}
	}
	bw.Write(binary.AppendUvarint(nil, uint64(len(dedup))))
	for _, rec := range dedup {
		buf = wire.AppendBytes(buf[:0], rec.key.log)
		buf = wire.AppendBytes(buf, rec.key.id)
		buf = binary.AppendUvarint(buf, rec.index)
		buf = binary.AppendVarint(buf, rec.time)
		bw.Write(buf)
	}
	return bw.Flush()
}

// copyEntries writes the entries of a log's snapshot, read from a copy
// of its linked files (opening the links themselves could cut a torn tail
// shared with the live store).
func (l *Log) copyEntries(snap string, ls logSnap, w *bufio.Writer) error {
	src := filepath.Join(l.disk.snapshots, snap, dirName(ls.name, ls.created))
	tmp, err := os.MkdirTemp(filepath.Dir(l.disk.logs), "backup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cfg := l.disk.cfg
	cfg.Cache, cfg.Metrics = nil, nil
	store, err := segment.Install(filepath.Join(tmp, "log"), ls.manifest, cfg, func(ref segment.SegmentRef) (io.ReadCloser, error) {
		return os.Open(filepath.Join(src, ref.Name))
	})
	if err != nil {
		return err
	}
	defer store.Close()
	var buf []byte
	for from := ls.manifest.First; from < ls.manifest.Next; {
		entries, err := store.Read(from, importBatch, 4<<20)
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			return fmt.Errorf("no entry at %d of [%d, %d): %w", from, ls.manifest.First, ls.manifest.Next, segment.ErrCorrupt)
		}
		for _, e := range entries {
			buf = wire.AppendBytes(buf[:0], e.ID)
			buf = binary.AppendVarint(buf, e.Time)
			buf = binary.AppendUvarint(buf, uint64(len(e.Data)))
			w.Write(buf)
			w.Write(e.Data)
		}
		from += uint64(len(entries))
	}
	return nil
}

// restorePortable restores a portable section (after its magic) at Raft
// index index: each log is written anew, created at index, in a directory
// renamed into place once complete; a log already written there by an
// earlier restore of the same snapshot (a restart) is kept.
func (l *Log) restorePortable(br *bufio.Reader, index uint64) error {
	if index < 2 {
		return fmt.Errorf("restore a log backup at raft index %d: %w", index, ErrMalformedSnapshot)
	}
	d := snapReader{r: br}
	if m := d.bytes(len(portableMagic), len(portableMagic), "magic"); d.err == nil && string(m) != portableMagic {
		d.fail("bad magic %q", m)
	}
	s := &snapshot{}
	count := d.uvarint("log count")
	nexts := map[string]uint64{}
	// On failure, the directories this call wrote go: a directory named
	// for a later Raft index would otherwise be taken for that command's
	// log (see adopt).
	var written []string
	ok := false
	defer func() {
		if !ok {
			for _, dir := range written {
				_ = os.RemoveAll(dir)
			}
		}
	}()
	for i := uint64(0); i < count && d.err == nil; i++ {
		ls := logSnap{created: index}
		ls.name = string(d.lenBytes(maxNameLen, "log name"))
		ls.first = d.uvarint("first index")
		ls.next = d.uvarint("next index")
		ls.lim.set = d.byte("limits set")
		ls.lim.maxEntries = d.uvarint("max entries")
		ls.lim.maxBytes = d.uvarint("max bytes")
		ls.lim.maxAge = d.uvarint("max age")
		n := d.uvarint("entry count")
		switch {
		case d.err != nil:
		case checkLimits(ls.name, ls.lim) != nil:
			d.fail("log %q: %v", ls.name, checkLimits(ls.name, ls.lim))
		case i > 0 && ls.name <= s.logs[i-1].name:
			d.fail("log %q out of order", ls.name)
		case ls.first == 0 || ls.first > ls.next || ls.next > maxIndex || n != ls.next-ls.first:
			d.fail("log %q with [%d, %d) and %d entries", ls.name, ls.first, ls.next, n)
		}
		if d.err != nil {
			break
		}
		fresh, err := l.importLog(&d, ls, index)
		if err != nil {
			return err
		}
		if fresh {
			written = append(written, l.disk.path(ls.name, index))
		}
		s.logs = append(s.logs, ls)
		nexts[ls.name] = ls.next
	}
	dedupCount := d.uvarint("dedup count")
	for i := uint64(0); i < dedupCount && d.err == nil; i++ {
		name := string(d.lenBytes(maxNameLen, "dedup log name"))
		id := string(d.lenBytes(maxIDLen, "dedup id"))
		idx := d.uvarint("dedup index")
		t := d.varint("dedup time")
		if next, ok := nexts[name]; d.err == nil && (!ok || id == "" || idx == 0 || idx >= next) {
			d.fail("dedup record %q of log %q at index %d", id, name, idx)
		}
		s.dedup = append(s.dedup, dedupRec{key: dedupKey{log: name, id: id}, index: idx, time: t})
	}
	if d.err == nil {
		if _, err := br.ReadByte(); err != io.EOF {
			d.fail("trailing data")
		}
	}
	if d.err != nil {
		return fmt.Errorf("restore log backup: %w", d.err)
	}
	if err := l.adopt(s, index); err != nil {
		return err
	}
	ok = true
	return nil
}

// importLog writes one log's entries, read from d, into its new store;
// fresh is false when an earlier restore had written it.
func (l *Log) importLog(d *snapReader, ls logSnap, index uint64) (fresh bool, err error) {
	dir := l.disk.path(ls.name, index)
	if l.disk.exists(ls.name, index) {
		// Written by an earlier restore of this backup (its directory is
		// only renamed into place once complete): skip its entries.
		for j := ls.first; j < ls.next && d.err == nil; j++ {
			d.lenBytes(maxIDLen, "entry id")
			d.varint("entry time")
			d.lenBytes(maxSnapshotData, "entry data")
		}
		return false, d.err
	}
	tmp := dir + "~installing" // segment.RemoveLeftovers removes it after a crash
	if err := os.RemoveAll(tmp); err != nil {
		return false, err
	}
	cfg := l.disk.cfg
	cfg.Cache = nil
	store, err := segment.Open(tmp, cfg)
	if err != nil {
		return false, err
	}
	fail := func(err error) (bool, error) {
		_ = store.Close()
		_ = os.RemoveAll(tmp)
		return false, err
	}
	if ls.first > 1 {
		if err := store.Trim(index-1, ls.first); err != nil {
			return fail(err)
		}
	}
	batch := make([]segment.Entry, 0, importBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := store.Import(index, batch)
		batch = batch[:0]
		return err
	}
	for j := ls.first; j < ls.next && d.err == nil; j++ {
		id := string(d.lenBytes(maxIDLen, "entry id"))
		t := d.varint("entry time")
		data := d.lenBytes(maxSnapshotData, "entry data")
		if d.err == nil && len(data) == 0 {
			d.fail("log %q index %d has no data", ls.name, j)
		}
		batch = append(batch, segment.Entry{ID: id, Data: data, Time: t})
		if len(batch) == importBatch {
			if err := flush(); err != nil {
				return fail(err)
			}
		}
	}
	if d.err != nil {
		return fail(fmt.Errorf("restore log backup: %w", d.err))
	}
	if err := flush(); err != nil {
		return fail(err)
	}
	if ls.first == ls.next && ls.first > 1 {
		// An empty log that had entries: its next index survives in the
		// trim alone.
		if store.Next() != ls.next {
			return fail(fmt.Errorf("log %s: restored next %d, want %d: %w", ls.name, store.Next(), ls.next, ErrMalformedSnapshot))
		}
	}
	if store.Applied() < index {
		// An empty log created at index: record the index, so a restart
		// keeps the store.
		if err := store.Trim(index, ls.first); err != nil {
			return fail(err)
		}
	}
	if err := store.Close(); err != nil {
		_ = os.RemoveAll(tmp)
		return false, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.RemoveAll(tmp)
		return false, err
	}
	return true, syncDir(l.disk.logs)
}

var _ modules.PortableSnapshotter = (*Log)(nil)
