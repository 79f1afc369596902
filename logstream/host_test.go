package logstream

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
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
	name string
	log  *Log
	reg  *prometheus.Registry
	raft *moduletest.Raft

	mu        sync.Mutex // serialises commands, as the FSM goroutine does
	index     uint64
	now       time.Time
	readIndex int // calls of ReadIndex

	stop func() // stops the module once; also run at cleanup

	dir     string            // the module's data directory
	history []modules.Command // every command applied, for replays
}

var testEpoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// newTestNode provisions and starts a Log with cfg and stops it at cleanup.
func newTestNode(t *testing.T, cfg Config) *testNode {
	t.Helper()
	return newTestNodeIn(t, cfg, t.TempDir())
}

// newTestNodeIn is newTestNode on a given data directory: a node restarted
// on another's files.
func newTestNodeIn(t *testing.T, cfg Config, dir string) *testNode {
	t.Helper()
	n := &testNode{log: new(Log), now: testEpoch, dir: dir}
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
	if c.SegmentBytes == 0 {
		c.SegmentBytes = 4 << 10 // small segments: rolls and deletions all the time
		c.RetentionInterval = time.Hour
		c.ReadCacheBytes = 1 << 20
	}
	n.name = fmt.Sprintf("node-%d", testNodes.Add(1))
	host := moduletest.NewHost(t, moduletest.WithConfig(&c), moduletest.WithRaft(n.raft),
		moduletest.WithName(n.name), moduletest.WithCluster(testCluster(n.name)), moduletest.WithDataDir(dir))
	testPeers.Store(n.name, n.log)
	t.Cleanup(func() { testPeers.Delete(n.name) })
	n.reg = host.Registry()
	n.stop = moduletest.Start(t, n.log, host)
	return n
}

// testPeers are the test nodes of the process by name, so that one can
// fetch another's snapshot files through a fake cluster.
var (
	testPeers sync.Map // string → *Log
	testNodes atomic.Int64
)

// testCluster connects node to every other test node: OpenStream serves
// the stream with the other node's HandlePeerStream over a pipe.
func testCluster(node string) *moduletest.Cluster {
	return &moduletest.Cluster{
		ServersFunc: func() []modules.Server {
			var out []modules.Server
			testPeers.Range(func(k, _ any) bool {
				out = append(out, modules.Server{Name: k.(string), Local: k.(string) == node, Alive: true})
				return true
			})
			return out
		},
		OpenStreamFunc: func(ctx context.Context, peer, name string) (net.Conn, error) {
			l, ok := testPeers.Load(peer)
			if !ok {
				return nil, fmt.Errorf("no test node %s: %w", peer, modules.ErrNotDelivered)
			}
			client, server := net.Pipe()
			go l.(*Log).HandlePeerStream(context.Background(), node, name, server)
			return client, nil
		},
	}
}

// apply applies one command at the next Raft index and the current time.
func (n *testNode) apply(op byte, payload []byte) (modules.Applied, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.index++
	cmd := modules.Command{Index: n.index, Time: n.now, Op: op, Payload: slices.Clone(payload)}
	n.history = append(n.history, cmd)
	res, err := n.log.ApplyCommand(cmd)
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
