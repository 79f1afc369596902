package api_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"shoal/internal/agent"
	"shoal/internal/testcluster"
)

// leaderSeenByAll polls until every running node's /v1/status names the
// same leader, and returns it.
func leaderSeenByAll(t *testing.T, c *testcluster.Cluster, not string) string {
	t.Helper()
	var leader string
	testcluster.Eventually(t, 30*time.Second, func() error {
		leader = ""
		for _, n := range c.Up() {
			st, err := statusOf(n)
			if err != nil {
				return err
			}
			switch {
			case st.Leader == "" || st.Leader == not:
				return fmt.Errorf("%s sees leader %q", n.Name, st.Leader)
			case leader != "" && st.Leader != leader:
				return fmt.Errorf("%s sees leader %q, another node %q", n.Name, st.Leader, leader)
			}
			leader = st.Leader
		}
		return nil
	})
	return leader
}

func TestRaft_TransferLeadershipThroughFollower(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("log"))
	old := c.Leader()
	follower := c.Followers()[0]

	// A request that was already proxied once is not proxied again (no
	// loops while leadership moves): the follower refuses it.
	r := call(t, http.MethodPost, follower.URL()+"/v1/raft/transfer-leadership", "", http.Header{"X-Shoal-Forwarded": {"1"}})
	wantError(t, r, http.StatusServiceUnavailable, "not_leader")
	if r.header.Get("Retry-After") == "" {
		t.Fatalf("503 without Retry-After: %v", r)
	}

	var answer map[string]any
	testcluster.Eventually(t, 30*time.Second, func() error {
		r, err := send(http.MethodPost, follower.URL()+"/v1/raft/transfer-leadership", nil, nil)
		if err != nil {
			return err
		}
		switch r.status {
		case http.StatusOK:
			answer = decode[map[string]any](t, r)
			return nil
		case http.StatusConflict, http.StatusServiceUnavailable: // a slow machine: the transfer timed out
			return fmt.Errorf("transfer: %v", r)
		default:
			t.Fatalf("transfer through %s: got %v, want 200", follower.Name, r)
			return nil
		}
	})
	// The follower proxied the request: the leader answered it.
	if answer["previous"] != old.Name {
		t.Fatalf("got %v, want previous %q (the answer comes from the leader)", answer, old.Name)
	}
	leaderSeenByAll(t, c, old.Name)
}

func TestRaft_RemovePeerThroughFollower(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("log"))
	leader := c.Leader()
	followers := c.Followers()
	asker, gone := followers[0], followers[1]

	t.Run("unknown peer", func(t *testing.T) {
		e := wantError(t, call(t, http.MethodDelete, asker.URL()+"/v1/raft/peers/no-such-node", "", nil), http.StatusNotFound, "peer_not_found")
		if msg := e["message"].(string); !strings.Contains(msg, "no-such-node") {
			t.Fatalf("message %q does not name the peer", msg)
		}
	})
	t.Run("the leader itself", func(t *testing.T) {
		wantError(t, call(t, http.MethodDelete, asker.URL()+"/v1/raft/peers/"+leader.Name, "", nil), http.StatusConflict, "cannot_remove_leader")
	})

	// Stop one follower and wait until gossip has it dead, so that
	// autopilot does not add it back as a non-voter.
	c.Stop(gone.Index)
	waitMemberStatus(t, leader, gone.Name, "dead")

	// A loaded machine may move leadership meanwhile: a 503 says retry.
	var r response
	testcluster.Eventually(t, 20*time.Second, func() error {
		r = call(t, http.MethodDelete, asker.URL()+"/v1/raft/peers/"+gone.Name, "", nil)
		if r.status != http.StatusOK {
			return fmt.Errorf("remove %s through %s: got %v, want 200", gone.Name, asker.Name, r)
		}
		return nil
	})
	if got := decode[map[string]any](t, r); got["removed"] != gone.Name {
		t.Fatalf("got %v, want removed %q", got, gone.Name)
	}
	// Two servers remain; the voter set is kept odd (consensus/voters.go),
	// so autopilot soon demotes one of them: the servers, voters and
	// non-voters together, are the two, and the removed node is in neither.
	want := names(leader, asker)
	waitServers(t, leader, want...)
	waitServers(t, asker, want...)
	for _, n := range []*testcluster.Node{leader, asker} {
		st, err := statusOf(n)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(st.Raft.NonVoters, gone.Name) {
			t.Fatalf("%s still lists %s as a non-voter", n.Name, gone.Name)
		}
	}
	// Removed now: asking again is a 404.
	wantError(t, call(t, http.MethodDelete, asker.URL()+"/v1/raft/peers/"+gone.Name, "", nil), http.StatusNotFound, "peer_not_found")
}

func TestCluster_LeaveShrinksStopDoesNot(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("log"))
	leader := c.Leader()
	all := names(c.Nodes()...)
	stopped := c.Followers()[0]

	// A plain stop (SIGTERM) keeps the node in the configuration: gossip
	// reports it dead, not left, and the voters stay three.
	c.Stop(stopped.Index)
	waitMemberStatus(t, leader, stopped.Name, "dead")
	st := decode[statusJSON](t, get(t, leader.URL()+"/v1/status"))
	if !slices.Equal(st.Raft.Voters, all) {
		t.Fatalf("after a stop: got voters %v, want %v", st.Raft.Voters, all)
	}
	c.Restart(stopped.Index)
	waitMemberStatus(t, leader, stopped.Name, "alive")
	waitVoters(t, leader, all...)

	// A leave removes the node for good.
	leader = c.Leader()
	leaving := c.Followers()[0]
	a := leaving.Agent()
	r := call(t, http.MethodPost, leaving.URL()+"/v1/cluster/leave", "", nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("leave: got %v, want 202", r)
	}
	if got := decode[map[string]any](t, r); got["status"] != "leaving" {
		t.Fatalf("leave: got %v, want status leaving", got)
	}
	select {
	case <-a.Done():
	case <-time.After(60 * time.Second):
		t.Fatalf("%s has not stopped 60s after leaving", leaving.Name)
	}
	c.Stop(leaving.Index) // already stopped: marks it down in the test cluster

	var rest []*testcluster.Node
	for _, n := range c.Nodes() {
		if n != leaving {
			rest = append(rest, n)
		}
	}
	// The two left are the servers; the voter set is kept odd
	// (consensus/voters.go), so autopilot may demote one of them soon.
	want := names(rest...)
	for _, n := range rest {
		waitServers(t, n, want...)
	}
	testcluster.Eventually(t, 30*time.Second, func() error {
		ms, err := membersOf(leader)
		if err != nil {
			return err
		}
		if m, ok := ms[leaving.Name]; ok && m.Status != "left" {
			return fmt.Errorf("%s sees %s as %q, want left or forgotten", leader.Name, leaving.Name, m.Status)
		}
		st, err := statusOf(leader)
		if err != nil {
			return err
		}
		if servers := len(st.Raft.Voters) + len(st.Raft.NonVoters); st.Members != 2 || servers != 2 || slices.Contains(st.Raft.NonVoters, leaving.Name) {
			return fmt.Errorf("got %d members, voters %v and non-voters %v; want 2 members, the 2 others as servers", st.Members, st.Raft.Voters, st.Raft.NonVoters)
		}
		return nil
	})

	// A restart policy would start the node that left again: it refuses,
	// with its data; --rejoin brings it back.
	if err := c.TryRestart(leaving.Index, nil); !errors.Is(err, agent.ErrLeft) || !strings.Contains(err.Error(), "--rejoin") {
		t.Fatalf("restart after leaving: got %v, want a refusal that says --rejoin", err)
	}
	testcluster.Eventually(t, 10*time.Second, func() error { // the OS may hold a port briefly
		return c.TryRestart(leaving.Index, func(cfg *agent.Config) { cfg.Rejoin = true })
	})
	for _, n := range c.Nodes() {
		waitVoters(t, n, all...)
	}
}
