package kv

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// The wire format of the kv channel. Every message is
//
//	[type byte][from: uvarint length + node name][body]
//
// with integers as (u)varints, strings as a uvarint length and bytes, and
// hashes as 8 bytes little-endian. A message with trailing bytes, unknown
// flag bits, an out-of-range field or an invalid entry is malformed and
// dropped whole. The bodies:
//
//	entry     entry                                       broadcast of one write
//	notice    key, version, flags                         broadcast of a write too large to piggyback
//	digest    round, level, n, n×(index, hash)            tree hashes of one level
//	summary   round, n, n×(leaf, m, m×(key, version, flags))
//	push      round, flags(final), n, n×entry, m, m×(key, version)
//	syncreq   session
//	syncdata  session, seq, flags(last), n, n×entry
//	notsynced ref, last sync (Unix ms), keys, flags(busy)
//
// where entry is key, version, flags(deleted), value and version is
// time, counter, node. Tags and types are part of the protocol: a type
// number is never reused.
type msgType byte

const (
	msgEntry     msgType = 1
	msgNotice    msgType = 2
	msgDigest    msgType = 3
	msgSummary   msgType = 4
	msgPush      msgType = 5
	msgSyncReq   msgType = 6
	msgSyncData  msgType = 7
	msgNotSynced msgType = 8
)

func (t msgType) String() string {
	switch t {
	case msgEntry:
		return "entry"
	case msgNotice:
		return "notice"
	case msgDigest:
		return "digest"
	case msgSummary:
		return "summary"
	case msgPush:
		return "push"
	case msgSyncReq:
		return "syncreq"
	case msgSyncData:
		return "syncdata"
	case msgNotSynced:
		return "notsynced"
	default:
		return fmt.Sprintf("type-%d", byte(t))
	}
}

// message is the decoded form of every message type; each type uses the
// fields its body has.
type message struct {
	Type msgType
	From string
	// Ref is the anti-entropy round (digest, summary, push, notsynced) or
	// the full-sync session (syncreq, syncdata, notsynced).
	Ref uint64

	Level uint8      // digest
	Nodes []treeNode // digest

	Leaves []leafSummary // summary

	// Entries: one for entry and notice (a notice's has no value), any
	// number for push and syncdata.
	Entries []entry
	Wants   []want // push
	Final   bool   // push: the last message of the round

	Seq  uint64 // syncdata
	Last bool   // syncdata: the last chunk of the session

	LastSync int64  // notsynced: when the refusing node last synced
	Keys     uint64 // notsynced: how many entries it holds
	Busy     bool   // notsynced: it is synced but serves too many syncs now
}

// treeNode is one node of the digest tree.
type treeNode struct {
	Index uint32
	Hash  uint64
}

// leafSummary lists the versions of one leaf of the digest tree.
type leafSummary struct {
	Leaf  uint32
	Items []summaryItem
}

// summaryItem is an entry without its value.
type summaryItem struct {
	Key     string
	Version Version
	Deleted bool
}

// want asks for the entry of Key at Version or newer.
type want struct {
	Key     string
	Version Version
}

const (
	flagDeleted = 1 << 0 // entry flags
	flagFinal   = 1 << 0 // push flags
	flagLast    = 1 << 0 // syncdata flags
	flagBusy    = 1 << 0 // notsynced flags
)

// recordFormat is the first byte of every stored record.
const recordFormat = 1

// encoder appends the wire format to a buffer.
type encoder struct{ b []byte }

func (e *encoder) byte(x byte)       { e.b = append(e.b, x) }
func (e *encoder) uvarint(x uint64)  { e.b = binary.AppendUvarint(e.b, x) }
func (e *encoder) varint(x int64)    { e.b = binary.AppendVarint(e.b, x) }
func (e *encoder) hash(x uint64)     { e.b = binary.LittleEndian.AppendUint64(e.b, x) }
func (e *encoder) str(s string)      { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bool(flag bool)    { e.byte(boolFlag(flag)) }
func (e *encoder) version(v Version) { e.varint(v.Time); e.uvarint(uint64(v.Counter)); e.str(v.Node) }

func boolFlag(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func (e *encoder) entry(en entry) {
	e.str(en.Key)
	e.version(en.Version)
	e.bool(en.Deleted)
	e.str(en.Value)
}

// decoder reads the wire format; the first error sticks and every later
// read returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	x := d.b[0]
	d.b = d.b[1:]
	return x
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) hash() uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.fail("truncated hash")
		return 0
	}
	x := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return x
}

// str reads a string of at most limit bytes.
func (d *decoder) str(limit int) string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(limit) || n > uint64(len(d.b)) {
		d.fail("string of %d bytes (limit %d, %d left)", n, limit, len(d.b))
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// count reads a list length; each element takes at least min bytes, so a
// length larger than what is left is malformed (and never allocated).
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/min) {
		d.fail("list of %d elements in %d bytes", n, len(d.b))
		return 0
	}
	return int(n)
}

// flags reads a flag byte that may only have the bits in allowed.
func (d *decoder) flags(allowed byte) byte {
	f := d.byte()
	if f&^allowed != 0 {
		d.fail("unknown flags %#x", f)
	}
	return f
}

func (d *decoder) version() Version {
	v := Version{Time: d.varint()}
	c := d.uvarint()
	if c > 1<<32-1 {
		d.fail("counter out of range")
	}
	v.Counter = uint32(c)
	v.Node = d.str(maxNodeLen)
	if d.err == nil && (v.Time < 0 || v.Time > maxTime || !validNode(v.Node)) {
		d.fail("invalid version")
	}
	return v
}

func (d *decoder) entry() entry {
	e := entry{Key: d.str(MaxKeyLen)}
	e.Version = d.version()
	e.Deleted = d.flags(flagDeleted) == flagDeleted
	e.Value = d.str(maxValueLimit)
	if d.err == nil && !e.valid() {
		d.fail("invalid entry")
	}
	return e
}

func (d *decoder) key() string {
	k := d.str(MaxKeyLen)
	if d.err == nil && !validKey(k) {
		d.fail("invalid key")
	}
	return k
}

// end fails if bytes are left.
func (d *decoder) end() {
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
}

// encodeMessage returns the wire form of m.
func encodeMessage(m message) []byte {
	e := &encoder{b: make([]byte, 0, 64)}
	e.byte(byte(m.Type))
	e.str(m.From)
	switch m.Type {
	case msgEntry:
		e.entry(m.Entries[0])
	case msgNotice:
		n := m.Entries[0]
		e.str(n.Key)
		e.version(n.Version)
		e.bool(n.Deleted)
	case msgDigest:
		e.uvarint(m.Ref)
		e.byte(m.Level)
		e.uvarint(uint64(len(m.Nodes)))
		for _, n := range m.Nodes {
			e.uvarint(uint64(n.Index))
			e.hash(n.Hash)
		}
	case msgSummary:
		e.uvarint(m.Ref)
		e.uvarint(uint64(len(m.Leaves)))
		for _, l := range m.Leaves {
			e.uvarint(uint64(l.Leaf))
			e.uvarint(uint64(len(l.Items)))
			for _, it := range l.Items {
				e.str(it.Key)
				e.version(it.Version)
				e.bool(it.Deleted)
			}
		}
	case msgPush:
		e.uvarint(m.Ref)
		e.bool(m.Final)
		e.uvarint(uint64(len(m.Entries)))
		for _, en := range m.Entries {
			e.entry(en)
		}
		e.uvarint(uint64(len(m.Wants)))
		for _, w := range m.Wants {
			e.str(w.Key)
			e.version(w.Version)
		}
	case msgSyncReq:
		e.uvarint(m.Ref)
	case msgSyncData:
		e.uvarint(m.Ref)
		e.uvarint(m.Seq)
		e.bool(m.Last)
		e.uvarint(uint64(len(m.Entries)))
		for _, en := range m.Entries {
			e.entry(en)
		}
	case msgNotSynced:
		e.uvarint(m.Ref)
		e.varint(m.LastSync)
		e.uvarint(m.Keys)
		e.bool(m.Busy)
	}
	return e.b
}

// decodeMessage parses a message. It never panics and allocates in
// proportion to len(b); an error wraps ErrMalformedMessage.
func decodeMessage(b []byte) (message, error) {
	d := &decoder{b: b}
	m := message{Type: msgType(d.byte())}
	m.From = d.str(maxNodeLen)
	if d.err == nil && !validNode(m.From) {
		d.fail("invalid sender")
	}
	switch m.Type {
	case msgEntry:
		m.Entries = []entry{d.entry()}
	case msgNotice:
		n := entry{Key: d.key()}
		n.Version = d.version()
		n.Deleted = d.flags(flagDeleted) == flagDeleted
		m.Entries = []entry{n}
	case msgDigest:
		m.Ref = d.uvarint()
		m.Level = d.byte()
		if d.err == nil && m.Level > treeDepth {
			d.fail("digest level %d", m.Level)
		}
		n := d.count(9)
		m.Nodes = make([]treeNode, 0, n)
		for range n {
			idx := d.uvarint()
			if d.err == nil && idx >= uint64(levelSize(int(m.Level))) {
				d.fail("digest index %d at level %d", idx, m.Level)
			}
			m.Nodes = append(m.Nodes, treeNode{Index: uint32(idx), Hash: d.hash()})
		}
	case msgSummary:
		m.Ref = d.uvarint()
		n := d.count(2)
		m.Leaves = make([]leafSummary, 0, n)
		for range n {
			leaf := d.uvarint()
			if d.err == nil && leaf >= numLeaves {
				d.fail("leaf %d", leaf)
			}
			k := d.count(6)
			items := make([]summaryItem, 0, k)
			for range k {
				it := summaryItem{Key: d.key()}
				it.Version = d.version()
				it.Deleted = d.flags(flagDeleted) == flagDeleted
				items = append(items, it)
			}
			m.Leaves = append(m.Leaves, leafSummary{Leaf: uint32(leaf), Items: items})
		}
	case msgPush:
		m.Ref = d.uvarint()
		m.Final = d.flags(flagFinal) == flagFinal
		m.Entries = decodeEntries(d)
		n := d.count(5)
		m.Wants = make([]want, 0, n)
		for range n {
			w := want{Key: d.key()}
			w.Version = d.version()
			m.Wants = append(m.Wants, w)
		}
	case msgSyncReq:
		m.Ref = d.uvarint()
	case msgSyncData:
		m.Ref = d.uvarint()
		m.Seq = d.uvarint()
		m.Last = d.flags(flagLast) == flagLast
		m.Entries = decodeEntries(d)
	case msgNotSynced:
		m.Ref = d.uvarint()
		m.LastSync = d.varint()
		m.Keys = d.uvarint()
		m.Busy = d.flags(flagBusy) == flagBusy
	default:
		d.fail("unknown message type %d", byte(m.Type))
	}
	d.end()
	if d.err != nil {
		return message{}, fmt.Errorf("decode %s message: %w: %w", m.Type, ErrMalformedMessage, d.err)
	}
	return m, nil
}

func decodeEntries(d *decoder) []entry {
	n := d.count(7)
	out := make([]entry, 0, n)
	for range n {
		out = append(out, d.entry())
	}
	return out
}

// encodeRecord is the stored form of e (its key is the bolt key):
// [format][version][flags][value].
func encodeRecord(e entry) []byte {
	enc := &encoder{b: make([]byte, 0, 24+len(e.Version.Node)+len(e.Value))}
	enc.byte(recordFormat)
	enc.version(e.Version)
	enc.bool(e.Deleted)
	enc.str(e.Value)
	return enc.b
}

// decodeRecord parses a stored record of key. The value is copied, so the
// result outlives the bolt transaction. An error wraps ErrMalformedRecord.
func decodeRecord(key, b []byte) (entry, error) {
	d := &decoder{b: b}
	if f := d.byte(); d.err == nil && f != recordFormat {
		d.fail("record format %d", f)
	}
	e := entry{Key: string(key)}
	e.Version = d.version()
	e.Deleted = d.flags(flagDeleted) == flagDeleted
	e.Value = d.str(maxValueLimit)
	d.end()
	if d.err == nil && !e.valid() {
		d.fail("invalid entry")
	}
	if d.err != nil {
		return entry{}, fmt.Errorf("decode record of key %q: %w: %w", truncateKey(key), ErrMalformedRecord, d.err)
	}
	return e, nil
}

// decodeRecordVersion reads only the version and flags of a record, for
// the compare-and-write of merges.
func decodeRecordVersion(b []byte) (Version, bool, error) {
	d := &decoder{b: b}
	if f := d.byte(); d.err == nil && f != recordFormat {
		d.fail("record format %d", f)
	}
	v := d.version()
	deleted := d.flags(flagDeleted) == flagDeleted
	if d.err != nil {
		return Version{}, false, fmt.Errorf("%w: %w", ErrMalformedRecord, d.err)
	}
	return v, deleted, nil
}

// truncateKey shortens a key for an error message (keys are data, but
// not secret; values are never logged).
func truncateKey(key []byte) string {
	const max = 64
	if len(key) <= max {
		return string(key)
	}
	k := key[:max]
	for len(k) > 0 && !utf8.Valid(k) {
		k = k[:len(k)-1]
	}
	return string(k) + "..."
}
