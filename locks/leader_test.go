package locks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"shoal/internal/testcluster"
	"shoal/modules"
)

// errNotYet is a condition not met yet, for testcluster.Eventually.
var errNotYet = errors.New("not yet")

func TestLeader_RearmsThenExpires(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	n.mu.Lock()
	n.realClock = true
	n.mu.Unlock()
	n.mustCreate(t, "s", 1)
	n.grant(t, slot("s", "short").withTTL(50*time.Millisecond))
	w := n.locks.watch(42)
	if r, _, err := n.acq(t, slot("s", "next").waiting(time.Hour).withTTL(time.Hour).withNonce(42)); err != nil || !r.queued {
		t.Fatalf("waiter: %+v, %v", r, err)
	}
	n.locks.LeadershipChanged(true)
	testcluster.Eventually(t, 10*time.Second, func() error {
		if got := n.holderIDs(kindSemaphore, "s"); !slices.Equal(got, []string{"next"}) {
			return fmt.Errorf("holders %v", got)
		}
		return nil
	})
	if n.opsApplied(opRearm) != 1 {
		t.Fatalf("expired without re-arming first")
	}
	if o := n.locks.take(w); o.kind != outGranted {
		t.Fatalf("waiter outcome %+v", o)
	}
	if !n.locks.Status().(Status).Expiring {
		t.Fatalf("status does not report the expiry loop")
	}
	// A lease renewed before its deadline does not expire; one granted
	// later with a short ttl does.
	n.grant(t, slot("s", "next").withTTL(time.Hour))
	n.mustCreate(t, "t", 1)
	n.grant(t, slot("t", "brief").withTTL(20*time.Millisecond))
	testcluster.Eventually(t, 10*time.Second, func() error {
		if got := n.holderIDs(kindSemaphore, "t"); len(got) != 0 {
			return fmt.Errorf("holders of t %v", got)
		}
		return nil
	})
	if got := n.holderIDs(kindSemaphore, "s"); !slices.Equal(got, []string{"next"}) {
		t.Fatalf("a renewed lease expired: %v", got)
	}

	n.locks.LeadershipChanged(false)
	testcluster.Eventually(t, 10*time.Second, func() error {
		if n.locks.Status().(Status).Expiring {
			return errNotYet
		}
		return nil
	})
	// A second term starts a new loop, which re-arms again.
	n.locks.LeadershipChanged(true)
	testcluster.Eventually(t, 10*time.Second, func() error {
		if n.opsApplied(opRearm) != 2 {
			return errNotYet
		}
		return nil
	})
}

func TestLeader_RetriesAFailedRearmAndStopEndsTheLoop(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	apply := n.raft.ApplyFunc
	failures := 0
	n.raft.ApplyFunc = func(ctx context.Context, op byte, payload []byte) (modules.Applied, error) {
		if op == opRearm && failures < 2 {
			failures++
			return modules.Applied{}, fmt.Errorf("no leader")
		}
		return apply(ctx, op, payload)
	}
	n.locks.LeadershipChanged(true)
	testcluster.Eventually(t, 10*time.Second, func() error {
		if n.opsApplied(opRearm) != 1 {
			return errNotYet
		}
		return nil
	})
	n.stop() // returns only once the loop has
	if n.locks.Status().(Status).Expiring {
		t.Fatalf("the loop runs after Stop")
	}
	n.locks.LeadershipChanged(true) // after Stop: ignored
	if n.locks.Status().(Status).Expiring {
		t.Fatalf("a loop started after Stop")
	}
}

func TestDue_FindsDueItemsAndNextDeadline(t *testing.T) {
	st := newState()
	fx := &effects{index: 1}
	st.create(createCmd{name: "s", limit: 3}, 0, fx)
	st.acquire(acquireCmd{kind: kindSemaphore, name: "s", holder: "a", ttl: 10, nonce: 1}, 0, fx)
	st.acquire(acquireCmd{kind: kindSemaphore, name: "s", holder: "b", ttl: 30, nonce: 2}, 0, fx)
	st.acquire(acquireCmd{kind: kindLock, name: "l", holder: "w", mode: modeWrite, ttl: 100, nonce: 3}, 0, fx)
	st.acquire(acquireCmd{kind: kindLock, name: "l", holder: "q", mode: modeRead, ttl: 100, wait: 20, nonce: 4}, 0, fx)
	items, next, ok := st.due(20, 10)
	if len(items) != 2 || !ok || next != 30 {
		t.Fatalf("due at 20: %+v, next %d %v", items, next, ok)
	}
	items, _, _ = st.due(20, 1)
	if len(items) != 1 {
		t.Fatalf("limit not applied: %d items", len(items))
	}
	if items, next, ok := st.due(0, 10); len(items) != 0 || next != 10 || !ok {
		t.Fatalf("due at 0: %+v, next %d %v", items, next, ok)
	}
}
