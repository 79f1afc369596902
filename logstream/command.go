package logstream

import (
	"encoding/binary"
	"errors"
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
	// opConfigure sets a log's retention limits, creating it if needed.
	opConfigure byte = 2
	// opDelete removes a log and its files.
	opDelete byte = 3
	// opTrim drops a log's entries below an offset the leader chose by
	// the log's byte and age limits.
	opTrim byte = 4
	// opCapped carries an opAppend or opConfigure with the cluster's cap
	// on the number of logs (--log-max-logs) of the node that submitted
	// it: a command that would create a log past the cap is refused, the
	// same way on every node, whatever each node's own flag says.
	opCapped byte = 5
)

// capHead starts an opCapped payload around an opAppend or opConfigure
// (op) with the cap on logs: uvarint cap, op byte; the inner payload
// follows, appended to the buffer returned, which has room for size more
// bytes.
func capHead(maxLogs uint64, op byte, size int) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+1+size)
	return append(wire.AppendUvarint(b, maxLogs), op)
}

// submission returns the op to submit an opAppend or opConfigure (op) as,
// and the buffer to append its payload to: under --log-max-logs, an
// opCapped whose head is written; without a cap, the bare op (which a
// node of the release before opCapped still applies). The payload is
// encoded once, in place: a batch publish is up to 4 MiB.
func (l *Log) submission(op byte, size int) (byte, []byte) {
	if l.cfg.MaxLogs == 0 {
		return op, make([]byte, 0, size)
	}
	return opCapped, capHead(uint64(l.cfg.MaxLogs), op, size)
}

// countCap counts a submission the cap on logs refused.
func (l *Log) countCap(err error) {
	if errors.Is(err, ErrTooManyLogs) {
		l.m.capRefusals.Inc()
	}
}

// decodeCapped unwraps an opCapped payload.
func decodeCapped(payload []byte) (maxLogs uint64, op byte, inner []byte, err error) {
	d := wire.NewDecoder(payload)
	maxLogs = d.Uvarint("max logs")
	op = d.Byte("capped op")
	if err := d.Err(); err != nil {
		return 0, 0, nil, fmt.Errorf("decode capped command: %w: %w", ErrMalformedCommand, err)
	}
	if op != opAppend && op != opConfigure {
		return 0, 0, nil, fmt.Errorf("capped command of op %d: %w", op, ErrMalformedCommand)
	}
	return maxLogs, op, d.Rest(), nil
}

// maxLimitValue bounds every retention limit, so that sums and
// differences with log indexes never overflow.
const maxLimitValue = 1 << 62

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
func encodeAppend(c appendCmd) []byte { return appendAppend(make([]byte, 0, c.size()), c) }

// size bounds the length of c's encoding.
func (c appendCmd) size() int {
	size := 3*binary.MaxVarintLen64 + len(c.log) + binary.MaxVarintLen64
	for _, e := range c.entries {
		size += 2*binary.MaxVarintLen64 + len(e.id) + len(e.data)
	}
	return size
}

// appendAppend appends the opAppend payload of c to b.
func appendAppend(b []byte, c appendCmd) []byte {
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

// limits are a log's own retention limits. A limit whose bit is not set in
// set is the cluster's default; a set limit of 0 is "no limit".
type limits struct {
	set        byte
	maxEntries uint64
	maxBytes   uint64
	maxAge     uint64 // nanoseconds
}

// Bits of limits.set.
const (
	limitEntries byte = 1 << iota
	limitBytes
	limitAge
	limitAll = limitEntries | limitBytes | limitAge
)

// merge returns l with the limits set in o replacing its own.
func (l limits) merge(o limits) limits {
	if o.set&limitEntries != 0 {
		l.maxEntries = o.maxEntries
	}
	if o.set&limitBytes != 0 {
		l.maxBytes = o.maxBytes
	}
	if o.set&limitAge != 0 {
		l.maxAge = o.maxAge
	}
	l.set |= o.set
	return l
}

// configureCmd sets the limits in lim.set of log, creating it if needed.
type configureCmd struct {
	log string
	lim limits
}

// The opConfigure payload: len(name) name set maxEntries maxBytes maxAge,
// each limit a minimal uvarint (0 when its bit is not set).
func encodeConfigure(c configureCmd) []byte {
	b := wire.AppendBytes(nil, c.log)
	b = append(b, c.lim.set)
	b = wire.AppendUvarint(b, c.lim.maxEntries)
	b = wire.AppendUvarint(b, c.lim.maxBytes)
	return wire.AppendUvarint(b, c.lim.maxAge)
}

func decodeConfigure(payload []byte) (configureCmd, error) {
	d := wire.NewDecoder(payload)
	var c configureCmd
	c.log = d.String("log name", maxNameLen)
	c.lim.set = d.Byte("limits set")
	c.lim.maxEntries = d.Uvarint("max entries")
	c.lim.maxBytes = d.Uvarint("max bytes")
	c.lim.maxAge = d.Uvarint("max age")
	if err := d.End(); err != nil {
		return configureCmd{}, fmt.Errorf("decode configure command: %w: %w", ErrMalformedCommand, err)
	}
	if err := checkLimits(c.log, c.lim); err != nil {
		return configureCmd{}, err
	}
	return c, nil
}

// checkLimits validates a log name and limits from a command or snapshot.
func checkLimits(name string, l limits) error {
	switch {
	case !modules.ValidAPIName(name):
		return fmt.Errorf("log name %q: %w", name, ErrMalformedCommand)
	case l.set&^limitAll != 0:
		return fmt.Errorf("limits of log %q with unknown bits %#x: %w", name, l.set, ErrMalformedCommand)
	case l.maxEntries > maxLimitValue || l.maxBytes > maxLimitValue || l.maxAge > maxLimitValue:
		return fmt.Errorf("limits of log %q out of range: %w", name, ErrMalformedCommand)
	case l.set&limitEntries == 0 && l.maxEntries != 0, l.set&limitBytes == 0 && l.maxBytes != 0, l.set&limitAge == 0 && l.maxAge != 0:
		return fmt.Errorf("limits of log %q: a value for a limit that is not set: %w", name, ErrMalformedCommand)
	}
	return nil
}

// The opDelete payload: len(name) name.
func encodeDelete(log string) []byte { return wire.AppendBytes(nil, log) }

func decodeDelete(payload []byte) (string, error) {
	d := wire.NewDecoder(payload)
	name := d.String("log name", maxNameLen)
	if err := d.End(); err != nil {
		return "", fmt.Errorf("decode delete command: %w: %w", ErrMalformedCommand, err)
	}
	if !modules.ValidAPIName(name) {
		return "", fmt.Errorf("delete command with log name %q: %w", name, ErrMalformedCommand)
	}
	return name, nil
}

// trimCmd drops the entries of log below first, if the log is still the
// one created at Raft index created (not deleted and created again since
// the leader looked).
type trimCmd struct {
	log     string
	created uint64
	first   uint64
}

// The opTrim payload: len(name) name created first, uvarints.
func encodeTrim(c trimCmd) []byte {
	b := wire.AppendBytes(nil, c.log)
	b = wire.AppendUvarint(b, c.created)
	return wire.AppendUvarint(b, c.first)
}

func decodeTrim(payload []byte) (trimCmd, error) {
	d := wire.NewDecoder(payload)
	var c trimCmd
	c.log = d.String("log name", maxNameLen)
	c.created = d.Uvarint("created index")
	c.first = d.Uvarint("first index")
	if err := d.End(); err != nil {
		return trimCmd{}, fmt.Errorf("decode trim command: %w: %w", ErrMalformedCommand, err)
	}
	if !modules.ValidAPIName(c.log) || c.first == 0 || c.first > maxIndex {
		return trimCmd{}, fmt.Errorf("trim command for log %q to %d: %w", c.log, c.first, ErrMalformedCommand)
	}
	return c, nil
}
