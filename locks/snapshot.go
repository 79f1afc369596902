package locks

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"shoal/internal/wire"
)

// A snapshot is the whole state in the encoding of command.go (the
// primitives of internal/wire):
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
	b := append([]byte(snapshotMagic), snapshotVersion)
	b = wire.AppendUvarint(b, st.lastToken)
	b = wire.AppendUvarint(b, uint64(len(st.sems)+len(st.locks)))
	for _, tbl := range []map[string]*sem{st.sems, st.locks} {
		sems := make([]*sem, 0, len(tbl))
		for _, s := range tbl {
			sems = append(sems, s)
		}
		slices.SortFunc(sems, func(a, b *sem) int { return strings.Compare(a.name, b.name) })
		for _, s := range sems {
			b = append(b, byte(s.kind))
			b = wire.AppendBytes(b, s.name)
			b = wire.AppendUvarint(b, uint64(s.limit))
			hs := s.sortedHolders()
			b = wire.AppendUvarint(b, uint64(len(hs)))
			for _, h := range hs {
				b = wire.AppendBytes(b, h.id)
				b = append(b, byte(h.mode))
				b = wire.AppendUvarint(b, h.token)
				b = wire.AppendUvarint(b, uint64(h.ttl))
				b = wire.AppendVarint(b, h.expires)
				b = wire.AppendUvarint(b, h.origin)
			}
			b = wire.AppendUvarint(b, uint64(len(s.queue)))
			for _, w := range s.queue {
				b = wire.AppendBytes(b, w.holder)
				b = append(b, byte(w.mode))
				b = wire.AppendUvarint(b, uint64(w.ttl))
				b = wire.AppendUvarint(b, uint64(w.wait))
				b = wire.AppendVarint(b, w.deadline)
				b = wire.AppendUvarint(b, w.nonce)
			}
		}
	}
	return b
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
	d := newDecoder(b)
	d.Header(snapshotMagic, snapshotVersion)
	st.lastToken = d.Uvarint("last token")
	count := d.Uvarint("count")
	var prev *sem
	for i := uint64(0); i < count && d.Err() == nil; i++ {
		s := decodeSem(d, st.lastToken)
		if d.Err() != nil {
			break
		}
		if prev != nil && cmp.Or(cmp.Compare(prev.kind, s.kind), strings.Compare(prev.name, s.name)) >= 0 {
			d.Failf("name", "%s %q out of order after %s %q", s.kind, s.name, prev.kind, prev.name)
			break
		}
		prev = s
		st.table(s.kind)[s.name] = s
		st.holders += len(s.holders)
		st.waiters += len(s.queue)
	}
	if err := d.End(); err != nil {
		return nil, fmt.Errorf("decode snapshot: %w: %w", ErrMalformedSnapshot, err)
	}
	return st, nil
}

// decodeSem reads one semaphore or lock and checks its invariants.
func decodeSem(d decoder, lastToken uint64) *sem {
	k := d.kind()
	name := d.name()
	limit := d.Uvarint("limit")
	if d.Err() != nil {
		return nil
	}
	switch {
	case k == kindSemaphore && (limit < 1 || limit > maxLimit):
		d.Failf("limit", "semaphore %q with limit %d", name, limit)
	case k == kindLock && limit != 0:
		d.Failf("limit", "lock %q with limit %d", name, limit)
	}
	s := newSem(k, name, int(limit))
	nh := d.Uvarint("holder count")
	if d.Err() == nil && nh > maxHoldersPerName {
		d.Failf("holder count", "%s %q with %d holders", k, name, nh)
	}
	var prevToken uint64
	for j := uint64(0); j < nh && d.Err() == nil; j++ {
		h := &holder{id: d.holder(), mode: mode(d.Byte("mode")), token: d.Uvarint("token")}
		h.ttl = d.duration("ttl", 1, maxTTLBound)
		h.expires = d.Varint("expires")
		h.origin = d.Uvarint("origin")
		switch {
		case d.Err() != nil:
		case !validMode(k, h.mode):
			d.Failf("mode", "holder %q of %s %q in mode %d", h.id, k, name, h.mode)
		case h.token == 0 || h.token <= prevToken || h.token > lastToken:
			d.Failf("token", "holder %q of %s %q with token %d", h.id, k, name, h.token)
		case s.holders[h.id] != nil:
			d.Failf("holder", "holder %q twice in %s %q", h.id, k, name)
		}
		if d.Err() != nil {
			break
		}
		prevToken = h.token
		s.holders[h.id] = h
		if h.mode == modeWrite {
			s.writers++
		}
	}
	if d.Err() == nil && s.writers > 0 && len(s.holders) > 1 {
		d.Failf("holder", "lock %q has a writer and %d other holders", name, len(s.holders)-1)
	}
	nw := d.Uvarint("waiter count")
	if d.Err() == nil && nw > maxWaiters {
		d.Failf("waiter count", "%s %q with %d waiters", k, name, nw)
	}
	waiting := map[string]bool{}
	nonces := map[uint64]bool{}
	for j := uint64(0); j < nw && d.Err() == nil; j++ {
		w := &waiter{holder: d.holder(), mode: mode(d.Byte("mode"))}
		w.ttl = d.duration("ttl", 1, maxTTLBound)
		w.wait = d.duration("wait", 1, maxWaitBound)
		w.deadline = d.Varint("deadline")
		w.nonce = d.nonce()
		switch {
		case d.Err() != nil:
		case !validMode(k, w.mode):
			d.Failf("mode", "waiter %q of %s %q in mode %d", w.holder, k, name, w.mode)
		case s.holders[w.holder] != nil || waiting[w.holder]:
			d.Failf("holder", "waiter %q of %s %q also holds or waits", w.holder, k, name)
		case nonces[w.nonce]:
			d.Failf("nonce", "waiter nonce %d twice in %s %q", w.nonce, k, name)
		}
		if d.Err() == nil {
			s.queue = append(s.queue, w)
			waiting[w.holder], nonces[w.nonce] = true, true
		}
	}
	if d.Err() == nil && k == kindLock && len(s.holders) == 0 && len(s.queue) == 0 {
		d.Failf("holder count", "idle lock %q", name)
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
