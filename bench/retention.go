package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func init() {
	register(scenario{
		name:    "log-retention",
		summary: "issue #15: N entries retained in one log (1 and 3 nodes): RSS, disk, restart-to-ready, reads, snapshots; vs a JetStream file stream",
		run:     runRetention,
	})
}

// retLogName is the shoal log the scenario fills.
const retLogName = "retention"

// retMaxBatch is the largest batch POST /v1/logs/{name} takes.
const retMaxBatch = 1000

// Timeouts of the scenario's phases: every wait is bounded.
const (
	retRequestTimeout = 2 * time.Minute  // one publish batch or one read page
	retRestartTimeout = 10 * time.Minute // restart until ready and complete
	retSnapshotWait   = 80 * time.Second // raft checks its threshold every 30-60 s
)

// retOpts are the scenario's parsed flags.
type retOpts struct {
	entries, size, batch, publishers, readEntries int
	nodes                                         []int
	snapThreshold                                 int // 0: derived from the batches, see threshold
	kill                                          bool
	peer                                          bool
}

// threshold is the --snapshot-threshold given to shoal: the flag, or a
// quarter of the run's raft entries (one per batch), from 16 up to shoal's
// default of 8192, so that a run of any size takes snapshots to measure.
func (o retOpts) threshold() int {
	if o.snapThreshold > 0 {
		return o.snapThreshold
	}
	batches := (o.entries + o.batch - 1) / o.batch
	return min(max(batches/4, 16), 8192)
}

func runRetention(ctx context.Context, args []string, out io.Writer) (err error) {
	fs := flag.NewFlagSet("bench log-retention", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	entries := fs.Int("entries", 10_000_000, "entries published to the one log (and messages to the JetStream stream)")
	size := fs.Int("size", 256, "bytes of each entry's data (a JSON string, quotes included) and of each JetStream message")
	nodesFlag := fs.String("nodes", "1,3", "comma-separated cluster sizes to run, each in turn (1 and/or 3)")
	repo := fs.String("repo", "..", "shoal repository to build the binary from")
	batch := fs.Int("batch", retMaxBatch, "entries per POST /v1/logs/{name} (JetStream: async publishes between waits for their acks)")
	publishers := fs.Int("publishers", 4, "concurrent publishers, each sending one batch at a time to the leader")
	readEntries := fs.Int("read-entries", 200_000, "entries read from the oldest and from the newest offset (pages of 1000), at most -entries")
	snapThreshold := fs.Int("snapshot-threshold", 0, "shoal's --snapshot-threshold in raft entries (0: a quarter of the run's batches, 16 to 8192)")
	restartSignal := fs.String("restart-signal", "term", "how the nodes are stopped before the restart: term (SIGTERM, SIGKILL after 5s) or kill (SIGKILL)")
	peerFlag := fs.String("peer", "jetstream", "jetstream, or none for shoal alone")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: bench log-retention [flags]\n\nFor each cluster size: publish -entries entries of -size bytes to one shoal log\n(batches, concurrent publishers), then measure each node's RSS, disk, snapshots,\nrestart-to-ready and read throughput from the oldest and the newest offsets; then\nthe same volume into a NATS JetStream file stream (R1 or R3) for its RSS, disk and\nrestart time. One system runs at a time.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := retOpts{entries: *entries, size: *size, batch: *batch, publishers: *publishers,
		readEntries: min(*readEntries, *entries), snapThreshold: *snapThreshold}
	for s := range strings.SplitSeq(*nodesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || (n != 1 && n != 3) || slices.Contains(o.nodes, n) {
			return fmt.Errorf("-nodes: want 1 and/or 3, each once, not %q", *nodesFlag)
		}
		o.nodes = append(o.nodes, n)
	}
	switch *restartSignal {
	case "term":
	case "kill":
		o.kill = true
	default:
		return fmt.Errorf("-restart-signal must be term or kill, not %q", *restartSignal)
	}
	switch *peerFlag {
	case "jetstream":
		o.peer = true
	case "none":
	default:
		return fmt.Errorf("-peer must be jetstream or none, not %q", *peerFlag)
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.entries < 1 || o.publishers < 1 || o.readEntries < 0 || o.snapThreshold < 0:
		return errors.New("-entries and -publishers must be at least 1, -read-entries and -snapshot-threshold not negative")
	case o.size < 2:
		return errors.New("-size must be at least 2 (a JSON string)")
	case o.batch < 1 || o.batch > retMaxBatch:
		return fmt.Errorf("-batch must be from 1 to %d", retMaxBatch)
	}

	e, err := newEnv(out)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "stopping everything and removing", e.dir)
		if cerr := e.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	// Shoal keeps each entry in its log's segments and, until a snapshot
	// and the trailing logs let raft drop it, in the raft log too; the
	// JetStream stream once per replica. One cluster at a time.
	maxNodes := slices.Max(o.nodes)
	if err := checkFreeSpace(e.dir, int64(o.entries)*int64(o.size+64)*3*int64(maxNodes)+1<<30); err != nil {
		return fmt.Errorf("%w (-entries)", err)
	}

	fmt.Fprintln(out, "building shoal from", *repo)
	shoalBin, err := buildShoal(ctx, e, *repo)
	if err != nil {
		return err
	}
	var natsBin string
	if o.peer {
		if natsBin, err = findNatsServer(ctx, out); err != nil {
			return err
		}
	}
	m := describeMachine(ctx, e.dir)
	versions := [][2]string{{"shoal", (&shoalCluster{bin: shoalBin}).version(ctx) + " (built from " + *repo + ")"}}
	if o.peer {
		versions = append(versions, [2]string{"nats", natsServerDescription(ctx, natsBin) + "; R1 keeps nats' default sync_interval"})
	}
	m.print(out, versions)
	fmt.Fprintf(out, "load:    %d entries of %d bytes into one log, batches of %d, %d publishers to the leader; reads: %d entries from the oldest and from the newest offset, pages of 1000, one reader\n",
		o.entries, o.size, o.batch, o.publishers, o.readEntries)
	fmt.Fprintf(out, "shoal:   --log-max-entries=%d and PUT max_entries 0 (no limit), --snapshot-threshold=%d raft entries (shoal's default 2048; --snapshot-bytes at its default, 64 MiB), restart by SIG%s\n\n",
		o.entries+1, o.threshold(), strings.ToUpper(*restartSignal))

	var results [][2]*retResult
	for _, n := range o.nodes {
		var pair [2]*retResult
		fmt.Fprintf(out, "== %d node(s): shoal\n", n)
		if pair[0], err = runShoalRetention(ctx, out, shoalBin, n, o); err != nil {
			return fmt.Errorf("shoal, %d node(s): %w", n, err)
		}
		if o.peer {
			fmt.Fprintf(out, "== %d node(s): jetstream R%d\n", n, n)
			if pair[1], err = runJetStreamRetention(ctx, out, natsBin, n, o); err != nil {
				return fmt.Errorf("jetstream, %d node(s): %w", n, err)
			}
		}
		results = append(results, pair)
		fmt.Fprintln(out)
	}
	for _, pair := range results {
		printRetention(out, pair, o)
	}
	return nil
}

// retResult is what one system measured on one cluster size.
type retResult struct {
	system  string
	nodes   int
	publish time.Duration
	// Per node, after the publish (and the snapshot wait), after the
	// restart (ready and complete) and, for shoal, after the reads.
	rss, hwm, disk         []int64
	rssRestart, rssReads   []int64
	diskDetail             string
	stop                   time.Duration // until every node exited
	ready                  time.Duration // restart until every node answers ready
	complete               time.Duration // restart until every node serves the last entry
	readOldest, readNewest float64       // entries/s
	snaps                  snapshotStats
	metrics                string // notable /metrics samples of the first node
	rssKinds               string // RssAnon and RssFile of each node after the publish
}

// snapshotStats describes the raft snapshots the nodes took, read from
// hashicorp/raft's log lines and the snapshot directories.
type snapshotStats struct {
	taken     int           // on all nodes, during the publish and the wait after it
	last, max time.Duration // duration of the last one and the longest
	lastIndex uint64        // raft index of the last one (first node)
	raftBytes int64         // du of <data dir>/raft/snapshots, largest node
	pinned    int64         // disk held only by the log module's snapshot links, largest node
	waited    string        // how the wait for a final snapshot ended
}

func maxOf(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	return slices.Max(v)
}

func sumOf(v []int64) int64 {
	var s int64
	for _, x := range v {
		s += x
	}
	return s
}

// ---------------------------------------------------------------- shoal

func runShoalRetention(ctx context.Context, out io.Writer, bin string, n int, o retOpts) (res *retResult, err error) {
	pe, err := newEnv(out)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := pe.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	res = &retResult{system: "shoal", nodes: n}
	label := fmt.Sprintf("shoal%d", n)
	c, err := startShoalCluster(pe, bin, label, n, n,
		"--log-max-entries", strconv.Itoa(o.entries+1),
		"--snapshot-threshold", strconv.Itoa(o.threshold()))
	if err != nil {
		return nil, err
	}
	if err := c.wait(ctx, readyTimeout); err != nil {
		return nil, err
	}
	li, err := c.leader(ctx)
	if err != nil {
		return nil, err
	}
	leader := c.nodes[li]
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: o.publishers + 2}, Timeout: retRequestTimeout}
	defer hc.CloseIdleConnections()
	if err := shoalPut(ctx, hc, leader.httpAddr, `{"max_entries":0}`); err != nil {
		return nil, err
	}

	fmt.Fprintf(out, "publishing %d entries to %s (leader %s)\n", o.entries, retLogName, leader.name)
	start := time.Now()
	if err := shoalFill(ctx, hc, leader.httpAddr, o, shoalAlive(c)); err != nil {
		return nil, err
	}
	res.publish = time.Since(start)
	fmt.Fprintf(out, "published in %v (%.0f entries/s)\n", res.publish.Round(time.Millisecond), float64(o.entries)/res.publish.Seconds())

	// Wait until raft took the snapshot the run's size calls for.
	last, err := shoalRaftLastIndex(ctx, leader.httpAddr)
	if err != nil {
		return nil, err
	}
	res.snaps.waited = waitSnapshots(ctx, c, last, uint64(o.threshold()))
	fmt.Fprintf(out, "snapshots: %s\n", res.snaps.waited)
	time.Sleep(2 * time.Second) // let the last batch's garbage be collected as in a steady state
	dataDirs := make([]string, n)
	for i, node := range c.nodes {
		dataDirs[i] = pe.path("data", label+"-"+node.name)
	}
	if res.rss, res.hwm, err = rssOf(pidsOf(shoalProcs(c))); err != nil {
		return nil, err
	}
	res.rssKinds = rssKinds(pidsOf(shoalProcs(c)))
	var details []string
	for i, d := range dataDirs {
		total, err := du(d, "")
		if err != nil {
			return nil, err
		}
		res.disk = append(res.disk, total)
		raftWAL, _ := du(filepath.Join(d, "raft", "wal"), "")
		raftSnaps, _ := du(filepath.Join(d, "raft", "snapshots"), "")
		segs, _ := du(filepath.Join(d, "modules", "log", "logs"), "")
		withoutLinks, _ := du(d, filepath.Join(d, "modules", "log", "snapshots"))
		res.snaps.raftBytes = max(res.snaps.raftBytes, raftSnaps)
		res.snaps.pinned = max(res.snaps.pinned, total-withoutLinks)
		if i == 0 {
			details = append(details, fmt.Sprintf("%s: log segments %s, raft wal %s, raft snapshots %s, pinned by log snapshot links %s",
				c.nodes[i].name, fmtBytes(segs), fmtBytes(raftWAL), fmtBytes(raftSnaps), fmtBytes(total-withoutLinks)))
		}
	}
	res.diskDetail = strings.Join(details, "; ")
	if snap, err := scrape(ctx, leader.httpAddr); err == nil {
		res.metrics = notableMetrics(snap)
	}
	res.snaps.taken, res.snaps.last, res.snaps.max, res.snaps.lastIndex = snapshotsFromLogs(shoalProcs(c))

	// Restart: stop every node, start them again, time until ready.
	fmt.Fprintln(out, "restarting")
	res.stop = stopProcs(shoalProcs(c), o.kill)
	start = time.Now()
	if err := c.restart(pe, c.nodes); err != nil {
		return nil, err
	}
	if res.ready, err = pollAll(ctx, start, retRestartTimeout, shoalProcs(c), len(c.nodes), func(ctx context.Context, i int) error {
		return c.nodes[i].client.Ready(ctx)
	}); err != nil {
		return nil, fmt.Errorf("restart to ready: %w", err)
	}
	if res.complete, err = pollAll(ctx, start, retRestartTimeout, shoalProcs(c), len(c.nodes), func(ctx context.Context, i int) error {
		return shoalHasEntry(ctx, hc, c.nodes[i].httpAddr, uint64(o.entries))
	}); err != nil {
		return nil, fmt.Errorf("restart to complete: %w", err)
	}
	fmt.Fprintf(out, "ready %v, complete %v after the start\n", res.ready.Round(time.Millisecond), res.complete.Round(time.Millisecond))
	if err := c.wait(ctx, readyTimeout); err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Second)
	if res.rssRestart, _, err = rssOf(pidsOf(shoalProcs(c))); err != nil {
		return nil, err
	}

	// Reads: on the first node (a follower in a cluster, unless it leads).
	reader := c.nodes[0]
	if o.readEntries > 0 {
		if res.readOldest, err = shoalRead(ctx, hc, reader.httpAddr, 1, o.readEntries); err != nil {
			return nil, err
		}
		if res.readNewest, err = shoalRead(ctx, hc, reader.httpAddr, uint64(o.entries-o.readEntries+1), o.readEntries); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "reads on %s: oldest %.0f entries/s, newest %.0f entries/s\n", reader.name, res.readOldest, res.readNewest)
	}
	if res.rssReads, _, err = rssOf(pidsOf(shoalProcs(c))); err != nil {
		return nil, err
	}
	return res, nil
}

// shoalPut sends PUT /v1/logs/retention with body.
func shoalPut(ctx context.Context, hc *http.Client, addr, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+addr+"/v1/logs/"+retLogName, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("configure log: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("configure log: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// batchBody returns the body of a batch publish of n entries without ids.
func batchBody(n int, value []byte) []byte {
	var b bytes.Buffer
	b.Grow(n * (len(value) + 12))
	b.WriteString(`{"entries":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"data":`)
		b.Write(value)
		b.WriteByte('}')
	}
	b.WriteString("]}")
	return b.Bytes()
}

// fill runs o.publishers workers that claim batches until o.entries are
// published; send publishes one batch of n entries. The first error
// stops every worker.
func fill(ctx context.Context, o retOpts, alive func() error, send func(ctx context.Context, n int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var claimed atomic.Int64
	var wg sync.WaitGroup
	for range o.publishers {
		wg.Go(func() {
			for ctx.Err() == nil {
				first := claimed.Add(int64(o.batch)) - int64(o.batch)
				if first >= int64(o.entries) {
					return
				}
				n := int(min(int64(o.batch), int64(o.entries)-first))
				if err := send(ctx, n); err != nil {
					if aerr := alive(); aerr != nil {
						err = aerr
					}
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// shoalFill publishes o.entries entries to the leader at addr.
func shoalFill(ctx context.Context, hc *http.Client, addr string, o retOpts, alive func() error) error {
	value := makeValue(o.size)
	full := batchBody(o.batch, value)
	url := "http://" + addr + "/v1/logs/" + retLogName
	return fill(ctx, o, alive, func(ctx context.Context, n int) error {
		body := full
		if n != o.batch {
			body = batchBody(n, value)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		b, rerr := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("publish: %s: %.300s", resp.Status, bytes.TrimSpace(b))
		}
		return rerr
	})
}

// getJSON decodes the JSON answer to GET http://addr+path into v.
func getJSON(ctx context.Context, hc *http.Client, addr, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("get %s: %s: %.300s", path, resp.Status, bytes.TrimSpace(b))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("get %s: %w", path, err)
	}
	return nil
}

// shoalRaftLastIndex returns the last raft index of the node at addr.
func shoalRaftLastIndex(ctx context.Context, addr string) (uint64, error) {
	var st struct {
		Raft struct {
			LastIndex uint64 `json:"last_index"`
		} `json:"raft"`
	}
	if err := getJSON(ctx, metricsClient, addr, "/v1/status", &st); err != nil {
		return 0, err
	}
	return st.Raft.LastIndex, nil
}

// readPage is the part of GET /v1/logs/{name} the reads decode.
type readPage struct {
	Entries []struct {
		Index uint64 `json:"index"`
	} `json:"entries"`
	Next uint64 `json:"next"`
}

// shoalHasEntry checks that the node at addr serves entry index.
func shoalHasEntry(ctx context.Context, hc *http.Client, addr string, index uint64) error {
	var p readPage
	if err := getJSON(ctx, hc, addr, fmt.Sprintf("/v1/logs/%s?from=%d&limit=1", retLogName, index), &p); err != nil {
		return err
	}
	if len(p.Entries) != 1 || p.Entries[0].Index != index {
		return fmt.Errorf("entry %d not served yet (%d entries in the answer)", index, len(p.Entries))
	}
	return nil
}

// shoalRead reads count entries from from on in pages of 1000 and
// returns entries/s.
func shoalRead(ctx context.Context, hc *http.Client, addr string, from uint64, count int) (float64, error) {
	start := time.Now()
	read := 0
	for read < count {
		limit := min(1000, count-read)
		var p readPage
		if err := getJSON(ctx, hc, addr, fmt.Sprintf("/v1/logs/%s?from=%d&limit=%d", retLogName, from, limit), &p); err != nil {
			return 0, fmt.Errorf("read from %d: %w", from, err)
		}
		if len(p.Entries) == 0 || p.Entries[0].Index != from || p.Next != from+uint64(len(p.Entries)) {
			return 0, fmt.Errorf("read from %d: %d entries, next %d", from, len(p.Entries), p.Next)
		}
		read += len(p.Entries)
		from = p.Next
	}
	return float64(read) / time.Since(start).Seconds(), nil
}

// snapEvent is one of hashicorp/raft's snapshot lines in shoal's text
// log: time=... msg="starting snapshot up to" (or "snapshot complete up
// to") ... index=N.
type snapEvent struct {
	at    time.Time
	index uint64
	done  bool
}

// snapshotEvents reads the snapshot lines of p's log.
func snapshotEvents(p *proc) []snapEvent {
	f, err := os.Open(p.logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var evs []snapEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var done bool
		switch {
		case strings.Contains(line, `msg="starting snapshot up to"`):
		case strings.Contains(line, `msg="snapshot complete up to"`):
			done = true
		default:
			continue
		}
		ev := snapEvent{done: done}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "time="); ok {
				ev.at, _ = time.Parse(time.RFC3339Nano, v)
			} else if v, ok := strings.CutPrefix(f, "index="); ok {
				ev.index, _ = strconv.ParseUint(v, 10, 64)
			}
		}
		evs = append(evs, ev)
	}
	return evs
}

// snapshotsFromLogs pairs the start and completion lines of every node's
// snapshots: how many completed, the duration of the first node's last
// one and the longest anywhere.
func snapshotsFromLogs(ps []*proc) (taken int, last, longest time.Duration, lastIndex uint64) {
	for i, p := range ps {
		started := map[uint64]time.Time{}
		for _, ev := range snapshotEvents(p) {
			if !ev.done {
				started[ev.index] = ev.at
				continue
			}
			t0, ok := started[ev.index]
			if !ok {
				continue
			}
			d := ev.at.Sub(t0)
			taken++
			longest = max(longest, d)
			if i == 0 {
				last, lastIndex = d, ev.index
			}
		}
	}
	return taken, last, longest, lastIndex
}

// lastSnapshot returns the index of p's last completed snapshot, 0 if none.
func lastSnapshot(p *proc) uint64 {
	var idx uint64
	for _, ev := range snapshotEvents(p) {
		if ev.done {
			idx = max(idx, ev.index)
		}
	}
	return idx
}

// waitSnapshots waits, for at most retSnapshotWait, until every node took
// the snapshot raft owes at last index last: one less than threshold
// entries behind it. Raft checks every 30 to 60 s.
func waitSnapshots(ctx context.Context, c *shoalCluster, last, threshold uint64) string {
	start := time.Now()
	deadline := time.After(retSnapshotWait)
	for {
		behind := uint64(0)
		for _, node := range c.nodes {
			if s := lastSnapshot(node.proc); last-min(s, last) >= threshold {
				behind++
			}
		}
		if behind == 0 {
			return fmt.Sprintf("every node's last snapshot is less than %d raft entries behind the last index %d (waited %v)", threshold, last, time.Since(start).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return "wait interrupted"
		case <-deadline:
			return fmt.Sprintf("%d node(s) had no snapshot within %d raft entries of index %d after %v", behind, threshold, last, retSnapshotWait)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// notableMetrics picks the snapshot and log-store samples of a /metrics
// page, sorted.
func notableMetrics(snap promSnapshot) string {
	var parts []string
	for k, v := range snap {
		if strings.Contains(k, "snapshot") && strings.HasPrefix(k, "shoal_") ||
			slices.Contains([]string{"shoal_log_disk_bytes", "shoal_log_segments", "shoal_log_cache_bytes", "shoal_log_entries",
				"go_memstats_heap_alloc_bytes", "go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes",
				"go_memstats_heap_released_bytes", "go_memstats_sys_bytes"}, k) {
			parts = append(parts, fmt.Sprintf("%s %g", k, v))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// ------------------------------------------------------------ jetstream

func runJetStreamRetention(ctx context.Context, out io.Writer, bin string, n int, o retOpts) (res *retResult, err error) {
	pe, err := newEnv(out)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := pe.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	res = &retResult{system: "jetstream", nodes: n}
	var jc *jetstreamCluster
	var confs []string
	if n == 1 {
		jc, err = startJetStreamSingle(pe, bin)
		confs = []string{pe.path("jetstream-j1.conf")}
	} else {
		jc, err = startJetStream(pe, bin, n)
		for _, s := range jc.servers {
			confs = append(confs, pe.path("jetstream-"+s.name+".conf"))
		}
	}
	if err != nil {
		return nil, err
	}
	var conns []*jetstreamConn
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	if err := pollReady(ctx, readyTimeout, "jetstream not ready", jetstreamProcs(jc), func(ctx context.Context) error {
		return natsHealthy(ctx, jc)
	}); err != nil {
		return nil, err
	}
	c0, err := jc.connect(0)
	if err != nil {
		return nil, err
	}
	conns = append(conns, c0)
	if err := jc.createStream(ctx, c0, readyTimeout); err != nil {
		return nil, err
	}
	li, err := jc.streamLeader(ctx, c0, false)
	if err != nil {
		return nil, err
	}
	// Each publisher has its own connection to the stream's leader.
	pubs := make([]jetstream.JetStream, o.publishers)
	for i := range pubs {
		c, err := jc.connect(li)
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
		if pubs[i], err = jetstream.New(c.nc, jetstream.WithPublishAsyncMaxPending(2*o.batch)); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(out, "publishing %d messages to stream %s (leader %s)\n", o.entries, jetstreamStream, jc.servers[li].name)
	value := makeValue(o.size)
	var next atomic.Int64
	start := time.Now()
	err = fill(ctx, o, procsAlive(jetstreamProcs(jc)), func(ctx context.Context, n int) error {
		js := pubs[int(next.Add(1))%len(pubs)]
		futures := make([]jetstream.PubAckFuture, 0, n)
		for range n {
			f, err := js.PublishAsync(jetstreamSubject, value)
			if err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			futures = append(futures, f)
		}
		timeout := time.After(retRequestTimeout)
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return fmt.Errorf("publish: %w", err)
			case <-ctx.Done():
				return ctx.Err()
			case <-timeout:
				return errors.New("publish: no ack within " + retRequestTimeout.String())
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.publish = time.Since(start)
	fmt.Fprintf(out, "published in %v (%.0f messages/s)\n", res.publish.Round(time.Millisecond), float64(o.entries)/res.publish.Seconds())
	if err := jetstreamWaitCount(ctx, c0, uint64(o.entries), readyTimeout); err != nil {
		return nil, err
	}
	for _, c := range conns {
		c.close()
	}
	conns = nil
	time.Sleep(2 * time.Second)
	if res.rss, res.hwm, err = rssOf(pidsOf(jetstreamProcs(jc))); err != nil {
		return nil, err
	}
	res.rssKinds = rssKinds(pidsOf(jetstreamProcs(jc)))
	for _, s := range jc.servers {
		d, err := du(pe.path("data", "jetstream-"+s.name), "")
		if err != nil {
			return nil, err
		}
		res.disk = append(res.disk, d)
	}

	fmt.Fprintln(out, "restarting")
	res.stop = stopProcs(jetstreamProcs(jc), o.kill)
	start = time.Now()
	for i, s := range jc.servers {
		p, err := pe.start(fmt.Sprintf("jetstream-%s-restart", s.name), bin, "-c", confs[i])
		if err != nil {
			return nil, err
		}
		s.proc = p
	}
	// Ready: /healthz answers 200 on every server (JetStream enabled, its
	// meta group and streams current). Complete: the stream holds every
	// message, as a client on the first server sees it.
	if res.ready, err = pollAll(ctx, start, retRestartTimeout, jetstreamProcs(jc), len(jc.servers), func(ctx context.Context, i int) error {
		body, err := getPage(ctx, jc.servers[i].httpAddr, "/healthz")
		if err != nil {
			return err
		}
		return body.Close()
	}); err != nil {
		return nil, fmt.Errorf("restart to ready: %w", err)
	}
	var cr *jetstreamConn
	if res.complete, err = pollAll(ctx, start, retRestartTimeout, jetstreamProcs(jc), 1, func(ctx context.Context, _ int) error {
		if cr == nil {
			c, err := jc.connect(0)
			if err != nil {
				return err
			}
			cr = c
			conns = append(conns, c)
		}
		return jetstreamHasCount(ctx, cr, uint64(o.entries))
	}); err != nil {
		return nil, fmt.Errorf("restart to complete: %w", err)
	}
	fmt.Fprintf(out, "ready %v, complete %v after the start\n", res.ready.Round(time.Millisecond), res.complete.Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	if res.rssRestart, _, err = rssOf(pidsOf(jetstreamProcs(jc))); err != nil {
		return nil, err
	}
	return res, nil
}

// startJetStreamSingle starts one JetStream server that is no cluster's
// member, for R1 streams, with nats' default sync_interval: with
// "always" a non-replicated stream fsyncs every message, which a batch of
// 1000 publishes could not amortize as shoal's one raft entry does.
func startJetStreamSingle(e *env, bin string) (*jetstreamCluster, error) {
	s := &jetstreamServer{name: "j1"}
	var clientAddr string
	for _, a := range []*string{&clientAddr, &s.httpAddr} {
		addr, err := e.port()
		if err != nil {
			return nil, err
		}
		*a = addr
	}
	s.clientURL = "nats://" + clientAddr
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %q\n", s.name)
	fmt.Fprintf(&b, "listen: %q\n", clientAddr)
	fmt.Fprintf(&b, "http: %q\n", s.httpAddr)
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n}\n", e.path("data", "jetstream-"+s.name))
	conf := e.path("jetstream-" + s.name + ".conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		return nil, fmt.Errorf("write config of %s: %w", s.name, err)
	}
	p, err := e.start("jetstream-"+s.name, bin, "-c", conf)
	if err != nil {
		return nil, err
	}
	s.proc = p
	return &jetstreamCluster{bin: bin, servers: []*jetstreamServer{s}}, nil
}

// natsHealthy checks every server's /healthz, and for a cluster also
// that the JetStream meta group formed (see jetstreamCluster.check).
func natsHealthy(ctx context.Context, c *jetstreamCluster) error {
	for _, s := range c.servers {
		body, err := getPage(ctx, s.httpAddr, "/healthz")
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		_ = body.Close()
	}
	if len(c.servers) > 1 {
		return c.check(ctx)
	}
	return nil
}

// jetstreamHasCount checks that the stream holds want messages.
func jetstreamHasCount(ctx context.Context, jc *jetstreamConn, want uint64) error {
	ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := jc.js.Stream(ictx, jetstreamStream)
	if err != nil {
		return err
	}
	info, err := st.Info(ictx)
	if err != nil {
		return err
	}
	if info.State.Msgs != want {
		return fmt.Errorf("stream holds %d messages, want %d", info.State.Msgs, want)
	}
	return nil
}

func jetstreamWaitCount(ctx context.Context, jc *jetstreamConn, want uint64, timeout time.Duration) error {
	return pollReady(ctx, timeout, "jetstream stream incomplete", nil, func(ctx context.Context) error {
		return jetstreamHasCount(ctx, jc, want)
	})
}

// ---------------------------------------------------------------- common

// stopProcs stops ps, with SIGTERM as stopAll does or with SIGKILL, and
// returns how long until all exited.
func stopProcs(ps []*proc, kill bool) time.Duration {
	start := time.Now()
	if !kill {
		stopAll(ps)
		return time.Since(start)
	}
	for _, p := range ps {
		p.signal(syscall.SIGKILL)
	}
	for _, p := range ps {
		<-p.done
	}
	return time.Since(start)
}

// pollAll polls check for every i below n every 50 ms until each passed
// once, and returns the time from start until the last one passed. It
// fails at timeout, or at once when one of procs exited.
func pollAll(ctx context.Context, start time.Time, timeout time.Duration, procs []*proc, n int, check func(context.Context, int) error) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	passed := make([]bool, n)
	var last error
	for {
		all := true
		for i := range n {
			if passed[i] {
				continue
			}
			rctx, rcancel := context.WithTimeout(ctx, time.Second)
			err := check(rctx, i)
			rcancel()
			if err == nil {
				passed[i] = true
				continue
			}
			all, last = false, err
		}
		if all {
			return time.Since(start), nil
		}
		for _, p := range procs {
			if err := p.exitErr(); err != nil {
				return 0, err
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("not done after %v: %w", timeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// rssOf returns each process's VmRSS and VmHWM (peak) in bytes.
func rssOf(pids []int) (rss, hwm []int64, err error) {
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			return nil, nil, fmt.Errorf("read rss of %d: %w", pid, err)
		}
		var r, h int64 = -1, -1
		for line := range strings.Lines(string(b)) {
			for key, dst := range map[string]*int64{"VmRSS:": &r, "VmHWM:": &h} {
				if v, ok := strings.CutPrefix(line, key); ok {
					kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
					if err == nil {
						*dst = kb << 10
					}
				}
			}
		}
		if r < 0 || h < 0 {
			return nil, nil, fmt.Errorf("read rss of %d: no VmRSS or VmHWM", pid)
		}
		rss, hwm = append(rss, r), append(hwm, h)
	}
	return rss, hwm, nil
}

// rssKinds describes each process's resident memory by kind: anonymous
// (heap, stacks) and file-backed (mapped files, the binary), from
// /proc/<pid>/status, "-" for a part it cannot read.
func rssKinds(pids []int) string {
	parts := make([]string, len(pids))
	for i, pid := range pids {
		anon, file := "-", "-"
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status"); err == nil {
			for line := range strings.Lines(string(b)) {
				k, v, _ := strings.Cut(line, ":")
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				if err != nil {
					continue
				}
				switch k {
				case "RssAnon":
					anon = mb(kb << 10)
				case "RssFile":
					file = mb(kb << 10)
				}
			}
		}
		parts[i] = "anon " + anon + " file " + file
	}
	return strings.Join(parts, "; ")
}

// du returns the disk space the files under dir take, as du does: the
// allocated blocks, each hard-linked file once. Files under exclude (if
// not "") are left out.
func du(dir, exclude string) (int64, error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var total int64
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // removed meanwhile (a segment trimmed, a snapshot pruned)
			}
			return err
		}
		if exclude != "" && path == exclude && d.IsDir() {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			total += info.Size()
			return nil
		}
		k := inode{uint64(st.Dev), st.Ino}
		if seen[k] {
			return nil
		}
		seen[k] = true
		total += st.Blocks * 512
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("du %s: %w", dir, err)
	}
	return total, nil
}

// ----------------------------------------------------------------- report

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

func perNode(v []int64) string {
	if len(v) == 0 {
		return "-"
	}
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.1f", float64(x)/1e6)
	}
	return "max " + mb(maxOf(v)) + " (" + strings.Join(parts, "/") + ")"
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// printRetention prints one cluster size's table, ratios and targets.
func printRetention(out io.Writer, pair [2]*retResult, o retOpts) {
	s, j := pair[0], pair[1]
	fmt.Fprintf(out, "log-retention, %d node(s), %d entries × %d bytes (MB = 10^6 bytes; per node: max (node by node))\n", s.nodes, o.entries, o.size)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	peerName := ""
	if j != nil {
		peerName = fmt.Sprintf("jetstream R%d", j.nodes)
	}
	if j == nil {
		fmt.Fprintf(tw, "\tshoal\t\n")
	} else {
		fmt.Fprintf(tw, "\tshoal\t%s\t\n", peerName)
	}
	row := func(name string, f func(r *retResult) string) {
		if j == nil {
			fmt.Fprintf(tw, "%s\t%s\t\n", name, f(s))
			return
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", name, f(s), f(j))
	}
	row("publish", func(r *retResult) string {
		return fmt.Sprintf("%s (%.0f/s)", secs(r.publish), float64(o.entries)/r.publish.Seconds())
	})
	row("RSS after publish", func(r *retResult) string { return perNode(r.rss) })
	row("peak RSS (VmHWM)", func(r *retResult) string { return perNode(r.hwm) })
	row("RSS after restart", func(r *retResult) string { return perNode(r.rssRestart) })
	row("RSS after reads", func(r *retResult) string {
		if r.rssReads == nil {
			return "-"
		}
		return perNode(r.rssReads)
	})
	row("disk (du data dir)", func(r *retResult) string { return perNode(r.disk) + ", total " + mb(sumOf(r.disk)) })
	row("stop (SIG"+map[bool]string{false: "TERM", true: "KILL"}[o.kill]+")", func(r *retResult) string { return secs(r.stop) })
	row("restart-to-ready", func(r *retResult) string { return secs(r.ready) })
	row("restart-to-last-entry", func(r *retResult) string { return secs(r.complete) })
	row("read from oldest", func(r *retResult) string {
		if r.readOldest == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f entries/s", r.readOldest)
	})
	row("read from newest", func(r *retResult) string {
		if r.readNewest == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f entries/s", r.readNewest)
	})
	_ = tw.Flush()
	fmt.Fprintf(out, "shoal snapshots: %s\n", s.snaps.describe())
	fmt.Fprintf(out, "shoal disk, first node: %s\n", s.diskDetail)
	fmt.Fprintf(out, "RSS after publish by kind, node by node: shoal %s", s.rssKinds)
	if j != nil {
		fmt.Fprintf(out, "; jetstream %s", j.rssKinds)
	}
	fmt.Fprintln(out)
	if s.metrics != "" {
		fmt.Fprintf(out, "shoal /metrics (leader, after publish): %s\n", s.metrics)
	}
	fmt.Fprintf(out, "shoal snapshot wait: %s\n", s.snaps.waited)
	if j != nil {
		ratio := func(a, b int64) string {
			if b == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f×", float64(a)/float64(b))
		}
		fmt.Fprintf(out, "ratios shoal/jetstream: RSS after publish %s, after restart %s, peak %s, disk %s, restart-to-ready %s, restart-to-last-entry %s\n",
			ratio(maxOf(s.rss), maxOf(j.rss)), ratio(maxOf(s.rssRestart), maxOf(j.rssRestart)), ratio(maxOf(s.hwm), maxOf(j.hwm)),
			ratio(maxOf(s.disk), maxOf(j.disk)),
			ratio(int64(s.ready), int64(j.ready)), ratio(int64(s.complete), int64(j.complete)))
	}
	rss := max(maxOf(s.rss), maxOf(s.rssRestart), maxOf(s.rssReads))
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	note := ""
	if o.entries != 10_000_000 {
		note = fmt.Sprintf(" (the targets are set at 10M entries; this run has %d)", o.entries)
	}
	fmt.Fprintf(out, "targets%s:\n", note)
	fmt.Fprintf(out, "  RSS ≤ 150 MB per node: %s (largest shoal node %s, after publish/restart/reads)\n", verdict(rss <= 150e6), mb(rss))
	if j != nil {
		jr := max(maxOf(j.rss), maxOf(j.rssRestart))
		fmt.Fprintf(out, "  RSS ≤ JetStream's:     %s (shoal %s, jetstream %s, largest node after publish/restart)\n", verdict(rss <= jr), mb(rss), mb(jr))
	}
	fmt.Fprintf(out, "  restart-to-ready ≤ 10 s: %s (%s; last entry served after %s)\n\n", verdict(s.ready <= 10*time.Second), secs(s.ready), secs(s.complete))
}

func (s snapshotStats) describe() string {
	if s.taken == 0 {
		return "none taken"
	}
	return fmt.Sprintf("%d taken (all nodes); last on n1 at index %d took %s, longest %s; raft snapshot dir %s, disk pinned by log snapshot links %s",
		s.taken, s.lastIndex, ms(s.last), ms(s.max), fmtBytes(s.raftBytes), fmtBytes(s.pinned))
}
