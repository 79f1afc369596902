package ws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"shoal/internal/revoke"
)

// Errors of Send and Replace.
var (
	// ErrQueueFull: the frame was not queued because the connection's send
	// queue holds Config.SendQueue frames; the connection stays open and
	// the caller decides (see Send).
	ErrQueueFull = errors.New("websocket send queue is full")
	// ErrClosed: the connection is closing or closed; nothing was queued.
	ErrClosed = errors.New("websocket connection is closed")
)

// Conn is one open websocket connection of a Hub. Its methods may be
// called from any goroutine, and none of them blocks on the client: Send,
// Replace and Close only touch the queue and schedule its writing.
//
// Frames reach the client in the order they were queued, each as one text
// message; on a connection that negotiated Config.BatchSubprotocol,
// frames that waited in the queue together share one message, one frame
// per line. A frame is never copied: the same bytes may be queued on any
// number of connections (Broadcast), and the caller must not modify them
// afterwards.
type Conn struct {
	hub       *Hub
	ws        *websocket.Conn
	wire      *wire // under ws: its deadlines bound writes and closes
	flusher   *flusher
	id        uint64
	remote    string
	logger    *slog.Logger
	onMessage Handler
	onClose   func(*Conn)
	// releaseSlot gives back the stream slot the connection holds (see
	// sse.Reserve); the hub calls it when it forgets the connection.
	releaseSlot func()
	// revoked fires when the credential the connection was opened with
	// is revoked (revoke.From; nil: never).
	revoked <-chan struct{}

	ctx    context.Context // cancelled, with the *CloseError as cause, when closing starts
	cancel context.CancelCauseFunc
	done   chan struct{}  // closed when the connection is closed and gone from the hub
	loops  sync.WaitGroup // the reader, the revocation watch, flow probes; finish waits for them
	writer sync.WaitGroup // the writer goroutine, while one runs (see flusher)

	// The keepalive is a timer, not a goroutine: most connections are
	// idle, and a goroutine's stack was a sixth of an idle connection's
	// memory. pingTimer fires keepalive; pingsStopped (under pingMu) ends
	// the re-arming, and pinging counts a keepalive in progress.
	pingMu       sync.Mutex
	pingTimer    *time.Timer
	pingsStopped bool
	pinging      sync.WaitGroup

	// The flow window (Config.FlowWindow): sent is the bytes written (by
	// whoever writes: the flusher or the writer, which hand the writes
	// over under mu), acked those the client has shown it read, probing
	// whether a ping is out to learn more, and ack wakes a writer that
	// waits for it.
	sent    int64
	acked   atomic.Int64
	probing atomic.Bool
	ack     chan struct{}

	// batch: the client negotiated Config.BatchSubprotocol, so frames
	// queued together go out as one message, one frame per line.
	batch bool
	// writing is when the writer's blocking write in progress started
	// (Unix nanoseconds; 0: none), for the hub's write watchdog.
	writing atomic.Int64

	mu      sync.Mutex
	queue   [][]byte // ring buffer of SendQueue frames
	head, n int
	closing bool
	// Who writes the queue (see flusher): nobody (it is empty), the
	// flusher (scheduled), or the writer goroutine; lastWrite is when the
	// last write began, which paces the next (Config.BatchInterval).
	state         writeState
	lastWrite     time.Time
	writerRunning bool
	// sched counts the connection's schedules on its flusher, and due is
	// when the current one is due (zero: at once; see flusher.schedule).
	sched uint64
	due   time.Time
	cause *CloseError
	label string // the closes metric's reason
	hard  bool   // close without a handshake: the peer cannot take part
}

// writeState is who writes a connection's queue.
type writeState uint8

const (
	writeIdle      writeState = iota // the queue is empty, or the connection closing
	writeScheduled                   // on its flusher's list, or being flushed
	writeByWriter                    // the writer goroutine's (a write that blocks)
)

func newConn(h *Hub, wsc *websocket.Conn, wire *wire, r *http.Request, opts AcceptOptions) *Conn {
	id := h.ids.Add(1)
	batch := h.cfg.BatchSubprotocol != "" && wsc.Subprotocol() == h.cfg.BatchSubprotocol
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(r.Context()))
	return &Conn{
		hub: h, ws: wsc, wire: wire, flusher: h.flushers[id%uint64(len(h.flushers))],
		id: id, remote: r.RemoteAddr, batch: batch,
		logger:    h.logger.With("conn", id),
		onMessage: opts.OnMessage, onClose: opts.OnClose,
		ctx: ctx, cancel: cancel,
		revoked: revoke.From(r.Context()),
		done:    make(chan struct{}),
		ack:     make(chan struct{}, 1),
		queue:   make([][]byte, h.cfg.SendQueue),
	}
}

// ID returns the connection's number, unique within its hub.
func (c *Conn) ID() uint64 { return c.id }

// RemoteAddr returns the client's address as the HTTP server saw it
// (http.Request.RemoteAddr; a proxy's own address behind a proxy).
func (c *Conn) RemoteAddr() string { return c.remote }

// Context returns the connection's context: it carries the upgrade
// request's values and is cancelled when the connection starts to close,
// with the *CloseError that Cause returns as its cause.
func (c *Conn) Context() context.Context { return c.ctx }

// Done is closed once the connection is closed, its goroutines have ended
// and OnClose has returned.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Cause returns why the connection closed, or nil while it is open: the
// status and reason of the close frame sent (or received from the peer);
// 1006 (abnormal closure) when the connection was dropped without one.
func (c *Conn) Cause() *CloseError {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// Send queues frame to be written as one text message, and never blocks.
// It returns ErrQueueFull, and queues nothing, if Config.SendQueue frames
// are waiting already: the connection stays open and the caller decides
// what to do, for example Replace its queue with one frame that supersedes
// them (a full state instead of diffs), or Close it. It returns ErrClosed
// once the connection is closing. The frame must be valid UTF-8 and must
// not be modified afterwards.
func (c *Conn) Send(frame []byte) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.n == len(c.queue) {
		c.mu.Unlock()
		c.hub.m.dropped.WithLabelValues(droppedOverflow).Inc()
		return ErrQueueFull
	}
	c.queue[(c.head+c.n)%len(c.queue)] = frame
	c.n++
	c.wakeLocked()
	c.mu.Unlock()
	return nil
}

// Replace discards every frame still waiting in the queue (a frame being
// written completes) and queues frame instead; it never blocks. A caller
// whose Send met ErrQueueFull uses it to collapse what the client missed
// into one frame, such as the full state, which then arrives before any
// frame sent after Replace. It returns ErrClosed once the connection is
// closing.
func (c *Conn) Replace(frame []byte) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	discarded := c.clearLocked()
	c.queue[0] = frame
	c.n = 1
	c.wakeLocked()
	c.mu.Unlock()
	c.hub.m.dropped.WithLabelValues(droppedReplaced).Add(float64(discarded))
	return nil
}

// Queued returns how many frames wait in the send queue.
func (c *Conn) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Broadcast queues the same frame on each of conns (see Send) without
// copying it, and returns those whose queue was full, for the caller to
// deal with (see Replace); connections that are closing are skipped.
func Broadcast(frame []byte, conns []*Conn) (full []*Conn) {
	for _, c := range conns {
		if errors.Is(c.Send(frame), ErrQueueFull) {
			full = append(full, c)
		}
	}
	return full
}

// Close starts closing the connection with status and reason (at most 123
// bytes; longer is cut) and returns at once; Done says when it is closed.
// Frames still queued are dropped. The context is cancelled now; the close
// frame follows any frame being written, the handshake is bounded by
// Config.CloseTimeout. A status that cannot be sent (1005, 1006, 1015, or
// outside 1000-1014 and 3000-4999) is sent as 1011. Later calls do
// nothing.
func (c *Conn) Close(status StatusCode, reason string) {
	c.shutdown(&CloseError{Status: sendable(status), Reason: closeReason(reason)}, closedByCaller, false)
}

// wakeLocked has a queued frame written: it schedules the connection on
// its flusher, at once if it was quiet for BatchInterval, else at its last
// write plus the interval, unless the flusher or the writer has it
// already (they write until the queue is empty). A paced connection whose
// queue has filled to half is scheduled again, at once: pacing must not
// overflow a client that reads well into a collapse. The caller holds
// c.mu.
func (c *Conn) wakeLocked() {
	switch {
	case c.state == writeIdle:
		c.state = writeScheduled
		c.flusher.schedule(c, c.nextWriteLocked())
	case c.state == writeScheduled && !c.due.IsZero() && c.halfFullLocked():
		c.flusher.schedule(c, time.Time{})
	}
}

// halfFullLocked: half the queue, or more, waits. The caller holds c.mu.
func (c *Conn) halfFullLocked() bool {
	return 2*c.n >= len(c.queue)
}

// nextWriteLocked is when the connection may be written to next: zero
// (at once) if its last write began BatchInterval ago or more, or if half
// its queue waits. The caller holds c.mu.
func (c *Conn) nextWriteLocked() time.Time {
	d := c.hub.cfg.BatchInterval
	if d <= 0 || c.lastWrite.IsZero() || c.halfFullLocked() {
		return time.Time{}
	}
	if at := c.lastWrite.Add(d); time.Now().Before(at) {
		return at
	}
	return time.Time{}
}

// clearLocked empties the queue and returns how many frames it held. The
// caller holds c.mu.
func (c *Conn) clearLocked() int {
	n := c.n
	for i := range c.n {
		c.queue[(c.head+i)%len(c.queue)] = nil
	}
	c.head, c.n = 0, 0
	return n
}

// shutdown starts closing the connection, if it is not closing already:
// the first cause wins. A soft close bounds the write in flight by
// CloseTimeout, then sends a close frame; a hard one fails every blocked
// read and write at once and closes without a handshake.
func (c *Conn) shutdown(cause *CloseError, label string, hard bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing, c.cause, c.label, c.hard = true, cause, label, hard
	c.mu.Unlock()
	if hard {
		_ = c.wire.SetDeadline(time.Now())
	} else {
		_ = c.wire.SetWriteDeadline(time.Now().Add(c.hub.cfg.CloseTimeout))
	}
	c.cancel(cause)
	go c.finish()
}

// awaitShutdown is for a goroutine that saw the connection fail in a way
// another goroutine reports more precisely (a peer's close frame, a local
// timeout): it waits for that report, then reports label itself.
func (c *Conn) awaitShutdown(label string) {
	t := time.NewTimer(c.hub.cfg.CloseTimeout)
	defer t.Stop()
	select {
	case <-c.ctx.Done():
	case <-t.C:
		c.shutdown(&CloseError{Status: websocket.StatusAbnormalClosure, Reason: "connection lost"}, label, true)
	}
}

// kill drops the TCP connection, whatever is in progress: Stop's last
// resort once its context is done.
func (c *Conn) kill() {
	_ = c.wire.Close()
}

// start runs the connection's goroutines.
func (c *Conn) start() {
	c.loops.Add(1)
	go c.read()
	if c.revoked != nil {
		c.loops.Add(1)
		go c.watchRevoked()
	}
	c.armPing()
}

// flush writes, without blocking, what waits in the queue: the flusher's
// part (see flusher), for the connection's schedule gen. A write the
// socket does not take whole, a flow window that is full, or a connection
// without non-blocking writes (TLS) goes to the writer goroutine.
func (c *Conn) flush(fr *framer, now time.Time, gen uint64) {
	c.mu.Lock()
	current := c.state == writeScheduled && c.sched == gen
	c.mu.Unlock()
	if !current {
		return // scheduled again since (its queue filled up): that entry writes
	}
	if !c.wire.tryLock() {
		c.mu.Lock()
		c.toWriterLocked()
		c.mu.Unlock()
		return
	}
	limit, ok := c.roundLimit()
	if ok {
		fr.round = c.popRound(fr.round[:0], limit)
		if len(fr.round) > 0 {
			c.wire.writevLocked(fr.frame(c.batch))
		}
	}
	stalled := len(c.wire.rest) > 0
	c.wire.mu.Unlock()
	wrote := len(fr.round) > 0
	if wrote {
		c.wrote(fr.round)
		fr.release()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if wrote {
		c.lastWrite = now
	}
	switch {
	case c.closing: // finish drops the rest
	case !ok || stalled:
		c.toWriterLocked()
	case c.n > 0: // queued while it wrote: the next write, paced
		c.flusher.schedule(c, c.nextWriteLocked())
	default:
		c.state = writeIdle
	}
}

// toWriterLocked hands the connection's writes to its writer goroutine,
// starting it unless it runs or the connection is closing. The caller
// holds c.mu.
func (c *Conn) toWriterLocked() {
	c.state = writeByWriter
	if c.writerRunning || c.closing {
		return
	}
	c.writerRunning = true
	c.writer.Add(1)
	c.hub.m.writers.Inc()
	go c.write()
}

// write is the writer goroutine, for a connection whose writes block (see
// flusher): it writes what the socket did not take and what is queued,
// waiting for the socket and for the flow window, until the queue is
// empty; then it gives the connection back to the flusher and ends. It
// ends too when the connection starts to close (finish waits for it).
func (c *Conn) write() {
	defer c.writer.Done()
	var fr framer
	for c.ctx.Err() == nil && c.awaitWindow() {
		// The hub's write watchdog bounds each blocking write
		// (watchWrites), not a context per frame, nor the socket's write
		// deadline: the connection's context must not cut a frame in
		// half, and coder/websocket writes on the socket itself (a pong,
		// a close reply), which a deadline left in place would fail.
		c.writing.Store(time.Now().UnixNano())
		err := c.wire.writeRest()
		c.writing.Store(0)
		if err != nil {
			c.awaitShutdown(closedWriteFailed) // the watchdog's cause comes first, if it cut the write
			return
		}
		limit, _ := c.roundLimit() // room, after awaitWindow
		fr.round = c.popRound(fr.round[:0], limit)
		if len(fr.round) == 0 {
			c.mu.Lock()
			if c.n == 0 || c.closing {
				c.state, c.writerRunning = writeIdle, false
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			continue
		}
		now := time.Now()
		c.writing.Store(now.UnixNano())
		err = c.wire.writeBlocking(fr.frame(c.batch))
		c.writing.Store(0)
		if err != nil {
			c.awaitShutdown(closedWriteFailed)
			return
		}
		c.wrote(fr.round)
		fr.release()
		c.mu.Lock()
		c.lastWrite = now
		c.mu.Unlock()
	}
}

// wrote counts a round that was written (or handed to the socket's rest)
// and probes the flow window.
func (c *Conn) wrote(round [][]byte) {
	c.hub.m.writes.Inc()
	c.hub.m.sent.Add(float64(len(round)))
	for _, frame := range round {
		c.sent += int64(len(frame))
	}
	c.probe()
}

// roundLimit is how many bytes the next round may take: maxRoundBytes,
// less if the flow window has less room; false if it has none.
func (c *Conn) roundLimit() (int, bool) {
	limit := maxRoundBytes
	if w := c.hub.cfg.FlowWindow; w > 0 {
		room := w - (c.sent - c.acked.Load())
		if room <= 0 {
			return 0, false
		}
		limit = int(min(int64(limit), room))
	}
	return limit, true
}

// maxRoundBytes bounds the frames taken off the queue at once (at least
// one, whatever its size): one write. What is left of the flow window
// bounds it too.
const maxRoundBytes = 32 << 10

// popRound appends to round the frames waiting in the queue, oldest first,
// up to limit bytes and maxRoundFrames (at least one frame if any waits;
// none once the connection is closing).
func (c *Conn) popRound(round [][]byte, limit int) [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return round
	}
	size := 0
	for c.n > 0 && len(round) < maxRoundFrames {
		f := c.queue[c.head]
		if len(round) > 0 && size+len(f) > limit {
			break
		}
		size += len(f)
		round = append(round, f)
		c.queue[c.head] = nil
		c.head = (c.head + 1) % len(c.queue)
		c.n--
	}
	return round
}

// awaitWindow waits, if the flow window is full, until the client has
// read enough of it; false if the connection started to close meanwhile.
// Frames queue up while it waits.
func (c *Conn) awaitWindow() bool {
	w := c.hub.cfg.FlowWindow
	if w <= 0 || c.sent-c.acked.Load() < w {
		return true
	}
	c.hub.m.flowWaits.Inc()
	for c.sent-c.acked.Load() >= w {
		c.probe() // a pong that acknowledged less than needed: ask again
		select {
		case <-c.ack:
		case <-c.ctx.Done():
			return false
		}
	}
	return true
}

// probe pings the client once half the flow window is unacknowledged and
// no ping is out: its pong acknowledges every byte written before it.
// A pong that does not come within PingTimeout closes the connection as
// dead, as the keepalive's does. The probe is one of the connection's
// loops: finish waits for it (closing the connection ends its ping).
func (c *Conn) probe() {
	w := c.hub.cfg.FlowWindow
	if w <= 0 || c.sent-c.acked.Load() < w/2 || c.probing.Load() {
		return
	}
	c.mu.Lock()
	if c.closing { // finish waits for the loops: none may start now
		c.mu.Unlock()
		return
	}
	c.loops.Add(1)
	c.mu.Unlock()
	c.probing.Store(true)
	at := c.sent
	go func() {
		defer c.loops.Done()
		if !c.ping() {
			return
		}
		c.acked.Store(at)
		c.probing.Store(false)
		select {
		case c.ack <- struct{}{}:
		default:
		}
	}()
}

// finish closes the connection (handshake or not, as shutdown decided),
// waits for the writer, the reader and the keepalive, and retires the
// connection. shutdown starts it.
func (c *Conn) finish() {
	// The writer ends at the context's end, its write in flight bounded by
	// the deadline shutdown set; a flusher's write in flight ends before
	// the wire is shut. The close frame comes after both.
	c.writer.Wait()
	c.wire.shutDown()
	c.mu.Lock()
	cause, label, hard := c.cause, c.label, c.hard
	dropped := c.clearLocked()
	c.mu.Unlock()
	c.hub.m.dropped.WithLabelValues(droppedClosed).Add(float64(dropped))

	if hard {
		_ = c.ws.CloseNow()
	} else {
		// Bounds the whole handshake, including what coder/websocket does
		// not bound (skipping the rest of a huge unread message).
		_ = c.wire.SetDeadline(time.Now().Add(c.hub.cfg.CloseTimeout))
		_ = c.ws.Close(cause.Status, cause.Reason) // an error means the peer did not take part; it is closed either way
	}
	c.stopPings()
	c.loops.Wait()

	c.hub.remove(c, label)
	c.logger.Debug("websocket closed", "reason", label, "status", int(cause.Status))
	if c.onClose != nil {
		c.onClose(c)
	}
	close(c.done)
	c.hub.wg.Done()
}

// read is the reader goroutine: it reads messages and hands text ones to
// the handler until the connection fails or starts to close.
func (c *Conn) read() {
	defer c.loops.Done()
	limit := c.hub.cfg.MaxMessageBytes
	for {
		// Not the connection's context: its cancellation would drop the
		// connection at once, before the close handshake.
		typ, r, err := c.ws.Reader(context.Background())
		if err != nil {
			c.readFailed(err)
			return
		}
		if typ != websocket.MessageText {
			c.shutdown(&CloseError{Status: websocket.StatusUnsupportedData, Reason: "binary messages are not supported"}, closedBinary, false)
			return
		}
		msg, err := io.ReadAll(io.LimitReader(r, limit+1))
		if err != nil {
			c.readFailed(err)
			return
		}
		if int64(len(msg)) > limit {
			c.shutdown(&CloseError{Status: websocket.StatusMessageTooBig, Reason: fmt.Sprintf("message too big: the limit is %d bytes", limit)}, closedTooBig, false)
			return
		}
		c.hub.m.received.Inc()
		if c.ctx.Err() != nil {
			return // closing: the close handshake reads the rest
		}
		if c.onMessage == nil {
			c.shutdown(&CloseError{Status: websocket.StatusPolicyViolation, Reason: "this endpoint accepts no messages"}, closedUnexpected, false)
			return
		}
		if err := c.onMessage(c.ctx, c, msg); err != nil {
			c.handlerFailed(err)
			return
		}
	}
}

// readFailed reports why reading failed.
func (c *Conn) readFailed(err error) {
	var ce websocket.CloseError
	switch {
	case errors.As(err, &ce):
		c.shutdown(&CloseError{Status: ce.Code, Reason: ce.Reason}, closedByPeer, false)
	case errors.Is(err, net.ErrClosed):
		// Closed on this side: by our own close, or by coder/websocket on
		// a write or ping timeout, which the writer or keepalive reports.
		c.awaitShutdown(closedPeerGone)
	default: // EOF, reset, a broken frame
		c.shutdown(&CloseError{Status: websocket.StatusAbnormalClosure, Reason: "connection lost"}, closedPeerGone, true)
	}
}

// handlerFailed closes the connection as the handler's error says.
func (c *Conn) handlerFailed(err error) {
	var ce *CloseError
	if errors.As(err, &ce) {
		c.shutdown(&CloseError{Status: sendable(ce.Status), Reason: closeReason(ce.Reason)}, closedHandlerError, false)
		return
	}
	if c.ctx.Err() != nil {
		return // closing already; the handler saw its context end
	}
	c.logger.Warn("websocket message handler failed", "err", err)
	c.shutdown(&CloseError{Status: websocket.StatusInternalError, Reason: "internal error"}, closedHandlerError, false)
}

// watchRevoked closes the connection when its credential is revoked
// (only connections opened with a revocable credential have it).
func (c *Conn) watchRevoked() {
	defer c.loops.Done()
	select {
	case <-c.ctx.Done():
	case <-c.revoked:
		c.shutdown(&CloseError{Status: websocket.StatusPolicyViolation, Reason: "credential revoked"}, closedRevoked, false)
	}
}

// armPing schedules the next keepalive ping, PingInterval from now,
// unless the connection is closing.
func (c *Conn) armPing() {
	c.pingMu.Lock()
	defer c.pingMu.Unlock()
	if c.pingsStopped || c.ctx.Err() != nil {
		return
	}
	c.pingTimer = time.AfterFunc(c.hub.cfg.PingInterval, c.keepalive)
}

// keepalive runs on the timer's goroutine: it pings, and drops the
// connection when the pong does not come within PingTimeout (ping), or
// arms the next ping.
func (c *Conn) keepalive() {
	c.pingMu.Lock()
	if c.pingsStopped {
		c.pingMu.Unlock()
		return
	}
	c.pinging.Add(1)
	c.pingMu.Unlock()
	defer c.pinging.Done()
	if c.ctx.Err() != nil || !c.ping() {
		return
	}
	c.armPing()
}

// stopPings stops the keepalive and waits for a ping in progress (the
// connection is closed already, which ends it).
func (c *Conn) stopPings() {
	c.pingMu.Lock()
	c.pingsStopped = true
	if c.pingTimer != nil {
		c.pingTimer.Stop()
	}
	c.pingMu.Unlock()
	c.pinging.Wait()
}

// ping pings the client and waits for the pong, at most PingTimeout:
// false if none came. Without a pong in time the connection is closed as
// dead; on another failure it was closing already, and the reader
// reports why.
func (c *Conn) ping() bool {
	ctx, cancel := context.WithTimeout(context.Background(), c.hub.cfg.PingTimeout)
	err := c.ws.Ping(ctx)
	cancel()
	if errors.Is(err, context.DeadlineExceeded) {
		c.shutdown(&CloseError{Status: websocket.StatusAbnormalClosure,
			Reason: fmt.Sprintf("no pong within %s", c.hub.cfg.PingTimeout)}, closedPingTimeout, true)
	}
	return err == nil
}

// StatusCode is a websocket close status (RFC 6455 section 7.4).
type StatusCode = websocket.StatusCode

// The close statuses a module uses; 4000-4999 are free for its own.
const (
	StatusNormalClosure   = websocket.StatusNormalClosure   // 1000: done
	StatusGoingAway       = websocket.StatusGoingAway       // 1001: the server is stopping
	StatusProtocolError   = websocket.StatusProtocolError   // 1002
	StatusUnsupportedData = websocket.StatusUnsupportedData // 1003: a binary message
	StatusPolicyViolation = websocket.StatusPolicyViolation // 1008: a message the module refuses
	StatusMessageTooBig   = websocket.StatusMessageTooBig   // 1009
	StatusInternalError   = websocket.StatusInternalError   // 1011
	StatusTryAgainLater   = websocket.StatusTryAgainLater   // 1013: overloaded, come back later
)

// CloseError is why a connection closed: the status and reason of its
// close frame. A message handler returns one (Closef) to close its
// connection with that status; Conn.Cause returns one.
type CloseError struct {
	Status StatusCode
	Reason string // at most 123 bytes are sent
}

// Closef returns a *CloseError with a formatted reason.
func Closef(status StatusCode, format string, args ...any) *CloseError {
	return &CloseError{Status: status, Reason: fmt.Sprintf(format, args...)}
}

var _ error = (*CloseError)(nil)

func (e *CloseError) Error() string {
	return fmt.Sprintf("websocket closed with status %d: %s", int(e.Status), e.Reason)
}

// maxReason is the longest close reason: a control frame carries 125
// bytes, two of them the status.
const maxReason = 123

// closeReason makes reason fit a close frame: valid UTF-8 of at most
// maxReason bytes, cut at a character boundary.
func closeReason(reason string) string {
	reason = strings.ToValidUTF8(reason, "")
	if len(reason) <= maxReason {
		return reason
	}
	i := maxReason
	for i > 0 && !utf8.RuneStart(reason[i]) {
		i--
	}
	return reason[:i]
}

// sendable returns status if a close frame may carry it, else 1011.
func sendable(status StatusCode) StatusCode {
	switch {
	case status == 1004, status == 1005, status == 1006, status == 1015:
		return StatusInternalError
	case status >= 1000 && status <= 1014, status >= 3000 && status <= 4999:
		return status
	}
	return StatusInternalError
}
