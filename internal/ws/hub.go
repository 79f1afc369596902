package ws

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"shoal/internal/httpjson"
	"shoal/internal/sse"
)

// Refusals Accept answers with (besides httpjson.ErrShuttingDown after
// Stop); errors.Is matches them by code.
var (
	// ErrNotWebsocket: the request is not a websocket upgrade (426 with
	// "Upgrade: websocket").
	ErrNotWebsocket = httpjson.Errorf(http.StatusUpgradeRequired, "websocket_required", "this endpoint serves websocket connections only")
	// ErrSubprotocol: the client did not offer the hub's subprotocol; the
	// error's "subprotocol" detail names it.
	ErrSubprotocol = httpjson.BadRequest("subprotocol_required", "the client must offer this endpoint's websocket subprotocol")
	// ErrFull: the hub holds Config.MaxConns connections. It is a 503 with
	// Retry-After, not a 429: the limit protects this node as a whole and
	// says nothing about this client's rate, and a client (or a load
	// balancer) that gets a 503 may try another node at once, which holds
	// its own connections.
	ErrFull = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "too_many_connections",
		Message: "this node holds as many websocket connections as it may", RetryAfter: 5 * time.Second}
)

// Hub is the set of one module's websocket connections. It upgrades
// requests (Accept), keeps every connection until it closes, and closes
// them all on Stop. Its methods may be called from any goroutine.
//
// Each open connection has a reader goroutine (which runs the message
// handler) and a keepalive timer (which pings). Its frames are written by
// the hub's flushers (a goroutine for a share of the connections, woken
// once for many frames; see flusher), or, while its writes block, by a
// writer goroutine of its own; a goroutine closes it and runs OnClose.
// They end when the connection closes; Stop waits for them.
type Hub struct {
	cfg    Config
	logger *slog.Logger
	m      *metrics
	ids    atomic.Uint64
	full   *httpjson.Error // ErrFull with the configured Retry-After
	// flushers write the connections' frames; a connection has one,
	// chosen by its id.
	flushers []*flusher

	mu        sync.Mutex
	conns     map[*Conn]struct{}
	upgrading int  // upgrades in progress, counted against MaxConns
	stopped   bool // set by Stop: Accept refuses
	// wg counts upgrades in progress and open connections; Add happens
	// under mu and only before stopped is set, so Stop's Wait is sound.
	wg sync.WaitGroup
	// watchDone is closed when the write watchdog (watchWrites) has ended;
	// nil while none runs. It runs while the hub has connections.
	watchDone chan struct{}
	watchStop chan struct{}

	unregister sync.Once
}

// NewHub validates cfg and registers the hub's metrics. It starts nothing:
// a module calls it when it is provisioned and Stop when it stops.
func NewHub(cfg Config) (*Hub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer, cfg.MetricPrefix)
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.OriginPatterns = append([]string(nil), cfg.OriginPatterns...)
	full := *ErrFull
	full.RetryAfter = cfg.RetryAfter
	h := &Hub{cfg: cfg, logger: logger, m: m, full: &full, conns: map[*Conn]struct{}{}}
	// A flusher per CPU, up to four: one writes some hundred thousand
	// frames a second, and more than one spreads a fan-out's writes over
	// the CPUs.
	for range min(runtime.GOMAXPROCS(0), 4) {
		h.flushers = append(h.flushers, newFlusher())
	}
	return h, nil
}

// AcceptOptions are what one connection does with what it reads.
type AcceptOptions struct {
	// OnMessage receives each text message, in order, from the
	// connection's reader goroutine (see Handler). Nil means the client
	// has nothing to say: a message closes the connection with 1008.
	OnMessage Handler
	// OnClose, if set, is called once when the connection has closed and
	// left the hub, from the goroutine that closed it, before Done is closed and
	// before Stop returns. c.Cause says why. It must not block for long,
	// and must not call Stop: Stop waits for it.
	OnClose func(c *Conn)
}

// Handler handles one text message of a connection. It is called from the
// connection's reader goroutine, one message at a time; msg is its own to
// keep. ctx is the connection's context, cancelled when the connection
// starts to close: a handler that waits on something must also wait on
// ctx. While it runs, nothing is read from the connection, pongs included,
// so it must return well within Config.PingTimeout (hand long work to a
// goroutine of its own, or queue replies with Send, which never blocks);
// it must not call Hub.Stop, which waits for it.
//
// A returned error closes the connection: with the status and reason of
// a *CloseError in its chain (see Closef), else with 1011 "internal
// error", the error itself being logged and not sent.
type Handler func(ctx context.Context, c *Conn, msg []byte) error

// Accept upgrades r to a websocket connection that speaks the hub's
// subprotocol and returns it, open and tracked by the hub until it closes;
// its reader and writer have started and its keepalive is armed
// (OnMessage may run before Accept returns). The handler returns
// afterwards; the connection lives on
// (http.Server has handed it over).
//
// Accept answers every failure itself: before the upgrade with the API's
// JSON error shape (ErrNotWebsocket, ErrSubprotocol, ErrFull,
// httpjson.ErrShuttingDown, 400/403/405 for a bad handshake or a foreign
// origin), and returns the error too, for the caller's information only:
// the caller must not write to w after an error.
//
// The request's context values (such as a request id) stay with the
// connection's context; its cancellation does not.
func (h *Hub) Accept(w http.ResponseWriter, r *http.Request, opts AcceptOptions) (*Conn, error) {
	if !hasToken(r.Header.Values("Upgrade"), "websocket", true) {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		return nil, h.refuse(w, r, refusedNotWebsocket, ErrNotWebsocket)
	}
	offered := r.Header.Values("Sec-WebSocket-Protocol")
	if !hasToken(offered, h.cfg.Subprotocol, false) && (h.cfg.BatchSubprotocol == "" || !hasToken(offered, h.cfg.BatchSubprotocol, false)) {
		return nil, h.refuse(w, r, refusedSubprotocol, ErrSubprotocol.
			WithMessage("offer the websocket subprotocol %q in Sec-WebSocket-Protocol", h.cfg.Subprotocol).
			WithDetail("subprotocol", h.cfg.Subprotocol))
	}
	if !canHijack(w) {
		// A middleware hides the connection (or this is HTTP/2): a bug
		// worth logging, which WriteError does for internal errors.
		return nil, h.refuse(w, r, refusedNotHijackable,
			fmt.Errorf("accept websocket: the response writer cannot hand over its connection: %w", http.ErrNotSupported))
	}
	if reason, err := h.reserve(); err != nil {
		return nil, h.refuse(w, r, reason, err)
	}
	// The API's limits of streams per node and per client (its token)
	// count websockets too, when the request carries them.
	slot, err := sse.Reserve(r.Context())
	if err != nil {
		h.release()
		return nil, h.refuse(w, r, refusedStreamLimit, err)
	}

	uw := &upgradeWriter{ResponseWriter: w}
	wsc, err := websocket.Accept(uw, r, &websocket.AcceptOptions{
		Subprotocols:   h.subprotocols(),
		OriginPatterns: h.cfg.OriginPatterns,
	})
	if err != nil {
		slot()
		h.release()
		if uw.wire == nil && uw.refusal != 0 {
			return nil, h.refuse(w, r, refusedHandshake, handshakeError(uw.refusal, uw.msg.String()))
		}
		return nil, fmt.Errorf("accept websocket: %w", err)
	}
	if uw.wire == nil || !slices.Contains(h.subprotocols(), wsc.Subprotocol()) {
		// coder/websocket matches subprotocols ignoring case and could pick
		// another spelling the client also offered; we speak ours only.
		h.abandon(wsc, uw.wire, websocket.StatusProtocolError, "subprotocol mismatch")
		h.m.closes.WithLabelValues(closedProtocolError).Inc()
		slot()
		h.release()
		return nil, fmt.Errorf("accept websocket: negotiated subprotocol %q, want %q", wsc.Subprotocol(), h.cfg.Subprotocol)
	}
	wsc.SetReadLimit(-1) // the reader enforces MaxMessageBytes, with its own close reason

	h.mu.Lock()
	h.upgrading--
	if h.stopped {
		h.mu.Unlock()
		h.abandon(wsc, uw.wire, websocket.StatusGoingAway, goingAwayReason)
		h.m.closes.WithLabelValues(closedGoingAway).Inc()
		slot()
		h.wg.Done()
		return nil, fmt.Errorf("accept websocket: %w", httpjson.ErrShuttingDown)
	}
	c := newConn(h, wsc, uw.wire, r, opts)
	c.releaseSlot = slot
	h.conns[c] = struct{}{}
	if h.watchDone == nil {
		h.watchDone, h.watchStop = make(chan struct{}), make(chan struct{})
		go h.watchWrites(h.watchStop, h.watchDone)
	}
	h.mu.Unlock()
	h.m.open.Inc()
	c.logger.Debug("websocket opened", "remote", c.remote)
	c.start()
	return c, nil
}

// subprotocols are the subprotocols the hub speaks, preferred first.
func (h *Hub) subprotocols() []string {
	if h.cfg.BatchSubprotocol != "" {
		return []string{h.cfg.BatchSubprotocol, h.cfg.Subprotocol}
	}
	return []string{h.cfg.Subprotocol}
}

// goingAwayReason is the reason of the close frame Stop sends.
const goingAwayReason = "server shutting down"

// Stop closes every open connection with 1001 (going away), refuses new
// ones with httpjson.ErrShuttingDown, and waits until every connection's
// goroutines have ended (OnClose included), or until ctx is done: then it
// drops the connections still open without a close handshake and returns
// ctx's error (a message handler that ignores its context can still hold
// its goroutine). Stop unregisters the hub's metrics. It may be called
// more than once.
func (h *Hub) Stop(ctx context.Context) error {
	h.mu.Lock()
	h.stopped = true
	open := h.snapshot()
	h.mu.Unlock()
	defer h.stopWatch()
	for _, c := range open {
		c.shutdown(&CloseError{Status: websocket.StatusGoingAway, Reason: goingAwayReason}, closedGoingAway, false)
	}
	defer h.unregister.Do(h.m.unregister)

	done := make(chan struct{})
	go func() { // ends when the last connection does; bounded by the kill below
		h.wg.Wait()
		// What the flushers still hold is closed connections.
		for _, f := range h.flushers {
			f.drain()
		}
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	h.mu.Lock()
	open = h.snapshot()
	h.mu.Unlock()
	for _, c := range open {
		c.kill()
	}
	return fmt.Errorf("stop websocket hub: %d connections still closing: %w", len(open), ctx.Err())
}

// watchWrites closes, as dead, each connection whose write round has not
// finished within WriteTimeout (a client that stopped reading, with the
// socket buffers full): it looks every quarter of WriteTimeout, so such a
// connection goes after between one and one and a quarter WriteTimeout.
// It ends when the hub has no connection left (Accept starts it again)
// or when stop is closed.
func (h *Hub) watchWrites(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(max(h.cfg.WriteTimeout/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		h.mu.Lock()
		if len(h.conns) == 0 {
			h.watchDone, h.watchStop = nil, nil
			h.mu.Unlock()
			return
		}
		open := h.snapshot()
		h.mu.Unlock()
		now := time.Now().UnixNano()
		for _, c := range open {
			if start := c.writing.Load(); start != 0 && now-start >= int64(h.cfg.WriteTimeout) {
				c.shutdown(&CloseError{Status: websocket.StatusAbnormalClosure, Reason: "write timed out"}, closedWriteTimeout, true)
			}
		}
	}
}

// stopWatch ends the write watchdog, if it runs, and waits for it.
func (h *Hub) stopWatch() {
	h.mu.Lock()
	stop, done := h.watchStop, h.watchDone
	h.watchDone, h.watchStop = nil, nil
	h.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

// Len returns the number of open connections.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// snapshot returns the open connections. The caller holds h.mu.
func (h *Hub) snapshot() []*Conn {
	out := make([]*Conn, 0, len(h.conns))
	for c := range h.conns {
		out = append(out, c)
	}
	return out
}

// reserve counts an upgrade in progress against MaxConns, or says why
// there is no room for it.
func (h *Hub) reserve() (reason string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.stopped:
		return refusedShuttingDown, httpjson.ErrShuttingDown
	case len(h.conns)+h.upgrading >= h.cfg.MaxConns:
		return refusedFull, h.full
	}
	h.upgrading++
	h.wg.Add(1)
	return "", nil
}

// release gives back what reserve took, for an upgrade that failed.
func (h *Hub) release() {
	h.mu.Lock()
	h.upgrading--
	h.mu.Unlock()
	h.wg.Done()
}

// remove forgets a closed connection. Its writer calls it once.
func (h *Hub) remove(c *Conn, label string) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
	if c.releaseSlot != nil {
		c.releaseSlot()
	}
	h.m.open.Dec()
	h.m.closes.WithLabelValues(label).Inc()
}

// abandon closes a connection that was upgraded but never joined the hub,
// with a close handshake bounded by CloseTimeout.
func (h *Hub) abandon(wsc *websocket.Conn, w *wire, status websocket.StatusCode, reason string) {
	if w != nil {
		_ = w.SetDeadline(time.Now().Add(h.cfg.CloseTimeout))
	}
	_ = wsc.Close(status, reason) // the peer may be gone; nothing left to do about it
}

// refuse answers r with err in the API's error shape and counts it.
func (h *Hub) refuse(w http.ResponseWriter, r *http.Request, reason string, err error) error {
	h.m.refused.WithLabelValues(reason).Inc()
	httpjson.WriteError(w, r, err)
	return err
}

// handshakeError turns a refusal coder/websocket wrote as plain text
// (bad version or key, wrong method, foreign origin) into the API's error.
func handshakeError(status int, msg string) *httpjson.Error {
	msg = strings.TrimSpace(msg)
	switch status {
	case http.StatusMethodNotAllowed:
		return httpjson.ErrMethod.WithMessage("%s", msg)
	case http.StatusForbidden:
		return httpjson.Errorf(status, "origin_forbidden", "%s", msg)
	case http.StatusUpgradeRequired:
		return ErrNotWebsocket.WithMessage("%s", msg)
	}
	return httpjson.Errorf(status, "bad_handshake", "%s", msg)
}

// upgradeWriter is the ResponseWriter coder/websocket upgrades through. It
// hands coder/websocket the hijacked connection as a wire, which the hub
// writes its data frames to as well, and holds back a plain-text refusal
// so that Accept can send it in the API's JSON shape instead.
type upgradeWriter struct {
	http.ResponseWriter
	refusal int             // status of a refusal, 0 if none
	msg     strings.Builder // its text
	wire    *wire           // set by Hijack
}

func (u *upgradeWriter) WriteHeader(status int) {
	if status == http.StatusSwitchingProtocols {
		u.ResponseWriter.WriteHeader(status)
		return
	}
	u.refusal = status
}

func (u *upgradeWriter) Write(p []byte) (int, error) {
	if u.refusal == 0 {
		return u.ResponseWriter.Write(p)
	}
	if u.msg.Len() < 1024 {
		u.msg.Write(p)
	}
	return len(p), nil
}

// Hijack takes the connection over, clears the deadlines http.Server may
// have left on it (ReadHeaderTimeout's), and returns it as a wire, with a
// write buffer for control frames only (coder/websocket writes through
// it; see wire).
func (u *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(u.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Flush(); err != nil { // empty (net/http's hijack flushed the response), to be sure
		_ = conn.Close()
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	u.wire = newWire(conn)
	return u.wire, bufio.NewReadWriter(brw.Reader, bufio.NewWriterSize(u.wire, controlBuffer)), nil
}

// canHijack reports whether w, or a ResponseWriter it wraps (found through
// Unwrap, as http.ResponseController does), can hand its connection over.
func canHijack(w http.ResponseWriter) bool {
	for {
		switch t := w.(type) {
		case http.Hijacker:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return false
		}
	}
}

var _ http.Hijacker = (*upgradeWriter)(nil)
