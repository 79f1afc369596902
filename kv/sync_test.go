package kv

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"shoal/internal/moduletest"
	"shoal/internal/testcluster"
)

func TestSync_NewNodeGetsTheFullStateOnce(t *testing.T) {
	net := newFakeNet()
	a := startNode(t, net, "a", testConfig())
	b := startNode(t, net, "b", testConfig())
	waitSynced(t, a, b)
	putMany(t, a, "k/", 2000)
	a.del("k/5")
	waitConverged(t, a, b)
	c := startNode(t, net, "c", testConfig())
	waitSynced(t, c)
	if got := moduletest.MetricValue(t, c.reg, "shoal_kv_syncs_total", "result", "completed"); got != 1 {
		t.Fatalf("c completed %v full syncs, want 1", got)
	}
	if c.live() != 1999 {
		t.Fatalf("c has %d keys right after its sync, want 1999", c.live())
	}
	if got := moduletest.MetricValue(t, c.reg, "shoal_kv_merged_total", "via", "sync"); got < 1999 {
		t.Fatalf("c merged %v entries by sync, want them all", got)
	}
	waitConverged(t, a, b, c)
}

// TestSync_NoResurrectionAfterTTL stops a node, deletes keys it holds,
// lets the tombstones be collected everywhere, and restarts it: the node
// drops those keys in its full sync, and never gives them back.
func TestSync_NoResurrectionAfterTTL(t *testing.T) {
	cfg := testConfig()
	cfg.TombstoneTTL = 300 * time.Millisecond
	net := newFakeNet()
	a := startNode(t, net, "a", cfg)
	b := startNode(t, net, "b", cfg)
	c := startNode(t, net, "c", cfg)
	waitSynced(t, a, b, c)
	for i := range 20 {
		a.put(fmt.Sprintf("k%d", i), "v")
	}
	waitConverged(t, a, b, c)
	c.stop()
	for i := range 10 {
		a.del(fmt.Sprintf("k%d", i))
	}
	a.put("k0", "written again") // a newer write after a delete survives
	testcluster.Eventually(t, 30*time.Second, func() error {
		for _, n := range []*testNode{a, b} {
			if _, tombs, _ := n.kv.st.counts(); tombs != 0 {
				return fmt.Errorf("%s still has %d tombstones", n.name, tombs)
			}
		}
		return nil
	})
	c.start()
	waitSynced(t, c)
	waitConverged(t, a, b, c)
	for _, n := range []*testNode{a, b, c} {
		if n.live() != 11 {
			t.Fatalf("%s has %d keys, want 11", n.name, n.live())
		}
		for i := 1; i < 10; i++ {
			if v, ok := n.get(fmt.Sprintf("k%d", i)); ok {
				t.Fatalf("%s resurrected k%d=%q", n.name, i, v)
			}
		}
		if v, _ := n.get("k0"); v != "written again" {
			t.Fatalf("%s has k0=%q", n.name, v)
		}
	}
}

// TestSync_PartitionLongerThanTTL cuts a node off for longer than the TTL
// while keys it holds are deleted: when it can reach its peers again it
// syncs fully instead of serving them.
func TestSync_PartitionLongerThanTTL(t *testing.T) {
	cfg := testConfig()
	cfg.TombstoneTTL = 300 * time.Millisecond
	net := newFakeNet()
	a := startNode(t, net, "a", cfg)
	b := startNode(t, net, "b", cfg)
	c := startNode(t, net, "c", cfg)
	waitSynced(t, a, b, c)
	a.put("doomed", "v")
	a.put("kept", "v")
	waitConverged(t, a, b, c)
	net.setCut("c", true)
	a.del("doomed")
	c.put("written/in/partition", "c") // newer than the horizon when it heals: kept
	testcluster.Eventually(t, 30*time.Second, func() error {
		for _, n := range []*testNode{a, b} {
			if _, tombs, _ := n.kv.st.counts(); tombs != 0 {
				return fmt.Errorf("%s still has %d tombstones", n.name, tombs)
			}
		}
		return nil
	})
	c.put("written/in/partition", "c2")
	net.setCut("c", false)
	waitConverged(t, a, b, c)
	for _, n := range []*testNode{a, b, c} {
		if _, ok := n.get("doomed"); ok {
			t.Fatalf("%s has the deleted key", n.name)
		}
		if v, _ := n.get("written/in/partition"); v != "c2" {
			t.Fatalf("%s lost the write made in the partition: %q", n.name, v)
		}
	}
	if got := moduletest.MetricValue(t, c.reg, "shoal_kv_syncs_total", "result", "completed"); got < 2 {
		t.Fatalf("c completed %v full syncs, want a second one after the partition", got)
	}
}

func TestSync_AloneNodeBecomesTheSource(t *testing.T) {
	a := startNode(t, newFakeNet(), "a", testConfig())
	waitSynced(t, a)
	if got := moduletest.MetricValue(t, a.reg, "shoal_kv_syncs_total", "result", "self"); got != 1 {
		t.Fatalf("syncs{self}: got %v, want 1", got)
	}
}

// TestSync_WholeClusterRestart restarts every node at once: none is
// synced, so the one that synced last becomes the source and the data
// survives.
func TestSync_WholeClusterRestart(t *testing.T) {
	net := newFakeNet()
	a := startNode(t, net, "a", testConfig())
	b := startNode(t, net, "b", testConfig())
	waitSynced(t, a, b)
	for i := range 50 {
		b.put(fmt.Sprintf("k%d", i), "v")
	}
	waitConverged(t, a, b)
	a.stop()
	b.put("late", "only b saw it") // whichever node is the source, nothing younger than the TTL is dropped
	b.stop()
	a.start()
	b.start()
	waitSynced(t, a, b)
	waitConverged(t, a, b)
	if a.live() != 51 {
		t.Fatalf("a has %d keys after the restart, want 51", a.live())
	}
}

// TestStop_LeavesNoGoroutines runs every kind of goroutine the module
// owns (worker, senders, loop, handlers, a sync being served, a watch),
// stops the nodes and checks that none of them is left.
func TestStop_LeavesNoGoroutines(t *testing.T) {
	cfg := testConfig()
	cfg.Handlers = []string{"*=" + writeScript(t, "exec sleep 5\n")}
	net := newFakeNet()
	a := startNode(t, net, "a", cfg)
	srv := a.serve()
	events := watch(t, srv.URL+"/v1/kv?watch=true")
	putMany(t, a, "k/", 200)
	b := startNode(t, net, "b", cfg)
	waitSynced(t, a, b)
	next(t, events, 10*time.Second)
	b.stop()
	a.stop()
	testcluster.Eventually(t, 30*time.Second, func() error {
		buf := make([]byte, 1<<22)
		stacks := string(buf[:runtime.Stack(buf, true)])
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "shoal/kv.(*KV)") || strings.Contains(g, "shoal/kv.(*runner)") {
				return fmt.Errorf("a module goroutine is left:\n%s", g)
			}
		}
		return nil
	})
}

// TestSync_FreshLargeClusterGetsGoing starts more nodes at once than one
// node can ask in an answer TTL at one ask per interval: a new cluster
// must still elect its source of truth, and every node sync from it.
func TestSync_FreshLargeClusterGetsGoing(t *testing.T) {
	cfg := testConfig()
	cfg.GossipInterval = 100 * time.Millisecond // the TTL's 5 s floor covers 50 asks
	net := newFakeNet()
	nodes := make([]*testNode, 70)
	for i := range nodes {
		nodes[i] = startNode(t, net, fmt.Sprintf("n%02d", i), cfg)
	}
	waitSynced(t, nodes...)
	nodes[len(nodes)-1].put("k", "v")
	waitConverged(t, nodes...)
}

// TestAntiEntropy_IdleNodesSlowDown checks the pace: nodes whose rounds
// find nothing slow down to a round every maxPace intervals; a write does
// not speed them up (broadcast carries it), a repair does.
func TestAntiEntropy_IdleNodesSlowDown(t *testing.T) {
	net := newFakeNet()
	a := startNode(t, net, "a", testConfig())
	b := startNode(t, net, "b", testConfig())
	waitSynced(t, a, b)
	a.put("k", "v")
	waitConverged(t, a, b)
	pace := func(n *testNode) int {
		n.kv.ae.mu.Lock()
		defer n.kv.ae.mu.Unlock()
		return n.kv.ae.pace
	}
	testcluster.Eventually(t, 30*time.Second, func() error {
		for _, n := range []*testNode{a, b} {
			if p := pace(n); p != maxPace {
				return fmt.Errorf("%s: pace %d, want %d", n.name, p, maxPace)
			}
		}
		return nil
	})
	// A write whose broadcast is lost: b's slow rounds still find it,
	// and the repair counts.
	net.mu.Lock()
	net.dropBroadcasts = true
	net.mu.Unlock()
	a.put("k", "v2")
	if p := pace(a); p != maxPace {
		t.Fatalf("pace right after a write: %d, want still %d", p, maxPace)
	}
	waitConverged(t, a, b)
	b.kv.ae.mu.Lock()
	repairs := b.kv.ae.repairs
	b.kv.ae.mu.Unlock()
	if repairs != 1 {
		t.Fatalf("b counted %d repairs, want 1 (the lost write)", repairs)
	}
}

// TestInbox_ByteBudget checks that received messages are bounded by bytes,
// not only by count: a message that would take the inbox past its budget
// is dropped and counted, and the accounting returns to zero.
func TestInbox_ByteBudget(t *testing.T) {
	net := newFakeNet()
	a := startNode(t, net, "a", testConfig())
	big := make([]byte, maxInboxBytes+1)
	big[0] = byte(msgSyncData)
	a.kv.NotifyMsg(big)
	if got := moduletest.MetricValue(t, a.reg, "shoal_kv_messages_dropped_total", "reason", "inbox_full"); got != 1 {
		t.Fatalf("dropped for a full inbox: %v, want 1", got)
	}
	a.kv.NotifyMsg([]byte{byte(msgSyncData), 0xff}) // malformed, but accepted into the inbox
	testcluster.Eventually(t, 10*time.Second, func() error {
		if n := a.kv.inboxBytes.Load(); n != 0 {
			return fmt.Errorf("%d bytes still counted in the inbox", n)
		}
		return nil
	})
}
