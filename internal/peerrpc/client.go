package peerrpc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"shoal/internal/clusterport"
)

var (
	// ErrNotDelivered: the request never left this node (no connection to
	// the peer, or the call was still queued when it gave up). Retrying
	// cannot make the peer act on it twice.
	ErrNotDelivered = errors.New("the request was not delivered")
	// ErrOutcomeUnknown: the request was written to the peer and no answer
	// came (the connection broke, or the caller stopped waiting). The peer
	// may have acted on it.
	ErrOutcomeUnknown = errors.New("the request was sent but no answer came")
	// ErrNoMethod: the peer serves no such method; it did nothing.
	ErrNoMethod = errors.New("the peer serves no such method")
	// ErrClosed: the client or server is closed.
	ErrClosed = errors.New("peer rpc is closed")
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// DialTimeout bounds connecting to a peer, its cluster port handshake
	// included; default 2 s. A peer whose address answers nothing (a
	// killed container) costs this long, then ErrNotDelivered.
	DialTimeout time.Duration
	// WriteTimeout bounds writing queued requests to a peer; default 2 s.
	// A peer that stops reading breaks its connection after this long.
	WriteTimeout time.Duration
	// DecodeError rebuilds an error a peer's handler returned from what
	// the peer's ServerConfig.EncodeError made of it; nil makes a plain
	// error of the bytes.
	DecodeError func([]byte) error
	Logger      *slog.Logger
}

func (c *ClientConfig) setDefaults() {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 2 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 2 * time.Second
	}
	if c.DecodeError == nil {
		c.DecodeError = func(b []byte) error { return errors.New(string(b)) }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Client calls peers over the cluster port. It keeps one connection per
// peer, dialed on the first call, and pipelines every call to that peer on
// it. Its methods are safe for concurrent use.
type Client struct {
	port *clusterport.Port
	cfg  ClientConfig

	mu     sync.Mutex
	conns  map[peerKey]*clientConn
	closed bool
	ctx    context.Context // cancelled by Close: dials give up
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type peerKey struct{ to, addr string }

// NewClient returns a client dialing through port.
func NewClient(port *clusterport.Port, cfg ClientConfig) *Client {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{port: port, cfg: cfg, conns: map[peerKey]*clientConn{}, ctx: ctx, cancel: cancel}
}

// call is one request and, once it is finished, its outcome.
type call struct {
	id     uint64
	method string
	body   []byte
	done   chan struct{} // closed when answer or err is set
	answer []byte
	err    error
	state  callState // guarded by the connection's mutex
}

type callState int

const (
	queued callState = iota
	written
	finished
)

// Call sends body to method on the node named to at addr and returns the
// answer. The error wraps ErrNotDelivered or ErrOutcomeUnknown when no
// answer came, is ErrNoMethod when the peer serves no such method, and is
// what DecodeError rebuilt when the peer's handler failed. Call blocks
// until the answer arrives, the connection breaks or ctx ends.
func (c *Client) Call(ctx context.Context, to, addr, method string, body []byte) ([]byte, error) {
	if method == "" || len(method) > maxMethodLen {
		return nil, fmt.Errorf("peer rpc: method name of %d bytes", len(method))
	}
	cl := &call{method: method, body: body, done: make(chan struct{})}
	cc, err := c.connTo(to, addr)
	if err != nil {
		return nil, err
	}
	if err := cc.enqueue(cl); err != nil {
		return nil, err
	}
	select {
	case <-cl.done:
	case <-ctx.Done():
		cc.abandon(cl, ctx.Err())
		<-cl.done
	}
	return cl.answer, cl.err
}

// connTo returns the connection to a peer, starting one if there is none
// (or the last one broke).
func (c *Client) connTo(to, addr string) (*clientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("%w: %w", ErrNotDelivered, ErrClosed)
	}
	key := peerKey{to, addr}
	if cc, ok := c.conns[key]; ok && !cc.isBroken() {
		return cc, nil
	}
	cc := &clientConn{c: c, key: key, pending: map[uint64]*call{}, wake: make(chan struct{}, 1), broken: make(chan struct{})}
	c.conns[key] = cc
	c.wg.Add(1)
	go cc.run()
	return cc, nil
}

// forget drops a broken connection so the next call dials again. Its
// callers learn of the break only after it is forgotten, so a retry never
// finds it.
func (c *Client) forget(cc *clientConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conns[cc.key] == cc {
		delete(c.conns, cc.key)
	}
}

// Close breaks every connection (their calls fail as described on Call)
// and waits for the client's goroutines.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	conns := make([]*clientConn, 0, len(c.conns))
	for _, cc := range c.conns {
		conns = append(conns, cc)
	}
	c.mu.Unlock()
	c.cancel()
	for _, cc := range conns {
		cc.fail(ErrClosed)
	}
	c.wg.Wait()
	return nil
}

// clientConn is the connection to one peer: a goroutine that dials and
// then writes queued calls, and one that reads answers.
type clientConn struct {
	c   *Client
	key peerKey

	mu      sync.Mutex
	nc      net.Conn // nil until dialed
	nextID  uint64
	queue   []*call
	pending map[uint64]*call
	err     error         // why the connection broke; set once
	broken  chan struct{} // closed when err is set
	wake    chan struct{} // the writer has calls to write
}

func (cc *clientConn) isBroken() bool {
	select {
	case <-cc.broken:
		return true
	default:
		return false
	}
}

func (cc *clientConn) enqueue(cl *call) error {
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return fmt.Errorf("%w: %w", ErrNotDelivered, cc.err)
	}
	cc.nextID++
	cl.id = cc.nextID
	cc.queue = append(cc.queue, cl)
	cc.mu.Unlock()
	select {
	case cc.wake <- struct{}{}:
	default:
	}
	return nil
}

// finish sets a call's outcome once; cc.mu must be held.
func finish(cl *call, answer []byte, err error) {
	if cl.state == finished {
		return
	}
	cl.state = finished
	cl.answer, cl.err = answer, err
	close(cl.done)
}

// abandon ends a call whose caller stopped waiting: not delivered if it
// was still queued, outcome unknown if it was written.
func (cc *clientConn) abandon(cl *call, cause error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	switch cl.state {
	case queued:
		for i, q := range cc.queue {
			if q == cl {
				cc.queue = append(cc.queue[:i], cc.queue[i+1:]...)
				break
			}
		}
		finish(cl, nil, fmt.Errorf("%w: %w", ErrNotDelivered, cause))
	case written:
		delete(cc.pending, cl.id)
		finish(cl, nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, cause))
	}
}

// fail breaks the connection: queued calls were not delivered, written
// ones have an unknown outcome.
func (cc *clientConn) fail(cause error) {
	cc.c.forget(cc)
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return
	}
	cc.err = cause
	close(cc.broken)
	for _, cl := range cc.queue {
		finish(cl, nil, fmt.Errorf("%w: %w", ErrNotDelivered, cause))
	}
	cc.queue = nil
	for id, cl := range cc.pending {
		finish(cl, nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, cause))
		delete(cc.pending, id)
	}
	nc := cc.nc
	cc.mu.Unlock()
	if nc != nil {
		_ = nc.Close()
	}
}

// run dials the peer, then writes queued calls until the connection
// breaks. It owns the reader goroutine it starts.
func (cc *clientConn) run() {
	defer cc.c.wg.Done()
	ctx, cancel := context.WithTimeout(cc.c.ctx, cc.c.cfg.DialTimeout)
	nc, err := cc.c.port.Dial(ctx, clusterport.KindRPC, cc.key.to, cc.key.addr)
	cancel()
	if err != nil {
		cc.fail(err)
		return
	}
	cc.mu.Lock()
	if cc.err != nil { // closed while dialing
		cc.mu.Unlock()
		_ = nc.Close()
		return
	}
	cc.nc = nc
	cc.mu.Unlock()

	var readerDone sync.WaitGroup
	readerDone.Add(1)
	go func() {
		defer readerDone.Done()
		cc.read(nc)
	}()
	defer readerDone.Wait()
	cc.write(nc)
}

// write writes queued calls, batching what accumulated into one flush.
func (cc *clientConn) write(nc net.Conn) {
	bw := bufio.NewWriterSize(nc, 64<<10)
	var buf []byte
	for {
		select {
		case <-cc.broken:
			return
		case <-cc.wake:
		}
		cc.mu.Lock()
		batch := cc.queue
		cc.queue = nil
		for _, cl := range batch {
			cl.state = written // from here on, a failure leaves its outcome unknown
			cc.pending[cl.id] = cl
		}
		cc.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		_ = nc.SetWriteDeadline(time.Now().Add(cc.c.cfg.WriteTimeout))
		for _, cl := range batch {
			var err error
			buf, err = appendFrame(buf[:0], frame{typ: frameRequest, id: cl.id, method: cl.method, body: cl.body})
			if err != nil {
				cc.mu.Lock()
				delete(cc.pending, cl.id)
				finish(cl, nil, fmt.Errorf("%w: %w", ErrNotDelivered, err))
				cc.mu.Unlock()
				continue
			}
			if _, err := bw.Write(buf); err != nil {
				cc.fail(fmt.Errorf("write to %s: %w", cc.key.to, err))
				return
			}
		}
		if err := bw.Flush(); err != nil {
			cc.fail(fmt.Errorf("write to %s: %w", cc.key.to, err))
			return
		}
	}
}

// read hands each answer to its call until the connection breaks.
func (cc *clientConn) read(nc net.Conn) {
	br := bufio.NewReaderSize(nc, 64<<10)
	for {
		f, err := readFrame(br)
		if err != nil {
			cc.fail(fmt.Errorf("read from %s: %w", cc.key.to, err))
			return
		}
		var answer []byte
		var callErr error
		switch f.typ {
		case frameAnswer:
			answer = f.body
		case frameError:
			callErr = cc.c.cfg.DecodeError(f.body)
		case frameNoMethod:
			callErr = ErrNoMethod
		default:
			cc.fail(fmt.Errorf("%w: a %d frame from %s", ErrBadFrame, f.typ, cc.key.to))
			return
		}
		cc.mu.Lock()
		if cl, ok := cc.pending[f.id]; ok {
			delete(cc.pending, f.id)
			finish(cl, answer, callErr)
		}
		cc.mu.Unlock()
	}
}
