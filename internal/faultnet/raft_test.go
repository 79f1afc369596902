package faultnet

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"shoal/internal/testlog"
)

// newRaftTransport builds a raft.NetworkTransport on a fresh 127.0.0.1:0
// listener whose stream layer dials through gate. It answers every
// AppendEntries with Success until the test ends.
func newRaftTransport(t *testing.T, gate *Gate) *raft.NetworkTransport {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  NewRaftStreamLayer(ln, nil, gate),
		MaxPool: 2,
		Timeout: 2 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:   "raft-net",
			Output: testlog.Writer(t),
			Level:  hclog.Warn,
		}),
	})
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case rpc := <-trans.Consumer():
				rpc.Respond(&raft.AppendEntriesResponse{Success: true, Term: 1}, nil)
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(done)
		wg.Wait()
		trans.CloseStreams() // pooled connections, as consensus.Node.Close does
		if err := trans.Close(); err != nil {
			t.Errorf("close raft transport: %v", err)
		}
	})
	return trans
}

func TestRaftStreamLayer_AppendEntries(t *testing.T) {
	gate1, gate2 := NewGate(), NewGate()
	t1 := newRaftTransport(t, gate1)
	t2 := newRaftTransport(t, gate2)
	addr2 := t2.LocalAddr()

	appendEntries := func() error {
		req := &raft.AppendEntriesRequest{
			RPCHeader: raft.RPCHeader{ID: []byte("n1"), Addr: []byte(t1.LocalAddr())},
			Term:      1,
		}
		var resp raft.AppendEntriesResponse
		if err := t1.AppendEntries("n2", addr2, req, &resp); err != nil {
			return err
		}
		if !resp.Success {
			return errors.New("append entries not successful")
		}
		return nil
	}

	if err := appendEntries(); err != nil {
		t.Fatalf("append entries before block: %v", err)
	}
	// The successful RPC left a pooled conn; Block must kill it too.
	gate1.Block(string(addr2))
	gate2.Block(string(t1.LocalAddr()))
	for i := range 3 {
		if err := appendEntries(); !errors.Is(err, ErrBlocked) {
			t.Fatalf("append entries %d while blocked: got %v, want ErrBlocked", i, err)
		}
	}
	gate1.Heal()
	gate2.Heal()
	if err := appendEntries(); err != nil {
		t.Fatalf("append entries after heal: %v", err)
	}
}

func TestRaftStreamLayer_DialAccept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	advertise := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	gate := NewGate()
	sl := NewRaftStreamLayer(ln, advertise, gate)
	defer sl.Close()
	if got := sl.Addr(); got != advertise {
		t.Fatalf("Addr() = %v, want %v", got, advertise)
	}
	target := raft.ServerAddress(ln.Addr().String())

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := sl.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := sl.Dial(target, 2*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	var server net.Conn
	select {
	case server = <-accepted:
		if server == nil {
			t.Fatal("accept failed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("accept timed out")
	}
	defer server.Close()

	gate.Block(string(target))
	if _, err := c.Write([]byte("x")); !errors.Is(err, ErrBlocked) {
		t.Fatalf("write on dialed conn after block: got %v, want ErrBlocked", err)
	}
	if _, err := sl.Dial(target, time.Second); !errors.Is(err, ErrBlocked) {
		t.Fatalf("dial while blocked: got %v, want ErrBlocked", err)
	}
}
