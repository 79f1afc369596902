package locks

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"shoal/internal/moduletest"
	"shoal/modules"
)

// testNode is a provisioned Locks whose fake Raft applies every command
// synchronously to the module itself, with increasing Raft indexes and a
// command clock the test controls (or the real clock, with realClock).
type testNode struct {
	locks *Locks
	reg   *prometheus.Registry
	raft  *moduletest.Raft

	mu        sync.Mutex // serialises commands, as the FSM goroutine does
	index     uint64
	now       time.Time
	realClock bool
	ops       []byte // every op applied, in order
	// before, if set, runs (under mu) before each command is applied; a
	// test uses it to slip other commands in first.
	before func(op byte, payload []byte)

	stop func() // stops the module once; also run at cleanup
}

var testEpoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// newTestNode provisions and starts a Locks with cfg and stops it at
// cleanup.
func newTestNode(t *testing.T, cfg Config) *testNode {
	t.Helper()
	n := &testNode{locks: new(Locks), now: testEpoch}
	n.raft = &moduletest.Raft{
		ApplyFunc: func(ctx context.Context, op byte, payload []byte) (modules.Applied, error) {
			if err := ctx.Err(); err != nil {
				return modules.Applied{}, err
			}
			return n.apply(op, payload)
		},
		AppliedIndexFunc: func() uint64 {
			n.mu.Lock()
			defer n.mu.Unlock()
			return n.index
		},
	}
	c := cfg
	host := moduletest.NewHost(t, moduletest.WithConfig(&c), moduletest.WithRaft(n.raft))
	n.reg = host.Registry()
	n.stop = moduletest.Start(t, n.locks, host)
	return n
}

// apply applies one command at the next Raft index and the command clock.
func (n *testNode) apply(op byte, payload []byte) (modules.Applied, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.before != nil {
		before := n.before
		n.before = nil // one shot: it may apply commands itself
		before(innerOp(op, payload), payload)
	}
	return n.applyLocked(op, payload)
}

// innerOp is the op a command carries: an opCapped's inner op, or op.
// Tests name the ops they watch for, capped or not.
func innerOp(op byte, payload []byte) byte {
	if op == opCapped {
		if _, inner, _, err := decodeCapped(payload); err == nil {
			return inner
		}
	}
	return op
}

func (n *testNode) applyLocked(op byte, payload []byte) (modules.Applied, error) {
	n.index++
	n.ops = append(n.ops, innerOp(op, payload))
	now := n.now
	if n.realClock {
		now = time.Now()
	}
	res, err := n.locks.ApplyCommand(modules.Command{Index: n.index, Time: now, Op: op, Payload: payload})
	if err != nil {
		return modules.Applied{Index: n.index}, err
	}
	return modules.Applied{Index: n.index, Result: res}, nil
}

// advance moves the command clock.
func (n *testNode) advance(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.now = n.now.Add(d)
}

// opsApplied returns how many commands with op were applied.
func (n *testNode) opsApplied(op byte) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, o := range n.ops {
		if o == op {
			c++
		}
	}
	return c
}

// serve mounts the module under /v1 on a test server. Stop runs first at
// cleanup: it ends waiting requests, which closing the server would wait for.
func (n *testNode) serve(t *testing.T) *httptest.Server {
	t.Helper()
	return moduletest.Serve(t, n.locks, n.stop)
}
