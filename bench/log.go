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
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func init() {
	register(scenario{
		name:    "log",
		summary: "shoal log publish (POST /v1/logs/bench) vs etcd put and JetStream publish, 3-node clusters side by side",
		run:     runLog,
	})
}

// logLogName is the shoal log the scenario publishes to.
const logLogName = "bench"

// clusterSize is the number of nodes of each cluster.
const clusterSize = 3

// readyTimeout bounds how long a cluster may take to elect a leader.
const readyTimeout = 60 * time.Second

func runLog(ctx context.Context, args []string, out io.Writer) (err error) {
	fs := flag.NewFlagSet("bench log", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	duration := fs.Duration("duration", 10*time.Second, "measured time of each system in each round")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured load before each measured phase")
	rounds := fs.Int("rounds", 2, "rounds; each runs shoal, then each peer in -peers order")
	clients := fs.Int("clients", 64, "concurrent clients (closed loop: each waits for its answer)")
	size := fs.Int("value-size", 256, "bytes of each value (for shoal: of the JSON data, a string)")
	targets := fs.String("targets", "all", "all: spread clients over the three nodes (client i → node i mod 3; etcd: one client balanced over all endpoints); leader: send every request to the leader (JetStream: the stream's leader)")
	peersFlag := fs.String("peers", "etcd,jetstream", "comma-separated peers to compare shoal with: etcd, jetstream")
	storesFlag := fs.String("shoal-stores", "", "comma-separated raft log stores (wal, bolt): one shoal cluster per store, each reported as shoal(<store>) (default: one cluster on shoal's default store, reported as shoal)")
	httpFlag := fs.String("shoal-http", "1.1", "comma-separated HTTP versions shoal's clients speak: 1.1 (keep-alive, one connection per request in flight) and 2 (h2c, every request of a client process multiplexed on one connection per node); each version is its own contender on the same cluster, reported as shoal/h2")
	countSyncs := fs.Bool("count-syncs", true, "count the servers' fsync, fdatasync and sync_file_range calls during the warm-ups (perf stat on syscall tracepoints, which slows the servers down, so never in a measured phase; needs perf and -warmup > 0)")
	repo := fs.String("repo", "..", "shoal repository to build the binary from")
	opTimeout := fs.Duration("op-timeout", 5*time.Second, "timeout of one operation (counted as an error)")
	baseline := fs.Bool("baseline", false, "afterwards, one more round without consensus: shoal GET /v1/health/live vs etcd serializable get (the request path alone; needs etcd in -peers)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: bench log [flags]\n\nStart a 3-node shoal cluster, a 3-member etcd cluster and a 3-server NATS JetStream\ncluster on 127.0.0.1 and compare shoal's log publish with etcd's put and JetStream's\npublish (R3 file stream, Nats-Msg-Id dedup) under the same closed-loop load.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	peers, err := parsePeers(*peersFlag)
	if err != nil {
		return err
	}
	stores, err := parseStores(*storesFlag)
	if err != nil {
		return err
	}
	httpVersions, err := parseHTTPVersions(*httpFlag)
	if err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *duration <= 0 || *warmup < 0 || *opTimeout <= 0:
		return errors.New("-duration and -op-timeout must be positive, -warmup not negative")
	case *rounds < 1 || *clients < 1:
		return errors.New("-rounds and -clients must be at least 1")
	case *size < 2:
		return errors.New("-value-size must be at least 2 (a JSON string)")
	case *targets != "all" && *targets != "leader":
		return fmt.Errorf("-targets must be all or leader, not %q", *targets)
	case *baseline && !slices.Contains(peers, peerEtcd):
		return errors.New("-baseline compares with etcd: -peers must include etcd")
	}

	e, err := newEnv(out)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "stopping clusters and removing", e.dir)
		if cerr := e.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()

	fmt.Fprintln(out, "building shoal from", *repo)
	shoalBin, err := buildShoal(ctx, e, *repo)
	if err != nil {
		return err
	}
	var etcdBin, natsBin string
	for _, p := range peers {
		switch p {
		case peerEtcd:
			etcdBin, err = findEtcd(ctx, out)
		case peerJetStream:
			natsBin, err = findNatsServer(ctx, out)
		}
		if err != nil {
			return err
		}
	}
	shoals, err := startShoalStores(e, shoalBin, stores)
	if err != nil {
		return err
	}
	var ec *etcdCluster
	if etcdBin != "" {
		if ec, err = startEtcd(e, etcdBin, clusterSize); err != nil {
			return err
		}
	}
	var jc *jetstreamCluster
	if natsBin != "" {
		if jc, err = startJetStream(e, natsBin, clusterSize); err != nil {
			return err
		}
	}
	start := time.Now()
	for _, s := range shoals {
		if err := s.cluster.wait(ctx, readyTimeout); err != nil {
			return err
		}
	}
	if ec != nil {
		if err := ec.wait(ctx, readyTimeout); err != nil {
			return err
		}
	}
	// The JetStream connections are opened here, before the stream can
	// be created, and closed before the run directory is removed.
	var jconns []*jetstreamConn
	defer func() {
		for _, c := range jconns {
			c.close()
		}
	}()
	if jc != nil {
		if err := jc.wait(ctx, readyTimeout); err != nil {
			return err
		}
		for i := range jc.servers {
			c, err := jc.connect(i)
			if err != nil {
				return err
			}
			jconns = append(jconns, c)
		}
		if err := jc.createStream(ctx, jconns[0], readyTimeout); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "clusters ready in %v\n\n", time.Since(start).Round(100*time.Millisecond))

	m := describeMachine(ctx, e.dir)
	versions := [][2]string{{"shoal", shoals[0].cluster.version(ctx)}}
	if ec != nil {
		versions = append(versions, [2]string{"etcd", etcdVersion(ctx, etcdBin)})
	}
	if jc != nil {
		versions = append(versions, [2]string{"nats", natsServerDescription(ctx, natsBin)})
	}
	m.print(out, versions)
	fmt.Fprintf(out, "load:    %d clients, %d-byte values, %d round(s) × (%v warm-up + %v measured) per system, targets=%s\n",
		*clients, *size, *rounds, *warmup, *duration, *targets)
	fmt.Fprintf(out, "shoal:   %s\n\n", describeStores(shoals))

	nonce := make([]byte, 4)
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails
	run := hex.EncodeToString(nonce)
	value := makeValue(*size)

	var cs []*contender
	var breakdowns []*shoalBreakdown
	for _, s := range shoals {
		if s.per, err = shoalTargets(ctx, s.cluster, *clients, *targets); err != nil {
			return err
		}
		for _, v := range httpVersions {
			k, b := shoalPublish(s.name+v.suffix, s.cluster, s.per, v.http2, run, value)
			cs = append(cs, k)
			breakdowns = append(breakdowns, b)
		}
	}
	nShoal := len(cs)
	var cli *clientv3.Client
	for _, p := range peers {
		switch p {
		case peerEtcd:
			if cli, err = etcdTargets(ctx, ec, *targets); err != nil {
				return err
			}
			defer cli.Close()
			cs = append(cs, etcdPut(ec, cli, *clients, run, value))
		case peerJetStream:
			jper, err := jetstreamTargets(ctx, jc, jconns, *clients, *targets)
			if err != nil {
				return err
			}
			cs = append(cs, jetstreamPublish(jc, jper, run, value))
		}
	}

	e.markLogs()
	cmp := comparison{load: load{clients: *clients, opTimeout: *opTimeout}, warmup: *warmup, duration: *duration, rounds: *rounds,
		syncs: *countSyncs}
	if err := cmp.run(ctx, out, cs); err != nil {
		return err
	}
	fmt.Fprintln(out)
	st := printTable(out, cs)
	for _, s := range cs[:nShoal] {
		for _, k := range cs[nShoal:] {
			printRatio(out, s.name, k.name, st, logTarget(k.name))
		}
	}
	printStoreRatios(out, cs[:nShoal], st)
	for i, b := range breakdowns {
		fmt.Fprintln(out)
		b.print(out, cs[i].name, st[cs[i].name])
	}
	if *baseline {
		fmt.Fprintln(out, "\nbaseline: the request path without consensus, same clients and targets, 1 round")
		bs := []*contender{shoalLive(shoals[0].cluster, shoals[0].per), etcdGet(ec, cli, run)}
		bc := cmp
		bc.rounds = 1
		if err := bc.run(ctx, out, bs); err != nil {
			return err
		}
		fmt.Fprintln(out)
		bst := printTable(out, bs)
		printRatio(out, "shoal-live", "etcd-get", bst, 1)
	}
	fmt.Fprintln(out)
	e.printNotable(out)
	return nil
}

// logTarget is the throughput ratio shoal's log publish aims for against
// a peer: 1.3× etcd's (the core-v2 target); parity with JetStream, the
// goal beyond it.
func logTarget(peer string) float64 {
	if peer == peerEtcd {
		return 1.3
	}
	return 1
}

// httpVersion is one HTTP version shoal's clients speak in the log
// scenario: each is its own contender, named with suffix.
type httpVersion struct {
	http2  bool
	suffix string // "" for HTTP/1.1, "/h2" for HTTP/2
}

// parseHTTPVersions parses -shoal-http: 1.1 and 2, each at most once.
func parseHTTPVersions(list string) ([]httpVersion, error) {
	var vs []httpVersion
	seen := map[string]bool{}
	for v := range strings.SplitSeq(list, ",") {
		v = strings.TrimSpace(v)
		if seen[v] {
			return nil, fmt.Errorf("-shoal-http: %s given twice", v)
		}
		seen[v] = true
		switch v {
		case "1.1":
			vs = append(vs, httpVersion{})
		case "2":
			vs = append(vs, httpVersion{http2: true, suffix: "/h2"})
		default:
			return nil, fmt.Errorf("-shoal-http: unknown version %q (want 1.1 or 2)", v)
		}
	}
	return vs, nil
}

// makeValue returns size bytes of printable ASCII that are also a valid
// JSON string (quotes included), so that shoal's data and etcd's value
// have the same length.
func makeValue(size int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	v := make([]byte, size)
	v[0], v[size-1] = '"', '"'
	for i := 1; i < size-1; i++ {
		v[i] = alphabet[(i*7+3)%len(alphabet)]
	}
	return v
}

// shoalTargets returns the node each client talks to: with targets "all",
// client i talks to node i mod 3 (followers forward writes to the
// leader); with "leader", every client talks to the leader.
func shoalTargets(ctx context.Context, c *shoalCluster, clients int, targets string) ([]*shoalNode, error) {
	leader, err := c.leader(ctx)
	if err != nil {
		return nil, err
	}
	per := make([]*shoalNode, clients)
	for w := range per {
		if targets == "leader" {
			per[w] = c.nodes[leader]
		} else {
			per[w] = c.nodes[w%len(c.nodes)]
		}
	}
	return per, nil
}

// shoalPublish returns the shoal contender called name: each op publishes
// one entry with a unique id to the log "bench" through the Go client.
func shoalPublish(name string, c *shoalCluster, per []*shoalNode, http2 bool, run string, value []byte) (*contender, *shoalBreakdown) {
	seq := make([]uint64, len(per)) // seq[w] is owned by worker w
	data := json.RawMessage(value)
	b := &shoalBreakdown{cluster: c, nodes: make([]nodeBreakdown, len(c.nodes))}
	k := &contender{
		name: name,
		op: func(ctx context.Context, w int) error {
			seq[w]++
			id := fmt.Sprintf("%s-%d-%d", run, w, seq[w])
			cl := per[w].client
			if http2 {
				cl = per[w].client2
			}
			_, err := cl.Publish(ctx, logLogName, id, data)
			return err
		},
		around: b.around,
		pids:   pidsOf(shoalProcs(c)),
		alive:  shoalAlive(c),
	}
	return k, b
}

// shoalLive returns the baseline contender: each op is a liveness check,
// which passes through the same HTTP stack and middleware as a publish
// but touches neither Raft nor the disk.
func shoalLive(c *shoalCluster, per []*shoalNode) *contender {
	return &contender{
		name:  "shoal-live",
		op:    func(ctx context.Context, w int) error { return per[w].client.Live(ctx) },
		pids:  pidsOf(shoalProcs(c)),
		alive: shoalAlive(c),
	}
}

func shoalAlive(c *shoalCluster) func() error {
	return func() error {
		for _, n := range c.nodes {
			if err := n.proc.exitErr(); err != nil {
				return err
			}
		}
		return nil
	}
}

// etcdTargets returns the client every worker shares: with targets "all",
// balanced over every endpoint (gRPC round robin per request; followers
// forward proposals to the leader); with "leader", knowing only the
// leader's endpoint. Close it when done.
func etcdTargets(ctx context.Context, c *etcdCluster, targets string) (*clientv3.Client, error) {
	cli, err := c.client()
	if err != nil || targets != "leader" {
		return cli, err
	}
	i, err := c.leader(ctx, cli)
	_ = cli.Close()
	if err != nil {
		return nil, err
	}
	return c.client(c.members[i].clientURL)
}

// etcdPut returns the etcd contender: each op puts one unique key.
func etcdPut(c *etcdCluster, cli *clientv3.Client, clients int, run string, value []byte) *contender {
	seq := make([]uint64, clients) // seq[w] is owned by worker w
	val := string(value)
	return &contender{
		name: "etcd",
		op: func(ctx context.Context, w int) error {
			seq[w]++
			_, err := cli.Put(ctx, fmt.Sprintf("/bench/%s/%d/%d", run, w, seq[w]), val)
			return err
		},
		pids:  pidsOf(etcdProcs(c)),
		alive: etcdAlive(c),
	}
}

// etcdGet returns the baseline contender: each op is a serializable get
// of one key, answered by the member from its local state without Raft.
func etcdGet(c *etcdCluster, cli *clientv3.Client, run string) *contender {
	key := fmt.Sprintf("/bench/%s/0/1", run)
	return &contender{
		name: "etcd-get",
		op: func(ctx context.Context, w int) error {
			_, err := cli.Get(ctx, key, clientv3.WithSerializable())
			return err
		},
		pids:  pidsOf(etcdProcs(c)),
		alive: etcdAlive(c),
	}
}

func etcdAlive(c *etcdCluster) func() error {
	return func() error {
		for _, m := range c.members {
			if err := m.proc.exitErr(); err != nil {
				return err
			}
		}
		return nil
	}
}

// The peers the log scenario can compare shoal with; a contender's name
// is its peer's name.
const (
	peerEtcd      = "etcd"
	peerJetStream = "jetstream"
)

// parsePeers parses -peers: a comma-separated list of known peers, each
// at most once, at least one.
func parsePeers(list string) ([]string, error) {
	var peers []string
	for p := range strings.SplitSeq(list, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p != peerEtcd && p != peerJetStream:
			return nil, fmt.Errorf("-peers: unknown peer %q (want %s or %s)", p, peerEtcd, peerJetStream)
		case slices.Contains(peers, p):
			return nil, fmt.Errorf("-peers: %s given twice", p)
		}
		peers = append(peers, p)
	}
	return peers, nil
}

// jetstreamTargets returns the JetStream context each client publishes
// through: with targets "all", client i uses the connection to server
// i mod 3 (a server that does not lead the stream routes the publish to
// the leader, as a follower forwards in the other systems); with
// "leader", every client uses the connection to the stream's leader.
func jetstreamTargets(ctx context.Context, c *jetstreamCluster, conns []*jetstreamConn, clients int, targets string) ([]jetstream.JetStream, error) {
	leader := -1
	if targets == "leader" {
		i, err := c.streamLeader(ctx, conns[0], false)
		if err != nil {
			return nil, fmt.Errorf("find the jetstream stream leader: %w", err)
		}
		leader = i
	}
	per := make([]jetstream.JetStream, clients)
	for w := range per {
		if leader >= 0 {
			per[w] = conns[leader].js
		} else {
			per[w] = conns[w%len(conns)].js
		}
	}
	return per, nil
}

// jetstreamPublish returns the JetStream contender: each op publishes one
// message with a unique Nats-Msg-Id to the stream's subject and waits for
// the stream leader's acknowledgement, which comes once a majority of the
// replicas has the message in its fsynced Raft log (sync_interval: always).
func jetstreamPublish(c *jetstreamCluster, per []jetstream.JetStream, run string, value []byte) *contender {
	seq := make([]uint64, len(per)) // seq[w] is owned by worker w
	return &contender{
		name: peerJetStream,
		op: func(ctx context.Context, w int) error {
			seq[w]++
			id := fmt.Sprintf("%s-%d-%d", run, w, seq[w])
			ack, err := per[w].Publish(ctx, jetstreamSubject, value, jetstream.WithMsgID(id))
			if err != nil {
				return err
			}
			if ack.Duplicate {
				// Every id is new: a duplicate means the message was not stored.
				return fmt.Errorf("publish %s: %w", id, errUnexpectedDuplicate)
			}
			return nil
		},
		pids:  pidsOf(jetstreamProcs(c)),
		alive: procsAlive(jetstreamProcs(c)),
	}
}

// errUnexpectedDuplicate: JetStream acknowledged a publish with a new
// Nats-Msg-Id as a duplicate.
var errUnexpectedDuplicate = errors.New("acknowledged as a duplicate of an earlier message")

// shoalBreakdown sums, over the measured phases, the server-side timings
// each shoal node exports at /metrics: where a publish spends its time.
type shoalBreakdown struct {
	cluster *shoalCluster
	nodes   []nodeBreakdown
	errs    []string
}

type nodeBreakdown struct {
	leader    bool // during the last measured phase
	publish   histDelta
	internal  histDelta
	local     histDelta
	forwarded histDelta
}

const (
	httpDuration  = "shoal_http_request_duration_seconds"
	applyDuration = "shoal_raft_apply_seconds"
	rpcDuration   = "shoal_peerrpc_served_call_seconds"
)

func (b *shoalBreakdown) around(ctx context.Context) func(context.Context) {
	before := b.scrapeAll(ctx)
	return func(ctx context.Context) {
		after := b.scrapeAll(ctx)
		for i := range b.nodes {
			if before[i] == nil || after[i] == nil {
				continue
			}
			n := &b.nodes[i]
			n.leader = after[i]["shoal_raft_leader"] == 1
			n.publish.add(delta(before[i], after[i], httpDuration, `method="POST",route="/v1/logs/{name}"`))
			n.internal.add(delta(before[i], after[i], rpcDuration, `method="consensus.apply"`))
			n.local.add(delta(before[i], after[i], applyDuration, `path="local",result="ok"`))
			n.forwarded.add(delta(before[i], after[i], applyDuration, `path="forwarded",result="ok"`))
		}
	}
}

func (b *shoalBreakdown) scrapeAll(ctx context.Context) []promSnapshot {
	snaps := make([]promSnapshot, len(b.cluster.nodes))
	for i, n := range b.cluster.nodes {
		s, err := scrape(ctx, n.httpAddr)
		if err != nil {
			if len(b.errs) < maxErrMsgs {
				b.errs = append(b.errs, err.Error())
			}
			continue
		}
		snaps[i] = s
	}
	return snaps
}

// print shows, per node, the mean server-side durations next to the
// client-side mean: the gap is client, network stack and queueing time.
func (b *shoalBreakdown) print(out io.Writer, name string, client stats) {
	fmt.Fprintf(out, "%s server side over the measured phases (means from each node's /metrics; client-side mean %s):\n", name, ms(client.mean))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "node\trole\tPOST /v1/logs/{name}\traft apply local\traft apply forwarded\tcluster port consensus.apply\t")
	cell := func(d histDelta) string {
		if d.count == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f× %s", d.count, ms(d.mean()))
	}
	for i, n := range b.nodes {
		role := "follower"
		if n.leader {
			role = "leader"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", b.cluster.nodes[i].name, role,
			cell(n.publish), cell(n.local), cell(n.forwarded), cell(n.internal))
	}
	_ = tw.Flush()
	fmt.Fprintln(out, "  (\"raft apply local\" on the leader covers its own publishes and the forwarded ones; on a follower,")
	fmt.Fprintln(out, "   \"raft apply forwarded\" is the whole round trip to the leader plus waiting to apply the entry locally)")
	if len(b.errs) > 0 {
		fmt.Fprintf(out, "  metrics unavailable for some phases: %s\n", strings.Join(b.errs, "; "))
	}
}

func shoalProcs(c *shoalCluster) []*proc {
	var ps []*proc
	for _, n := range c.nodes {
		ps = append(ps, n.proc)
	}
	return ps
}

func etcdProcs(c *etcdCluster) []*proc {
	var ps []*proc
	for _, m := range c.members {
		ps = append(ps, m.proc)
	}
	return ps
}
