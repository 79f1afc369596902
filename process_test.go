//go:build unix

package main

// This file holds the helpers of main_test.go: building the shoal binary
// once, running it as OS processes (agents and one-shot CLI commands),
// picking free loopback ports, and small HTTP/JSON helpers. Nothing here
// links the agent into the test: the processes are the real binary.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The binary is built once per test process, on first use.
var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// shoalBinary returns the path of the shoal binary built from this module,
// building it on first use. It skips the test under -short: building and
// running real clusters of processes takes tens of seconds.
func shoalBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped with -short: builds the shoal binary and runs real agent processes")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "shoal-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "shoal")
		// go test puts $GOROOT/bin first on PATH, so this is the go that
		// runs the test.
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build the shoal binary: %v", buildErr)
	}
	return binPath
}

// processEnv returns the test's environment without any SHOAL_* variable
// (so the developer's settings cannot leak into a process), plus extra
// ("KEY=value"; a later duplicate key wins in exec).
func processEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHOAL_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// syncBuffer is a bytes.Buffer safe for the writes of a process's output
// copier and concurrent reads by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cliResult is the outcome of one CLI command.
type cliResult struct {
	stdout, stderr string
	code           int
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit code %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runShoal runs the binary once with args and the given extra environment
// and returns its output and exit code. It fails the test if the process
// cannot be run or does not finish within timeout.
func runShoal(t testing.TB, bin string, timeout time.Duration, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = processEnv(env...)
	cmd.Dir = t.TempDir() // nothing may write into the working directory
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
	if ctx.Err() != nil {
		t.Fatalf("shoal %s: did not finish within %v\n%s", strings.Join(args, " "), timeout, res)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("shoal %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// runCLI runs a client command with a 30 s bound and no extra environment.
func runCLI(t testing.TB, bin string, args ...string) cliResult {
	t.Helper()
	return runShoal(t, bin, 30*time.Second, nil, args...)
}

// ports are the three listening ports of one agent, all on 127.0.0.1.
type ports struct{ http, raft, gossip int }

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

func (p ports) httpAddr() string   { return hostPort(p.http) }
func (p ports) raftAddr() string   { return hostPort(p.raft) }
func (p ports) gossipAddr() string { return hostPort(p.gossip) }

// addrArgs are the agent flags that bind p.
func (p ports) addrArgs() []string {
	return []string{"--http-addr", p.httpAddr(), "--raft-addr", p.raftAddr(), "--gossip-addr", p.gossipAddr()}
}

// pickPorts finds three free loopback ports; the gossip one is free for
// both TCP and UDP. The listeners are held until all three are chosen, so
// the three differ, then closed for the agent to bind. Another process can
// still take one before the agent does: callers retry the start.
func pickPorts(t testing.TB) ports {
	t.Helper()
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	tcp := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("pick a free port: %v", err)
		}
		closers = append(closers, ln)
		return ln.Addr().(*net.TCPAddr).Port
	}
	p := ports{http: tcp(), raft: tcp()}
	for range 50 {
		port := tcp()
		pc, err := net.ListenPacket("udp", hostPort(port))
		if err != nil {
			continue // the UDP port is taken: try another
		}
		closers = append(closers, pc)
		p.gossip = port
		return p
	}
	t.Fatalf("found no port free for both TCP and UDP")
	return p
}

// agentProc is one agent across its runs: the same name, ports and
// environment, started again after a kill or stop. It kills whatever is
// still running when the test ends, and shows every run's output if the
// test failed.
type agentProc struct {
	bin   string
	name  string
	ports ports
	env   []string
	dir   string // working directory of every run: nothing may be written there

	mu   sync.Mutex
	runs []*agentRun
}

// agentRun is one OS process of an agent.
type agentRun struct {
	args  []string
	cmd   *exec.Cmd
	out   *syncBuffer // stdout and stderr, interleaved
	done  chan struct{}
	state *os.ProcessState // set before done is closed
}

func newAgentProc(t testing.TB, bin, name string, p ports, env []string) *agentProc {
	a := &agentProc{bin: bin, name: name, ports: p, env: env, dir: t.TempDir()}
	t.Cleanup(func() {
		a.mu.Lock()
		runs := append([]*agentRun(nil), a.runs...)
		a.mu.Unlock()
		for _, r := range runs {
			select {
			case <-r.done:
			default:
				_ = r.cmd.Process.Kill() // ends the process; Wait reaps it below
				select {
				case <-r.done:
				case <-time.After(10 * time.Second):
					t.Errorf("%s: process %d did not exit after SIGKILL", name, r.cmd.Process.Pid)
				}
			}
		}
		if !t.Failed() {
			return
		}
		for i, r := range runs {
			t.Logf("=== %s run %d: shoal %s (%s)\n%s", name, i+1, strings.Join(r.args, " "), r.status(), r.out)
		}
	})
	return a
}

// url is the base URL of the agent's HTTP API.
func (a *agentProc) url() string { return "http://" + a.ports.httpAddr() }

// current returns the latest run, or nil before the first start.
func (a *agentProc) current() *agentRun {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.runs) == 0 {
		return nil
	}
	return a.runs[len(a.runs)-1]
}

// start starts a new run with args (the previous run must have exited).
func (a *agentProc) start(t testing.TB, args ...string) *agentRun {
	t.Helper()
	if r := a.current(); r != nil && !r.exited() {
		t.Fatalf("%s: start while process %d still runs", a.name, r.cmd.Process.Pid)
	}
	r := &agentRun{args: args, out: new(syncBuffer), done: make(chan struct{})}
	r.cmd = exec.Command(a.bin, args...)
	r.cmd.Env = processEnv(a.env...)
	r.cmd.Dir = a.dir
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	setDeathSignal(r.cmd)
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("%s: start shoal: %v", a.name, err)
	}
	go func() {
		_ = r.cmd.Wait() // the exit status is in ProcessState
		r.state = r.cmd.ProcessState
		close(r.done)
	}()
	a.mu.Lock()
	a.runs = append(a.runs, r)
	a.mu.Unlock()
	return r
}

// startLive starts a run and waits until its API answers the liveness
// check. When the process exits because a port is taken it is started
// again (same ports) up to a few times: a port freed by a killed process
// can briefly be an outgoing connection's local port. It returns an error
// (not a test failure) when a port stays taken, so that first starts can
// pick new ports.
func (a *agentProc) startLive(t testing.TB, args ...string) error {
	t.Helper()
	var out string
	for range 5 {
		r := a.start(t, args...)
		err := waitFor(20*time.Second, func() error {
			if r.exited() {
				return errExited
			}
			return getJSON(a.url()+"/v1/health/live", nil)
		})
		if err == nil {
			return nil
		}
		out = r.out.String()
		if !r.exited() {
			t.Fatalf("%s: not live after 20s: %v", a.name, err)
		}
		if !strings.Contains(out, "address already in use") {
			t.Fatalf("%s: exited at start (%s)", a.name, r.status())
		}
		time.Sleep(200 * time.Millisecond) // paces the retries while the port is busy
	}
	return fmt.Errorf("%s: a port stays in use: %s", a.name, lastLine(out))
}

var errExited = errors.New("process exited")

// status describes how the run ended, or that it is still running.
func (r *agentRun) status() string {
	if !r.exited() {
		return "still running"
	}
	return r.state.String()
}

func (r *agentRun) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// running reports whether the agent's latest run is still running.
func (a *agentProc) running() bool {
	r := a.current()
	return r != nil && !r.exited()
}

// signal sends sig to the running process.
func (a *agentProc) signal(t testing.TB, sig os.Signal) {
	t.Helper()
	r := a.current()
	if r == nil || r.exited() {
		t.Fatalf("%s: signal %v: not running", a.name, sig)
	}
	if err := r.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: signal %v: %v", a.name, sig, err)
	}
}

// waitExit waits until the running process exits and returns its state.
func (a *agentProc) waitExit(t testing.TB, timeout time.Duration) *os.ProcessState {
	t.Helper()
	r := a.current()
	select {
	case <-r.done:
		return r.state
	case <-time.After(timeout):
		t.Fatalf("%s: process %d still running after %v", a.name, r.cmd.Process.Pid, timeout)
		return nil
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (a *agentProc) kill(t testing.TB) {
	t.Helper()
	a.signal(t, syscall.SIGKILL)
	a.waitExit(t, 10*time.Second)
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// waitFor polls f until it returns nil or timeout passes, and returns f's
// last error then. The pause between polls grows to 100 ms; it paces the
// polling and never stands in for waiting on an event.
func waitFor(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	pause := 10 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(pause)
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// eventually is waitFor that fails the test with what and f's last error.
func eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	if err := waitFor(timeout, f); err != nil {
		t.Fatalf("%s: not done after %v: %v", what, timeout, err)
	}
}

// httpClient bounds every test request; a publish waits at most the
// server's 10 s apply timeout.
var httpClient = &http.Client{Timeout: 15 * time.Second}

// apiError is a non-2xx answer of the API.
type apiError struct {
	status int
	body   string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("status %d: %s", e.status, strings.TrimSpace(e.body))
}

// doJSON sends a request with an optional JSON body and decodes a 2xx
// JSON answer into out (when not nil).
func doJSON(method, url string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, url, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %w", method, url, &apiError{status: resp.StatusCode, body: string(b)})
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode %q: %w", method, url, b, err)
	}
	return nil
}

func getJSON(url string, out any) error { return doJSON(http.MethodGet, url, nil, out) }
