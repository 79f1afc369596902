package segment

import (
	"fmt"
	"io"
)

// Read returns up to maxEntries consecutive entries from offset from on,
// stopping early once their data reaches maxBytes (0: no byte limit; at
// least one entry is returned either way). A from at or past Next returns
// none; a from below First fails with ErrTrimmed. Entries come from the
// Cache while it has them, then from the segment files; the store's lock
// is held only to locate them. Read is safe for concurrent use, also with
// the writer; the returned entries must not be modified.
func (s *Store) Read(from uint64, maxEntries, maxBytes int) ([]Entry, error) {
	s.mu.RLock()
	first, next, closed := s.first, s.next, s.closed
	s.mu.RUnlock()
	switch {
	case closed:
		return nil, ErrClosed
	case from < first:
		return nil, fmt.Errorf("read offset %d below the first retained %d: %w", from, first, ErrTrimmed)
	case from >= next || maxEntries <= 0:
		return nil, nil
	}
	want := int(min(uint64(maxEntries), next-from))
	out := make([]Entry, 0, min(want, 256))
	bytes := 0
	full := func() bool { return len(out) == want || (maxBytes > 0 && bytes >= maxBytes) }
	for !full() {
		e, ok := s.cfg.Cache.get(s, from+uint64(len(out)))
		if !ok {
			break
		}
		out = append(out, e)
		bytes += len(e.Data)
	}
	s.m.cacheHits(len(out))
	if full() {
		return out, nil
	}
	hits := len(out)
	out, err := s.readFiles(out, from+uint64(len(out)), next, want, maxBytes, bytes)
	s.m.diskReads(len(out) - hits)
	return out, err
}

// span is a part of one segment a read scans.
type span struct {
	sg       *segment
	pos, end int64
}

// readFiles appends to out the entries from offset off on, below next,
// read from the segment files, until out holds want entries or bytes
// reaches maxBytes.
func (s *Store) readFiles(out []Entry, off, next uint64, want, maxBytes, bytes int) ([]Entry, error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return out, ErrClosed
	}
	if first := s.first; off < first {
		// Trimmed since Read looked: the entries read so far still hold.
		s.mu.RUnlock()
		return out, fmt.Errorf("read offset %d below the first retained %d: %w", off, first, ErrTrimmed)
	}
	spans := s.spansFrom(off, func(sg *segment) bool { return sg.base < next })
	s.mu.RUnlock()
	defer releaseSpans(spans)
	for _, sp := range spans {
		var err error
		out, bytes, err = s.readSpan(sp, out, off, next, want, maxBytes, bytes)
		if err != nil {
			return out, err
		}
		if len(out) == want || (maxBytes > 0 && bytes >= maxBytes) {
			return out, nil
		}
	}
	// Every offset below next is in a segment: running out is damage.
	missing := off
	if len(out) > 0 {
		missing = out[len(out)-1].Offset + 1
	}
	return out, fmt.Errorf("log segments end before offset %d, below %d: %w", missing, next, ErrCorrupt)
}

// spansFrom returns, with a reference held on each, the parts of the
// segments that keep accepts from the entry at offset off on. The caller
// holds s.mu and releases the spans with releaseSpans.
func (s *Store) spansFrom(off uint64, keep func(*segment) bool) []span {
	var spans []span
	for i := segmentAt(s.segs, off); i < len(s.segs); i++ {
		sg := s.segs[i]
		if sg.next <= off || !keep(sg) {
			continue
		}
		pos := int64(headerSize)
		if sg.base <= off {
			pos = sg.seek(off)
		}
		sg.acquire()
		spans = append(spans, span{sg: sg, pos: pos, end: sg.size})
	}
	return spans
}

func releaseSpans(spans []span) {
	for _, sp := range spans {
		sp.sg.release()
	}
}

func (s *Store) readSpan(sp span, out []Entry, off, next uint64, want, maxBytes, bytes int) ([]Entry, int, error) {
	fr := newFrameReader(sp.sg.f, sp.pos, sp.end, s.maxBody, false)
	defer fr.close()
	for len(out) < want && (maxBytes <= 0 || bytes < maxBytes) {
		r, pos, err := fr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			// Only verified, complete records are below a segment's size:
			// this is damage after the fact.
			return out, bytes, fmt.Errorf("read %s at %d: %w: %w", sp.sg.path, fr.pos, ErrCorrupt, err)
		}
		expect := off
		if len(out) > 0 {
			expect = out[len(out)-1].Offset + 1
		}
		if r.kind != kindEntry || r.off < expect {
			continue
		}
		if r.off >= next {
			break
		}
		if r.off != expect {
			return out, bytes, fmt.Errorf("read %s at %d: offset %d, want %d: %w", sp.sg.path, pos, r.off, expect, ErrCorrupt)
		}
		e := Entry{Offset: r.off, RaftIndex: r.raft, Time: r.time, ID: string(r.id), Data: r.data}
		out = append(out, e)
		bytes += len(e.Data)
		s.cfg.Cache.put(s, e)
	}
	return out, bytes, nil
}

// OffsetAtTime returns the first retained offset whose entry's time is at
// or after t, or Next if there is none: trimming to it drops the oldest
// entries up to the first one that is not older than t. Command times may
// step back after a leader change, so entries after the result may still be
// older than t. Segments whose newest entry is older than t are skipped by
// their summary; one segment at most is scanned. The result is a function
// of the store's contents, the same on every node.
func (s *Store) OffsetAtTime(t int64) (uint64, error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return 0, ErrClosed
	}
	first, next := s.first, s.next
	spans := s.spansFrom(first, func(sg *segment) bool { return sg.entries() > 0 && sg.maxTime >= t })
	s.mu.RUnlock()
	defer releaseSpans(spans)
	// Usually the first candidate holds the answer; a later one only when
	// the newer entries of the first lie below First.
	for _, sp := range spans {
		off, ok, err := s.scanTime(sp, first, t)
		if err != nil || ok {
			return off, err
		}
	}
	return next, nil
}

func (s *Store) scanTime(sp span, first uint64, t int64) (uint64, bool, error) {
	fr := newFrameReader(sp.sg.f, sp.pos, sp.end, s.maxBody, true)
	defer fr.close()
	for {
		r, _, err := fr.next()
		if err == io.EOF {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, fmt.Errorf("read %s at %d: %w: %w", sp.sg.path, fr.pos, ErrCorrupt, err)
		}
		if r.kind == kindEntry && r.off >= first && r.time >= t {
			return r.off, true, nil
		}
	}
}

// OffsetForBytes returns the smallest retained offset from which the
// log's records to its end take at most maxBytes, or Next if even the
// newest entry takes more: trimming to it is retention by bytes. Records
// are counted as written (frames of entries and trims, without segment
// headers and footers), so the result depends on the log's contents, not
// on where its segments were rolled. Whole segments are counted by their
// summary; at most one is scanned, from its sparse index.
func (s *Store) OffsetForBytes(maxBytes int64) (uint64, error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return 0, ErrClosed
	}
	first, next := s.first, s.next
	var (
		sp     span
		target int64 // the first entry at or past this position of sp fits
		found  bool
		acc    int64
	)
	for i := len(s.segs) - 1; i >= 0; i-- {
		sg := s.segs[i]
		region := sg.size - headerSize
		if acc+region <= maxBytes {
			acc += region
			continue
		}
		target = sg.size - (maxBytes - acc)
		pos := int64(headerSize)
		for _, ie := range sg.index { // the last indexed entry at or before target
			if int64(ie.pos) > target {
				break
			}
			pos = int64(ie.pos)
		}
		sg.acquire()
		sp, found = span{sg: sg, pos: pos, end: sg.size}, true
		break
	}
	s.mu.RUnlock()
	if !found {
		return first, nil
	}
	defer sp.sg.release()
	fr := newFrameReader(sp.sg.f, sp.pos, sp.end, s.maxBody, true)
	defer fr.close()
	for {
		r, pos, err := fr.next()
		if err == io.EOF {
			// No entry of the segment fits: the next segment's first does.
			return max(first, min(sp.sg.next, next)), nil
		}
		if err != nil {
			return 0, fmt.Errorf("read %s at %d: %w: %w", sp.sg.path, fr.pos, ErrCorrupt, err)
		}
		if r.kind == kindEntry && pos >= target {
			return max(first, r.off), nil
		}
	}
}
