package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"shoal/client"
	"shoal/internal/testcluster"
	"shoal/locks"
)

// locksCluster starts a real cluster of n nodes with the locks module
// (short TTLs allowed).
func locksCluster(t *testing.T, n int) *testcluster.Cluster {
	t.Helper()
	cfg := locks.DefaultConfig()
	cfg.MinTTL = 50 * time.Millisecond
	return testcluster.New(t, n, testcluster.WithModules("locks"), testcluster.WithModuleConfig("locks", &cfg))
}

func TestSem_UsageErrors(t *testing.T) {
	runCases(t, []cliCase{
		{name: "sem help", args: []string{"sem", "help"}, wantOut: []string{"create", "acquire", "release", "info", "run"}},
		{name: "lock help", args: []string{"lock", "help"}, wantOut: []string{"acquire", "release", "info", "run"}},
		{name: "run help", args: []string{"sem", "run", "-h"}, wantOut: []string{"shoal sem run [flags] NAME [-n LIMIT] -- COMMAND", "--ttl", "--kill-grace", "SHOAL_FENCING_TOKEN"}},
		{name: "lock run help", args: []string{"lock", "run", "-h"}, wantOut: []string{"--read"}},
		{name: "create without limit", args: []string{"sem", "create", "s"}, wantCode: 2, wantErr: []string{"-n must be at least 1"}},
		{name: "create without name", args: []string{"sem", "create", "-n", "2"}, wantCode: 2, wantErr: []string{"exactly one semaphore name"}},
		{name: "acquire without holder", args: []string{"sem", "acquire", "s"}, wantCode: 2, wantErr: []string{"--holder is required"}},
		{name: "release without holder", args: []string{"lock", "release", "l"}, wantCode: 2, wantErr: []string{"--holder is required"}},
		{name: "bad ttl", args: []string{"sem", "acquire", "s", "--holder", "h", "--ttl", "soon"}, wantCode: 2, wantErr: []string{`invalid value "soon" for flag -ttl`}},
		{name: "run without command", args: []string{"sem", "run", "s"}, wantCode: 2, wantErr: []string{"a semaphore name and a command are required"}},
		{name: "run negative wait", args: []string{"sem", "run", "s", "--wait", "-1s", "--", "true"}, wantCode: 2, wantErr: []string{"must not be negative"}},
	})
}

// TestSem_Commands drives every subcommand against a real node.
func TestSem_Commands(t *testing.T) {
	c := locksCluster(t, 1)
	a := func(args ...string) []string { return append(args, "--addr", c.Leader().URL()) }
	runCases(t, []cliCase{
		{name: "create", args: a("sem", "create", "jobs", "-n", "2"), wantOut: []string{"created semaphore jobs with limit 2"}},
		{name: "create again", args: a("sem", "create", "jobs", "-n", "2"), wantOut: []string{"semaphore jobs exists with limit 2"}},
		{name: "create conflict", args: a("sem", "create", "jobs", "-n", "3"), wantCode: 1, wantErr: []string{"(limit_conflict)"}},
		{name: "update", args: a("sem", "create", "jobs", "-n", "1", "--update"), wantOut: []string{"semaphore jobs has limit 1"}},
		{name: "create limit 0", args: a("sem", "create", "z", "-n", "0"), wantCode: 2},
		{name: "acquire", args: a("sem", "acquire", "jobs", "--holder", "h1", "--ttl", "1m"), wantOut: []string{"token ", "valid until"}},
		{name: "acquire json", args: a("sem", "acquire", "jobs", "--holder", "h1", "--ttl", "1m", "--json"), wantOut: []string{`"token":`, `"valid_until":`}},
		{name: "acquire full", args: a("sem", "acquire", "jobs", "--holder", "h2", "--wait", "50ms", "--retries", "1"), wantCode: 1, wantErr: []string{"(semaphore_full)"}},
		{name: "acquire unknown", args: a("sem", "acquire", "nope", "--holder", "h"), wantCode: 1, wantErr: []string{"(semaphore_not_found)"}},
		{name: "acquire bad ttl", args: a("sem", "acquire", "jobs", "--holder", "h", "--ttl", "-1s"), wantCode: 1, wantErr: []string{"(invalid_ttl)"}},
		{name: "acquire huge holder", args: a("sem", "acquire", "jobs", "--holder", strings.Repeat("h", 300)), wantCode: 1, wantErr: []string{"(invalid_holder)"}},
		{name: "acquire creating", args: a("sem", "acquire", "made", "--holder", "h", "-n", "3"), wantOut: []string{"token "}},
		{name: "info", args: a("sem", "info", "jobs", "--consistent"), wantOut: []string{"name:", "jobs", "limit:", "active:", "HOLDER", "TOKEN", "h1"}},
		{name: "info json", args: a("sem", "info", "jobs", "--json"), wantOut: []string{`"limit": 1`, `"holder": "h1"`}},
		{name: "info unknown", args: a("sem", "info", "nope"), wantCode: 1, wantErr: []string{"(semaphore_not_found)"}},
		{name: "list", args: a("sem", "list"), wantOut: []string{"NAME", "LIMIT", "jobs", "made"}},
		{name: "renew", args: a("sem", "renew", "jobs", "--holder", "h1", "--ttl", "2m"), wantOut: []string{"token "}},
		{name: "release", args: a("sem", "release", "jobs", "--holder", "h1"), wantOut: []string{"released"}},
		{name: "release again", args: a("sem", "release", "jobs", "--holder", "h1"), wantCode: 1, wantErr: []string{"(not_holder)"}},
		{name: "renew lost", args: a("sem", "renew", "jobs", "--holder", "h1"), wantCode: 1, wantErr: []string{"(not_holder)"}},
		{name: "delete", args: a("sem", "delete", "made"), wantOut: []string{"deleted semaphore made"}},
		{name: "lock acquire read", args: a("lock", "acquire", "cfg", "--holder", "r", "--read"), wantOut: []string{"token "}},
		{name: "lock acquire write busy", args: a("lock", "acquire", "cfg", "--holder", "w"), wantCode: 1, wantErr: []string{"(lock_busy)"}},
		{name: "lock info", args: a("lock", "info", "cfg"), wantOut: []string{"mode:", "read", "HOLDER", "MODE", "r"}},
		{name: "lock list", args: a("lock", "list"), wantOut: []string{"cfg", "read"}},
		{name: "lock renew", args: a("lock", "renew", "cfg", "--holder", "r"), wantOut: []string{"token "}},
		{name: "lock release", args: a("lock", "release", "cfg", "--holder", "r"), wantOut: []string{"released"}},
	})
}

// runMain runs the CLI in-process and returns its exit code and output.
func runMain(args ...string) (int, string, string) {
	var stdout, stderr lineWriter
	code := Main(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// readLines returns the lines of a file ("" if it does not exist yet).
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func TestSemRun_ExitCodesAndRelease(t *testing.T) {
	c := locksCluster(t, 1)
	url := c.Leader().URL()
	cl, err := client.New(url)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	tests := []struct {
		name    string
		command []string
		want    int
	}{
		{"success", []string{"sh", "-c", `echo "$SHOAL_FENCING_TOKEN" > ` + out}, 0},
		{"exit code", []string{"sh", "-c", "exit 7"}, 7},
		{"killed by a signal", []string{"sh", "-c", "kill -KILL $$"}, 128 + int(syscall.SIGKILL)},
		{"not found", []string{filepath.Join(t.TempDir(), "no-such-command")}, 127},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"sem", "run", "codes", "-n", "1", "--addr", url, "--"}, tt.command...)
			code, stdout, stderr := runMain(args...)
			if code != tt.want {
				t.Fatalf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.want, stdout, stderr)
			}
			s, err := cl.Semaphore(context.Background(), "codes", true)
			if err != nil || s.Active != 0 {
				t.Fatalf("after the run: %+v, %v: the slot was not released", s, err)
			}
		})
	}
	if tok := readLines(t, out); len(tok) != 1 || tok[0] == "" || tok[0] == "0" {
		t.Fatalf("the command saw SHOAL_FENCING_TOKEN %q", tok)
	}
}

// TestSemRun_ForwardsSignals sends SIGTERM to run (through the channel
// that signal.Notify fills in production): the command's trap sees it and
// its exit code comes back.
func TestSemRun_ForwardsSignals(t *testing.T) {
	c := locksCluster(t, 1)
	cl, err := client.New(c.Leader().URL())
	if err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(t.TempDir(), "ready")
	var stdout, stderr bytes.Buffer
	cmd := newCmdline("lock run", "", "", &stdout, &stderr)
	o := runOptions{
		target:    held{kind: lockKind, cl: cl, name: "sig", mode: client.WriteLock},
		holder:    "sig-holder",
		ttl:       5 * time.Second,
		killGrace: time.Second,
		command:   []string{"sh", "-c", `trap 'exit 42' TERM; echo ready > ` + ready + `; while :; do sleep 0.05; done`},
	}
	sigs := make(chan os.Signal, 1)
	done := make(chan int, 1)
	go func() { done <- runHeld(context.Background(), cmd, o, sigs) }()
	testcluster.Eventually(t, 20*time.Second, func() error {
		if len(readLines(t, ready)) == 0 {
			return fmt.Errorf("the command has not started")
		}
		return nil
	})
	if l, err := cl.Lock(context.Background(), "sig", true); err != nil || l.Mode != "write" {
		t.Fatalf("while running: %+v, %v", l, err)
	}
	sigs <- syscall.SIGTERM
	select {
	case code := <-done:
		if code != 42 {
			t.Fatalf("exit code %d, want the trap's 42; stderr: %s", code, &stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not end after SIGTERM")
	}
	if l, err := cl.Lock(context.Background(), "sig", true); err != nil || l.Mode != "unlocked" {
		t.Fatalf("after the run: %+v, %v", l, err)
	}
}
