package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/hashicorp/raft"

	"shoal/internal/httpjson"
	"shoal/internal/peerrpc"
	"shoal/membership"
	"shoal/modules"
)

// A module's calls and streams travel as peer RPC methods and stream names
// under "module/<id>/": the receiving agent routes them to the same module
// there (its PeerHandler or PeerStreamHandler).
const modulePrefix = "module/"

func moduleMethod(id, method string) string { return modulePrefix + id + "/" + method }

// serveModules routes the module calls and streams that reach this node.
func (a *Agent) serveModules(s *peerrpc.Server) {
	s.HandlePrefix(modulePrefix, func(ctx context.Context, from, method string, body []byte) ([]byte, error) {
		id, name, ok := strings.Cut(strings.TrimPrefix(method, modulePrefix), "/")
		mod, found := a.Module(id)
		if !ok || !found {
			return nil, errNoModule.WithMessage("this node runs no module %q", id)
		}
		h, ok := mod.(modules.PeerHandler)
		if !ok {
			return nil, errNoModule.WithMessage("module %q answers no calls", id)
		}
		return h.HandlePeer(ctx, from, name, body)
	})
	s.HandleStreamPrefix(modulePrefix, func(ctx context.Context, from, stream string, conn net.Conn) {
		id, name, ok := strings.Cut(strings.TrimPrefix(stream, modulePrefix), "/")
		mod, found := a.Module(id)
		h, serves := mod.(modules.PeerStreamHandler)
		if !ok || !found || !serves {
			_ = conn.Close()
			return
		}
		h.HandlePeerStream(ctx, from, name, conn)
	})
}

var errNoModule = httpjson.Errorf(501, "no_such_module", "the node runs no such module")

// clusterHandle is a module's modules.Cluster.
type clusterHandle struct{ h *moduleHost }

func (c clusterHandle) a() *Agent { return c.h.a }

// leaderID is the Raft leader's name ("" if none is known, or on a
// client, which follows no Raft log).
func (c clusterHandle) leaderID() string {
	if c.a().node == nil {
		return ""
	}
	id, _ := c.a().node.Leader()
	return id
}

func (c clusterHandle) Leader() (modules.Server, bool) {
	id := c.leaderID()
	if id == "" {
		return modules.Server{}, false
	}
	for _, s := range c.Servers() {
		if s.Name == id {
			return s, true
		}
	}
	// The leader is known but not (yet) in this node's copy of the
	// configuration: describe it from gossip.
	return c.server(id, true, true), true
}

func (c clusterHandle) Servers() []modules.Server {
	if c.a().node == nil {
		return nil
	}
	cfg, err := c.a().node.Configuration()
	if err != nil {
		return nil
	}
	leader, _ := c.a().node.Leader()
	out := make([]modules.Server, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		out = append(out, c.server(string(s.ID), s.Suffrage == raft.Voter, string(s.ID) == leader))
	}
	slices.SortFunc(out, func(x, y modules.Server) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// server describes one server from gossip.
func (c clusterHandle) server(name string, voter, leader bool) modules.Server {
	s := modules.Server{Name: name, Voter: voter, Leader: leader, Local: name == c.a().cfg.NodeName}
	if g := c.a().gossip.Load(); g != nil {
		if m, ok := g.Member(name); ok {
			s.Alive = m.Status == membership.StatusAlive || m.Status == membership.StatusSuspect
			s.HTTPAddr, s.ClusterAddr = m.Meta.HTTPAddr, m.Meta.RaftAddr
			s.Modules = slices.Clone(m.Meta.Modules)
		}
	}
	return s
}

func (c clusterHandle) Call(ctx context.Context, node, method string, body []byte) ([]byte, error) {
	addr, err := c.a().peers.clusterAddrOf(node)
	if err != nil {
		return nil, fmt.Errorf("call %s on %s: %w: %w", method, node, modules.ErrNotDelivered, err)
	}
	out, err := c.a().peers.rpc.Call(ctx, node, addr, moduleMethod(c.h.mod.ID(), method), body)
	return out, moduleCallErr(err)
}

func (c clusterHandle) CallLeader(ctx context.Context, method string, body []byte) ([]byte, error) {
	id := c.leaderID()
	if id == "" {
		return nil, fmt.Errorf("call %s on the leader: %w: no leader is known", method, modules.ErrNotDelivered)
	}
	return c.Call(ctx, id, method, body)
}

func (c clusterHandle) OpenStream(ctx context.Context, node, name string) (net.Conn, error) {
	addr, err := c.a().peers.clusterAddrOf(node)
	if err != nil {
		return nil, fmt.Errorf("open stream %s on %s: %w: %w", name, node, modules.ErrNotDelivered, err)
	}
	conn, err := c.a().peers.rpc.OpenStream(ctx, node, addr, moduleMethod(c.h.mod.ID(), name))
	return conn, moduleCallErr(err)
}

// moduleCallErr maps peer RPC's failure classes to the modules package's,
// keeping a peer's own *httpjson.Error as it is.
func moduleCallErr(err error) error {
	var e *httpjson.Error
	switch {
	case err == nil, errors.As(err, &e):
		return err
	case errors.Is(err, peerrpc.ErrNotDelivered), errors.Is(err, peerrpc.ErrNoMethod):
		return fmt.Errorf("%w: %w", modules.ErrNotDelivered, err)
	default:
		return fmt.Errorf("%w: %w", modules.ErrOutcomeUnknown, err)
	}
}

var _ modules.Cluster = clusterHandle{}
