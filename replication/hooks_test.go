package replication

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shoal/internal/testcluster"
)

// TestCluster_LeaderHooks runs the elected and lost hooks: the first leader
// runs elected; cut off, it steps down and runs lost with the same term;
// the new leader runs elected with a later term.
func TestCluster_LeaderHooks(t *testing.T) {
	testcluster.FullRunOnly(t, "the leader hooks on a real cluster")
	out := filepath.Join(t.TempDir(), "hooks.log")
	cfg := testConfig()
	line := `echo "$SHOAL_REPLICATION_EVENT $SHOAL_NODE $SHOAL_REPLICATION_TERM" >> ` + out
	cfg.OnLeaderElected, cfg.OnLeaderLost = line, line
	c := newCluster(t, cfg)
	leader := replLeader(t, c)
	term := module(t, leader).state().term
	waitLine := func(want string) {
		t.Helper()
		testcluster.Eventually(t, 30*time.Second, func() error {
			b, _ := os.ReadFile(out)
			if !strings.Contains(string(b), want+"\n") {
				return fmt.Errorf("hook log %q has no line %q", b, want)
			}
			return nil
		})
	}
	waitLine(fmt.Sprintf("elected %s %d", leader.Name, term))
	c.Partition(leader.Index)
	t.Cleanup(c.Heal)
	waitLine(fmt.Sprintf("lost %s %d", leader.Name, term))
	var next *testcluster.Node
	testcluster.Eventually(t, 30*time.Second, func() error {
		for _, n := range c.Nodes() {
			if n != leader && module(t, n).current.Load() != nil {
				next = n
				return nil
			}
		}
		return fmt.Errorf("no new replication leader")
	})
	nextTerm := module(t, next).state().term
	if nextTerm <= term {
		t.Fatalf("new leader's term %d, want above %d", nextTerm, term)
	}
	waitLine(fmt.Sprintf("elected %s %d", next.Name, nextTerm))
	c.Heal()
}
