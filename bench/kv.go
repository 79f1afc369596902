package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	serfclient "github.com/hashicorp/serf/client"

	"shoal/client"
)

func init() {
	register(scenario{
		name:    "kv",
		summary: "kv write propagation on 16 and 64 agents (all servers, or 5 servers and clients) vs Serf user events; idle cost of 100,000 keys vs memberlist push/pull; gossip of 256 in-process members",
		run:     runKV,
	})
}

// kvFlags are the kv scenario's settings.
type kvFlags struct {
	sizes      []int
	shapes     []string
	writes     int
	rate       float64
	valueBytes int
	idle       time.Duration
	settle     time.Duration
	tail       time.Duration
	parts      map[string]bool

	aeNodes  int
	aeKeys   int
	aeWindow time.Duration
	repo     string

	simNodes  int
	simWindow time.Duration
}

func parseKVFlags(args []string) (kvFlags, error) {
	var f kvFlags
	fs := flag.NewFlagSet("bench kv", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	sizes := fs.String("sizes", "16,64", "comma-separated cluster sizes of the convergence part")
	shapes := fs.String("shapes", strings.Join(kvShapes, ","), "comma-separated shapes of the convergence part's shoal cluster: nonvoters (every agent a server: 5 voters, the others non-voters), clients (5 servers, the others --role client)")
	fs.IntVar(&f.writes, "writes", 1000, "writes (shoal) and user events (Serf) per cluster size, spread round-robin over the nodes")
	fs.Float64Var(&f.rate, "rate", 20, "writes per second, cluster-wide (at 64 nodes, gossip carries about 25/s: each node sends each write 8 times, about a dozen per packet, 15 packets a second)")
	fs.IntVar(&f.valueBytes, "value-bytes", 64, "bytes of each value (Serf: of each event's payload)")
	fs.DurationVar(&f.idle, "idle", 10*time.Second, "idle time measured before the writes (the gossip baseline)")
	fs.DurationVar(&f.settle, "settle", 90*time.Second, "longest wait after the last write for every node to have every write")
	fs.DurationVar(&f.tail, "tail", 10*time.Second, "time after the writes' span that their gossip bytes are counted")
	parts := fs.String("parts", "convergence,antientropy", "parts to run: convergence, antientropy, gossipsim")
	fs.IntVar(&f.aeNodes, "ae-nodes", 64, "agents of the anti-entropy part")
	fs.IntVar(&f.aeKeys, "ae-keys", 100000, "keys held by every node in the anti-entropy part")
	fs.DurationVar(&f.aeWindow, "ae-window", 60*time.Second, "idle time measured in the anti-entropy part (memberlist pushes/pulls once a minute at 64 nodes)")
	fs.StringVar(&f.repo, "repo", "..", "shoal repository to build the binary from")
	fs.IntVar(&f.simNodes, "sim-nodes", 256, "in-process memberlist nodes of the gossipsim part")
	fs.DurationVar(&f.simWindow, "sim-window", 0, "idle time measured in the gossipsim part (0: two push/pull intervals at -sim-nodes)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: bench kv [flags]

Part convergence: for each size, start that many shoal agents once per
shape, then as many Serf agents (LAN profile: 200 ms gossip, as shoal), on
127.0.0.1; watch every node, issue the writes (shoal kv PUTs, Serf user
events) at a fixed rate over all the nodes (clients included), and time
each until every node has it. Gossip bytes are what the agents count on
the wire (shoal's metrics, Serf's statsd); CPU is the agents' processes'.

Part antientropy: 64 shoal agents holding 100,000 keys, idle: gossip bytes
per node per second, then the same keyspace as memberlist push/pull state
on 64 in-process memberlist nodes.

Part gossipsim (not run by default): 256 in-process memberlist nodes with
the agent's gossip timing, at rest: bytes sent per node per second and
this process's CPU per node.

flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for s := range strings.SplitSeq(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			return f, fmt.Errorf("-sizes: %q is not a cluster size of at least 2", s)
		}
		f.sizes = append(f.sizes, n)
	}
	f.parts = map[string]bool{}
	for p := range strings.SplitSeq(*parts, ",") {
		p = strings.TrimSpace(p)
		if p != "convergence" && p != "antientropy" && p != "gossipsim" {
			return f, fmt.Errorf("-parts: unknown part %q", p)
		}
		f.parts[p] = true
	}
	for s := range strings.SplitSeq(*shapes, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(kvShapes, s) {
			return f, fmt.Errorf("-shapes: unknown shape %q (want %s)", s, strings.Join(kvShapes, ", "))
		}
		if !slices.Contains(f.shapes, s) {
			f.shapes = append(f.shapes, s)
		}
	}
	switch {
	case f.writes < 1 || f.rate <= 0:
		return f, errors.New("-writes and -rate must be positive")
	case f.valueBytes < 1 || f.valueBytes > 400:
		// Serf refuses user events above 512 bytes of name and payload.
		return f, errors.New("-value-bytes must be from 1 to 400")
	case f.idle <= 0 || f.settle <= 0 || f.tail <= 0 || f.aeWindow <= 0:
		return f, errors.New("-idle, -settle, -tail and -ae-window must be positive")
	case f.aeNodes < 2 || f.aeKeys < 1:
		return f, errors.New("-ae-nodes must be at least 2 and -ae-keys positive")
	case f.simNodes < 2 || f.simWindow < 0:
		return f, errors.New("-sim-nodes must be at least 2 and -sim-window not negative")
	}
	return f, nil
}

// runKV runs the kv scenario.
func runKV(ctx context.Context, args []string, out io.Writer) (err error) {
	f, err := parseKVFlags(args)
	if err != nil {
		return err
	}
	e, err := newEnv(out)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "stopping agents and removing", e.dir)
		if cerr := e.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	// The gossipsim part runs in this process: it needs neither binary.
	var shoalBin, serfBin string
	var versions [][2]string
	if f.parts["convergence"] || f.parts["antientropy"] {
		fmt.Fprintln(out, "building shoal from", f.repo)
		if shoalBin, err = buildShoal(ctx, e, f.repo); err != nil {
			return err
		}
		shoalVersion := "unknown"
		if b, err := command(ctx, "", shoalBin, "version"); err == nil {
			shoalVersion = strings.TrimSpace(string(b))
		}
		versions = append(versions, [2]string{"shoal", shoalVersion})
	}
	if f.parts["convergence"] {
		if serfBin, err = findSerf(ctx, out); err != nil {
			return err
		}
		versions = append(versions, [2]string{"serf", serfVersion(ctx, serfBin)})
	}
	describeMachine(ctx, e.dir).print(out, versions)
	fmt.Fprintln(out)

	if f.parts["convergence"] {
		f.shapes = supportedShapes(ctx, out, shoalBin, f.shapes)
		for _, n := range f.sizes {
			if err := convergencePart(ctx, out, e, f, shoalBin, serfBin, n); err != nil {
				return err
			}
		}
	}
	if f.parts["antientropy"] {
		if err := antiEntropyPart(ctx, out, e, f, shoalBin); err != nil {
			return err
		}
	}
	if f.parts["gossipsim"] {
		if err := gossipSimPart(ctx, out, f); err != nil {
			return err
		}
	}
	e.printNotable(out)
	return nil
}

// convergencePart compares shoal, in each shape, and Serf on n agents
// each, one cluster at a time (each has the machine to itself).
func convergencePart(ctx context.Context, out io.Writer, e *env, f kvFlags, shoalBin, serfBin string, n int) error {
	fmt.Fprintf(out, "== convergence, %d agents: %d writes at %.0f/s over the nodes, %d-byte values ==\n", n, f.writes, f.rate, f.valueBytes)
	run := newRunID()

	var shoalRes []propResult
	for _, shape := range f.shapes {
		res, err := shoalShapeRun(ctx, out, e, f, shoalBin, n, shape, run)
		if err != nil {
			return err
		}
		res.print(out)
		shoalRes = append(shoalRes, res)
	}

	serf, err := startSerf(e, serfBin, fmt.Sprintf("serf%d", n), n)
	if err != nil {
		return err
	}
	defer serf.stop()
	if err := serf.wait(ctx, 2*time.Minute); err != nil {
		return err
	}
	sys, closeRPC, err := serfEventSystem(serf, run)
	if err != nil {
		return err
	}
	defer closeRPC()
	serfRes, err := measurePropagation(ctx, sys, f)
	if err != nil {
		return fmt.Errorf("serf: %w", err)
	}
	serfRes.print(out)
	fmt.Fprintf(out, "-- %d agents, summary --\n", n)
	printShapeSummary(out, append(slices.Clone(shoalRes), serfRes))
	for _, s := range shoalRes {
		printConvergenceRatio(out, s, serfRes)
	}
	fmt.Fprintln(out)
	return nil
}

func newRunID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func stopShoal(c *shoalCluster) { stopAll(shoalProcs(c)) }

// waitShoalKV waits for the cluster to have a leader and for every node's
// kv module to be synced (a node that is not synced yet takes writes but
// does not take part in anti-entropy).
func waitShoalKV(ctx context.Context, c *shoalCluster, timeout time.Duration) error {
	if err := c.wait(ctx, timeout); err != nil {
		return err
	}
	return untilEveryNode(ctx, c, timeout, 500*time.Millisecond, "kv not synced on every node", kvSynced)
}

// untilEveryNode polls check on every node of c, every poll, until it
// passes on all of them; after timeout it fails with what and the last
// node's error.
func untilEveryNode(ctx context.Context, c *shoalCluster, timeout, poll time.Duration, what string, check func(context.Context, *shoalNode) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var last error
		for _, node := range c.nodes {
			if last = check(ctx, node); last != nil {
				break
			}
		}
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s after %v: %w", what, timeout, last)
		case <-time.After(poll):
		}
	}
}

// kvStatus is the part of the kv section of /v1/status the benchmark reads.
type kvStatus struct {
	Keys   int  `json:"keys"`
	Synced bool `json:"synced"`
}

func shoalKVStatus(ctx context.Context, node *shoalNode) (kvStatus, error) {
	var ks kvStatus
	st, err := node.client.Status(ctx)
	if err != nil {
		return ks, fmt.Errorf("%s: %w", node.name, err)
	}
	raw, ok := st.Sections["kv"]
	if !ok {
		return ks, fmt.Errorf("%s: no kv section in the status", node.name)
	}
	if err := json.Unmarshal(raw, &ks); err != nil {
		return ks, fmt.Errorf("%s: kv status: %w", node.name, err)
	}
	return ks, nil
}

func kvSynced(ctx context.Context, node *shoalNode) error {
	ks, err := shoalKVStatus(ctx, node)
	if err != nil {
		return err
	}
	if !ks.Synced {
		return fmt.Errorf("%s: kv not synced", node.name)
	}
	return nil
}

// gossipSystem is one system of the convergence comparison.
type gossipSystem struct {
	name  string
	nodes int
	// watch calls arrived with the key of every write that reaches node
	// i, until ctx is done or the stream fails.
	watch func(ctx context.Context, i int, arrived func(key string)) error
	// write issues a write on node i.
	write func(ctx context.Context, i int, key, value string) error
	// sent is the gossip bytes all nodes have sent so far.
	sent func(ctx context.Context) (gossipBytes, error)
	// pids are the agents' processes, whose CPU time is reported.
	pids []int
	// key names write w; isKey recovers w from a key (false for others).
	key   func(w int) string
	isKey func(key string) (int, bool)
}

func shoalKVSystem(c *shoalCluster, run string) gossipSystem {
	// The same names as Serf's events: the same bytes to carry.
	prefix := "b" + run + "-"
	return gossipSystem{
		name:  "shoal",
		nodes: len(c.nodes),
		pids:  pidsOf(shoalProcs(c)),
		watch: func(ctx context.Context, i int, arrived func(string)) error {
			return c.nodes[i].client.KVWatch(ctx, prefix, func(ev client.KVEvent) error {
				if ev.Type == "new_key" || ev.Type == "key_changed" {
					arrived(ev.Entry.Key)
				}
				return nil
			})
		},
		write: func(ctx context.Context, i int, key, value string) error {
			_, err := c.nodes[i].client.KVPut(ctx, key, value)
			return err
		},
		sent:  func(ctx context.Context) (gossipBytes, error) { return shoalSent(ctx, c.nodes) },
		key:   func(w int) string { return prefix + strconv.Itoa(w) },
		isKey: suffixIndex(prefix),
	}
}

// serfEventSystem drives Serf's user events through each agent's RPC
// port: one RPC client per agent streams its user events, and writes are
// sent without coalescing (each event must arrive).
func serfEventSystem(c *serfCluster, run string) (gossipSystem, func(), error) {
	rpcs := make([]*serfclient.RPCClient, len(c.agents))
	closeAll := func() {
		for _, r := range rpcs {
			if r != nil {
				_ = r.Close()
			}
		}
	}
	// Watches and writes use separate connections: a Serf RPC client
	// serializes its requests with the stream's records.
	writers := make([]*serfclient.RPCClient, len(c.agents))
	for i, a := range c.agents {
		var err error
		if rpcs[i], err = serfclient.NewRPCClient(a.rpcAddr); err != nil {
			closeAll()
			return gossipSystem{}, nil, fmt.Errorf("serf rpc %s: %w", a.name, err)
		}
		if writers[i], err = serfclient.NewRPCClient(a.rpcAddr); err != nil {
			closeAll()
			return gossipSystem{}, nil, fmt.Errorf("serf rpc %s: %w", a.name, err)
		}
	}
	closeBoth := func() {
		closeAll()
		for _, w := range writers {
			_ = w.Close()
		}
	}
	prefix := "b" + run + "-"
	sys := gossipSystem{
		name:  "serf",
		nodes: len(c.agents),
		pids:  pidsOf(serfProcs(c)),
		watch: func(ctx context.Context, i int, arrived func(string)) error {
			ch := make(chan map[string]any, 1<<16)
			h, err := rpcs[i].Stream("user", ch)
			if err != nil {
				return fmt.Errorf("serf stream %s: %w", c.agents[i].name, err)
			}
			defer func() { _ = rpcs[i].Stop(h) }()
			for {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case rec, ok := <-ch:
					if !ok {
						return errSerfStreamClosed
					}
					if name, ok := rec["Name"].(string); ok {
						arrived(name)
					}
				}
			}
		},
		write: func(ctx context.Context, i int, key, value string) error {
			return writers[i].UserEvent(key, []byte(value), false)
		},
		sent: func(ctx context.Context) (gossipBytes, error) {
			// go-metrics flushes its statsd buffer every 100 ms.
			if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
				return gossipBytes{}, err
			}
			return gossipBytes{udp: c.stats.sum("memberlist.udp.sent"), tcp: c.stats.sum("memberlist.tcp.sent")}, nil
		},
		key:   func(w int) string { return prefix + strconv.Itoa(w) },
		isKey: suffixIndex(prefix),
	}
	return sys, closeBoth, nil
}

// gossipBytes is what a cluster's agents have sent so far: by transport,
// and (shoal only) the kv module's anti-entropy messages, which travel in
// tcp and are counted before compression. For shoal it also counts how
// the versions the agents applied came (by broadcast: pushed or
// piggybacked; or repaired by anti-entropy) and the pushes.
type gossipBytes struct {
	udp, tcp, kvAE             float64
	viaBroadcast, viaAE        float64
	pushesSent, pushesDeferred float64
}

func (g gossipBytes) total() float64 { return g.udp + g.tcp }

func (g gossipBytes) sub(o gossipBytes) gossipBytes {
	return gossipBytes{
		udp: g.udp - o.udp, tcp: g.tcp - o.tcp, kvAE: g.kvAE - o.kvAE,
		viaBroadcast: g.viaBroadcast - o.viaBroadcast, viaAE: g.viaAE - o.viaAE,
		pushesSent: g.pushesSent - o.pushesSent, pushesDeferred: g.pushesDeferred - o.pushesDeferred,
	}
}

// shoalSent scrapes what the agents nodes have sent.
func shoalSent(ctx context.Context, nodes []*shoalNode) (gossipBytes, error) {
	var g gossipBytes
	for _, node := range nodes {
		snap, err := scrape(ctx, node.httpAddr)
		if err != nil {
			return g, err
		}
		g.udp += snap[`shoal_membership_sent_bytes_total{transport="udp"}`]
		g.tcp += snap[`shoal_membership_sent_bytes_total{transport="tcp"}`]
		g.kvAE += snap[`shoal_kv_antientropy_bytes_total{direction="sent"}`]
		g.viaBroadcast += snap[`shoal_kv_merged_total{via="broadcast"}`]
		g.viaAE += snap[`shoal_kv_merged_total{via="antientropy"}`]
		g.pushesSent += snap[`shoal_membership_pushes_total{result="sent"}`]
		g.pushesDeferred += snap[`shoal_membership_pushes_total{result="deferred"}`]
	}
	return g, nil
}

// suffixIndex returns a function that recovers w from prefix+w.
func suffixIndex(prefix string) func(string) (int, bool) {
	return func(key string) (int, bool) {
		rest, ok := strings.CutPrefix(key, prefix)
		if !ok {
			return 0, false
		}
		w, err := strconv.Atoi(rest)
		return w, err == nil
	}
}

// propagation records when each write reached each node.
type propagation struct {
	mu      sync.Mutex
	nodes   int
	issued  []time.Time
	reached [][]bool // [write][node]
	count   []int    // nodes reached, by write
	last    []time.Time
	ready   []bool // the node saw a ready probe
}

func newPropagation(nodes, writes int) *propagation {
	p := &propagation{nodes: nodes, issued: make([]time.Time, writes), reached: make([][]bool, writes),
		count: make([]int, writes), last: make([]time.Time, writes), ready: make([]bool, nodes)}
	for w := range p.reached {
		p.reached[w] = make([]bool, nodes)
	}
	return p
}

func (p *propagation) arrive(node, w int, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if w < 0 || w >= len(p.reached) || p.reached[w][node] {
		return
	}
	p.reached[w][node] = true
	p.count[w]++
	p.last[w] = at
}

func (p *propagation) markReady(node int) {
	p.mu.Lock()
	p.ready[node] = true
	p.mu.Unlock()
}

func (p *propagation) allReady() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !slices.Contains(p.ready, false)
}

func (p *propagation) setIssued(w int, at time.Time) {
	p.mu.Lock()
	p.issued[w] = at
	p.mu.Unlock()
}

// complete returns how many writes every node has.
func (p *propagation) complete() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.count {
		if c == p.nodes {
			n++
		}
	}
	return n
}

// propResult is what one system measured.
type propResult struct {
	system       string
	nodes        int
	writes       int
	writeErrors  int
	firstErr     string
	converged    []time.Duration // of the writes every node got, sorted
	missing      int             // node deliveries that never came
	idleRate     float64         // gossip bytes per node per second, idle
	loadRate     float64         // over the load window
	loadWindow   time.Duration   // the writes' span and the tail
	bytesPerNode float64         // over the load window
	breakdown    gossipBytes     // per node over the load window
	idleCPU      cpuUse
	loadCPU      cpuUse
}

// measurePropagation runs the writes on sys and times them.
func measurePropagation(ctx context.Context, sys gossipSystem, f kvFlags) (propResult, error) {
	res := propResult{system: sys.name, nodes: sys.nodes, writes: f.writes}
	rec := newPropagation(sys.nodes, f.writes)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	watchErrs := make(chan error, sys.nodes)
	readyPrefix := sys.key(-1) // a key no write uses
	for i := range sys.nodes {
		wg.Go(func() {
			err := sys.watch(wctx, i, func(key string) {
				now := time.Now()
				if strings.HasPrefix(key, readyPrefix) {
					rec.markReady(i)
					return
				}
				if w, ok := sys.isKey(key); ok {
					rec.arrive(i, w, now)
				}
			})
			if wctx.Err() == nil {
				watchErrs <- fmt.Errorf("watch node %d: %w", i, err)
			}
		})
	}
	defer wg.Wait()
	defer cancel()

	// Ready probes: the watches are open once every node has seen one.
	// Values are random hex, as compressible as real data (memberlist
	// compresses what both systems send); write w's value is idleValue(w).
	value := idleValue(-1, f.valueBytes)
	deadline := time.Now().Add(time.Minute)
	for probe := 0; !rec.allReady(); probe++ {
		if time.Now().After(deadline) {
			return res, errors.New("the watches did not all see a probe write within a minute")
		}
		if err := sys.write(ctx, probe%sys.nodes, readyPrefix+strconv.Itoa(probe), value); err != nil {
			return res, fmt.Errorf("probe write: %w", err)
		}
		if err := sleepCtx(ctx, 2*time.Second); err != nil {
			return res, err
		}
		select {
		case err := <-watchErrs:
			return res, err
		default:
		}
	}

	// At rest before the idle window: the probes' gossip is over.
	if err := sleepCtx(ctx, 5*time.Second); err != nil {
		return res, err
	}
	b0, err := sys.sent(ctx)
	if err != nil {
		return res, err
	}
	meter := startCPU(sys.pids)
	if err := sleepCtx(ctx, f.idle); err != nil {
		return res, err
	}
	res.idleCPU = meter.stop()
	b1, err := sys.sent(ctx)
	if err != nil {
		return res, err
	}
	res.idleRate = b1.sub(b0).total() / float64(sys.nodes) / f.idle.Seconds()

	// The writes, at a fixed rate; each in its own goroutine so that a
	// slow one does not delay the next.
	meter = startCPU(sys.pids)
	start := time.Now()
	interval := time.Duration(float64(time.Second) / f.rate)
	var writes sync.WaitGroup
	var errMu sync.Mutex
	for w := range f.writes {
		if err := sleepUntil(ctx, start.Add(time.Duration(w)*interval)); err != nil {
			writes.Wait()
			return res, err
		}
		writes.Go(func() {
			rec.setIssued(w, time.Now())
			wc, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := sys.write(wc, w%sys.nodes, sys.key(w), idleValue(w, f.valueBytes)); err != nil {
				errMu.Lock()
				if res.writeErrors == 0 {
					res.firstErr = err.Error()
				}
				res.writeErrors++
				errMu.Unlock()
			}
		})
	}
	writes.Wait()
	lastWrite := time.Now()
	// Bytes are counted over the same span on both systems: the writes
	// and a fixed tail (convergence stragglers of the slower system, and
	// the idle traffic of both, fall in it alike).
	byteWindowEnd := start.Add(time.Duration(f.writes)*interval + f.tail)
	var b2 gossipBytes
	counted := false
	for {
		if !counted && !time.Now().Before(byteWindowEnd) {
			if b2, err = sys.sent(ctx); err != nil {
				return res, err
			}
			res.loadWindow = time.Since(start)
			res.loadCPU = meter.stop()
			counted = true
		}
		done := rec.complete() >= f.writes-res.writeErrors || time.Since(lastWrite) >= f.settle
		if done && counted {
			break
		}
		select {
		case err := <-watchErrs:
			return res, err
		default:
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return res, err
		}
	}
	load := b2.sub(b1)
	res.bytesPerNode = load.total() / float64(sys.nodes)
	res.breakdown = gossipBytes{udp: load.udp / float64(sys.nodes), tcp: load.tcp / float64(sys.nodes), kvAE: load.kvAE / float64(sys.nodes),
		viaBroadcast: load.viaBroadcast, viaAE: load.viaAE, pushesSent: load.pushesSent, pushesDeferred: load.pushesDeferred}
	res.loadRate = res.bytesPerNode / res.loadWindow.Seconds()

	rec.mu.Lock()
	defer rec.mu.Unlock()
	for w := range f.writes {
		if rec.count[w] == sys.nodes {
			res.converged = append(res.converged, rec.last[w].Sub(rec.issued[w]))
		} else if !rec.issued[w].IsZero() {
			res.missing += sys.nodes - rec.count[w]
		}
	}
	slices.Sort(res.converged)
	return res, nil
}

// latencies returns the convergence p50, p99 and max, "-" without any.
func (r propResult) latencies() (p50, p99, mx string) {
	if len(r.converged) == 0 {
		return "-", "-", "-"
	}
	return ms(percentile(r.converged, 0.5)), ms(percentile(r.converged, 0.99)), ms(r.converged[len(r.converged)-1])
}

// cores returns the average cores the processes used over the phase,
// false when it was not measured.
func (u cpuUse) cores() (float64, bool) {
	if u.err != nil || u.total == 0 {
		return 0, false
	}
	wall := u.total.Seconds() / float64(runtime.NumCPU())
	return u.servers.Seconds() / wall, true
}

// coresText is cores as text, "-" when not measured.
func (u cpuUse) coresText() string {
	c, ok := u.cores()
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.2f", c)
}

func (r propResult) print(out io.Writer) {
	tw := newTable(out, "system\tnodes\twrites\tconverged\tp50\tp99\tmax\tmissing deliveries\tidle B/node/s\tload B/node/s\tload window\t")
	p50, p99, mx := r.latencies()
	fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t%.0f\t%.0f\t%.1fs\t\n", r.system, r.nodes, r.writes, len(r.converged),
		p50, p99, mx, r.missing, r.idleRate, r.loadRate, r.loadWindow.Seconds())
	_ = tw.Flush()
	if r.writeErrors > 0 {
		fmt.Fprintf(out, "  %s: %d writes failed; the first: %s\n", r.system, r.writeErrors, r.firstErr)
	}
	cores := func(u cpuUse) string {
		if _, ok := u.cores(); !ok {
			return "-"
		}
		return fmt.Sprintf("%s cores (machine %.0f%% busy)", u.coresText(), 100*float64(u.busy)/float64(u.total))
	}
	fmt.Fprintf(out, "  %s agents' CPU: idle %s, load %s\n", r.system, cores(r.idleCPU), cores(r.loadCPU))
	fmt.Fprintf(out, "  %s bytes per node in the load window: udp %.0f  tcp %.0f", r.system, r.breakdown.udp, r.breakdown.tcp)
	if r.breakdown.kvAE > 0 {
		fmt.Fprintf(out, " (kv anti-entropy before compression %.0f)", r.breakdown.kvAE)
	}
	if b := r.breakdown; b.viaBroadcast+b.viaAE > 0 {
		fmt.Fprintf(out, "\n  %s versions applied in the load window: by broadcast %.0f, by anti-entropy %.0f (%.2f%%); pushes sent %.0f, deferred %.0f",
			r.system, b.viaBroadcast, b.viaAE, 100*b.viaAE/(b.viaBroadcast+b.viaAE), b.pushesSent, b.pushesDeferred)
	}
	fmt.Fprintln(out)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func sleepUntil(ctx context.Context, at time.Time) error {
	if d := time.Until(at); d > 0 {
		return sleepCtx(ctx, d)
	}
	return ctx.Err()
}
