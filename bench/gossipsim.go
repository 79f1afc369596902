package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"shoal/membership"
)

// gossipSimPart checks the gossip part of the cost model of
// docs/scaling.md at sizes that do not fit on one machine as processes:
// f.simNodes memberlist nodes in this process, with the agent's
// production timing and node metadata like an agent's, idle. It reports
// the bytes they send per node per second, by transport, and this
// process's CPU per node.
func gossipSimPart(ctx context.Context, out io.Writer, f kvFlags) error {
	n := f.simNodes
	t := membership.DefaultTiming()
	pp := pushPullInterval(t.PushPullInterval, n)
	window := f.simWindow
	if window == 0 {
		// Two push/pull intervals: about two exchanges started per node.
		window = 2 * pp
	}
	fmt.Fprintf(out, "== gossip simulation: %d in-process memberlist nodes at rest, the agent's timing (gossip every %v to %d, probe every %v, push/pull every %v at %d nodes), %v window ==\n",
		n, t.GossipInterval, t.GossipNodes, t.ProbeInterval, pp, n, window)
	t0 := time.Now()
	c, err := startSimCluster(ctx, "gossipsim", n, nil)
	if err != nil {
		return err
	}
	defer c.shutdown()
	fmt.Fprintf(out, "every node saw all %d alive %.1fs after the first started; waiting %.0fs more for the push/pull schedule to settle ...\n",
		n, time.Since(t0).Seconds(), time.Until(c.steady).Seconds())
	cost, err := c.measure(ctx, window)
	if err != nil {
		return err
	}
	tw := newTable(out, "nodes\tgossip B/node/s\tudp\ttcp\tCPU per node\twindow\t")
	fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.0f\t%.2f ms/s\t%.0fs\t\n", n, cost.rate, cost.udp, cost.tcp, 1000*cost.cores, cost.window.Seconds())
	_ = tw.Flush()
	fmt.Fprintf(out, "(CPU per node: this process's CPU over the window, %.2f cores of %d, divided by %d; it holds every node's memberlist, membership and metrics, and one Go runtime)\n\n",
		cost.cores*float64(n), runtime.NumCPU(), n)
	return nil
}

// simCluster is memberlist nodes in this process, through shoal's
// membership package with the agent's default (LAN) timing, on 127.0.0.1.
type simCluster struct {
	nodes []simNode
	// steady is when every node's push/pull runs at its steady rate.
	// memberlist starts a node's push/pull timer after a random stagger
	// of up to PushPullInterval, and the first exchange comes one scaled
	// interval after that: a window opened earlier holds fewer exchanges
	// than any later window of the same length (half, in a window of one
	// interval opened just after the joins).
	steady time.Time
}

type simNode struct {
	m   *membership.Membership
	reg *prometheus.Registry
}

// simModules are the modules an agent advertises by default: the nodes'
// metadata, which every push/pull carries for every member, is an agent's
// size.
var simModules = []string{"acl", "kv", "locks", "log", "objectsync", "replication"}

// startSimCluster starts n nodes, the ith named m<i+1>, each joining the
// first, and waits until every node sees all n alive. setup, if not nil,
// is called on each node before it joins. what names the cluster in
// errors. On error it shuts down the nodes it started.
func startSimCluster(ctx context.Context, what string, n int, setup func(*membership.Membership)) (_ *simCluster, err error) {
	c := &simCluster{nodes: make([]simNode, 0, n)}
	defer func() {
		if err != nil {
			c.shutdown()
		}
	}()
	for i := range n {
		cfg := membership.DefaultConfig()
		cfg.NodeName = "m" + strconv.Itoa(i+1)
		cfg.BindAddr = "127.0.0.1:0"
		cfg.Meta = membership.Meta{HTTPAddr: "127.0.0.1:17480", RaftAddr: "127.0.0.1:17481",
			Modules: simModules, RaftModules: simModules, Version: "sim", HasRaftState: true}
		reg := prometheus.NewRegistry()
		cfg.Registerer = reg
		m, err := membership.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("%s node %d: %w", what, i+1, err)
		}
		c.nodes = append(c.nodes, simNode{m: m, reg: reg})
		if setup != nil {
			setup(m)
		}
		if i > 0 {
			if _, err := m.Join([]string{c.nodes[0].m.LocalMember().Addr}); err != nil {
				return nil, fmt.Errorf("%s node %d join: %w", what, i+1, err)
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	base := membership.DefaultTiming().PushPullInterval
	c.steady = time.Now().Add(base + pushPullInterval(base, n))
	timeout := 2*time.Minute + time.Duration(n)*500*time.Millisecond
	deadline := time.Now().Add(timeout)
	for !c.converged() {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s nodes did not all see each other within %v", what, timeout)
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// converged reports whether every node sees every node alive.
func (c *simCluster) converged() bool {
	for _, nd := range c.nodes {
		if countAlive(nd.m.Members()) != len(c.nodes) {
			return false
		}
	}
	return true
}

func (c *simCluster) shutdown() {
	for _, nd := range c.nodes {
		_ = nd.m.Shutdown()
	}
}

// sent returns the gossip bytes all nodes have sent so far, by transport.
func (c *simCluster) sent() (udp, tcp float64, err error) {
	for _, nd := range c.nodes {
		by, err := gatheredByLabel(nd.reg, "shoal_membership_sent_bytes_total", "transport")
		if err != nil {
			return 0, 0, err
		}
		udp += by["udp"]
		tcp += by["tcp"]
	}
	return udp, tcp, nil
}

// simCost is what the nodes of a simCluster cost over a window, per node
// and second: gossip bytes, all and by transport, and this process's CPU
// (in cores).
type simCost struct {
	idleCost
	udp, tcp float64
	cores    float64
}

// measure counts what the nodes send, and this process's CPU, over window,
// from the time their push/pull runs at its steady rate.
func (c *simCluster) measure(ctx context.Context, window time.Duration) (simCost, error) {
	if err := sleepUntil(ctx, c.steady); err != nil {
		return simCost{}, err
	}
	udp0, tcp0, err := c.sent()
	if err != nil {
		return simCost{}, err
	}
	cpu0, t0 := selfCPU(), time.Now()
	if err := sleepCtx(ctx, window); err != nil {
		return simCost{}, err
	}
	cpu, d := selfCPU()-cpu0, time.Since(t0)
	udp1, tcp1, err := c.sent()
	if err != nil {
		return simCost{}, err
	}
	per := float64(len(c.nodes)) * d.Seconds()
	cost := simCost{udp: (udp1 - udp0) / per, tcp: (tcp1 - tcp0) / per, cores: cpu.Seconds() / per}
	cost.idleCost = idleCost{rate: cost.udp + cost.tcp, window: d}
	return cost, nil
}

// gatheredByLabel sums the series of the counter name in reg by the value
// of their label label.
func gatheredByLabel(reg *prometheus.Registry, name, label string) (map[string]float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return nil, fmt.Errorf("gather %s: %w", name, err)
	}
	by := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					v = lp.GetValue()
				}
			}
			by[v] += m.GetCounter().GetValue()
		}
	}
	if len(by) == 0 {
		return nil, errors.New("gather " + name + ": no such counter")
	}
	return by, nil
}
