package kv

import (
	"fmt"
	"unicode/utf8"

	"shoal/internal/wire"
)

// The wire format of the kv channel. Every message is
//
//	[type byte][from: uvarint length + node name][body]
//
// in the primitives of internal/wire: integers as minimal (u)varints,
// strings as a uvarint length and bytes, and hashes as 8 bytes
// little-endian. A message with trailing bytes, unknown flag bits, an
// out-of-range field or an invalid entry is malformed and dropped whole.
// The bodies:
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
// where entry is key, version, flags(deleted, expires), [expires], value
// and version is time, counter, node. The expiry (Unix ms, a varint) is
// there only when its flag is set; an entry without one is byte for byte
// what the release before TTLs sent, so both releases read it. A node of
// that release drops a message with an entry that has an expiry (unknown
// flag): see docs/kv.md, "Rolling upgrades". Tags and types are part of
// the protocol: a type number is never reused.
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
	flagExpires = 1 << 1 // entry flags: an expiry follows
	flagFinal   = 1 << 0 // push flags
	flagLast    = 1 << 0 // syncdata flags
	flagBusy    = 1 << 0 // notsynced flags
)

// recordFormat is the first byte of every stored record.
const recordFormat = 1

func boolFlag(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func appendVersion(b []byte, v Version) []byte {
	b = wire.AppendVarint(b, v.Time)
	b = wire.AppendUvarint(b, uint64(v.Counter))
	return wire.AppendBytes(b, v.Node)
}

func appendEntry(b []byte, en entry) []byte {
	b = wire.AppendBytes(b, en.Key)
	b = appendVersion(b, en.Version)
	return appendBody(b, en)
}

// appendBody appends what follows the version of an entry, on the wire
// and on disk alike: flags, the expiry if any, the value.
func appendBody(b []byte, en entry) []byte {
	flags := boolFlag(en.Deleted)
	if en.Expires != 0 {
		flags |= flagExpires
	}
	b = append(b, flags)
	if en.Expires != 0 {
		b = wire.AppendVarint(b, en.Expires)
	}
	return wire.AppendBytes(b, en.Value)
}

// decoder reads the wire format: a wire.Decoder (the first error sticks
// and every later read returns zero values) with kv's fields on top.
type decoder struct{ *wire.Decoder }

// flags reads a flag byte that may only have the bits in allowed.
func (d decoder) flags(field string, allowed byte) byte {
	f := d.Byte(field)
	if f&^allowed != 0 {
		d.Failf(field, "unknown flags %#x", f)
	}
	return f
}

func (d decoder) version() Version {
	v := Version{Time: d.Varint("version time")}
	c := d.Uvarint("version counter")
	if c > 1<<32-1 {
		d.Failf("version counter", "%d out of range", c)
	}
	v.Counter = uint32(c)
	v.Node = d.String("version node", maxNodeLen)
	if d.Err() == nil && (v.Time < 0 || v.Time > maxTime || !validNode(v.Node)) {
		d.Failf("version", "invalid version")
	}
	return v
}

func (d decoder) entry() entry {
	e := entry{Key: d.String("key", MaxKeyLen)}
	e.Version = d.version()
	e.Deleted, e.Expires = d.entryFlags("entry flags")
	e.Value = d.String("value", maxValueLimit)
	if d.Err() == nil && !e.valid() {
		d.Failf("entry", "invalid entry")
	}
	return e
}

// entryFlags reads the flags of an entry and the expiry they announce.
// An expiry flag with a zero expiry is refused, so that every entry has
// one encoding.
func (d decoder) entryFlags(field string) (deleted bool, expires int64) {
	f := d.flags(field, flagDeleted|flagExpires)
	if f&flagExpires != 0 {
		expires = d.Varint("expires")
		if d.Err() == nil && expires == 0 {
			d.Failf("expires", "zero expiry with its flag set")
		}
	}
	return f&flagDeleted != 0, expires
}

func (d decoder) key() string {
	k := d.String("key", MaxKeyLen)
	if d.Err() == nil && !validKey(k) {
		d.Failf("key", "invalid key")
	}
	return k
}

// encodeMessage returns the wire form of m.
func encodeMessage(m message) []byte {
	b := make([]byte, 0, 64)
	b = append(b, byte(m.Type))
	b = wire.AppendBytes(b, m.From)
	switch m.Type {
	case msgEntry:
		b = appendEntry(b, m.Entries[0])
	case msgNotice:
		n := m.Entries[0]
		b = wire.AppendBytes(b, n.Key)
		b = appendVersion(b, n.Version)
		b = wire.AppendBool(b, n.Deleted)
	case msgDigest:
		b = wire.AppendUvarint(b, m.Ref)
		b = append(b, m.Level)
		b = wire.AppendUvarint(b, uint64(len(m.Nodes)))
		for _, n := range m.Nodes {
			b = wire.AppendUvarint(b, uint64(n.Index))
			b = wire.AppendUint64LE(b, n.Hash)
		}
	case msgSummary:
		b = wire.AppendUvarint(b, m.Ref)
		b = wire.AppendUvarint(b, uint64(len(m.Leaves)))
		for _, l := range m.Leaves {
			b = wire.AppendUvarint(b, uint64(l.Leaf))
			b = wire.AppendUvarint(b, uint64(len(l.Items)))
			for _, it := range l.Items {
				b = wire.AppendBytes(b, it.Key)
				b = appendVersion(b, it.Version)
				b = wire.AppendBool(b, it.Deleted)
			}
		}
	case msgPush:
		b = wire.AppendUvarint(b, m.Ref)
		b = wire.AppendBool(b, m.Final)
		b = wire.AppendUvarint(b, uint64(len(m.Entries)))
		for _, en := range m.Entries {
			b = appendEntry(b, en)
		}
		b = wire.AppendUvarint(b, uint64(len(m.Wants)))
		for _, w := range m.Wants {
			b = wire.AppendBytes(b, w.Key)
			b = appendVersion(b, w.Version)
		}
	case msgSyncReq:
		b = wire.AppendUvarint(b, m.Ref)
	case msgSyncData:
		b = wire.AppendUvarint(b, m.Ref)
		b = wire.AppendUvarint(b, m.Seq)
		b = wire.AppendBool(b, m.Last)
		b = wire.AppendUvarint(b, uint64(len(m.Entries)))
		for _, en := range m.Entries {
			b = appendEntry(b, en)
		}
	case msgNotSynced:
		b = wire.AppendUvarint(b, m.Ref)
		b = wire.AppendVarint(b, m.LastSync)
		b = wire.AppendUvarint(b, m.Keys)
		b = wire.AppendBool(b, m.Busy)
	}
	return b
}

// decodeMessage parses a message. It never panics and allocates in
// proportion to len(b); an error wraps ErrMalformedMessage.
func decodeMessage(b []byte) (message, error) {
	d := decoder{wire.NewDecoder(b)}
	m := message{Type: msgType(d.Byte("type"))}
	m.From = d.String("sender", maxNodeLen)
	if d.Err() == nil && !validNode(m.From) {
		d.Failf("sender", "invalid sender")
	}
	switch m.Type {
	case msgEntry:
		m.Entries = []entry{d.entry()}
	case msgNotice:
		n := entry{Key: d.key()}
		n.Version = d.version()
		n.Deleted = d.flags("notice flags", flagDeleted) == flagDeleted
		m.Entries = []entry{n}
	case msgDigest:
		m.Ref = d.Uvarint("round")
		m.Level = d.Byte("digest level")
		if d.Err() == nil && m.Level > treeDepth {
			d.Failf("digest level", "level %d", m.Level)
		}
		n := d.Count("digest nodes", 9)
		m.Nodes = make([]treeNode, 0, n)
		for range n {
			idx := d.Uvarint("digest index")
			if d.Err() == nil && idx >= uint64(levelSize(int(m.Level))) {
				d.Failf("digest index", "index %d at level %d", idx, m.Level)
			}
			m.Nodes = append(m.Nodes, treeNode{Index: uint32(idx), Hash: d.Uint64LE("digest hash")})
		}
	case msgSummary:
		m.Ref = d.Uvarint("round")
		n := d.Count("summary leaves", 2)
		m.Leaves = make([]leafSummary, 0, n)
		for range n {
			leaf := d.Uvarint("summary leaf")
			if d.Err() == nil && leaf >= numLeaves {
				d.Failf("summary leaf", "leaf %d", leaf)
			}
			k := d.Count("summary items", 6)
			items := make([]summaryItem, 0, k)
			for range k {
				it := summaryItem{Key: d.key()}
				it.Version = d.version()
				it.Deleted = d.flags("summary flags", flagDeleted) == flagDeleted
				items = append(items, it)
			}
			m.Leaves = append(m.Leaves, leafSummary{Leaf: uint32(leaf), Items: items})
		}
	case msgPush:
		m.Ref = d.Uvarint("round")
		m.Final = d.flags("push flags", flagFinal) == flagFinal
		m.Entries = decodeEntries(d)
		n := d.Count("wants", 5)
		m.Wants = make([]want, 0, n)
		for range n {
			w := want{Key: d.key()}
			w.Version = d.version()
			m.Wants = append(m.Wants, w)
		}
	case msgSyncReq:
		m.Ref = d.Uvarint("session")
	case msgSyncData:
		m.Ref = d.Uvarint("session")
		m.Seq = d.Uvarint("sequence")
		m.Last = d.flags("syncdata flags", flagLast) == flagLast
		m.Entries = decodeEntries(d)
	case msgNotSynced:
		m.Ref = d.Uvarint("session")
		m.LastSync = d.Varint("last sync")
		m.Keys = d.Uvarint("keys")
		m.Busy = d.flags("notsynced flags", flagBusy) == flagBusy
	default:
		d.Failf("type", "unknown message type %d", byte(m.Type))
	}
	if err := d.End(); err != nil {
		return message{}, fmt.Errorf("decode %s message: %w: %w", m.Type, ErrMalformedMessage, err)
	}
	return m, nil
}

func decodeEntries(d decoder) []entry {
	n := d.Count("entries", 7)
	out := make([]entry, 0, n)
	for range n {
		out = append(out, d.entry())
	}
	return out
}

// encodeRecord is the stored form of e (its key is the bolt key):
// [format][version][flags][expires, if flagged][value]. A record without
// an expiry is the format of the release before TTLs, which reads it; that
// release refuses to open a store with a record that has one (a downgrade
// must wait until the TTL entries have expired and been collected, or
// start on an empty data directory).
func encodeRecord(e entry) []byte {
	b := make([]byte, 0, 34+len(e.Version.Node)+len(e.Value))
	b = append(b, recordFormat)
	b = appendVersion(b, e.Version)
	return appendBody(b, e)
}

// decodeRecord parses a stored record of key. The value is copied, so the
// result outlives the bolt transaction. An error wraps ErrMalformedRecord.
func decodeRecord(key, b []byte) (entry, error) {
	d := decoder{wire.NewDecoder(b)}
	if f := d.Byte("record format"); d.Err() == nil && f != recordFormat {
		d.Failf("record format", "format %d", f)
	}
	e := entry{Key: string(key)}
	e.Version = d.version()
	e.Deleted, e.Expires = d.entryFlags("record flags")
	e.Value = d.String("value", maxValueLimit)
	if d.End() == nil && !e.valid() {
		d.Failf("entry", "invalid entry")
	}
	if err := d.Err(); err != nil {
		return entry{}, fmt.Errorf("decode record of key %q: %w: %w", truncateKey(key), ErrMalformedRecord, err)
	}
	return e, nil
}

// decodeRecordVersion reads only the version, flags and expiry of a
// record, for the compare-and-write of merges and the index.
func decodeRecordVersion(b []byte) (v Version, deleted bool, expires int64, err error) {
	d := decoder{wire.NewDecoder(b)}
	if f := d.Byte("record format"); d.Err() == nil && f != recordFormat {
		d.Failf("record format", "format %d", f)
	}
	v = d.version()
	deleted, expires = d.entryFlags("record flags")
	if d.Err() == nil && !validExpiry(v, deleted, expires) {
		d.Failf("expires", "invalid expiry")
	}
	if err := d.Err(); err != nil {
		return Version{}, false, 0, fmt.Errorf("%w: %w", ErrMalformedRecord, err)
	}
	return v, deleted, expires, nil
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
