package logstream

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Command ops of the log module (the byte after the module's tag). An op is
// part of the replicated log format: never change or reuse one.
const (
	// opAppend appends one entry or a batch to one log.
	opAppend byte = 1
)

// The opAppend payload is compact binary, every integer an unsigned varint
// and every string or byte run length-prefixed:
//
//	maxEntries dedupWindowNanos len(name) name count
//	count × ( len(id) id len(data) data )
//
// data is compact JSON. The decoder enforces the same limits as the HTTP
// layer, so a state machine never holds an entry the API would refuse.

// encodeAppend encodes c as an opAppend payload.
func encodeAppend(c appendCmd) []byte {
	size := 3*binary.MaxVarintLen64 + len(c.log) + binary.MaxVarintLen64
	for _, e := range c.entries {
		size += 2*binary.MaxVarintLen64 + len(e.id) + len(e.data)
	}
	b := make([]byte, 0, size)
	b = binary.AppendUvarint(b, c.maxEntries)
	b = binary.AppendUvarint(b, uint64(c.dedupWindow))
	b = appendBytes(b, c.log)
	b = binary.AppendUvarint(b, uint64(len(c.entries)))
	for _, e := range c.entries {
		b = appendBytes(b, e.id)
		b = appendBytes(b, e.data)
	}
	return b
}

func appendBytes[S string | []byte](b []byte, s S) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeAppend decodes an opAppend payload. It never panics, and the
// command it returns does not alias payload.
func decodeAppend(payload []byte) (appendCmd, error) {
	d := decoder{b: payload}
	var c appendCmd
	c.maxEntries = d.uvarint()
	window := d.uvarint()
	c.log = string(d.bytes(maxNameLen))
	count := d.uvarint()
	if d.err != nil {
		return appendCmd{}, fmt.Errorf("decode append command: %w", d.err)
	}
	switch {
	case c.maxEntries == 0:
		return appendCmd{}, fmt.Errorf("append command with max entries 0: %w", ErrMalformedCommand)
	case window > math.MaxInt64:
		return appendCmd{}, fmt.Errorf("append command with dedup window %d: %w", window, ErrMalformedCommand)
	case !validName(c.log):
		return appendCmd{}, fmt.Errorf("append command with log name %q: %w", c.log, ErrMalformedCommand)
	case count == 0 || count > maxBatch:
		return appendCmd{}, fmt.Errorf("append command with %d entries: %w", count, ErrMalformedCommand)
	}
	c.dedupWindow = time.Duration(window)
	// One copy of the rest of the payload holds every entry's data, so
	// the command does not keep the caller's buffer.
	rest := append([]byte(nil), d.b...)
	d.b = rest
	c.entries = make([]newEntry, 0, count)
	for i := uint64(0); i < count; i++ {
		id := d.bytes(maxIDLen)
		data := d.bytes(len(d.b))
		if d.err != nil {
			return appendCmd{}, fmt.Errorf("decode entry %d of append command: %w", i, d.err)
		}
		if !json.Valid(data) {
			return appendCmd{}, fmt.Errorf("entry %d of append command has invalid JSON data: %w", i, ErrMalformedCommand)
		}
		c.entries = append(c.entries, newEntry{id: string(id), data: data[:len(data):len(data)]})
	}
	if len(d.b) != 0 {
		return appendCmd{}, fmt.Errorf("append command has %d trailing bytes: %w", len(d.b), ErrMalformedCommand)
	}
	return c, nil
}

// The result of an opAppend, returned through Raft.Apply to the node that
// submitted it, is: count × ( index duplicate ), index an unsigned varint
// and duplicate one byte, 0 or 1.

func encodeResult(r appendResult) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(r.indexes)*(binary.MaxVarintLen64+1))
	b = binary.AppendUvarint(b, uint64(len(r.indexes)))
	for i, index := range r.indexes {
		b = binary.AppendUvarint(b, index)
		dup := byte(0)
		if r.duplicates[i] {
			dup = 1
		}
		b = append(b, dup)
	}
	return b
}

func decodeResult(b []byte) (appendResult, error) {
	d := decoder{b: b}
	count := d.uvarint()
	if d.err == nil && count > maxBatch {
		d.fail("result with %d entries", count)
	}
	var r appendResult
	for i := uint64(0); i < count && d.err == nil; i++ {
		index := d.uvarint()
		dup := d.byte()
		if dup > 1 {
			d.fail("duplicate flag %d", dup)
		}
		r.indexes = append(r.indexes, index)
		r.duplicates = append(r.duplicates, dup == 1)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return appendResult{}, fmt.Errorf("decode append result: %w", d.err)
	}
	return r, nil
}

// decoder reads varints and length-prefixed byte runs from a buffer. After
// the first failure every read returns zero values and err stays set.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format+": %w", append(args, ErrMalformedCommand)...)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("missing byte")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// bytes reads a length-prefixed run of at most limit bytes. The result
// aliases the buffer.
func (d *decoder) bytes(limit int) []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(limit) || n > uint64(len(d.b)) {
		d.fail("length %d over limit %d or past the end", n, min(limit, len(d.b)))
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}
