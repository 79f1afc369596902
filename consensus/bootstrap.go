package consensus

import (
	"context"
	"sort"
	"time"

	"github.com/hashicorp/raft"
)

// RunBootstrapExpect forms a new cluster once expect servers see each other
// in gossip, and returns when this node is part of a Raft configuration or
// ctx is done.
//
// Exactly one node bootstraps: among the alive members that announce the
// same expect value, the expect members with the lowest names are chosen and
// the lowest of those bootstraps Raft with all of them as voters; the others
// wait to hear from it. Nothing is bootstrapped while any member announces
// existing Raft state (a cluster already exists: its leader adds newcomers),
// and a node with state never bootstraps.
func (n *Node) RunBootstrapExpect(ctx context.Context, expect int) {
	if n.HasState() || expect <= 0 {
		return
	}
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	warned := map[string]bool{}
	for {
		if n.inConfiguration() {
			return
		}
		if servers, ok := n.bootstrapSet(expect, warned); ok {
			n.cfg.Logger.Info("bootstrapping raft", "expect", expect, "servers", len(servers))
			if err := n.bootstrap(servers); err != nil {
				n.cfg.Logger.Error("bootstrap failed", "err", err)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-n.stop:
			return
		case <-ticker.C:
		}
	}
}

func (n *Node) inConfiguration() bool {
	cfg, err := n.Configuration()
	return err == nil && len(cfg.Servers) > 0
}

// bootstrapSet returns the servers to bootstrap with when this node is the
// one that must do it.
func (n *Node) bootstrapSet(expect int, warned map[string]bool) ([]raft.Server, bool) {
	if n.cluster == nil {
		return nil, false
	}
	var candidates []Member
	for _, m := range n.cluster.Members() {
		if m.Status != MemberAlive || m.RaftAddr == "" {
			continue
		}
		if m.HasRaftState {
			if !warned["state:"+m.Name] {
				warned["state:"+m.Name] = true
				n.cfg.Logger.Info("a member already has raft state; waiting to be added to its cluster", "member", m.Name)
			}
			return nil, false
		}
		if m.BootstrapExpect != expect {
			if !warned["expect:"+m.Name] {
				warned["expect:"+m.Name] = true
				n.cfg.Logger.Warn("member announces a different bootstrap-expect; ignoring it for bootstrap",
					"member", m.Name, "its_expect", m.BootstrapExpect, "ours", expect)
			}
			continue
		}
		candidates = append(candidates, m)
	}
	if len(candidates) < expect {
		return nil, false
	}
	sort.Slice(candidates, func(i, j int) bool { return candidates[i].Name < candidates[j].Name })
	chosen := candidates[:expect]
	if chosen[0].Name != n.cfg.NodeID {
		return nil, false
	}
	servers := make([]raft.Server, len(chosen))
	for i, m := range chosen {
		servers[i] = raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.Name), Address: raft.ServerAddress(m.RaftAddr)}
	}
	return servers, true
}
