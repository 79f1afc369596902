package faultnet

import (
	"errors"
	"fmt"
	"log"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"shoal/internal/testlog"
)

// gossipNode is one memberlist instance whose transport is wrapped by a gate.
type gossipNode struct {
	ml    *memberlist.Memberlist
	addr  string // gossip host:port, both TCP and UDP
	gate  *Gate
	trans *transport
}

func newGossipNode(t *testing.T, name string) *gossipNode {
	t.Helper()
	logger := log.New(testlog.Writer(t), name+" ", 0)
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{"127.0.0.1"},
		BindPort:  0,
		Logger:    logger,
	})
	if err != nil {
		t.Fatalf("net transport: %v", err)
	}
	gate := NewGate()
	wrapped := WrapTransport(nt, gate)

	conf := memberlist.DefaultLocalConfig()
	conf.Name = name
	conf.BindAddr = "127.0.0.1"
	conf.BindPort = nt.GetAutoBindPort()
	conf.AdvertisePort = conf.BindPort
	conf.Transport = wrapped
	conf.Logger = logger
	conf.ProbeInterval = 50 * time.Millisecond
	conf.ProbeTimeout = 25 * time.Millisecond
	conf.SuspicionMult = 2
	conf.GossipInterval = 20 * time.Millisecond
	conf.PushPullInterval = 0 // only explicit joins push/pull; keeps the test about probes
	conf.TCPTimeout = time.Second

	ml, err := memberlist.Create(conf)
	if err != nil {
		_ = wrapped.Shutdown()
		t.Fatalf("create memberlist %s: %v", name, err)
	}
	n := &gossipNode{
		ml:    ml,
		addr:  net.JoinHostPort("127.0.0.1", strconv.Itoa(conf.BindPort)),
		gate:  gate,
		trans: wrapped.(*transport),
	}
	t.Cleanup(func() {
		if err := ml.Shutdown(); err != nil {
			t.Errorf("shutdown %s: %v", name, err)
		}
		select {
		case <-n.trans.filterDone:
		default:
			t.Errorf("%s: packet filter goroutine still running after Shutdown", name)
		}
	})
	return n
}

// sees reports nil when n lists every name in want as a live member and
// none of the names in gone.
func (n *gossipNode) sees(want, gone []string) error {
	live := map[string]bool{}
	for _, m := range n.ml.Members() {
		live[m.Name] = true
	}
	for _, w := range want {
		if !live[w] {
			return fmt.Errorf("%s does not see %s alive (members %v)", n.ml.LocalNode().Name, w, live)
		}
	}
	for _, g := range gone {
		if live[g] {
			return fmt.Errorf("%s still sees %s alive (members %v)", n.ml.LocalNode().Name, g, live)
		}
	}
	return nil
}

func TestWrapTransport_PartitionAndHeal(t *testing.T) {
	a := newGossipNode(t, "a")
	b := newGossipNode(t, "b")

	if _, err := b.ml.Join([]string{a.addr}); err != nil {
		t.Fatalf("join: %v", err)
	}
	eventually(t, 10*time.Second, func() error {
		return errors.Join(a.sees([]string{"a", "b"}, nil), b.sees([]string{"a", "b"}, nil))
	})

	a.gate.Block(b.addr)
	b.gate.Block(a.addr)
	eventually(t, 10*time.Second, func() error {
		return errors.Join(a.sees([]string{"a"}, []string{"b"}), b.sees([]string{"b"}, []string{"a"}))
	})

	// A join across the partition must fail: the stream dial is refused.
	if _, err := a.ml.Join([]string{b.addr}); err == nil {
		t.Fatal("join across partition succeeded, want error")
	}

	a.gate.Heal()
	b.gate.Heal()
	if _, err := a.ml.Join([]string{b.addr}); err != nil {
		t.Fatalf("re-join after heal: %v", err)
	}
	eventually(t, 10*time.Second, func() error {
		return errors.Join(a.sees([]string{"a", "b"}, nil), b.sees([]string{"a", "b"}, nil))
	})
}

func TestWrapTransport_NilGateReturnsInner(t *testing.T) {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{"127.0.0.1"},
		Logger:    log.New(testlog.Writer(t), "", 0),
	})
	if err != nil {
		t.Fatalf("net transport: %v", err)
	}
	defer nt.Shutdown()
	if got := WrapTransport(nt, nil); got != memberlist.NodeAwareTransport(nt) {
		t.Fatalf("WrapTransport(t, nil) = %T, want the inner transport", got)
	}
}

// fakeTransport is a memberlist.NodeAwareTransport built from function
// fields; unset fields panic when called.
type fakeTransport struct {
	memberlist.NodeAwareTransport
	packets  chan *memberlist.Packet
	written  chan string
	shutdown func() error
}

func (f *fakeTransport) PacketCh() <-chan *memberlist.Packet { return f.packets }
func (f *fakeTransport) Shutdown() error                     { return f.shutdown() }
func (f *fakeTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	f.written <- a.Addr
	return time.Now(), nil
}
func (f *fakeTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	f.written <- addr
	return time.Now(), nil
}

func udpAddr(port int) *net.UDPAddr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
}

func TestWrapTransport_FiltersPackets(t *testing.T) {
	inner := &fakeTransport{
		packets:  make(chan *memberlist.Packet),
		written:  make(chan string, 4),
		shutdown: func() error { return nil },
	}
	gate := NewGate()
	w := WrapTransport(inner, gate)
	defer w.Shutdown()

	gate.Block("127.0.0.1:1")
	// Inbound: the packet from the blocked source is dropped, the next one
	// (sent after it on the same unbuffered channel) is delivered.
	go func() {
		inner.packets <- &memberlist.Packet{Buf: []byte("blocked"), From: udpAddr(1)}
		inner.packets <- &memberlist.Packet{Buf: []byte("open"), From: udpAddr(2)}
	}()
	select {
	case p := <-w.PacketCh():
		if string(p.Buf) != "open" {
			t.Fatalf("got packet %q, want %q", p.Buf, "open")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no packet delivered")
	}

	// Outbound: writes to the blocked address never reach the inner
	// transport, but report success as a lossy network would.
	if _, err := w.WriteTo([]byte("x"), "127.0.0.1:1"); err != nil {
		t.Fatalf("WriteTo blocked: %v", err)
	}
	if _, err := w.WriteToAddress([]byte("x"), memberlist.Address{Addr: "127.0.0.1:1", Name: "n1"}); err != nil {
		t.Fatalf("WriteToAddress blocked: %v", err)
	}
	if _, err := w.WriteTo([]byte("x"), "127.0.0.1:2"); err != nil {
		t.Fatalf("WriteTo open: %v", err)
	}
	if got := <-inner.written; got != "127.0.0.1:2" {
		t.Fatalf("inner transport wrote to %s, want 127.0.0.1:2", got)
	}
	if n := len(inner.written); n != 0 {
		t.Fatalf("inner transport got %d more writes, want 0", n)
	}

	// Dials to the blocked address are refused before reaching the inner
	// transport (whose Dial methods would panic).
	if _, err := w.DialTimeout("127.0.0.1:1", time.Second); !errors.Is(err, ErrBlocked) {
		t.Fatalf("DialTimeout blocked: got %v, want ErrBlocked", err)
	}
	if _, err := w.DialAddressTimeout(memberlist.Address{Addr: "127.0.0.1:1"}, time.Second); !errors.Is(err, ErrBlocked) {
		t.Fatalf("DialAddressTimeout blocked: got %v, want ErrBlocked", err)
	}
}

// TestWrapTransport_ShutdownDrainsInner checks that Shutdown does not
// deadlock when an inner listener is blocked sending a packet nobody will
// consume (memberlist stops reading PacketCh only after Shutdown returns, but
// a caller may have stopped earlier), and that the filter goroutine exits.
func TestWrapTransport_ShutdownDrainsInner(t *testing.T) {
	inner := &fakeTransport{packets: make(chan *memberlist.Packet)}
	inner.shutdown = func() error {
		// Like NetTransport.Shutdown waiting for a listener stuck in a send.
		inner.packets <- &memberlist.Packet{Buf: []byte("late"), From: udpAddr(3)}
		return errors.New("boom")
	}
	w := WrapTransport(inner, NewGate()).(*transport)

	// Park one packet in the filter, waiting for a reader that never comes.
	inner.packets <- &memberlist.Packet{Buf: []byte("unread"), From: udpAddr(2)}

	done := make(chan error, 1)
	go func() { done <- w.Shutdown() }()
	select {
	case err := <-done:
		if err == nil || err.Error() != "shut down wrapped transport: boom" {
			t.Fatalf("Shutdown: got %v, want wrapped inner error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown deadlocked")
	}
	select {
	case <-w.filterDone:
	default:
		t.Fatal("filter goroutine still running after Shutdown")
	}
	if err := w.Shutdown(); err == nil {
		t.Fatal("second Shutdown: got nil, want the first result")
	}
}
