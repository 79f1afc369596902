package logstream

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"shoal/modules"
)

// Snapshots of releases before the on-disk store ("SLOG" version 1) held
// every entry; RestoreAt still reads them and converts them into stores
// (see convertV1). Their format, every integer a varint (times signed, the
// rest unsigned) and every string or byte run length-prefixed:
//
//	"SLOG" version(1)
//	logCount
//	logCount × ( len(name) name first count  count × ( len(id) id time len(data) data ) )
//	dedupCount
//	dedupCount × ( len(name) name len(id) id index time )

const (
	snapshotMagicV1   = "SLOG"
	snapshotVersionV1 = 1
	// maxSnapshotData bounds one entry's data in a snapshot, far above the
	// API's request size limit; a larger length is corruption.
	maxSnapshotData = 64 << 20
	// maxIndex bounds the indexes a snapshot may hold, so that appending
	// to a restored log can never wrap an index around.
	maxIndex = 1 << 62
)

// v1Log is one log of a version 1 snapshot, entries in memory.
type v1Log struct {
	name    string
	first   uint64
	entries []v1Entry
}

type v1Entry struct {
	id   string
	data []byte
	time int64
}

// v1State is a decoded version 1 snapshot.
type v1State struct {
	logs  []v1Log // by name
	dedup []dedupRec
}

// readSnapshotV1 decodes a version 1 snapshot whose magic the caller has
// already checked (r still starts with it). It never panics, and it
// allocates in proportion to the bytes actually read, not to lengths the
// input claims.
func readSnapshotV1(br *bufio.Reader) (*v1State, error) {
	st := &v1State{}
	d := snapReader{r: br}
	magic := d.bytes(len(snapshotMagicV1), len(snapshotMagicV1), "magic")
	if d.err == nil && string(magic) != snapshotMagicV1 {
		d.fail("bad magic %q", magic)
	}
	if v := d.byte("version"); d.err == nil && v != snapshotVersionV1 {
		d.fail("unsupported version %d", v)
	}
	logCount := d.uvarint("log count")
	lasts := map[string]uint64{}
	prev := ""
	for i := uint64(0); i < logCount && d.err == nil; i++ {
		name := string(d.lenBytes(maxNameLen, "log name"))
		first := d.uvarint("first index")
		count := d.uvarint("entry count")
		switch {
		case d.err != nil:
		case !modules.ValidAPIName(name):
			d.fail("log name %q", name)
		case i > 0 && name <= prev:
			d.fail("log %q out of order after %q", name, prev)
		case first == 0 || count == 0 || count > math.MaxInt32 || first > maxIndex-count:
			d.fail("log %q with first index %d and %d entries", name, first, count)
		}
		prev = name
		lg := v1Log{name: name, first: first, entries: make([]v1Entry, 0, min(count, 4096))}
		for j := uint64(0); j < count && d.err == nil; j++ {
			id := string(d.lenBytes(maxIDLen, "entry id"))
			t := d.varint("entry time")
			data := d.lenBytes(maxSnapshotData, "entry data")
			if d.err == nil && len(data) == 0 {
				d.fail("log %q index %d has no data", name, first+j)
			}
			lg.entries = append(lg.entries, v1Entry{id: id, data: data, time: t})
		}
		if d.err == nil {
			st.logs = append(st.logs, lg)
			lasts[name] = first + count - 1
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
		last, ok := lasts[name]
		if !ok || id == "" || index == 0 || index > last {
			d.fail("dedup record %q of log %q at index %d", id, name, index)
			break
		}
		st.dedup = append(st.dedup, dedupRec{key: dedupKey{log: name, id: id}, index: index, time: t})
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
