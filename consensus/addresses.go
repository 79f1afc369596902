package consensus

import (
	"fmt"
	"slices"

	"github.com/hashicorp/raft"
)

// Addresses move: a node restarted in a new container has a new IP, and
// after a whole cluster restarts, nodes may come back on each other's
// addresses. Raft dials the address gossip announces for a server (see
// transport.go), so a stale address in the configuration does not misroute
// anything; autopilot still repairs it, because operators read it
// (/v1/raft/peers) and because it is where raft dials while gossip does not
// know a server yet.
//
// Two constraints shape the repair. hashicorp/raft refuses a configuration
// in which two servers share an address, so when two servers swapped
// addresses one of them must first move to a placeholder ("park"). And
// changing the address of a server the leader replicates to, in place,
// races with its replication goroutine in hashicorp/raft v1.7 (raft#681:
// the goroutine reads the peer without its lock). So the leader changes its
// own entry in place (it does not replicate to itself) and moves any other
// server by removing it and adding it again with the same suffrage: the
// replication state is rebuilt instead of mutated. A voter is moved only
// while every other voter is alive, so that the configuration in between
// can still commit the re-add.

// maxAddressMoves bounds the moves of one reconcile round.
const maxAddressMoves = 8

// repairAddresses moves servers to the addresses their alive members
// announce, parking what stands in the way. It reports whether it changed
// the configuration.
func (a *autopilot) repairAddresses(members map[string]Member) bool {
	changed := false
	for range maxAddressMoves {
		cfg, err := a.n.Configuration()
		if err != nil || !a.moveOne(cfg, members) {
			return changed
		}
		changed = true
	}
	return changed
}

// moveOne makes the first address move that is due and possible, and
// reports whether it made one.
func (a *autopilot) moveOne(cfg raft.Configuration, members map[string]Member) bool {
	holder := map[string]raft.Server{}
	for _, s := range cfg.Servers {
		holder[string(s.Address)] = s
	}
	alive := func(id raft.ServerID) (Member, bool) {
		m, ok := members[string(id)]
		return m, ok && m.Status == MemberAlive
	}
	// The leader's own entry first: it moves in place, without churn.
	servers := slices.Clone(cfg.Servers)
	slices.SortStableFunc(servers, func(x, y raft.Server) int {
		return cmpBool(string(y.ID) == a.n.cfg.NodeID, string(x.ID) == a.n.cfg.NodeID)
	})
	var cycle []raft.Server
	for _, s := range servers {
		m, ok := alive(s.ID)
		if !ok || m.RaftAddr == string(s.Address) {
			continue
		}
		want := m.RaftAddr
		h, held := holder[want]
		if !held {
			return a.move(cfg, members, s, want, "update_address")
		}
		hm, hAlive := alive(h.ID)
		switch {
		case hAlive && hm.RaftAddr == want:
			a.n.cfg.Logger.Warn("two members announce the same raft address", "member", s.ID, "other", h.ID, "addr", want)
		case hAlive:
			cycle = append(cycle, h) // it moves too; whichever can goes first
		default:
			return a.move(cfg, members, h, parkedAddress(h.ID), "park_address")
		}
	}
	// A new member whose address a dead server still holds.
	for name, m := range members {
		known := slices.ContainsFunc(cfg.Servers, func(s raft.Server) bool { return string(s.ID) == name })
		if known || m.Status != MemberAlive {
			continue
		}
		if h, held := holder[m.RaftAddr]; held {
			if _, hAlive := alive(h.ID); !hAlive {
				return a.move(cfg, members, h, parkedAddress(h.ID), "park_address")
			}
		}
	}
	if len(cycle) == 0 {
		return false
	}
	// Servers that swapped addresses: park one, the leader itself if it
	// is one of them.
	pick := cycle[0]
	for _, s := range cycle {
		if string(s.ID) == a.n.cfg.NodeID {
			pick = s
		}
	}
	return a.move(cfg, members, pick, parkedAddress(pick.ID), "park_address")
}

// move gives server s the address addr, keeping its suffrage: in place for
// the leader itself, by removal and re-adding for any other server (see
// the top of this file).
func (a *autopilot) move(cfg raft.Configuration, members map[string]Member, s raft.Server, addr, action string) bool {
	n := a.n
	add := func() raft.IndexFuture {
		if s.Suffrage == raft.Voter {
			return n.raft.AddVoter(s.ID, raft.ServerAddress(addr), 0, n.cfg.ApplyTimeout)
		}
		return n.raft.AddNonvoter(s.ID, raft.ServerAddress(addr), 0, n.cfg.ApplyTimeout)
	}
	if string(s.ID) == n.cfg.NodeID {
		return a.change(action, string(s.ID), add())
	}
	if s.Suffrage == raft.Voter {
		for _, v := range cfg.Servers {
			if v.Suffrage != raft.Voter || v.ID == s.ID || string(v.ID) == n.cfg.NodeID {
				continue
			}
			if m, ok := members[string(v.ID)]; !ok || m.Status != MemberAlive {
				n.cfg.Logger.Debug("address repair waits until every other voter is alive", "server", s.ID, "down", v.ID)
				return false
			}
		}
	}
	if !a.change(action+"_remove", string(s.ID), n.raft.RemoveServer(s.ID, 0, n.cfg.ApplyTimeout)) {
		return false
	}
	return a.change(action, string(s.ID), add())
}

// parkedAddress is a placeholder address unique to id. The ".invalid" top
// level domain never resolves (RFC 6761), so nothing can answer it.
func parkedAddress(id raft.ServerID) string {
	return fmt.Sprintf("parked-%x.invalid:0", []byte(id))
}

func cmpBool(x, y bool) int {
	switch {
	case x == y:
		return 0
	case x:
		return 1
	default:
		return -1
	}
}
