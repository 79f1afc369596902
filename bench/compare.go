package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"
)

// contender is one system under test: the operation a client performs
// against it and optional hooks around each measured phase.
type contender struct {
	name string
	op   op
	// around, if set, is called before each measured phase, and the
	// function it returns right after the phase (to diff server metrics).
	around func(ctx context.Context) (after func(ctx context.Context))
	// alive returns an error once a process of the system has exited.
	alive func() error
	// pids are the system's server processes, whose CPU time is measured.
	pids []int

	total   sample        // all measured phases
	elapsed time.Duration // sum of the measured phases' durations
	lo, hi  int           // slowest and fastest whole second of any phase
	cpu     cpuUse        // during the measured phases
	syncs   syncCount     // during the warm-ups
}

// comparison drives contenders in alternating rounds (a, b, a, b, ...)
// with the same load: in each round, each contender gets a warm-up phase
// that is not measured, then a measured phase.
type comparison struct {
	load     load
	warmup   time.Duration
	duration time.Duration
	rounds   int
	// syncs counts the servers' sync system calls during the warm-ups
	// (syncMeter): perf slows every traced process down, so it is never
	// attached during a measured phase.
	syncs bool
}

// run performs every round and prints one line per measured phase. It
// returns early with ctx's error when interrupted, or when a process of a
// contender died.
func (c comparison) run(ctx context.Context, out io.Writer, cs []*contender) error {
	width := 6 // the names' column, as wide as the longest name
	for _, k := range cs {
		width = max(width, len(k.name))
	}
	for r := 1; r <= c.rounds; r++ {
		for _, k := range cs {
			s, cpu := c.phase(ctx, out, r, width, k)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if k.alive != nil {
				if err := k.alive(); err != nil {
					return err
				}
			}
			lo, hi := wholeSeconds(s.perSec)
			st := s.summarize(s.elapsed)
			fmt.Fprintf(out, "  round %d %-*s %8.0f ops/s  p50 %s  p99 %s  errors %d  (whole seconds: %d..%d ops)\n",
				r, width, k.name, st.opsPerSec, ms(st.p50), ms(st.p99), st.errors, lo, hi)
			if k.elapsed == 0 || lo < k.lo {
				k.lo = lo
			}
			k.hi = max(k.hi, hi)
			k.total.merge(&s)
			k.elapsed += s.elapsed
			k.cpu.add(cpu)
		}
	}
	return nil
}

// errSyncsNeedWarmup: sync calls are counted during the warm-ups only.
var errSyncsNeedWarmup = errors.New("not counted: they are counted during the warm-ups, and -warmup is 0")

// phase runs one contender's warm-up and measured phase of round r.
func (c comparison) phase(ctx context.Context, out io.Writer, r, width int, k *contender) (sample, cpuUse) {
	if c.syncs && c.warmup <= 0 {
		k.syncs.add(nil, sample{}, errSyncsNeedWarmup)
	}
	if c.warmup > 0 {
		var syncs *syncMeter
		if c.syncs {
			syncs = startSyncs(k.pids)
			syncs.enable() // returns once perf is attached and counting
		}
		w := c.load.run(ctx, c.warmup, k.op)
		if syncs != nil {
			calls, err := syncs.stop() // perf detaches before the measured phase
			k.syncs.add(calls, w, err)
		}
		if w.errors > 0 && ctx.Err() == nil {
			fmt.Fprintf(out, "  round %d %-*s warm-up: %d errors (%s)\n", r, width, k.name, w.errors, firstErr(w.errMsgs))
		}
	}
	var after func(context.Context)
	if k.around != nil && ctx.Err() == nil {
		after = k.around(ctx)
	}
	meter := startCPU(k.pids)
	s := c.load.run(ctx, c.duration, k.op)
	cpu := meter.stop()
	if after != nil {
		after(ctx)
	}
	return s, cpu
}

// printTable prints the aggregated results of every contender.
func printTable(out io.Writer, cs []*contender) map[string]stats {
	res := map[string]stats{}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tops\tops/s\tmean\tp50\tp90\tp99\tp99.9\tmax\terrors\tslowest 1s\tfastest 1s\t")
	for _, k := range cs {
		st := k.total.summarize(k.elapsed)
		res[k.name] = st
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t\n", k.name, st.ok, st.opsPerSec,
			ms(st.mean), ms(st.p50), ms(st.p90), ms(st.p99), ms(st.p999), ms(st.max), st.errors, k.lo, k.hi)
	}
	_ = tw.Flush()
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tserver CPU/op\tclient CPU/op\tserver CPU cores\tclient CPU cores\tmachine busy\tdisk writes/op\tfsyncs/op\t")
	for _, k := range cs {
		st := res[k.name]
		if k.cpu.err != nil || st.ok == 0 || k.cpu.total == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t\n", k.name)
			continue
		}
		perOp := func(d time.Duration) string {
			return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond)/float64(st.ok))
		}
		cores := func(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()/k.elapsed.Seconds()) }
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.0f%%\t%.1f KiB\t%s\t\n", k.name, perOp(k.cpu.servers), perOp(k.cpu.client),
			cores(k.cpu.servers), cores(k.cpu.client), 100*float64(k.cpu.busy)/float64(k.cpu.total),
			float64(k.cpu.written)/1024/float64(st.ok), k.syncs.perOp(""))
	}
	_ = tw.Flush()
	for _, k := range cs {
		k.syncs.print(out, k.name, res[k.name])
		if k.cpu.err != nil {
			fmt.Fprintf(out, "  %s cpu: %v\n", k.name, k.cpu.err)
		}
		for _, m := range slices.Sorted(maps.Keys(k.total.errMsgs)) {
			fmt.Fprintf(out, "  %s error (%d×): %s\n", k.name, k.total.errMsgs[m], m)
		}
	}
	return res
}

// printRatio prints a's results relative to b's against the target
// "a at least as fast as b, with a p99 no worse".
func printRatio(out io.Writer, a, b string, st map[string]stats, minThroughput float64) {
	sa, sb := st[a], st[b]
	if sb.opsPerSec == 0 || sb.p99 == 0 {
		fmt.Fprintf(out, "ratio %s/%s: undefined (%s completed no operation)\n", a, b, b)
		return
	}
	tput := sa.opsPerSec / sb.opsPerSec
	p99 := float64(sa.p99) / float64(sb.p99)
	verdict := "met"
	if tput < minThroughput || p99 > 1 {
		verdict = "NOT met"
	}
	fmt.Fprintf(out, "ratio %s/%s: throughput %.2f×, p99 %.2f× (p50 %.2f×)   target (throughput ≥ %.2f×, p99 ≤ 1.00×): %s\n",
		a, b, tput, p99, float64(sa.p50)/float64(max(sb.p50, 1)), minThroughput, verdict)
}

func firstErr(msgs map[string]int) string {
	if len(msgs) == 0 {
		return ""
	}
	return slices.Sorted(maps.Keys(msgs))[0]
}
