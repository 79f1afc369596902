package faultnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrBlocked is wrapped by every error this package returns because an
// address is blocked by a partition.
var ErrBlocked = errors.New("faultnet: address blocked by partition")

// Gate is one node's view of a partition: the set of peer addresses
// (host:port) it must not exchange traffic with, and the connections it dialed
// so that it can sever them when their address becomes blocked.
//
// A nil *Gate blocks nothing; every method is safe to call on it. The zero
// Gate is ready to use and blocks nothing. All methods are safe for concurrent
// use and none of them blocks on the network.
type Gate struct {
	mu      sync.Mutex
	blocked map[string]struct{}
	// paused maps a frozen peer's address to a channel closed when it
	// thaws (see pause.go).
	paused map[string]chan struct{}
	conns  map[string]map[*gatedConn]struct{}
	// observe, if set, sees every gossip packet this node sends.
	observe func(to string, packet []byte)
}

// ObservePackets calls f with every gossip packet sent through a transport
// this gate wraps (a copy, as it goes on the wire), so a test can check
// what an eavesdropper would see. f must be safe for concurrent use.
func (g *Gate) ObservePackets(f func(to string, packet []byte)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.observe = f
}

func (g *Gate) observePacket(to string, b []byte) {
	if g == nil {
		return
	}
	g.mu.Lock()
	f := g.observe
	g.mu.Unlock()
	if f != nil {
		f(to, append([]byte(nil), b...))
	}
}

// NewGate returns a Gate that blocks nothing.
func NewGate() *Gate {
	return &Gate{}
}

// Block stops traffic between this node and addrs from now on. Connections
// the gate dialed to any of them are closed before Block returns, so their
// pending and future Read and Write calls fail with an error wrapping
// [ErrBlocked]. Blocking an address twice is harmless.
func (g *Gate) Block(addrs ...string) {
	if g == nil {
		return
	}
	var sever []*gatedConn
	g.mu.Lock()
	if g.blocked == nil {
		g.blocked = make(map[string]struct{})
	}
	for _, a := range addrs {
		key := normalize(a)
		g.blocked[key] = struct{}{}
		for c := range g.conns[key] {
			sever = append(sever, c)
		}
		delete(g.conns, key)
	}
	g.mu.Unlock()

	// Close outside the lock: Close on a socket may take a moment and the
	// conns no longer reach the gate's maps.
	for _, c := range sever {
		c.sever()
	}
}

// Unblock lets traffic to and from addrs flow again. Connections closed by
// Block stay closed; callers dial new ones.
func (g *Gate) Unblock(addrs ...string) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, a := range addrs {
		delete(g.blocked, normalize(a))
	}
}

// Heal unblocks and resumes every address.
func (g *Gate) Heal() {
	if g == nil {
		return
	}
	g.mu.Lock()
	clear(g.blocked)
	addrs := make([]string, 0, len(g.paused))
	for a := range g.paused {
		addrs = append(addrs, a)
	}
	g.mu.Unlock()
	g.Resume(addrs...)
}

// Blocked reports whether traffic with addr is currently blocked. It is
// always false on a nil Gate.
func (g *Gate) Blocked(addr string) bool {
	if g == nil {
		return false
	}
	key := normalize(addr)
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.blocked[key]
	return ok
}

// DialContext dials addr like net.Dialer.DialContext unless addr is blocked,
// in which case it fails at once with an error wrapping [ErrBlocked]. The
// returned conn is closed, and its Read and Write fail with an error wrapping
// ErrBlocked, as soon as addr becomes blocked.
//
// It has the signature of http.Transport.DialContext and blocks as long as the
// underlying dial does (bounded by ctx). On a nil Gate it is a plain dial.
func (g *Gate) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if g.Blocked(addr) {
		return nil, fmt.Errorf("dial %s %s: %w", network, addr, ErrBlocked)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		// net.Dialer's error already names the operation and address.
		return nil, err
	}
	return g.track(network, addr, c)
}

// track wraps c, a connection this node dialed to addr, so that it is severed
// when addr becomes blocked. If addr was blocked while c was being dialed, c
// is closed and an error wrapping ErrBlocked is returned. On a nil Gate c is
// returned unchanged.
func (g *Gate) track(network, addr string, c net.Conn) (net.Conn, error) {
	if g == nil {
		return c, nil
	}
	key := normalize(addr)
	gc := &gatedConn{Conn: c, gate: g, key: key, network: network, closed: make(chan struct{})}
	g.mu.Lock()
	if _, blocked := g.blocked[key]; blocked {
		g.mu.Unlock()
		_ = c.Close()
		return nil, fmt.Errorf("dial %s %s: %w", network, addr, ErrBlocked)
	}
	if g.conns == nil {
		g.conns = make(map[string]map[*gatedConn]struct{})
	}
	set := g.conns[key]
	if set == nil {
		set = make(map[*gatedConn]struct{})
		g.conns[key] = set
	}
	set[gc] = struct{}{}
	g.mu.Unlock()
	return gc, nil
}

// untrack forgets gc; called when its owner closes it.
func (g *Gate) untrack(gc *gatedConn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	set := g.conns[gc.key]
	delete(set, gc)
	if len(set) == 0 {
		delete(g.conns, gc.key)
	}
}

// tracked returns how many open connections the gate is watching; for tests.
func (g *Gate) tracked() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, set := range g.conns {
		n += len(set)
	}
	return n
}

// gatedConn is a dialed connection that a Gate severs when its remote address
// becomes blocked. It is safe for concurrent use as net.Conn is.
type gatedConn struct {
	net.Conn
	gate    *Gate
	key     string
	network string
	severed atomic.Bool
	closed  chan struct{} // closed by Close and sever
	closing sync.Once

	mu           sync.Mutex
	queued       [][]byte  // written while the peer is paused, sent when it thaws
	readDeadline time.Time // as set by the owner; a paused read honours it
}

// sever marks c as cut by a partition and closes it, which wakes up any
// goroutine blocked in Read or Write.
func (c *gatedConn) sever() {
	c.severed.Store(true)
	c.closing.Do(func() { close(c.closed) })
	_ = c.Conn.Close()
}

func (c *gatedConn) blockedErr(op string) error {
	return &net.OpError{
		Op:     op,
		Net:    c.network,
		Source: c.Conn.LocalAddr(),
		Addr:   c.Conn.RemoteAddr(),
		Err:    ErrBlocked,
	}
}

// Read reads from the connection; once the remote address is blocked it fails
// with a *net.OpError wrapping ErrBlocked.
func (c *gatedConn) Read(b []byte) (int, error) {
	if c.severed.Load() {
		return 0, c.blockedErr("read")
	}
	n, err := c.Conn.Read(b)
	if err != nil && c.severed.Load() {
		err = c.blockedErr("read")
	}
	if herr := c.holdWhilePaused(); herr != nil {
		return 0, herr
	}
	return n, err
}

// Write writes to the connection; once the remote address is blocked it fails
// with a *net.OpError wrapping ErrBlocked.
func (c *gatedConn) Write(b []byte) (int, error) {
	if c.severed.Load() {
		return 0, c.blockedErr("write")
	}
	if c.queueWhilePaused(b) {
		return len(b), nil
	}
	n, err := c.Conn.Write(b)
	if err != nil && c.severed.Load() {
		err = c.blockedErr("write")
	}
	return n, err
}

// Close closes the connection and stops the gate from tracking it.
func (c *gatedConn) Close() error {
	c.gate.untrack(c)
	c.closing.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// normalize returns the form of a host:port address that blocked addresses
// are compared in: IP literals in canonical form (IPv4-mapped IPv6 unmapped),
// host names lower-cased but never resolved. A string that is not host:port
// is kept as written.
func normalize(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return net.JoinHostPort(ip.Unmap().String(), port)
	}
	return net.JoinHostPort(strings.ToLower(host), port)
}
