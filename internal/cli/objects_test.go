package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/client"
	"shoal/internal/testcluster"
	"shoal/objectsync"
)

// objectsNode starts a real one-node cluster with the objectsync module
// (objects kept without subscribers for the test's length).
func objectsNode(t *testing.T) *testcluster.Cluster {
	t.Helper()
	cfg := objectsync.DefaultConfig()
	cfg.Linger = 10 * time.Minute
	return testcluster.New(t, 1, testcluster.WithModules("objectsync"), testcluster.WithModuleConfig("objectsync", &cfg))
}

func TestObjects_Commands(t *testing.T) {
	c := objectsNode(t)
	addr := c.Leader().URL()
	a := func(args ...string) []string { return append(args, "--addr", addr) }
	file := filepath.Join(t.TempDir(), "obj.json")
	if err := os.WriteFile(file, []byte(`{"cars": ["a"], "n": 1}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notJSON := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(notJSON, []byte(`{"cars":`), 0o600); err != nil {
		t.Fatal(err)
	}
	patch := `[{"op":"replace","path":"/n","value":2}]`
	for _, tt := range []struct {
		name        string
		args        []string
		stdin       string
		code        int
		out, errOut string
	}{
		{"put from stdin", a("put", "cli/1", "1"), `{"n": 1}`, 0, "cli/1 at version 1\n", ""},
		{"put from a file", a("put", "cli-2", "[1,2]", file), "", 0, "cli-2 at version [1,2]\n", ""},
		{"put with -", a("put", "cli-3", "1", "-"), `{"x": true}`, 0, "cli-3 at version 1\n", ""},
		{"put from @file, json", a("put", "cli-5", "1", "@"+file, "-o", "json"), "", 0, "{\n  \"id\": \"cli-5\",\n  \"version\": 1\n}\n", ""},
		{"patch from stdin", a("patch", "cli/1", "1", "2"), patch, 0, "cli/1 at version 2\n", ""},
		{"patch old from", a("patch", "cli/1", "1", "3"), patch, 1, "", "(version_mismatch)"},
		{"patch not applying", a("patch", "cli/1", "2", "3", "-"), `[{"op":"remove","path":"/nope"}]`, 1, "", "(patch_failed)"},
		{"put stale", a("put", "cli/1", "1"), `{}`, 1, "", "does not follow the current version"},
		{"put reserved", a("put", "shoal:x", "1"), `{}`, 1, "", "(reserved_id)"},
		{"put not an object", a("put", "cli-4", "1"), `[1]`, 1, "", "(invalid_object)"},
		{"put content not JSON", a("put", "cli-4", "1", notJSON), "", 1, "", "is not one JSON document"},
		{"put missing file", a("put", "cli-4", "1", filepath.Join(t.TempDir(), "missing")), "", 1, "", "no such file or directory"},
		{"put bad version", a("put", "cli-4", "one"), `{}`, 2, "", `version "one" is not JSON`},
		{"put without version", a("put", "cli-4"), `{}`, 2, "", "want ID VERSION [FILE|@FILE|-], got 1 arguments"},
		{"patch bad to", a("patch", "cli/1", "2", "x"), patch, 2, "", `to version "x" is not JSON`},
		{"patch without to", a("patch", "cli/1", "2"), patch, 2, "", "want ID FROM TO [FILE|@FILE|-]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := withStdin(runObjects, strings.NewReader(tt.stdin), tt.args...)
			if code != tt.code || (tt.out != "" && out != tt.out) || !strings.Contains(errs, tt.errOut) {
				t.Fatalf("got %d %q %q, want %d %q %q", code, out, errs, tt.code, tt.out, tt.errOut)
			}
			if code == 1 && strings.Count(strings.TrimSpace(errs), "\n") > 0 {
				t.Fatalf("a failure must be one line on stderr, got:\n%s", errs)
			}
		})
	}
	runCases(t, []cliCase{
		{name: "get", args: a("objects", "get", "cli/1"), wantOut: []string{`"id": "cli/1"`, `"version": 2`, `"n": 2`}},
		{name: "get object", args: a("objects", "get", "--object", "cli-2"), wantOut: []string{"{\n  \"cars\": [\n    \"a\"\n  ],\n  \"n\": 1\n}\n"}, wantNotOut: []string{`"id"`}},
		{name: "get missing", args: a("objects", "get", "nope"), wantCode: 1, wantErr: []string{`no object "nope" (object_not_found)`}},
		{name: "get bad id", args: a("objects", "get", "a*b"), wantCode: 1, wantErr: []string{"(invalid_id)"}},
		{name: "ls", args: a("objects", "ls"), wantOut: []string{"ID", "VERSION", "cli-2   [1,2]", "cli-3", "cli/1"}},
		{name: "ls pattern", args: a("objects", "ls", "cli-*"), wantOut: []string{"cli-2", "cli-3"}, wantNotOut: []string{"cli/1"}},
		{name: "ls json", args: a("objects", "ls", "--json", "cli/*"), wantOut: []string{`"id": "cli/1"`, `"version": 2`}},
		{name: "rm", args: a("objects", "rm", "cli-3"), wantOut: []string{"removed cli-3"}},
		{name: "get removed", args: a("objects", "get", "cli-3"), wantCode: 1, wantErr: []string{"(object_not_found)"}},
		{name: "ls after rm", args: a("objects", "ls"), wantNotOut: []string{"cli-3"}},
		{name: "rm cli-5", args: a("objects", "rm", "cli-5"), wantOut: []string{"removed cli-5"}},
		{name: "help", args: []string{"objects", "help"}, wantOut: []string{"get", "put", "patch", "rm", "ls", "watch"}},
		{name: "top-level help", args: []string{"help"}, wantOut: []string{"objects"}},
		{name: "get without id", args: a("objects", "get"), wantCode: 2, wantErr: []string{"exactly one id is required"}},
		{name: "rm two ids", args: a("objects", "rm", "a", "b"), wantCode: 2, wantErr: []string{"exactly one id"}},
		{name: "ls two patterns", args: a("objects", "ls", "a", "b"), wantCode: 2, wantErr: []string{"at most one pattern"}},
		{name: "watch without id", args: a("objects", "watch"), wantCode: 2, wantErr: []string{"exactly one id"}},
		{name: "unknown subcommand", args: []string{"objects", "nope"}, wantCode: 2, wantErr: []string{`unknown command "nope"`}},
	})
}

func TestObjectsWatch_PrintsChangesUntilInterrupted(t *testing.T) {
	c := objectsNode(t)
	addr := c.Leader().URL()
	cl, err := client.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	id := "watched"
	if _, err := cl.PutObject(context.Background(), id, json.RawMessage(`1`), json.RawMessage(`{"n":1,"text":"a text long enough that a patch is smaller than the object"}`)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := &lineWriter{wrote: make(chan struct{}, 1)}
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- runObjectsWatch(ctx, []string{id, "--addr", addr}, stdout, &stderr) }()
	lines := func(n int) []map[string]any {
		var out []map[string]any
		testcluster.Eventually(t, 10*time.Second, func() error {
			out = nil
			for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
				if l == "" {
					continue
				}
				var m map[string]any
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					return fmt.Errorf("line %q: %w", l, err)
				}
				out = append(out, m)
			}
			if len(out) < n {
				return fmt.Errorf("%d lines, want %d: %q (stderr %q)", len(out), n, stdout.String(), stderr.String())
			}
			return nil
		})
		return out
	}
	if first := lines(1)[0]; first["type"] != "object" || first["id"] != id || first["version"] != float64(1) {
		t.Fatalf("first line %v, want the object at version 1", first)
	}
	if _, err := cl.PutObject(context.Background(), id, json.RawMessage(`2`), json.RawMessage(`{"n":2,"text":"a text long enough that a patch is smaller than the object"}`)); err != nil {
		t.Fatal(err)
	}
	second := lines(2)[1]
	if second["version"] != float64(2) || (second["type"] != "patch" && second["type"] != "object") {
		t.Fatalf("second line %v, want version 2", second)
	}
	if second["type"] == "patch" && second["from"] != float64(1) {
		t.Fatalf("second line %v, want a patch from 1", second)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("got exit code %d after interrupt, want 0 (stderr %q)", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("watch did not stop after interrupt")
	}
}

// TestObjectsWatch_FailsOnRefusal: a refusal no retry can fix is printed
// with the server's message and exit code 1.
func TestObjectsWatch_FailsOnRefusal(t *testing.T) {
	c := objectsNode(t)
	var stdout, stderr syncBuffer
	code := runObjectsWatch(context.Background(), []string{"a*b", "--addr", c.Leader().URL()}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "(invalid_id)") {
		t.Fatalf("got %d %q, want 1 and invalid_id", code, stderr.String())
	}
}

// TestObjectsWatch_Reconnects: a watch the node ends is reopened, with a
// note on stderr, and starts with the full object again.
func TestObjectsWatch_Reconnects(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.EscapedPath() != "/v1/objects/a%2Fb/watch" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		conns++
		n := conns
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "id: %d\nevent: object\ndata: {\"type\":\"object\",\"id\":\"a/b\",\"version\":%d,\"object\":{\"n\":%d}}\n\n", n, n, n)
		// The stream ends: the command reconnects.
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := &lineWriter{wrote: make(chan struct{}, 1)}
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- runObjectsWatch(ctx, []string{"a/b", "--addr", srv.URL}, stdout, &stderr) }()
	testcluster.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(stdout.String(), `{"type":"object","id":"a/b","version":2,"object":{"n":2}}`+"\n") {
			return fmt.Errorf("stdout %q", stdout.String())
		}
		return nil
	})
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d after interrupt, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("watch did not stop after interrupt")
	}
	if !strings.HasPrefix(stdout.String(), `{"type":"object","id":"a/b","version":1,"object":{"n":1}}`+"\n") {
		t.Fatalf("stdout %q, want the first connection's object first", stdout.String())
	}
	if !strings.Contains(stderr.String(), "shoal objects watch: the node closed the watch, retrying in 100ms (attempt 1)\n") {
		t.Fatalf("stderr %q, want a reconnect note", stderr.String())
	}
}
