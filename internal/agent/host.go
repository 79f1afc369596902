package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"shoal/consensus"
	"shoal/membership"
	"shoal/modules"
)

// moduleHost is a module's handle on this agent (modules.Host).
type moduleHost struct {
	a      *Agent
	mod    modules.Module
	cfg    modules.Config
	logger *slog.Logger
	dir    string
}

func (a *Agent) newHost(info modules.Info, mod modules.Module, cfg modules.Config) (modules.Host, error) {
	dir := filepath.Join(a.cfg.DataDir, "modules", info.ID)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create module directory: %w", err)
	}
	return &moduleHost{a: a, mod: mod, cfg: cfg, logger: a.logger.With("module", info.ID), dir: dir}, nil
}

func (h *moduleHost) NodeName() string                  { return h.a.cfg.NodeName }
func (h *moduleHost) Logger() *slog.Logger              { return h.logger }
func (h *moduleHost) Registerer() prometheus.Registerer { return h.a.registry }
func (h *moduleHost) DataDir() string                   { return h.dir }
func (h *moduleHost) Config() modules.Config            { return h.cfg }
func (h *moduleHost) Raft() modules.Raft                { return raftHandle{h} }
func (h *moduleHost) Gossip() modules.Gossip            { return gossipHandle{h} }
func (h *moduleHost) Cluster() modules.Cluster          { return clusterHandle{h} }

// raftHandle submits commands under the module's tag. It is valid only
// after the agent created its consensus node (Provision must not use it).
type raftHandle struct{ h *moduleHost }

func (r raftHandle) tag() (modules.Tag, error) {
	rh, ok := r.h.mod.(modules.RaftHandler)
	if !ok {
		return 0, fmt.Errorf("module %s does not implement modules.RaftHandler", r.h.mod.ID())
	}
	return rh.Tag(), nil
}

func (r raftHandle) Apply(ctx context.Context, op byte, payload []byte) (modules.Applied, error) {
	return r.apply(ctx, op, payload, false)
}

func (r raftHandle) ApplyOnLeader(ctx context.Context, op byte, payload []byte) (modules.Applied, error) {
	return r.apply(ctx, op, payload, true)
}

// apply submits a command of the module; leaderOnly fails on a follower
// instead of forwarding.
func (r raftHandle) apply(ctx context.Context, op byte, payload []byte, leaderOnly bool) (modules.Applied, error) {
	tag, err := r.tag()
	if err != nil {
		return modules.Applied{}, err
	}
	res, idx, err := r.h.a.node.Apply(ctx, consensus.EncodeCommand(tag, op, payload), leaderOnly)
	return modules.Applied{Index: idx, Result: res}, err
}

func (r raftHandle) ReadIndex(ctx context.Context) error { return r.h.a.node.ReadIndex(ctx) }
func (r raftHandle) AppliedIndex() uint64                { return r.h.a.node.FSM().Applied() }
func (r raftHandle) IsLeader() bool                      { return r.h.a.node.IsLeader() }

// gossipHandle sends on the module's gossip channel.
type gossipHandle struct{ h *moduleHost }

func (g gossipHandle) channel() (*membership.Channel, error) {
	gh, ok := g.h.mod.(modules.GossipHandler)
	if !ok {
		return nil, fmt.Errorf("module %s does not implement modules.GossipHandler", g.h.mod.ID())
	}
	return g.h.a.members.Channel(byte(gh.Tag())), nil
}

func (g gossipHandle) Broadcast(key string, msg []byte) error {
	ch, err := g.channel()
	if err != nil {
		return err
	}
	return ch.Broadcast(key, msg)
}

func (g gossipHandle) Spread(key string, msg []byte, fanout int) error {
	ch, err := g.channel()
	if err != nil {
		return err
	}
	return ch.Spread(key, msg, fanout)
}

func (g gossipHandle) SendTo(ctx context.Context, node string, msg []byte) error {
	ch, err := g.channel()
	if err != nil {
		return err
	}
	return ch.SendTo(ctx, node, msg)
}

func (g gossipHandle) SendBestEffort(node string, msg []byte) error {
	ch, err := g.channel()
	if err != nil {
		return err
	}
	return ch.SendBestEffort(node, msg)
}

func (g gossipHandle) Members() []modules.Member {
	local := g.h.a.cfg.NodeName
	var out []modules.Member
	for _, m := range g.h.a.members.Members() {
		if m.Status != membership.StatusAlive && m.Status != membership.StatusSuspect {
			continue
		}
		out = append(out, modules.Member{Name: m.Name, HTTPAddr: m.Meta.HTTPAddr, Modules: m.Meta.Modules, Local: m.Name == local})
	}
	return out
}

// leadershipRelay passes Raft leadership changes to the modules that want
// them, and only while they are started: Raft may elect this node before
// the modules start, and keeps running while they stop.
type leadershipRelay struct {
	logger    *slog.Logger
	mu        sync.Mutex
	leading   bool
	observers []modules.LeaderObserver
	told      bool // what the observers were last told
}

func newLeadershipRelay(logger *slog.Logger) *leadershipRelay {
	return &leadershipRelay{logger: logger}
}

func (l *leadershipRelay) set(leading bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leading = leading
	l.deliver()
}

// attach starts delivering to the started modules.
func (l *leadershipRelay) attach(mods []modules.Module) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range mods {
		if o, ok := m.(modules.LeaderObserver); ok {
			l.observers = append(l.observers, o)
		}
	}
	l.deliver()
}

// detach tells observers they no longer lead and stops delivering.
func (l *leadershipRelay) detach() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leading = false
	l.deliver()
	l.observers = nil
}

func (l *leadershipRelay) deliver() {
	if l.told == l.leading {
		return
	}
	l.told = l.leading
	for _, o := range l.observers {
		o.LeadershipChanged(l.leading)
	}
}

var _ modules.Host = (*moduleHost)(nil)
