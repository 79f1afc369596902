package replication

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/pierrec/lz4/v4"

	"shoal/internal/wire"
)

// The stream protocol (docs/replication.md has it byte for byte).
//
// A stream starts with a fixed header from the follower: the 8-byte magic
// "SHOALREP" and a 4-byte big-endian protocol version. The leader answers
// with its own header; on a wrong header it answers its header and closes.
//
// Then both sides send frames:
//
//	uint32 BE  n, the length of type and payload (1 ≤ n ≤ maxFrameBody)
//	byte       type
//	n-1 bytes  payload, its fields encoded with internal/wire
//	uint32 BE  CRC-32C (Castagnoli) of type and payload
const (
	headerMagic     = "SHOALREP"
	protocolVersion = 2 // 2: a replace carries the content's SHA-256
	headerLen       = len(headerMagic) + 4
)

// Frame bounds. A replace carries a whole file, so maxData bounds the
// content a replace may have; catch-up moves files in chunks of maxChunk.
const (
	maxData      = 16 << 20
	maxFrameBody = maxData + 2*maxPathLen + 64
	maxChunk     = 1 << 20
	// maxIndexBatch bounds the entries of one index frame.
	maxIndexBatch = 4096
)

// compressedBit set in a frame's type byte means its payload is
// compressed: a uvarint of the payload's length, then an LZ4 block of it.
// The CRC covers the bytes as sent. Any type may be compressed; the leader
// compresses chunk, append and replace frames with --replication-compress,
// when that makes them smaller.
const compressedBit byte = 0x80

// minCompress is the smallest payload worth compressing.
const minCompress = 512

// Frame types. The numbers are part of the wire format: never reuse one.
const (
	// Leader to follower, catch-up.
	frameIndex    byte = 0x01 // count, entries: path, size, mtime, sha256
	frameIndexEnd byte = 0x02 // total entries, position
	frameChunk    byte = 0x03 // path, offset, data
	frameFileEnd  byte = 0x04 // path, size, sha256
	frameFileGone byte = 0x05 // path
	frameSyncDone byte = 0x06 // position
	// Leader to follower, live.
	frameAppend   byte = 0x10 // path, offset, position, data
	frameReplace  byte = 0x11 // path, position, sha256 of data, data
	frameDelete   byte = 0x12 // path, position
	framePosition byte = 0x13 // position (an action skipped as already sent, or a keepalive)
	// Follower to leader.
	frameWant     byte = 0x20 // path, offset, sha256 of the local prefix
	frameWantDone byte = 0x21 // (empty)
	frameAck      byte = 0x22 // position
)

// indexEntry is one file of the leader's index.
type indexEntry struct {
	Path  string
	Size  uint64
	Mtime int64 // unix nanoseconds
	Sum   [32]byte
}

// frame is one decoded frame; which fields are set depends on typ.
type frame struct {
	typ     byte
	path    string
	offset  uint64 // chunk, append, want
	size    uint64 // fileEnd; indexEnd: total entries
	pos     uint64 // indexEnd, syncDone, live actions, position, ack
	sum     [32]byte
	data    []byte
	entries []indexEntry
}

// castagnoli is the CRC-32C table.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// appendHeader appends the stream header.
func appendHeader(b []byte) []byte {
	b = append(b, headerMagic...)
	return binary.BigEndian.AppendUint32(b, protocolVersion)
}

// checkHeader checks a received header.
func checkHeader(h []byte) error {
	if len(h) != headerLen || string(h[:len(headerMagic)]) != headerMagic {
		return fmt.Errorf("%w: magic %q", ErrBadHeader, h[:min(len(h), len(headerMagic))])
	}
	if v := binary.BigEndian.Uint32(h[len(headerMagic):]); v != protocolVersion {
		return fmt.Errorf("%w: protocol version %d, want %d", ErrBadHeader, v, protocolVersion)
	}
	return nil
}

// appendFrame appends f's wire form to b.
func appendFrame(b []byte, f frame) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0, f.typ)
	switch f.typ {
	case frameIndex:
		b = wire.AppendUvarint(b, uint64(len(f.entries)))
		for _, e := range f.entries {
			b = wire.AppendBytes(b, e.Path)
			b = wire.AppendUvarint(b, e.Size)
			b = wire.AppendVarint(b, e.Mtime)
			b = append(b, e.Sum[:]...)
		}
	case frameIndexEnd:
		b = wire.AppendUvarint(b, f.size)
		b = wire.AppendUvarint(b, f.pos)
	case frameChunk:
		b = wire.AppendBytes(b, f.path)
		b = wire.AppendUvarint(b, f.offset)
		b = wire.AppendBytes(b, f.data)
	case frameFileEnd:
		b = wire.AppendBytes(b, f.path)
		b = wire.AppendUvarint(b, f.size)
		b = append(b, f.sum[:]...)
	case frameFileGone, frameWantDone:
		if f.typ == frameFileGone {
			b = wire.AppendBytes(b, f.path)
		}
	case frameSyncDone, framePosition, frameAck:
		b = wire.AppendUvarint(b, f.pos)
	case frameAppend:
		b = wire.AppendBytes(b, f.path)
		b = wire.AppendUvarint(b, f.offset)
		b = wire.AppendUvarint(b, f.pos)
		b = wire.AppendBytes(b, f.data)
	case frameReplace:
		b = wire.AppendBytes(b, f.path)
		b = wire.AppendUvarint(b, f.pos)
		b = append(b, f.sum[:]...)
		b = wire.AppendBytes(b, f.data)
	case frameDelete:
		b = wire.AppendBytes(b, f.path)
		b = wire.AppendUvarint(b, f.pos)
	case frameWant:
		b = wire.AppendBytes(b, f.path)
		b = wire.AppendUvarint(b, f.offset)
		b = append(b, f.sum[:]...)
	default:
		return nil, fmt.Errorf("encode frame: unknown type %#x", f.typ)
	}
	n := len(b) - start - 4
	if n > maxFrameBody {
		return nil, fmt.Errorf("encode frame of type %#x: %d bytes exceed %d", f.typ, n, maxFrameBody)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(n))
	return binary.BigEndian.AppendUint32(b, crc32c(b[start+4:])), nil
}

// readFrame reads and decodes one frame. io.EOF means the stream ended
// cleanly between frames; any other failure wraps ErrBadFrame. The frame's
// data is freshly allocated and owned by the caller.
func readFrame(r *bufio.Reader) (frame, error) {
	fr := frameReader{r: r}
	return fr.read()
}

// frameReader reads frames into buffers it reuses: a frame's data is valid
// only until the next read. A follower reads a file's worth of frames per
// file; into fresh memory each time, the kernel faulted in every page of
// every frame.
type frameReader struct {
	r     *bufio.Reader
	buf   []byte
	plain []byte
}

// read reads and decodes the next frame, as readFrame does.
func (fr *frameReader) read() (frame, error) {
	var lenBuf [4]byte
	if _, err := io.ReadFull(fr.r, lenBuf[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return frame{}, io.EOF
		}
		return frame{}, fmt.Errorf("%w: length: %w", ErrBadFrame, err)
	}
	n := binary.BigEndian.Uint32(lenBuf[:])
	if n < 1 || n > maxFrameBody {
		return frame{}, fmt.Errorf("%w: length %d out of range", ErrBadFrame, n)
	}
	buf := grow(&fr.buf, int(n)+4)
	if _, err := io.ReadFull(fr.r, buf); err != nil {
		return frame{}, fmt.Errorf("%w: %d-byte frame: %w", ErrBadFrame, n, err)
	}
	body, crc := buf[:n], binary.BigEndian.Uint32(buf[n:])
	if got := crc32c(body); got != crc {
		return frame{}, fmt.Errorf("%w: checksum %08x, frame says %08x", ErrBadFrame, got, crc)
	}
	if body[0]&compressedBit != 0 {
		plain, err := decompress(body, &fr.plain)
		if err != nil {
			return frame{}, err
		}
		body = plain
	}
	return decodeFrame(body)
}

// grow returns (*b)[:n], reallocating *b if it is too small.
func grow(b *[]byte, n int) []byte {
	if cap(*b) < n {
		*b = make([]byte, n)
	}
	return (*b)[:n]
}

// decompress turns a compressed frame body into the plain one, in *into.
func decompress(body []byte, into *[]byte) ([]byte, error) {
	d := wire.NewDecoder(body[1:])
	n := d.Uvarint("length")
	if err := d.Err(); err != nil || n < 1 || n > maxFrameBody {
		return nil, fmt.Errorf("%w: compressed frame of %d bytes: %v", ErrBadFrame, n, err)
	}
	plain := grow(into, 1+int(n))
	plain[0] = body[0] &^ compressedBit
	got, err := lz4.UncompressBlock(d.Rest(), plain[1:])
	if err != nil || uint64(got) != n {
		return nil, fmt.Errorf("%w: compressed frame: %d of %d bytes: %v", ErrBadFrame, got, n, err)
	}
	return plain, nil
}

// compressFrame replaces the frame at the start of b (as appendFrame wrote
// it) by its compressed form, if that is smaller.
func compressFrame(b []byte, c *lz4.Compressor) []byte {
	payload := b[5 : len(b)-4]
	if len(payload) < minCompress {
		return b
	}
	out := make([]byte, 5, 5+binary.MaxVarintLen64+lz4.CompressBlockBound(len(payload))+4)
	out[4] = b[4] | compressedBit
	out = wire.AppendUvarint(out, uint64(len(payload)))
	start := len(out)
	n, err := c.CompressBlock(payload, out[start:cap(out)-4])
	if err != nil || n == 0 || start+n+4 >= len(b) {
		return b
	}
	out = out[:start+n]
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return binary.BigEndian.AppendUint32(out, crc32c(out[4:]))
}

// decodeFrame decodes a frame's type and payload. Paths are checked with
// validPath: a frame naming a path outside the directory is refused here.
func decodeFrame(body []byte) (frame, error) {
	f := frame{typ: body[0]}
	d := wire.NewDecoder(body[1:])
	path := func() string {
		p := d.String("path", maxPathLen)
		if d.Err() == nil && !validPath(p) {
			d.Failf("path", "invalid path %q", p)
		}
		return p
	}
	sum := func() (s [32]byte) {
		copy(s[:], d.Raw("sha256", 32))
		return s
	}
	switch f.typ {
	case frameIndex:
		n := d.Count("entries", 1+1+1+32)
		if n > maxIndexBatch {
			d.Failf("entries", "%d entries exceed %d", n, maxIndexBatch)
		}
		if d.Err() == nil {
			f.entries = make([]indexEntry, 0, n)
		}
		for range n {
			e := indexEntry{Path: path(), Size: d.Uvarint("size"), Mtime: d.Varint("mtime"), Sum: sum()}
			if d.Err() != nil {
				break
			}
			f.entries = append(f.entries, e)
		}
	case frameIndexEnd:
		f.size = d.Uvarint("count")
		f.pos = d.Uvarint("position")
	case frameChunk:
		f.path = path()
		f.offset = d.Uvarint("offset")
		f.data = d.Bytes("data", maxChunk)
	case frameFileEnd:
		f.path = path()
		f.size = d.Uvarint("size")
		f.sum = sum()
	case frameFileGone:
		f.path = path()
	case frameWantDone:
	case frameSyncDone, framePosition, frameAck:
		f.pos = d.Uvarint("position")
	case frameAppend:
		f.path = path()
		f.offset = d.Uvarint("offset")
		f.pos = d.Uvarint("position")
		f.data = d.Bytes("data", maxData)
	case frameReplace:
		f.path = path()
		f.pos = d.Uvarint("position")
		f.sum = sum()
		f.data = d.Bytes("data", maxData)
	case frameDelete:
		f.path = path()
		f.pos = d.Uvarint("position")
	case frameWant:
		f.path = path()
		f.offset = d.Uvarint("offset")
		f.sum = sum()
	default:
		return frame{}, fmt.Errorf("%w: unknown type %#x", ErrBadFrame, f.typ)
	}
	if err := d.End(); err != nil {
		return frame{}, fmt.Errorf("%w: type %#x: %w", ErrBadFrame, f.typ, err)
	}
	return f, nil
}

// actionSize is how much an action advances the stream position: its
// data plus its path plus a fixed 16 bytes, so that a delete also counts.
func actionSize(path string, data int) uint64 { return uint64(16 + len(path) + data) }
