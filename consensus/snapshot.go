package consensus

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/hashicorp/raft"

	"shoal/modules"
)

// The snapshot format: a magic line, the FSM's applied index as a uvarint,
// then one section per module: its tag byte followed by its bytes in chunks
// (uvarint length, bytes), ended by a zero-length chunk. A zero tag byte ends
// the snapshot. Chunking lets a module stream any amount of state without
// knowing its size in advance.
var snapshotMagic = []byte("shoal-snapshot-v1\n")

const snapshotChunk = 64 << 10

type snapshotPart struct {
	tag  modules.Tag
	snap modules.Snapshot
}

type fsmSnapshot struct {
	applied uint64
	parts   []snapshotPart
}

// Persist implements raft.FSMSnapshot. It runs concurrently with Apply.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, snapshotChunk)
	bw.Write(snapshotMagic)
	bw.Write(binary.AppendUvarint(nil, s.applied))
	for _, part := range s.parts {
		bw.WriteByte(byte(part.tag))
		cw := &chunkWriter{w: bw}
		if err := part.snap.Persist(cw); err != nil {
			return fmt.Errorf("module with tag %d: %w", part.tag, err)
		}
		if err := cw.Close(); err != nil {
			return err
		}
	}
	bw.WriteByte(0)
	return bw.Flush()
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() {
	for _, part := range s.parts {
		part.snap.Release()
	}
}

// chunkWriter frames what a module writes as length-prefixed chunks.
type chunkWriter struct {
	w   *bufio.Writer
	buf []byte
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		room := snapshotChunk - len(c.buf)
		if room > len(p) {
			room = len(p)
		}
		c.buf = append(c.buf, p[:room]...)
		p = p[room:]
		if len(c.buf) == snapshotChunk {
			if err := c.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (c *chunkWriter) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	c.w.Write(binary.AppendUvarint(nil, uint64(len(c.buf))))
	_, err := c.w.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

// Close writes the last chunk and the terminator.
func (c *chunkWriter) Close() error {
	if err := c.flush(); err != nil {
		return err
	}
	_, err := c.w.Write([]byte{0})
	return err
}

// chunkReader reads one section back.
type chunkReader struct {
	r      *bufio.Reader
	remain uint64
	done   bool
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for c.remain == 0 {
		if c.done {
			return 0, io.EOF
		}
		n, err := binary.ReadUvarint(c.r)
		if err != nil {
			return 0, fmt.Errorf("read chunk length: %w", noEOF(err))
		}
		if n == 0 {
			c.done = true
			return 0, io.EOF
		}
		if n > snapshotChunk {
			return 0, fmt.Errorf("chunk of %d bytes exceeds the %d-byte limit", n, snapshotChunk)
		}
		c.remain = n
	}
	if uint64(len(p)) > c.remain {
		p = p[:c.remain]
	}
	n, err := c.r.Read(p)
	c.remain -= uint64(n)
	if err != nil && n == 0 {
		return 0, fmt.Errorf("read chunk: %w", noEOF(err))
	}
	return n, nil
}

// drain consumes what the module did not read of its section.
func (c *chunkReader) drain() error {
	_, err := io.Copy(io.Discard, c)
	return err
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readSnapshot restores every handler from r and returns the applied index
// recorded in the snapshot.
func readSnapshot(r io.Reader, handlers map[modules.Tag]modules.RaftHandler) (uint64, error) {
	br := bufio.NewReaderSize(r, snapshotChunk)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != string(snapshotMagic) {
		return 0, errors.New("not a shoal snapshot (bad magic)")
	}
	applied, err := binary.ReadUvarint(br)
	if err != nil {
		return 0, fmt.Errorf("read applied index: %w", noEOF(err))
	}
	restored := map[modules.Tag]bool{}
	for {
		tagByte, err := br.ReadByte()
		if err != nil {
			return 0, fmt.Errorf("read section tag: %w", noEOF(err))
		}
		tag := modules.Tag(tagByte)
		if tag == modules.TagNone {
			break
		}
		if restored[tag] {
			return 0, fmt.Errorf("snapshot has two sections for tag %d", tag)
		}
		restored[tag] = true
		section := &chunkReader{r: br}
		h, ok := handlers[tag]
		if !ok {
			// Skipping it would leave this node without state the others
			// have, and every later command of that module would diverge
			// (see FSM.halt): refuse, and say what to fix.
			return 0, fmt.Errorf("%w: the snapshot holds state of the module with tag %d, which this node does not run; every server must run the same raft modules (--modules)", ErrUnknownModule, tag)
		}
		if err := restoreSection(h, section, applied); err != nil {
			return 0, fmt.Errorf("module with tag %d: %w", tag, err)
		}
		if err := section.drain(); err != nil {
			return 0, fmt.Errorf("section of tag %d: %w", tag, err)
		}
	}
	tags := make([]modules.Tag, 0, len(handlers))
	for tag := range handlers {
		tags = append(tags, tag)
	}
	slices.Sort(tags) // a fixed order, never the map's
	for _, tag := range tags {
		if !restored[tag] {
			if err := restoreSection(handlers[tag], eofReader{}, applied); err != nil {
				return 0, fmt.Errorf("module with tag %d (empty state): %w", tag, err)
			}
		}
	}
	return applied, nil
}

// restoreSection restores one module, telling it the snapshot's index if
// it asks for it.
func restoreSection(h modules.RaftHandler, r io.Reader, index uint64) error {
	if ix, ok := h.(modules.IndexedSnapshotter); ok {
		return ix.RestoreAt(r, index)
	}
	return h.Restore(r)
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
