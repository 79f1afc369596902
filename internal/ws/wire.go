package ws

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"syscall"
)

// wire is a connection's socket, shared by two kinds of writer:
//
//   - coder/websocket writes the control frames (pings, pongs, the close
//     frame) through Write, each whole in one call (its buffer,
//     controlBuffer bytes, holds the largest);
//   - the hub writes the data frames, which it frames itself
//     (framer): a flusher without blocking (tryLock, writevLocked), the
//     connection's own writer blocking (writeBlocking).
//
// mu orders them, so frames never interleave. What a non-blocking write
// left unwritten (the socket's buffer was full) waits in rest and goes out
// before anything else, whoever writes next.
type wire struct {
	net.Conn
	// raw is the descriptor under Conn, for non-blocking writes; nil when
	// there is none of its own (TLS), and every data frame then goes
	// through the connection's writer.
	raw syscall.RawConn

	mu   sync.Mutex
	rest []byte
	shut bool // the close handshake has begun: no more data frames
}

// controlBuffer is the size of coder/websocket's write buffer: a control
// frame is at most 14 bytes of header and 125 of payload, and must reach
// Write in one call.
const controlBuffer = 256

// errShut: a data frame after the close handshake began.
var errShut = errors.New("websocket data frame after the close frame")

func newWire(conn net.Conn) *wire {
	w := &wire{Conn: conn}
	if sc, ok := conn.(syscall.Conn); ok && canWritev {
		if raw, err := sc.SyscallConn(); err == nil {
			w.raw = raw
		}
	}
	return w
}

// Write writes p whole, after the rest of a data write if one waits:
// coder/websocket's control frames. A control frame waits for a data write
// that blocks (a client that stopped reading); coder/websocket gives it 5
// s, then drops the connection, as the write watchdog would after
// WriteTimeout.
func (w *wire) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.writeRestLocked(); err != nil {
		return 0, err
	}
	return w.Conn.Write(p)
}

// writeRestLocked writes the rest of a data write, blocking. The caller
// holds w.mu.
func (w *wire) writeRestLocked() error {
	if len(w.rest) == 0 {
		return nil
	}
	n, err := w.Conn.Write(w.rest)
	if err != nil {
		w.rest = w.rest[n:]
		return err
	}
	w.rest = nil // it may be large: a stall is rare, its buffer is not kept
	return nil
}

// writeRest writes the rest of a data write, if one waits (blocking).
func (w *wire) writeRest() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writeRestLocked()
}

// tryLock locks the wire for a non-blocking write: false if that cannot
// be done now (no descriptor of its own, another write in progress, a
// rest waiting, the close handshake begun).
func (w *wire) tryLock() bool {
	if w.raw == nil || !w.mu.TryLock() {
		return false
	}
	if w.shut || len(w.rest) > 0 {
		w.mu.Unlock()
		return false
	}
	return true
}

// writevLocked writes bufs without blocking: what the socket takes now,
// the remainder copied to rest. An error (the peer is gone) keeps the
// remainder too, for the connection's writer, whose blocking write fails
// in turn and reports it. The caller holds w.mu (tryLock).
func (w *wire) writevLocked(bufs [][]byte) {
	n := 0
	if err := w.raw.Write(func(fd uintptr) bool {
		var err error
		if n, err = writev(fd, bufs); err != nil {
			n = 0 // EAGAIN (the socket's buffer is full), EINTR or a failure: nothing was written
		}
		return true // never wait for the socket: what it did not take goes to rest
	}); err != nil {
		n = 0 // the descriptor is closed
	}
	for _, b := range bufs {
		if n >= len(b) {
			n -= len(b)
			continue
		}
		w.rest = append(w.rest, b[n:]...)
		n = 0
	}
}

// writeBlocking writes bufs whole, after the rest if one waits: the
// connection's writer, for a socket that does not take them at once.
func (w *wire) writeBlocking(bufs [][]byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.shut {
		return errShut
	}
	if err := w.writeRestLocked(); err != nil {
		return err
	}
	nb := net.Buffers(bufs)
	_, err := nb.WriteTo(w.Conn)
	return err
}

// shutDown ends the data frames: the close frame comes next. It waits for
// a data write in progress.
func (w *wire) shutDown() {
	w.mu.Lock()
	w.shut = true
	w.mu.Unlock()
}

// framer turns a write round (frames taken off a queue together) into
// websocket text messages, as buffers for one vectored write: one message
// per frame, or, on a batching connection, one message of the frames one
// per line. A server's frames are not masked (RFC 6455, section 5.1), so
// the frames' bytes go out as they are, never copied. A framer is its
// writer's own (a flusher's, or a connection's writer goroutine's).
type framer struct {
	round   [][]byte // the frames taken off the queue
	headers []byte   // the messages' headers, which bufs point into
	bufs    [][]byte
}

// newline separates the frames of a batching connection's message.
var newline = []byte{'\n'}

// maxRoundFrames bounds the frames of a round: each takes two buffers of a
// vectored write, which takes at most 1,024 (IOV_MAX).
const maxRoundFrames = 256

// frame returns the buffers of the round's messages.
func (f *framer) frame(batch bool) [][]byte {
	f.bufs = f.bufs[:0]
	// Room for every header first: bufs point into headers, which must not
	// move while they are appended.
	if need := maxHeader * len(f.round); cap(f.headers) < need {
		f.headers = make([]byte, 0, need)
	}
	f.headers = f.headers[:0]
	if batch && len(f.round) > 1 {
		size := len(f.round) - 1
		for _, fr := range f.round {
			size += len(fr)
		}
		f.headers = appendTextHeader(f.headers, size)
		f.bufs = append(f.bufs, f.headers)
		for i, fr := range f.round {
			if i > 0 {
				f.bufs = append(f.bufs, newline)
			}
			f.bufs = append(f.bufs, fr)
		}
		return f.bufs
	}
	for _, fr := range f.round {
		start := len(f.headers)
		f.headers = appendTextHeader(f.headers, len(fr))
		f.bufs = append(f.bufs, f.headers[start:len(f.headers):len(f.headers)], fr)
	}
	return f.bufs
}

// release lets go of the round's frames (the slices are reused).
func (f *framer) release() {
	clear(f.round)
	f.round = f.round[:0]
	clear(f.bufs)
	f.bufs = f.bufs[:0]
}

// maxHeader is the longest header of an unmasked frame.
const maxHeader = 10

// appendTextHeader appends the header of a final, unmasked text frame of
// n bytes (RFC 6455, section 5.2).
func appendTextHeader(dst []byte, n int) []byte {
	const finText = 0x81
	switch {
	case n < 126:
		return append(dst, finText, byte(n))
	case n <= 0xFFFF:
		return append(dst, finText, 126, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, finText, 127), uint64(n))
}
