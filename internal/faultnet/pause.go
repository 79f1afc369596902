package faultnet

import (
	"os"
	"slices"
	"time"
)

// A paused peer models a frozen process (docker pause, SIGSTOP), which a
// partition does not: its TCP connections stay open and connects still
// succeed (the kernel answers for it), but nothing it sent arrives and
// nothing sent to it is answered until it thaws; then everything flows
// again in order. Gossip packets to and from it are dropped, as a frozen
// process neither reads nor sends them.
//
// On a paused address, a gated connection's Write queues the bytes and
// reports success (the kernel's buffer), and its Read holds whatever
// arrives until the peer thaws, the connection is closed, or the read
// deadline passes (then it fails with os.ErrDeadlineExceeded and what it
// held is lost, as the caller drops a connection that timed out anyway).
// Resume sends the queued bytes in order and releases the held reads.

// Pause freezes traffic with addrs until Resume or Heal. Pausing an
// address twice is harmless.
func (g *Gate) Pause(addrs ...string) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused == nil {
		g.paused = make(map[string]chan struct{})
	}
	for _, a := range addrs {
		key := normalize(a)
		if _, ok := g.paused[key]; !ok {
			g.paused[key] = make(chan struct{})
		}
	}
}

// Resume thaws addrs: writes queued for them are sent, in order, before
// Resume returns, and held reads return.
func (g *Gate) Resume(addrs ...string) {
	if g == nil {
		return
	}
	var thawed []chan struct{}
	var conns []*gatedConn
	g.mu.Lock()
	for _, a := range addrs {
		key := normalize(a)
		ch, ok := g.paused[key]
		if !ok {
			continue
		}
		delete(g.paused, key)
		thawed = append(thawed, ch)
		for c := range g.conns[key] {
			conns = append(conns, c)
		}
	}
	g.mu.Unlock()
	for _, c := range conns {
		c.flush()
	}
	for _, ch := range thawed {
		close(ch)
	}
}

// Paused reports whether addr is paused. It is always false on a nil Gate.
func (g *Gate) Paused(addr string) bool {
	return g.pausedCh(addr) != nil
}

// Drops reports whether gossip packets to or from addr are dropped: the
// address is blocked or paused.
func (g *Gate) Drops(addr string) bool {
	return g.Blocked(addr) || g.Paused(addr)
}

func (g *Gate) pausedCh(addr string) chan struct{} {
	if g == nil {
		return nil
	}
	key := normalize(addr)
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.paused[key]
}

// queueWhilePaused queues b if the peer is paused (or earlier writes are
// still queued, to keep the order) and reports whether it did.
func (c *gatedConn) queueWhilePaused(b []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queued) == 0 && c.gate.pausedCh(c.key) == nil {
		return false
	}
	c.queued = append(c.queued, slices.Clone(b))
	return true
}

// flush sends what was queued while the peer was paused.
func (c *gatedConn) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.queued {
		if _, err := c.Conn.Write(b); err != nil {
			break // the connection is gone; its owner sees that on its next call
		}
	}
	c.queued = nil
}

// holdWhilePaused waits while the peer is paused: until it thaws (nil),
// the connection closes or the read deadline passes (an error).
func (c *gatedConn) holdWhilePaused() error {
	thawed := c.gate.pausedCh(c.key)
	if thawed == nil {
		return nil
	}
	c.mu.Lock()
	deadline := c.readDeadline
	c.mu.Unlock()
	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-thawed:
		return nil
	case <-c.closed:
		return c.blockedErr("read")
	case <-expired:
		return os.ErrDeadlineExceeded
	}
}

// SetDeadline records the read deadline for paused reads, then sets both.
func (c *gatedConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadline = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline records the deadline for paused reads, then sets it.
func (c *gatedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadline = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}
