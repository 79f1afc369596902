package cli

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func init() {
	RegisterCommand("zz-echo", "echo the arguments (test command)", func(args []string, stdout, stderr io.Writer) int {
		if len(args) > 0 && args[0] == "-h" {
			io.WriteString(stdout, "Usage: shoal zz-echo ARGS\n")
			return 0
		}
		io.WriteString(stdout, strings.Join(args, "|")+"\n")
		return 3
	})
}

type cliCase struct {
	name       string
	args       []string
	wantCode   int
	wantOut    []string
	wantErr    []string
	wantNotOut []string
}

func runCases(t *testing.T, tests []cliCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("shoal %s: got exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(tt.args, " "), code, tt.wantCode, &stdout, &stderr)
			}
			for _, s := range tt.wantOut {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, &stdout)
				}
			}
			for _, s := range tt.wantNotOut {
				if strings.Contains(stdout.String(), s) {
					t.Errorf("stdout has %q:\n%s", s, &stdout)
				}
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, &stderr)
				}
			}
			if tt.wantCode == 1 && strings.Count(strings.TrimSpace(stderr.String()), "\n") > 0 {
				t.Errorf("a failure must be one line on stderr, got:\n%s", &stderr)
			}
		})
	}
}

func TestMain_Commands(t *testing.T) {
	f := &fakeNode{}
	srv := newFake(t, f)
	a := func(args ...string) []string { return append(args, "--addr", srv.URL) }
	runCases(t, []cliCase{
		{name: "status", args: a("status"), wantOut: []string{"node:", "n1", "leader:", "n2", "follower, term 7, commit 42, applied 41", "voters:", "n1, n2", "non-voters:", "modules:", "log:", "logs 2", "v1.2.3"}, wantNotOut: []string{"{"}},
		{name: "status json", args: a("status", "--json"), wantOut: []string{`"node": "n1"`, `"commit_index": 42`}},
		{name: "members", args: a("members"), wantOut: []string{"NAME", "ROLE", "SUFFRAGE", "LEADER", "n1", "10.0.0.1:7946", "alive", "server", "voter", "yes", "n9", "client"}},
		{name: "members json", args: a("members", "--json"), wantOut: []string{`"raft_suffrage": "voter"`, `"http_addr": "10.0.0.9:7480"`}},
		{name: "health", args: a("health"), wantOut: []string{"ready"}},
		{name: "health live", args: a("health", "--live"), wantOut: []string{"live"}},
		{name: "join", args: a("join", "10.0.0.5:7946", "10.0.0.6:7946"), wantOut: []string{"joined through 10.0.0.5:7946, 10.0.0.6:7946"}},
		{name: "join without address", args: a("join"), wantCode: 2, wantErr: []string{"shoal join: at least one address is required"}},
		{name: "leave", args: a("leave"), wantOut: []string{"left the cluster"}},
		{name: "leave extra arg", args: a("leave", "now"), wantCode: 2, wantErr: []string{`unexpected argument "now"`}},
		{name: "raft peers", args: a("raft", "peers"), wantOut: []string{"ID", "ADDRESS", "n1", "10.0.0.1:7947", "nonvoter", "yes"}},
		{name: "raft peers json", args: a("raft", "peers", "--json"), wantOut: []string{`"suffrage": "nonvoter"`}},
		{name: "raft remove", args: a("raft", "remove", "n3"), wantOut: []string{"removed n3"}},
		{name: "raft remove unknown", args: a("raft", "remove", "ghost"), wantCode: 1, wantErr: []string{`shoal: remove raft peer "ghost": no raft peer "ghost" (not_found)`}},
		{name: "raft remove without name", args: a("raft", "remove"), wantCode: 2, wantErr: []string{"exactly one server name"}},
		{name: "raft transfer", args: a("raft", "transfer-leadership"), wantOut: []string{"leadership transferred"}},
		{name: "raft without command", args: []string{"raft"}, wantCode: 2, wantErr: []string{"shoal raft <command>", "transfer-leadership"}},
		{name: "raft unknown command", args: []string{"raft", "elect"}, wantCode: 2, wantErr: []string{`shoal raft: unknown command "elect"`}},
		{name: "raft help", args: []string{"raft", "help"}, wantOut: []string{"peers", "remove"}},
		{name: "log publish", args: a("log", "publish", "orders", `{"x":1}`, "--id", "a"), wantOut: []string{"index 1\n"}},
		{name: "log publish duplicate", args: a("log", "publish", "--id", "a", "orders", `{"x":1}`), wantOut: []string{"index 1 (duplicate)"}},
		{name: "log publish negative number", args: []string{"log", "publish", "--addr", srv.URL, "orders", "--", "-5"}, wantOut: []string{"index 2\n"}},
		{name: "log publish bad json", args: a("log", "publish", "orders", `{"x":`), wantCode: 2, wantErr: []string{"shoal log publish: the entry from the argument is not valid JSON"}},
		{name: "log publish two values", args: a("log", "publish", "orders", `1 2`), wantCode: 2, wantErr: []string{"not valid JSON"}},
		{name: "log publish missing json", args: a("log", "publish", "orders"), wantCode: 2, wantErr: []string{"a log name and one JSON value are required"}},
		{name: "log publish full", args: a("log", "publish", "full", "1"), wantCode: 1, wantErr: []string{`shoal: publish to log "full": log "full" is full (log_full)`}},
		{name: "log read", args: a("log", "read", "orders", "--from", "2", "--limit", "2", "--consistent"),
			wantOut: []string{`{"index":2,"id":"b","data":{"html":"<b>"},"time":"2025-01-02T03:04:05Z"}` + "\n" + `{"index":3,"id":"","data":[1,2]}` + "\n"}},
		{name: "log read unknown", args: a("log", "read", "nope", "--from", "2", "--limit", "2", "--consistent"), wantCode: 1, wantErr: []string{`(not_found)`}},
		{name: "log read bad from", args: a("log", "read", "orders", "--from", "x"), wantCode: 2, wantErr: []string{`invalid value "x" for flag -from`}},
		{name: "log list", args: a("log", "list"), wantOut: []string{"NAME", "FIRST", "orders", "3"}},
		{name: "log tail unknown", args: a("log", "tail", "nope"), wantCode: 1, wantErr: []string{`shoal: tail log "nope": no log "nope" (not_found)`}},
		{name: "version", args: []string{"version"}, wantOut: []string{"shoal dev"}},
		{name: "version flag", args: []string{"--version"}, wantOut: []string{"shoal dev"}},
		{name: "help", args: []string{"help"}, wantOut: []string{"Commands:", "status", "members", "health", "raft", "log", "version", "zz-echo", "echo the arguments"}},
		{name: "no command", args: nil, wantCode: 2, wantErr: []string{"Commands:"}},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantErr: []string{`shoal: unknown command "frobnicate"`}},
		{name: "command help", args: []string{"status", "-h"}, wantOut: []string{"Usage:\n  shoal status [flags]", "--addr string", "SHOAL_ADDR", "--token", "SHOAL_TOKEN", "--json", "--timeout"}},
		{name: "help command", args: []string{"help", "log"}, wantOut: []string{"publish", "tail"}},
		{name: "subcommand help", args: []string{"log", "publish", "--help"}, wantOut: []string{"shoal log publish [flags] NAME JSON", "--id string"}},
		{name: "registered help", args: []string{"help", "zz-echo"}, wantOut: []string{"Usage: shoal zz-echo"}},
		{name: "registered command", args: []string{"zz-echo", "a", "b"}, wantCode: 3, wantOut: []string{"a|b"}},
		{name: "bad flag", args: []string{"status", "--nope"}, wantCode: 2, wantErr: []string{"shoal status: flag provided but not defined: -nope", "shoal status -h"}},
		{name: "bad addr", args: []string{"status", "--addr", "ftp://x"}, wantCode: 2, wantErr: []string{"shoal status: --addr:"}},
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.Join(f.joined, ",") != "10.0.0.5:7946,10.0.0.6:7946" || !f.left || strings.Join(f.removed, ",") != "n3" {
		t.Fatalf("server saw joined=%v left=%v removed=%v", f.joined, f.left, f.removed)
	}
}

func TestMain_Failures(t *testing.T) {
	notReady := newFake(t, &fakeNode{notReady: true})
	down := httptest.NewServer(nil)
	down.Close()
	runCases(t, []cliCase{
		{name: "not ready", args: []string{"health", "--addr", notReady.URL}, wantCode: 1,
			wantErr: []string{"shoal: check readiness: node is not ready (not_ready) [leader: no leader elected; raft: ok]"}},
		{name: "live while not ready", args: []string{"health", "--live", "--addr", notReady.URL}, wantOut: []string{"live"}},
		{name: "node down", args: []string{"status", "--addr", down.URL}, wantCode: 1, wantErr: []string{"shoal: get status: ", "connect"}},
		{name: "health node down", args: []string{"health", "--addr", down.URL}, wantCode: 1, wantErr: []string{"shoal: check readiness: "}},
	})
}

// TestMain_Env runs commands whose address and token come only from the
// environment; it must not run in parallel (t.Setenv).
func TestMain_Env(t *testing.T) {
	srv := newFake(t, &fakeNode{token: "s3cret"})
	t.Setenv("SHOAL_ADDR", srv.URL)
	runCases(t, []cliCase{
		{name: "no token", args: []string{"members"}, wantCode: 1, wantErr: []string{"shoal: list members: a valid bearer token is required (unauthorized)"}},
		{name: "token flag", args: []string{"members", "--token", "s3cret"}, wantOut: []string{"n1"}},
	})
	t.Setenv("SHOAL_TOKEN", "s3cret")
	runCases(t, []cliCase{
		{name: "token env", args: []string{"members"}, wantOut: []string{"n1"}},
		{name: "flag beats env", args: []string{"members", "--token", "wrong"}, wantCode: 1, wantErr: []string{"(unauthorized)"}},
		{name: "addr flag beats env", args: []string{"members", "--addr", "ftp://x"}, wantCode: 2},
	})
}

// lineWriter is a goroutine-safe writer that reports each write on a
// channel, so a test can wait for output without sleeping.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	select {
	case w.wrote <- struct{}{}:
	default:
	}
	return n, err
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestLogTail_FollowsUntilInterrupted(t *testing.T) {
	f := &fakeNode{}
	srv := newFake(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := &lineWriter{wrote: make(chan struct{}, 1)}
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"log", "tail", "orders", "--from", "5", "--addr", srv.URL}, stdout, &stderr)
	}()

	want := `{"index":5,"id":"","data":"a"}` + "\n" + `{"index":6,"id":"","data":"b"}` + "\n" // "id" always, as the API sends it
	deadline := time.After(10 * time.Second)
	for stdout.String() != want {
		select {
		case <-stdout.wrote:
		case code := <-done:
			t.Fatalf("tail ended early with %d: stdout %q stderr %q", code, stdout.String(), stderr.String())
		case <-deadline:
			t.Fatalf("got %q, want %q", stdout.String(), want)
		}
	}
	cancel() // what SIGINT does through signal.NotifyContext
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("got exit code %d after interrupt, want 0 (stderr %q)", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("tail did not stop after interrupt")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.streams) != 2 || f.streams[0] != "" || f.streams[1] != "5" {
		t.Fatalf("got Last-Event-ID per connection %q, want [\"\" \"5\"]", f.streams)
	}
}

func TestRegisterCommand_Rejects(t *testing.T) {
	run := func([]string, io.Writer, io.Writer) int { return 0 }
	tests := []struct {
		name, cmd string
		fn        func([]string, io.Writer, io.Writer) int
	}{
		{"empty name", "", run},
		{"flag-like name", "-x", run},
		{"nil run", "zz-nil", nil},
		{"builtin", "status", run},
		{"help", "help", run},
		{"registered twice", "zz-echo", run},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatalf("RegisterCommand(%q) did not panic", tt.cmd)
				}
			}()
			RegisterCommand(tt.cmd, "x", tt.fn)
		})
	}
}
