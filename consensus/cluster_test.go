package consensus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"shoal/consensus"
	"shoal/internal/agent"
	"shoal/internal/testcluster"
)

func reg(t testing.TB, n *testcluster.Node) *register {
	t.Helper()
	r, err := regOf(n)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func regOf(n *testcluster.Node) (*register, error) {
	a := n.Agent()
	if a == nil {
		return nil, fmt.Errorf("%s is down", n.Name)
	}
	m, ok := a.Module("register")
	if !ok {
		return nil, fmt.Errorf("%s has no register module", n.Name)
	}
	return m.(*register), nil
}

// mustApply appends v through node n, retrying while the outcome is
// unknown or there is no leader (safe: appends are idempotent by value).
func mustApply(t *testing.T, n *testcluster.Node, v string) int {
	t.Helper()
	var pos int
	testcluster.Eventually(t, 20*time.Second, func() error {
		var err error
		pos, err = apply(context.Background(), n, v)
		return err
	})
	return pos
}

func apply(ctx context.Context, n *testcluster.Node, v string) (int, error) {
	r, err := regOf(n)
	if err != nil {
		return 0, err
	}
	res, err := r.host.Raft().Apply(ctx, opAppend, []byte(v))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(res.Result))
}

func waitValues(t *testing.T, n *testcluster.Node, want []string) {
	t.Helper()
	testcluster.Eventually(t, 15*time.Second, func() error {
		r, err := regOf(n)
		if err != nil {
			return err
		}
		got := r.values()
		if !slices.Equal(got, want) {
			return fmt.Errorf("%s has %d values, want %d (first diff near %v)", n.Name, len(got), len(want), firstDiff(got, want))
		}
		return nil
	})
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestCluster_FormsWithBootstrapExpectAndOneLeader(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("register"))
	leader := c.Leader()
	for _, n := range c.Nodes() {
		// A follower may hear the leader's heartbeat before the log entry
		// that carries the configuration.
		testcluster.Eventually(t, 10*time.Second, func() error {
			cfg, err := n.Agent().Raft().Configuration()
			if err != nil {
				return err
			}
			if len(cfg.Servers) != 3 {
				return fmt.Errorf("%s sees %d servers, want 3 (two clusters formed?)", n.Name, len(cfg.Servers))
			}
			return nil
		})
		if n != leader && n.Agent().Raft().IsLeader() {
			t.Fatalf("%s and %s both lead", n.Name, leader.Name)
		}
	}
}

// TestCluster_NeverTwoLeadersInATerm samples every node's state while a
// cluster forms and through a leader change: a term has at most one leader.
func TestCluster_NeverTwoLeadersInATerm(t *testing.T) {
	testcluster.FullRunOnly(t, "one leader per term under churn (the e2e suite checks every term of every run)")
	c := testcluster.New(t, 3, testcluster.WithModules("register"))
	leaders := map[uint64]string{}
	check := func() {
		for _, n := range c.Up() {
			a := n.Agent()
			if a == nil || !a.Raft().IsLeader() {
				continue
			}
			term := a.Raft().Stats().Term
			if other, ok := leaders[term]; ok && other != n.Name {
				t.Fatalf("term %d has two leaders: %s and %s", term, other, n.Name)
			}
			leaders[term] = n.Name
		}
	}
	old := c.Leader()
	check()
	c.Kill(old.Index)
	testcluster.Eventually(t, 20*time.Second, func() error {
		check()
		_, err := func() (*testcluster.Node, error) {
			for _, n := range c.Up() {
				if n.Agent().Raft().LeaderReady() {
					return n, nil
				}
			}
			return nil, errors.New("no new leader yet")
		}()
		return err
	})
	check()
	if len(leaders) < 2 {
		t.Fatalf("saw leaders %v, want a second term after the kill", leaders)
	}
}

func TestCluster_FollowerForwardsWritesAndReadsItsOwnWrite(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("register"))
	f := c.Followers()[0]
	n := mustApply(t, f, "from-follower")
	if n != 1 {
		t.Fatalf("got position %d, want 1", n)
	}
	// Apply on a follower returns only after the follower applied it.
	if got := reg(t, f).values(); !slices.Equal(got, []string{"from-follower"}) {
		t.Fatalf("follower state right after its write: %v", got)
	}
	for _, node := range c.Nodes() {
		waitValues(t, node, []string{"from-follower"})
	}
}

func TestCluster_ModuleErrorKeepsItsCodeAcrossForwarding(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("register"))
	f := c.Followers()[0]
	_, err := reg(t, f).host.Raft().Apply(context.Background(), opFail, nil)
	if !errors.Is(err, errRejected) {
		t.Fatalf("got %v, want the module's rejected error", err)
	}
}

func TestCluster_ReadIndexSeesEveryEarlierWrite(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("register"))
	leader := c.Leader()
	ctx := context.Background()
	for i := range 20 {
		mustApply(t, leader, fmt.Sprint(i))
		for _, f := range c.Followers() {
			if err := reg(t, f).host.Raft().ReadIndex(ctx); err != nil {
				t.Fatalf("read index on %s: %v", f.Name, err)
			}
			if got := len(reg(t, f).values()); got != i+1 {
				t.Fatalf("after read index %s has %d values, want %d", f.Name, got, i+1)
			}
		}
	}
}

// TestCluster_LateNodesFillTheVoterSetOddly: a fourth server stays a
// non-voter (a read replica: four voters tolerate no more failures than
// three and need one more acknowledgement); a fifth brings the set to
// five voters.
func TestCluster_LateNodesFillTheVoterSetOddly(t *testing.T) {
	testcluster.FullRunOnly(t, "late nodes filling the voter set oddly (voter replacement is tested under -short)")
	c := testcluster.New(t, 3, testcluster.WithModules("register"))
	for i := range 50 {
		mustApply(t, c.Leader(), fmt.Sprint(i))
	}
	fourth := c.AddNode()
	testcluster.Eventually(t, 30*time.Second, func() error {
		if s, ok := suffrageOf(c, fourth.Name); !ok || s != raft.Nonvoter {
			return fmt.Errorf("the fourth node is not a non-voter yet")
		}
		return nil
	})
	want := reg(t, c.Leader()).values()
	waitValues(t, fourth, want)
	// Caught up for many times the stabilization time and reconcile
	// interval: still a non-voter.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if s, _ := suffrageOf(c, fourth.Name); s != raft.Nonvoter {
			t.Fatalf("the fourth server became a voter: an even voter set")
		}
	}
	fifth := c.AddNode()
	c.WaitVoters(5)
	waitValues(t, fifth, want)
}

// TestCluster_LostVoterIsReplacedByAReplica: with three voters and two
// replicas (--raft-voters 3), a voter killed for good is replaced by a
// replica once it has been down for the grace period (the promotion comes
// first, then the lost voter is demoted), and writes go on.
func TestCluster_LostVoterIsReplacedByAReplica(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("register"),
		testcluster.WithConfig(func(i int, cfg *agent.Config) { cfg.RaftVoters = 3 }))
	replicas := []*testcluster.Node{
		c.AddNodeWith(func(cfg *agent.Config) { cfg.RaftVoters = 3 }),
		c.AddNodeWith(func(cfg *agent.Config) { cfg.RaftVoters = 3 }),
	}
	for _, r := range replicas {
		testcluster.Eventually(t, 60*time.Second, func() error {
			if s, ok := suffrageOf(c, r.Name); !ok || s != raft.Nonvoter {
				return fmt.Errorf("%s is not a non-voter yet", r.Name)
			}
			return nil
		})
	}
	mustApply(t, c.Leader(), "before")
	// One voter lost for good: a replica takes its place.
	lost := c.Followers()[0]
	if s, _ := suffrageOf(c, lost.Name); s != raft.Voter {
		t.Fatalf("%s is not a voter", lost.Name)
	}
	c.Kill(lost.Index)
	testcluster.Eventually(t, 60*time.Second, func() error {
		cfg, err := c.Leader().Agent().Raft().Configuration()
		if err != nil {
			return err
		}
		voters := map[string]bool{}
		for _, s := range cfg.Servers {
			if s.Suffrage == raft.Voter {
				voters[string(s.ID)] = true
			}
		}
		if voters[lost.Name] || len(voters) != 3 || !(voters[replicas[0].Name] || voters[replicas[1].Name]) {
			return fmt.Errorf("voters %v: want three, a replica in place of %s", voters, lost.Name)
		}
		return nil
	})
	mustApply(t, c.Leader(), "after")
	for _, n := range c.Up() {
		waitValues(t, n, []string{"before", "after"})
	}
}

// suffrageOf returns name's suffrage in the leader's configuration.
func suffrageOf(c *testcluster.Cluster, name string) (raft.ServerSuffrage, bool) {
	cfg, err := c.Leader().Agent().Raft().Configuration()
	if err != nil {
		return 0, false
	}
	for _, s := range cfg.Servers {
		if string(s.ID) == name {
			return s.Suffrage, true
		}
	}
	return 0, false
}

func TestCluster_LeaderKilledNoCommittedEntryLost(t *testing.T) {
	testcluster.FullRunOnly(t, "a killed leader loses no committed entry (the e2e suite kills the leader of real containers every run)")
	c := testcluster.New(t, 3, testcluster.WithModules("register"))
	var acked []string
	for i := range 30 {
		v := fmt.Sprint("a", i)
		mustApply(t, c.Leader(), v)
		acked = append(acked, v)
	}
	old := c.Leader()
	c.Kill(old.Index)
	newLeader := c.Leader()
	if newLeader == old {
		t.Fatal("killed node still leads")
	}
	for i := range 10 {
		v := fmt.Sprint("b", i)
		mustApply(t, newLeader, v)
		acked = append(acked, v)
	}
	for _, n := range c.Up() {
		waitValues(t, n, acked)
	}
	c.Restart(old.Index)
	waitValues(t, old, acked)
}

func TestCluster_FollowerRestartCatchesUp(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("register"))
	f := c.Followers()[0]
	c.Stop(f.Index)
	var acked []string
	for i := range 40 {
		v := fmt.Sprint(i)
		mustApply(t, c.Leader(), v)
		acked = append(acked, v)
	}
	c.Restart(f.Index)
	waitValues(t, f, acked)
	// The voter set did not shrink: a stop is not a leave.
	c.WaitVoters(3)
}

func TestCluster_RestoresFromSnapshot(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("register"), testcluster.WithSnapshotThreshold(16))
	f := c.Followers()[0]
	c.Stop(f.Index)
	var acked []string
	for i := range 200 {
		v := fmt.Sprint(i)
		mustApply(t, c.Leader(), v)
		acked = append(acked, v)
	}
	// The stopped follower is far behind the leader's trimmed log: it must
	// be sent a snapshot. Then every node restarts from its own snapshot.
	c.Restart(f.Index)
	waitValues(t, f, acked)
	for i := range c.Nodes() {
		c.Stop(i)
	}
	for i := range c.Nodes() {
		c.Restart(i)
	}
	c.Leader()
	for _, n := range c.Nodes() {
		waitValues(t, n, acked)
	}
	late := c.AddNode()
	waitValues(t, late, acked)
}

func TestCluster_MinorityRefusesWritesMajorityAccepts(t *testing.T) {
	testcluster.FullRunOnly(t, "a partitioned minority in process (the e2e suite partitions real containers every run)")
	c := testcluster.New(t, 3, testcluster.WithModules("register"))
	old := c.Leader()
	c.Partition(old.Index)
	var majority []*testcluster.Node
	for _, n := range c.Nodes() {
		if n != old {
			majority = append(majority, n)
		}
	}
	newLeader := c.LeaderOf(majority...)
	ctx := context.Background()
	mustApply(t, newLeader, "majority")
	ctx2, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err := apply(ctx2, old, "minority")
	if err == nil {
		t.Fatal("the cut-off old leader accepted a write")
	}
	c.Heal()
	for _, n := range c.Nodes() {
		waitValues(t, n, []string{"majority"})
	}
}

func TestCluster_ConcurrentWritesAllCommitInOneOrder(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("register"))
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := c.Nodes()[w%3]
			for i := range 25 {
				v := fmt.Sprintf("w%d-%d", w, i)
				for { // retry only outcomes that are unknown or unsubmitted
					_, err := apply(ctx, n, v)
					if err == nil {
						break
					}
					if !errors.Is(err, consensus.ErrLeadershipLost) && !errors.Is(err, consensus.ErrNoLeader) &&
						!errors.Is(err, consensus.ErrTimeout) {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := reg(t, c.Leader()).values()
	if len(want) != 200 {
		t.Fatalf("leader has %d values, want 200", len(want))
	}
	for _, n := range c.Nodes() {
		waitValues(t, n, want)
	}
}

func TestCluster_NoLeaderGivesErrNoLeader(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("register"))
	f := c.Followers()[0]
	for _, n := range c.Nodes() {
		if n != f {
			c.Kill(n.Index)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := apply(ctx, f, "x")
	// The follower may still believe in the leader it just lost and have
	// sent the write down the connection the kill broke: the write's
	// outcome is then honestly unknown. Any of the three is a prompt 503,
	// never a hang or a 500.
	if !errors.Is(err, consensus.ErrNoLeader) && !errors.Is(err, consensus.ErrLeaderUnreachable) && !errors.Is(err, consensus.ErrOutcomeUnknown) {
		t.Fatalf("got %v, want no_leader, leader_unreachable or outcome_unknown", err)
	}
}

// TestCluster_ReapsALongDeadServer: a server dead in gossip for longer than
// --dead-node-reap is removed; the cluster keeps committing.
func TestCluster_ReapsALongDeadServer(t *testing.T) {
	testcluster.FullRunOnly(t, "reaping a long-dead server")
	c := testcluster.New(t, 3, testcluster.WithModules("register"),
		testcluster.WithConfig(func(i int, cfg *agent.Config) { cfg.DeadNodeReap = 2 * time.Second }))
	f := c.Followers()[0]
	c.Kill(f.Index)
	waitConfig(t, c, func(servers map[string]bool) error {
		if servers[f.Name] {
			return fmt.Errorf("%s is still in the configuration", f.Name)
		}
		return nil
	})
	mustApply(t, c.Leader(), "after-reap")
}

// TestCluster_KeepsADeadServerUntilTheReapTime: with the default hour, a
// server that is dead in gossip stays a voter through many autopilot rounds
// (a crash or a restart must never shrink the voter set).
func TestCluster_KeepsADeadServerUntilTheReapTime(t *testing.T) {
	testcluster.FullRunOnly(t, "keeping a dead server until the reap time")
	c := testcluster.New(t, 3, testcluster.WithModules("register"))
	f := c.Followers()[0]
	c.Kill(f.Index)
	leader := c.Leader()
	testcluster.Eventually(t, 20*time.Second, func() error {
		m, ok := leader.Agent().Members().Member(f.Name)
		if !ok || m.Status != "dead" {
			return fmt.Errorf("the leader does not see %s dead yet", f.Name)
		}
		return nil
	})
	// Autopilot runs every 200ms in tests: give it a dozen rounds to do
	// the wrong thing; this polls, it never waits for an event.
	deadline := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(deadline) {
		cfg, err := leader.Agent().Raft().Configuration()
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Servers) != 3 {
			t.Fatalf("the dead server was removed before --dead-node-reap: %v", cfg.Servers)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitConfig(t *testing.T, c *testcluster.Cluster, check func(servers map[string]bool) error) {
	t.Helper()
	testcluster.Eventually(t, 30*time.Second, func() error {
		cfg, err := c.Leader().Agent().Raft().Configuration()
		if err != nil {
			return err
		}
		servers := map[string]bool{}
		for _, s := range cfg.Servers {
			servers[string(s.ID)] = true
		}
		return check(servers)
	})
}
