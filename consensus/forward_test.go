package consensus_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"shoal/consensus"
	"shoal/internal/moduletest"
	"shoal/internal/testcluster"
)

// TestCluster_ForwardedWriteDoesNotWaitForAFrozenLeader is the second half
// of issue 9: a write forwarded to a leader that froze (docker pause) is
// answered as soon as the follower stops following that leader, not when
// the apply timeout (10 s) runs out, and its retry goes to the new leader.
func TestCluster_ForwardedWriteDoesNotWaitForAFrozenLeader(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("register"))
	old := c.Leader()
	var rest []*testcluster.Node
	for _, n := range c.Nodes() {
		if n != old {
			rest = append(rest, n)
		}
	}
	f := rest[0]
	mustApply(t, f, "before")

	c.Pause(old.Index)
	// f still follows the frozen leader: the write is forwarded to it and
	// stays there until f gives up on that leader.
	_, err := apply(context.Background(), f, "during")
	if !errors.Is(err, consensus.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "leader changed") {
		t.Fatalf("first attempt: got %v, want outcome_unknown because the leader changed (not the apply timeout)", err)
	}
	if got := moduletest.MetricValue(t, f.Agent().Registry(), "shoal_raft_forward_batches_abandoned_total"); got < 1 {
		t.Fatalf("abandoned batches: %v, want at least 1", got)
	}
	// The retry, with the same value (appends are idempotent), is
	// committed by the new leader.
	mustApply(t, f, "during")
	nl := c.LeaderOf(rest...)
	t.Logf("%s froze; %s leads", old.Name, nl.Name)

	c.Resume(old.Index)
	for _, n := range c.Nodes() {
		waitValues(t, n, []string{"before", "during"})
	}
}
