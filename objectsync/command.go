package objectsync

import (
	"fmt"

	"shoal/internal/wire"
	"shoal/modules"
	"shoal/objectsync/internal/document"
)

// Command ops of the objectsync module (the byte after the module's tag).
// An op is part of the replicated log format: never change or reuse one.
const (
	opWrite       byte = 1 // a new state of an object: a patch or the whole object
	opDelete      byte = 2 // remove an object
	opClaim       byte = 3 // a master claims an id
	opRelease     byte = 4 // a master gives an id up
	opReleaseNode byte = 5 // drop the claims of a node's earlier incarnations (or of a dead node)
	opBump        byte = 6 // increment a named dependency counter
	opStall       byte = 7 // a producer's version exists, its data is not ready
	// opCapped carries an opWrite, opStall or opBump with the cluster's
	// caps of the submitting node (--objectsync-max-objects,
	// --objectsync-max-dependencies): one that would create an object or a
	// dependency counter past its cap is refused, alike on every node.
	opCapped byte = 8
)

// Payloads are compact binary in the primitives of internal/wire:
//
//	opWrite        id owner isPatch fromSeq to data history maxSize
//	opDelete       id
//	opClaim        id owner
//	opRelease      id owner
//	opReleaseNode  node keep
//	opBump         name
//	opStall        as opWrite, with isPatch false, fromSeq 0 and no data
//
// data is the canonical JSON of the whole object, or of an RFC 6902 patch
// to the state at fromSeq (the Raft index of the command that made it);
// to is the canonical JSON of the new version. history and maxSize are
// the settings of the node that took the write: they travel in the
// command so that every node trims and bounds alike.

// maxOwnerLen bounds an owner: node name, incarnation and connection.
const maxOwnerLen = 512

type writeCmd struct {
	id      string
	owner   string // "" for a REST write
	patch   bool
	fromSeq uint64
	to      string
	data    []byte
	history int
	maxSize int
}

type claimCmd struct {
	id, owner string
}

type releaseNodeCmd struct {
	node string // owners starting with node + "/"
	keep string // ...except those of this incarnation ("" keeps none)
}

func encodeWrite(c writeCmd) []byte {
	b := wire.AppendBytes(nil, c.id)
	b = wire.AppendBytes(b, c.owner)
	b = wire.AppendBool(b, c.patch)
	b = wire.AppendUvarint(b, c.fromSeq)
	b = wire.AppendBytes(b, c.to)
	b = wire.AppendBytes(b, c.data)
	b = wire.AppendUvarint(b, uint64(c.history))
	return wire.AppendUvarint(b, uint64(c.maxSize))
}

func encodeID(id string) []byte { return wire.AppendBytes(nil, id) }

func encodeClaim(c claimCmd) []byte {
	return wire.AppendBytes(wire.AppendBytes(nil, c.id), c.owner)
}

func encodeReleaseNode(c releaseNodeCmd) []byte {
	return wire.AppendBytes(wire.AppendBytes(nil, c.node), c.keep)
}

// decoder reads the encoding: a wire.Decoder with this module's fields on
// top.
type decoder struct{ *wire.Decoder }

func newDecoder(b []byte) decoder { return decoder{wire.NewDecoder(b)} }

func (d decoder) id() string {
	s := d.String("id", document.MaxIDLen)
	if d.Err() == nil && !document.ValidID(s) {
		d.Failf("id", "id %q", s)
	}
	return s
}

func (d decoder) owner(required bool) string {
	s := d.String("owner", maxOwnerLen)
	if d.Err() == nil && required && s == "" {
		d.Failf("owner", "empty owner")
	}
	return s
}

func (d decoder) version(field string) string {
	s := d.String(field, document.MaxVersionBytes)
	if d.Err() != nil {
		return ""
	}
	if v, err := document.ParseVersion([]byte(s)); err != nil || v.String() != s {
		d.Failf(field, "not a canonical version")
	}
	return s
}

func (d decoder) depName() string {
	s := d.String("name", modules.MaxNameLen)
	if d.Err() == nil && !modules.ValidName(s) {
		d.Failf("name", "name %q", s)
	}
	return s
}

func (d decoder) end(what string) error {
	if err := d.End(); err != nil {
		return fmt.Errorf("decode %s: %w: %w", what, ErrMalformedCommand, err)
	}
	return nil
}

func decodeWrite(b []byte) (writeCmd, error) {
	d := newDecoder(b)
	c := writeCmd{id: d.id(), owner: d.owner(false), patch: d.Bool("patch")}
	c.fromSeq = d.Uvarint("from seq")
	c.to = d.version("to")
	c.data = d.Bytes("data", maxSizeBound+1<<20)
	h := d.Uvarint("history")
	if d.Err() == nil && h > maxHistoryBound {
		d.Failf("history", "history %d", h)
	}
	ms := d.Uvarint("max size")
	if d.Err() == nil && (ms < 2 || ms > maxSizeBound) {
		d.Failf("max size", "max size %d", ms)
	}
	if d.Err() == nil && c.patch != (c.fromSeq != 0) {
		d.Failf("from seq", "from seq %d with patch %t", c.fromSeq, c.patch)
	}
	c.history, c.maxSize = int(h), int(ms)
	return c, d.end("write")
}

func decodeID(b []byte) (string, error) {
	d := newDecoder(b)
	id := d.id()
	return id, d.end("delete")
}

func decodeClaim(b []byte) (claimCmd, error) {
	d := newDecoder(b)
	c := claimCmd{id: d.id(), owner: d.owner(true)}
	return c, d.end("claim")
}

func decodeReleaseNode(b []byte) (releaseNodeCmd, error) {
	d := newDecoder(b)
	c := releaseNodeCmd{node: d.String("node", maxOwnerLen), keep: d.String("keep", maxOwnerLen)}
	if d.Err() == nil && c.node == "" {
		d.Failf("node", "empty node")
	}
	return c, d.end("release node")
}

func decodeBump(b []byte) (string, error) {
	d := newDecoder(b)
	name := d.depName()
	return name, d.end("bump")
}

// decodeSeq decodes a write's or bump's result.
func decodeSeq(b []byte) (uint64, error) {
	d := newDecoder(b)
	v := d.Uvarint("result")
	return v, d.end("result")
}

// caps are the caps of an opCapped; 0 is no cap.
type caps struct{ objects, deps uint64 }

// encodeCapped wraps the payload of an opWrite, opStall or opBump (op):
// uvarint max objects, uvarint max dependencies, op, the inner payload.
func encodeCapped(c caps, op byte, payload []byte) []byte {
	b := wire.AppendUvarint(nil, c.objects)
	b = wire.AppendUvarint(b, c.deps)
	b = append(b, op)
	return append(b, payload...)
}

// decodeCapped unwraps an opCapped payload.
func decodeCapped(payload []byte) (caps, byte, []byte, error) {
	d := wire.NewDecoder(payload)
	var c caps
	c.objects = d.Uvarint("max objects")
	c.deps = d.Uvarint("max dependencies")
	op := d.Byte("capped op")
	if err := d.Err(); err != nil {
		return caps{}, 0, nil, fmt.Errorf("decode capped command: %w: %w", ErrMalformedCommand, err)
	}
	if op != opWrite && op != opStall && op != opBump {
		return caps{}, 0, nil, fmt.Errorf("capped command of op %d: %w", op, ErrMalformedCommand)
	}
	return c, op, d.Rest(), nil
}
