package replication

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/pierrec/lz4/v4"
)

// The leader's side of a follower's stream.

// Stream timings.
const (
	headerTimeout = 10 * time.Second
	writeTimeout  = 10 * time.Second
	keepalive     = time.Second
	// readTimeout is how long a follower waits for anything from the
	// leader (keepalives come every second).
	readTimeout = 5 * keepalive
	// maxBatchBytes bounds what a follower applies before it fsyncs and
	// acknowledges.
	maxBatchBytes = 8 << 20
)

// streamName is the module stream followers open on the leader.
const streamName = "sync"

// action is one live change queued for followers. data is shared between
// followers' queues and never modified.
type action struct {
	typ    byte // frameAppend, frameReplace, frameDelete
	path   string
	offset uint64
	data   []byte
	sum    [32]byte // replace: the SHA-256 of data
	pos    uint64
	// shared holds data when it came from the watcher's pool (nil
	// otherwise): each queue holding the action holds it once.
	shared *sharedData
}

// peer is one follower's stream on the leader. Fields under "guarded by
// leadership.mu" are its progress; the queue has its own lock, so that
// publishing never waits for a slow follower.
type peer struct {
	name string
	conn net.Conn

	// guarded by leadership.mu
	acked        uint64
	ackedAt      time.Time
	pendingSince time.Time // when the oldest action it has not acked was published; zero if none
	connectedAt  time.Time
	streaming    bool

	qmu      sync.Mutex
	queue    []action
	qbytes   int64
	overflow bool
	limit    int64
	signal   chan struct{} // one slot: the queue grew

	wants wantQueue
}

// enqueue queues a for the follower; beyond its bound the follower is
// marked overflowed and its stream ends (it restarts its catch-up).
func (p *peer) enqueue(a action) {
	p.qmu.Lock()
	if !p.overflow {
		a.shared.retain()
		p.queue = append(p.queue, a)
		p.qbytes += int64(len(a.data)) + 64
		if p.qbytes > p.limit {
			p.overflow = true
			releaseActions(p.queue)
			p.queue = nil
		}
	}
	p.qmu.Unlock()
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

// take returns the queued actions.
func (p *peer) take() ([]action, bool) {
	p.qmu.Lock()
	defer p.qmu.Unlock()
	q, over := p.queue, p.overflow
	p.queue, p.qbytes = nil, 0
	return q, over
}

// wantQueue holds a follower's file requests between its reader and the
// sender.
type wantQueue struct {
	mu     sync.Mutex
	items  []frame
	done   bool
	signal chan struct{}
}

func (w *wantQueue) push(f frame, done bool) {
	w.mu.Lock()
	if done {
		w.done = true
	} else {
		w.items = append(w.items, f)
	}
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

func (w *wantQueue) pop() (frame, bool, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.items) > 0 {
		f := w.items[0]
		w.items = w.items[1:]
		return f, true, false
	}
	return frame{}, false, w.done
}

// fileSnapshot is a file opened for a follower, with its size then.
type fileSnapshot struct {
	f    *os.File
	size int64
}

// HandlePeerStream serves a follower's stream: the header exchange, then
// the catch-up, then live actions. It returns when the stream ends, the
// term ends or the node stops.
func (m *Replication) HandlePeerStream(ctx context.Context, from, name string, conn net.Conn) {
	defer conn.Close()
	if name != streamName || !m.track() {
		return
	}
	defer m.untrack()
	log := m.logger.With("follower", from)
	_ = conn.SetDeadline(time.Now().Add(headerTimeout))
	hdr := make([]byte, headerLen)
	_, err := io.ReadFull(conn, hdr)
	if err == nil {
		err = checkHeader(hdr)
	}
	// Answer with our own header either way: a follower of another
	// version learns which one we speak.
	_, _ = conn.Write(appendHeader(nil))
	if err != nil {
		m.refuse("bad_header")
		log.Warn("refused a replication stream", "err", err)
		return
	}
	l := m.current.Load()
	if l == nil {
		m.refuse("not_leader")
		log.Debug("refused a replication stream: not the replication leader")
		return
	}
	_ = conn.SetDeadline(time.Time{})
	if !l.enter() {
		m.refuse("not_leader")
		return
	}
	defer l.wg.Done()
	sctx, cancel := context.WithCancel(l.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	context.AfterFunc(sctx, func() { _ = conn.Close() })
	err = l.serve(sctx, from, conn)
	if err != nil && sctx.Err() == nil {
		log.Info("replication stream ended", "err", err)
	}
}

func (m *Replication) refuse(reason string) {
	m.refused.Add(1)
	if m.m != nil {
		m.m.refused.WithLabelValues(reason).Inc()
	}
}

// serve runs one follower's stream on the leader.
func (l *leadership) serve(ctx context.Context, from string, conn net.Conn) error {
	p := &peer{name: from, conn: conn, limit: l.m.cfg.MaxQueueBytes, signal: make(chan struct{}, 1)}
	p.wants.signal = make(chan struct{}, 1)
	entries, p0, ok := l.register(p)
	if !ok {
		return ErrNoLeader
	}
	defer func() {
		l.unregister(p)
		q, _ := p.take() // no action is queued for p any more
		releaseActions(q)
	}()
	started := time.Now()

	readErr := make(chan error, 1)
	go func() { readErr <- l.readFollower(ctx, p, len(entries)) }()
	defer func() { _ = conn.Close(); <-readErr }()

	w := &frameWriter{conn: conn, bw: bufio.NewWriterSize(conn, 256<<10)}
	if l.m.cfg.Compress {
		w.lz = new(lz4.Compressor)
	}
	// The index, in batches.
	for i := 0; i < len(entries); i += maxIndexBatch {
		batch := entries[i:min(i+maxIndexBatch, len(entries))]
		if err := w.write(frame{typ: frameIndex, entries: batch}); err != nil {
			return err
		}
	}
	if err := w.write(frame{typ: frameIndexEnd, size: uint64(len(entries)), pos: p0}); err != nil {
		return err
	}
	if err := w.flush(); err != nil {
		return err
	}
	// The files it asks for.
	stamps := map[string]uint64{}
	files := 0
	for {
		f, ok, done := p.wants.pop()
		if ok {
			pos, err := l.sendFile(w, f)
			if err != nil {
				return err
			}
			stamps[f.path] = pos
			files++
			continue
		}
		if done {
			break
		}
		if err := w.flush(); err != nil {
			return err
		}
		select {
		case <-p.wants.signal:
		case err := <-readErr:
			readErr <- err // for the deferred wait
			return fmt.Errorf("read from follower: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := w.write(frame{typ: frameSyncDone, pos: p0}); err != nil {
		return err
	}
	if err := w.flush(); err != nil {
		return err
	}
	l.m.observeCatchup(time.Since(started), files)
	l.mu.Lock()
	p.streaming = true
	l.broadcast()
	l.mu.Unlock()
	return l.stream(ctx, p, w, stamps, readErr)
}

// stream sends live actions until the stream ends.
func (l *leadership) stream(ctx context.Context, p *peer, w *frameWriter, stamps map[string]uint64, readErr chan error) error {
	tick := time.NewTicker(keepalive)
	defer tick.Stop()
	var last uint64
	for {
		q, over := p.take()
		if over {
			l.m.dropped.Add(1)
			return fmt.Errorf("follower %s fell more than %d bytes behind, or must resync: it restarts its catch-up", p.name, p.limit)
		}
		for i, a := range q {
			f := frame{typ: a.typ, path: a.path, offset: a.offset, data: a.data, sum: a.sum, pos: a.pos}
			if s, ok := stamps[a.path]; ok && s >= a.pos {
				f = frame{typ: framePosition, pos: a.pos} // its catch-up copy has it already
			}
			if err := w.write(f); err != nil {
				releaseActions(q[i:])
				return err
			}
			last = a.pos
			l.m.sent(p.name, len(a.data))
			a.shared.release() // written into w's buffer or the connection
		}
		if len(q) > 0 {
			if err := w.flush(); err != nil {
				return err
			}
			continue
		}
		select {
		case <-p.signal:
		case <-tick.C:
			if err := w.write(frame{typ: framePosition, pos: last}); err != nil {
				return err
			}
			if err := w.flush(); err != nil {
				return err
			}
		case err := <-readErr:
			readErr <- err // for the deferred wait
			return fmt.Errorf("read from follower: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// sendFile answers a want: the whole file, or only its tail if the
// follower's prefix hash matches; fileGone if it no longer exists. It
// returns the stream position the content is at.
func (l *leadership) sendFile(w *frameWriter, want frame) (uint64, error) {
	snap, pos := l.openForSync(want.path)
	if snap.f == nil {
		return pos, w.write(frame{typ: frameFileGone, path: want.path})
	}
	defer snap.f.Close()
	h := sha256.New()
	start := int64(0)
	if want.offset > 0 && int64(want.offset) <= snap.size {
		if _, err := io.Copy(h, io.NewSectionReader(snap.f, 0, int64(want.offset))); err != nil {
			return 0, fmt.Errorf("hash %s: %w", want.path, err)
		}
		if sumOf(h) == want.sum {
			start = int64(want.offset)
		} else {
			h.Reset()
			l.m.mismatch()
		}
	}
	buf := grow(&w.chunk, maxChunk)
	off := start
	for off < snap.size || off == start {
		n, err := snap.f.ReadAt(buf[:min(int64(len(buf)), snap.size-off)], off)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("read %s: %w", want.path, err)
		}
		if n == 0 {
			break
		}
		h.Write(buf[:n])
		if err := w.write(frame{typ: frameChunk, path: want.path, offset: uint64(off), data: buf[:n]}); err != nil {
			return 0, err
		}
		off += int64(n)
		l.m.catchupSent.Add(int64(n))
		if l.m.m != nil {
			l.m.m.catchupSent.Add(float64(n))
		}
	}
	if off != snap.size {
		return 0, fmt.Errorf("read %s: %d of %d bytes", want.path, off, snap.size)
	}
	return pos, w.write(frame{typ: frameFileEnd, path: want.path, size: uint64(snap.size), sum: sumOf(h)})
}

// readFollower reads a follower's frames: file requests during catch-up,
// then acks.
func (l *leadership) readFollower(ctx context.Context, p *peer, indexLen int) error {
	br := bufio.NewReaderSize(p.conn, 64<<10)
	wants, done := 0, false
	for {
		f, err := readFrame(br)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				l.m.logger.Warn("bad frame from follower", "follower", p.name, "err", err)
			}
			return err
		}
		switch {
		case f.typ == frameWant && !done:
			if wants++; wants > indexLen+16 {
				return fmt.Errorf("%w: %d file requests for an index of %d", ErrProtocol, wants, indexLen)
			}
			p.wants.push(f, false)
		case f.typ == frameWantDone && !done:
			done = true
			p.wants.push(frame{}, true)
		case f.typ == frameAck && done:
			l.onAck(p, f.pos)
		default:
			return fmt.Errorf("%w: frame type %#x from a follower", ErrProtocol, f.typ)
		}
	}
}

// frameWriter writes frames with a deadline per flush. With a compressor
// it compresses the frames that carry file data.
type frameWriter struct {
	conn  net.Conn
	bw    *bufio.Writer
	buf   []byte
	chunk []byte          // file content read for catch-up, reused
	lz    *lz4.Compressor // nil: no compression
}

func (w *frameWriter) write(f frame) error {
	var err error
	w.buf, err = appendFrame(w.buf[:0], f)
	if err != nil {
		return err
	}
	out := w.buf
	if w.lz != nil && (f.typ == frameChunk || f.typ == frameAppend || f.typ == frameReplace) {
		out = compressFrame(out, w.lz)
	}
	_ = w.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err = w.bw.Write(out)
	return err
}

func (w *frameWriter) flush() error {
	_ = w.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	return w.bw.Flush()
}
