package faultnet

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// transport is a memberlist.NodeAwareTransport that applies a Gate to another
// transport. One goroutine (filter) copies inbound packets from the inner
// transport to packets, dropping those from blocked sources.
type transport struct {
	inner   memberlist.NodeAwareTransport
	gate    *Gate
	packets chan *memberlist.Packet

	stopOnce    sync.Once
	stopping    chan struct{} // closed when Shutdown starts: stop delivering packets
	innerDone   chan struct{} // closed once the inner transport has shut down
	filterDone  chan struct{} // closed when the filter goroutine has returned
	shutdownErr error
}

// WrapTransport returns a transport that behaves like t except that, while an
// address is blocked by gate:
//
//   - packets to it (WriteTo, WriteToAddress) are silently dropped, as a
//     partitioned network would; the write reports success;
//   - packets from it (whose source is the peer's gossip bind address) are
//     dropped before memberlist sees them;
//   - dials to it (DialTimeout, DialAddressTimeout) fail with an error
//     wrapping [ErrBlocked], and stream connections dialed to it earlier are
//     closed.
//
// Inbound stream connections are passed through unfiltered (see the package
// documentation). With a nil gate t is returned unchanged.
//
// The returned transport starts one goroutine, stopped by Shutdown, which
// memberlist calls from Memberlist.Shutdown; a caller whose memberlist.Create
// failed must call Shutdown itself. Shutdown also shuts t down. All methods
// are safe for concurrent use.
func WrapTransport(t memberlist.NodeAwareTransport, gate *Gate) memberlist.NodeAwareTransport {
	if gate == nil {
		return t
	}
	w := &transport{
		inner:      t,
		gate:       gate,
		packets:    make(chan *memberlist.Packet),
		stopping:   make(chan struct{}),
		innerDone:  make(chan struct{}),
		filterDone: make(chan struct{}),
	}
	go w.filter()
	return w
}

// filter forwards inbound packets from unblocked sources until Shutdown.
// Once Shutdown has begun it keeps draining the inner transport's channel,
// dropping what it reads, so that inner listener goroutines blocked on a send
// can exit and the inner Shutdown can return; it returns after that.
func (w *transport) filter() {
	defer close(w.filterDone)
	in := w.inner.PacketCh()
	for {
		select {
		case p, ok := <-in:
			if !ok {
				return
			}
			if p == nil || (p.From != nil && w.gate.Drops(p.From.String())) {
				continue
			}
			select {
			case w.packets <- p:
			case <-w.stopping:
			}
		case <-w.innerDone:
			return
		}
	}
}

// FinalAdvertiseAddr is passed through to the inner transport.
func (w *transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return w.inner.FinalAdvertiseAddr(ip, port)
}

// WriteTo sends b to addr unless addr is blocked or paused, in which case b
// is dropped.
func (w *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	if w.gate.Drops(addr) {
		return time.Now(), nil
	}
	w.gate.observePacket(addr, b)
	return w.inner.WriteTo(b, addr)
}

// WriteToAddress sends b to addr unless addr is blocked or paused, in which
// case b is dropped.
func (w *transport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	if w.gate.Drops(addr.Addr) {
		return time.Now(), nil
	}
	w.gate.observePacket(addr.Addr, b)
	return w.inner.WriteToAddress(b, addr)
}

// PacketCh returns the inbound packets whose source is neither blocked nor
// paused.
func (w *transport) PacketCh() <-chan *memberlist.Packet {
	return w.packets
}

// DialTimeout dials addr through the inner transport unless it is blocked.
func (w *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if w.gate.Blocked(addr) {
		return nil, fmt.Errorf("dial %s: %w", addr, ErrBlocked)
	}
	c, err := w.inner.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return w.gate.track("tcp", addr, c)
}

// DialAddressTimeout dials addr through the inner transport unless it is
// blocked.
func (w *transport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if w.gate.Blocked(addr.Addr) {
		return nil, fmt.Errorf("dial %s: %w", addr.String(), ErrBlocked)
	}
	c, err := w.inner.DialAddressTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return w.gate.track("tcp", addr.Addr, c)
}

// StreamCh is passed through to the inner transport: inbound streams cannot
// be matched to a peer address.
func (w *transport) StreamCh() <-chan net.Conn {
	return w.inner.StreamCh()
}

// Shutdown shuts the inner transport down and stops the filter goroutine,
// blocking until both are done. Calling it again returns the first result.
func (w *transport) Shutdown() error {
	w.stopOnce.Do(func() {
		close(w.stopping)
		if err := w.inner.Shutdown(); err != nil {
			w.shutdownErr = fmt.Errorf("shut down wrapped transport: %w", err)
		}
		close(w.innerDone)
	})
	<-w.filterDone
	return w.shutdownErr
}

var _ memberlist.NodeAwareTransport = (*transport)(nil)
