package logstream

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"shoal/internal/wire"
	"shoal/modules"
)

// Command ops of the log module (the byte after the module's tag). An op is
// part of the replicated log format: never change or reuse one.
const (
	// opAppend appends one entry or a batch to one log.
	opAppend byte = 1
)

// The opAppend payload is compact binary in the primitives of
// internal/wire, every integer a minimal unsigned varint and every string
// or byte run length-prefixed:
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
	b = wire.AppendUvarint(b, c.maxEntries)
	b = wire.AppendUvarint(b, uint64(c.dedupWindow))
	b = wire.AppendBytes(b, c.log)
	b = wire.AppendUvarint(b, uint64(len(c.entries)))
	for _, e := range c.entries {
		b = wire.AppendBytes(b, e.id)
		b = wire.AppendBytes(b, e.data)
	}
	return b
}

// decodeAppend decodes an opAppend payload. It never panics, and the
// command it returns does not alias payload.
func decodeAppend(payload []byte) (appendCmd, error) {
	d := wire.NewDecoder(payload)
	var c appendCmd
	c.maxEntries = d.Uvarint("max entries")
	window := d.Uvarint("dedup window")
	c.log = d.String("log name", maxNameLen)
	count := d.Uvarint("entry count")
	if err := d.Err(); err != nil {
		return appendCmd{}, fmt.Errorf("decode append command: %w: %w", ErrMalformedCommand, err)
	}
	switch {
	case c.maxEntries == 0:
		return appendCmd{}, fmt.Errorf("append command with max entries 0: %w", ErrMalformedCommand)
	case window > math.MaxInt64:
		return appendCmd{}, fmt.Errorf("append command with dedup window %d: %w", window, ErrMalformedCommand)
	case !modules.ValidName(c.log):
		return appendCmd{}, fmt.Errorf("append command with log name %q: %w", c.log, ErrMalformedCommand)
	case count == 0 || count > maxBatch:
		return appendCmd{}, fmt.Errorf("append command with %d entries: %w", count, ErrMalformedCommand)
	}
	c.dedupWindow = time.Duration(window)
	// One copy of the rest of the payload holds every entry's data (the
	// slices Bytes returns alias it), so the command does not keep the
	// caller's buffer.
	d = wire.NewDecoder(append([]byte(nil), d.Rest()...))
	c.entries = make([]newEntry, 0, count)
	for i := uint64(0); i < count; i++ {
		id := d.String("entry id", maxIDLen)
		data := d.Bytes("entry data", d.Len())
		if err := d.Err(); err != nil {
			return appendCmd{}, fmt.Errorf("decode entry %d of append command: %w: %w", i, ErrMalformedCommand, err)
		}
		// The data is not validated as JSON again here, on every node for
		// every entry: the publish handler validated it where it entered,
		// and only cluster members (authenticated by the cluster port) can
		// submit commands. No JSON value is empty, though.
		if len(data) == 0 {
			return appendCmd{}, fmt.Errorf("entry %d of append command has no data: %w", i, ErrMalformedCommand)
		}
		c.entries = append(c.entries, newEntry{id: id, data: data})
	}
	if err := d.End(); err != nil {
		return appendCmd{}, fmt.Errorf("decode append command: %w: %w", ErrMalformedCommand, err)
	}
	return c, nil
}

// The result of an opAppend, returned through Raft.Apply to the node that
// submitted it, is: count × ( index duplicate ), index an unsigned varint
// and duplicate one byte, 0 or 1.

func encodeResult(r appendResult) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(r.indexes)*(binary.MaxVarintLen64+1))
	b = wire.AppendUvarint(b, uint64(len(r.indexes)))
	for i, index := range r.indexes {
		b = wire.AppendUvarint(b, index)
		b = wire.AppendBool(b, r.duplicates[i])
	}
	return b
}

func decodeResult(b []byte) (appendResult, error) {
	d := wire.NewDecoder(b)
	count := d.Uvarint("entry count")
	if d.Err() == nil && count > maxBatch {
		d.Failf("entry count", "result with %d entries", count)
	}
	var r appendResult
	for i := uint64(0); i < count && d.Err() == nil; i++ {
		r.indexes = append(r.indexes, d.Uvarint("index"))
		r.duplicates = append(r.duplicates, d.Bool("duplicate"))
	}
	if err := d.End(); err != nil {
		return appendResult{}, fmt.Errorf("decode append result: %w: %w", ErrMalformedCommand, err)
	}
	return r, nil
}
