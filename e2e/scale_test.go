//go:build e2e

package e2e

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// testScaleOutAndIn adds a fourth node with docker-compose.node4.yml, as
// docs/deploy.md tells: it joins, catches up and serves as a non-voter (a
// read replica: the voter set stays odd, three of four). Then it
// leaves as the same document tells (shoal leave, remove the container):
// its restart policy starts it again in between, and it must refuse to
// start on the data of a node that left instead of joining again; the
// cluster is back to three voters.
func testScaleOutAndIn(t *testing.T, c *cluster) {
	start := time.Now()
	if _, err := c.compose4.run(2*time.Minute, "up", "-d", "shoal4"); err != nil {
		t.Fatalf("compose up shoal4: %v", err)
	}
	n4 := c.findNode(t, "shoal4")
	c.add(n4)
	leader := c.waitHealthy(t, 90*time.Second) // four servers, three voters
	t.Logf("shoal4 joined and is a non-voter %v after compose up; %s leads", time.Since(start).Round(time.Millisecond), leader)
	c.sameLogEverywhere(t, "rolling", 30*time.Second) // it caught up with what was written before it came

	start = time.Now()
	if res, err := c.exec(n4, "leave"); err != nil {
		t.Fatalf("shoal leave in shoal4: %v", err)
	} else {
		t.Logf("shoal leave: %s", strings.TrimSpace(res.stdout))
	}
	// The restart policy (unless-stopped) starts the container again once
	// the node has left: the node refuses, with the reason in its log.
	eventually(t, 60*time.Second, "shoal4 restarted by Docker and refusing to start", func() error {
		res, err := run(30*time.Second, nil, "docker", "logs", n4.container)
		if err != nil {
			return err
		}
		if !strings.Contains(res.stdout+res.stderr, "this node left its cluster") {
			return errors.New("no refusal in shoal4's log yet")
		}
		return nil
	})
	c.remove(n4) // it refuses to run: ask the three others
	if st, err := c.leader(t, 10*time.Second).status(); err != nil || len(st.Raft.Voters)+len(st.Raft.NonVoters) != 3 {
		t.Errorf("after shoal4 left and was restarted: voters %v, non-voters %v (%v); want the three others only", st.Raft.Voters, st.Raft.NonVoters, err)
	}
	if _, err := c.compose4.run(time.Minute, "rm", "-sf", "shoal4"); err != nil {
		t.Errorf("compose rm shoal4: %v", err)
	}
	l := c.waitHealthy(t, 60*time.Second) // three voters again, three alive members
	t.Logf("shoal4 left and the cluster is back to three voters %v later; %s leads", time.Since(start).Round(time.Millisecond), l)
}
