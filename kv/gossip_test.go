package kv

import (
	"fmt"
	"testing"

	"shoal/internal/moduletest"
	"shoal/internal/testcluster"
)

// TestSpread_EachNodePassesANewWriteOnOnce checks the relay that makes a
// write an epidemic: its writer and every node it is new to spread it
// once; the copies that come back are not passed on again.
func TestSpread_EachNodePassesANewWriteOnOnce(t *testing.T) {
	net := newFakeNet()
	nodes := []*testNode{
		startNode(t, net, "a", testConfig()),
		startNode(t, net, "b", testConfig()),
		startNode(t, net, "c", testConfig()),
	}
	// Synced first: a node still syncing takes the write from its sync,
	// which it does not pass on.
	waitSynced(t, nodes...)
	nodes[0].put("k", "v1")
	count := func(n *testNode, name string) float64 {
		return moduletest.MetricValue(t, n.reg, name, "kind", "entry")
	}
	testcluster.Eventually(t, clusterWait, func() error {
		for _, n := range nodes {
			// Each node hears the write from both others (the writer's
			// spread and the relays).
			if got := count(n, "shoal_kv_broadcasts_received_total"); got < 2 {
				return fmt.Errorf("%s received %v copies", n.name, got)
			}
			if v, ok := n.get("k"); !ok || v != "v1" {
				return fmt.Errorf("%s has %q", n.name, v)
			}
		}
		return nil
	})
	// A barrier: the next write's copies are handled after this one's in
	// each node's inbox, so once it is everywhere, so are the duplicates.
	nodes[0].put("barrier", "x")
	testcluster.Eventually(t, clusterWait, func() error {
		for _, n := range nodes {
			if got := count(n, "shoal_kv_broadcasts_received_total"); got < 4 {
				return fmt.Errorf("%s received %v copies", n.name, got)
			}
		}
		return nil
	})
	for _, n := range nodes {
		if got := count(n, "shoal_kv_broadcasts_sent_total"); got != 2 {
			t.Errorf("%s spread %v writes, want 2 (each of the two once)", n.name, got)
		}
	}
}
