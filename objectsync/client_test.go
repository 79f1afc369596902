package objectsync

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"shoal/internal/testcluster"
	"shoal/objectsync/client"
	"shoal/objectsync/internal/document"
)

// TestClient_ReconnectResumes: the Go client loses its node and comes back
// with have_version (or, subscribed by a pattern, have_versions): patches
// only when its version is still in the history; never a version back,
// even from a node that restarted and lags.
func TestClient_ReconnectResumes(t *testing.T) {
	c := newCluster(t, nil) // history 16
	writer := c.Node(0)
	for v := 1; v <= 3; v++ {
		putObject(t, writer, "rc", v, padded(v))
	}
	cl := dial(t, c.Node(2))
	if err := cl.Subscribe("rc"); err != nil {
		t.Fatal(err)
	}
	// The same by a pattern: resumed with have_versions.
	clp := dial(t, c.Node(2))
	if err := clp.Subscribe("r*"); err != nil {
		t.Fatal(err)
	}
	want := func(v int) []byte {
		b, _ := document.Object([]byte(padded(v)), 0)
		return b
	}
	awaitState(t, cl, "rc", "3", want(3))
	awaitState(t, clp, "rc", "3", want(3))
	before, beforeP := cl.Stats(), clp.Stats()

	restartWhileWriting := func(from, to int) {
		t.Helper()
		c.Stop(2)
		testcluster.Eventually(t, 10*time.Second, func() error {
			if c.Leader() == nil {
				return fmt.Errorf("no leader")
			}
			return nil
		})
		w := c.Leader()
		for v := from; v <= to; v++ {
			putObject(t, w, "rc", v, padded(v))
		}
		c.Restart(2)
		awaitState(t, cl, "rc", fmt.Sprint(to), want(to))
		awaitState(t, clp, "rc", fmt.Sprint(to), want(to))
	}

	// Inside the history: 5 patches, no full object. On a loaded machine
	// the client may reconnect while the restarted node still replays its
	// log below the client's version: the node then sends the object
	// whole (never a version back), which is also correct.
	restartWhileWriting(4, 8)
	resumedBy := func(how string, before, mid client.Stats) {
		t.Helper()
		resumed := mid.Objects == before.Objects && mid.Patches == before.Patches+5
		resent := mid.Objects == before.Objects+1
		if !(resumed || resent) || mid.Connects != before.Connects+1 || mid.Violations != 0 || mid.Regressions != 0 {
			t.Fatalf("%s, after a short outage: %+v (before %+v), want 5 patches and no object (or the object once, resent by a node still replaying)", how, mid, before)
		}
		if !resumed {
			t.Logf("%s: the client reconnected while the node replayed: %+v", how, mid)
		}
	}
	mid, midP := cl.Stats(), clp.Stats()
	resumedBy("by id", before, mid)
	resumedBy("by a pattern", beforeP, midP)
	// Outside the history of a caught-up node it would be the full object
	// (TestCluster_ResumeWithHaveVersion checks that frame by frame); a
	// restarted node replays its log, so the client may instead be fed
	// every patch as the node catches up. Either way: the same bytes,
	// contiguous, never a version back.
	restartWhileWriting(9, 40)
	after, afterP := cl.Stats(), clp.Stats()
	if after.Violations != 0 || after.Regressions != 0 || after.Connects != mid.Connects+1 {
		t.Fatalf("after a long outage: %+v", after)
	}
	if afterP.Violations != 0 || afterP.Regressions != 0 || afterP.Connects != midP.Connects+1 {
		t.Fatalf("by a pattern, after a long outage: %+v", afterP)
	}
	t.Logf("long outage caught up by %d objects and %d patches", after.Objects-mid.Objects, after.Patches-mid.Patches)
}

// TestClient_Producer: the Go client as a producer on demand, with a
// failure retried.
func TestClient_Producer(t *testing.T) {
	c := newCluster(t, nil)
	prod := dial(t, c.Node(0))
	var mu sync.Mutex
	calls := map[string]int{}
	err := prod.Produce([]string{"gp-*"}, func(ctx context.Context, id string) (any, any, bool, error) {
		mu.Lock()
		calls[id]++
		n := calls[id]
		mu.Unlock()
		if id == "gp-flaky" && n == 1 {
			return nil, nil, false, errors.New("not today")
		}
		return n, map[string]any{"id": id, "call": n}, false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sub := dial(t, c.Node(2))
	if err := sub.Subscribe("gp-7"); err != nil {
		t.Fatal(err)
	}
	awaitState(t, sub, "gp-7", "1", []byte(`{"call":1,"id":"gp-7"}`))
	if err := sub.Subscribe("gp-flaky"); err != nil {
		t.Fatal(err)
	}
	awaitState(t, sub, "gp-flaky", "2", []byte(`{"call":2,"id":"gp-flaky"}`))
}
