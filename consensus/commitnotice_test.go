package consensus_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"shoal/internal/agent"
	"shoal/internal/moduletest"
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

// TestCluster_WaitingFollowersAreToldAtOnce: when no follower waits, the
// leader may hold its notice back so that the next write carries the
// commit index instead; a follower that forwarded a write, or asks for a
// read index, is told at once. With the hold (Timing.CommitNoticeHold)
// and the commit timeout at a minute, leader writes add no notice, and
// forwarded writes and read indexes on followers still return promptly
// with the writes applied there.
func TestCluster_WaitingFollowersAreToldAtOnce(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("register"),
		testcluster.WithConfig(func(_ int, cfg *agent.Config) {
			cfg.RaftCommitTimeout = time.Minute
			cfg.RaftCommitNoticeHold = time.Minute
		}))
	leader := c.Leader()
	notices := func() float64 {
		return moduletest.MetricValue(t, leader.Agent().Registry(), "shoal_raft_commit_notices_total")
	}
	var want []string
	apply := func(n *testcluster.Node, v string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := reg(t, n).host.Raft().Apply(ctx, opAppend, []byte(v)); err != nil {
			t.Fatalf("apply through %s: %v", n.Name, err)
		}
		want = append(want, v)
	}
	// Each follower asks the leader for a read index once after its
	// start, to catch up: wait until that is done.
	for _, f := range c.Followers() {
		testcluster.Eventually(t, 30*time.Second, func() error {
			resp, err := http.Get(f.URL() + "/v1/health/ready")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s is not ready: %s", f.Name, resp.Status)
			}
			return nil
		})
	}
	// A read index answered before now (the catch-up above, a readiness
	// check) may have left a follower's wish for a notice pending: it is
	// cleared by the notice it asks for, which the next write brings. Write
	// until a write is followed by no notice.
	warmups := 0
	testcluster.Eventually(t, 30*time.Second, func() error {
		n := notices()
		warmups++
		apply(leader, fmt.Sprint("warm-up-", warmups))
		time.Sleep(200 * time.Millisecond)
		if notices() != n {
			return errors.New("a notice was pending")
		}
		return nil
	})
	before := notices()
	for i := range 3 {
		apply(leader, fmt.Sprint("leader-", i))
		time.Sleep(5 * time.Millisecond) // more than commitNoticeDelay
	}
	if n := notices(); n != before {
		t.Fatalf("%v notices after writes on the leader with nobody waiting, want none", n-before)
	}
	// A forwarded write: its follower has it when Apply returns, which
	// without a prompt notice would take the minute.
	f := c.Followers()[0]
	apply(f, "forwarded")
	if got := reg(t, f).values(); !slices.Equal(got, want) {
		t.Fatalf("%s right after its forwarded write has %v, want %v", f.Name, got, want)
	}
	testcluster.Eventually(t, 10*time.Second, func() error {
		if notices() <= before { // counted once the leader has applied it
			return errors.New("no notice after a forwarded write")
		}
		return nil
	})
	// A leader write, then a read index on each follower.
	apply(leader, "last")
	for _, f := range c.Followers() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := reg(t, f).host.Raft().ReadIndex(ctx)
		cancel()
		if err != nil {
			t.Fatalf("read index on %s: %v", f.Name, err)
		}
		if got := reg(t, f).values(); !slices.Equal(got, want) {
			t.Fatalf("%s after a read index has %v, want %v", f.Name, got, want)
		}
	}
}
