package peerrpc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxFrame bounds one frame (a request or an answer, its body included).
// A forwarded write batch is at most about 1 MiB of commands.
const MaxFrame = 16 << 20

// maxMethodLen bounds a method name.
const maxMethodLen = 255

// Frame types. Numbers are part of the wire format: never reuse one.
const (
	frameRequest  byte = 1 // id, method, body
	frameAnswer   byte = 2 // id, body
	frameError    byte = 3 // id, encoded error
	frameNoMethod byte = 4 // id: the peer serves no such method
)

// frame is one unit on a call connection:
//
//	uvarint  length of what follows
//	byte     type
//	uvarint  call id
//	request: byte method length, method, body
//	others:  body (an answer, or an encoded error)
type frame struct {
	typ    byte
	id     uint64
	method string
	body   []byte
}

// ErrBadFrame is wrapped by every error decoding a frame returns.
var ErrBadFrame = errors.New("bad peer rpc frame")

// appendFrame appends f's wire form to buf.
func appendFrame(buf []byte, f frame) ([]byte, error) {
	if len(f.method) > maxMethodLen {
		return nil, fmt.Errorf("peer rpc: method name of %d bytes exceeds %d", len(f.method), maxMethodLen)
	}
	n := 1 + uvarintLen(f.id) + len(f.body)
	if f.typ == frameRequest {
		n += 1 + len(f.method)
	}
	if n > MaxFrame {
		return nil, fmt.Errorf("peer rpc: frame of %d bytes exceeds %d", n, MaxFrame)
	}
	buf = binary.AppendUvarint(buf, uint64(n))
	buf = append(buf, f.typ)
	buf = binary.AppendUvarint(buf, f.id)
	if f.typ == frameRequest {
		buf = append(buf, byte(len(f.method)))
		buf = append(buf, f.method...)
	}
	return append(buf, f.body...), nil
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

// readFrame reads one frame. The body is a fresh slice the caller owns.
func readFrame(r *bufio.Reader) (frame, error) {
	n, size, err := readUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) && size == 0 {
			return frame{}, io.EOF // a clean end between frames
		}
		return frame{}, fmt.Errorf("%w: length: %w", ErrBadFrame, err)
	}
	if size != uvarintLen(n) {
		return frame{}, fmt.Errorf("%w: length is not minimally encoded", ErrBadFrame)
	}
	if n < 2 || n > MaxFrame {
		return frame{}, fmt.Errorf("%w: length %d out of range", ErrBadFrame, n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return frame{}, fmt.Errorf("%w: %d-byte frame: %w", ErrBadFrame, n, err)
	}
	return decodeFrame(buf)
}

// decodeFrame decodes what follows a frame's length. body aliases buf.
func decodeFrame(buf []byte) (frame, error) {
	if len(buf) < 2 {
		return frame{}, fmt.Errorf("%w: %d bytes", ErrBadFrame, len(buf))
	}
	f := frame{typ: buf[0]}
	id, k := binary.Uvarint(buf[1:])
	if k <= 0 || k != uvarintLen(id) {
		return frame{}, fmt.Errorf("%w: call id", ErrBadFrame)
	}
	f.id = id
	rest := buf[1+k:]
	switch f.typ {
	case frameRequest:
		if len(rest) < 1 || int(rest[0]) > len(rest)-1 || rest[0] == 0 {
			return frame{}, fmt.Errorf("%w: method name", ErrBadFrame)
		}
		f.method = string(rest[1 : 1+rest[0]])
		f.body = rest[1+rest[0]:]
	case frameAnswer, frameError, frameNoMethod:
		f.body = rest
	default:
		return frame{}, fmt.Errorf("%w: unknown type %d", ErrBadFrame, f.typ)
	}
	return f, nil
}

// readUvarint reads a uvarint and says how many bytes it took, so that a
// caller can refuse one that is not minimally encoded (every value has one
// encoding on the wire).
func readUvarint(r io.ByteReader) (uint64, int, error) {
	var v uint64
	for i := range binary.MaxVarintLen64 {
		b, err := r.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, i, err
		}
		if i == binary.MaxVarintLen64-1 && b > 1 {
			return 0, i + 1, errors.New("varint overflows 64 bits")
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, binary.MaxVarintLen64, errors.New("varint overflows 64 bits")
}
