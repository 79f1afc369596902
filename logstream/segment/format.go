package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The on-disk format, byte for byte, is described in docs/log-storage.md.
// All integers are little-endian and fixed-width.
//
// A segment file is a header followed by frames:
//
//	header (40 bytes): "SHOALSEG" version(u8)=1 pad(3) base(u64) first(u64) raft(u64) crc32c(u32 of bytes 0..36)
//	frame:             len(u32) crc32c(u32 of body) body(len bytes)
//	entry body:        kind(u8)=1 flags(u8) idLen(u16) offset(u64) raft(u64) time(i64) id data
//	trim body:         kind(u8)=2 flags(u8)=1 0(u16) raft(u64) first(u64)
//	footer body:       kind(u8)=3 flags(u8)=1 0(u16) next(u64) raft(u64) first(u64) minTime(i64) maxTime(i64)
//	                   n(u32) n×( rel(u32) pos(u32) ) footerPos(u64) "SGFT"
//
// flags bit 0 (flagEnd) marks the last record of a batch: recovery keeps
// only whole batches. A sealed segment ends with its footer, whose last 12
// bytes say where the footer frame starts.

const (
	segMagic        = "SHOALSEG"
	formatVersion   = 1
	headerSize      = 40
	frameHeaderSize = 8
	entryFixed      = 28 // kind flags idLen offset raft time
	trimBodySize    = 20
	footerFixed     = 60 // without the index entries
	footerMagic     = "SGFT"
	trailerSize     = 12 // footerPos and magic, the end of a sealed file
	maxIDLen        = 1<<16 - 1

	kindEntry  = 1
	kindTrim   = 2
	kindFooter = 3

	flagEnd = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors a Store returns. Each is wrapped with context.
var (
	// ErrCorrupt: a file that is not a valid segment where recovery cannot
	// have left it (a bad sealed segment, a gap between segments). Torn
	// tails are not corruption: they are cut.
	ErrCorrupt = errors.New("corrupt log segment")
	// ErrStale: a change with a Raft index at or below the Store's applied
	// index; the caller should have skipped the replayed command.
	ErrStale = errors.New("raft index already applied")
	// ErrTrimmed: a read below the first retained offset.
	ErrTrimmed = errors.New("offset trimmed")
	// ErrClosed: the Store was closed or deleted.
	ErrClosed = errors.New("segment store closed")
	// ErrInvalid: an argument the Store cannot write (an empty batch, an
	// entry over MaxEntryBytes).
	ErrInvalid = errors.New("invalid segment store argument")
	// errShort: the bytes end inside a frame (a torn tail when scanning).
	errShort = errors.New("short frame")
)

// header is a segment file's header: the state of the log when the
// segment was created.
type header struct {
	base  uint64 // offset of the segment's first entry
	first uint64 // the log's first retained offset at creation
	raft  uint64 // the log's applied Raft index at creation
}

func appendHeader(b []byte, h header) []byte {
	start := len(b)
	b = append(b, segMagic...)
	b = append(b, formatVersion, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, h.base)
	b = binary.LittleEndian.AppendUint64(b, h.first)
	b = binary.LittleEndian.AppendUint64(b, h.raft)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

func decodeHeader(b []byte) (header, error) {
	if len(b) < headerSize {
		return header{}, fmt.Errorf("segment header of %d bytes: %w", len(b), errShort)
	}
	b = b[:headerSize]
	if string(b[:8]) != segMagic || b[8] != formatVersion || b[9]|b[10]|b[11] != 0 {
		return header{}, fmt.Errorf("segment header magic %q version %d: %w", b[:8], b[8], ErrCorrupt)
	}
	if crc32.Checksum(b[:36], castagnoli) != binary.LittleEndian.Uint32(b[36:]) {
		return header{}, fmt.Errorf("segment header checksum: %w", ErrCorrupt)
	}
	h := header{
		base:  binary.LittleEndian.Uint64(b[12:]),
		first: binary.LittleEndian.Uint64(b[20:]),
		raft:  binary.LittleEndian.Uint64(b[28:]),
	}
	if h.base == 0 || h.first == 0 || h.first > h.base {
		return header{}, fmt.Errorf("segment header with base %d and first %d: %w", h.base, h.first, ErrCorrupt)
	}
	return h, nil
}

// indexEntry locates one entry of a segment: offset base+rel starts at
// byte pos of the file.
type indexEntry struct {
	rel, pos uint32
}

// footer summarises a sealed segment.
type footer struct {
	next             uint64 // one past the last entry's offset
	raft             uint64 // the log's applied Raft index at sealing
	first            uint64 // the log's first retained offset at sealing
	minTime, maxTime int64  // of the segment's entries; 0, 0 if none
	index            []indexEntry
	pos              uint64 // where the footer frame starts
}

// record is one decoded frame. id and data alias the decoded bytes.
type record struct {
	kind  byte
	end   bool   // the last record of a batch
	off   uint64 // entry
	raft  uint64 // entry, trim
	time  int64  // entry
	first uint64 // trim
	id    []byte // entry
	data  []byte // entry
	foot  footer // footer
}

// entrySize is the encoded size of an entry frame.
func entrySize(idLen, dataLen int) int { return frameHeaderSize + entryFixed + idLen + dataLen }

// appendEntryFrame appends one entry frame to b.
func appendEntryFrame(b []byte, off, raft uint64, e Entry, end bool) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, kindEntry, flagsOf(end))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(e.ID)))
	b = binary.LittleEndian.AppendUint64(b, off)
	b = binary.LittleEndian.AppendUint64(b, raft)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.Time))
	b = append(b, e.ID...)
	b = append(b, e.Data...)
	return sealFrame(b, start)
}

func appendTrimFrame(b []byte, raft, first uint64) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, kindTrim, flagEnd, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, raft)
	b = binary.LittleEndian.AppendUint64(b, first)
	return sealFrame(b, start)
}

func appendFooterFrame(b []byte, f footer) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, kindFooter, flagEnd, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, f.next)
	b = binary.LittleEndian.AppendUint64(b, f.raft)
	b = binary.LittleEndian.AppendUint64(b, f.first)
	b = binary.LittleEndian.AppendUint64(b, uint64(f.minTime))
	b = binary.LittleEndian.AppendUint64(b, uint64(f.maxTime))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(f.index)))
	for _, ie := range f.index {
		b = binary.LittleEndian.AppendUint32(b, ie.rel)
		b = binary.LittleEndian.AppendUint32(b, ie.pos)
	}
	b = binary.LittleEndian.AppendUint64(b, f.pos)
	b = append(b, footerMagic...)
	return sealFrame(b, start)
}

func flagsOf(end bool) byte {
	if end {
		return flagEnd
	}
	return 0
}

// sealFrame fills in the length and checksum of the frame at b[start:].
func sealFrame(b []byte, start int) []byte {
	body := b[start+frameHeaderSize:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(body, castagnoli))
	return b
}

// frameLen checks a frame header and returns the length of its body.
// maxBody bounds the length: a longer one is corruption, never an
// allocation.
func frameLen(h []byte, maxBody int) (int, error) {
	if len(h) < frameHeaderSize {
		return 0, errShort
	}
	n := binary.LittleEndian.Uint32(h)
	if n < 4 || uint64(n) > uint64(maxBody) {
		return 0, fmt.Errorf("frame length %d: %w", n, ErrCorrupt)
	}
	return int(n), nil
}

// maxBodyLen bounds a frame's length when reading: a batch, and so an
// entry, is at most maxBatchBytes. It is a property of the format, not of
// a Store's MaxEntryBytes, which only bounds what is written: lowering the
// setting must not make existing records look corrupt. Reads never
// allocate more than the file holds, whatever a length claims.
const maxBodyLen = maxBatchBytes

// decodeRecord decodes the frame at the start of b. It returns errShort if
// b ends inside the frame and an error wrapping ErrCorrupt if the frame is
// invalid. It never panics, and the record aliases b.
func decodeRecord(b []byte, maxBody int) (record, int, error) {
	n, err := frameLen(b, maxBody)
	if err != nil {
		return record{}, 0, err
	}
	if len(b)-frameHeaderSize < n {
		return record{}, 0, errShort
	}
	body := b[frameHeaderSize : frameHeaderSize+n]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return record{}, 0, fmt.Errorf("frame checksum: %w", ErrCorrupt)
	}
	r, err := decodeBody(body)
	if err != nil {
		return record{}, 0, err
	}
	return r, frameHeaderSize + n, nil
}

// decodeBody decodes a frame body whose checksum was verified.
func decodeBody(body []byte) (record, error) {
	kind, flags := body[0], body[1]
	r := record{kind: kind, end: flags == flagEnd}
	if flags&^flagEnd != 0 {
		return record{}, fmt.Errorf("frame flags %#x: %w", flags, ErrCorrupt)
	}
	le := binary.LittleEndian
	switch kind {
	case kindEntry:
		if len(body) < entryFixed {
			return record{}, fmt.Errorf("entry body of %d bytes: %w", len(body), ErrCorrupt)
		}
		idLen := int(le.Uint16(body[2:]))
		if len(body) < entryFixed+idLen {
			return record{}, fmt.Errorf("entry id of %d bytes in a body of %d: %w", idLen, len(body), ErrCorrupt)
		}
		r.off, r.raft, r.time = le.Uint64(body[4:]), le.Uint64(body[12:]), int64(le.Uint64(body[20:]))
		r.id = body[entryFixed : entryFixed+idLen]
		r.data = body[entryFixed+idLen:]
		if r.off == 0 {
			return record{}, fmt.Errorf("entry at offset 0: %w", ErrCorrupt)
		}
	case kindTrim:
		if len(body) != trimBodySize || !r.end || le.Uint16(body[2:]) != 0 {
			return record{}, fmt.Errorf("trim body of %d bytes: %w", len(body), ErrCorrupt)
		}
		r.raft, r.first = le.Uint64(body[4:]), le.Uint64(body[12:])
		if r.first == 0 {
			return record{}, fmt.Errorf("trim to offset 0: %w", ErrCorrupt)
		}
	case kindFooter:
		if len(body) < footerFixed || !r.end || le.Uint16(body[2:]) != 0 || string(body[len(body)-4:]) != footerMagic {
			return record{}, fmt.Errorf("footer body of %d bytes: %w", len(body), ErrCorrupt)
		}
		f := &r.foot
		f.next, f.raft, f.first = le.Uint64(body[4:]), le.Uint64(body[12:]), le.Uint64(body[20:])
		f.minTime, f.maxTime = int64(le.Uint64(body[28:])), int64(le.Uint64(body[36:]))
		count := le.Uint32(body[44:])
		if uint64(len(body)) != footerFixed+8*uint64(count) {
			return record{}, fmt.Errorf("footer of %d index entries in %d bytes: %w", count, len(body), ErrCorrupt)
		}
		f.index = make([]indexEntry, count)
		for i := range f.index {
			p := 48 + 8*i
			f.index[i] = indexEntry{rel: le.Uint32(body[p:]), pos: le.Uint32(body[p+4:])}
		}
		f.pos = le.Uint64(body[len(body)-12:])
		if f.first == 0 || f.next == 0 {
			return record{}, fmt.Errorf("footer with first %d and next %d: %w", f.first, f.next, ErrCorrupt)
		}
	default:
		return record{}, fmt.Errorf("frame kind %d: %w", kind, ErrCorrupt)
	}
	return r, nil
}

func leUint64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }
