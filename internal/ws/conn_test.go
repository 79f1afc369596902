package ws

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestConn_RoundTrip(t *testing.T) {
	got := make(chan string, 100)
	s := newServer(t, testConfig(), AcceptOptions{
		OnMessage: func(ctx context.Context, c *Conn, msg []byte) error {
			got <- string(msg)
			return nil
		},
	})
	cl := dial(t, s, testProtocol)
	cl.read()
	c := s.next(t)
	if c.ID() == 0 {
		t.Fatalf("got ID 0, want a positive one")
	}
	if host, _, err := net.SplitHostPort(c.RemoteAddr()); err != nil || host != "127.0.0.1" {
		t.Fatalf("got remote address %q, want 127.0.0.1:port", c.RemoteAddr())
	}

	const frames, messages = 100, 50
	for i := range frames {
		if err := c.Send([]byte(`{"seq":` + strconv.Itoa(i) + `}`)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	for i := range frames {
		if m, want := string(cl.receive(t)), `{"seq":`+strconv.Itoa(i)+`}`; m != want {
			t.Fatalf("got frame %q, want %q", m, want)
		}
	}
	for i := range messages {
		cl.write(t, websocket.MessageText, []byte("msg "+strconv.Itoa(i)))
	}
	for i := range messages {
		select {
		case m := <-got:
			if want := "msg " + strconv.Itoa(i); m != want {
				t.Fatalf("handler got %q, want %q", m, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("handler got %d messages, want %d", i, messages)
		}
	}
	eventually(t, 10*time.Second, func() error {
		sent, received := testutil.ToFloat64(s.hub.m.sent), testutil.ToFloat64(s.hub.m.received)
		if sent != frames || received != messages {
			return fmt.Errorf("got %v sent and %v received, want %d and %d", sent, received, frames, messages)
		}
		return nil
	})
	if got := testutil.ToFloat64(s.hub.m.open); got != 1 {
		t.Fatalf("got open gauge %v, want 1", got)
	}
}

func TestBroadcast_OneFrameToMany(t *testing.T) {
	s := newServer(t, testConfig(), AcceptOptions{})
	var clients []*client
	var conns []*Conn
	for range 3 {
		cl := dial(t, s, testProtocol)
		cl.read()
		clients = append(clients, cl)
		conns = append(conns, s.next(t))
	}
	frame := []byte(`{"op":"replace","path":"/a","value":1}`)
	if full := Broadcast(frame, conns); len(full) != 0 {
		t.Fatalf("got %d full queues, want none", len(full))
	}
	for i, cl := range clients {
		if m := cl.receive(t); !bytes.Equal(m, frame) {
			t.Fatalf("client %d got %q, want %q", i, m, frame)
		}
	}
	// A closing connection is skipped, not reported full.
	conns[0].Close(StatusNormalClosure, "bye")
	if full := Broadcast(frame, conns); len(full) != 0 {
		t.Fatalf("got %d full queues, want none", len(full))
	}
	for i, cl := range clients[1:] {
		if m := cl.receive(t); !bytes.Equal(m, frame) {
			t.Fatalf("client %d got %q, want %q", i+1, m, frame)
		}
	}
	if status, reason := clients[0].closed(t); status != StatusNormalClosure || reason != "bye" {
		t.Fatalf("got close %d %q, want 1000 bye", status, reason)
	}
}

func TestConn_Close(t *testing.T) {
	closedCh := make(chan *CloseError, 1)
	s := newServer(t, testConfig(), AcceptOptions{OnClose: func(c *Conn) { closedCh <- c.Cause() }})
	cl := dial(t, s, testProtocol)
	cl.read()
	c := s.next(t)
	if c.Cause() != nil {
		t.Fatalf("got cause %v on an open connection, want nil", c.Cause())
	}
	long := strings.Repeat("é", 100) // 200 bytes: cut to 123 at a character boundary
	c.Close(4001, long)
	c.Close(StatusInternalError, "second close is ignored")
	if err := c.Send([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v from Send after Close, want ErrClosed", err)
	}
	if err := c.Replace([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v from Replace after Close, want ErrClosed", err)
	}
	if c.Context().Err() == nil {
		t.Fatalf("context not cancelled by Close")
	}
	status, reason := cl.closed(t)
	if want := strings.Repeat("é", 61); status != 4001 || reason != want {
		t.Fatalf("got close %d %q, want 4001 %q", status, reason, want)
	}
	<-c.Done()
	if ce := <-closedCh; ce == nil || ce.Status != 4001 {
		t.Fatalf("OnClose saw cause %v, want status 4001", ce)
	}
	s.closesWith(t, closedByCaller, 1)
	if n := s.hub.Len(); n != 0 {
		t.Fatalf("got %d connections, want 0", n)
	}
}

func TestConn_PeerCloses(t *testing.T) {
	handlerCtx := make(chan context.Context, 1)
	s := newServer(t, testConfig(), AcceptOptions{
		OnMessage: func(ctx context.Context, c *Conn, msg []byte) error {
			// A handler that waited on ctx here would stall the reader, and
			// the client's close frame would go unread.
			handlerCtx <- ctx
			return nil
		},
	})
	cl := dial(t, s, testProtocol)
	c := s.next(t)
	cl.write(t, websocket.MessageText, []byte("hello"))
	ctx := <-handlerCtx
	if err := cl.ws.Close(StatusNormalClosure, "client done"); err != nil {
		t.Fatalf("client close: %v", err)
	}
	<-c.Done()
	if ctx.Err() == nil {
		t.Fatalf("the handler's context outlived the connection")
	}
	if ce := c.Cause(); ce == nil || ce.Status != StatusNormalClosure || ce.Reason != "client done" {
		t.Fatalf("got cause %v, want the client's 1000", ce)
	}
	s.closesWith(t, closedByPeer, 1)
}

func TestConn_MessageTooBig(t *testing.T) {
	cfg := testConfig()
	cfg.MaxMessageBytes = 1024
	got := make(chan int, 4)
	s := newServer(t, cfg, AcceptOptions{
		OnMessage: func(ctx context.Context, c *Conn, msg []byte) error {
			got <- len(msg)
			return nil
		},
	})
	cl := dial(t, s, testProtocol)
	cl.read()
	cl.write(t, websocket.MessageText, bytes.Repeat([]byte("a"), 1024)) // at the limit: fine
	if n := <-got; n != 1024 {
		t.Fatalf("handler got %d bytes, want 1024", n)
	}
	cl.write(t, websocket.MessageText, bytes.Repeat([]byte("a"), 1025))
	status, reason := cl.closed(t)
	if status != StatusMessageTooBig || !strings.Contains(reason, "too big") {
		t.Fatalf("got close %d %q, want 1009 message too big", status, reason)
	}
	s.closesWith(t, closedTooBig, 1)
	if len(got) != 0 {
		t.Fatalf("the handler got the oversize message")
	}
}

func TestConn_OversizeFragmentedMessage(t *testing.T) {
	cfg := testConfig()
	cfg.MaxMessageBytes = 1024
	s := newServer(t, cfg, AcceptOptions{OnMessage: func(context.Context, *Conn, []byte) error { return nil }})
	cl := dial(t, s, testProtocol)
	cl.read()
	// A message in many frames, far over the limit: the server must stop
	// at the limit, not buffer the message.
	w, err := cl.ws.Writer(context.Background(), websocket.MessageText)
	if err != nil {
		t.Fatalf("writer: %v", err)
	}
	chunk := bytes.Repeat([]byte("b"), 512)
	for range 8 {
		if _, err := w.Write(chunk); err != nil {
			break // the server closed: what the test wants
		}
	}
	_ = w.Close()
	if status, _ := cl.closed(t); status != StatusMessageTooBig {
		t.Fatalf("got close %d, want 1009", status)
	}
}

func TestConn_BinaryRefused(t *testing.T) {
	s := newServer(t, testConfig(), AcceptOptions{OnMessage: func(context.Context, *Conn, []byte) error {
		t.Errorf("the handler got a binary message")
		return nil
	}})
	cl := dial(t, s, testProtocol)
	cl.read()
	cl.write(t, websocket.MessageBinary, []byte{0, 1, 2})
	if status, _ := cl.closed(t); status != StatusUnsupportedData {
		t.Fatalf("got close %d, want 1003", status)
	}
	s.closesWith(t, closedBinary, 1)
}

func TestConn_HandlerError(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus StatusCode
		wantReason string
	}{
		{"close error", Closef(StatusPolicyViolation, "bad subscribe: %s", "no path"), StatusPolicyViolation, "bad subscribe: no path"},
		{"wrapped close error", fmt.Errorf("decode: %w", Closef(4004, "no such object")), 4004, "no such object"},
		{"unsendable status", Closef(1006, "x"), StatusInternalError, "x"},
		{"any other error", errors.New("disk on fire"), StatusInternalError, "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, testConfig(), AcceptOptions{OnMessage: func(context.Context, *Conn, []byte) error { return tt.err }})
			cl := dial(t, s, testProtocol)
			cl.read()
			cl.write(t, websocket.MessageText, []byte("{}"))
			if status, reason := cl.closed(t); status != tt.wantStatus || reason != tt.wantReason {
				t.Fatalf("got close %d %q, want %d %q", status, reason, tt.wantStatus, tt.wantReason)
			}
			s.closesWith(t, closedHandlerError, 1)
		})
	}
}

func TestConn_NoHandler(t *testing.T) {
	s := newServer(t, testConfig(), AcceptOptions{})
	cl := dial(t, s, testProtocol)
	cl.read()
	cl.write(t, websocket.MessageText, []byte("hello"))
	if status, _ := cl.closed(t); status != StatusPolicyViolation {
		t.Fatalf("got close %d, want 1008", status)
	}
	s.closesWith(t, closedUnexpected, 1)
}

// frame returns a big frame (to fill socket buffers fast) that starts with
// its number.
func frame(i int) []byte {
	return []byte(fmt.Sprintf("%06d", i) + strings.Repeat("x", 256<<10))
}

// seq reads a frame's number back; -1 for one that frame did not make.
func seq(m []byte) int {
	if len(m) < 6 {
		return -1
	}
	n, err := strconv.Atoi(string(m[:6]))
	if err != nil {
		return -1
	}
	return n
}

func TestConn_SlowClientOverflows(t *testing.T) {
	cfg := testConfig()
	cfg.SendQueue = 4
	cfg.WriteTimeout = time.Minute // the slow client stalls its writer; it must not be dropped for it here
	s := newServer(t, cfg, AcceptOptions{})
	slow := dial(t, s, testProtocol) // reads nothing until the end
	slowConn := s.next(t)
	fast := dial(t, s, testProtocol)
	fast.read()
	fastConn := s.next(t)
	conns := []*Conn{slowConn, fastConn}

	// Send in lock step with the fast client, until the slow one's queue
	// has overflowed a few times. Socket buffers hold some MiB, so this
	// takes some dozens of 256 KiB frames.
	var sent, queuedSlow, overflows int
	for overflows < 3 {
		if sent == 2000 {
			t.Fatalf("the slow client's queue never overflowed in %d frames", sent)
		}
		full := Broadcast(frame(sent), conns)
		switch {
		case len(full) == 0:
			queuedSlow++
		case len(full) == 1 && full[0] == slowConn:
			overflows++
		default:
			t.Fatalf("frame %d: got full queues %v, want at most the slow client's", sent, full)
		}
		if got := seq(fast.receive(t)); got != sent {
			t.Fatalf("fast client got frame %d, want %d", got, sent)
		}
		sent++
	}
	if got := testutil.ToFloat64(s.hub.m.dropped.WithLabelValues(droppedOverflow)); got != float64(overflows) {
		t.Fatalf("got %v overflow drops, want %d", got, overflows)
	}
	if got := slowConn.Queued(); got != cfg.SendQueue {
		t.Fatalf("got %d frames queued for the slow client, want a full queue of %d", got, cfg.SendQueue)
	}

	// The module collapses what the slow client missed into one full state.
	full := []byte("full state")
	if err := slowConn.Replace(full); err != nil {
		t.Fatalf("replace: %v", err)
	}
	const after = 3
	for i := range after {
		if f := Broadcast(frame(sent+i), conns); len(f) != 0 {
			t.Fatalf("frame %d after Replace: got %d full queues, want none", sent+i, len(f))
		}
		if got := seq(fast.receive(t)); got != sent+i {
			t.Fatalf("fast client got frame %d, want %d", got, sent+i)
		}
	}

	// The slow client now reads: a prefix of what was queued for it, in
	// order, then the full state, then what came after it.
	slow.read()
	var prefix int
	for {
		m := slow.receive(t)
		if bytes.Equal(m, full) {
			break
		}
		if got := seq(m); got != prefix {
			t.Fatalf("slow client got frame %d, want %d (in order, none skipped before the full state)", got, prefix)
		}
		prefix++
	}
	if prefix > queuedSlow {
		t.Fatalf("slow client got %d frames before the full state, but only %d were queued", prefix, queuedSlow)
	}
	for i := range after {
		if got := seq(slow.receive(t)); got != sent+i {
			t.Fatalf("slow client got frame %d after the full state, want %d", got, sent+i)
		}
	}
	if got, want := testutil.ToFloat64(s.hub.m.dropped.WithLabelValues(droppedReplaced)), float64(queuedSlow-prefix); got != want {
		t.Fatalf("got %v frames replaced, want %v (queued %d, delivered %d before the full state)", got, want, queuedSlow, prefix)
	}
	if n := s.hub.Len(); n != 2 {
		t.Fatalf("got %d connections, want both still open", n)
	}
}

func TestConn_DeadPeer(t *testing.T) {
	cfg := testConfig()
	cfg.PingInterval = 20 * time.Millisecond
	cfg.PingTimeout = time.Second
	s := newServer(t, cfg, AcceptOptions{})

	// A live client answers pings from its read loop.
	live := dial(t, s, testProtocol)
	live.read()
	liveConn := s.next(t)

	// A dead one completed the handshake over raw TCP and never reads
	// again, so it never answers a ping.
	addr := strings.TrimPrefix(s.srv.URL, "http://")
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer raw.Close()
	fmt.Fprintf(raw, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n\r\n", addr, testProtocol)
	br := bufio.NewReader(raw)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read handshake response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("got status %d, want 101", resp.StatusCode)
	}
	dead := s.next(t)

	select {
	case <-dead.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("the dead peer was not dropped within 10s")
	}
	if ce := dead.Cause(); ce == nil || ce.Status != websocket.StatusAbnormalClosure || !strings.Contains(ce.Reason, "no pong") {
		t.Fatalf("got cause %v, want an abnormal closure for a missing pong", ce)
	}
	s.closesWith(t, closedPingTimeout, 1)
	// The live client has answered every ping meanwhile (dozens of them).
	if ce := liveConn.Cause(); ce != nil {
		t.Fatalf("the live client was closed: %v", ce)
	}
	if n := s.hub.Len(); n != 1 {
		t.Fatalf("got %d connections, want the live one", n)
	}
	// The dead peer's socket was closed: what it never read ends in EOF.
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatalf("got %v reading the dropped connection, want EOF", err)
	}
}

func TestConn_WriteTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.SendQueue = 8
	cfg.WriteTimeout = 200 * time.Millisecond
	s := newServer(t, cfg, AcceptOptions{})
	dial(t, s, testProtocol) // never reads
	c := s.next(t)
	// Queue until the socket buffers are full and the writer stalled on
	// them (a full queue alone may only mean the flusher has not run yet),
	// and the write watchdog drops the client.
	for i := 0; ; {
		if i == 2000 {
			t.Fatalf("the writer of a client that never reads never stalled")
		}
		err := c.Send(frame(i))
		if errors.Is(err, ErrClosed) {
			break
		}
		if err == nil {
			i++
			continue
		}
		c.mu.Lock()
		stalled := c.writerRunning
		c.mu.Unlock()
		if stalled {
			break
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("a client that never reads was not dropped")
	}
	s.closesWith(t, closedWriteTimeout, 1)
}

// TestConn_FlowWindowBoundsWhatASlowClientHasUnread: with a flow window,
// a client that reads nothing is written at most the window (and one
// frame) before the writer waits: the queue then fills and overflows,
// for the module to collapse, instead of socket buffers absorbing
// megabytes. Once the client reads, the pong releases the writer and
// every frame arrives, in order.
func TestConn_FlowWindowBoundsWhatASlowClientHasUnread(t *testing.T) {
	const frameBytes = 1 << 10
	small := func(i int) []byte { return []byte(fmt.Sprintf("%06d", i) + strings.Repeat("x", frameBytes-6)) }
	cfg := testConfig()
	cfg.SendQueue = 4
	cfg.FlowWindow = 64 << 10
	cfg.PingTimeout = time.Minute // the client reads late on purpose
	s := newServer(t, cfg, AcceptOptions{})
	slow := dial(t, s, testProtocol)
	conn := s.next(t)

	// Queue frames until the queue stays full: the writer is waiting.
	accepted := 0
	for stuck := false; !stuck; {
		if accepted > 4000 { // 4 MB: what socket buffers alone would take
			t.Fatalf("%d frames accepted without the writer waiting", accepted)
		}
		if conn.Send(small(accepted)) == nil {
			accepted++
			continue
		}
		stuck = true
		for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			if conn.Queued() < cfg.SendQueue {
				stuck = false // only a burst: the writer is draining
				break
			}
		}
	}
	if max := int(cfg.FlowWindow/frameBytes) + 1 + cfg.SendQueue; accepted > max {
		t.Fatalf("%d frames accepted for a client that reads nothing, want at most %d (the window, one frame, the queue)", accepted, max)
	}
	if got := testutil.ToFloat64(s.hub.m.flowWaits); got < 1 {
		t.Fatalf("got %v flow waits, want at least 1", got)
	}

	// The client reads: its pongs release the writer, and everything
	// queued arrives in order.
	slow.read()
	for i := range accepted {
		if got := seq(slow.receive(t)); got != i {
			t.Fatalf("got frame %d, want %d", got, i)
		}
	}
	if err := conn.Send(small(accepted)); err != nil {
		t.Fatalf("send after the client caught up: %v", err)
	}
	if got := seq(slow.receive(t)); got != accepted {
		t.Fatalf("got frame %d, want %d", got, accepted)
	}
}

// TestConn_BatchSubprotocolJoinsWhatWaited: a client that offers the batch
// subprotocol gets it, and the frames that waited in its queue together
// arrive as one message, one per line, in order; a client that offers
// only the plain one gets a message per frame.
func TestConn_BatchSubprotocolJoinsWhatWaited(t *testing.T) {
	cfg := batchConfig()
	cfg.SendQueue = 8
	cfg.FlowWindow = 8 << 10
	cfg.PingTimeout = time.Minute // the client reads late on purpose
	s := newServer(t, cfg, AcceptOptions{})
	frame := func(i int) []byte { return []byte(fmt.Sprintf("%06d", i) + strings.Repeat("x", 1018)) }

	for _, c := range []struct {
		offer   []string
		batched bool
	}{
		{[]string{testProtocol, batchProtocol}, true}, // the hub's preference wins
		{[]string{testProtocol}, false},
	} {
		cl := dial(t, s, c.offer...)
		conn := s.next(t)
		if got := cl.ws.Subprotocol(); (got == batchProtocol) != c.batched {
			t.Fatalf("offering %v: negotiated %q", c.offer, got)
		}
		// The client does not read: the window fills, the writer waits,
		// and the queue fills behind it.
		sent := 0
		eventually(t, 10*time.Second, func() error {
			for conn.Send(frame(sent)) == nil {
				sent++
			}
			if conn.Queued() < cfg.SendQueue {
				return errors.New("the writer still drains")
			}
			return nil
		})
		cl.read()
		messages, joined := cl.receiveInOrder(t, sent)
		if c.batched && joined == 0 {
			t.Fatalf("offering %v: %d frames in %d messages, none joined", c.offer, sent, messages)
		}
		if !c.batched && messages != sent {
			t.Fatalf("offering %v: %d frames in %d messages", c.offer, sent, messages)
		}
	}
}

// TestConn_IdleConnectionAnswersPingsAndCloses: the writer's write deadline
// must not outlive its writes. After a frame and an idle spell longer than
// WriteTimeout, the client's ping is still answered and its close
// handshake still completes (coder/websocket writes both itself, on the
// same socket).
func TestConn_IdleConnectionAnswersPingsAndCloses(t *testing.T) {
	cfg := testConfig()
	cfg.WriteTimeout = 100 * time.Millisecond
	s := newServer(t, cfg, AcceptOptions{})
	cl := dial(t, s, testProtocol)
	conn := s.next(t)
	cl.read()
	if err := conn.Send([]byte("000000 hello")); err != nil {
		t.Fatal(err)
	}
	cl.receive(t)
	time.Sleep(3 * cfg.WriteTimeout) // longer than any deadline the writer set
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.ws.Ping(ctx); err != nil {
		t.Fatalf("ping after an idle spell: %v", err)
	}
	time.Sleep(3 * cfg.WriteTimeout)
	if err := cl.ws.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("close handshake after an idle spell: %v", err)
	}
}

// TestConn_BatchIntervalPacesABusyConnection: on a batching connection, a
// frame that finds the connection quiet goes out at once, alone; frames
// sent within BatchInterval of a write wait for the rest of it and go out
// together, as one message. The frames are sent 50 ms apart, well within
// the interval (a second): a writer that did not wait would send the
// first alone.
func TestConn_BatchIntervalPacesABusyConnection(t *testing.T) {
	cfg := batchConfig()
	cfg.BatchInterval = time.Second
	s := newServer(t, cfg, AcceptOptions{})
	cl := dial(t, s, batchProtocol)
	conn := s.next(t)
	cl.read()
	send := func(i int) {
		if err := conn.Send([]byte(fmt.Sprintf("%06d", i))); err != nil {
			t.Fatal(err)
		}
	}
	send(0)
	if got := string(cl.receive(t)); got != "000000" {
		t.Fatalf("first frame came as %q, want it alone", got)
	}
	for i := 1; i <= 3; i++ {
		send(i)
		time.Sleep(50 * time.Millisecond) // a writer that did not wait would have sent it alone
	}
	if got := string(cl.receive(t)); got != "000001\n000002\n000003" {
		t.Fatalf("frames sent within the interval came as %q, want one message", got)
	}
}

// TestConn_TLSConnectionsAreWrittenByTheirWriter: a TLS connection has no
// descriptor of its own for the flushers' non-blocking writes; its writer
// goroutine writes every round, in order, paced and joined like any
// other, and the close handshake follows the last frame.
func TestConn_TLSConnectionsAreWrittenByTheirWriter(t *testing.T) {
	cfg := batchConfig()
	cfg.BatchInterval = 20 * time.Millisecond
	s := newTLSServer(t, cfg, AcceptOptions{})
	cl := dial(t, s, batchProtocol)
	conn := s.next(t)
	if conn.wire.raw != nil {
		t.Fatal("a TLS connection got non-blocking writes")
	}
	cl.read()
	const frames = 200
	for i := range frames {
		if err := conn.Send(frame(i)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if i%10 == 0 {
			time.Sleep(time.Millisecond) // some rounds alone, some joined
		}
	}
	cl.receiveInOrder(t, frames)
	conn.Close(StatusNormalClosure, "done")
	if code, reason := cl.closed(t); code != StatusNormalClosure || reason != "done" {
		t.Fatalf("closed with %d %q", code, reason)
	}
}

// TestConn_ControlFramesWaitForAPartlyWrittenFrame: when the socket took
// part of a frame only (the client stopped reading), the rest waits on the
// wire, and a ping coder/websocket writes meanwhile goes out after it, not
// inside it: the client, reading again, gets every frame whole and in
// order, and answers the ping.
func TestConn_ControlFramesWaitForAPartlyWrittenFrame(t *testing.T) {
	cfg := testConfig()
	cfg.SendQueue = 8
	cfg.WriteTimeout = time.Minute
	cfg.PingTimeout = time.Minute
	s := newServer(t, cfg, AcceptOptions{})
	cl := dial(t, s, testProtocol) // reads nothing until told
	conn := s.next(t)
	sent := 0
	eventually(t, 10*time.Second, func() error {
		for conn.Send(frame(sent)) == nil {
			sent++
		}
		conn.mu.Lock()
		defer conn.mu.Unlock()
		if !conn.writerRunning {
			return errors.New("the socket took every write whole so far")
		}
		return nil
	})
	pinged := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pinged <- conn.ws.Ping(ctx)
	}()
	cl.read()
	cl.receiveInOrder(t, sent)
	if err := <-pinged; err != nil {
		t.Fatalf("ping: %v", err)
	}
}

// TestHub_ConcurrentSendersAndSlowReaders: many connections, written by
// the flushers and, when their clients read slowly, by writer goroutines
// of their own, with frames sent from several goroutines at once, queues
// that overflow and are replaced, and a flow window: every client
// receives frames in the order they were sent (numbers only grow; Replace
// may skip some) up to the last, and closes cleanly.
func TestHub_ConcurrentSendersAndSlowReaders(t *testing.T) {
	cfg := batchConfig()
	cfg.BatchInterval = 2 * time.Millisecond
	cfg.SendQueue = 8
	cfg.FlowWindow = 16 << 10
	cfg.PingTimeout = 30 * time.Second
	s := newServer(t, cfg, AcceptOptions{})

	const conns, frames = 12, 400
	type peer struct {
		cl   *client
		conn *Conn
		slow bool
	}
	peers := make([]peer, conns)
	for i := range peers {
		protocol := testProtocol
		if i%2 == 0 {
			protocol = batchProtocol
		}
		peers[i] = peer{cl: dial(t, s, protocol), conn: s.next(t), slow: i%3 == 0}
		peers[i].cl.read()
	}
	// One sender per connection; frames of 1 to 4 KiB, so that slow
	// clients fill their window and queue.
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range frames {
				f := []byte(fmt.Sprintf("%06d", i) + strings.Repeat("y", 1024*(1+i%4)))
				if errors.Is(p.conn.Send(f), ErrQueueFull) {
					if err := p.conn.Replace(f); err != nil {
						t.Errorf("replace: %v", err)
						return
					}
				}
				if i%4 == 3 {
					time.Sleep(time.Millisecond) // bursts of four, the queue holds eight
				}
			}
			if err := p.conn.Send([]byte("999999 end")); errors.Is(err, ErrQueueFull) {
				_ = p.conn.Replace([]byte("999999 end"))
			}
		}()
	}
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := -1
			for last != 999999 { // the end frame comes last, whatever was replaced
				var msg []byte
				select {
				case msg = <-p.cl.msgs:
				case <-time.After(30 * time.Second):
					t.Errorf("no message within 30s after frame %d", last)
					return
				}
				if p.slow {
					time.Sleep(time.Millisecond)
				}
				for _, l := range strings.Split(string(msg), "\n") {
					n := seq([]byte(l))
					if n <= last {
						t.Errorf("frame %d after %d", n, last)
						return
					}
					last = n
				}
			}
		}()
	}
	wg.Wait()
	for _, p := range peers {
		p.conn.Close(StatusNormalClosure, "done")
		if code, _ := p.cl.closed(t); code != StatusNormalClosure {
			t.Fatalf("closed with %d", code)
		}
	}
}

// TestConn_PacedQueueHalfFullIsWrittenEarly: a paced connection whose
// queue fills to half is written at once rather than at the end of its
// interval, so a client that reads well never overflows because of the
// pacing. The interval (a minute) is far longer than the test: without
// the early write, the eight-frame queue would overflow at the ninth frame.
func TestConn_PacedQueueHalfFullIsWrittenEarly(t *testing.T) {
	cfg := testConfig()
	cfg.SendQueue = 8
	cfg.BatchInterval = time.Minute
	s := newServer(t, cfg, AcceptOptions{})
	cl := dial(t, s, testProtocol)
	conn := s.next(t)
	cl.read()
	const frames = 40
	for i := range frames {
		if err := conn.Send([]byte(fmt.Sprintf("%06d", i))); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		time.Sleep(10 * time.Millisecond) // four frames, a half queue, take 40 ms: time for the flusher
	}
	// The last frames wait for the interval, or for the queue to fill
	// to half again: send until they come.
	for i := frames; i < frames+cfg.SendQueue/2; i++ {
		if err := conn.Send([]byte(fmt.Sprintf("%06d", i))); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	cl.receiveInOrder(t, frames)
}
