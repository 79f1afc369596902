package kv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"shoal/internal/moduletest"
	"shoal/internal/testcluster"
	"shoal/internal/testlog"
	"shoal/modules"
)

// fakeNet is an in-memory gossip layer joining test nodes: Broadcast and
// SendTo call the other nodes' NotifyMsg directly (which only queues), and
// a node can be taken down or cut off from others.
type fakeNet struct {
	mu             sync.Mutex
	nodes          map[string]*KV
	cut            map[string]bool // node → partitioned from all others
	dropBroadcasts bool
	sent           map[msgType]int // bytes sent per message type
}

func newFakeNet() *fakeNet {
	return &fakeNet{nodes: map[string]*KV{}, cut: map[string]bool{}, sent: map[msgType]int{}}
}

var errUnreachable = errors.New("unreachable")

// reachable returns the node called to if from can reach it.
func (n *fakeNet) reachable(from, to string) *KV {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := n.nodes[to]
	if k == nil || n.cut[from] != n.cut[to] && (n.cut[from] || n.cut[to]) {
		return nil
	}
	return k
}

func (n *fakeNet) setCut(name string, cut bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[name] = cut
}

func (n *fakeNet) bytesSent(t msgType) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sent[t]
}

type fakeGossip struct {
	net  *fakeNet
	name string
}

func (g fakeGossip) Broadcast(key string, msg []byte) error {
	if 1+len(msg) > 1200 {
		return errors.New("message too large")
	}
	g.net.mu.Lock()
	drop := g.net.dropBroadcasts
	names := make([]string, 0, len(g.net.nodes))
	for name := range g.net.nodes {
		names = append(names, name)
	}
	g.net.mu.Unlock()
	if drop {
		return nil
	}
	for _, name := range names {
		if name == g.name {
			continue
		}
		if k := g.net.reachable(g.name, name); k != nil {
			k.NotifyMsg(msg)
		}
	}
	return nil
}

// Spread delivers like Broadcast: the fake network has no gossip rounds
// for a push to beat.
func (g fakeGossip) Spread(key string, msg []byte, fanout int) error {
	return g.Broadcast(key, msg)
}

func (g fakeGossip) SendTo(ctx context.Context, node string, msg []byte) error {
	k := g.net.reachable(g.name, node)
	if k == nil {
		return fmt.Errorf("send to %s: %w", node, errUnreachable)
	}
	g.net.mu.Lock()
	g.net.sent[msgType(firstByte(msg))] += len(msg)
	g.net.mu.Unlock()
	k.NotifyMsg(msg)
	return nil
}

// SendBestEffort delivers like SendTo: the fake network loses nothing
// that reaches a reachable node.
func (g fakeGossip) SendBestEffort(node string, msg []byte) error {
	return g.SendTo(context.Background(), node, msg)
}

func (g fakeGossip) Members() []modules.Member {
	g.net.mu.Lock()
	defer g.net.mu.Unlock()
	var out []modules.Member
	for name := range g.net.nodes {
		if name != g.name && g.net.cut[name] != g.net.cut[g.name] {
			continue
		}
		out = append(out, modules.Member{Name: name, Modules: []string{"kv"}, Local: name == g.name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// testNode is one started KV on a fakeNet.
type testNode struct {
	t    *testing.T
	net  *fakeNet
	name string
	dir  string
	cfg  Config
	kv   *KV
	reg  *prometheus.Registry
	// stopKV stops kv; calls after the first do nothing.
	stopKV func()
}

// testConfig is the default configuration with a fast gossip interval.
func testConfig() Config {
	c := DefaultConfig()
	c.GossipInterval = 10 * time.Millisecond
	return c
}

// startNode starts a node called name on net with cfg, in a fresh data
// directory, and stops it at cleanup.
func startNode(t *testing.T, net *fakeNet, name string, cfg Config) *testNode {
	t.Helper()
	n := &testNode{t: t, net: net, name: name, dir: t.TempDir(), cfg: cfg}
	n.start()
	t.Cleanup(n.stop)
	return n
}

// start provisions and starts a new KV on the node's directory.
func (n *testNode) start() {
	n.t.Helper()
	n.kv = new(KV)
	cfg := n.cfg
	host := moduletest.NewHost(n.t,
		moduletest.WithName(n.name),
		moduletest.WithConfig(&cfg),
		moduletest.WithDataDir(n.dir),
		moduletest.WithLogger(testlog.Logger(n.t, slog.LevelInfo).With("node", n.name)),
		moduletest.WithGossip(fakeGossip{net: n.net, name: n.name}))
	n.reg = host.Registry()
	n.stopKV = moduletest.Start(n.t, n.kv, host)
	n.net.mu.Lock() // as in the agent, a node joins once its modules run
	n.net.nodes[n.name] = n.kv
	n.net.mu.Unlock()
}

// stop stops the node (if running) and takes it off the network.
func (n *testNode) stop() {
	n.net.mu.Lock()
	if n.net.nodes[n.name] == n.kv {
		delete(n.net.nodes, n.name)
	}
	n.net.mu.Unlock()
	n.stopKV()
}

// restart stops the node and starts it again on the same data.
func (n *testNode) restart() {
	n.t.Helper()
	n.stop()
	n.start()
}

// put writes a key through the module, failing the test on error.
func (n *testNode) put(key, value string) Version {
	n.t.Helper()
	e, err := n.kv.write(writeOp{key: key, value: value})
	if err != nil {
		n.t.Fatalf("put %q on %s: %v", key, n.name, err)
	}
	return e.Version
}

// del deletes a key through the module.
func (n *testNode) del(key string) Version {
	n.t.Helper()
	e, err := n.kv.write(writeOp{key: key, deleted: true})
	if err != nil {
		n.t.Fatalf("delete %q on %s: %v", key, n.name, err)
	}
	return e.Version
}

// get reads a key from the node's store.
func (n *testNode) get(key string) (string, bool) {
	n.t.Helper()
	e, ok, err := n.kv.st.get(key, time.Now().UnixMilli())
	if err != nil {
		n.t.Fatalf("get %q on %s: %v", key, n.name, err)
	}
	return e.Value, ok
}

func (n *testNode) digest() uint64 {
	_, _, root := n.kv.st.counts()
	return root
}

func (n *testNode) live() int {
	live, _, _ := n.kv.st.counts()
	return live
}

// serve mounts the node's routes under /v1 on a test server. Stop runs
// first at cleanup: it ends the watches, which closing the server would
// wait for.
func (n *testNode) serve() *httptest.Server {
	return moduletest.Serve(n.t, n.kv, n.stop)
}

// waitSynced waits until every node is synced.
func waitSynced(t *testing.T, nodes ...*testNode) {
	t.Helper()
	testcluster.Eventually(t, 30*time.Second, func() error {
		for _, n := range nodes {
			if !n.kv.isSynced() {
				return fmt.Errorf("%s is not synced", n.name)
			}
		}
		return nil
	})
}

// waitConverged waits until every node has the same digest.
func waitConverged(t *testing.T, nodes ...*testNode) {
	t.Helper()
	testcluster.Eventually(t, 30*time.Second, func() error {
		want := nodes[0].digest()
		for _, n := range nodes[1:] {
			if got := n.digest(); got != want {
				return fmt.Errorf("%s has digest %x, %s has %x", n.name, got, nodes[0].name, want)
			}
		}
		return nil
	})
}

// putMany writes n keys prefix0..prefix(n-1) from 16 goroutines, so that
// their fsyncs are shared.
func putMany(t *testing.T, n *testNode, prefix string, count int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < count; i += 16 {
				if _, err := n.kv.write(writeOp{key: fmt.Sprintf("%s%d", prefix, i), value: "value"}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("put on %s: %v", n.name, err)
	}
}
