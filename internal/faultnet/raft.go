package faultnet

import (
	"context"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// raftStreamLayer is a raft.StreamLayer that accepts on a TCP listener and
// dials through a Gate.
type raftStreamLayer struct {
	net.Listener
	advertise net.Addr
	gate      *Gate
}

// NewRaftStreamLayer returns a raft.StreamLayer that accepts connections on
// ln, reports advertise as its address (ln.Addr() when advertise is nil) and
// dials peers through gate, so Raft RPCs to a blocked peer fail and pooled
// connections to it are closed when it becomes blocked. gate may be nil.
//
// Accepted connections are not filtered (see the package documentation).
// Closing the stream layer closes ln. Its methods are safe for concurrent use;
// Dial blocks for at most its timeout (no bound when the timeout is zero).
func NewRaftStreamLayer(ln net.Listener, advertise net.Addr, gate *Gate) raft.StreamLayer {
	if advertise == nil {
		advertise = ln.Addr()
	}
	return &raftStreamLayer{Listener: ln, advertise: advertise, gate: gate}
}

// Addr returns the advertised address.
func (s *raftStreamLayer) Addr() net.Addr {
	return s.advertise
}

// Dial opens a TCP connection to address through the gate.
func (s *raftStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return s.gate.DialContext(ctx, "tcp", string(address))
}

var _ raft.StreamLayer = (*raftStreamLayer)(nil)
