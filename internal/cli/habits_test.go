package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/internal/httpjson"
)

// habitsNode answers the routes the tests of this file need beyond
// newFake's: log retention and deletion, a semaphore that exists with
// another limit, file uploads, and a status with module sections.
type habitsNode struct {
	mu      sync.Mutex
	bodies  []string // bodies of PUT /v1/logs/{name}
	deleted []string
	kvPuts  map[string]string
	files   map[string]int
}

func newHabitsNode(t *testing.T) (*habitsNode, *httptest.Server) {
	t.Helper()
	f := &habitsNode{kvPuts: map[string]string{}, files: map[string]int{}}
	mux := http.NewServeMux()
	h := func(pattern string, fn httpjson.HandlerFunc) { mux.Handle(pattern, httpjson.Handle(fn)) }
	h("GET /v1/status", func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		_, err := io.WriteString(w, `{"node":"n1","leader":"n1","raft":{"state":"leader","term":2,"commit_index":9,"applied_index":9,"voters":["n1"],"non_voters":[]},"members":1,"modules":["kv","locks","log"],"version":"v1",`+
			`"kv":{"keys":3,"tombstones":1,"digest":"00ab","synced":true,"peers":{"n2":{"rounds":4,"last_round":"2026-12-05T10:00:00Z"}}},`+
			`"locks":{"semaphores":1,"locks":2,"holders":0,"waiters":0,"expiring":true,"waiting_requests":0},`+
			`"log":{"logs":2,"entries":10}}`)
		return err
	})
	h("GET /v1/logs", func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		_, err := io.WriteString(w, `{"logs":[{"name":"orders","first_index":1,"last_index":3,"entries":3,"bytes":1536,"max_entries":1000,"max_bytes":10485760,"max_age":"24h0m0s"},{"name":"raw","first_index":0,"last_index":0,"entries":0}]}`)
		return err
	})
	h("DELETE /v1/logs/{name}", func(w http.ResponseWriter, r *http.Request) error {
		name := r.PathValue("name")
		if name != "orders" {
			return httpjson.Errorf(404, "log_not_found", "no log %q", name)
		}
		f.mu.Lock()
		f.deleted = append(f.deleted, name)
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	h("PUT /v1/logs/{name}", func(w http.ResponseWriter, r *http.Request) error {
		b, _ := io.ReadAll(r.Body)
		var in map[string]any
		if err := json.Unmarshal(b, &in); err != nil {
			return httpjson.BadRequest("invalid_json", "%s", err.Error())
		}
		f.mu.Lock()
		f.bodies = append(f.bodies, strings.TrimSpace(string(b)))
		f.mu.Unlock()
		out := map[string]any{"name": r.PathValue("name"), "first_index": 1, "last_index": 3, "entries": 3, "bytes": 2048}
		for k, v := range in {
			out[k] = v
		}
		httpjson.WriteJSON(w, 200, out)
		return nil
	})
	h("POST /v1/logs/{name}", func(w http.ResponseWriter, r *http.Request) error {
		var in struct {
			Data json.RawMessage `json:"data"`
		}
		if err := httpjson.DecodeJSON(r, &in); err != nil {
			return err
		}
		f.mu.Lock()
		f.kvPuts["log:"+r.PathValue("name")] = string(in.Data)
		f.mu.Unlock()
		httpjson.WriteJSON(w, 201, map[string]any{"index": 7})
		return nil
	})
	h("PUT /v1/kv/{key}", func(w http.ResponseWriter, r *http.Request) error {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.kvPuts[r.PathValue("key")] = string(b)
		f.mu.Unlock()
		httpjson.WriteJSON(w, 200, map[string]any{"key": r.PathValue("key"), "version": map[string]any{"time": 5, "counter": 1, "node": "n1"}})
		return nil
	})
	h("POST /v1/keyring/{op}", func(w http.ResponseWriter, r *http.Request) error {
		var in struct {
			Key string `json:"key"`
		}
		if err := httpjson.DecodeJSON(r, &in); err != nil {
			return err
		}
		f.mu.Lock()
		f.kvPuts["keyring:"+r.PathValue("op")] = in.Key
		f.mu.Unlock()
		httpjson.WriteJSON(w, 200, map[string]any{"nodes": map[string]any{"n1": map[string]any{"keys": []map[string]any{{"id": "k1", "primary": true}}}}, "failed": 0})
		return nil
	})
	h("POST /v1/semaphores/{name}/acquire", func(w http.ResponseWriter, r *http.Request) error {
		return httpjson.Errorf(409, "limit_conflict", "semaphore %q exists with limit 2, not 3; use ?update to change it", r.PathValue("name"))
	})
	h("PUT /v1/semaphores/{name}", func(w http.ResponseWriter, r *http.Request) error {
		return httpjson.Errorf(409, "limit_conflict", "semaphore %q exists with limit 2, not 3; use ?update to change it", r.PathValue("name"))
	})
	h("PUT /v1/files/{path...}", func(w http.ResponseWriter, r *http.Request) error {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.files[r.PathValue("path")] = len(b)
		f.mu.Unlock()
		httpjson.WriteJSON(w, 200, map[string]any{"path": r.PathValue("path"), "size": len(b), "sha256": "abc"})
		return nil
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, srv
}

// runIn runs the command line args with stdin, returning its exit code
// and output.
func runIn(stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	var out, errw bytes.Buffer
	code = run(contextWithStdin(context.Background(), stdin), args, &out, &errw)
	return code, out.String(), errw.String()
}

func TestOutput_TableAndJSON(t *testing.T) {
	_, srv := newHabitsNode(t)
	fake := newFake(t, &fakeNode{})
	a := func(addr string, args ...string) []string { return append(args, "--addr", addr) }
	runCases(t, []cliCase{
		{name: "members table", args: a(fake.URL, "members"), wantOut: []string{"NAME", "LEADER", "yes"}, wantNotOut: []string{`"name"`}},
		{name: "members -o json", args: a(fake.URL, "members", "-o", "json"), wantOut: []string{`"raft_suffrage": "voter"`, `"http_addr": "10.0.0.1:7480"`}},
		{name: "members --json alias", args: a(fake.URL, "members", "--json"), wantOut: []string{`"raft_suffrage": "voter"`}},
		{name: "members -o table", args: a(fake.URL, "members", "-o", "table"), wantOut: []string{"NAME"}},
		{name: "bad -o", args: a(fake.URL, "members", "-o", "yaml"), wantCode: 2, wantErr: []string{`invalid value "yaml" for flag -o: want table or json`}},
		{name: "raft peers -o json", args: a(fake.URL, "raft", "peers", "-o", "json"), wantOut: []string{`"suffrage": "nonvoter"`}},
		{name: "log list table", args: a(srv.URL, "log", "list"),
			wantOut: []string{"NAME", "BYTES", "MAX ENTRIES", "MAX BYTES", "MAX AGE", "1.5 KiB", "1000", "10.0 MiB", "24h0m0s", "raw"}},
		{name: "log list json", args: a(srv.URL, "log", "list", "-o", "json"),
			wantOut: []string{`"max_entries": 1000`, `"max_bytes": 10485760`, `"max_age": "24h0m0s"`, `"bytes": 1536`, `"first_index": 1`}},
		{name: "log read table", args: a(fake.URL, "log", "read", "orders", "--from", "2", "--limit", "2", "--consistent", "-o", "table"),
			wantOut: []string{"INDEX", "DATA", "2025-01-02T03:04:05Z", `{"html":"<b>"}`, "[1,2]"}},
		{name: "log publish json", args: a(srv.URL, "log", "publish", "orders", "1", "-o", "json"), wantOut: []string{`"index": 7`}},
		{name: "kv put json", args: a(srv.URL, "kv", "put", "k", "v", "-o", "json"), wantOut: []string{`"key": "k"`, `"version": {`, `"node": "n1"`}},
		{name: "status json", args: a(srv.URL, "status", "-o", "json"), wantOut: []string{`"kv": {`, `"tombstones": 1`}},
		{name: "status readable", args: a(srv.URL, "status"),
			wantOut: []string{"kv:", "keys 3, synced yes, tombstones 1", "kv.peers:", "n2 (last_round 2026-12-05T10:00:00Z, rounds 4)",
				"locks:", "expiring yes, holders 0, locks 2", "log:", "entries 10, logs 2"},
			wantNotOut: []string{"{", "}"}},
		{name: "help shows -o", args: []string{"members", "-h"}, wantOut: []string{"-o FORMAT", "output FORMAT: table", "--json", "same as -o json"}},
		{name: "tail takes -o json", args: a(fake.URL, "log", "tail", "nope", "-o", "json"), wantCode: 1, wantErr: []string{`no log "nope"`}},
		{name: "tail refuses -o table", args: a(fake.URL, "log", "tail", "orders", "-o", "table"), wantCode: 2, wantErr: []string{"want json"}},
	})
}

func TestValues_StdinFileAndRaw(t *testing.T) {
	f, srv := newHabitsNode(t)
	dir := t.TempDir()
	valueFile := filepath.Join(dir, "v.json")
	if err := os.WriteFile(valueFile, []byte(`{"from":"file"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("c2VjcmV0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, stdin string
		args        []string
		key, want   string
		wantCode    int
		wantErr     string
	}{
		{name: "kv put literal", args: []string{"kv", "put", "a", "plain"}, key: "a", want: "plain"},
		{name: "kv put stdin", stdin: "from stdin\n", args: []string{"kv", "put", "b", "-"}, key: "b", want: "from stdin\n"},
		{name: "kv put file", args: []string{"kv", "put", "c", "@" + valueFile}, key: "c", want: `{"from":"file"}` + "\n"},
		{name: "kv put raw at", args: []string{"kv", "put", "d", "@not-a-file", "--raw"}, key: "d", want: "@not-a-file"},
		{name: "kv put raw dash", stdin: "unread", args: []string{"kv", "put", "--raw", "e", "-"}, key: "e", want: "-"},
		{name: "kv put missing file", args: []string{"kv", "put", "f", "@" + filepath.Join(dir, "nope")}, wantCode: 1, wantErr: "read the value: open "},
		{name: "kv put bare at", args: []string{"kv", "put", "f", "@"}, wantCode: 1, wantErr: "--raw for a literal @"},
		{name: "publish stdin", stdin: ` {"n": 1} `, args: []string{"log", "publish", "s", "-"}, key: "log:s", want: `{"n":1}`},
		{name: "publish file", args: []string{"log", "publish", "f", "@" + valueFile}, key: "log:f", want: `{"from":"file"}`},
		{name: "publish raw", args: []string{"log", "publish", "r", `"@x"`, "--raw"}, key: "log:r", want: `"@x"`},
		{name: "publish bad stdin", stdin: "{", args: []string{"log", "publish", "s", "-"}, wantCode: 2, wantErr: "the entry from stdin is not valid JSON"},
		{name: "keyring install file", args: []string{"keyring", "install", "@" + keyFile}, key: "keyring:install", want: "c2VjcmV0"},
		{name: "keyring install stdin", stdin: "c2VjcmV0\n", args: []string{"keyring", "install", "-"}, key: "keyring:install", want: "c2VjcmV0"},
		{name: "keyring use literal", args: []string{"keyring", "use", "k1"}, key: "keyring:use", want: "k1"},
		{name: "publish bad file", args: []string{"log", "publish", "s", "@" + filepath.Join(dir, "nope")}, wantCode: 1, wantErr: "read the entry: open "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runIn(strings.NewReader(tt.stdin), append(tt.args, "--addr", srv.URL)...)
			if code != tt.wantCode || !strings.Contains(errs, tt.wantErr) {
				t.Fatalf("got %d, stdout %q, stderr %q; want %d and %q", code, out, errs, tt.wantCode, tt.wantErr)
			}
			if tt.key == "" {
				return
			}
			f.mu.Lock()
			got := f.kvPuts[tt.key]
			f.mu.Unlock()
			if got != tt.want {
				t.Fatalf("the node got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLogSetAndRm(t *testing.T) {
	f, srv := newHabitsNode(t)
	a := func(args ...string) []string { return append(args, "--addr", srv.URL) }
	runCases(t, []cliCase{
		{name: "set all", args: a("log", "set", "orders", "--max-entries", "1000", "--max-bytes", "10MiB", "--max-age", "24h"),
			wantOut: []string{"NAME", "orders", "1000", "10.0 MiB", "24h0m0s", "2.0 KiB"}},
		{name: "set one, json", args: a("log", "set", "orders", "--max-bytes", "1GB", "-o", "json"),
			wantOut: []string{`"max_bytes": 1000000000`, `"name": "orders"`, `"bytes": 2048`}, wantNotOut: []string{"max_entries", "max_age"}},
		{name: "set no limit", args: a("log", "set", "orders", "--max-entries", "0", "--max-bytes", "4096", "--max-age", "0")},
		{name: "set bad size", args: a("log", "set", "orders", "--max-bytes", "10 parsecs"), wantCode: 2, wantErr: []string{"is not a size"}},
		{name: "set bad age", args: a("log", "set", "orders", "--max-age", "-1h"), wantCode: 2, wantErr: []string{"want a duration"}},
		{name: "set bad entries", args: a("log", "set", "orders", "--max-entries", "-3"), wantCode: 2, wantErr: []string{"want a number of entries"}},
		{name: "set without name", args: a("log", "set"), wantCode: 2, wantErr: []string{"exactly one log name"}},
		{name: "rm", args: a("log", "rm", "orders"), wantOut: []string{"deleted log orders"}},
		{name: "rm absent", args: a("log", "rm", "ghost"), wantCode: 1, wantErr: []string{`shoal: delete log "ghost": no log "ghost" (log_not_found)`}},
		{name: "help", args: []string{"log", "help"}, wantOut: []string{"set", "rm"}},
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	want := []string{
		`{"max_entries":1000,"max_bytes":10485760,"max_age":"24h0m0s"}`,
		`{"max_bytes":1000000000}`,
		`{"max_entries":0,"max_bytes":4096,"max_age":"0s"}`,
	}
	if strings.Join(f.bodies, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got bodies\n%s\nwant\n%s", strings.Join(f.bodies, "\n"), strings.Join(want, "\n"))
	}
	if strings.Join(f.deleted, ",") != "orders" {
		t.Fatalf("got deletes %v", f.deleted)
	}
}

func TestParseBytes(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"4096", 4096, true}, {"10MiB", 10 << 20, true}, {"1GB", 1e9, true}, {"256 KiB", 256 << 10, true},
		{"2TiB", 2 << 40, true}, {"7B", 7, true}, {"1.5GB", 0, false}, {"MiB", 0, false}, {"10mb", 0, false},
		{"-1", 0, false}, {"99999999999999999999", 0, false}, {"20000000TiB", 0, false},
	} {
		got, err := parseBytes(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseBytes(%q): got %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestRoundDurations(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"not acquired within the wait of 1.999999329s", "not acquired within the wait of 2s"},
		{"waited 1m30.123456s and 250.5ms", "waited 1m30s and 251ms"},
		{"took 2.5µs", "took 2.5µs"},
		{"version v1.2.3 at 10s, 5m0s", "version v1.2.3 at 10s, 5m0s"},
		{"index 1.5 of 3.25", "index 1.5 of 3.25"},
	} {
		if got := roundDurations(tt.in); got != tt.want {
			t.Errorf("roundDurations(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSmallFixes(t *testing.T) {
	_, srv := newHabitsNode(t)
	runCases(t, []cliCase{
		{name: "sem create says --update", args: []string{"sem", "create", "s", "-n", "3", "--addr", srv.URL}, wantCode: 1,
			wantErr: []string{"use --update to change it (limit_conflict)"}},
		{name: "sem acquire names the command", args: []string{"sem", "acquire", "s", "-n", "3", "--holder", "h", "--addr", srv.URL}, wantCode: 1,
			wantErr: []string{"use 'shoal sem create --update' to change it (limit_conflict)"}},
		{name: "agent help names the environment", args: []string{"agent", "-h"},
			wantOut: []string{"Usage:\n  shoal agent [flags]", "SHOAL_RAFT_ADDR", "SHOAL_DATA_DIR", "environment variable", "-data-dir"}},
		{name: "agent bad flag", args: []string{"agent", "--nope"}, wantCode: 2, wantErr: []string{"flag provided but not defined: -nope", "shoal agent -h"}},
	})
	var stdout, stderr bytes.Buffer
	Main([]string{"sem", "create", "s", "-n", "3", "--addr", srv.URL}, &stdout, &stderr)
	if strings.Contains(stderr.String(), "?update") {
		t.Fatalf("stderr still says ?update: %q", stderr.String())
	}
}

func TestRetry_GivesUpOnDeadNode(t *testing.T) {
	down := httptest.NewServer(nil)
	down.Close()
	tests := []struct {
		name string
		args []string
		run  func(ctx context.Context, args []string, stdout, stderr io.Writer) int
	}{
		{"log tail", []string{"log", "tail", "orders"}, run},
		{"kv watch", []string{"kv", "watch"}, run},
		{"objects watch", []string{"objects", "watch", "a/b"}, run},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			start := time.Now()
			code := tt.run(context.Background(), append(tt.args, "--addr", down.URL, "--retry-for", "500ms"), &stdout, &stderr)
			if code != 1 {
				t.Fatalf("got exit code %d, want 1; stderr:\n%s", code, &stderr)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("gave up after %s, want about 500ms", d)
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if len(lines) < 2 {
				t.Fatalf("want retry lines and a final error, got:\n%s", &stderr)
			}
			prefix := "shoal " + tt.name + ": connection lost: "
			if !strings.HasPrefix(lines[0], prefix) || !strings.Contains(lines[0], "retrying in 100ms (attempt 1)") {
				t.Fatalf("first line %q, want %q... retrying in 100ms (attempt 1)", lines[0], prefix)
			}
			if len(lines) > 2 && !strings.Contains(lines[1], "(attempt 2)") {
				t.Fatalf("second line %q, want attempt 2", lines[1])
			}
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "shoal: ") || !strings.Contains(last, "gave up after") || !strings.Contains(last, "(--retry-for 500ms)") {
				t.Fatalf("last line %q, want the give-up error", last)
			}
			if stdout.Len() != 0 {
				t.Fatalf("stdout %q, want nothing", &stdout)
			}
		})
	}
}

func TestRetry_ForeverWithZero(t *testing.T) {
	down := httptest.NewServer(nil)
	down.Close()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &lineWriter{wrote: make(chan struct{}, 1)}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"log", "tail", "orders", "--addr", down.URL, "--retry-for", "0"}, io.Discard, stderr)
	}()
	deadline := time.After(20 * time.Second)
	for !strings.Contains(stderr.String(), "(attempt 4)") {
		select {
		case <-stderr.wrote:
		case code := <-done:
			t.Fatalf("tail ended with %d: %s", code, stderr.String())
		case <-deadline:
			t.Fatalf("no 4th attempt: %s", stderr.String())
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("got %d after interrupt, want 0", code)
	}
	if strings.Contains(stderr.String(), "gave up") {
		t.Fatalf("--retry-for 0 gave up: %s", stderr.String())
	}
}

// fakeTerminal is a stderr that says it is a terminal.
type fakeTerminal struct{ syncBuffer }

func (*fakeTerminal) IsTerminal() bool { return true }

func TestProgress_OnlyOnATerminal(t *testing.T) {
	f, srv := newHabitsNode(t)
	big := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 3<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	// Not a terminal: the output is the answer alone.
	var stdout, stderr bytes.Buffer
	code := runFiles(context.Background(), []string{"put", "big.bin", big, "--addr", srv.URL}, nil, &stdout, &stderr)
	if code != 0 || stderr.Len() != 0 || stdout.String() != "big.bin: 3145728 bytes, sha256 abc\n" {
		t.Fatalf("got %d, stdout %q, stderr %q; want the answer and a silent stderr", code, &stdout, &stderr)
	}
	// A terminal: the progress line ends at 100% and is blanked.
	term := &fakeTerminal{}
	stdout.Reset()
	code = runFiles(context.Background(), []string{"put", "big.bin", "@" + big, "--addr", srv.URL}, nil, &stdout, term)
	if code != 0 {
		t.Fatalf("got %d, stderr %q", code, term.String())
	}
	got := term.String()
	if !strings.Contains(got, "\rput big.bin: 3.0 MiB of 3.0 MiB (100%)") || !strings.HasSuffix(got, "\r") {
		t.Fatalf("stderr %q, want a progress line reaching 100%% and blanked", got)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.files["big.bin"] != 3<<20 {
		t.Fatalf("the node got %d bytes", f.files["big.bin"])
	}
}

func TestHealthWait(t *testing.T) {
	notReady := newFake(t, &fakeNode{notReady: true})
	ready := newFake(t, &fakeNode{})
	runCases(t, []cliCase{
		{name: "ready at once", args: []string{"health", "--wait", "5s", "--addr", ready.URL}, wantOut: []string{"ready"}},
		{name: "join and wait", args: []string{"join", "10.0.0.5:7946", "--wait", "5s", "--addr", ready.URL}, wantOut: []string{"joined through 10.0.0.5:7946\nready\n"}},
		{name: "join and never ready", args: []string{"join", "10.0.0.5:7946", "--wait", "300ms", "--addr", notReady.URL}, wantCode: 1,
			wantOut: []string{"joined through"}, wantErr: []string{"shoal: gave up waiting after 300ms: check readiness: node is not ready (not_ready)"}},
		{name: "never ready", args: []string{"health", "--wait", "700ms", "--addr", notReady.URL}, wantCode: 1,
			wantErr: []string{"shoal: gave up waiting after 700ms: check readiness: node is not ready (not_ready) [leader: no leader elected; raft: ok]"}},
	})
	// An interrupt ends the wait at once, though --wait replaces --timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if code := run(ctx, []string{"health", "--wait", "30s", "--timeout", "1s", "--addr", notReady.URL}, io.Discard, io.Discard); code != 1 || time.Since(start) > 10*time.Second {
		t.Fatalf("got %d after %s, want 1 at once", code, time.Since(start))
	}
	// On a terminal, the wait shows what the node still lacks.
	term := &fakeTerminal{}
	code := run(context.Background(), []string{"health", "--wait", "300ms", "--addr", notReady.URL}, io.Discard, term)
	if code != 1 || !strings.Contains(term.String(), "\rwaiting for the node to be ready: leader: no leader elected; raft: ok (0s)") {
		t.Fatalf("got %d, stderr %q", code, term.String())
	}
}

func TestProgress_Unit(t *testing.T) {
	var buf bytes.Buffer
	c := newCmdline("x", "", "", io.Discard, &buf)
	p := c.progress("put f")
	p.bytes(10, 100)
	p.done()
	if buf.Len() != 0 {
		t.Fatalf("a progress on a buffer printed %q", buf.String())
	}
	term := &fakeTerminal{}
	c = newCmdline("x", "", "", io.Discard, term)
	now := time.Unix(0, 0)
	p = c.progress("put f")
	p.now = func() time.Time { return now }
	p.start = now
	now = now.Add(time.Second)
	p.bytes(50, 100)
	p.bytes(60, 100) // within progressInterval: not drawn
	now = now.Add(time.Second)
	p.bytes(100, 100)
	p.done()
	want := "\rput f: 50 B of 100 B (50%), 50 B/s" + "\rput f: 100 B of 100 B (100%), 50 B/s" + "\r" + strings.Repeat(" ", len("put f: 100 B of 100 B (100%), 50 B/s")) + "\r"
	if term.String() != want {
		t.Fatalf("got %q, want %q", term.String(), want)
	}
}

func TestRetrier_Bound(t *testing.T) {
	var stderr bytes.Buffer
	now := time.Unix(0, 0)
	r := &retrier{path: "log tail", stderr: &stderr, limit: time.Second, now: func() time.Time { return now }}
	cause := io.ErrUnexpectedEOF
	for i, step := range []time.Duration{0, 400 * time.Millisecond, 500 * time.Millisecond} {
		now = now.Add(step)
		if err := r.retry(cause, 400*time.Millisecond); err != nil {
			t.Fatalf("attempt %d gave up: %v", i+1, err)
		}
	}
	now = now.Add(100 * time.Millisecond) // 1s since the first failure
	err := r.retry(cause, 400*time.Millisecond)
	if err == nil || err.Error() != "gave up after 1s and 4 failed attempts (--retry-for 1s): unexpected EOF" {
		t.Fatalf("got %v, want the give-up error", err)
	}
	r.reset() // the node answered: a new outage starts from zero
	now = now.Add(time.Hour)
	if err := r.retry(cause, 100*time.Millisecond); err != nil {
		t.Fatalf("after reset: %v", err)
	}
	want := "shoal log tail: connection lost: unexpected EOF, retrying in 400ms (attempt 1)\n" +
		"shoal log tail: connection lost: unexpected EOF, retrying in 400ms (attempt 2)\n" +
		"shoal log tail: connection lost: unexpected EOF, retrying in 400ms (attempt 3)\n" +
		"shoal log tail: connection lost: unexpected EOF, retrying in 100ms (attempt 1)\n"
	if stderr.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", stderr.String(), want)
	}
	forever := &retrier{path: "kv watch", stderr: io.Discard, now: func() time.Time { return now }}
	for range 100 {
		now = now.Add(time.Hour)
		if err := forever.retry(cause, time.Second); err != nil {
			t.Fatalf("--retry-for 0 gave up: %v", err)
		}
	}
}
