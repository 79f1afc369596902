package replication

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"shoal/internal/httpjson"
)

// leadership is one term of this node as replication leader: the index of
// the directory, the stream position, and the followers' progress.
//
// Writes are serialised by writeMu: each is applied to the disk (and
// fsynced), given the next stream position and queued for every connected
// follower, all under writeMu; then it waits, without the lock, until it
// is durable. A follower's catch-up takes writeMu only to copy the index
// (and, per file it fetches, to open the file), never while it reads or
// sends: writes go on meanwhile, queued for it.
//
// mu guards the followers' progress; changed is closed and replaced at
// every change of it, waking waiting writes.
type leadership struct {
	m    *Replication
	self string
	ctx  context.Context
	stop context.CancelFunc

	writeMu  sync.Mutex
	index    map[string]indexEntry // guarded by writeMu
	pos      uint64                // guarded by writeMu
	dirtySeq uint64                // guarded by writeMu: client writes applied

	// Group commit: a write fsyncs outside writeMu, and one fsync of the
	// files written so far serves every write waiting for it.
	syncMu    sync.Mutex
	syncedSeq atomic.Uint64 // client writes fsynced
	syncErr   error         // guarded by syncMu: a failed fsync fails every later write

	mu       sync.Mutex
	ackPos   uint64 // pos, as last published to the followers
	peers    map[string]*peer
	lost     map[string]time.Time // when a follower's stream ended
	started  time.Time
	pending  map[string]bool // adds to the in-sync set being committed
	removing map[string]bool // removals being committed
	changed  chan struct{}
	closed   bool

	wg sync.WaitGroup // follower streams
}

func newLeadership(ctx context.Context, m *Replication, entries []indexEntry) *leadership {
	ctx, stop := context.WithCancel(ctx)
	l := &leadership{m: m, self: m.host.NodeName(), ctx: ctx, stop: stop,
		index: make(map[string]indexEntry, len(entries)), peers: map[string]*peer{},
		lost: map[string]time.Time{}, started: time.Now(), pending: map[string]bool{},
		removing: map[string]bool{}, changed: make(chan struct{})}
	for _, e := range entries {
		l.index[e.Path] = e
	}
	return l
}

// broadcast wakes waiters; the caller holds mu.
func (l *leadership) broadcast() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// enter counts a follower stream that close must wait for; false once the
// term has ended.
func (l *leadership) enter() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.wg.Add(1)
	return true
}

// close ends the term: every stream is closed and waited for, and waiting
// writes fail with ErrLeadershipLost.
func (l *leadership) close() {
	l.stop()
	l.writeMu.Lock()
	l.mu.Lock()
	l.closed = true
	for _, p := range l.peers {
		_ = p.conn.Close()
	}
	l.broadcast()
	l.mu.Unlock()
	l.writeMu.Unlock()
	l.wg.Wait()
}

// writeOp is a client write.
type writeOp byte

const (
	opWriteReplace writeOp = 1
	opWriteAppend  writeOp = 2
	opWriteDelete  writeOp = 3
)

func (o writeOp) String() string {
	switch o {
	case opWriteReplace:
		return "replace"
	case opWriteAppend:
		return "append"
	case opWriteDelete:
		return "delete"
	}
	return "unknown"
}

// writeResult is what an acknowledged write returns.
type writeResult struct {
	Path    string `json:"path"`
	Size    uint64 `json:"size"`
	SHA256  string `json:"sha256,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
}

// write applies one client write, queues it for the followers and waits
// until it is durable (see durable). The path is valid.
func (l *leadership) write(ctx context.Context, op writeOp, p string, data []byte) (writeResult, error) {
	var st staged
	if op == opWriteReplace {
		var err error
		if st, err = l.m.store.stage(data); err != nil {
			return writeResult{}, err
		}
	}
	l.writeMu.Lock()
	if l.closed {
		l.writeMu.Unlock()
		if op == opWriteReplace {
			l.m.store.discard(st)
		}
		return writeResult{}, ErrNoLeader
	}
	a := action{path: p}
	var e indexEntry
	var err error
	switch op {
	case opWriteReplace:
		a.typ, a.data = frameReplace, data
		e, err = l.m.store.commit(st, p)
		if err != nil {
			l.m.store.discard(st)
		}
	case opWriteAppend:
		a.typ, a.data = frameAppend, data
		e, err = l.m.store.appendTo(p, -1, data)
		a.offset = e.Size - uint64(len(data))
	case opWriteDelete:
		a.typ = frameDelete
		var existed bool
		existed, err = l.m.store.remove(p)
		if err == nil && !existed {
			err = ErrNotFound.WithMessage("no file %q", p)
		}
	}
	if err != nil {
		// The disk may hold part of the write. The index keeps the version
		// the followers have: the directory scan sees the difference and
		// streams whatever the disk now holds.
		l.writeMu.Unlock()
		return writeResult{}, clientPathError(p, err)
	}
	if op == opWriteDelete {
		delete(l.index, p)
	} else {
		l.index[p] = e
		a.sum = e.Sum
	}
	l.pos += actionSize(p, len(a.data))
	a.pos = l.pos
	l.publish(a)
	l.dirtySeq++
	seq := l.dirtySeq
	l.writeMu.Unlock()

	// Followers may apply the write before this fsync ends: a write is
	// acknowledged only once both are done.
	if err := l.syncTo(seq); err != nil {
		return writeResult{}, err
	}
	res := writeResult{Path: p, Size: e.Size}
	if op == opWriteDelete {
		res.Deleted = true
	} else {
		res.SHA256 = hexSum(e.Sum)
	}
	return res, l.waitDurable(ctx, a.pos)
}

// syncTo returns once the client write numbered seq is fsynced (with
// --replication-fsync). Writes that wait together share one fsync: the
// first to get syncMu takes everything written so far.
func (l *leadership) syncTo(seq uint64) error {
	if l.syncedSeq.Load() >= seq {
		return nil
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.syncErr != nil {
		return l.syncErr
	}
	if l.syncedSeq.Load() >= seq {
		return nil
	}
	l.writeMu.Lock()
	target := l.dirtySeq
	files, dirs := l.m.store.takeDirty()
	l.writeMu.Unlock()
	if err := l.m.store.syncSet(files, dirs); err != nil {
		// Linux may forget a failed fsync's pages: nothing written since
		// the last good fsync can be trusted, so no later write succeeds.
		l.syncErr = fmt.Errorf("fsync the replicated directory: %w", err)
		l.m.logger.Error("fsync failed: this leader acknowledges no more writes", "err", err)
		return l.syncErr
	}
	l.syncedSeq.Store(target)
	return nil
}

// publish queues a for every connected follower and advances the acked
// position's target. The caller holds writeMu.
func (l *leadership) publish(a action) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	for _, p := range l.peers {
		p.enqueue(a)
		if p.pendingSince.IsZero() {
			p.pendingSince = now
		}
	}
	l.ackPos = a.pos
	l.broadcast()
}

// waitDurable waits until the write at pos is durable, the ack timeout
// passes (ErrNotDurable), or the term ends (ErrLeadershipLost). If an
// in-sync member's removal is being committed when the timeout passes, it
// waits one more timeout for it: the removal is what lets the write be
// acknowledged without that member.
func (l *leadership) waitDurable(ctx context.Context, pos uint64) error {
	timeout := l.m.cfg.AckTimeout
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	extended := false
	for {
		need := l.m.cfg.minAcks(len(l.m.host.Cluster().Servers()))
		st, stCh := l.m.stateAndChan()
		l.mu.Lock()
		ok := l.durableLocked(st, pos, need)
		removing, closed, ch := len(l.removing) > 0, l.closed, l.changed
		l.mu.Unlock()
		switch {
		case st.leader != l.self:
			return ErrLeadershipLost // another node leads: this write may be lost
		case ok:
			return nil
		case closed:
			return ErrLeadershipLost
		}
		select {
		case <-ch:
		case <-stCh:
		case <-timer.C:
			if removing && !extended {
				extended = true
				timer.Reset(timeout)
				continue
			}
			return ErrNotDurable.WithMessage("the write is on the leader's disk but %d follower acks (every in-sync member's) did not come within %s", need, timeout)
		case <-ctx.Done():
			return httpjson.ErrCanceled
		}
	}
}

// ackSetLocked is who must acknowledge a write: the in-sync set and the
// followers being added to it, without this node. The caller holds mu.
func (l *leadership) ackSetLocked(st syncState) []string {
	var out []string
	for _, n := range st.inSync {
		if n != l.self {
			out = append(out, n)
		}
	}
	for n := range l.pending {
		if n != l.self && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// durableLocked: every member of the ack set acknowledged pos, and they
// are at least need. The caller holds mu.
func (l *leadership) durableLocked(st syncState, pos uint64, need int) bool {
	set := l.ackSetLocked(st)
	if len(set) < need {
		return false
	}
	for _, n := range set {
		p := l.peers[n]
		if p == nil || p.acked < pos {
			return false
		}
	}
	return true
}

// onAck records a follower's acknowledgement.
func (l *leadership) onAck(p *peer, pos uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if pos <= p.acked {
		return
	}
	p.acked = pos
	p.ackedAt = time.Now()
	if pos >= l.ackPos {
		p.pendingSince = time.Time{}
	} else {
		p.pendingSince = p.ackedAt // progress: what is left is pending from now
	}
	l.broadcast()
}

// monitorIdle is how often the monitor looks while nothing is pending.
// Then a change (an ack, a stream, a write, a state change) wakes it at
// once, and the period only refreshes the lag gauges: an idle leader does
// not wake five times a second.
const monitorIdle = 2 * time.Second

// monitor runs until the term ends: it removes stuck members from the
// in-sync set and adds caught-up followers, through Raft, and keeps the
// lag gauges.
func (l *leadership) monitor() {
	tick := max(min(l.m.cfg.AckTimeout/5, 200*time.Millisecond), 10*time.Millisecond)
	t := time.NewTimer(tick)
	defer t.Stop()
	var changed, stateChanged <-chan struct{} // nil while something is pending
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		case <-changed:
		case <-stateChanged:
		}
		quiet, ch, stCh := l.checkMembers()
		if quiet {
			changed, stateChanged = ch, stCh
			t.Reset(monitorIdle)
		} else {
			changed, stateChanged = nil, nil
			t.Reset(tick)
		}
	}
}

// checkMembers commits at most one in-sync change per call. quiet says
// nothing waits for time (no member pending or without a stream); then
// changed and stateChanged, taken with what it looked at, say when to
// look again.
func (l *leadership) checkMembers() (quiet bool, changed, stateChanged <-chan struct{}) {
	st, stateChanged := l.m.stateAndChan()
	now := time.Now()
	timeout := l.m.cfg.AckTimeout
	dead := map[string]bool{} // members gossip declares dead (or gone)
	for _, s := range l.m.host.Cluster().Servers() {
		dead[s.Name] = !s.Alive
	}
	l.mu.Lock()
	l.updateGaugesLocked(st, now)
	quiet = len(l.removing) == 0 && len(l.pending) == 0
	changed = l.changed
	var op byte
	var node string
	for _, n := range st.inSync {
		if n == l.self || l.removing[n] {
			continue
		}
		p := l.peers[n]
		var stuck bool
		if p == nil {
			quiet = false
			since, ok := l.lost[n]
			if !ok || since.Before(l.started) {
				since = l.started
			}
			// No stream: stuck after the ack timeout, or at once if gossip
			// says the node is dead (the old leader after a failover).
			stuck = now.Sub(since) > timeout || dead[n]
		} else {
			quiet = quiet && p.acked >= l.ackPos
			stuck = p.acked < l.ackPos && !p.pendingSince.IsZero() && now.Sub(p.pendingSince) > timeout
		}
		if stuck {
			op, node = opRemove, n
			l.removing[n] = true
			break
		}
	}
	if op == 0 {
		for n, p := range l.peers {
			if !st.has(n) && !l.pending[n] && p.streaming && p.acked >= l.ackPos {
				op, node = opAdd, n
				l.pending[n] = true
				l.broadcast()
				break
			}
		}
	}
	l.mu.Unlock()
	if op == 0 {
		return quiet, changed, stateChanged
	}
	// Apply, not ApplyOnLeader: the replication leader need not lead Raft.
	_, err := l.m.host.Raft().Apply(l.ctx, op, encodeCommand(command{op: op, leader: l.self, node: node}))
	l.mu.Lock()
	delete(l.removing, node)
	delete(l.pending, node)
	l.broadcast()
	l.mu.Unlock()
	switch {
	case err != nil && l.ctx.Err() == nil:
		l.m.logger.Warn("change the in-sync set", "op", opName(op), "node", node, "err", err)
	case err == nil && op == opRemove:
		l.m.logger.Warn("follower left the in-sync set: no ack progress", "node", node, "timeout", timeout)
	case err == nil:
		l.m.logger.Info("follower joined the in-sync set", "node", node)
	}
	return false, nil, nil
}

func opName(op byte) string {
	if op == opAdd {
		return "add"
	}
	return "remove"
}

// register adds a follower's stream and returns the index to send it and
// the position the index is at. A stream the same follower had is closed.
func (l *leadership) register(p *peer) ([]indexEntry, uint64, bool) {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	entries := make([]indexEntry, 0, len(l.index))
	for _, e := range l.index {
		entries = append(entries, e)
	}
	sortEntries(entries)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, 0, false
	}
	if old := l.peers[p.name]; old != nil {
		_ = old.conn.Close()
	}
	p.connectedAt = time.Now()
	if l.pos > 0 {
		p.pendingSince = p.connectedAt
	}
	l.peers[p.name] = p
	l.broadcast()
	return entries, l.pos, true
}

// unregister removes a follower's stream if it is still the current one.
func (l *leadership) unregister(p *peer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.peers[p.name] == p {
		delete(l.peers, p.name)
		l.lost[p.name] = time.Now()
		l.broadcast()
	}
}

// openForSync opens p for a catching-up follower and returns it with its
// size and the stream position it is at: the file's first size bytes are
// its content at that position, whatever writes come later (appends only
// add bytes after size; replaces rename a new file over the path, and
// deletes unlink it, neither changing the open file).
func (l *leadership) openForSync(p string) (f fileSnapshot, pos uint64) {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	file, fi, err := l.m.store.openRegular(p)
	if err != nil {
		return fileSnapshot{}, l.pos
	}
	return fileSnapshot{f: file, size: fi.Size()}, l.pos
}
