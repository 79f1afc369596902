package objectsync

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"

	"shoal/internal/wire"
	"shoal/modules"
	"shoal/objectsync/internal/document"
)

// A snapshot is the whole state in the primitives of internal/wire:
//
//	"SOBJ" version(1)
//	count × ( id seq version data updated stalled
//	          history × ( fromSeq toSeq from to patch )  prefixed by their count )
//	count × ( id owner )     master claims
//	count × ( name value )   dependency counters
//
// Each list is sorted by id or name, so equal states persist to equal
// bytes. Snapshots carry the full objects and their patch histories: a
// node restored from a snapshot serves a reconnecting client the same
// patches as any other node, and the state is identical everywhere.

const (
	snapshotMagic   = "SOBJ"
	snapshotVersion = 1
)

// snapshot is the state at one point of the log: the objects are shared
// (they never change), the maps copied.
type snapshot struct {
	objects []*object
	claims  [][2]string
	deps    []depEntry
}

type depEntry struct {
	name  string
	value uint64
}

func captureSnapshot(st *state) snapshot {
	s := snapshot{objects: make([]*object, 0, len(st.objects))}
	for _, o := range st.objects {
		s.objects = append(s.objects, o)
	}
	sort.Slice(s.objects, func(i, j int) bool { return s.objects[i].id < s.objects[j].id })
	for id, owner := range st.claims {
		s.claims = append(s.claims, [2]string{id, owner})
	}
	sort.Slice(s.claims, func(i, j int) bool { return s.claims[i][0] < s.claims[j][0] })
	for name, v := range st.deps {
		s.deps = append(s.deps, depEntry{name, v})
	}
	sort.Slice(s.deps, func(i, j int) bool { return s.deps[i].name < s.deps[j].name })
	return s
}

// Persist writes the snapshot to w, one object at a time.
func (s snapshot) Persist(w io.Writer) error {
	bw := bufio.NewWriter(w)
	b := append([]byte(snapshotMagic), snapshotVersion)
	b = wire.AppendUvarint(b, uint64(len(s.objects)))
	if _, err := bw.Write(b); err != nil {
		return fmt.Errorf("persist objectsync snapshot: %w", err)
	}
	for _, o := range s.objects {
		if _, err := bw.Write(encodeObject(nil, o)); err != nil {
			return fmt.Errorf("persist objectsync snapshot: %w", err)
		}
	}
	b = wire.AppendUvarint(nil, uint64(len(s.claims)))
	for _, c := range s.claims {
		b = wire.AppendBytes(wire.AppendBytes(b, c[0]), c[1])
	}
	b = wire.AppendUvarint(b, uint64(len(s.deps)))
	for _, d := range s.deps {
		b = wire.AppendUvarint(wire.AppendBytes(b, d.name), d.value)
	}
	if _, err := bw.Write(b); err != nil {
		return fmt.Errorf("persist objectsync snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("persist objectsync snapshot: %w", err)
	}
	return nil
}

// Release does nothing: the snapshot holds only memory.
func (s snapshot) Release() {}

func encodeObject(b []byte, o *object) []byte {
	b = wire.AppendBytes(b, o.id)
	b = wire.AppendUvarint(b, o.seq)
	b = wire.AppendBytes(b, o.ver.String())
	b = wire.AppendBytes(b, o.data)
	b = wire.AppendVarint(b, o.updated)
	b = wire.AppendBool(b, o.stalled)
	b = wire.AppendUvarint(b, uint64(len(o.history)))
	for _, e := range o.history {
		b = wire.AppendUvarint(b, e.fromSeq)
		b = wire.AppendUvarint(b, e.toSeq)
		b = wire.AppendBytes(b, e.from)
		b = wire.AppendBytes(b, e.to)
		b = wire.AppendBytes(b, e.patch)
	}
	return b
}

// readSnapshot decodes a snapshot written by Persist into a new state,
// checking every invariant the state machine keeps. An empty reader is the
// empty state. It never panics.
func readSnapshot(r io.Reader) (*state, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("restore objectsync snapshot: read: %w", err)
	}
	st, err := decodeSnapshot(b)
	if err != nil {
		return nil, fmt.Errorf("restore objectsync snapshot: %w", err)
	}
	return st, nil
}

func decodeSnapshot(b []byte) (*state, error) {
	st := newState()
	if len(b) == 0 {
		return st, nil
	}
	d := newDecoder(b)
	d.Header(snapshotMagic, snapshotVersion)
	n := d.Count("object count", 8)
	prev := ""
	for i := 0; i < n && d.Err() == nil; i++ {
		o := decodeObject(d)
		if d.Err() != nil {
			break
		}
		if i > 0 && o.id <= prev {
			d.Failf("id", "object %q out of order", o.id)
			break
		}
		prev = o.id
		st.objects[o.id] = o
	}
	n = d.Count("claim count", 3)
	prev = ""
	for i := 0; i < n && d.Err() == nil; i++ {
		id, owner := d.id(), d.owner(true)
		if d.Err() == nil && i > 0 && id <= prev {
			d.Failf("claim", "claim of %q out of order", id)
		}
		prev = id
		st.claims[id] = owner
	}
	n = d.Count("dependency count", 3)
	prev = ""
	for i := 0; i < n && d.Err() == nil; i++ {
		name, v := d.depName(), d.Uvarint("value")
		if d.Err() == nil && (i > 0 && name <= prev || v == 0) {
			d.Failf("dependency", "dependency %q with %d out of order or zero", name, v)
		}
		prev = name
		st.deps[name] = v
	}
	if err := d.End(); err != nil {
		return nil, fmt.Errorf("decode snapshot: %w: %w", ErrMalformedSnapshot, err)
	}
	return st, nil
}

// decodeObject reads one object and checks its invariants: a valid id, a
// canonical version, a canonical JSON object, a contiguous history that
// ends at its state.
func decodeObject(d decoder) *object {
	o := &object{id: d.id(), seq: d.Uvarint("seq")}
	ver := d.version("version")
	data := d.Bytes("data", maxSizeBound)
	o.updated = d.Varint("updated")
	o.stalled = d.Bool("stalled")
	if d.Err() != nil {
		return nil
	}
	if o.seq == 0 {
		d.Failf("seq", "object %q with seq 0", o.id)
		return nil
	}
	if strings.HasPrefix(o.id, reservedPrefix) {
		d.Failf("id", "reserved id %q", o.id)
		return nil
	}
	o.ver = document.MustVersion(ver)
	if o.stalled {
		if string(data) != "null" {
			d.Failf("data", "stalled object %q has data", o.id)
			return nil
		}
		o.data = []byte("null")
	} else {
		c, err := document.Object(data, 0)
		if err != nil || string(c) != string(data) {
			d.Failf("data", "object %q is not a canonical JSON object", o.id)
			return nil
		}
		o.data = c
	}
	nh := d.Count("history count", 5)
	if d.Err() == nil && nh > maxHistoryBound {
		d.Failf("history count", "object %q with %d patches", o.id, nh)
	}
	for j := 0; j < nh && d.Err() == nil; j++ {
		e := &patchEntry{fromSeq: d.Uvarint("from seq"), toSeq: d.Uvarint("to seq"), from: d.version("from"), to: d.version("to")}
		p := d.Bytes("patch", maxSizeBound)
		if d.Err() != nil {
			break
		}
		if cp, err := document.Patch(p); err != nil || string(cp) != string(p) {
			d.Failf("patch", "object %q has a patch that is not canonical", o.id)
			break
		}
		e.patch = append([]byte(nil), p...)
		if e.fromSeq == 0 || e.fromSeq >= e.toSeq || (j > 0 && (o.history[j-1].toSeq != e.fromSeq || o.history[j-1].to != e.from)) {
			d.Failf("history", "object %q has a history that is not contiguous", o.id)
			break
		}
		o.history = append(o.history, e)
	}
	if d.Err() == nil && o.stalled && len(o.history) > 0 {
		d.Failf("history", "stalled object %q has a history", o.id)
	}
	if d.Err() == nil && len(o.history) > 0 {
		if last := o.history[len(o.history)-1]; last.toSeq != o.seq || last.to != ver {
			d.Failf("history", "object %q has a history that does not end at its state", o.id)
		}
	}
	return o
}

var _ modules.Snapshot = snapshot{}
