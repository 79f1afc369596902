package membership

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"shoal/internal/faultnet"
)

// TestReconnect_HealsAPartitionLongerThanGossipToTheDead: memberlist alone
// never contacts a member again once it gave up gossiping to it; the
// reconnect loop must bring the two sides back together after the network
// heals, with nobody calling Join.
func TestReconnect_HealsAPartitionLongerThanGossipToTheDead(t *testing.T) {
	gates := []*faultnet.Gate{faultnet.NewGate(), faultnet.NewGate()}
	nodes := startCluster(t, 2, func(i int, cfg *Config) {
		gate := gates[i]
		cfg.WrapTransport = func(nt memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
			return faultnet.WrapTransport(nt, gate)
		}
	})
	a, b := nodes[0].LocalMember().Addr, nodes[1].LocalMember().Addr
	gates[0].Block(b)
	gates[1].Block(a)
	eventually(t, 10*time.Second, statusOn(nodes[:1], "n1", StatusDead))
	eventually(t, 10*time.Second, statusOn(nodes[1:], "n0", StatusDead))

	// The partition must outlast memberlist's gossip-to-the-dead window:
	// this sleep is the length of the fault, not a wait for an event.
	time.Sleep(nodes[0].cfg.Timing.GossipToTheDeadTime + 500*time.Millisecond)

	gates[0].Heal()
	gates[1].Heal()
	waitAlive(t, nodes, 2)
}

func TestReconnectTargets(t *testing.T) {
	members := func(n int) []Member {
		out := make([]Member, n)
		for i := range out {
			out[i] = Member{Name: fmt.Sprintf("m%d", i), Status: StatusDead}
		}
		return out
	}
	for _, tt := range []struct{ dead, want int }{{0, 0}, {1, 1}, {8, 1}, {9, 2}, {56, 7}, {64, 8}} {
		got := reconnectTargets(members(tt.dead))
		if len(got) != tt.want {
			t.Errorf("%d dead: %d targets, want %d", tt.dead, len(got), tt.want)
		}
		seen := map[string]bool{}
		for _, m := range got {
			if seen[m.Name] {
				t.Errorf("%d dead: %s picked twice", tt.dead, m.Name)
			}
			seen[m.Name] = true
		}
	}
}
