package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"shoal/client"
)

// shoalNode is one agent of the benchmark's shoal cluster.
type shoalNode struct {
	name       string
	httpAddr   string // 127.0.0.1:port
	raftAddr   string
	gossipAddr string
	proc       *proc
	client     *client.Client // HTTP/1.1 with keep-alive, as curl speaks
	client2    *client.Client // HTTP/2 with prior knowledge (h2c): one multiplexed connection
	args       []string       // the agent's command line, to restart it
	light      bool           // a light member (--role client): gossip and kv, no Raft
}

// shoalCluster is a shoal cluster of agents started by the benchmark.
type shoalCluster struct {
	bin   string
	label string   // prefix of the agents' data directories and logs
	extra []string // flags given to every agent
	nodes []*shoalNode
}

// buildShoal builds the shoal binary from the module at repo into the run
// directory.
func buildShoal(ctx context.Context, e *env, repo string) (string, error) {
	abs, err := filepath.Abs(repo)
	if err != nil {
		return "", fmt.Errorf("shoal repository %s: %w", repo, err)
	}
	mod, err := os.ReadFile(filepath.Join(abs, "go.mod"))
	if err != nil || !strings.HasPrefix(string(mod), "module shoal\n") {
		return "", fmt.Errorf("%s is not the shoal repository (no go.mod for module shoal); pass -repo", abs)
	}
	bin := e.path("bin", "shoal")
	if _, err := command(ctx, abs, "go", "build", "-o", bin, "."); err != nil {
		return "", fmt.Errorf("build shoal: %w", err)
	}
	return bin, nil
}

// startShoal starts n agents on loopback ports with --bootstrap-expect n;
// every agent but the first joins the first one's gossip address. It
// returns once the processes are started: see wait.
func startShoal(e *env, bin string, n int) (*shoalCluster, error) {
	c := &shoalCluster{bin: bin, label: "shoal"}
	return c, c.add(e, n, n)
}

// startShoalCluster starts n agents of which the first expect form the
// cluster (--bootstrap-expect expect, given to those only) and the others
// join it; extra flags go to every agent. label names the cluster's data
// directories and logs, so that one run can start several clusters.
func startShoalCluster(e *env, bin, label string, n, expect int, extra ...string) (*shoalCluster, error) {
	c := &shoalCluster{bin: bin, label: label, extra: extra}
	return c, c.add(e, n, expect)
}

// add starts n more agents. Of the cluster's agents, the first expect get
// --bootstrap-expect expect; every agent but the first joins the first.
// The new agents get the cluster's extra flags, then flags.
func (c *shoalCluster) add(e *env, n, expect int, flags ...string) error {
	first := len(c.nodes)
	for i := range n {
		node := &shoalNode{name: fmt.Sprintf("n%d", first+i+1)}
		for _, a := range []*string{&node.httpAddr, &node.raftAddr, &node.gossipAddr} {
			addr, err := e.port()
			if err != nil {
				return err
			}
			*a = addr
		}
		cl, err := client.New("http://" + node.httpAddr)
		if err != nil {
			return err
		}
		node.client = cl
		if node.client2, err = client.New("http://"+node.httpAddr, client.WithHTTP2()); err != nil {
			return err
		}
		c.nodes = append(c.nodes, node)
	}
	for i, node := range c.nodes[first:] {
		i += first
		args := []string{"agent",
			"--node-name", node.name,
			"--data-dir", e.path("data", c.label+"-"+node.name),
			"--http-addr", node.httpAddr,
			"--raft-addr", node.raftAddr,
			"--gossip-addr", node.gossipAddr,
			"--advertise", "127.0.0.1",
		}
		if i < expect {
			args = append(args, "--bootstrap-expect", fmt.Sprint(expect))
		}
		if i > 0 {
			args = append(args, "--join", c.nodes[0].gossipAddr)
		}
		args = append(args, c.extra...)
		args = append(args, flags...)
		node.args = args
		p, err := e.start(c.label+"-"+node.name, c.bin, args...)
		if err != nil {
			return err
		}
		node.proc = p
	}
	return nil
}

// addClients starts n more agents as light members (--role client): they
// join the first agent's gossip and hold no Raft state.
func (c *shoalCluster) addClients(e *env, n int) error {
	first := len(c.nodes)
	err := c.add(e, n, 0, "--role", "client")
	for _, node := range c.nodes[first:] {
		node.light = true
	}
	return err
}

// restart starts the stopped agents nodes again, on their data and ports,
// with their command lines.
func (c *shoalCluster) restart(e *env, nodes []*shoalNode) error {
	for _, node := range nodes {
		p, err := e.start(fmt.Sprintf("%s-%s-restart%d", c.label, node.name, len(e.procs)), c.bin, node.args...)
		if err != nil {
			return err
		}
		node.proc = p
	}
	return nil
}

// wait polls until every agent is ready and all agree on one leader, or
// fails at the deadline or as soon as an agent exits. A light member need
// not know the leader, but if it names one it must be the servers' one.
func (c *shoalCluster) wait(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		last = c.check(ctx)
		if last == nil {
			return nil
		}
		for _, node := range c.nodes {
			if err := node.proc.exitErr(); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("shoal cluster not ready after %v: %w", timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *shoalCluster) check(ctx context.Context) error {
	leaders := map[string]bool{}
	for _, node := range c.nodes {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		err := node.client.Ready(rctx)
		var st client.Status
		if err == nil {
			st, err = node.client.Status(rctx)
		}
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", node.name, err)
		}
		switch {
		case st.Leader != "":
			leaders[st.Leader] = true
		case !node.light:
			return fmt.Errorf("%s: no leader", node.name)
		}
	}
	if len(leaders) != 1 {
		return fmt.Errorf("nodes disagree on the leader: %v", leaders)
	}
	return nil
}

// leader returns the index in nodes of the current leader.
func (c *shoalCluster) leader(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := c.nodes[0].client.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("find the shoal leader: %w", err)
	}
	for i, node := range c.nodes {
		if node.name == st.Leader {
			return i, nil
		}
	}
	return 0, errors.New("find the shoal leader: " + st.Leader + " is not one of the started nodes")
}

// version returns what `shoal version` prints.
func (c *shoalCluster) version(ctx context.Context) string {
	out, err := command(ctx, "", c.bin, "version")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
