package locks

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"shoal/modules"
)

// fakeRaft is a function-field modules.Raft.
type fakeRaft struct {
	apply        func(ctx context.Context, op byte, payload []byte) (modules.Applied, error)
	readIndex    func(ctx context.Context) error
	appliedIndex func() uint64
	isLeader     func() bool
}

func (f *fakeRaft) Apply(ctx context.Context, op byte, payload []byte) (modules.Applied, error) {
	return f.apply(ctx, op, payload)
}
func (f *fakeRaft) ReadIndex(ctx context.Context) error { return f.readIndex(ctx) }
func (f *fakeRaft) AppliedIndex() uint64                { return f.appliedIndex() }
func (f *fakeRaft) IsLeader() bool                      { return f.isLeader() }

// fakeHost is a modules.Host for unit tests.
type fakeHost struct {
	cfg    modules.Config
	reg    *prometheus.Registry
	raft   modules.Raft
	logger *slog.Logger
}

func (h *fakeHost) NodeName() string                  { return "node-0" }
func (h *fakeHost) Logger() *slog.Logger              { return h.logger }
func (h *fakeHost) Registerer() prometheus.Registerer { return h.reg }
func (h *fakeHost) DataDir() string                   { return "" }
func (h *fakeHost) Config() modules.Config            { return h.cfg }
func (h *fakeHost) Raft() modules.Raft                { return h.raft }
func (h *fakeHost) Gossip() modules.Gossip            { return nil }

// testNode is a provisioned Locks whose fake Raft applies every command
// synchronously to the module itself, with increasing Raft indexes and a
// command clock the test controls (or the real clock, with realClock).
type testNode struct {
	locks *Locks
	reg   *prometheus.Registry
	raft  *fakeRaft

	mu        sync.Mutex // serialises commands, as the FSM goroutine does
	index     uint64
	now       time.Time
	realClock bool
	ops       []byte // every op applied, in order
	// before, if set, runs (under mu) before each command is applied; a
	// test uses it to slip other commands in first.
	before func(op byte, payload []byte)

	stopOnce sync.Once
}

var testEpoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// newTestNode provisions and starts a Locks with cfg and stops it at
// cleanup.
func newTestNode(t *testing.T, cfg Config) *testNode {
	t.Helper()
	n := &testNode{locks: new(Locks), reg: prometheus.NewRegistry(), now: testEpoch}
	n.raft = &fakeRaft{
		apply: func(ctx context.Context, op byte, payload []byte) (modules.Applied, error) {
			if err := ctx.Err(); err != nil {
				return modules.Applied{}, err
			}
			return n.apply(op, payload)
		},
		readIndex: func(context.Context) error { return nil },
		appliedIndex: func() uint64 {
			n.mu.Lock()
			defer n.mu.Unlock()
			return n.index
		},
		isLeader: func() bool { return true },
	}
	c := cfg
	host := &fakeHost{cfg: &c, reg: n.reg, raft: n.raft, logger: testLogger(t)}
	if err := n.locks.Provision(host); err != nil {
		t.Fatalf("provision: %v", err)
	}
	if err := n.locks.Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { n.stop(t) })
	return n
}

// stop stops the module once.
func (n *testNode) stop(t *testing.T) {
	n.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.locks.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
}

// apply applies one command at the next Raft index and the command clock.
func (n *testNode) apply(op byte, payload []byte) (modules.Applied, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.before != nil {
		before := n.before
		n.before = nil // one shot: it may apply commands itself
		before(op, payload)
	}
	return n.applyLocked(op, payload)
}

func (n *testNode) applyLocked(op byte, payload []byte) (modules.Applied, error) {
	n.index++
	n.ops = append(n.ops, op)
	now := n.now
	if n.realClock {
		now = time.Now()
	}
	res, err := n.locks.ApplyCommand(modules.Command{Index: n.index, Time: now, Op: op, Payload: payload})
	if err != nil {
		return modules.Applied{Index: n.index}, err
	}
	return modules.Applied{Index: n.index, Result: res}, nil
}

// advance moves the command clock.
func (n *testNode) advance(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.now = n.now.Add(d)
}

// opsApplied returns how many commands with op were applied.
func (n *testNode) opsApplied(op byte) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, o := range n.ops {
		if o == op {
			c++
		}
	}
	return c
}

// serve mounts the module under /v1 on a test server.
func (n *testNode) serve(t *testing.T) *httptest.Server {
	t.Helper()
	r := chi.NewRouter()
	r.Route("/v1", n.locks.Routes)
	srv := httptest.NewServer(r)
	t.Cleanup(func() {
		n.stop(t) // ends waiting requests, which srv.Close would wait for
		srv.Close()
	})
	return srv
}

// testLogger writes to t.Log until the test ends.
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.done)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu     sync.Mutex
	t      *testing.T
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) done() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
}

var _ io.Writer = (*testWriter)(nil)

// metricValue returns the value of a counter or gauge (with the given
// label value, if any) in reg, or of a histogram's sample count.
func metricValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

// eventually polls f until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", timeout, err)
		}
		time.Sleep(wait) // polling interval, not a wait for an event
		wait = min(2*wait, 50*time.Millisecond)
	}
}

var errNotYet = errors.New("not yet")
