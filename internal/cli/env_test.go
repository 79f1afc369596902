package cli

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestEnvName(t *testing.T) {
	tests := []struct{ prefix, name, want string }{
		{"SHOAL", "raft-addr", "SHOAL_RAFT_ADDR"},
		{"SHOAL_", "addr", "SHOAL_ADDR"},
		{"", "data-dir", "DATA_DIR"},
	}
	for _, tt := range tests {
		if got := EnvName(tt.prefix, tt.name); got != tt.want {
			t.Errorf("EnvName(%q, %q) = %q, want %q", tt.prefix, tt.name, got, tt.want)
		}
	}
}

type agentFlags struct {
	raftAddr  string
	port      int
	bootstrap bool
	timeout   time.Duration
	name      string
}

func newAgentFlags() (*flag.FlagSet, *agentFlags) {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a := &agentFlags{}
	fs.StringVar(&a.raftAddr, "raft-addr", "127.0.0.1:7947", "")
	fs.IntVar(&a.port, "port", 7480, "")
	fs.BoolVar(&a.bootstrap, "bootstrap", false, "")
	fs.DurationVar(&a.timeout, "timeout", time.Second, "")
	fs.StringVar(&a.name, "name", "default", "")
	return fs, a
}

func TestBindEnv_FillsUnsetFlags(t *testing.T) {
	t.Setenv("SHOAL_RAFT_ADDR", "10.0.0.1:9000")
	t.Setenv("SHOAL_PORT", "9999")
	t.Setenv("SHOAL_BOOTSTRAP", "true")
	t.Setenv("SHOAL_TIMEOUT", "5s")
	t.Setenv("SHOAL_NAME", "") // empty: ignored
	fs, a := newAgentFlags()
	if err := fs.Parse([]string{"--port", "1234"}); err != nil {
		t.Fatalf("parse: %v", err)
	}
	if err := BindEnv(fs, "SHOAL"); err != nil {
		t.Fatalf("bind env: %v", err)
	}
	got := *a
	want := agentFlags{raftAddr: "10.0.0.1:9000", port: 1234, bootstrap: true, timeout: 5 * time.Second, name: "default"}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestBindEnv_ExplicitFlagWins(t *testing.T) {
	t.Setenv("SHOAL_BOOTSTRAP", "true")
	fs, a := newAgentFlags()
	if err := fs.Parse([]string{"--bootstrap=false"}); err != nil {
		t.Fatalf("parse: %v", err)
	}
	if err := BindEnv(fs, "SHOAL"); err != nil {
		t.Fatalf("bind env: %v", err)
	}
	if a.bootstrap {
		t.Fatalf("got bootstrap true from env, want the explicit false")
	}
}

func TestBindEnv_BadValues(t *testing.T) {
	t.Setenv("SHOAL_PORT", "lots")
	t.Setenv("SHOAL_TIMEOUT", "soon")
	fs, _ := newAgentFlags()
	if err := fs.Parse(nil); err != nil {
		t.Fatalf("parse: %v", err)
	}
	err := BindEnv(fs, "SHOAL")
	if err == nil {
		t.Fatalf("got nil error for bad values")
	}
	for _, s := range []string{`SHOAL_PORT="lots"`, "--port", `SHOAL_TIMEOUT="soon"`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
}
