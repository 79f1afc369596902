package consensus_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"shoal/internal/agent"
	"shoal/internal/testcluster"
)

// TestCluster_FollowersLearnCommitsFromNotices: with a commit timeout of
// a minute, raft would tell followers that the last write is committed
// only a minute later (heartbeats carry no commit index). The leader's
// commit notice tells them at once: a write forwarded by a follower is in
// its state when Apply returns, a write on the leader reaches every
// follower, and a read index on a follower, asked when the log ends with a
// notice, does not wait for the notice's own commit.
func TestCluster_FollowersLearnCommitsFromNotices(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("register"),
		testcluster.WithConfig(func(_ int, cfg *agent.Config) { cfg.RaftCommitTimeout = time.Minute }))
	leader := c.Leader()
	var want []string
	for i := range 5 {
		f := c.Followers()[i%2]
		v := fmt.Sprint("f", i)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := reg(t, f).host.Raft().Apply(ctx, opAppend, []byte(v))
		cancel()
		if err != nil {
			t.Fatalf("apply through %s: %v", f.Name, err)
		}
		want = append(want, v)
		// Apply waited (up to the 10 s apply timeout) for this follower's
		// own apply: without a notice it would have returned without it.
		if got := reg(t, f).values(); !slices.Equal(got, want) {
			t.Fatalf("%s right after its forwarded write has %v, want %v", f.Name, got, want)
		}
	}
	v := "on-leader"
	mustApply(t, leader, v)
	want = append(want, v)
	for _, n := range c.Nodes() {
		waitValues(t, n, want)
	}
	for _, f := range c.Followers() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := reg(t, f).host.Raft().ReadIndex(ctx)
		cancel()
		if err != nil {
			t.Fatalf("read index on %s after the writes stopped: %v", f.Name, err)
		}
		if got := reg(t, f).values(); !slices.Equal(got, want) {
			t.Fatalf("%s after a read index has %v, want %v", f.Name, got, want)
		}
	}
}
