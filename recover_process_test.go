//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAgentProcesses_RecoverRefusals: a recovery that cannot be right
// makes the agent exit at once with a non-zero status, saying why, and
// leaves the data directory's recovery files as they were.
func TestAgentProcesses_RecoverRefusals(t *testing.T) {
	bin := shoalBinary(t)
	t.Parallel()
	p := pickPorts(t)
	for _, tt := range []struct {
		name  string
		args  []string
		peers string // written to <data-dir>/raft/peers.json if set
		want  string
	}{
		{"with bootstrap-expect", []string{"--recover", "--bootstrap-expect", "3"}, "", "--recover and --bootstrap-expect exclude each other"},
		{"without raft state", []string{"--recover"}, "", "no raft state to recover from"},
		{"malformed peers file", nil, `[{"id":"n1",`, "invalid raft peers file"},
		{"peers file without this node", nil, `[{"id":"n2","address":"127.0.0.1:7481"}]`, "does not contain this node"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.peers != "" {
				if err := os.MkdirAll(filepath.Join(dir, "raft"), 0o750); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "raft", "peers.json"), []byte(tt.peers), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			args := append([]string{"agent", "--node-name", "n1", "--data-dir", dir}, p.addrArgs()...)
			args = append(args, tt.args...)
			res := runShoal(t, bin, 30*time.Second, nil, args...)
			if res.code == 0 {
				t.Fatalf("shoal %s: %s\nwant a non-zero exit status", strings.Join(args, " "), res)
			}
			if !strings.Contains(res.stderr, tt.want) {
				t.Errorf("shoal %s: stderr %q does not mention %q", strings.Join(args, " "), res.stderr, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "raft", "peers.info")); err == nil {
				t.Errorf("a refused recovery wrote peers.info")
			}
			if tt.peers != "" {
				if b, err := os.ReadFile(filepath.Join(dir, "raft", "peers.json")); err != nil || string(b) != tt.peers {
					t.Errorf("peers.json after a refused recovery: %q, %v; want it untouched", b, err)
				}
			}
		})
	}
}
