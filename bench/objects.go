package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

func init() {
	register(scenario{
		name:    "objects",
		summary: "objectsync fan-out (one master, N websocket subscribers over 3 nodes) vs a centrifuge server with fossil delta and a plain websocket broadcast",
		run:     runObjects,
	})
}

// objectsFlags are the objects scenario's settings.
type objectsFlags struct {
	subscribers, idle, rate, size int
	appliers                      int
	duration, warmup              time.Duration
	systems                       []string
	protobuf                      bool
	centrifugeWriteDelay          time.Duration
	batchInterval                 string // --objectsync-batch-interval, "" for the default
	settle                        time.Duration
}

var objectsSystemNames = []string{"objectsync", "centrifuge", "baseline"}

func runObjects(ctx context.Context, args []string, out io.Writer) (err error) {
	fs := flag.NewFlagSet("bench objects", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	var f objectsFlags
	fs.IntVar(&f.subscribers, "subscribers", 1000, "websocket subscribers of the changing object per system (objectsync: subscriber i on node i mod 3)")
	fs.IntVar(&f.appliers, "appliers", 20, "of the subscribers, how many are real clients that apply every update and measure the latency; the others are readers that only count them (objects_readers.go)")
	fs.IntVar(&f.idle, "idle", 0, "idle connections opened to measure server memory per connection (default: -subscribers)")
	fs.IntVar(&f.rate, "rate", 100, "changes per second the master makes")
	fs.IntVar(&f.size, "object-size", 10240, "bytes of the object (canonical JSON)")
	fs.DurationVar(&f.duration, "duration", 30*time.Second, "measured time per system")
	fs.DurationVar(&f.warmup, "warmup", 3*time.Second, "unmeasured load before each measured phase")
	fs.DurationVar(&f.settle, "settle", 3*time.Second, "wait after opening the idle connections before reading the servers' RSS")
	systems := fs.String("systems", strings.Join(objectsSystemNames, ","), "comma-separated systems to run, in this order: objectsync, centrifuge, baseline")
	proto := fs.String("centrifuge-protocol", "protobuf", "protobuf or json: the centrifuge clients' protocol")
	fs.DurationVar(&f.centrifugeWriteDelay, "centrifuge-write-delay", 0, "centrifuge's WriteDelay (0, its default: none): how long its writer collects messages before a write, as objectsync's --objectsync-batch-interval does on a busy connection")
	fs.StringVar(&f.batchInterval, "objectsync-batch-interval", "", "the nodes' --objectsync-batch-interval (default: theirs, 20ms; 0: every update written at once)")
	repo := fs.String("repo", "..", "shoal repository to build the binary from")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: bench objects [flags]\n\nStart a 3-node shoal cluster (--modules objectsync), a centrifuge server and a plain\nwebsocket broadcast server on 127.0.0.1; for each in turn, measure the server memory\nper idle connection, then have one master change one field of an object -rate times\na second while -subscribers websocket clients follow it.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.idle == 0 {
		f.idle = f.subscribers
	}
	for s := range strings.SplitSeq(*systems, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(objectsSystemNames, s) || slices.Contains(f.systems, s) {
			return fmt.Errorf("-systems: unknown or repeated system %q", s)
		}
		f.systems = append(f.systems, s)
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case f.subscribers < 1 || f.idle < 1 || f.rate < 1 || f.appliers < 1:
		return errors.New("-subscribers, -appliers, -idle and -rate must be at least 1")
	case f.size < 256:
		return errors.New("-object-size must be at least 256")
	case f.duration <= 0 || f.warmup < 0 || f.settle < 0:
		return errors.New("-duration must be positive, -warmup and -settle not negative")
	case *proto != "protobuf" && *proto != "json":
		return fmt.Errorf("-centrifuge-protocol must be protobuf or json, not %q", *proto)
	}
	f.protobuf = *proto == "protobuf"

	e, err := newEnv(out)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "stopping servers and removing", e.dir)
		if cerr := e.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()

	fmt.Fprintln(out, "building shoal from", *repo)
	shoalBin, err := buildShoal(ctx, e, *repo)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program to start the peers: %w", err)
	}
	var syss []objSystem
	for _, name := range f.systems {
		switch name {
		case "objectsync":
			args := []string{"--modules", "objectsync", "--log-level", "warn"}
			if f.batchInterval != "" {
				args = append(args, "--objectsync-batch-interval", f.batchInterval)
			}
			c, err := startShoalCluster(e, shoalBin, "shoal", clusterSize, clusterSize, args...)
			if err != nil {
				return err
			}
			if err := c.wait(ctx, readyTimeout); err != nil {
				return err
			}
			syss = append(syss, &objectsyncSystem{cluster: c})
		case "centrifuge", "baseline":
			addr, p, err := startObjectsPeer(ctx, e, self, name, f.centrifugeWriteDelay)
			if err != nil {
				return err
			}
			if name == "centrifuge" {
				syss = append(syss, &centrifugeSystem{addr: addr, proc: p, protobuf: f.protobuf})
			} else {
				syss = append(syss, &baselineSystem{addr: addr, proc: p})
			}
		}
	}

	m := describeMachine(ctx, e.dir)
	versions := [][2]string{{"shoal", (&shoalCluster{bin: shoalBin}).version(ctx)}}
	for _, dep := range []string{"github.com/centrifugal/centrifuge", "github.com/centrifugal/centrifuge-go", "github.com/coder/websocket"} {
		versions = append(versions, [2]string{dep[strings.LastIndexByte(dep, '/')+1:], depVersion(dep)})
	}
	m.print(out, versions)
	obj := newObjectTemplate(f.size)
	fmt.Fprintf(out, "load:    1 master, %d changes/s of one field of a %d-byte JSON object; %d subscribers per system (%d applying clients, %d readers); %v warm-up + %v measured; %d idle connections for memory\n",
		f.rate, len(obj.at(time.Now().UnixMicro())), f.subscribers, min(f.appliers, f.subscribers), max(f.subscribers-f.appliers, 0), f.warmup, f.duration, f.idle)
	if f.centrifugeWriteDelay > 0 {
		fmt.Fprintf(out, "centrifuge: WriteDelay %v on every connection (-centrifuge-write-delay)\n", f.centrifugeWriteDelay)
	}
	if f.batchInterval != "" {
		fmt.Fprintf(out, "shoal:   --objectsync-batch-interval %s\n", f.batchInterval)
	}
	fmt.Fprintf(out, "clients: in this process (objectsync Go client; centrifuge-go %s with fossil delta; coder/websocket for the baseline); readers: coder/websocket, counting updates without applying them (centrifuge's speak protobuf)\n\n", *proto)

	e.markLogs()
	var results []objResult
	for _, s := range syss {
		r, err := runObjectsSystem(ctx, out, e, self, s, f)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name(), err)
		}
		results = append(results, r)
	}
	fmt.Fprintln(out)
	printObjectsTable(out, results, len(obj.at(time.Now().UnixMicro())))
	fmt.Fprintln(out)
	printObjectsTargets(out, results, len(obj.at(time.Now().UnixMicro())))
	fmt.Fprintln(out)
	e.printNotable(out)
	return nil
}

// startObjectsPeer starts this program as a peer server (objects-server)
// on a fresh loopback port and waits for it to answer.
func startObjectsPeer(ctx context.Context, e *env, self, kind string, writeDelay time.Duration) (string, *proc, error) {
	addr, err := e.port()
	if err != nil {
		return "", nil, err
	}
	p, err := e.start(kind, self, "objects-server", "-kind", kind, "-addr", addr, "-write-delay", writeDelay.String())
	if err != nil {
		return "", nil, err
	}
	err = pollReady(ctx, 30*time.Second, kind+" not ready", []*proc{p}, func(ctx context.Context) error {
		rc, err := getPage(ctx, addr, "/ready")
		if err == nil {
			_ = rc.Close()
		}
		return err
	})
	return addr, p, err
}

// depVersion is the version of module path this program was built with.
func depVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				return d.Version
			}
		}
	}
	return "unknown"
}

// objectTemplate is the object the master changes: fields f000, f001, …
// holding fixed strings, then sent_us, the send time.
type objectTemplate struct{ prefix []byte }

func newObjectTemplate(size int) objectTemplate {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := []byte{'{'}
	tail := len(objSentField) + 16 + 1 // the time and the closing brace
	for i := 0; len(b) < size-tail; i++ {
		n := min(80, size-tail-len(b)-10)
		if n < 1 {
			break
		}
		b = fmt.Appendf(b, `"f%03d":"`, i)
		for j := range n {
			b = append(b, alphabet[(i*31+j*7)%len(alphabet)])
		}
		b = append(b, '"', ',')
	}
	b = append(b, objSentField...)
	return objectTemplate{prefix: b}
}

// at returns the object with sent_us = us.
func (t objectTemplate) at(us int64) []byte {
	b := make([]byte, 0, len(t.prefix)+24)
	b = append(b, t.prefix...)
	b = strconv.AppendInt(b, us, 10)
	return append(b, '}')
}

// objResult is what one system measured.
type objResult struct {
	name        string
	subscribers int
	sentRate    float64 // changes/s the master sent over its whole run (warm-up and measured phase)
	sendErrs    int64
	firstErr    string
	masterCPU   time.Duration // CPU time of the master's process in the measured phase
	deliveries  int64         // updates the subscribers applied during it
	wire        int64         // bytes the subscribers read during it
	window      time.Duration
	lat         []time.Duration // sorted
	cpu         cpuUse
	idleConns   int
	idleRSS     int64 // bytes of server RSS the idle connections added
	rssBefore   int64
	counters    map[string]float64 // objectsync: server counters gained in the measured phase
}

func runObjectsSystem(ctx context.Context, out io.Writer, e *env, self string, s objSystem, f objectsFlags) (objResult, error) {
	r := objResult{name: s.name(), subscribers: f.subscribers, idleConns: f.idle}

	// Memory per idle connection, first, on a server that has carried no
	// load yet.
	fmt.Fprintf(out, "%s: opening %d idle connections ... ", s.name(), f.idle)
	rss0, err := sumRSS(s.pids())
	if err != nil {
		return r, err
	}
	closeIdle, err := s.openIdle(ctx, f.idle)
	if err != nil {
		return r, err
	}
	if err := sleepCtx(ctx, f.settle); err != nil {
		closeIdle()
		return r, err
	}
	rss1, err := sumRSS(s.pids())
	closeIdle()
	if err != nil {
		return r, err
	}
	r.rssBefore, r.idleRSS = rss0, rss1-rss0
	fmt.Fprintf(out, "RSS %.1f → %.1f MiB (%.1f KiB each)\n", mib(rss0), mib(rss1), float64(r.idleRSS)/1024/float64(f.idle))
	if err := sleepCtx(ctx, time.Second); err != nil {
		return r, err
	}

	// The fan-out.
	fmt.Fprintf(out, "%s: master and %d subscribers ... ", s.name(), f.subscribers)
	system, addr := s.masterTarget()
	startFile := e.path(fmt.Sprintf("start-%s-%d", s.name(), len(e.procs)))
	mp, err := e.start(fmt.Sprintf("master-%s-%d", s.name(), len(e.procs)), self, "objects-master",
		"-system", system, "-addr", addr, "-rate", strconv.Itoa(f.rate), "-object-size", strconv.Itoa(f.size),
		"-start-file", startFile)
	if err != nil {
		return r, err
	}
	defer stopAll([]*proc{mp})
	err = pollReady(ctx, 30*time.Second, "master not ready", []*proc{mp}, func(context.Context) error {
		if b, _ := os.ReadFile(mp.logPath); !strings.Contains(string(b), "ready\n") {
			return errors.New("no ready line yet")
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	rec := &objRecorder{}
	appliers := min(f.appliers, f.subscribers)
	subs, err := s.openSubs(ctx, appliers, rec)
	if err != nil {
		return r, err
	}
	defer subs.close()
	if n := f.subscribers - appliers; n > 0 {
		readers, err := s.openReaders(ctx, n, &rec.wire)
		if err != nil {
			return r, fmt.Errorf("readers: %w", err)
		}
		defer readers.close()
		subs = bothSubs{subs, readers}
	}
	// Every subscriber is in: the master starts changing the object.
	if err := os.WriteFile(startFile, nil, 0o600); err != nil {
		return r, err
	}
	if err := sleepCtx(ctx, f.warmup); err != nil {
		return r, err
	}
	// deliveries reads every client's statistics, which waits for each
	// client's lock: slow when the clients are saturated. The server's
	// counters are read next to the start and end of the window.
	wire0, del0 := rec.wire.Load(), subs.deliveries()
	var counters0 map[string]float64
	if oss, ok := s.(*objectsyncSystem); ok {
		counters0 = objectsyncCounters(ctx, oss.cluster)
	}
	meter, masterMeter := startCPU(s.pids()), startCPU(pidsOf([]*proc{mp}))
	t0 := time.Now()
	rec.measuring.Store(true)
	if err := sleepCtx(ctx, f.duration); err != nil {
		return r, err
	}
	rec.measuring.Store(false)
	if oss, ok := s.(*objectsyncSystem); ok && counters0 != nil {
		after := objectsyncCounters(ctx, oss.cluster)
		r.counters = map[string]float64{}
		for k, v := range after {
			r.counters[k] = v - counters0[k]
		}
	}
	r.wire, r.deliveries = rec.wire.Load()-wire0, subs.deliveries()-del0
	r.cpu = meter.stop()
	r.masterCPU = masterMeter.stop().servers
	r.window = time.Since(t0)
	if over := r.window - f.duration; over > time.Second {
		fmt.Fprintf(out, "(reading the subscribers' statistics stretched the window by %v: the clients are saturated) ", over.Round(100*time.Millisecond))
	}
	stopAll([]*proc{mp})
	if err := r.readMaster(mp); err != nil {
		return r, err
	}
	r.lat = rec.latencies()
	slices.Sort(r.lat)
	fmt.Fprintf(out, "master sent %.1f changes/s (%d errors), %d deliveries, %d latency samples; load average %s; CPU of other processes %.2f cores",
		r.sentRate, r.sendErrs, r.deliveries, len(r.lat), loadAverage(), (r.cpu.busy-r.cpu.servers-r.cpu.client-r.masterCPU).Seconds()/r.window.Seconds())
	if r.firstErr != "" && r.firstErr != "<nil>" {
		fmt.Fprintf(out, "; its first error: %s", r.firstErr)
	}
	fmt.Fprintln(out)
	if r.counters != nil {
		fmt.Fprintf(out, "%s: during the measured phase the nodes submitted %.0f patch and %.0f full writes, skipped %.0f superseded sets, refused %.0f; %.0f subscriber queue collapses\n",
			s.name(), r.counters["patch"], r.counters["full"], r.counters["superseded"], r.counters["error"], r.counters["collapses"])
	}
	return r, nil
}

// objectsyncCounters sums, over the nodes' /metrics, the objectsync
// writes by result and the subscriber queue collapses (nil if a node
// does not answer).
// bothSubs are a run's appliers and readers.
type bothSubs [2]objSubs

func (b bothSubs) deliveries() int64 { return b[0].deliveries() + b[1].deliveries() }
func (b bothSubs) close()            { b[0].close(); b[1].close() }

func objectsyncCounters(ctx context.Context, c *shoalCluster) map[string]float64 {
	sum := map[string]float64{}
	for _, n := range c.nodes {
		snap, err := scrape(ctx, n.httpAddr)
		if err != nil {
			return nil
		}
		for _, res := range []string{"patch", "full", "superseded", "error"} {
			sum[res] += snap[`shoal_objectsync_writes_total{result="`+res+`"}`]
		}
		sum["collapses"] += snap["shoal_objectsync_collapses_total"]
	}
	return sum
}

// loadAverage returns the 1, 5 and 15 minute load averages of the
// machine: other work on it shows here.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// readMaster reads the master's last line: "sent N errors M seconds S
// first-error E".
func (r *objResult) readMaster(mp *proc) error {
	b, err := os.ReadFile(mp.logPath)
	if err != nil {
		return err
	}
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "sent ")
		if !ok {
			continue
		}
		var sent int64
		var secs float64
		if _, err := fmt.Sscanf(rest, "%d errors %d seconds %f", &sent, &r.sendErrs, &secs); err != nil || secs <= 0 {
			return fmt.Errorf("master's report %q: %v", line, err)
		}
		r.sentRate = float64(sent) / secs
		_, r.firstErr, _ = strings.Cut(rest, "first-error ")
		return nil
	}
	return fmt.Errorf("the master reported nothing:\n%s", mp.tail(10))
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// sumRSS returns the resident set size of processes pids, summed.
func sumRSS(pids []int) (int64, error) {
	var total int64
	for _, pid := range pids {
		f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			return 0, fmt.Errorf("read rss of %d: %w", pid, err)
		}
		found := false
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				if err == nil {
					total += kb << 10
					found = true
				}
				break
			}
		}
		_ = f.Close()
		if !found {
			return 0, fmt.Errorf("read rss of %d: no VmRSS", pid)
		}
	}
	return total, nil
}

// Derived metrics of a result.
func (r objResult) perSec(n int64) float64 { return float64(n) / r.window.Seconds() }
func (r objResult) serverCores() float64   { return r.cpu.servers.Seconds() / r.window.Seconds() }
func (r objResult) perCore() float64 {
	if r.cpu.servers <= 0 {
		return 0
	}
	return float64(r.deliveries) / r.cpu.servers.Seconds()
}
func (r objResult) bytesPerUpdate() float64 {
	if r.deliveries == 0 {
		return 0
	}
	return float64(r.wire) / float64(r.deliveries)
}
func (r objResult) idleKiB() float64 { return float64(r.idleRSS) / 1024 / float64(r.idleConns) }
func (r objResult) p(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return percentile(r.lat, q)
}

func printObjectsTable(out io.Writer, rs []objResult, full int) {
	tw := newTable(out, "system\tsubs\tchanges/s\tdeliveries/s\tdelivered\tp50\tp99\tmax\twire B/update/sub\tof full object\tserver cores\tdeliveries/s/core\tclient µs/delivery\tclient+machine cores\tKiB/idle conn\t")
	for _, r := range rs {
		expected := r.sentRate * r.window.Seconds() * float64(r.subscribers)
		delivered := "-"
		if expected > 0 {
			delivered = fmt.Sprintf("%.1f%%", 100*float64(r.deliveries)/expected)
		}
		maxLat := time.Duration(0)
		if len(r.lat) > 0 {
			maxLat = r.lat[len(r.lat)-1]
		}
		clientPer := 0.0
		if r.deliveries > 0 {
			clientPer = float64(r.cpu.client.Microseconds()) / float64(r.deliveries)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.0f\t%s\t%s\t%s\t%s\t%.0f\t%.2f%%\t%.2f\t%.0f\t%.0f\t%.2f / %.2f\t%.1f\t\n",
			r.name, r.subscribers, r.sentRate, r.perSec(r.deliveries), delivered,
			ms(r.p(0.5)), ms(r.p(0.99)), ms(maxLat),
			r.bytesPerUpdate(), 100*r.bytesPerUpdate()/float64(full),
			r.serverCores(), r.perCore(), clientPer,
			r.cpu.client.Seconds()/r.window.Seconds(), r.cpu.busy.Seconds()/r.window.Seconds(),
			r.idleKiB())
	}
	_ = tw.Flush()
	fmt.Fprintf(out, "  full object %d bytes; latency from the master's send to the subscriber's apply (all samples of the measured phase);\n", full)
	fmt.Fprintln(out, "  wire = bytes read on the subscribers' TCP connections (websocket headers included) / deliveries;")
	fmt.Fprintln(out, "  server cores = server CPU time (/proc stat, all the system's processes) / wall time; client = this program's subscribers (the master runs in a child process)")
	fmt.Fprintln(out, "  and their CPU per delivery; machine = all CPU busy on the machine, other work included;")
	fmt.Fprintln(out, "  KiB/idle conn = growth of the servers' summed RSS with the idle connections open / their number")
	for _, r := range rs {
		if r.cpu.err != nil {
			fmt.Fprintf(out, "  %s: cpu: %v\n", r.name, r.cpu.err)
		}
	}
}

func printObjectsTargets(out io.Writer, rs []objResult, full int) {
	i := slices.IndexFunc(rs, func(r objResult) bool { return r.name == "objectsync" })
	if i < 0 {
		return
	}
	o := rs[i]
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintln(out, "objectsync targets:")
	fmt.Fprintf(out, "  p99 < 100 ms: %s (%s)\n", verdict(len(o.lat) > 0 && o.p(0.99) < 100*time.Millisecond), ms(o.p(0.99)))
	fmt.Fprintf(out, "  bytes per update ≤ 5%% of the full object: %s (%.0f of %d bytes, %.2f%%)\n",
		verdict(o.deliveries > 0 && o.bytesPerUpdate() <= 0.05*float64(full)), o.bytesPerUpdate(), full, 100*o.bytesPerUpdate()/float64(full))
	if j := slices.IndexFunc(rs, func(r objResult) bool { return r.name == "centrifuge" }); j >= 0 {
		c := rs[j]
		fmt.Fprintf(out, "  deliveries/s per server core ≥ centrifuge's: %s (%.0f vs %.0f, %.2f×)\n",
			verdict(o.perCore() >= c.perCore()), o.perCore(), c.perCore(), o.perCore()/c.perCore())
	}
	fmt.Fprintf(out, "  ≤ 32 KiB per idle connection: %s (%.1f KiB)\n", verdict(o.idleKiB() <= 32), o.idleKiB())
}
