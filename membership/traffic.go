package membership

import (
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// Transports, the values of the transport label of the byte counters:
// memberlist sends gossip, probes and piggybacked broadcasts as UDP
// packets, and joins, push/pull and SendTo messages over TCP streams.
const (
	transportUDP = "udp"
	transportTCP = "tcp"
)

// trafficCounters are the four byte counters of one node's gossip traffic.
type trafficCounters struct {
	udpSent, udpReceived, tcpSent, tcpReceived prometheus.Counter
}

// meteredTransport counts the bytes memberlist sends and receives. It sits
// directly on the network transport (under any test wrapper), so a packet
// a fault injector drops is not counted as sent: the counters are what
// crossed the wire, which is what an operator sizing a cluster, and the kv
// benchmark comparing shoal with Serf, want to know.
//
// Received packets and accepted streams reach memberlist through channels;
// one forwarding goroutine, owned by the transport and stopped by
// Shutdown, counts them on the way. The inner transport's listeners block
// on those channels, so once stopping the goroutine keeps draining them
// until the inner transport has shut down.
type meteredTransport struct {
	memberlist.NodeAwareTransport
	c       trafficCounters
	packets chan *memberlist.Packet
	streams chan net.Conn

	stop     chan struct{} // closed by Shutdown: stop delivering, drain
	drained  chan struct{} // closed once the inner transport is shut down
	stopOnce sync.Once
	wg       sync.WaitGroup
}

func newMeteredTransport(inner memberlist.NodeAwareTransport, c trafficCounters) *meteredTransport {
	t := &meteredTransport{
		NodeAwareTransport: inner,
		c:                  c,
		packets:            make(chan *memberlist.Packet),
		streams:            make(chan net.Conn),
		stop:               make(chan struct{}),
		drained:            make(chan struct{}),
	}
	t.wg.Add(1)
	go t.forward()
	return t
}

// forward moves received packets and accepted streams from the inner
// transport to memberlist until Shutdown.
func (t *meteredTransport) forward() {
	defer t.wg.Done()
	defer t.drain()
	in, inStreams := t.NodeAwareTransport.PacketCh(), t.NodeAwareTransport.StreamCh()
	for {
		select {
		case p := <-in:
			t.c.udpReceived.Add(float64(len(p.Buf)))
			select {
			case t.packets <- p:
			case <-t.stop:
				return
			}
		case conn := <-inStreams:
			mc := &meteredConn{Conn: conn, sent: t.c.tcpSent, received: t.c.tcpReceived}
			select {
			case t.streams <- mc:
			case <-t.stop:
				_ = conn.Close()
				return
			}
		case <-t.stop:
			return
		}
	}
}

// drain discards what the inner transport still delivers until it has
// shut down, so that none of its listeners stays blocked on a send.
func (t *meteredTransport) drain() {
	in, inStreams := t.NodeAwareTransport.PacketCh(), t.NodeAwareTransport.StreamCh()
	for {
		select {
		case <-in:
		case conn := <-inStreams:
			_ = conn.Close()
		case <-t.drained:
			return
		}
	}
}

func (t *meteredTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }
func (t *meteredTransport) StreamCh() <-chan net.Conn           { return t.streams }

func (t *meteredTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	at, err := t.NodeAwareTransport.WriteTo(b, addr)
	if err == nil {
		t.c.udpSent.Add(float64(len(b)))
	}
	return at, err
}

func (t *meteredTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	at, err := t.NodeAwareTransport.WriteToAddress(b, addr)
	if err == nil {
		t.c.udpSent.Add(float64(len(b)))
	}
	return at, err
}

func (t *meteredTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	conn, err := t.NodeAwareTransport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &meteredConn{Conn: conn, sent: t.c.tcpSent, received: t.c.tcpReceived}, nil
}

func (t *meteredTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	conn, err := t.NodeAwareTransport.DialAddressTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &meteredConn{Conn: conn, sent: t.c.tcpSent, received: t.c.tcpReceived}, nil
}

// Shutdown shuts the inner transport down and stops the forwarding
// goroutine. It may be called more than once.
func (t *meteredTransport) Shutdown() error {
	var err error
	t.stopOnce.Do(func() {
		close(t.stop)
		err = t.NodeAwareTransport.Shutdown()
		close(t.drained)
		t.wg.Wait()
	})
	return err
}

// meteredConn counts the bytes read from and written to one stream.
type meteredConn struct {
	net.Conn
	sent, received prometheus.Counter
}

func (c *meteredConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.received.Add(float64(n))
	return n, err
}

func (c *meteredConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.sent.Add(float64(n))
	return n, err
}
