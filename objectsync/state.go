package objectsync

import (
	"errors"
	"strings"
	"sync/atomic"

	"shoal/internal/wire"
	"shoal/objectsync/internal/document"
)

// reservedPrefix starts the ids of the read-only introspection objects.
const reservedPrefix = "shoal:"

// state is the replicated state of the module. Objects are immutable once
// in the map (a change replaces the *object), so a snapshot or a reader
// may keep one without a lock; only their frame caches change, and those
// are not state.
type state struct {
	objects map[string]*object
	claims  map[string]string // id -> owner of its master
	deps    map[string]uint64 // named dependency counters
}

func newState() *state {
	return &state{objects: map[string]*object{}, claims: map[string]string{}, deps: map[string]uint64{}}
}

// object is one object's state.
type object struct {
	id      string
	seq     uint64 // the Raft index of the command that made this state
	ver     document.Version
	data    []byte        // canonical JSON object
	history []*patchEntry // the patches that led here, oldest first, the last ending at seq
	updated int64         // command time of that command, Unix nanoseconds
	// stalled: a producer said this version exists but its data is not
	// ready; data is JSON null until a write of the same version (or a
	// newer one) brings it.
	stalled bool

	full atomic.Pointer[frame] // the "object" frame of this state, encoded on first use
}

// patchEntry is one patch of an object's history.
type patchEntry struct {
	fromSeq, toSeq uint64
	from, to       string // canonical versions
	patch          []byte // canonical RFC 6902 patch

	frame atomic.Pointer[frame] // its "patch" frame, encoded on first use
}

// change is what one command did to an object, for the fan-out.
type change struct {
	id    string
	obj   *object     // the new state; nil when removed
	entry *patchEntry // the patch that made obj, if it was a patch
}

// write applies a write at Raft index seq and command time now. A full
// write of the current version with the current object is a no-op that
// succeeds (nil change), so that a client may retry a write whose outcome
// it does not know.
func (st *state) write(c writeCmd, seq uint64, now int64) (*change, error) {
	if strings.HasPrefix(c.id, reservedPrefix) {
		return nil, ErrReservedID
	}
	if owner := st.claims[c.id]; owner != "" && owner != c.owner {
		return nil, ErrConflict.WithMessage("object %q is held by another master", c.id)
	}
	to := document.MustVersion(c.to)
	if to.IsZero() {
		return nil, ErrInvalidVersion // decodeWrite checked it; defensive
	}
	cur := st.objects[c.id]
	var full []byte // the canonical object of a full write
	if !c.patch {
		data, err := document.Object(c.data, c.maxSize)
		switch {
		case errors.Is(err, document.ErrTooLarge):
			return nil, ErrTooLarge.WithMessage("object %q is over %d bytes", c.id, c.maxSize)
		case err != nil:
			return nil, ErrInvalidObject
		}
		if cur != nil && c.to == cur.ver.String() && string(data) == string(cur.data) {
			return nil, nil // the same state again (a retried write): nothing to do
		}
		full = data
	}
	completes := cur != nil && cur.stalled && !c.patch && c.to == cur.ver.String() // the stalled data arrives
	if cur != nil && !completes && !document.Newer(to, cur.ver) {
		return nil, ErrStaleVersion.WithMessage("version %s does not follow the current version %s of %q", c.to, cur.ver, c.id)
	}
	next := &object{id: c.id, seq: seq, ver: to, updated: now}
	var entry *patchEntry
	if c.patch {
		if cur == nil || cur.seq != c.fromSeq {
			return nil, ErrVersionMoved.WithMessage("object %q changed since the patch was made", c.id)
		}
		if cur.stalled {
			return nil, ErrPatchFailed.WithMessage("object %q is stalled: it has no data to patch", c.id)
		}
		patch, err := document.Patch(c.data) // the writer did; a log is not trusted to be canonical
		if err != nil {
			return nil, ErrBadPatch
		}
		data, err := document.ApplyCanonical(cur.data, patch, c.maxSize)
		switch {
		case errors.Is(err, document.ErrTooLarge):
			return nil, ErrTooLarge.WithMessage("patched, object %q would be over %d bytes", c.id, c.maxSize)
		case err != nil:
			return nil, ErrPatchFailed.WithMessage("the patch does not apply to object %q: %s", c.id, err.Error())
		}
		next.data = data
		entry = &patchEntry{fromSeq: cur.seq, toSeq: seq, from: cur.ver.String(), to: c.to, patch: patch}
		next.history = appendHistory(cur.history, entry, c.history)
	} else {
		next.data = full
	}
	st.objects[c.id] = next
	return &change{id: c.id, obj: next, entry: entry}, nil
}

// stall records that version c.to of an object exists while its data is
// not ready (a producer's stall): subscribers see the version and no
// data (JSON null), never the stale data of the version before.
func (st *state) stall(c writeCmd, seq uint64, now int64) (*change, error) {
	if strings.HasPrefix(c.id, reservedPrefix) {
		return nil, ErrReservedID
	}
	if owner := st.claims[c.id]; owner != "" && owner != c.owner {
		return nil, ErrConflict.WithMessage("object %q is held by another master", c.id)
	}
	to := document.MustVersion(c.to)
	cur := st.objects[c.id]
	switch {
	case cur != nil && cur.stalled && c.to == cur.ver.String():
		return nil, nil // stalled already
	case cur != nil && !document.Newer(to, cur.ver):
		return nil, ErrStaleVersion.WithMessage("version %s does not follow the current version %s of %q", c.to, cur.ver, c.id)
	}
	next := &object{id: c.id, seq: seq, ver: to, data: []byte("null"), updated: now, stalled: true}
	st.objects[c.id] = next
	return &change{id: c.id, obj: next}, nil
}

// appendHistory returns h with e appended and trimmed to the newest
// keep entries. It never writes into h's elements, so a snapshot that
// holds h stays as it was.
func appendHistory(h []*patchEntry, e *patchEntry, keep int) []*patchEntry {
	if keep <= 0 {
		return nil
	}
	if len(h) >= keep {
		h = h[len(h)-keep+1:]
	}
	out := make([]*patchEntry, 0, len(h)+1)
	return append(append(out, h...), e)
}

func (st *state) remove(id string) (*change, error) {
	if st.objects[id] == nil {
		return nil, ErrNotFound.WithMessage("no object %q", id)
	}
	delete(st.objects, id)
	return &change{id: id}, nil
}

func (st *state) claim(c claimCmd) error {
	if strings.HasPrefix(c.id, reservedPrefix) {
		return ErrReservedID
	}
	if owner := st.claims[c.id]; owner != "" && owner != c.owner {
		return ErrConflict.WithMessage("object %q is held by another master", c.id)
	}
	st.claims[c.id] = c.owner
	return nil
}

func (st *state) release(c claimCmd) {
	if st.claims[c.id] == c.owner {
		delete(st.claims, c.id)
	}
}

// releaseNode drops the claims whose owner is of node, except those of
// incarnation keep, and returns how many it dropped. Map order does not
// matter: the result is the same set.
func (st *state) releaseNode(c releaseNodeCmd) int {
	prefix := c.node + "/"
	kept := prefix + c.keep + "/"
	n := 0
	for id, owner := range st.claims {
		if strings.HasPrefix(owner, prefix) && (c.keep == "" || !strings.HasPrefix(owner, kept)) {
			delete(st.claims, id)
			n++
		}
	}
	return n
}

func (st *state) bump(name string) []byte {
	st.deps[name]++
	return wire.AppendUvarint(nil, st.deps[name])
}

// catchUp returns the patches that lead from version have to the current
// state of o, if have is in its history; ok is false otherwise.
func (o *object) catchUp(have string) (entries []*patchEntry, ok bool) {
	for i, e := range o.history {
		if e.from == have {
			return o.history[i:], true
		}
	}
	return nil, false
}
