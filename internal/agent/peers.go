package agent

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"

	"shoal/consensus"
	"shoal/internal/faultnet"
	"shoal/internal/httpjson"
	"shoal/internal/peerrpc"
	"shoal/membership"
)

// The calls consensus makes between nodes, over the cluster port (never
// the client API). Method names are part of the wire protocol.
const (
	methodApply     = "consensus.apply"      // a follower's batch of writes, to the leader
	methodReadIndex = "consensus.read_index" // a read index, from the leader
	methodApplied   = "consensus.applied"    // how far a member's FSM applied
	methodServers   = "consensus.servers"    // the leader's Raft configuration (a leaving node checks it)
)

// peerCodec carries *httpjson.Error values between nodes, so a module's
// sentinel error still matches with errors.Is after forwarding.
var peerCodec = struct {
	encode func(error) []byte
	decode func([]byte) error
}{
	encode: httpjson.MarshalError,
	decode: func(b []byte) error {
		e, err := httpjson.UnmarshalError(b)
		if err != nil {
			return fmt.Errorf("a peer answered an error that could not be read: %w", err)
		}
		return e
	},
}

// outcomeErrors carries the errors of forwarded commands (module errors
// and consensus errors alike) as peerCodec does.
var outcomeErrors = consensus.ErrorCodec{
	Encode: httpjson.MarshalError,
	Decode: httpjson.DecodeError,
}

// serveConsensus registers the consensus calls this node answers.
func (a *Agent) serveConsensus(s *peerrpc.Server) {
	s.Handle(methodApply, func(ctx context.Context, from string, body []byte) ([]byte, error) {
		cmds, err := consensus.DecodeBatch(body)
		if err != nil {
			return nil, httpjson.BadRequest("bad_command", "%s", err.Error())
		}
		return consensus.EncodeOutcomes(a.node.ApplyBatch(ctx, cmds), outcomeErrors), nil
	})
	s.Handle(methodReadIndex, func(ctx context.Context, from string, body []byte) ([]byte, error) {
		idx, err := a.node.FollowerReadIndex(ctx)
		if err != nil {
			return nil, err
		}
		return binary.AppendUvarint(nil, idx), nil
	})
	s.Handle(methodApplied, func(ctx context.Context, from string, body []byte) ([]byte, error) {
		return binary.AppendUvarint(nil, a.node.FSM().Applied()), nil
	})
	s.Handle(methodServers, func(ctx context.Context, from string, body []byte) ([]byte, error) {
		if !a.node.IsLeader() {
			return nil, consensus.ErrNotLeader
		}
		cfg, err := a.node.Configuration()
		if err != nil {
			return nil, err
		}
		ids := make([]string, len(cfg.Servers))
		for i, s := range cfg.Servers {
			ids[i] = string(s.ID)
		}
		return json.Marshal(ids)
	})
}

// peerClient is consensus's Forwarder and the agent's caller of other
// nodes' consensus, over peer RPC.
type peerClient struct {
	a   *Agent
	rpc *peerrpc.Client
}

// clusterAddrOf returns the cluster port address of a node: what it
// announces in gossip, else (for the leader) the address raft heard from it.
func (p *peerClient) clusterAddrOf(name string) (string, error) {
	if g := p.a.gossip.Load(); g != nil {
		if m, ok := g.Member(name); ok && m.Meta.RaftAddr != "" {
			return m.Meta.RaftAddr, nil
		}
	}
	// The node is published only once consensus.New has returned, and its
	// goroutines may call here before that.
	if node := p.a.raftNode.Load(); node != nil {
		if id, addr := node.Leader(); id == name && addr != "" {
			return addr, nil
		}
	}
	return "", consensus.ErrLeaderUnreachable.WithMessage("the address of %s is not known yet", name)
}

// call calls method on a node and maps peer RPC's failure classes to
// consensus's: not delivered (retry is safe) or outcome unknown.
func (p *peerClient) call(ctx context.Context, to, method string, body []byte) ([]byte, error) {
	addr, err := p.clusterAddrOf(to)
	if err != nil {
		return nil, err
	}
	out, err := p.rpc.Call(ctx, to, addr, method, body)
	var e *httpjson.Error
	switch {
	case err == nil:
		return out, nil
	case errors.As(err, &e):
		return nil, e // the peer's own answer, e.g. not_leader
	case errors.Is(err, peerrpc.ErrNotDelivered):
		return nil, consensus.ErrLeaderUnreachable.WithMessage("%s could not be reached: %s", to, err.Error())
	case errors.Is(err, peerrpc.ErrNoMethod):
		return nil, consensus.ErrLeaderUnreachable.WithMessage("%s does not serve %s (is it running an older version?)", to, method)
	default:
		return nil, consensus.ErrOutcomeUnknown.WithMessage("%s did not answer: %s", to, err.Error())
	}
}

// ForwardApply implements consensus.Forwarder.
func (p *peerClient) ForwardApply(ctx context.Context, leaderID string, cmds [][]byte) ([]consensus.Outcome, error) {
	out, err := p.call(ctx, leaderID, methodApply, consensus.EncodeBatch(cmds))
	if err != nil {
		return nil, err
	}
	outs, err := consensus.DecodeOutcomes(out, outcomeErrors)
	if err != nil {
		return nil, consensus.ErrOutcomeUnknown.WithMessage("the leader's answer could not be read (%s); the write's outcome is unknown", err.Error())
	}
	return outs, nil
}

// ForwardReadIndex implements consensus.Forwarder. Asking for a read index
// changes nothing, so any failure to get an answer is reported as
// ErrLeaderUnreachable, which consensus retries.
func (p *peerClient) ForwardReadIndex(ctx context.Context, leaderID string) (uint64, error) {
	out, err := p.call(ctx, leaderID, methodReadIndex, nil)
	var e *httpjson.Error
	if err != nil && errors.As(err, &e) && !errors.Is(err, consensus.ErrOutcomeUnknown) {
		return 0, err
	}
	if err != nil {
		return 0, consensus.ErrLeaderUnreachable.WithMessage("%s", err.Error())
	}
	idx, n := binary.Uvarint(out)
	if n <= 0 {
		return 0, consensus.ErrLeaderUnreachable.WithMessage("the leader's read index could not be read")
	}
	return idx, nil
}

// leaderServers asks the leader for the server IDs of its configuration.
func (p *peerClient) leaderServers(ctx context.Context, leaderID string) ([]string, error) {
	out, err := p.call(ctx, leaderID, methodServers, nil)
	if err != nil {
		return nil, err
	}
	var ids []string
	if err := json.Unmarshal(out, &ids); err != nil {
		return nil, fmt.Errorf("read the leader's servers: %w", err)
	}
	return ids, nil
}

// clusterView is the gossip view consensus follows (consensus.Cluster).
type clusterView struct{ a *Agent }

func (c clusterView) Members() []consensus.Member {
	g := c.a.gossip.Load()
	if g == nil {
		return nil
	}
	members := g.Members()
	out := make([]consensus.Member, 0, len(members))
	for _, m := range members {
		if m.Meta.IsClient() {
			continue // never in Raft: autopilot and bootstrap do not see it
		}
		out = append(out, consensusMember(m))
	}
	return out
}

// consensusMember is what consensus needs to know of a gossip member.
func consensusMember(m membership.Member) consensus.Member {
	status := consensus.MemberAlive
	switch m.Status {
	case membership.StatusDead:
		status = consensus.MemberDead
	case membership.StatusLeft:
		status = consensus.MemberLeft
	}
	return consensus.Member{
		Name:            m.Name,
		Status:          status,
		Since:           m.Since,
		RaftAddr:        m.Meta.RaftAddr,
		RaftModules:     m.Meta.RaftModules,
		BootstrapExpect: m.Meta.BootstrapExpect,
		Zone:            m.Meta.Zone,
		HasRaftState:    m.Meta.HasRaftState,
	}
}

func (c clusterView) Forget(name string) {
	if g := c.a.gossip.Load(); g != nil {
		g.Forget(name)
	}
}

// RaftAddr is the Raft address a member announces now; a member that
// left has none.
func (c clusterView) RaftAddr(name string) (string, bool) {
	g := c.a.gossip.Load()
	if g == nil {
		return "", false
	}
	m, ok := g.Member(name)
	if !ok || m.Status == membership.StatusLeft || m.Meta.RaftAddr == "" || m.Meta.IsClient() {
		return "", false
	}
	return m.Meta.RaftAddr, true
}

func (c clusterView) AppliedIndex(ctx context.Context, m consensus.Member) (uint64, error) {
	out, err := c.a.peers.rpc.Call(ctx, m.Name, m.RaftAddr, methodApplied, nil)
	if err != nil {
		return 0, fmt.Errorf("ask %s how far it applied: %w", m.Name, err)
	}
	idx, n := binary.Uvarint(out)
	if n <= 0 {
		return 0, fmt.Errorf("ask %s how far it applied: a bad answer", m.Name)
	}
	return idx, nil
}

func gateTransport(gate *faultnet.Gate) func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
	return func(t memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
		return faultnet.WrapTransport(t, gate)
	}
}

var _ consensus.Forwarder = (*peerClient)(nil)
var _ consensus.Cluster = clusterView{}
