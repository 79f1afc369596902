package locks

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// A snapshot is the whole state in the encoding of command.go:
//
//	"SLCK" version(1) lastToken count
//	count × ( kind name limit
//	          holders × ( id mode token ttl expires origin )   prefixed by their count
//	          waiters × ( holder mode ttl wait deadline nonce ) prefixed by their count )
//
// Semaphores come before locks, each in name order; holders are in token
// order and waiters in queue order, so equal states persist to equal bytes.
// The state of this module is small (it is bounded by its holders and
// waiters), so Snapshot encodes it at once on the FSM goroutine and
// Persist only writes the bytes.

const (
	snapshotMagic   = "SLCK"
	snapshotVersion = 1
	// maxHoldersPerName bounds the holders one snapshot entry may claim
	// (read locks have no limit of their own).
	maxHoldersPerName = 1 << 24
)

// snapshot is the persisted form of the state at one point of the log.
type snapshot struct{ b []byte }

// Persist writes the snapshot to w.
func (s snapshot) Persist(w io.Writer) error {
	if _, err := w.Write(s.b); err != nil {
		return fmt.Errorf("persist locks snapshot: %w", err)
	}
	return nil
}

// Release does nothing: the snapshot holds only memory.
func (s snapshot) Release() {}

// encode returns the snapshot encoding of st.
func (st *state) encode() []byte {
	var e encoder
	e.b = append(e.b, snapshotMagic...)
	e.byte(snapshotVersion)
	e.uvarint(st.lastToken)
	e.uvarint(uint64(len(st.sems) + len(st.locks)))
	for _, tbl := range []map[string]*sem{st.sems, st.locks} {
		sems := make([]*sem, 0, len(tbl))
		for _, s := range tbl {
			sems = append(sems, s)
		}
		slices.SortFunc(sems, func(a, b *sem) int { return strings.Compare(a.name, b.name) })
		for _, s := range sems {
			e.byte(byte(s.kind))
			e.str(s.name)
			e.uvarint(uint64(s.limit))
			hs := s.sortedHolders()
			e.uvarint(uint64(len(hs)))
			for _, h := range hs {
				e.str(h.id)
				e.byte(byte(h.mode))
				e.uvarint(h.token)
				e.uvarint(uint64(h.ttl))
				e.varint(h.expires)
				e.uvarint(h.origin)
			}
			e.uvarint(uint64(len(s.queue)))
			for _, w := range s.queue {
				e.str(w.holder)
				e.byte(byte(w.mode))
				e.uvarint(uint64(w.ttl))
				e.uvarint(uint64(w.wait))
				e.varint(w.deadline)
				e.uvarint(w.nonce)
			}
		}
	}
	return e.b
}

// readSnapshot decodes a snapshot written by Persist into a new state,
// checking every invariant the state machine keeps. An empty reader is the
// empty state. It never panics.
func readSnapshot(r io.Reader) (*state, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("restore locks snapshot: read: %w", err)
	}
	st, err := decodeSnapshot(b)
	if err != nil {
		return nil, fmt.Errorf("restore locks snapshot: %w", err)
	}
	return st, nil
}

func decodeSnapshot(b []byte) (*state, error) {
	st := newState()
	if len(b) == 0 {
		return st, nil
	}
	d := newDecoder(b, ErrMalformedSnapshot)
	if len(b) < len(snapshotMagic) || string(b[:len(snapshotMagic)]) != snapshotMagic {
		d.fail("bad magic")
	} else {
		d.b = d.b[len(snapshotMagic):]
	}
	if v := d.byte(); d.err == nil && v != snapshotVersion {
		d.fail("unsupported version %d", v)
	}
	st.lastToken = d.uvarint()
	count := d.uvarint()
	var prev *sem
	for i := uint64(0); i < count && d.err == nil; i++ {
		s := decodeSem(d, st.lastToken)
		if d.err != nil {
			break
		}
		if prev != nil && cmp.Or(cmp.Compare(prev.kind, s.kind), strings.Compare(prev.name, s.name)) >= 0 {
			d.fail("%s %q out of order after %s %q", s.kind, s.name, prev.kind, prev.name)
			break
		}
		prev = s
		st.table(s.kind)[s.name] = s
		st.holders += len(s.holders)
		st.waiters += len(s.queue)
	}
	if err := d.end("snapshot"); err != nil {
		return nil, err
	}
	return st, nil
}

// decodeSem reads one semaphore or lock and checks its invariants.
func decodeSem(d *decoder, lastToken uint64) *sem {
	k := d.kind()
	name := d.name()
	limit := d.uvarint()
	if d.err != nil {
		return nil
	}
	switch {
	case k == kindSemaphore && (limit < 1 || limit > maxLimit):
		d.fail("semaphore %q with limit %d", name, limit)
	case k == kindLock && limit != 0:
		d.fail("lock %q with limit %d", name, limit)
	}
	s := newSem(k, name, int(limit))
	nh := d.uvarint()
	if d.err == nil && nh > maxHoldersPerName {
		d.fail("%s %q with %d holders", k, name, nh)
	}
	var prevToken uint64
	for j := uint64(0); j < nh && d.err == nil; j++ {
		h := &holder{id: d.holder(), mode: mode(d.byte()), token: d.uvarint()}
		h.ttl = d.duration("ttl", 1, maxTTLBound)
		h.expires = d.varint()
		h.origin = d.uvarint()
		switch {
		case d.err != nil:
		case !validMode(k, h.mode):
			d.fail("holder %q of %s %q in mode %d", h.id, k, name, h.mode)
		case h.token == 0 || h.token <= prevToken || h.token > lastToken:
			d.fail("holder %q of %s %q with token %d", h.id, k, name, h.token)
		case s.holders[h.id] != nil:
			d.fail("holder %q twice in %s %q", h.id, k, name)
		}
		if d.err != nil {
			break
		}
		prevToken = h.token
		s.holders[h.id] = h
		if h.mode == modeWrite {
			s.writers++
		}
	}
	if d.err == nil && s.writers > 0 && len(s.holders) > 1 {
		d.fail("lock %q has a writer and %d other holders", name, len(s.holders)-1)
	}
	nw := d.uvarint()
	if d.err == nil && nw > maxWaiters {
		d.fail("%s %q with %d waiters", k, name, nw)
	}
	waiting := map[string]bool{}
	nonces := map[uint64]bool{}
	for j := uint64(0); j < nw && d.err == nil; j++ {
		w := &waiter{holder: d.holder(), mode: mode(d.byte())}
		w.ttl = d.duration("ttl", 1, maxTTLBound)
		w.wait = d.duration("wait", 1, maxWaitBound)
		w.deadline = d.varint()
		w.nonce = d.nonce()
		switch {
		case d.err != nil:
		case !validMode(k, w.mode):
			d.fail("waiter %q of %s %q in mode %d", w.holder, k, name, w.mode)
		case s.holders[w.holder] != nil || waiting[w.holder]:
			d.fail("waiter %q of %s %q also holds or waits", w.holder, k, name)
		case nonces[w.nonce]:
			d.fail("waiter nonce %d twice in %s %q", w.nonce, k, name)
		}
		if d.err == nil {
			s.queue = append(s.queue, w)
			waiting[w.holder], nonces[w.nonce] = true, true
		}
	}
	if d.err == nil && k == kindLock && len(s.holders) == 0 && len(s.queue) == 0 {
		d.fail("idle lock %q", name)
	}
	return s
}

// unixNano is t in Unix nanoseconds, 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
