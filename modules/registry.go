package modules

import (
	"fmt"
	"sort"
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

// Registered returns every registered module, in the canonical start order
// (see Order).
func Registered() []Info {
	registryMu.RLock()
	defer registryMu.RUnlock()
	infos := make([]Info, 0, len(registry))
	for _, info := range registry {
		infos = append(infos, info)
	}
	sortInfos(infos)
	return infos
}

// Order is the canonical start order of shoal's modules; modules not listed
// start after these, by ID. Stop runs in reverse. The order is fixed so that
// startup never depends on map iteration.
var Order = []string{"log", "kv", "locks", "objectsync", "replication"}

func rank(id string) int {
	for i, o := range Order {
		if o == id {
			return i
		}
	}
	return len(Order)
}

func sortInfos(infos []Info) {
	sort.Slice(infos, func(i, j int) bool {
		ri, rj := rank(infos[i].ID), rank(infos[j].ID)
		if ri != rj {
			return ri < rj
		}
		return infos[i].ID < infos[j].ID
	})
}
