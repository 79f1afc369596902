package kv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

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

// fakeHost is a modules.Host for unit tests.
type fakeHost struct {
	name   string
	cfg    modules.Config
	reg    *prometheus.Registry
	dir    string
	logger *slog.Logger
	gossip modules.Gossip
}

func (h *fakeHost) NodeName() string                  { return h.name }
func (h *fakeHost) Logger() *slog.Logger              { return h.logger }
func (h *fakeHost) Registerer() prometheus.Registerer { return h.reg }
func (h *fakeHost) DataDir() string                   { return h.dir }
func (h *fakeHost) Config() modules.Config            { return h.cfg }
func (h *fakeHost) Raft() modules.Raft                { return nil }
func (h *fakeHost) Gossip() modules.Gossip            { return h.gossip }

// testNode is one started KV on a fakeNet.
type testNode struct {
	t    *testing.T
	net  *fakeNet
	name string
	dir  string
	cfg  Config
	kv   *KV
	reg  *prometheus.Registry
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
	n.reg = prometheus.NewRegistry()
	cfg := n.cfg
	host := &fakeHost{name: n.name, cfg: &cfg, reg: n.reg, dir: n.dir, logger: testLogger(n.t).With("node", n.name),
		gossip: fakeGossip{net: n.net, name: n.name}}
	if err := n.kv.Provision(host); err != nil {
		n.t.Fatalf("provision %s: %v", n.name, err)
	}
	if err := n.kv.Start(context.Background()); err != nil {
		n.t.Fatalf("start %s: %v", n.name, err)
	}
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.kv.Stop(ctx); err != nil {
		n.t.Errorf("stop %s: %v", n.name, err)
	}
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
	e, err := n.kv.write(key, value, false)
	if err != nil {
		n.t.Fatalf("put %q on %s: %v", key, n.name, err)
	}
	return e.Version
}

// del deletes a key through the module.
func (n *testNode) del(key string) Version {
	n.t.Helper()
	e, err := n.kv.write(key, "", true)
	if err != nil {
		n.t.Fatalf("delete %q on %s: %v", key, n.name, err)
	}
	return e.Version
}

// get reads a key from the node's store.
func (n *testNode) get(key string) (string, bool) {
	n.t.Helper()
	e, ok, err := n.kv.st.get(key)
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

// serve mounts the node's routes under /v1 on a test server.
func (n *testNode) serve() *httptest.Server {
	r := chi.NewRouter()
	r.Route("/v1", n.kv.Routes)
	srv := httptest.NewServer(r)
	// Stop first: it ends the streams that srv.Close would wait for.
	n.t.Cleanup(func() {
		n.stop()
		srv.Close()
	})
	return srv
}

// waitSynced waits until every node is synced.
func waitSynced(t *testing.T, nodes ...*testNode) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
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
	eventually(t, 30*time.Second, func() error {
		want := nodes[0].digest()
		for _, n := range nodes[1:] {
			if got := n.digest(); got != want {
				return fmt.Errorf("%s has digest %x, %s has %x", n.name, got, nodes[0].name, want)
			}
		}
		return nil
	})
}

// eventually polls f until it returns nil or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v: %v", timeout, err)
		}
		time.Sleep(wait) // polling interval, not a wait for an event
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// testLogger writes to t.Log until the test ends.
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.done)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	mu     sync.Mutex
	t      *testing.T
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) done() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
}

var _ io.Writer = (*testWriter)(nil)

// metricValue returns the value of a counter or gauge whose labels
// include all of labels (name=value pairs), summed, or of a histogram's
// sample count.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !hasLabel(m, labels[i], labels[i+1]) {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				total += m.GetCounter().GetValue()
			case m.Gauge != nil:
				total += m.GetGauge().GetValue()
			case m.Histogram != nil:
				total += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return total
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
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
				if _, err := n.kv.write(fmt.Sprintf("%s%d", prefix, i), "value", false); err != nil {
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
