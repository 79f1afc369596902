package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	serfclient "github.com/hashicorp/serf/client"
)

// serfAgent is one agent of the benchmark's Serf cluster.
type serfAgent struct {
	name     string
	bindAddr string // gossip, TCP and UDP
	rpcAddr  string
	proc     *proc
}

// serfCluster is a Serf cluster of agents started by the benchmark, with
// the statsd receiver its agents report their gossip traffic to.
type serfCluster struct {
	bin    string
	agents []*serfAgent
	stats  *statsdReceiver
}

// findSerf returns the path of the serf binary, installing Debian's serf
// package when it is not on PATH.
func findSerf(ctx context.Context, out io.Writer) (string, error) {
	return findDebianBinary(ctx, out, "serf", "serf")
}

// serfVersion returns the first line of `serf version`.
func serfVersion(ctx context.Context, bin string) string {
	return versionLine(ctx, bin, "version")
}

// startSerf starts n agents with the LAN profile (200 ms gossip, as
// shoal's default) reporting to a new statsd receiver; every agent but the
// first joins the first. label names the agents' logs. Call wait before using it, and stop when done.
func startSerf(e *env, bin, label string, n int) (*serfCluster, error) {
	stats, err := newStatsdReceiver()
	if err != nil {
		return nil, err
	}
	c := &serfCluster{bin: bin, stats: stats}
	conf := e.path(label + ".json")
	// statsd_addr is the only setting without a flag. go-metrics sends the
	// counters every 100 ms; the receiver sums them over all agents.
	b, _ := json.Marshal(map[string]any{"statsd_addr": stats.addr()})
	if err := os.WriteFile(conf, b, 0o600); err != nil {
		stats.close()
		return nil, fmt.Errorf("write serf config: %w", err)
	}
	for i := range n {
		a := &serfAgent{name: fmt.Sprintf("s%d", i+1)}
		for _, p := range []*string{&a.bindAddr, &a.rpcAddr} {
			if *p, err = e.port(); err != nil {
				stats.close()
				return nil, err
			}
		}
		args := []string{"agent", "-node", a.name, "-bind", a.bindAddr, "-rpc-addr", a.rpcAddr,
			"-profile", "lan", "-log-level", "warn", "-config-file", conf}
		if i > 0 {
			args = append(args, "-retry-join", c.agents[0].bindAddr, "-retry-interval", "1s")
		}
		if a.proc, err = e.start(label+"-"+a.name, bin, args...); err != nil {
			stats.close()
			return nil, err
		}
		c.agents = append(c.agents, a)
	}
	return c, nil
}

// wait polls until every agent sees all n members alive, or fails at the
// deadline or as soon as an agent exits.
func (c *serfCluster) wait(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		last := c.check()
		if last == nil {
			return nil
		}
		for _, a := range c.agents {
			if err := a.proc.exitErr(); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("serf cluster not formed after %v: %w", timeout, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (c *serfCluster) check() error {
	for _, a := range c.agents {
		rpc, err := serfclient.NewRPCClient(a.rpcAddr)
		if err != nil {
			return fmt.Errorf("%s: %w", a.name, err)
		}
		members, err := rpc.Members()
		_ = rpc.Close()
		if err != nil {
			return fmt.Errorf("%s: members: %w", a.name, err)
		}
		alive := 0
		for _, m := range members {
			if m.Status == "alive" {
				alive++
			}
		}
		if alive != len(c.agents) {
			return fmt.Errorf("%s sees %d of %d members alive", a.name, alive, len(c.agents))
		}
	}
	return nil
}

func serfProcs(c *serfCluster) []*proc {
	ps := make([]*proc, len(c.agents))
	for i, a := range c.agents {
		ps[i] = a.proc
	}
	return ps
}

// stop stops the agents and the statsd receiver.
func (c *serfCluster) stop() {
	stopAll(serfProcs(c))
	c.stats.close()
}

// statsdReceiver is a statsd server on a loopback UDP port that sums the
// counters it receives by name, over all senders. Serf's agents report
// memberlist's memberlist.udp.sent and memberlist.tcp.sent to it: the
// bytes each agent puts on the wire, counted as shoal counts its own.
type statsdReceiver struct {
	conn *net.UDPConn
	done chan struct{}

	mu     sync.Mutex
	counts map[string]float64
}

func newStatsdReceiver() (*statsdReceiver, error) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("statsd receiver: %w", err)
	}
	// Up to 64 agents report every 100 ms: a large buffer loses nothing.
	_ = conn.SetReadBuffer(8 << 20)
	r := &statsdReceiver{conn: conn, done: make(chan struct{}), counts: map[string]float64{}}
	go r.serve()
	return r, nil
}

func (r *statsdReceiver) addr() string { return r.conn.LocalAddr().String() }

// serve reads packets until close.
func (r *statsdReceiver) serve() {
	defer close(r.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := r.conn.Read(buf)
		if err != nil {
			return // closed
		}
		r.add(buf[:n])
	}
}

// add sums the counter lines of one packet: "name:value|c", one a line.
func (r *statsdReceiver) add(pkt []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for line := range strings.SplitSeq(string(pkt), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		value, kind, ok := strings.Cut(rest, "|")
		if !ok || kind != "c" {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		r.counts[name] += v
	}
}

// sum returns the total of the counters whose names end with one of the
// suffixes (go-metrics may prefix the host name).
func (r *statsdReceiver) sum(suffixes ...string) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	total := 0.0
	for name, v := range r.counts {
		for _, s := range suffixes {
			if strings.HasSuffix(name, s) {
				total += v
				break
			}
		}
	}
	return total
}

func (r *statsdReceiver) close() {
	_ = r.conn.Close()
	<-r.done
}

// errSerfStreamClosed: an agent ended an event stream.
var errSerfStreamClosed = errors.New("serf event stream closed")
