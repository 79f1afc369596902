package acl

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

// testNode is a provisioned ACL whose fake Raft applies every command
// synchronously to the module itself, with increasing Raft indexes and a
// command clock the test controls, which is also the module's own clock.
type testNode struct {
	acl  *ACL
	reg  *prometheus.Registry
	raft *moduletest.Raft

	mu    sync.Mutex // serialises commands, as the FSM goroutine does
	index uint64
	now   time.Time

	stop func()
}

var testEpoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func newTestNode(t *testing.T, cfg Config) *testNode {
	t.Helper()
	n := &testNode{acl: new(ACL), now: testEpoch}
	n.acl.now = n.clock
	n.raft = &moduletest.Raft{
		ApplyFunc: func(ctx context.Context, op byte, payload []byte) (modules.Applied, error) {
			if err := ctx.Err(); err != nil {
				return modules.Applied{}, err
			}
			return n.apply(op, payload)
		},
	}
	c := cfg
	host := moduletest.NewHost(t, moduletest.WithConfig(&c), moduletest.WithRaft(n.raft))
	n.reg = host.Registry()
	n.stop = moduletest.Start(t, n.acl, host)
	return n
}

func (n *testNode) clock() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.now
}

func (n *testNode) apply(op byte, payload []byte) (modules.Applied, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.index++
	res, err := n.acl.ApplyCommand(modules.Command{Index: n.index, Time: n.now, Op: op, Payload: payload})
	if err != nil {
		return modules.Applied{Index: n.index}, err
	}
	return modules.Applied{Index: n.index, Result: res}, nil
}

func (n *testNode) advance(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.now = n.now.Add(d)
}

func (n *testNode) serve(t *testing.T) *httptest.Server {
	t.Helper()
	return moduletest.Serve(t, n.acl, n.stop)
}
