package logstream

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"shoal/internal/wire"
	"shoal/modules"
)

// A snapshot is written by Persist as a stream, every integer a varint
// (times signed, the rest unsigned) and every string or byte run
// length-prefixed:
//
//	"SLOG" version(1)
//	logCount
//	logCount × ( len(name) name first count  count × ( len(id) id time len(data) data ) )
//	dedupCount
//	dedupCount × ( len(name) name len(id) id index time )
//
// Logs are in name order, entries in index order and dedup records in the
// order they were remembered, so equal states persist to equal bytes.

const (
	snapshotMagic   = "SLOG"
	snapshotVersion = 1
	// maxSnapshotData bounds one entry's data in a snapshot, far above the
	// API's request size limit; a larger length is corruption.
	maxSnapshotData = 64 << 20
	// maxIndex bounds the indexes a snapshot may hold, so that appending
	// to a restored log can never wrap an index around.
	maxIndex = 1 << 62
)

// snapshot is a frozen view of the state. The slices it holds are shared
// with the live state, which only appends past their ends.
type snapshot struct {
	logs  []logSnap
	dedup []dedupRec
}

type logSnap struct {
	name    string
	first   uint64
	entries []entry
}

// capture freezes st. It is O(number of logs): it copies slice headers,
// not entries.
func (st *state) capture() *snapshot {
	s := &snapshot{logs: make([]logSnap, 0, len(st.logs))}
	for _, ls := range st.logs {
		n := len(ls.entries)
		s.logs = append(s.logs, logSnap{name: ls.name, first: ls.first, entries: ls.entries[:n:n]})
	}
	slices.SortFunc(s.logs, func(a, b logSnap) int { return strings.Compare(a.name, b.name) })
	n := len(st.dedupQ)
	s.dedup = st.dedupQ[:n:n]
	return s
}

// Persist writes the snapshot to w. It only reads what Snapshot captured,
// so it may run while commands are applied.
func (s *snapshot) Persist(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var buf []byte
	put := func() error {
		_, err := bw.Write(buf)
		buf = buf[:0]
		return err
	}
	buf = append(buf, snapshotMagic...)
	buf = append(buf, snapshotVersion)
	buf = binary.AppendUvarint(buf, uint64(len(s.logs)))
	for _, ls := range s.logs {
		buf = wire.AppendBytes(buf, ls.name)
		buf = binary.AppendUvarint(buf, ls.first)
		buf = binary.AppendUvarint(buf, uint64(len(ls.entries)))
		for _, e := range ls.entries {
			buf = wire.AppendBytes(buf, e.id)
			buf = binary.AppendVarint(buf, e.time)
			buf = binary.AppendUvarint(buf, uint64(len(e.data)))
			if err := put(); err != nil {
				return fmt.Errorf("persist log snapshot: %w", err)
			}
			if _, err := bw.Write(e.data); err != nil {
				return fmt.Errorf("persist log snapshot: %w", err)
			}
		}
	}
	buf = binary.AppendUvarint(buf, uint64(len(s.dedup)))
	for _, rec := range s.dedup {
		buf = wire.AppendBytes(buf, rec.key.log)
		buf = wire.AppendBytes(buf, rec.key.id)
		buf = binary.AppendUvarint(buf, rec.index)
		buf = binary.AppendVarint(buf, rec.time)
		if len(buf) > 32<<10 {
			if err := put(); err != nil {
				return fmt.Errorf("persist log snapshot: %w", err)
			}
		}
	}
	if err := put(); err != nil {
		return fmt.Errorf("persist log snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("persist log snapshot: %w", err)
	}
	return nil
}

// Release does nothing: the snapshot holds no resources beyond memory.
func (s *snapshot) Release() {}

// readSnapshot decodes a snapshot written by Persist into a new state. An
// empty reader is the empty state. It never panics, and it allocates in
// proportion to the bytes actually read, not to lengths the input claims.
func readSnapshot(r io.Reader) (*state, error) {
	st := newState()
	br := bufio.NewReaderSize(r, 64<<10)
	if _, err := br.Peek(1); err == io.EOF {
		return st, nil
	}
	d := snapReader{r: br}
	magic := d.bytes(len(snapshotMagic), len(snapshotMagic), "magic")
	if d.err == nil && string(magic) != snapshotMagic {
		d.fail("bad magic %q", magic)
	}
	if v := d.byte("version"); d.err == nil && v != snapshotVersion {
		d.fail("unsupported version %d", v)
	}
	logCount := d.uvarint("log count")
	prev := ""
	for i := uint64(0); i < logCount && d.err == nil; i++ {
		name := string(d.lenBytes(maxNameLen, "log name"))
		first := d.uvarint("first index")
		count := d.uvarint("entry count")
		switch {
		case d.err != nil:
		case !modules.ValidName(name):
			d.fail("log name %q", name)
		case i > 0 && name <= prev:
			d.fail("log %q out of order after %q", name, prev)
		case first == 0 || count == 0 || count > math.MaxInt32 || first > maxIndex-count:
			d.fail("log %q with first index %d and %d entries", name, first, count)
		}
		prev = name
		ls := &logState{name: name, first: first, notify: make(chan struct{})}
		ls.entries = make([]entry, 0, min(count, 4096))
		for j := uint64(0); j < count && d.err == nil; j++ {
			id := string(d.lenBytes(maxIDLen, "entry id"))
			t := d.varint("entry time")
			data := d.lenBytes(maxSnapshotData, "entry data")
			// Not validated as JSON: commands are not either (the edge
			// did), and what the FSM accepted must restore. Raft's
			// snapshot store checks the file's CRC.
			if d.err == nil && len(data) == 0 {
				d.fail("log %q index %d has no data", name, first+j)
			}
			ls.entries = append(ls.entries, entry{id: id, data: data, time: t})
		}
		if d.err == nil {
			st.logs[name] = ls
			st.entries += len(ls.entries)
		}
	}
	dedupCount := d.uvarint("dedup count")
	for i := uint64(0); i < dedupCount && d.err == nil; i++ {
		name := string(d.lenBytes(maxNameLen, "dedup log name"))
		id := string(d.lenBytes(maxIDLen, "dedup id"))
		index := d.uvarint("dedup index")
		t := d.varint("dedup time")
		if d.err != nil {
			break
		}
		ls := st.logs[name]
		if ls == nil || id == "" || index == 0 || index > ls.last() {
			d.fail("dedup record %q of log %q at index %d", id, name, index)
			break
		}
		rec := dedupRec{key: dedupKey{log: ls.name, id: id}, index: index, time: t}
		st.dedupQ = append(st.dedupQ, rec)
		st.dedup[rec.key] = rec
	}
	if d.err == nil {
		if _, err := br.ReadByte(); err != io.EOF {
			d.fail("trailing data")
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("restore log snapshot: %w", d.err)
	}
	return st, nil
}

// snapReader reads the snapshot encoding from a stream. After the first
// failure every read returns zero values and err stays set.
type snapReader struct {
	r   *bufio.Reader
	err error
}

func (d *snapReader) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format+": %w", append(args, ErrMalformedSnapshot)...)
	}
}

func (d *snapReader) readErr(what string, err error) {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if d.err == nil {
		d.err = fmt.Errorf("read %s: %w: %w", what, ErrMalformedSnapshot, err)
	}
}

func (d *snapReader) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(d.r)
	if err != nil {
		d.readErr(what, err)
	}
	return v
}

func (d *snapReader) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, err := binary.ReadVarint(d.r)
	if err != nil {
		d.readErr(what, err)
	}
	return v
}

func (d *snapReader) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	c, err := d.r.ReadByte()
	if err != nil {
		d.readErr(what, err)
	}
	return c
}

// lenBytes reads a length-prefixed run of at most limit bytes.
func (d *snapReader) lenBytes(limit int, what string) []byte {
	n := d.uvarint(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(limit) {
		d.fail("%s of %d bytes over the limit of %d", what, n, limit)
		return nil
	}
	return d.bytes(int(n), limit, what)
}

// bytes reads exactly n bytes, allocating in 64 KiB steps as data
// arrives, so a corrupt length cannot make it allocate more than it read.
func (d *snapReader) bytes(n, limit int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n > limit {
		d.fail("%s of %d bytes over the limit of %d", what, n, limit)
		return nil
	}
	const step = 64 << 10
	buf := make([]byte, 0, min(n, step))
	for len(buf) < n {
		chunk := min(n-len(buf), step)
		buf = slices.Grow(buf, chunk)
		m, err := io.ReadFull(d.r, buf[len(buf):len(buf)+chunk])
		buf = buf[:len(buf)+m]
		if err != nil {
			d.readErr(what, err)
			return nil
		}
	}
	return buf
}
