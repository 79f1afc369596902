package consensus

import (
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"shoal/internal/clusterport"
)

// newTestPort serves a cluster port named name on ln.
func newTestPort(t *testing.T, name string, ln net.Listener) *clusterport.Port {
	t.Helper()
	p, err := clusterport.New(ln, clusterport.Config{NodeName: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// TestStreamLayer_HoldsADialUntilThePeerIsBack: a Raft dial to a peer that
// is down is held and succeeds once the peer listens again, instead of
// failing at once (each failure lengthens raft's back-off); a peer that
// gossip moved to another address is dialed there.
func TestStreamLayer_HoldsADialUntilThePeerIsBack(t *testing.T) {
	local, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &streamLayer{port: newTestPort(t, "a", local)}
	defer s.endHolds()

	for _, moved := range []bool{false, true} {
		stale, addr := freeAddr(t), freeAddr(t)
		if !moved {
			stale = addr
		}
		s.lookup = func(id string) (string, bool) { return addr, id == "b" }
		type result struct {
			conn net.Conn
			err  error
		}
		dialed := make(chan result, 1)
		go func() {
			conn, err := s.Dial(joinTarget("b", raft.ServerAddress(stale)), time.Second)
			dialed <- result{conn, err}
		}()
		time.Sleep(3 * dialRetry) // a few failed tries
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		peer := newTestPort(t, "b", ln)
		raftLn, err := peer.Listen(clusterport.KindRaft)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			if c, err := raftLn.Accept(); err == nil {
				_ = c.Close()
			}
		}()
		r := <-dialed
		if r.err != nil {
			t.Fatalf("moved %v: the held dial failed: %v", moved, r.err)
		}
		_ = r.conn.Close()
		_ = peer.Close()
	}
}

// TestStreamLayer_EndHoldsFailsHeldDials: closing the node fails a dial
// being held, and later dials at their first failure: raft's Shutdown
// waits for goroutines that may be dialing. (The hold here is an hour: the
// dials return only because the holds ended.)
func TestStreamLayer_EndHoldsFailsHeldDials(t *testing.T) {
	local, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &streamLayer{port: newTestPort(t, "a", local), hold: time.Hour}
	down := raft.ServerAddress(freeAddr(t))
	failed := make(chan error, 1)
	go func() {
		_, err := s.Dial(joinTarget("b", down), time.Second)
		failed <- err
	}()
	time.Sleep(2 * dialRetry) // held by now
	s.endHolds()
	if err := <-failed; err == nil {
		t.Fatal("a dial to a peer that is down succeeded")
	}
	if _, err := s.Dial(joinTarget("b", down), time.Second); err == nil {
		t.Fatal("a dial after endHolds to a peer that is down succeeded")
	}
}
