package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"
)

// env is what one scenario run owns: a temporary directory (binaries,
// data directories, process logs), the child processes started in it and
// the loopback ports handed out to them. It is used from the scenario's
// goroutine only.
type env struct {
	dir   string
	out   io.Writer
	procs []*proc
	ports map[int]bool
}

// newEnv creates the run's temporary directory. Call close when done.
func newEnv(out io.Writer) (*env, error) {
	dir, err := os.MkdirTemp("", "shoal-bench-")
	if err != nil {
		return nil, fmt.Errorf("create run directory: %w", err)
	}
	return &env{dir: dir, out: out, ports: map[int]bool{}}, nil
}

// path returns a path inside the run directory.
func (e *env) path(elem ...string) string {
	return filepath.Join(append([]string{e.dir}, elem...)...)
}

// stopTimeout is how long a child has to exit after SIGTERM before it is
// killed.
const stopTimeout = 5 * time.Second

// close stops every child (SIGTERM to all, in reverse start order, then
// SIGKILL to those still running after stopTimeout) and removes the run
// directory. It blocks for at most about stopTimeout plus the removal.
func (e *env) close() error {
	stopAll(e.procs)
	if err := os.RemoveAll(e.dir); err != nil {
		return fmt.Errorf("remove run directory %s: %w", e.dir, err)
	}
	return nil
}

// stopAll stops ps as close does: SIGTERM to all, in reverse order, then
// SIGKILL to those still running after stopTimeout. A scenario that runs
// clusters one after the other stops each with it before starting the
// next.
func stopAll(ps []*proc) {
	for i := len(ps) - 1; i >= 0; i-- {
		ps[i].signal(syscall.SIGTERM)
	}
	deadline := time.After(stopTimeout)
	for i := len(ps) - 1; i >= 0; i-- {
		p := ps[i]
		select {
		case <-p.done:
		case <-deadline:
			p.signal(syscall.SIGKILL)
			<-p.done
		}
	}
}

// proc is one child process. Its output goes to a log file in the run
// directory, shown (the tail of it) when the process misbehaves.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process exited and err is set
	err     error
	mark    int64 // log offset from which notable scans
}

// start runs bin with args as a child called name. The child gets its own
// process group (a terminal's Ctrl-C reaches only this program, which then
// stops the children in order) and is killed by the kernel if this program
// dies without cleaning up (Pdeathsig; the run directory then stays behind
// in $TMPDIR as shoal-bench-*).
func (e *env) start(name, bin string, args ...string) (*proc, error) {
	logPath := e.path("logs", name+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o750); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log of %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	e.procs = append(e.procs, p)
	go func() {
		p.err = cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	return p, nil
}

// signal sends sig to the process group of p, unless it already exited.
func (p *proc) signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		_ = syscall.Kill(-p.cmd.Process.Pid, sig) // ESRCH: it exited meanwhile
	}
}

// exitErr returns a non-nil error, with the tail of its log, once p has
// exited; nil while it runs.
func (p *proc) exitErr() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v); last lines of its log:\n%s", p.name, p.err, p.tail(20))
	default:
		return nil
	}
}

// tail returns the last n lines of p's log.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "  (no log: " + err.Error() + ")"
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var buf bytes.Buffer
	for _, l := range lines {
		buf.WriteString("  | ")
		buf.Write(l)
		buf.WriteByte('\n')
	}
	return buf.String()
}

// notableLevel matches the level of a warning or error line, in shoal's
// slog text and JSON formats, in etcd's zap JSON and in nats-server's
// "[WRN]" labels.
var notableLevel = regexp.MustCompile(`(?i)\blevel"?[=:]"?(warn|warning|error|fatal|panic)\b|\[(WRN|ERR|FTL)\]`)

// markLogs makes notable look only at what the children log from now on.
func (e *env) markLogs() {
	for _, p := range e.procs {
		if fi, err := os.Stat(p.logPath); err == nil {
			p.mark = fi.Size()
		}
	}
}

// notable returns how many warning or error lines p logged since the
// last markLogs, and the last n of them.
func (p *proc) notable(n int) (int, []string) {
	f, err := os.Open(p.logPath)
	if err != nil {
		return 0, nil
	}
	defer f.Close()
	if _, err := f.Seek(p.mark, io.SeekStart); err != nil {
		return 0, nil
	}
	count := 0
	var last []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if !notableLevel.Match(sc.Bytes()) {
			continue
		}
		count++
		last = append(last, sc.Text())
		if len(last) > n {
			last = last[1:]
		}
	}
	return count, last
}

// printNotable reports the warnings and errors the children logged since
// markLogs (a leader election or a slow disk shows up here first).
func (e *env) printNotable(out io.Writer) {
	quiet := true
	for _, p := range e.procs {
		count, last := p.notable(3)
		if count == 0 {
			continue
		}
		quiet = false
		fmt.Fprintf(out, "%s logged %d warning/error line(s) during the load; the last:\n", p.name, count)
		for _, l := range last {
			if len(l) > 300 {
				l = l[:300] + "…"
			}
			fmt.Fprintf(out, "  | %s\n", l)
		}
	}
	if quiet {
		fmt.Fprintln(out, "no process logged a warning or an error during the load")
	}
}

// port returns a 127.0.0.1:port address whose port was free for both TCP
// and UDP (gossip uses both) and was not handed out before in this run.
// Ports come from below the kernel's ephemeral range (32768 and up on
// Linux), so that no client socket of an earlier child (a Serf agent's
// statsd sender, an HTTP connection) can take one before its child binds
// it; another program still could, and the child then fails to start and
// the run reports its log.
func (e *env) port() (string, error) {
	const lo, hi = 20000, 32768
	for range 1000 {
		port := lo + rand.IntN(hi-lo)
		if e.ports[port] {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		u, uerr := net.ListenPacket("udp", addr)
		_ = l.Close()
		if uerr != nil {
			continue
		}
		_ = u.Close()
		e.ports[port] = true
		return addr, nil
	}
	return "", errors.New("find a free port: no free loopback port below 32768 after 1000 tries")
}

// command runs a short command to completion and returns its combined
// output, with that output in the error when it fails.
// It is killed if ctx is cancelled.
func command(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %v: %w\n%s", name, args, err, bytes.TrimSpace(out))
	}
	return out, nil
}

// pidsOf returns the process ids of ps.
func pidsOf(ps []*proc) []int {
	pids := make([]int, len(ps))
	for i, p := range ps {
		pids[i] = p.cmd.Process.Pid
	}
	return pids
}

// pollReady calls check every 200 ms until it passes. It fails with what
// and check's last error at the deadline, or at once when one of procs
// exited (with the tail of its log).
func pollReady(ctx context.Context, timeout time.Duration, what string, procs []*proc, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		last := check(ctx)
		if last == nil {
			return nil
		}
		for _, p := range procs {
			if err := p.exitErr(); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s after %v: %w", what, timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// procsAlive returns a contender's alive function: an error, with the
// tail of its log, once one of ps exited.
func procsAlive(ps []*proc) func() error {
	return func() error {
		for _, p := range ps {
			if err := p.exitErr(); err != nil {
				return err
			}
		}
		return nil
	}
}
