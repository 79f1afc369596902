package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shoal/client"
	"shoal/internal/testcluster"
	"shoal/replication"
)

// replicationNode starts a real one-node cluster with the replication
// module and waits until it leads replication.
func replicationNode(t *testing.T) *testcluster.Cluster {
	t.Helper()
	cfg := replication.DefaultConfig()
	cfg.Fsync = false // the tests check the commands, not durability
	c := testcluster.New(t, 1, testcluster.WithModules("replication"), testcluster.WithModuleConfig("replication", &cfg))
	cl, err := client.New(c.Leader().URL())
	if err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 30*time.Second, func() error {
		s, err := cl.ReplicationStatus(context.Background())
		if err != nil {
			return err
		}
		if s.Role != "leader" || len(s.InSync) != 1 {
			return fmt.Errorf("role %q, in-sync set %v", s.Role, s.InSync)
		}
		return nil
	})
	return c
}

// withStdin runs a command of a group that reads stdin in-process.
func withStdin(group func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int,
	stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	var out, errw bytes.Buffer
	code = group(context.Background(), args, stdin, &out, &errw)
	return code, out.String(), errw.String()
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestFiles_Commands(t *testing.T) {
	c := replicationNode(t)
	addr := c.Leader().URL()
	a := func(args ...string) []string { return append(args, "--addr", addr) }

	binary := make([]byte, 5000)
	for i := range binary {
		binary[i] = byte(i * 31)
	}
	code, out, errs := withStdin(runFiles, bytes.NewReader(binary), a("put", "dir/from stdin.bin")...)
	if code != 0 || out != fmt.Sprintf("dir/from stdin.bin: 5000 bytes, sha256 %s\n", hexSum(binary)) {
		t.Fatalf("put from stdin: %d %q %q", code, out, errs)
	}
	file := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(file, []byte("from a file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := withStdin(runFiles, strings.NewReader("not read"), a("put", "dir/from-file.txt", file)...); code != 0 || !strings.Contains(out, "12 bytes") {
		t.Fatalf("put from a file: %d %q %q", code, out, errs)
	}
	if code, out, errs := withStdin(runFiles, strings.NewReader("dash\n"), a("put", "dash.txt", "-", "--json")...); code != 0 || !strings.Contains(out, `"size": 5`) || !strings.Contains(out, `"sha256": "`+hexSum([]byte("dash\n"))) {
		t.Fatalf("put from stdin with - and --json: %d %q %q", code, out, errs)
	}
	if code, out, errs := withStdin(runFiles, strings.NewReader("more\n"), a("append", "dir/from-file.txt")...); code != 0 || !strings.Contains(out, "17 bytes") {
		t.Fatalf("append from stdin: %d %q %q", code, out, errs)
	}
	if code, out, errs := withStdin(runFiles, nil, a("get", "dir/from stdin.bin")...); code != 0 || out != string(binary) {
		t.Fatalf("get: %d, %d bytes, %q; want the %d bytes put", code, len(out), errs, len(binary))
	}
	if code, out, errs := withStdin(runFiles, nil, a("get", "dir/from-file.txt")...); code != 0 || out != "from a file\nmore\n" {
		t.Fatalf("get after append: %d %q %q", code, out, errs)
	}

	runCases(t, []cliCase{
		{name: "ls", args: a("files", "ls"), wantOut: []string{"PATH", "SIZE", "SHA256", "MTIME", "dash.txt", "dir/from stdin.bin   5000   " + hexSum(binary), "dir/from-file.txt"}},
		{name: "ls prefix", args: a("files", "ls", "dir/"), wantOut: []string{"dir/from-file.txt"}, wantNotOut: []string{"dash.txt"}},
		{name: "ls json", args: a("files", "ls", "--json", "dash"), wantOut: []string{`"path": "dash.txt"`, `"size": 5`, `"mtime": "`}},
		{name: "rm", args: a("files", "rm", "dash.txt"), wantOut: []string{"deleted dash.txt"}},
		{name: "get removed", args: a("files", "get", "dash.txt"), wantCode: 1, wantErr: []string{`no file "dash.txt" on this node (file_not_found)`}},
		{name: "rm missing", args: a("files", "rm", "dash.txt"), wantCode: 1, wantErr: []string{"(file_not_found)"}},
		{name: "ls after rm", args: a("files", "ls"), wantNotOut: []string{"dash.txt"}},
		{name: "get bad path", args: a("files", "get", "../etc/passwd"), wantCode: 1, wantErr: []string{`invalid path "../etc/passwd"`, "(invalid_path)"}},
		{name: "ls bad prefix", args: a("files", "ls", "/abs"), wantCode: 1, wantErr: []string{"(invalid_parameter)"}},
		{name: "status", args: a("replication", "status"), wantOut: []string{"node:", "role:", "leader", "in sync:", "position:", "counters:"}},
		{name: "status json", args: a("replication", "status", "--json"), wantOut: []string{`"role": "leader"`, `"in_sync": [`}},
		{name: "top-level help", args: []string{"help"}, wantOut: []string{"files", "replication"}},
		{name: "files help", args: []string{"files", "help"}, wantOut: []string{"put", "append", "get", "ls", "rm"}},
		{name: "put help", args: []string{"files", "put", "-h"}, wantOut: []string{"shoal files put [flags] PATH [FILE|@FILE|-]"}},
		{name: "no subcommand", args: []string{"files"}, wantCode: 2, wantErr: []string{"shoal files <command>"}},
		{name: "get without path", args: a("files", "get"), wantCode: 2, wantErr: []string{"exactly one path is required"}},
		{name: "get two paths", args: a("files", "get", "a", "b"), wantCode: 2, wantErr: []string{"exactly one path"}},
		{name: "rm without path", args: a("files", "rm"), wantCode: 2, wantErr: []string{"exactly one path"}},
		{name: "ls two prefixes", args: a("files", "ls", "a", "b"), wantCode: 2, wantErr: []string{"at most one prefix"}},
		{name: "status extra arg", args: a("replication", "status", "now"), wantCode: 2, wantErr: []string{`unexpected argument "now"`}},
		{name: "bad flag", args: a("files", "ls", "--nope"), wantCode: 2, wantErr: []string{"flag provided but not defined"}},
	})

	for _, tt := range []struct {
		name    string
		args    []string
		code    int
		wantErr string
	}{
		{"put without path", a("put"), 2, "want PATH [FILE|@FILE|-], got 0 arguments"},
		{"put three args", a("put", "p", "f", "g"), 2, "want PATH [FILE|@FILE|-], got 3 arguments"},
		{"append without path", a("append"), 2, "want PATH [FILE|@FILE|-]"},
		{"put missing file", a("put", "p", filepath.Join(t.TempDir(), "missing")), 1, "no such file or directory"},
		{"put bad path", a("put", "a/./b"), 1, "(invalid_path)"},
		{"put empty path", a("put", ""), 1, "the path is empty (invalid_path)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := withStdin(runFiles, strings.NewReader("x"), tt.args...)
			if code != tt.code || !strings.Contains(errs, tt.wantErr) {
				t.Fatalf("got %d %q, want %d and %q", code, errs, tt.code, tt.wantErr)
			}
			if code == 1 && strings.Count(strings.TrimSpace(errs), "\n") > 0 {
				t.Fatalf("a failure must be one line on stderr, got:\n%s", errs)
			}
		})
	}

	var list []client.FileEntry
	code, out, errs = withStdin(runFiles, nil, a("ls", "--json")...)
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list) != 2 {
		t.Fatalf("ls --json: %d %q %q (%v)", code, out, errs, err)
	}
}

// TestReplicationStatus_Summary: the followers' table and a follower's
// own stream, from a node's answer.
func TestReplicationStatus_Summary(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/replication/status" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"node":"n2","role":"follower","leader":"n1","term":3,"in_sync":["n1","n2"],"position":42,`+
			`"followers":[{"node":"n2","state":"streaming","in_sync":true,"acked_bytes":42,"lag_bytes":0,"lag_seconds":0},`+
			`{"node":"n3","state":"disconnected","in_sync":false,"acked_bytes":0,"lag_bytes":42,"lag_seconds":1.5}],`+
			`"follower":{"leader":"n1","state":"streaming","applied_bytes":42,"since":"2026-01-02T03:04:05Z"},"counters":{"mismatches":1,"catchup_files":2}}`)
	}))
	t.Cleanup(srv.Close)
	runCases(t, []cliCase{
		{name: "summary", args: []string{"replication", "status", "--addr", srv.URL}, wantOut: []string{
			"role:       follower", "leader:     n1 (term 3)", "in sync:    n1, n2", "following:  n1, streaming, 42 bytes applied, since 2026-01-02T03:04:05Z",
			"FOLLOWER   STATE          IN SYNC   ACKED BYTES   LAG BYTES   LAG SECONDS",
			"n2         streaming      yes       42            0           0.000",
			"n3         disconnected   -         0             42          1.500",
			"counters: catchup_files=2 mismatches=1"}},
		{name: "json", args: []string{"replication", "status", "--json", "--addr", srv.URL}, wantOut: []string{`"lag_seconds": 1.5`, `"applied_bytes": 42`}},
	})
}
