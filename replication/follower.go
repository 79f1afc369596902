package replication

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"os"
	"time"
)

// The follower's side: it follows the replication leader recorded in Raft.

// Follower states, as GET /v1/replication/status reports them.
const (
	stateSyncing      = "syncing"
	stateStreaming    = "streaming"
	stateDisconnected = "disconnected"
)

// catchupReadTimeout is how long a catching-up follower waits for the
// next frame: the leader may hash a large file's prefix before it answers.
const catchupReadTimeout = 60 * time.Second

// followerStatus is this node's progress as a follower.
type followerStatus struct {
	Leader       string    `json:"leader,omitempty"`
	State        string    `json:"state"`
	AppliedBytes uint64    `json:"applied_bytes"`
	Since        time.Time `json:"since"`
}

func (m *Replication) setFollower(state, leader string, applied uint64) {
	m.follower.Store(&followerStatus{Leader: leader, State: state, AppliedBytes: applied, Since: time.Now()})
}

// followLoop runs for the module's life: whenever Raft names another node
// as replication leader, it follows it, reconnecting with back-off when the
// stream ends.
func (m *Replication) followLoop(ctx context.Context) {
	self := m.host.NodeName()
	backoff := 50 * time.Millisecond
	for {
		st, ch := m.stateAndChan()
		if ctx.Err() != nil {
			return
		}
		target := st.leader
		if target == "" || target == self {
			m.setFollower(stateDisconnected, "", 0)
			select {
			case <-ch:
			case <-ctx.Done():
				return
			}
			continue
		}
		began := time.Now()
		err := m.session(ctx, target, ch)
		if ctx.Err() != nil {
			return
		}
		m.setFollower(stateDisconnected, target, 0)
		if err != nil {
			m.logger.Debug("replication stream ended", "leader", target, "err", err)
		}
		if time.Since(began) > 5*time.Second {
			backoff = 50 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// session follows target until the stream fails or Raft names another
// leader.
func (m *Replication) session(ctx context.Context, target string, ch <-chan struct{}) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			select {
			case <-sctx.Done():
				return
			case <-ch:
			}
			var st syncState
			st, ch = m.stateAndChan()
			if st.leader != target {
				cancel()
				return
			}
		}
	}()
	defer func() { cancel(); <-watchDone }()
	if !m.acquireDisk(sctx) {
		return sctx.Err()
	}
	defer m.releaseDisk()
	conn, err := m.host.Cluster().OpenStream(sctx, target, streamName)
	if err != nil {
		return fmt.Errorf("open replication stream to %s: %w", target, err)
	}
	defer conn.Close()
	context.AfterFunc(sctx, func() { _ = conn.Close() })
	fs := newFollowSession(m, target, conn)
	defer fs.abort()
	err = fs.run()
	if sctx.Err() != nil {
		return sctx.Err()
	}
	if errors.Is(err, ErrChecksumMismatch) || errors.Is(err, ErrProtocol) || errors.Is(err, ErrBadFrame) || errors.Is(err, ErrBadHeader) {
		m.logger.Warn("replication stream failed; resyncing", "leader", target, "err", err)
	}
	return err
}

// followSession is one stream from the leader.
type followSession struct {
	m       *Replication
	leader  string
	conn    net.Conn
	br      *bufio.Reader
	fr      frameReader // reads from br
	w       *frameWriter
	applied uint64
	cur     *incoming
	batch   *commitBatch // files staged, renamed into place at the next commit
}

// incoming is the file being received during catch-up.
type incoming struct {
	path string
	tail bool     // appended in place, from the follower's own size
	f    *os.File // whole files: the staged copy
	tmp  string
	h    hash.Hash
	next uint64
}

func newFollowSession(m *Replication, leader string, conn net.Conn) *followSession {
	s := &followSession{m: m, leader: leader, conn: conn, batch: newCommitBatch(m.store),
		br: bufio.NewReaderSize(conn, 1<<20), w: &frameWriter{conn: conn, bw: bufio.NewWriterSize(conn, 64<<10)}}
	s.fr.r = s.br
	return s
}

func (s *followSession) abort() {
	if c := s.cur; c != nil && c.f != nil {
		_ = c.f.Close()
		_ = s.m.store.root.Remove(c.tmp)
	}
	s.cur = nil
	s.batch.discard()
	_ = s.m.store.flush()
}

func (s *followSession) read(timeout time.Duration) (frame, error) {
	_ = s.conn.SetReadDeadline(time.Now().Add(timeout))
	f, err := s.fr.read() // f.data is valid until the next read
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("the leader closed the stream: %w", io.ErrUnexpectedEOF)
	}
	return f, err
}

func (s *followSession) run() error {
	_ = s.conn.SetDeadline(time.Now().Add(headerTimeout))
	if _, err := s.conn.Write(appendHeader(nil)); err != nil {
		return fmt.Errorf("send header: %w", err)
	}
	hdr := make([]byte, headerLen)
	if _, err := io.ReadFull(s.conn, hdr); err != nil {
		return fmt.Errorf("read the leader's header: %w", err)
	}
	if err := checkHeader(hdr); err != nil {
		return err
	}
	_ = s.conn.SetDeadline(time.Time{})
	s.m.setFollower(stateSyncing, s.leader, 0)
	started := time.Now()
	p0, err := s.catchUp()
	if err != nil {
		return err
	}
	s.m.logger.Info("caught up with the replication leader", "leader", s.leader, "duration", time.Since(started))
	s.applied = p0
	if err := s.ack(); err != nil {
		return err
	}
	s.m.setFollower(stateStreaming, s.leader, s.applied)
	return s.live()
}

// catchUp receives the index, deletes extras, asks for what differs and
// receives it; it returns the position the leader's index was at.
func (s *followSession) catchUp() (uint64, error) {
	var entries []indexEntry
	var p0 uint64
	for {
		f, err := s.read(catchupReadTimeout)
		if err != nil {
			return 0, err
		}
		if f.typ == frameIndex {
			entries = append(entries, f.entries...)
			continue
		}
		if f.typ != frameIndexEnd || f.size != uint64(len(entries)) {
			return 0, fmt.Errorf("%w: frame %#x while reading an index of %d entries", ErrProtocol, f.typ, len(entries))
		}
		p0 = f.pos
		break
	}
	leader := make(map[string]indexEntry, len(entries))
	for _, e := range entries {
		leader[e.Path] = e
	}
	if err := s.m.store.removeSpecial(); err != nil {
		return 0, err
	}
	local, err := s.m.store.list("")
	if err != nil {
		return 0, err
	}
	mine := make(map[string]indexEntry, len(local))
	for _, e := range local {
		if _, ok := leader[e.Path]; !ok {
			if _, err := s.m.store.remove(e.Path); err != nil {
				return 0, err
			}
			continue
		}
		mine[e.Path] = e
	}
	for _, e := range entries {
		l, ok := mine[e.Path]
		switch {
		case ok && l.Size == e.Size && l.Sum == e.Sum:
			continue
		case ok && l.Size > 0 && l.Size < e.Size:
			err = s.w.write(frame{typ: frameWant, path: e.Path, offset: l.Size, sum: l.Sum})
		default:
			err = s.w.write(frame{typ: frameWant, path: e.Path})
		}
		if err != nil {
			return 0, err
		}
	}
	if err := s.w.write(frame{typ: frameWantDone}); err != nil {
		return 0, err
	}
	if err := s.w.flush(); err != nil {
		return 0, err
	}
	for {
		f, err := s.read(catchupReadTimeout)
		if err != nil {
			return 0, err
		}
		switch f.typ {
		case frameChunk:
			err = s.chunk(f)
		case frameFileEnd:
			err = s.fileEnd(f)
		case frameFileGone:
			if err = s.commitFor(f.path); err == nil {
				_, err = s.m.store.remove(f.path)
			}
		case frameSyncDone:
			if s.cur != nil || f.pos != p0 {
				return 0, fmt.Errorf("%w: sync done at %d in the middle of a file or at another position than %d", ErrProtocol, f.pos, p0)
			}
			if err := s.batch.commit(); err != nil {
				return 0, err
			}
			return p0, s.m.store.flush()
		default:
			return 0, fmt.Errorf("%w: frame %#x during catch-up", ErrProtocol, f.typ)
		}
		if err != nil {
			return 0, err
		}
	}
}

func (s *followSession) chunk(f frame) error {
	if s.cur == nil {
		if err := s.commitFor(f.path); err != nil {
			return err
		}
		if f.offset == 0 {
			tf, name, err := s.m.store.createTemp()
			if err != nil {
				return err
			}
			s.cur = &incoming{path: f.path, f: tf, tmp: name, h: sha256.New()}
		} else {
			s.cur = &incoming{path: f.path, tail: true, next: f.offset}
		}
	}
	c := s.cur
	if c.path != f.path || c.next != f.offset {
		return fmt.Errorf("%w: chunk of %s at %d while receiving %s at %d", ErrProtocol, f.path, f.offset, c.path, c.next)
	}
	if c.tail {
		if _, err := s.m.store.appendTo(f.path, int64(f.offset), f.data); err != nil {
			if errors.Is(err, errOffset) {
				s.m.mismatch()
				return fmt.Errorf("%w: %w", ErrProtocol, err)
			}
			return err
		}
	} else {
		if _, err := c.f.Write(f.data); err != nil {
			return fmt.Errorf("write staged %s: %w", f.path, err)
		}
		c.h.Write(f.data)
	}
	c.next += uint64(len(f.data))
	s.m.received(len(f.data))
	return nil
}

func (s *followSession) fileEnd(f frame) error {
	if s.cur == nil { // an empty file: no chunk came
		if err := s.chunk(frame{typ: frameChunk, path: f.path}); err != nil {
			return err
		}
	}
	c := s.cur
	if c.path != f.path || c.next != f.size {
		return fmt.Errorf("%w: end of %s at %d while receiving %s at %d", ErrProtocol, f.path, f.size, c.path, c.next)
	}
	s.cur = nil
	s.m.catchupFiles.Add(1)
	if c.tail {
		e, err := s.m.store.stat(f.path)
		if err != nil {
			return err
		}
		if e.Sum != f.sum {
			s.m.mismatch()
			return fmt.Errorf("%s after its tail: %w", f.path, ErrChecksumMismatch)
		}
		return nil
	}
	sum := sumOf(c.h)
	if sum != f.sum {
		_ = c.f.Close()
		_ = s.m.store.root.Remove(c.tmp)
		s.m.mismatch()
		return fmt.Errorf("%s: %w", f.path, ErrChecksumMismatch)
	}
	s.batch.add(c.f, staged{name: c.tmp, size: int64(f.size), sum: sum, state: stateOf(c.h)}, f.path)
	if s.batch.full() {
		return s.batch.commit()
	}
	return nil
}

// commitFor commits the batch if it holds a staged file for p: an action
// on p must come after it.
func (s *followSession) commitFor(p string) error {
	if s.batch.has(p) {
		return s.batch.commit()
	}
	return nil
}

// live applies live actions, fsyncing and acknowledging in batches: when
// nothing more is buffered, or maxBatchBytes were applied.
func (s *followSession) live() error {
	batch := 0
	for {
		f, err := s.read(readTimeout)
		if err != nil {
			return err
		}
		if f.pos < s.applied {
			if f.typ != framePosition {
				return fmt.Errorf("%w: action at %d after %d", ErrProtocol, f.pos, s.applied)
			}
			continue
		}
		if f.typ != framePosition {
			if err := s.commitFor(f.path); err != nil {
				return err
			}
		}
		switch f.typ {
		case frameAppend:
			_, err = s.m.store.appendTo(f.path, int64(f.offset), f.data)
			if errors.Is(err, errOffset) {
				s.m.mismatch()
				err = fmt.Errorf("%w: %w", ErrProtocol, err)
			}
		case frameReplace:
			var st staged
			var tf *os.File
			if st, tf, err = s.m.store.stageOpen(f.data, &f.sum); err == nil {
				s.batch.add(tf, st, f.path)
			}
		case frameDelete:
			_, err = s.m.store.remove(f.path)
		case framePosition:
		default:
			err = fmt.Errorf("%w: frame %#x while streaming", ErrProtocol, f.typ)
		}
		if err != nil {
			return err
		}
		s.applied = f.pos
		batch += len(f.data) + 1
		if s.br.Buffered() == 0 || batch >= maxBatchBytes || s.batch.full() {
			if err := s.ack(); err != nil {
				return err
			}
			batch = 0
			s.m.setFollower(stateStreaming, s.leader, s.applied)
		}
	}
}

// ack makes what was applied durable and acknowledges it.
func (s *followSession) ack() error {
	if err := s.batch.commit(); err != nil {
		return err
	}
	if err := s.m.store.flush(); err != nil {
		return err
	}
	if err := s.w.write(frame{typ: frameAck, pos: s.applied}); err != nil {
		return err
	}
	return s.w.flush()
}
