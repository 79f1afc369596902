package segment

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Entry is one log entry as the Store keeps it.
type Entry struct {
	// Offset is the entry's position in the log, from 1, without gaps.
	// Append assigns it.
	Offset uint64
	// RaftIndex is the index of the Raft command that appended the entry.
	// Append sets it.
	RaftIndex uint64
	// Time is the command time of the append, Unix nanoseconds.
	Time int64
	// ID is the publish id, possibly empty; at most 65,535 bytes.
	ID string
	// Data is the entry's payload. Entries a Read returns may be shared
	// with the Cache: never modify Data.
	Data []byte
}

// segExt is the file extension of segment files; a segment's file is named
// by its base offset, 20 decimal digits, so names sort like offsets.
const segExt = ".seg"

func segName(base uint64) string { return fmt.Sprintf("%020d%s", base, segExt) }

// parseSegName returns the base offset a segment file name carries.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segExt)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	base, err := strconv.ParseUint(digits, 10, 64)
	return base, err == nil && base > 0
}

// summary is what a Store keeps in memory about a segment's records: its
// bounds, times and sparse index. Its size does not grow with entries
// beyond one index entry per IndexIntervalBytes.
type summary struct {
	base             uint64 // offset of the first entry
	size             int64  // end of the last complete batch: what readers may read
	next             uint64 // one past the last entry's offset (base if none)
	minTime, maxTime int64
	index            []indexEntry
	lastIndexed      int64 // pos of the newest index entry, -1 if none
}

// segment is one segment file. Its summary and the fields after refs are
// guarded by the Store's mutex; readers copy what they need under it and
// then read the file outside it, holding a reference.
type segment struct {
	summary
	path string
	f    *os.File
	// refs counts the Store's own reference and readers'; the file is
	// closed when it drops to zero.
	refs atomic.Int64

	fileSize int64 // size plus the footer, once sealed
	sealed   bool
}

func (sg *segment) acquire() { sg.refs.Add(1) }

func (sg *segment) release() {
	if sg.refs.Add(-1) == 0 {
		_ = sg.f.Close() // read-only use from here: nothing to lose
	}
}

// entries is the number of entries the segment holds.
func (sg *summary) entries() uint64 { return sg.next - sg.base }

// noteEntry records an appended entry at pos in the segment's summary and
// sparse index.
func (sg *summary) noteEntry(off uint64, t int64, pos, interval int64) {
	if sg.next == sg.base {
		sg.minTime, sg.maxTime = t, t
	} else {
		sg.minTime, sg.maxTime = min(sg.minTime, t), max(sg.maxTime, t)
	}
	if sg.lastIndexed < 0 || pos-sg.lastIndexed >= interval {
		sg.index = append(sg.index, indexEntry{rel: uint32(off - sg.base), pos: uint32(pos)})
		sg.lastIndexed = pos
	}
	sg.next = off + 1
}

// seek returns the file position of the indexed entry nearest at or
// before offset off, from which a read scans forward.
func (sg *summary) seek(off uint64) int64 {
	rel := off - sg.base
	i := sort.Search(len(sg.index), func(i int) bool { return uint64(sg.index[i].rel) > rel })
	if i == 0 {
		return headerSize
	}
	return int64(sg.index[i-1].pos)
}

// footer returns the footer sealing sg, whose frame starts at sg.size.
func (sg *segment) footer(first, raft uint64) footer {
	return footer{next: sg.next, raft: raft, first: first, minTime: sg.minTime, maxTime: sg.maxTime,
		index: sg.index, pos: uint64(sg.size)}
}

// scanState is what a scan of a segment learned, as of the end of the last
// complete batch.
type scanState struct {
	seg     summary
	raft    uint64  // newest Raft index of a change in the segment (0 if none)
	first   uint64  // newest trim's first offset (0 if none)
	footer  *footer // the footer, if the scan ended at one
	torn    bool    // bytes after the last complete batch (cut them)
	tornWhy error
}

// bufPool holds the buffered readers segment reads use.
var bufPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32<<10) }}

// frameReader reads frames sequentially from a file section.
type frameReader struct {
	br      *bufio.Reader
	pos     int64 // file position of the next frame
	end     int64
	maxBody int
	hdr     [frameHeaderSize]byte
	buf     []byte // reused body buffer when reuse is set
	reuse   bool
}

func newFrameReader(f *os.File, pos, end int64, maxBody int, reuse bool) *frameReader {
	br := bufPool.Get().(*bufio.Reader)
	br.Reset(io.NewSectionReader(f, pos, end-pos))
	return &frameReader{br: br, pos: pos, end: end, maxBody: maxBody, reuse: reuse}
}

func (fr *frameReader) close() {
	fr.br.Reset(nil)
	bufPool.Put(fr.br)
}

// next reads the frame at fr.pos. It returns io.EOF at the end of the
// section, errShort for a frame cut by the end, and an error wrapping
// ErrCorrupt for an invalid frame.
func (fr *frameReader) next() (record, int64, error) {
	if fr.pos == fr.end {
		return record{}, 0, io.EOF
	}
	if _, err := io.ReadFull(fr.br, fr.hdr[:]); err != nil {
		return record{}, 0, readErr(err)
	}
	n, err := frameLen(fr.hdr[:], fr.maxBody)
	if err != nil {
		return record{}, 0, err
	}
	if int64(n) > fr.end-fr.pos-frameHeaderSize {
		return record{}, 0, errShort
	}
	var body []byte
	if fr.reuse {
		if cap(fr.buf) < n {
			fr.buf = make([]byte, n)
		}
		body = fr.buf[:n]
	} else {
		body = make([]byte, n)
	}
	if _, err := io.ReadFull(fr.br, body); err != nil {
		return record{}, 0, readErr(err)
	}
	r, err := decodeChecked(fr.hdr[:], body)
	if err != nil {
		return record{}, 0, err
	}
	pos := fr.pos
	fr.pos += frameHeaderSize + int64(n)
	return r, pos, nil
}

func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errShort
	}
	return err
}

// scanSegment reads every frame of the file after its header and returns
// the state as of the last complete batch, or of the footer. It stops at
// the first invalid or cut frame, which is torn (the caller decides
// whether that is a tail to cut or corruption).
func scanSegment(f *os.File, h header, fileSize int64, maxBody int, interval int64) (scanState, error) {
	var st scanState
	st.seg = summary{base: h.base, next: h.base, size: headerSize, lastIndexed: -1}
	cur := st.seg // the state including the current, unfinished batch
	var curRaft, curFirst uint64
	pending := false // records read since the last batch end
	fr := newFrameReader(f, headerSize, fileSize, maxBody, true)
	defer fr.close()
	for {
		r, pos, err := fr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if !errors.Is(err, errShort) && !errors.Is(err, ErrCorrupt) {
				return scanState{}, fmt.Errorf("scan segment %s: %w", f.Name(), err)
			}
			st.torn, st.tornWhy = true, err
			break
		}
		switch r.kind {
		case kindEntry:
			if r.off != cur.next {
				st.torn, st.tornWhy = true, fmt.Errorf("entry offset %d at %d, want %d: %w", r.off, pos, cur.next, ErrCorrupt)
			} else {
				cur.noteEntry(r.off, r.time, pos, interval)
				curRaft = max(curRaft, r.raft)
			}
		case kindTrim:
			curRaft, curFirst = max(curRaft, r.raft), max(curFirst, r.first)
		case kindFooter:
			f := r.foot
			if pending || f.pos != uint64(pos) || fr.pos != fileSize || f.next != cur.next {
				st.torn, st.tornWhy = true, fmt.Errorf("footer at %d does not match the segment: %w", pos, ErrCorrupt)
				break
			}
			st.footer = &f
		}
		if st.torn {
			break
		}
		pending = !r.end
		if r.end {
			cur.size = fr.pos
			if r.kind == kindFooter {
				cur.size = pos
			}
			st.seg = cur
			st.seg.index = cur.index[:len(cur.index):len(cur.index)]
			st.raft, st.first = max(st.raft, curRaft), max(st.first, curFirst)
		}
		if st.footer != nil {
			break
		}
	}
	if !st.torn && st.footer == nil && st.seg.size != fileSize {
		st.torn, st.tornWhy = true, fmt.Errorf("an unfinished batch at %d: %w", st.seg.size, errShort)
	}
	// Index entries of a cut batch point past the end: drop them.
	idx := st.seg.index
	for len(idx) > 0 && int64(idx[len(idx)-1].pos) >= st.seg.size {
		idx = idx[:len(idx)-1]
	}
	st.seg.index = idx
	if len(idx) > 0 {
		st.seg.lastIndexed = int64(idx[len(idx)-1].pos)
	} else {
		st.seg.lastIndexed = -1
	}
	return st, nil
}

// decodeChecked decodes a frame whose header and body were read apart.
func decodeChecked(hdr, body []byte) (record, error) {
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
		return record{}, fmt.Errorf("frame checksum: %w", ErrCorrupt)
	}
	return decodeBody(body)
}
