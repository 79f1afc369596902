package consensus_test

import (
	"context"

	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"shoal/internal/testcluster"
)

// ackedWriter appends unique values through random running nodes until
// stopped and remembers every value whose append was acknowledged.
type ackedWriter struct {
	c     *testcluster.Cluster
	mu    sync.Mutex
	acked []string
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startWriters(c *testcluster.Cluster, n int) *ackedWriter {
	w := &ackedWriter{c: c, stop: make(chan struct{})}
	for i := range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for seq := 0; ; seq++ {
				select {
				case <-w.stop:
					return
				default:
				}
				up := c.Up()
				if len(up) == 0 {
					time.Sleep(10 * time.Millisecond) // every node is down: wait for a restart
					continue
				}
				v := fmt.Sprintf("w%d-%d", i, seq)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := apply(ctx, up[rand.IntN(len(up))], v)
				cancel()
				if err == nil {
					w.mu.Lock()
					w.acked = append(w.acked, v)
					w.mu.Unlock()
				}
			}
		}()
	}
	return w
}

// count is how many writes were acknowledged so far.
func (w *ackedWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

func (w *ackedWriter) finish() []string {
	close(w.stop)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.acked...)
}

// TestCluster_RestartWithPermutedAddresses is issue 9: the whole cluster
// restarts and the nodes come back on each other's addresses (Docker hands
// out addresses in start order), while writers keep writing. Raft must
// never elect two leaders in one term (the cluster's election record is
// checked at cleanup), no acknowledged write may be lost, and autopilot
// must repair the configuration's addresses, swaps included.
func TestCluster_RestartWithPermutedAddresses(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("register"))
	w := startWriters(c, 2)
	// Every permutation of three addresses, applied in turn: a swap of
	// two first, then the rotations and the other swaps.
	perms := [][]int{{1, 0, 2}, {1, 2, 0}, {0, 2, 1}, {2, 0, 1}, {2, 1, 0}}
	for round, perm := range perms {
		addrs := make([]testcluster.Addresses, 3)
		for i, n := range c.Nodes() {
			addrs[i] = n.Addresses()
		}
		for i := range c.Nodes() {
			c.Kill(i)
		}
		// Start them in the order of the addresses they get, as Docker
		// would, so early nodes find the others' old addresses in use.
		for i := range c.Nodes() {
			c.RestartOn(i, addrs[perm[i]])
		}
		leader := c.Leader()
		mustApply(t, leader, fmt.Sprintf("round-%d", round))
		// Let the writers land some writes on this configuration before
		// the next restart, so every restart has acknowledged writes
		// behind it that must survive.
		before := w.count()
		testcluster.Eventually(t, 20*time.Second, func() error {
			if got := w.count() - before; got < 10 {
				return fmt.Errorf("%d writes acknowledged since the restart", got)
			}
			return nil
		})
		t.Logf("round %d (%v): leader %s, %d elections so far", round, perm, leader.Name, c.Elections().Count())
	}
	acked := w.finish()
	if err := c.Elections().Check(); err != nil {
		t.Fatal(err)
	}
	if c.Elections().Count() < len(perms) {
		t.Fatalf("%d elections recorded over %d full restarts: is raft's \"election won\" line still observed?", c.Elections().Count(), len(perms))
	}
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged")
	}
	for _, n := range c.Nodes() {
		testcluster.Eventually(t, 15*time.Second, func() error {
			return containsAll(n, acked)
		})
	}
	t.Logf("%d acknowledged writes on every node", len(acked))

	// The configuration's addresses are repaired to where the nodes are.
	testcluster.Eventually(t, 15*time.Second, func() error {
		cfg, err := c.Leader().Agent().Raft().Configuration()
		if err != nil {
			return err
		}
		for _, s := range cfg.Servers {
			n := nodeNamed(c, string(s.ID))
			if n == nil {
				return fmt.Errorf("unknown server %s in the configuration", s.ID)
			}
			if string(s.Address) != n.Agent().RaftAddr() {
				return fmt.Errorf("%s is at %s in the configuration, listens on %s", s.ID, s.Address, n.Agent().RaftAddr())
			}
		}
		return nil
	})
}

func nodeNamed(c *testcluster.Cluster, name string) *testcluster.Node {
	for _, n := range c.Nodes() {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// containsAll reports an error unless node n holds every value of want,
// each once.
func containsAll(n *testcluster.Node, want []string) error {
	r, err := regOf(n)
	if err != nil {
		return err
	}
	have := map[string]int{}
	for _, v := range r.values() {
		have[v]++
	}
	for _, v := range want {
		switch have[v] {
		case 0:
			return fmt.Errorf("%s lost acknowledged write %q", n.Name, v)
		case 1:
		default:
			return fmt.Errorf("%s holds %q %d times", n.Name, v, have[v])
		}
	}
	return nil
}
