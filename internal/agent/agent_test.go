package agent_test

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"shoal/internal/agent"
)

// TestNew_StartupErrorIsReturned: a node that cannot start (its HTTP port is
// taken) reports why and stops what it had started, instead of panicking.
func TestNew_StartupErrorIsReturned(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := agent.DefaultConfig()
	cfg.NodeName = "n1"
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = taken.Addr().String()
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.GossipAddr = "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := agent.New(cfg)
	if err == nil {
		a.Stop(t.Context())
		t.Fatal("started on a taken port")
	}
	if !strings.Contains(err.Error(), "listen for http") {
		t.Fatalf("got %v, want the listen error", err)
	}
}

// TestNew_AdvertiseHostName: --advertise may be a host name; gossip
// advertises its address.
func TestNew_AdvertiseHostName(t *testing.T) {
	cfg := agent.DefaultConfig()
	cfg.NodeName = "n1"
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.GossipAddr = "127.0.0.1:0"
	cfg.Advertise = "localhost"
	cfg.BootstrapSelf = true
	cfg.Local = true
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatalf("advertise by host name: %v", err)
	}
	defer a.Stop(t.Context())
	host, _, _ := net.SplitHostPort(a.GossipAddr())
	if net.ParseIP(host) == nil {
		t.Fatalf("gossip advertises %q, want an IP address", a.GossipAddr())
	}
}
