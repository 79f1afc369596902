package logstream

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

// testNode is a provisioned Log whose fake Raft applies every command
// synchronously to the module itself, with increasing Raft indexes and a
// clock the test controls.
type testNode struct {
	log  *Log
	reg  *prometheus.Registry
	raft *moduletest.Raft

	mu        sync.Mutex // serialises commands, as the FSM goroutine does
	index     uint64
	now       time.Time
	readIndex int // calls of ReadIndex

	stop func() // stops the module once; also run at cleanup
}

var testEpoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// newTestNode provisions and starts a Log with cfg and stops it at cleanup.
func newTestNode(t *testing.T, cfg Config) *testNode {
	t.Helper()
	n := &testNode{log: new(Log), now: testEpoch}
	n.raft = &moduletest.Raft{
		ApplyFunc: func(_ context.Context, op byte, payload []byte) (modules.Applied, error) {
			return n.apply(op, payload)
		},
		ReadIndexFunc: func(context.Context) error {
			n.mu.Lock()
			defer n.mu.Unlock()
			n.readIndex++
			return nil
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
	n.stop = moduletest.Start(t, n.log, host)
	return n
}

// apply applies one command at the next Raft index and the current time.
func (n *testNode) apply(op byte, payload []byte) (modules.Applied, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.index++
	res, err := n.log.ApplyCommand(modules.Command{Index: n.index, Time: n.now, Op: op, Payload: payload})
	if err != nil {
		return modules.Applied{}, err
	}
	return modules.Applied{Index: n.index, Result: res}, nil
}

// readIndexCalls returns how often ReadIndex was called.
func (n *testNode) readIndexCalls() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.readIndex
}

// advance moves the command clock.
func (n *testNode) advance(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.now = n.now.Add(d)
}

// serve mounts the module under /v1 on a test server. Stop runs first at
// cleanup: it ends the streams, which closing the server would wait for.
func (n *testNode) serve(t *testing.T) *httptest.Server {
	t.Helper()
	return moduletest.Serve(t, n.log, n.stop)
}
