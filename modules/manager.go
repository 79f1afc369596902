package modules

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// HostFactory makes the host handle of one module; the agent implements it.
type HostFactory func(info Info, mod Module, cfg Config) (Host, error)

// Manager owns the enabled module instances of one node and runs them
// through their lifecycle in order. It is not safe for concurrent
// Start/Stop; the read-only accessors are safe once Start has returned.
type Manager struct {
	mods    []Module
	started int // how many of mods have been started, in order
}

// Resolve returns the Info of each requested module ID in canonical order.
// An empty list means every registered module. An unknown or repeated ID is
// an error that names the modules that are compiled in.
func Resolve(ids []string) ([]Info, error) {
	if len(ids) == 0 {
		return Registered(), nil
	}
	seen := map[string]bool{}
	infos := make([]Info, 0, len(ids))
	for _, id := range ids {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		if seen[id] {
			return nil, fmt.Errorf("module %q is listed twice", id)
		}
		seen[id] = true
		info, ok := Lookup(id)
		if !ok {
			return nil, fmt.Errorf("unknown module %q (compiled in: %s)", id, strings.Join(IDs(Registered()), ","))
		}
		infos = append(infos, info)
	}
	return sortInfos(infos)
}

// IDs returns the IDs of infos, in order.
func IDs(infos []Info) []string {
	ids := make([]string, len(infos))
	for i, info := range infos {
		ids[i] = info.ID
	}
	return ids
}

// NewManager instantiates and provisions the given modules in order. cfgs
// may override a module's default configuration (keyed by ID); every config
// is validated before Provision. Raft and gossip tags must be unique among
// the enabled modules.
func NewManager(infos []Info, cfgs map[string]Config, newHost HostFactory) (*Manager, error) {
	m := &Manager{}
	tags := map[Tag]string{}
	for _, info := range infos {
		cfg := cfgs[info.ID]
		if cfg == nil && info.NewConfig != nil {
			cfg = info.NewConfig()
		}
		if cfg != nil {
			if err := cfg.Validate(); err != nil {
				return nil, fmt.Errorf("module %s: invalid configuration: %w", info.ID, err)
			}
		}
		mod := info.New()
		if mod.ID() != info.ID {
			return nil, fmt.Errorf("module registered as %q reports ID %q", info.ID, mod.ID())
		}
		for _, tag := range moduleTags(mod) {
			if other, dup := tags[tag]; dup {
				return nil, fmt.Errorf("modules %s and %s both use tag %d", other, info.ID, tag)
			}
			tags[tag] = info.ID
		}
		host, err := newHost(info, mod, cfg)
		if err != nil {
			return nil, fmt.Errorf("module %s: %w", info.ID, err)
		}
		if err := mod.Provision(host); err != nil {
			return nil, fmt.Errorf("provision module %s: %w", info.ID, err)
		}
		m.mods = append(m.mods, mod)
	}
	return m, nil
}

func moduleTags(mod Module) []Tag {
	var tags []Tag
	if h, ok := mod.(RaftHandler); ok && h.Tag() != TagNone {
		tags = append(tags, h.Tag())
	}
	if h, ok := mod.(GossipHandler); ok && h.Tag() != TagNone {
		if len(tags) == 0 || tags[0] != h.Tag() {
			tags = append(tags, h.Tag())
		}
	}
	return tags
}

// Modules returns the enabled modules in start order.
func (m *Manager) Modules() []Module { return m.mods }

// IDs returns the enabled module IDs in start order.
func (m *Manager) IDs() []string {
	ids := make([]string, len(m.mods))
	for i, mod := range m.mods {
		ids[i] = mod.ID()
	}
	return ids
}

// Start starts the modules in order. If one fails, the ones already
// started are stopped in reverse order and the error is returned.
func (m *Manager) Start(ctx context.Context) error {
	for _, mod := range m.mods {
		if err := mod.Start(ctx); err != nil {
			stopErr := m.Stop(ctx)
			return errors.Join(fmt.Errorf("start module %s: %w", mod.ID(), err), stopErr)
		}
		m.started++
	}
	return nil
}

// Stop stops the started modules in reverse order, continuing past
// failures, and returns them joined.
func (m *Manager) Stop(ctx context.Context) error {
	var errs []error
	for m.started > 0 {
		m.started--
		mod := m.mods[m.started]
		if err := mod.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop module %s: %w", mod.ID(), err))
		}
	}
	return errors.Join(errs...)
}
