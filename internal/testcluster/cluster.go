package testcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"shoal/internal/agent"
	"shoal/internal/faultnet"
	"shoal/internal/logging"
	"shoal/internal/testlog"
	"shoal/membership"
	"shoal/modules"
)

// Cluster is a set of in-process nodes.
type Cluster struct {
	t     testing.TB
	opts  options
	nodes []*Node
	// dirs holds the nodes' data directories. It is made before the
	// cleanup that stops the nodes is registered, so it is removed after
	// it: a directory removed under a running node fails the cleanup.
	dirs string
	logw io.Writer // to t.Log until the test ends
	// elections records every election any node won; the cluster's
	// cleanup fails the test if two nodes won the same term.
	elections *Elections
}

// Node is one node of a Cluster. Agent is nil while the node is down.
type Node struct {
	Index int
	Name  string
	Gate  *faultnet.Gate
	cfg   agent.Config

	mu    sync.Mutex
	agent *agent.Agent
}

// Agent returns the running agent, or nil if the node is down.
func (n *Node) Agent() *agent.Agent {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.agent
}

// URL is the node's HTTP base URL.
func (n *Node) URL() string { return "http://" + n.Addresses().HTTP }

// Up reports whether the node is running.
func (n *Node) Up() bool { return n.Agent() != nil }

// Option changes how a cluster is built.
type Option func(*options)

type options struct {
	modules     []string
	moduleCfgs  map[string]modules.Config
	snapshot    uint64
	token       string
	bootstrap   bool
	configure   func(i int, cfg *agent.Config)
	logLevel    string
	waitForVote bool
	secret      string
	logTee      io.Writer
}

// WithModules enables only the given modules (default: all registered).
func WithModules(ids ...string) Option { return func(o *options) { o.modules = ids } }

// WithModuleConfig sets one module's configuration on every node.
func WithModuleConfig(id string, cfg modules.Config) Option {
	return func(o *options) { o.moduleCfgs[id] = cfg }
}

// WithSnapshotThreshold sets Raft's snapshot threshold (tiny values force
// snapshots and restores from them).
func WithSnapshotThreshold(n uint64) Option { return func(o *options) { o.snapshot = n } }

// WithToken requires a bearer token on every node.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithoutBootstrap starts nodes that join gossip but form no cluster; the
// test bootstraps or adds them itself.
func WithoutBootstrap() Option { return func(o *options) { o.bootstrap = false } }

// WithClusterSecret gives every node the cluster secret: gossip encrypted,
// the cluster port under mutual TLS.
func WithClusterSecret(secret string) Option { return func(o *options) { o.secret = secret } }

// WithLogs also writes every node's logs to w (tests that check what the
// cluster logged). w must be safe for concurrent use.
func WithLogs(w io.Writer) Option { return func(o *options) { o.logTee = w } }

// WithConfig edits each node's agent configuration before it starts.
func WithConfig(f func(i int, cfg *agent.Config)) Option { return func(o *options) { o.configure = f } }

// New starts n nodes that form a cluster with --bootstrap-expect n, joined
// through node 0's gossip address, and waits until they have a leader that
// every node knows and all n are voters. The cluster is stopped in
// t.Cleanup.
func New(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	o := options{moduleCfgs: map[string]modules.Config{}, snapshot: 8192, bootstrap: true, waitForVote: true,
		logLevel: envOr("SHOAL_TEST_LOG", "warn")}
	for _, opt := range opts {
		opt(&o)
	}
	// The writer's cleanup is registered first, so it runs last: nodes
	// stop before logging does.
	c := &Cluster{t: t, opts: o, logw: testlog.Writer(t), elections: NewElections(), dirs: t.TempDir()}
	t.Cleanup(func() {
		c.stopAll()
		if err := c.elections.Check(); err != nil {
			t.Errorf("raft safety: %v", err)
		}
	})
	for i := 0; i < n; i++ {
		c.addNode(n, nil)
	}
	if o.bootstrap {
		c.WaitVoters(n)
	}
	return c
}

// AddNode starts one more node that joins the cluster through gossip (it
// does not bootstrap) and returns it; autopilot adds it as a non-voter and
// promotes it once it has caught up.
func (c *Cluster) AddNode() *Node {
	c.t.Helper()
	return c.addNode(0, nil)
}

// AddNodeWith is AddNode with the node's configuration edited by f before
// it starts (a node with another secret, say).
func (c *Cluster) AddNodeWith(f func(cfg *agent.Config)) *Node {
	c.t.Helper()
	return c.addNode(0, f)
}

// AddClient starts a light member (--role client): gossip and kv only,
// never in Raft, forwarding the requests of Raft modules to a server.
func (c *Cluster) AddClient() *Node {
	c.t.Helper()
	return c.addNode(0, func(cfg *agent.Config) { cfg.Role = membership.RoleClient })
}

func (c *Cluster) addNode(expect int, edit func(cfg *agent.Config)) *Node {
	c.t.Helper()
	i := len(c.nodes)
	name := fmt.Sprintf("node%d", i)
	logw := c.logw
	if c.opts.logTee != nil {
		logw = io.MultiWriter(c.logw, c.opts.logTee)
	}
	logger, err := logging.New(logw, "text", c.opts.logLevel)
	if err != nil {
		c.t.Fatalf("test logger: %v", err)
	}
	cfg := agent.DefaultConfig()
	cfg.NodeName = name
	dir, err := os.MkdirTemp(c.dirs, name+"-")
	if err != nil {
		c.t.Fatalf("data directory: %v", err)
	}
	cfg.DataDir = dir
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.GossipAddr = "127.0.0.1:0"
	cfg.Modules = c.opts.modules
	cfg.ModuleConfigs = c.opts.moduleCfgs
	cfg.SnapshotThreshold = c.opts.snapshot
	cfg.SnapshotInterval = 200 * time.Millisecond
	cfg.Token = c.opts.token
	cfg.ClusterSecret = c.opts.secret
	cfg.Local = true
	cfg.Logger = logger
	if c.opts.bootstrap {
		cfg.BootstrapExpect = expect
	}
	if i > 0 {
		cfg.Join = []string{c.nodes[0].Addresses().Gossip}
	}
	if c.opts.configure != nil {
		c.opts.configure(i, &cfg)
	}
	if edit != nil {
		edit(&cfg)
	}
	node := &Node{Index: i, Name: name, Gate: faultnet.NewGate()}
	cfg.Gate = node.Gate
	cfg.OnElected = func(term uint64) { c.elections.Won(name, term) }
	a, err := agent.New(cfg)
	if err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	// Restarts must come back on the same addresses: Raft's configuration
	// names them.
	cfg.HTTPAddr, cfg.RaftAddr, cfg.GossipAddr = a.HTTPAddr(), a.RaftAddr(), a.GossipAddr()
	node.cfg = cfg
	node.agent = a
	c.nodes = append(c.nodes, node)
	return node
}

// Nodes returns every node, up or down.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// Node returns node i.
func (c *Cluster) Node(i int) *Node { return c.nodes[i] }

// Up returns the nodes that are running.
func (c *Cluster) Up() []*Node {
	var up []*Node
	for _, n := range c.nodes {
		if n.Up() {
			up = append(up, n)
		}
	}
	return up
}

// Leader waits until the running nodes agree on one leader that is itself
// running and leading, and returns it.
func (c *Cluster) Leader() *Node {
	c.t.Helper()
	var leader *Node
	Eventually(c.t, 20*time.Second, func() error {
		var err error
		leader, err = c.leader(c.Up())
		return err
	})
	return leader
}

// LeaderOf is Leader among a subset of nodes (one side of a partition).
func (c *Cluster) LeaderOf(nodes ...*Node) *Node {
	c.t.Helper()
	var leader *Node
	Eventually(c.t, 20*time.Second, func() error {
		var err error
		leader, err = c.leader(nodes)
		return err
	})
	return leader
}

func (c *Cluster) leader(nodes []*Node) (*Node, error) {
	var leader *Node
	for _, n := range nodes {
		a := n.Agent()
		if a == nil || a.Raft() == nil { // down, or a client
			continue
		}
		if a.Raft().LeaderReady() {
			if leader != nil {
				return nil, fmt.Errorf("two nodes lead: %s and %s", leader.Name, n.Name)
			}
			leader = n
		}
	}
	if leader == nil {
		return nil, errors.New("no leader yet")
	}
	for _, n := range nodes {
		if a := n.Agent(); a != nil && a.Raft() != nil {
			if id, _ := a.Raft().Leader(); id != leader.Name {
				return nil, fmt.Errorf("%s sees leader %q, not %s", n.Name, id, leader.Name)
			}
		}
	}
	return leader, nil
}

// Followers returns the running nodes other than the current leader.
func (c *Cluster) Followers() []*Node {
	leader := c.Leader()
	var out []*Node
	for _, n := range c.Up() {
		if n != leader {
			out = append(out, n)
		}
	}
	return out
}

// WaitVoters waits until the leader's configuration has exactly n voters
// and every running node knows the leader.
func (c *Cluster) WaitVoters(n int) {
	c.t.Helper()
	c.waitServers(n, true)
}

// WaitServers waits until the leader's configuration has exactly n
// servers, voters and non-voters, and every running node knows the leader.
func (c *Cluster) WaitServers(n int) {
	c.t.Helper()
	c.waitServers(n, false)
}

func (c *Cluster) waitServers(n int, votersOnly bool) {
	c.t.Helper()
	what := "servers"
	if votersOnly {
		what = "voters"
	}
	Eventually(c.t, 30*time.Second, func() error {
		leader, err := c.leader(c.Up())
		if err != nil {
			return err
		}
		cfg, err := leader.Agent().Raft().Configuration()
		if err != nil {
			return err
		}
		count := 0
		for _, s := range cfg.Servers {
			if !votersOnly || s.Suffrage == 0 { // raft.Voter
				count++
			}
		}
		if count != n {
			return fmt.Errorf("%d %s, want %d", count, what, n)
		}
		return nil
	})
}

// Stop stops node i the restart-friendly way (like SIGTERM).
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	n := c.nodes[i]
	n.mu.Lock()
	a := n.agent
	n.agent = nil
	n.mu.Unlock()
	if a == nil {
		return
	}
	if err := a.Stop(context.Background()); err != nil {
		c.t.Logf("stop %s: %v", n.Name, err)
	}
}

// Kill stops node i abruptly: no leadership transfer, no leave. Every write
// it acknowledged was fsynced, so this loses what a kill -9 would lose.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	n := c.nodes[i]
	n.mu.Lock()
	a := n.agent
	n.agent = nil
	n.mu.Unlock()
	if a == nil {
		return
	}
	if err := a.Kill(); err != nil {
		c.t.Logf("kill %s: %v", n.Name, err)
	}
}

// Elections is the record of every election the cluster's nodes won.
func (c *Cluster) Elections() *Elections { return c.elections }

// Addresses are the addresses a node listens on.
type Addresses struct{ HTTP, Raft, Gossip string }

// Addresses returns the addresses node n listens on (or did, while down).
func (n *Node) Addresses() Addresses {
	n.mu.Lock()
	defer n.mu.Unlock()
	return Addresses{HTTP: n.cfg.HTTPAddr, Raft: n.cfg.RaftAddr, Gossip: n.cfg.GossipAddr}
}

// Restart starts node i again on its addresses and data directory. It
// rejoins through the other nodes' gossip addresses.
func (c *Cluster) Restart(i int) *Node {
	c.t.Helper()
	return c.RestartOn(i, c.nodes[i].Addresses())
}

// TryRestart makes one attempt to start node i again, its configuration
// edited by edit (nil: unchanged), and returns the agent's error.
func (c *Cluster) TryRestart(i int, edit func(cfg *agent.Config)) error {
	c.t.Helper()
	n := c.nodes[i]
	if n.Up() {
		c.t.Fatalf("restart %s: it is running", n.Name)
	}
	cfg := c.restartConfig(n)
	if edit != nil {
		edit(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.agent = a
	n.mu.Unlock()
	return nil
}

// restartConfig is node n's configuration for a restart: no bootstrap,
// joining through every other node.
func (c *Cluster) restartConfig(n *Node) agent.Config {
	n.mu.Lock()
	cfg := n.cfg
	n.mu.Unlock()
	cfg.BootstrapExpect = 0
	cfg.Join = nil
	for _, other := range c.nodes {
		if other != n {
			cfg.Join = append(cfg.Join, other.Addresses().Gossip)
		}
	}
	return cfg
}

// RestartOn starts node i again on its data directory but on addrs, which
// may be another node's (the others must be down then): a platform that
// hands out addresses in start order does that to a whole cluster that
// restarts. It rejoins through the other nodes' gossip addresses.
func (c *Cluster) RestartOn(i int, addrs Addresses) *Node {
	c.t.Helper()
	n := c.nodes[i]
	if n.Up() {
		c.t.Fatalf("restart %s: it is running", n.Name)
	}
	n.mu.Lock()
	n.cfg.HTTPAddr, n.cfg.RaftAddr, n.cfg.GossipAddr = addrs.HTTP, addrs.Raft, addrs.Gossip
	n.mu.Unlock()
	cfg := c.restartConfig(n)
	var a *agent.Agent
	Eventually(c.t, 10*time.Second, func() error { // the OS may hold a port briefly
		var err error
		a, err = agent.New(cfg)
		return err
	})
	n.mu.Lock()
	n.agent = a
	n.mu.Unlock()
	return n
}

// Partition cuts the given nodes off from all others, both ways: gossip,
// Raft and node-to-node HTTP (forwarding). Clients can still reach every
// node's API.
func (c *Cluster) Partition(idx ...int) {
	inside := map[int]bool{}
	for _, i := range idx {
		inside[i] = true
	}
	for i, a := range c.nodes {
		for j, b := range c.nodes {
			if inside[i] != inside[j] {
				ba := b.Addresses()
				a.Gate.Block(ba.HTTP, ba.Raft, ba.Gossip)
			}
		}
	}
}

// Pause freezes node i as docker pause or SIGSTOP would: its connections
// stay open but nothing it sends arrives and nothing sent to it is
// answered, and its gossip packets are dropped, until Resume. Clients can
// still reach its API, as they could a frozen process through a load
// balancer's open connection; tests drive writes through other nodes.
func (c *Cluster) Pause(i int) { c.bothWays(i, (*faultnet.Gate).Pause) }

// Resume thaws node i.
func (c *Cluster) Resume(i int) { c.bothWays(i, (*faultnet.Gate).Resume) }

// bothWays applies f to node i's addresses on every other node's gate and
// to every other node's addresses on node i's gate.
func (c *Cluster) bothWays(i int, f func(g *faultnet.Gate, addrs ...string)) {
	p := c.nodes[i]
	pa := p.Addresses()
	for _, n := range c.nodes {
		if n != p {
			na := n.Addresses()
			f(n.Gate, pa.HTTP, pa.Raft, pa.Gossip)
			f(p.Gate, na.HTTP, na.Raft, na.Gossip)
		}
	}
}

// Heal removes every partition and pause.
func (c *Cluster) Heal() {
	for _, n := range c.nodes {
		n.Gate.Heal()
	}
}

func (c *Cluster) stopAll() {
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c.Stop(i)
		}(i)
	}
	wg.Wait()
}

// Eventually polls f until it returns nil, failing the test with f's last
// error when the timeout passes.
func Eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 5 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v: %v", timeout, err)
		}
		time.Sleep(wait) // polling interval, not a wait for an event
		if wait < 100*time.Millisecond {
			wait *= 2
		}
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// FullRunOnly skips t under -short. CI runs the suite with -short within
// a time budget; a test that mostly repeats what others check under
// -short, at the cost of many seconds, runs in the full run only
// (go test -race ./...). why says what it adds.
func FullRunOnly(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip("full run only (CI runs -short within its time budget): " + why)
	}
}
