//go:build e2e

package e2e

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"shoal/client"
)

// testSemaphoreAbandonedAcquire pins down one way a holder can lose a
// lease behind its back: an acquire the client gave up on, which the node
// keeps submitting and which then commits as a renewal of the holder's
// existing hold, must not release that hold when the node cancels the
// abandoned request. A node that is cut off makes the timing deterministic:
// it keeps retrying the forward to the leader until the partition heals.
func testSemaphoreAbandonedAcquire(t *testing.T, c *cluster) {
	if !c.hasModule("locks") {
		t.Skipf("the locks module is not enabled on this cluster (its modules: %v)", c.modules)
	}
	const name, holder = "abandoned", "abandoned-h1"
	leader := c.leader(t, 10*time.Second)
	cut := c.others(leader)[0]
	majority := c.others(cut)

	var lease client.Lease
	eventually(t, 20*time.Second, "acquire "+name, func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		defer cancel()
		lease, err = leader.cl.AcquireSemaphore(ctx, name, holder, client.AcquireOptions{TTL: semTTL, CreateLimit: 1})
		return err
	})
	t.Logf("%s holds %s with token %d (TTL %v)", holder, name, lease.Token, semTTL)

	c.disconnect(t, cut)
	healed := false
	defer func() {
		if !healed {
			_, _ = docker("network", "connect", "--alias", cut.name, c.network, cut.container)
		}
	}()
	eventually(t, 15*time.Second, cut.name+" knows no leader", func() error {
		res, err := c.exec(cut, "status", "--json")
		if err != nil {
			return err
		}
		st, err := statusJSON(res.stdout)
		if err != nil || st.Leader != "" {
			return errors.New(cut.name + " still names a leader")
		}
		return nil
	})
	// The same holder acquires again through the cut-off node (reached
	// through a side door) and gives up after 2 s; the node goes on
	// submitting the command until it finds a leader.
	side, closeSide := c.sideDoor(t, cut)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := side.AcquireSemaphore(ctx, name, holder, client.AcquireOptions{TTL: semTTL})
	cancel()
	if err == nil {
		t.Fatalf("an acquire on the cut-off %s succeeded", cut)
	}
	t.Logf("the client gave up its acquire on the cut-off %s: %v", cut, err)
	closeSide()
	healed = true
	c.heal(t, cut) // the node's submission reaches the leader now, and commits as a renewal

	// Whatever the abandoned request did, the hold the client was granted
	// (and never released) must still be there, with its token.
	deadline := time.Now().Add(15 * time.Second) // the node's submission and cancel have run by then
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		sem, err := majority[0].cl.Semaphore(ctx, name, true)
		cancel()
		if err == nil && !slices.ContainsFunc(sem.Holders, func(h client.Holder) bool { return h.Holder == holder && h.Token == lease.Token }) {
			t.Fatalf("%s lost its hold on %s (token %d) although it never released it and its lease runs %v: holders now %v",
				holder, name, lease.Token, semTTL, sem.Holders)
		}
		time.Sleep(500 * time.Millisecond) // paces the reads while the node's retries run out
	}
	eventually(t, 20*time.Second, "delete semaphore "+name, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		defer cancel()
		return majority[0].cl.DeleteSemaphore(ctx, name)
	})
}
