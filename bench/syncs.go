package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// syncCalls are the system calls that make written data durable, in the
// order the report lists them.
var syncCalls = []string{"fsync", "fdatasync", "sync_file_range"}

// syncAckTimeout bounds how long perf may take to attach to the processes
// or to answer a command.
const syncAckTimeout = 10 * time.Second

// syncMeter counts the sync system calls a set of processes make while it
// is enabled. It runs `perf stat` on the syscall entry tracepoints of those
// processes (and of the threads they start): the kernel counts the calls
// and the processes never stop, where strace would stop every traced
// thread on each of its system calls. Still, perf's per-thread counters
// cost the traced processes on every context switch and system call (a
// fifth to a third of shoal's and etcd's throughput here), so the log
// scenario counts during the warm-ups only. enable returns once perf is
// attached. A meter is used from one goroutine.
type syncMeter struct {
	cmd  *exec.Cmd
	ctl  *os.File // perf reads "enable" and "disable" here
	ack  *os.File // and answers "ack" here
	out  bytes.Buffer
	done chan struct{} // closed once perf exited
	err  error         // perf could not be started or failed
}

// startSyncs attaches perf to pids with counting disabled. A meter that
// could not start reports why from stop; enable and stop never block for
// long.
func startSyncs(pids []int) *syncMeter {
	m := &syncMeter{done: make(chan struct{})}
	perf, err := exec.LookPath("perf")
	if err != nil {
		m.err = errors.New("perf is not installed (Debian: apt-get install linux-perf)")
		close(m.done)
		return m
	}
	events := make([]string, len(syncCalls))
	for i, c := range syncCalls {
		events[i] = "syscalls:sys_enter_" + c
	}
	ids := make([]string, len(pids))
	for i, p := range pids {
		ids[i] = strconv.Itoa(p)
	}
	ctlR, ctlW, err1 := os.Pipe()
	ackR, ackW, err2 := os.Pipe()
	if err := errors.Join(err1, err2); err != nil {
		m.err = fmt.Errorf("count sync calls: %w", err)
		close(m.done)
		return m
	}
	m.cmd = exec.Command(perf, "stat", "-x", ",", "-e", strings.Join(events, ","),
		"-D", "-1", "--control", "fd:3,4", "-p", strings.Join(ids, ","))
	m.cmd.ExtraFiles = []*os.File{ctlR, ackW} // fds 3 and 4
	m.cmd.Stderr = &m.out                     // perf stat writes its counts there
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = m.cmd.Start()
	_ = ctlR.Close()
	_ = ackW.Close() // perf holds the only writer: its exit ends our reads
	if err != nil {
		_ = ctlW.Close()
		_ = ackR.Close()
		m.err = fmt.Errorf("count sync calls: start perf: %w", err)
		close(m.done)
		return m
	}
	m.ctl, m.ack = ctlW, ackR
	go func() {
		_ = m.cmd.Wait() // SIGINT ends perf stat with status 130
		close(m.done)
	}()
	return m
}

// command sends perf a control command and waits for its acknowledgement.
func (m *syncMeter) command(c string) error {
	if m.err != nil {
		return m.err
	}
	if _, err := m.ctl.WriteString(c + "\n"); err != nil {
		return fmt.Errorf("count sync calls: %s: %w", c, err)
	}
	if err := m.ack.SetReadDeadline(time.Now().Add(syncAckTimeout)); err != nil {
		return fmt.Errorf("count sync calls: %s: %w", c, err)
	}
	line, err := bufio.NewReader(m.ack).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ack" {
		return fmt.Errorf("count sync calls: perf did not acknowledge %q (%v): %s", c, err, strings.TrimSpace(m.out.String()))
	}
	return nil
}

// enable starts counting. An error is kept for stop to report.
func (m *syncMeter) enable() {
	if err := m.command("enable"); err != nil && m.err == nil {
		m.err = err
	}
}

// stop stops counting, ends perf and returns the calls counted while the
// meter was enabled, by call name.
func (m *syncMeter) stop() (map[string]int64, error) {
	if m.cmd == nil {
		return nil, m.err
	}
	err := m.command("disable")
	if m.err == nil {
		m.err = err
	}
	_ = m.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-m.done:
	case <-time.After(syncAckTimeout):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
	_ = m.ctl.Close()
	_ = m.ack.Close()
	if m.err != nil {
		return nil, m.err
	}
	return parsePerfCounts(m.out.String())
}

// parsePerfCounts reads the counts of `perf stat -x ,` output: lines of
// "count,unit,event,...", other lines ("Events enabled") skipped.
func parsePerfCounts(out string) (map[string]int64, error) {
	counts := map[string]int64{}
	for line := range strings.Lines(out) {
		f := strings.Split(strings.TrimSpace(line), ",")
		if len(f) < 3 {
			continue
		}
		call, ok := strings.CutPrefix(f[2], "syscalls:sys_enter_")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("count sync calls: perf counted %q for %s", f[0], call)
		}
		counts[call] += n
	}
	if len(counts) != len(syncCalls) {
		return nil, fmt.Errorf("count sync calls: unexpected perf output: %s", strings.TrimSpace(out))
	}
	return counts, nil
}

// syncCount is what a contender's servers' sync calls added up to over
// the warm-ups they were counted in.
type syncCount struct {
	calls   map[string]int64
	ops     int           // successful operations in those warm-ups
	elapsed time.Duration // their duration
	err     error         // why a warm-up's calls could not be counted
}

// add adds one warm-up: the calls counted during it (or why not) and its
// sample.
func (s *syncCount) add(calls map[string]int64, w sample, err error) {
	if err != nil {
		if s.err == nil {
			s.err = err
		}
		return
	}
	if s.calls == nil {
		s.calls = map[string]int64{}
	}
	for c, n := range calls {
		s.calls[c] += n
	}
	s.ops += w.ok
	s.elapsed += w.elapsed
}

// perOp formats the calls named call (all of them if call is empty) per
// successful operation; "-" when none were counted.
func (s syncCount) perOp(call string) string {
	if s.err != nil || s.ops == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(s.total(call))/float64(s.ops))
}

func (s syncCount) total(call string) int64 {
	var n int64
	for c, v := range s.calls {
		if call == "" || c == call {
			n += v
		}
	}
	return n
}

// print reports the calls per op by kind, and the warm-ups' throughput
// with perf attached next to the measured one without it: perf's cost.
func (s syncCount) print(out io.Writer, name string, measured stats) {
	switch {
	case s.err != nil:
		fmt.Fprintf(out, "  %s sync calls: %v\n", name, s.err)
	case s.ops > 0:
		parts := make([]string, len(syncCalls))
		for i, call := range syncCalls {
			parts[i] = call + " " + s.perOp(call)
		}
		fmt.Fprintf(out, "  %s sync calls per op (servers, counted in the warm-ups at %.0f ops/s with perf attached; measured %.0f ops/s without): %s\n",
			name, float64(s.ops)/s.elapsed.Seconds(), measured.opsPerSec, strings.Join(parts, ", "))
	}
}
