//go:build e2e

package e2e

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// testScaleOutAndIn adds a fourth node with docker-compose.node4.yml, as
// docs/deploy.md tells: it joins, catches up and becomes a voter. Then it
// leaves as the same document tells (restart policy off, shoal leave,
// remove the container), and the cluster is back to three voters.
func testScaleOutAndIn(t *testing.T, c *cluster) {
	start := time.Now()
	if _, err := c.compose4.run(2*time.Minute, "up", "-d", "shoal4"); err != nil {
		t.Fatalf("compose up shoal4: %v", err)
	}
	n4 := c.findNode(t, "shoal4")
	c.add(n4)
	leader := c.waitHealthy(t, 90*time.Second) // four voters: the leader promoted shoal4
	t.Logf("shoal4 joined and is a voter %v after compose up; %s leads", time.Since(start).Round(time.Millisecond), leader)
	c.sameLogEverywhere(t, "rolling", 30*time.Second) // it caught up with what was written before it came

	start = time.Now()
	if _, err := docker("update", "--restart=no", n4.container); err != nil {
		t.Fatalf("turn the restart policy of shoal4 off: %v", err)
	}
	if res, err := c.exec(n4, "leave"); err != nil {
		t.Fatalf("shoal leave in shoal4: %v", err)
	} else {
		t.Logf("shoal leave: %s", strings.TrimSpace(res.stdout))
	}
	eventually(t, 30*time.Second, "shoal4 exits after leaving", func() error {
		if c.running(n4) {
			return errors.New("shoal4 still runs")
		}
		return nil
	})
	res, err := docker("inspect", "--format", "{{.State.ExitCode}}", n4.container)
	if err != nil || strings.TrimSpace(res.stdout) != "0" {
		t.Errorf("shoal4 after leaving: exit code %q (%v), want 0", strings.TrimSpace(res.stdout), err)
	}
	if _, err := c.compose4.run(time.Minute, "rm", "-f", "shoal4"); err != nil {
		t.Errorf("compose rm shoal4: %v", err)
	}
	c.remove(n4)
	l := c.waitHealthy(t, 60*time.Second) // three voters again, three alive members
	t.Logf("shoal4 left and the cluster is back to three voters %v later; %s leads", time.Since(start).Round(time.Millisecond), l)
}
