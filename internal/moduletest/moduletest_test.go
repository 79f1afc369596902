package moduletest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"shoal/modules"
)

func TestNewHost_Defaults(t *testing.T) {
	h := NewHost(t)
	if h.NodeName() != "node-0" || h.Config() != nil || h.Raft() != nil || h.Gossip() != nil {
		t.Fatalf("got name %q config %v raft %v gossip %v, want node-0 and nothing else",
			h.NodeName(), h.Config(), h.Raft(), h.Gossip())
	}
	if h.DataDir() == "" {
		t.Fatalf("got no data directory, want a temporary one")
	}
	if h.Logger() == nil || h.Registerer() != h.Registry() {
		t.Fatalf("got logger %v, registerer %v, want a logger and the host's registry", h.Logger(), h.Registerer())
	}
}

func TestNewHost_Options(t *testing.T) {
	r := &Raft{}
	h := NewHost(t, WithName("n1"), WithDataDir("/data/n1"), WithRaft(r))
	if h.NodeName() != "n1" || h.DataDir() != "/data/n1" || h.Raft() != r {
		t.Fatalf("got %q %q %v, want the options' values", h.NodeName(), h.DataDir(), h.Raft())
	}
}

func TestRaft_NilFunctions(t *testing.T) {
	var r Raft
	if _, err := r.Apply(context.Background(), 1, nil); !errors.Is(err, ErrNoApply) {
		t.Fatalf("got %v, want ErrNoApply", err)
	}
	if err := r.ReadIndex(context.Background()); err != nil || r.AppliedIndex() != 0 || !r.IsLeader() {
		t.Fatalf("got %v %d %v, want a leader with nothing applied", err, r.AppliedIndex(), r.IsLeader())
	}
	r.ApplyFunc = func(context.Context, byte, []byte) (modules.Applied, error) {
		return modules.Applied{Index: 7}, nil
	}
	r.IsLeaderFunc = func() bool { return false }
	if a, err := r.Apply(context.Background(), 1, nil); err != nil || a.Index != 7 || r.IsLeader() {
		t.Fatalf("got %+v %v leader %v, want the functions' results", a, err, r.IsLeader())
	}
}

func TestMetricValue(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "h"}, []string{"kind", "result"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h_seconds", Help: "h"})
	reg.MustRegister(c, h)
	c.WithLabelValues("a", "ok").Add(1)
	c.WithLabelValues("a", "failed").Add(2)
	c.WithLabelValues("b", "ok").Add(4)
	h.Observe(1)
	h.Observe(2)
	tests := []struct {
		name   string
		metric string
		labels []string
		want   float64
	}{
		{"all series", "c_total", nil, 7},
		{"one label", "c_total", []string{"kind", "a"}, 3},
		{"two labels", "c_total", []string{"kind", "a", "result", "ok"}, 1},
		{"no such series", "c_total", []string{"kind", "z"}, 0},
		{"histogram count", "h_seconds", nil, 2},
		{"no such metric", "missing", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MetricValue(t, reg, tt.metric, tt.labels...); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// routes is a modules.Router with one route.
type routes struct{}

func (routes) Routes(r chi.Router) {
	r.Get("/ping", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "pong") })
}

func TestServe(t *testing.T) {
	stopped := false
	t.Run("serve", func(t *testing.T) {
		srv := Serve(t, routes{}, func() { stopped = true })
		resp, err := http.Get(srv.URL + "/v1/ping")
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		defer resp.Body.Close()
		if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "pong" {
			t.Fatalf("got %d %q, want 200 pong", resp.StatusCode, b)
		}
	})
	if !stopped {
		t.Fatalf("the cleanup did not call stop")
	}
}

// recorder is a module that records its lifecycle calls.
type recorder struct {
	calls []string
}

func (m *recorder) ID() string                   { return "recorder" }
func (m *recorder) Provision(modules.Host) error { m.calls = append(m.calls, "provision"); return nil }
func (m *recorder) Start(context.Context) error  { m.calls = append(m.calls, "start"); return nil }
func (m *recorder) Stop(ctx context.Context) error {
	m.calls = append(m.calls, "stop")
	return ctx.Err()
}

func TestStart_StopsOnce(t *testing.T) {
	m := new(recorder)
	t.Run("test", func(t *testing.T) {
		stop := Start(t, m, NewHost(t))
		stop()
		stop()
	})
	if got, want := strings.Join(m.calls, ","), "provision,start,stop"; got != want {
		t.Fatalf("got calls %s, want %s (stop once, also at cleanup)", got, want)
	}
	m = new(recorder)
	t.Run("cleanup", func(t *testing.T) { Start(t, m, NewHost(t)) })
	if got, want := strings.Join(m.calls, ","), "provision,start,stop"; got != want {
		t.Fatalf("got calls %s, want %s (stopped at cleanup)", got, want)
	}
}
