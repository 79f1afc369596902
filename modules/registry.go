package modules

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Info registers a module: its ID, its factory and, if it is configurable,
// a factory for its default configuration.
type Info struct {
	// ID is the module's name: lowercase, used in --modules, in URLs,
	// metrics and logs.
	ID string
	// New returns a new, unprovisioned instance. It must have no side
	// effects: three nodes in one test process each call it.
	New func() Module
	// NewConfig returns the module's default configuration, or is nil.
	NewConfig func() Config
	// Requires lists the IDs of modules that must start before this one
	// (and stop after it). Enabling a module without one it requires is an
	// error.
	Requires []string
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Info{}
)

// Register adds a module factory. It is meant to be called from the module
// package's init function and panics, like database/sql.Register, on an
// empty ID, a nil factory or a duplicate ID: those are programming errors
// that must fail the binary at start, not at first use.
func Register(info Info) {
	if info.ID == "" {
		panic("modules: Register with an empty ID")
	}
	if info.New == nil {
		panic(fmt.Sprintf("modules: Register %q with a nil New", info.ID))
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[info.ID]; dup {
		panic(fmt.Sprintf("modules: Register called twice for %q", info.ID))
	}
	registry[info.ID] = info
}

// Lookup returns the registered module with the given ID.
func Lookup(id string) (Info, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	info, ok := registry[id]
	return info, ok
}

// Registered returns every registered module, in start order (see
// sortInfos).
func Registered() []Info {
	registryMu.RLock()
	defer registryMu.RUnlock()
	infos := make([]Info, 0, len(registry))
	for _, info := range registry {
		infos = append(infos, info)
	}
	sorted, err := sortInfos(infos)
	if err != nil {
		panic(fmt.Sprintf("modules: %v", err)) // a registration bug: fail at start
	}
	return sorted
}

// sortInfos orders modules so that each starts after the modules it
// requires, and otherwise by ID: start order comes from the modules
// themselves and never from map iteration. It fails on a requirement that
// is not among infos, or a cycle.
func sortInfos(infos []Info) ([]Info, error) {
	byID := make(map[string]Info, len(infos))
	for _, info := range infos {
		byID[info.ID] = info
	}
	ids := make([]string, 0, len(infos))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	out := make([]Info, 0, len(infos))
	var visit func(id string, path []string) error
	visit = func(id string, path []string) error {
		switch state[id] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("modules require each other in a cycle: %s", strings.Join(append(path, id), " -> "))
		}
		state[id] = visiting
		reqs := append([]string(nil), byID[id].Requires...)
		sort.Strings(reqs)
		for _, r := range reqs {
			if _, ok := byID[r]; !ok {
				return fmt.Errorf("module %q requires module %q, which is not enabled", id, r)
			}
			if err := visit(r, append(path, id)); err != nil {
				return err
			}
		}
		state[id] = done
		out = append(out, byID[id])
		return nil
	}
	for _, id := range ids {
		if err := visit(id, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}
