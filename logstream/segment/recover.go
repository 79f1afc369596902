package segment

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// recover loads the segments of s.dir. The rules (docs/log-storage.md):
//
//   - The newest file is the tail. A tail whose header is missing or torn
//     and that holds nothing past it is a segment whose creation was cut
//     (its header is fsynced before any record): it is removed and the
//     previous file is the tail. Any other bad header is corruption.
//   - A tail with a valid footer is sealed (a roll was cut after sealing):
//     a new active segment is created. Otherwise the tail is scanned:
//     everything after the last complete batch (a record flagged as a
//     batch's end, a trim, or a footer) is cut and fsynced, never served.
//   - Other segments are sealed: their footer is trusted (it is checksummed
//     and was fsynced before the next segment existed) or, if it does not
//     verify, the segment is scanned, and its whole batches must reach the
//     next segment's base.
//   - First and applied are the newest values any header, trim or footer
//     carries. Segments wholly below First (left by a trim cut before it
//     deleted them) are removed; a gap between the rest is corruption. A
//     First past the tail's end (a trim past Next cut before its roll) gets
//     its new segment.
func (s *Store) recover() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	var bases []uint64
	for _, e := range ents {
		if base, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			bases = append(bases, base)
		}
	}
	slices.Sort(bases)

	// The tail: drop files whose creation was cut.
	var tail *os.File
	var th header
	var tailSize int64
	for len(bases) > 0 && tail == nil {
		path := filepath.Join(s.dir, segName(bases[len(bases)-1]))
		f, h, size, err := openSegment(path, os.O_RDWR, bases[len(bases)-1])
		switch {
		case err == nil:
			tail, th, tailSize = f, h, size
		case (errors.Is(err, errShort) || errors.Is(err, ErrCorrupt)) && size <= headerSize:
			_ = f.Close()
			s.logger.Warn("log segments: removing a segment whose creation was cut", "file", path)
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("remove a cut segment: %w", err)
			}
			if err := s.syncDir(s.dir); err != nil {
				return err
			}
			bases = bases[:len(bases)-1]
		default:
			if f != nil {
				_ = f.Close()
			}
			return err
		}
	}
	if tail == nil {
		s.first, s.next = 1, 1
		return s.create(header{base: 1, first: 1})
	}
	tailOwned := false // until the tail is one of s.segs, close it on failure
	defer func() {
		if !tailOwned {
			_ = tail.Close()
		}
	}()

	// Sealed segments.
	for _, base := range bases[:len(bases)-1] {
		path := filepath.Join(s.dir, segName(base))
		f, h, size, err := openSegment(path, os.O_RDONLY, base)
		if err != nil {
			if f != nil {
				_ = f.Close()
			}
			if errors.Is(err, errShort) { // only the newest file can be cut
				err = fmt.Errorf("%w: %w", ErrCorrupt, err)
			}
			return err
		}
		sg, raft, first, err := s.loadSealed(f, h, size)
		if err != nil {
			_ = f.Close()
			return err
		}
		s.segs = append(s.segs, sg)
		s.first, s.applied = max(s.first, first, h.first), max(s.applied, raft, h.raft)
	}

	// The tail.
	sg, raft, first, err := s.loadTail(tail, th, tailSize)
	if err != nil {
		return err
	}
	s.segs = append(s.segs, sg)
	tailOwned = true
	s.first, s.applied = max(s.first, first, th.first, s.segs[0].base), max(s.applied, raft, th.raft)
	s.next = sg.next

	// Segments an interrupted trim did not delete.
	k := 0
	for k < len(s.segs)-1 && s.segs[k].next <= s.first {
		k++
	}
	if k > 0 {
		for _, old := range s.segs[:k] {
			s.logger.Warn("log segments: removing a trimmed segment", "file", old.path)
			if err := os.Remove(old.path); err != nil {
				return fmt.Errorf("remove a trimmed segment: %w", err)
			}
			old.release()
		}
		s.segs = slices.Clone(s.segs[k:])
		if err := s.syncDir(s.dir); err != nil {
			return err
		}
	}
	for i := 1; i < len(s.segs); i++ {
		if prev, cur := s.segs[i-1], s.segs[i]; prev.next != cur.base {
			return fmt.Errorf("segment %s ends at offset %d but %s starts at %d: %w", prev.path, prev.next, cur.path, cur.base, ErrCorrupt)
		}
	}
	if s.first > s.next {
		// A trim past Next was cut before its roll: finish it.
		s.next = s.first
		if sg.sealed {
			err = s.create(header{base: s.next, first: s.first, raft: s.applied})
		} else {
			err = s.roll()
		}
		if err != nil {
			return err
		}
		return s.dropBelow()
	}
	if sg.sealed {
		return s.create(header{base: s.next, first: s.first, raft: s.applied})
	}
	return nil
}

// openSegment opens a segment file and reads its header. On a header
// error it still returns the file and its size.
func openSegment(path string, flag int, base uint64) (*os.File, header, int64, error) {
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, header{}, 0, fmt.Errorf("open segment: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		return f, header{}, 0, fmt.Errorf("open segment: %w", err)
	}
	var b [headerSize]byte
	n, err := f.ReadAt(b[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return f, header{}, fi.Size(), fmt.Errorf("read segment header %s: %w", path, err)
	}
	h, err := decodeHeader(b[:n])
	if err != nil {
		return f, header{}, fi.Size(), fmt.Errorf("segment %s: %w", path, err)
	}
	if h.base != base {
		return f, header{}, fi.Size(), fmt.Errorf("segment %s has base %d: %w", path, h.base, ErrCorrupt)
	}
	return f, h, fi.Size(), nil
}

// readFooter reads and verifies the footer at the end of a sealed file.
func readFooter(f *os.File, size int64, maxBody int) (footer, error) {
	if size < headerSize+frameHeaderSize+footerFixed {
		return footer{}, fmt.Errorf("no footer: %w", errShort)
	}
	var t [trailerSize]byte
	if _, err := f.ReadAt(t[:], size-trailerSize); err != nil {
		return footer{}, fmt.Errorf("read footer: %w", err)
	}
	pos := int64(leUint64(t[:]))
	if string(t[8:]) != footerMagic || pos < headerSize || pos > size-frameHeaderSize-footerFixed || size-pos > int64(maxBody)+frameHeaderSize {
		return footer{}, fmt.Errorf("footer trailer: %w", ErrCorrupt)
	}
	b := make([]byte, size-pos)
	if _, err := f.ReadAt(b, pos); err != nil {
		return footer{}, fmt.Errorf("read footer: %w", err)
	}
	r, n, err := decodeRecord(b, maxBody)
	if err != nil {
		return footer{}, err
	}
	if r.kind != kindFooter || int64(n) != size-pos || r.foot.pos != uint64(pos) {
		return footer{}, fmt.Errorf("footer at %d: %w", pos, ErrCorrupt)
	}
	return r.foot, nil
}

// fromFooter is the segment a verified footer describes.
func fromFooter(f *os.File, h header, size int64, ft footer) (*segment, error) {
	if ft.next < h.base || ft.next-h.base > maxSegmentBytes+maxBatchBytes {
		return nil, fmt.Errorf("footer of %s with next offset %d: %w", f.Name(), ft.next, ErrCorrupt)
	}
	// The index must be increasing and inside the records.
	for i, ie := range ft.index {
		if uint64(ie.rel) >= ft.next-h.base || int64(ie.pos) < headerSize || uint64(ie.pos) >= ft.pos ||
			(i > 0 && (ie.rel <= ft.index[i-1].rel || ie.pos <= ft.index[i-1].pos)) {
			return nil, fmt.Errorf("footer index of %s: %w", f.Name(), ErrCorrupt)
		}
	}
	sg := &segment{summary: summary{base: h.base, size: int64(ft.pos), next: ft.next, minTime: ft.minTime,
		maxTime: ft.maxTime, index: ft.index, lastIndexed: -1}, path: f.Name(), f: f, fileSize: size, sealed: true}
	if n := len(ft.index); n > 0 {
		sg.lastIndexed = int64(ft.index[n-1].pos)
	}
	sg.refs.Store(1)
	return sg, nil
}

// loadSealed loads a segment that is not the tail: by its footer, or by a
// scan that must find it whole.
func (s *Store) loadSealed(f *os.File, h header, size int64) (*segment, uint64, uint64, error) {
	if ft, err := readFooter(f, size, s.maxBody); err == nil {
		sg, err := fromFooter(f, h, size, ft)
		if err == nil {
			return sg, ft.raft, ft.first, nil
		}
	}
	st, err := scanSegment(f, h, size, s.maxBody, s.cfg.IndexIntervalBytes)
	if err != nil {
		return nil, 0, 0, err
	}
	// The scan keeps the whole batches before any damage. Whether that is
	// all of the segment (only the footer was damaged) is decided by the
	// caller: the next segment must start where this one ends.
	s.logger.Warn("log segments: a sealed segment's footer does not verify; scanned it", "file", f.Name())
	sg := &segment{summary: st.seg, path: f.Name(), f: f, fileSize: size, sealed: true}
	sg.refs.Store(1)
	first := st.first
	if st.footer != nil {
		first = max(first, st.footer.first)
	}
	return sg, st.raft, first, nil
}

// loadTail loads the newest segment, cutting a torn tail.
func (s *Store) loadTail(f *os.File, h header, size int64) (*segment, uint64, uint64, error) {
	if ft, err := readFooter(f, size, s.maxBody); err == nil {
		if sg, err := fromFooter(f, h, size, ft); err == nil {
			return sg, ft.raft, ft.first, nil
		}
	}
	st, err := scanSegment(f, h, size, s.maxBody, s.cfg.IndexIntervalBytes)
	if err != nil {
		return nil, 0, 0, err
	}
	sg := &segment{summary: st.seg, path: f.Name(), f: f, fileSize: st.seg.size}
	sg.refs.Store(1)
	first := st.first
	if st.footer != nil {
		sg.sealed, sg.fileSize = true, size
		first = max(first, st.footer.first)
	}
	if st.torn {
		s.logger.Warn("log segments: cutting a torn tail", "file", f.Name(), "at", st.seg.size, "size", size, "reason", st.tornWhy)
		s.torn = true
		if err := f.Truncate(st.seg.size); err != nil {
			return nil, 0, 0, fmt.Errorf("cut torn tail of %s: %w", f.Name(), err)
		}
		if err := s.syncFile(f); err != nil {
			return nil, 0, 0, err
		}
	}
	return sg, st.raft, first, nil
}
