package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// The shapes of the convergence part's shoal cluster (issue 13): how its
// agents divide into Raft servers and light members.
const (
	// shapeNonvoters makes every agent a server: with the agent's default
	// --raft-voters 5, 5 voters and the others non-voters (read replicas).
	shapeNonvoters = "nonvoters"
	// shapeClients makes the first clientShapeServers agents servers and
	// the others light members (--role client): gossip and kv, no Raft.
	shapeClients = "clients"
)

// clientShapeServers is how many servers the clients shape has: the
// agent's default voter set (--raft-voters 5).
const clientShapeServers = 5

// defaultVoters is the agent's default --raft-voters.
const defaultVoters = 5

var kvShapes = []string{shapeNonvoters, shapeClients}

// shapeServers returns how many of n agents are servers in shape; the
// others are light members.
func shapeServers(shape string, n int) int {
	if shape == shapeClients {
		return min(n, clientShapeServers)
	}
	return n
}

// describeShape says what n agents are in shape: servers, of which voters
// (autopilot keeps min(--raft-voters, servers) voters, odd), and clients.
func describeShape(shape string, n int) string {
	servers := shapeServers(shape, n)
	voters := min(servers, defaultVoters)
	if voters%2 == 0 {
		voters--
	}
	s := fmt.Sprintf("%d servers (%d voters, %d non-voters)", servers, voters, servers-voters)
	if servers < n {
		s += fmt.Sprintf(" + %d clients (--role client)", n-servers)
	}
	return s
}

// startKVCluster starts n agents in shape for the kv parts: the first
// min(servers, 3) servers bootstrap Raft, the other servers join and
// autopilot makes them voters or non-voters, and the clients join the
// gossip. On error the agents already started are the env's to stop.
func startKVCluster(e *env, bin, label string, n int, shape string) (*shoalCluster, error) {
	servers := shapeServers(shape, n)
	c, err := startShoalCluster(e, bin, label, servers, min(servers, 3), "--log-level", "warn")
	if err == nil && servers < n {
		err = c.addClients(e, n-servers)
	}
	return c, err
}

// supportedShapes returns the shapes of shapes that the shoal binary bin
// can run, and says why it drops one: the clients shape needs the agent's
// --role flag.
func supportedShapes(ctx context.Context, out io.Writer, bin string, shapes []string) []string {
	// The help goes to the output whatever the exit status.
	help, _ := command(ctx, "", bin, "agent", "--help")
	hasRole := false
	for line := range strings.Lines(string(help)) {
		if strings.HasPrefix(strings.TrimSpace(line), "-role ") {
			hasRole = true
		}
	}
	var ok []string
	for _, s := range shapes {
		if s == shapeClients && !hasRole {
			fmt.Fprintf(out, "shape %s skipped: this shoal's agent has no --role flag\n", s)
			continue
		}
		ok = append(ok, s)
	}
	return ok
}

// shoalShapeRun starts n agents in shape, runs the writes on them and
// stops them.
func shoalShapeRun(ctx context.Context, out io.Writer, e *env, f kvFlags, bin string, n int, shape, run string) (propResult, error) {
	fmt.Fprintf(out, "shoal, shape %s: %s\n", shape, describeShape(shape, n))
	sc, err := startKVCluster(e, bin, fmt.Sprintf("shoal%d%s", n, shape), n, shape)
	if err != nil {
		return propResult{}, fmt.Errorf("shoal, shape %s: %w", shape, err)
	}
	if err := waitShoalKV(ctx, sc, 2*time.Minute); err != nil {
		stopShoal(sc)
		return propResult{}, fmt.Errorf("shoal, shape %s: %w", shape, err)
	}
	e.markLogs()
	sys := shoalKVSystem(sc, run)
	sys.name = "shoal-" + shape
	res, err := measurePropagation(ctx, sys, f)
	stopShoal(sc)
	if err != nil {
		return res, fmt.Errorf("shoal, shape %s: %w", shape, err)
	}
	return res, nil
}

// printShapeSummary prints one line per system of one size, in the order
// run: convergence, gossip bytes and the agents' CPU.
func printShapeSummary(out io.Writer, results []propResult) {
	tw := newTable(out, "system\tp50\tp99\tmax\tmissing\tidle B/node/s\tload B/node/s\tCPU idle\tCPU load\t")
	for _, r := range results {
		p50, p99, mx := r.latencies()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%.0f\t%.0f\t%s\t%s\t\n", r.system, p50, p99, mx, r.missing,
			r.idleRate, r.loadRate, r.idleCPU.coresText(), r.loadCPU.coresText())
	}
	_ = tw.Flush()
}

// printConvergenceRatio prints shoal, in one shape, against Serf: the kv
// module's target (p99 convergence no slower, no more bytes per node) and
// issue 13's (agents at rest on no more CPU than Serf's, p99 at most half
// Serf's, every write on every node).
func printConvergenceRatio(out io.Writer, s, f propResult) {
	label := fmt.Sprintf("ratio %s/serf at %d nodes", s.system, s.nodes)
	rest, restOK := cpuRatio(s.idleCPU, f.idleCPU)
	load, loadOK := cpuRatio(s.loadCPU, f.loadCPU)
	cpu := "agents' CPU at rest " + times(rest, restOK) + ", under load " + times(load, loadOK)
	if len(s.converged) < s.writes || len(f.converged) == 0 || f.loadRate == 0 {
		fmt.Fprintf(out, "%s: %s converged %d of %d writes, serf %d of %d; %s   target of issue 13: NOT met\n",
			label, s.system, len(s.converged), s.writes, len(f.converged), f.writes, cpu)
		return
	}
	p99 := float64(percentile(s.converged, 0.99)) / float64(percentile(f.converged, 0.99))
	p50 := float64(percentile(s.converged, 0.5)) / float64(percentile(f.converged, 0.5))
	bytes := s.loadRate / f.loadRate
	fmt.Fprintf(out, "%s: p99 convergence %s, p50 %s, bytes/node/s under load %s, idle %s   target (p99 ≤ 1.00×, bytes ≤ 1.00×): %s\n",
		label, times(p99, true), times(p50, true), times(bytes, true), times(s.idleRate/f.idleRate, true), verdict(p99 <= 1 && bytes <= 1))
	fmt.Fprintf(out, "%s: %s; p99 %s   target of issue 13 (CPU at rest ≤ 1.00×, p99 ≤ 0.50×, every write on every node): %s\n",
		label, cpu, times(p99, true), verdict(restOK && rest <= 1 && p99 <= 0.5 && s.missing == 0 && s.writeErrors == 0))
	if len(f.converged) < f.writes {
		fmt.Fprintf(out, "  (serf delivered %d of %d events to every node)\n", len(f.converged), f.writes)
	}
}

// cpuRatio returns the cores of s over those of f, false when either was
// not measured.
func cpuRatio(s, f cpuUse) (float64, bool) {
	sc, sok := s.cores()
	fc, fok := f.cores()
	if !sok || !fok || fc == 0 {
		return 0, false
	}
	return sc / fc, true
}

// times formats a ratio with two decimals, or two significant digits
// below 0.1 (a 12 ms p99 against 30 s is 0.00039×, not 0.00×); "-" when
// there is none.
func times(r float64, ok bool) string {
	switch {
	case !ok:
		return "-"
	case r < 0.1:
		return fmt.Sprintf("%.2g×", r)
	}
	return fmt.Sprintf("%.2f×", r)
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "NOT met"
}
