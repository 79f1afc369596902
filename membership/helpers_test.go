package membership

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"shoal/internal/testlog"
)

// eventually calls check until it returns nil or timeout passes, then fails
// the test with check's last error.
func eventually(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %s: %v", timeout, err)
		}
		<-tick.C
	}
}

// testLogger returns a logger into t.Log for node name; records, if not
// nil, also sees every record.
func testLogger(t testing.TB, name string, records *recorder) *slog.Logger {
	// Created before the node, so its cleanup runs after every Shutdown.
	var h slog.Handler = slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelInfo})
	if records != nil {
		records.next = h
		h = records
	}
	return slog.New(h).With("test_node", name)
}

// recorder is a slog.Handler that counts records by message.
type recorder struct {
	next slog.Handler
	mu   *sync.Mutex
	msgs map[string]int
}

func newRecorder() *recorder { return &recorder{mu: new(sync.Mutex), msgs: map[string]int{}} }

func (r *recorder) Enabled(ctx context.Context, l slog.Level) bool { return true }
func (r *recorder) Handle(ctx context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.msgs[rec.Message]++
	r.mu.Unlock()
	if r.next.Enabled(ctx, rec.Level) {
		return r.next.Handle(ctx, rec)
	}
	return nil
}
func (r *recorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &recorder{next: r.next.WithAttrs(attrs), mu: r.mu, msgs: r.msgs}
}
func (r *recorder) WithGroup(name string) slog.Handler {
	return &recorder{next: r.next.WithGroup(name), mu: r.mu, msgs: r.msgs}
}
func (r *recorder) count(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.msgs[msg]
}

// testConfig is a config for an in-process node on loopback.
func testConfig(t testing.TB, name string) Config {
	cfg := DefaultConfig()
	cfg.NodeName = name
	cfg.BindAddr = "127.0.0.1:0"
	cfg.Timing = LocalTiming()
	cfg.RetryJoinMin = 20 * time.Millisecond
	cfg.RetryJoinMax = 100 * time.Millisecond
	cfg.Logger = testLogger(t, name, nil)
	cfg.Registerer = prometheus.NewRegistry()
	cfg.Meta = Meta{
		HTTPAddr: "127.0.0.1:" + fmt.Sprint(8000+len(name)),
		RaftAddr: "127.0.0.1:9000",
		Modules:  []string{"kv", "locks"},
		Version:  "test",
	}
	return cfg
}

// start starts a node and shuts it down when the test ends.
func start(t testing.TB, cfg Config) *Membership {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("new %s: %v", cfg.NodeName, err)
	}
	t.Cleanup(func() {
		if err := m.Shutdown(); err != nil {
			t.Errorf("shutdown %s: %v", cfg.NodeName, err)
		}
	})
	return m
}

// startCluster starts n nodes named n0..n<n-1>, joins them to n0 and waits
// until every node sees every other alive.
func startCluster(t testing.TB, n int, tweak func(i int, cfg *Config)) []*Membership {
	t.Helper()
	nodes := make([]*Membership, n)
	for i := range n {
		cfg := testConfig(t, fmt.Sprintf("n%d", i))
		if tweak != nil {
			tweak(i, &cfg)
		}
		nodes[i] = start(t, cfg)
		if i > 0 {
			if _, err := nodes[i].Join([]string{nodes[0].LocalMember().Addr}); err != nil {
				t.Fatalf("join n%d: %v", i, err)
			}
		}
	}
	waitAlive(t, nodes, n)
	return nodes
}

// waitAlive waits until every node in nodes sees want members alive.
func waitAlive(t testing.TB, nodes []*Membership, want int) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		for _, m := range nodes {
			if got := m.NumAlive(); got != want {
				return fmt.Errorf("%s sees %d alive, want %d: %v", m.LocalName(), got, want, m.Members())
			}
		}
		return nil
	})
}

// statusOn returns a check that every node in on sees member name with
// status want.
func statusOn(on []*Membership, name string, want Status) func() error {
	return func() error {
		for _, m := range on {
			mem, ok := m.Member(name)
			if !ok {
				return fmt.Errorf("%s does not know %s", m.LocalName(), name)
			}
			if mem.Status != want {
				return fmt.Errorf("%s sees %s %s, want %s", m.LocalName(), name, mem.Status, want)
			}
		}
		return nil
	}
}

// freePort returns a loopback port that was free for TCP and UDP a moment
// ago.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatalf("no free port")
	return 0
}

// recordingHandler records the messages and merged states it receives.
type recordingHandler struct {
	mu     sync.Mutex
	msgs   [][]byte
	states [][]byte
	local  []byte // what LocalState returns
}

func (h *recordingHandler) NotifyMsg(msg []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, slices.Clone(msg))
}

func (h *recordingHandler) messages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, len(h.msgs))
	for i, m := range h.msgs {
		out[i] = string(m)
	}
	return out
}

// stateHandler is a recordingHandler that takes part in push/pull.
type stateHandler struct{ recordingHandler }

func (h *stateHandler) LocalState(join bool) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.local
}

func (h *stateHandler) MergeRemoteState(buf []byte, join bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.states = append(h.states, slices.Clone(buf))
}

func (h *stateHandler) merged() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, len(h.states))
	for i, s := range h.states {
		out[i] = string(s)
	}
	return out
}

// nextEvent waits for the next event of kind for member on s, skipping
// others.
func nextEvent(t testing.TB, s *Subscription, kind EventKind, member string) Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-s.C:
			if !ok {
				t.Fatalf("subscription closed while waiting for %s of %s", kind, member)
			}
			if ev.Kind == kind && ev.Member.Name == member {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event for %s", kind, member)
		}
	}
}
