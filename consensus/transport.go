package consensus

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"shoal/internal/clusterport"
)

// Raft knows its peers by server ID and address, but hashicorp/raft's
// network transport dials by address alone, and it identifies a candidate
// by the address bytes it sends: a node persists its vote as those bytes
// and grants a second request carrying the same bytes as a "duplicate".
// Addresses are not identities: after a full restart that hands the nodes
// each other's addresses, a configuration can name a peer at the address
// where the dialing node itself now listens. The node then asked itself
// for a vote, counted it twice, and two leaders were elected in one term
// (issue 9). And a vote persisted for one node's old address could be
// granted again to another node that now has it.
//
// So the transport below puts the server ID wherever raft has only an
// address:
//
//   - every dial target is "id@addr", the address being gossip's current
//     one for that ID (the configuration's only when gossip does not know
//     it), and the cluster port's header tells the receiver which node the
//     connection is for: a node refuses connections meant for another;
//   - a candidate's and a leader's own peer bytes are "id@addr", so a
//     persisted vote names a node, not an address.

// targetSep separates a server ID from its address in dial targets and
// peer bytes. Addresses (host:port) never contain it, so the last one
// splits even an ID that does.
const targetSep = "@"

func joinTarget(id raft.ServerID, addr raft.ServerAddress) raft.ServerAddress {
	return raft.ServerAddress(string(id) + targetSep + string(addr))
}

// splitTarget splits "id@addr"; a plain address (a peer of an older
// version) has no ID.
func splitTarget(target raft.ServerAddress) (raft.ServerID, raft.ServerAddress) {
	s := string(target)
	i := strings.LastIndex(s, targetSep)
	if i < 0 {
		return "", target
	}
	return raft.ServerID(s[:i]), raft.ServerAddress(s[i+len(targetSep):])
}

// transport is raft's NetworkTransport with server IDs in every dial
// target and in its own peer bytes. Its methods are safe for concurrent
// use, as NetworkTransport's are.
type transport struct {
	*raft.NetworkTransport
	// lookup returns gossip's current Raft address of a server.
	lookup func(id string) (string, bool)

	// heartbeats guards raft's heartbeat handler, which the network
	// transport runs on a connection's goroutine, not on raft's own: a
	// heartbeat that raced raft's shutdown could still write the term to
	// the stable store after the node closed it (a panic, seen in tests).
	// Readers are heartbeats being handled; quiesce takes the write lock.
	heartbeats sync.RWMutex
	quiesced   bool
}

// SetHeartbeatHandler installs raft's heartbeat fast path behind the
// quiesce gate.
func (t *transport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	if cb == nil {
		t.NetworkTransport.SetHeartbeatHandler(nil)
		return
	}
	t.NetworkTransport.SetHeartbeatHandler(func(rpc raft.RPC) {
		t.heartbeats.RLock()
		defer t.heartbeats.RUnlock()
		if t.quiesced {
			rpc.Respond(nil, raft.ErrTransportShutdown)
			return
		}
		cb(rpc)
	})
}

// quiesce waits for the heartbeats being handled and turns away the rest:
// after it returns, no heartbeat reaches raft. Call it after raft has shut
// down and before its stores close.
func (t *transport) quiesce() {
	t.heartbeats.Lock()
	t.quiesced = true
	t.heartbeats.Unlock()
}

// target is where to reach server id: gossip's address for it, else the
// configuration's, with the ID attached for the receiver to check.
func (t *transport) target(id raft.ServerID, configured raft.ServerAddress) raft.ServerAddress {
	addr := configured
	if t.lookup != nil {
		if a, ok := t.lookup(string(id)); ok && a != "" {
			addr = raft.ServerAddress(a)
		}
	}
	return joinTarget(id, addr)
}

// AppendEntriesPipeline refuses: raft replicates with one AppendEntries in
// flight per follower instead. hashicorp/raft v1.7's pipeline can deadlock
// (seen here as a Node.Close that never returned, and by grafana/pyroscope
// as a follower that silently never got another entry): when a follower
// answers Success=false, raft's pipelineDecode returns, and a send that
// races it parks on the pipeline's in-flight channel while the pipeline's
// decoder parks on its done channel, which nobody reads any more; the
// pipeline is closed only when that send returns, so replication to the
// follower stops for good (heartbeats go on, so no election heals it) and
// Raft's Shutdown waits forever. Batching (MaxAppendEntries, group
// commit) keeps most of what the pipeline gave.
func (t *transport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

func (t *transport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	return t.NetworkTransport.AppendEntries(id, t.target(id, target), args, resp)
}

func (t *transport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return t.NetworkTransport.RequestVote(id, t.target(id, target), args, resp)
}

func (t *transport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.NetworkTransport.RequestPreVote(id, t.target(id, target), args, resp)
}

func (t *transport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	return t.NetworkTransport.InstallSnapshot(id, t.target(id, target), args, resp, data)
}

func (t *transport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return t.NetworkTransport.TimeoutNow(id, t.target(id, target), args, resp)
}

// EncodePeer is what raft sends as this node's identity in every RPC
// header and persists as the candidate a vote went to: "id@addr".
func (t *transport) EncodePeer(id raft.ServerID, addr raft.ServerAddress) []byte {
	return []byte(joinTarget(id, addr))
}

// DecodePeer returns the address part: raft reports it as the leader's
// address and compares it with other addresses.
func (t *transport) DecodePeer(buf []byte) raft.ServerAddress {
	_, addr := splitTarget(raft.ServerAddress(buf))
	return addr
}

// streamLayer is raft's stream layer on the cluster port: it accepts the
// port's Raft connections and dials "id@addr" targets with a header that
// names the intended receiver.
type streamLayer struct {
	net.Listener
	port      *clusterport.Port
	advertise string
	// lookup is the transport's: gossip's current address of a server.
	lookup func(id string) (string, bool)

	// hold is how long a failing dial is held (see Dial); 0 means
	// dialHold.
	hold time.Duration
	// holds ends the dials being held when the node closes.
	holds    chan struct{}
	holdOnce sync.Once
	endOnce  sync.Once
}

// Dial hold: a dial that fails is tried again every dialRetry, for up to
// dialHold, before raft sees the failure. hashicorp/raft backs off
// exponentially on consecutive failures to a follower (10 ms doubling to
// 10 s) and the count only resets on a success, so a follower down for a
// few seconds, failing fast, was left alone for seconds after it came
// back: a node restarted after 6 s waited 4.4 s before the leader sent it
// anything, and was not ready until then. Held, each attempt takes up to
// dialHold and counts once, and the first dial after the node is back
// succeeds within dialRetry.
const (
	dialHold  = 5 * time.Second
	dialRetry = 100 * time.Millisecond
)

// Addr is the address this node advertises (a host name stays a name).
func (s *streamLayer) Addr() net.Addr { return advertisedAddr(s.advertise) }

// Dial connects to the server a target names, holding a failing dial as
// described at dialHold (each try within raft's timeout, at gossip's
// current address for the server). A target without an ID is refused:
// dialing an address without knowing who should answer is how the wrong
// node came to answer.
func (s *streamLayer) Dial(target raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	id, addr := splitTarget(target)
	if id == "" {
		return nil, fmt.Errorf("raft dial to %s: no server id to check the answer against", target)
	}
	var timer *time.Timer
	hold := s.hold
	if hold <= 0 {
		hold = dialHold
	}
	until := time.Now().Add(hold)
	for {
		conn, err := s.dialOnce(string(id), string(addr), timeout)
		if err == nil || time.Now().Add(dialRetry).After(until) {
			return conn, err
		}
		if timer == nil {
			timer = time.NewTimer(dialRetry)
			defer timer.Stop()
		} else {
			timer.Reset(dialRetry)
		}
		select {
		case <-s.holdsDone():
			return nil, err
		case <-timer.C:
		}
		if s.lookup != nil {
			if a, ok := s.lookup(string(id)); ok && a != "" {
				addr = raft.ServerAddress(a)
			}
		}
	}
}

func (s *streamLayer) dialOnce(id, addr string, timeout time.Duration) (net.Conn, error) {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return s.port.Dial(ctx, clusterport.KindRaft, id, addr)
}

func (s *streamLayer) holdsDone() chan struct{} {
	s.holdOnce.Do(func() {
		if s.holds == nil {
			s.holds = make(chan struct{})
		}
	})
	return s.holds
}

// endHolds fails the dials being held, and every later one at its first
// failure: raft's Shutdown waits for its replication goroutines, which may
// be in a held dial.
func (s *streamLayer) endHolds() {
	ch := s.holdsDone()
	s.endOnce.Do(func() { close(ch) })
}

// advertisedAddr is a net.Addr for an advertised host:port, which may hold
// a host name (resolved when dialed, never here).
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

var (
	_ raft.Transport   = (*transport)(nil)
	_ raft.WithPreVote = (*transport)(nil)
	_ raft.WithClose   = (*transport)(nil)
	_ raft.StreamLayer = (*streamLayer)(nil)
)
