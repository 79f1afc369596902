package consensus_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"shoal/internal/testcluster"
)

// TestCluster_RestartedFollowerIsReadyOnlyOnceCaughtUp restarts a
// follower under a write load and polls it the way a load balancer would:
// whenever it says it is ready, a read on it must hold every write
// acknowledged before it stopped (a restarted node restores an old
// snapshot and learns what is committed only from the leader).
func TestCluster_RestartedFollowerIsReadyOnlyOnceCaughtUp(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("register"))
	w := startWriters(c, 2)
	defer w.finish()
	waitAcked := func(n int) {
		t.Helper()
		target := w.count() + n
		testcluster.Eventually(t, 20*time.Second, func() error {
			if got := w.count(); got < target {
				return fmt.Errorf("%d writes acknowledged, want %d", got, target)
			}
			return nil
		})
	}
	waitAcked(50)
	f := c.Followers()[0]
	c.Stop(f.Index)
	w.mu.Lock()
	before := append([]string(nil), w.acked...)
	w.mu.Unlock()
	waitAcked(50)
	c.Restart(f.Index)

	ready := func() bool {
		resp, err := http.Get(f.URL() + "/v1/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	checks := 0
	testcluster.Eventually(t, 30*time.Second, func() error {
		if !ready() {
			return fmt.Errorf("%s is not ready yet", f.Name)
		}
		// Ready first, then read: the state only grows after that.
		if err := containsAll(f, before); err != nil {
			t.Fatalf("%s said it was ready, then answered older state than before its restart: %v", f.Name, err)
		}
		checks++
		if checks < 20 { // keep reading for a while after the first ready
			return fmt.Errorf("checked %d reads", checks)
		}
		return nil
	})
}
