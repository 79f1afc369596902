package moduletest

import (
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"shoal/internal/testlog"
	"shoal/modules"
)

// Host is a modules.Host for one module instance in a unit test. NewHost
// builds it and nothing changes it afterwards, so its methods are safe for
// concurrent use, as modules.Host requires.
type Host struct {
	name     string
	logger   *slog.Logger
	registry *prometheus.Registry
	dir      string
	cfg      modules.Config
	raft     modules.Raft
	gossip   modules.Gossip
	cluster  modules.Cluster
}

// Option sets a part of a Host.
type Option func(*Host)

// WithName sets the node name (default "node-0").
func WithName(name string) Option { return func(h *Host) { h.name = name } }

// WithConfig sets the module's configuration (default nil: the module's
// defaults).
func WithConfig(cfg modules.Config) Option { return func(h *Host) { h.cfg = cfg } }

// WithDataDir sets the module's data directory (default a new t.TempDir()),
// for a test that restarts a module on the data of an earlier instance.
func WithDataDir(dir string) Option { return func(h *Host) { h.dir = dir } }

// WithLogger sets the module's logger (default: debug and above to t.Log,
// see testlog).
func WithLogger(l *slog.Logger) Option { return func(h *Host) { h.logger = l } }

// WithRaft sets the Raft log (default nil, for a module that uses none).
func WithRaft(r modules.Raft) Option { return func(h *Host) { h.raft = r } }

// WithGossip sets the gossip channel (default nil, for a module that uses
// none).
func WithGossip(g modules.Gossip) Option { return func(h *Host) { h.gossip = g } }

// WithCluster sets the cluster view (default nil, for a module that needs
// none; see Cluster for a fake).
func WithCluster(c modules.Cluster) Option { return func(h *Host) { h.cluster = c } }

// NewHost returns a Host with a fresh Prometheus registry and the parts set
// by opts.
func NewHost(t testing.TB, opts ...Option) *Host {
	t.Helper()
	h := &Host{name: "node-0", registry: prometheus.NewRegistry()}
	for _, o := range opts {
		o(h)
	}
	if h.logger == nil {
		h.logger = testlog.Logger(t, slog.LevelDebug)
	}
	if h.dir == "" {
		h.dir = t.TempDir()
	}
	return h
}

// Registry is the host's registry, for reading the module's metrics (see
// MetricValue).
func (h *Host) Registry() *prometheus.Registry { return h.registry }

// NodeName implements modules.Host.
func (h *Host) NodeName() string { return h.name }

// Logger implements modules.Host.
func (h *Host) Logger() *slog.Logger { return h.logger }

// Registerer implements modules.Host.
func (h *Host) Registerer() prometheus.Registerer { return h.registry }

// DataDir implements modules.Host.
func (h *Host) DataDir() string { return h.dir }

// Config implements modules.Host.
func (h *Host) Config() modules.Config { return h.cfg }

// Raft implements modules.Host.
func (h *Host) Raft() modules.Raft { return h.raft }

// Gossip implements modules.Host.
func (h *Host) Gossip() modules.Gossip { return h.gossip }

// Cluster implements modules.Host.
func (h *Host) Cluster() modules.Cluster { return h.cluster }

var _ modules.Host = (*Host)(nil)
