package membership

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/hashicorp/memberlist"
)

// Meta is what a node advertises to the others in memberlist's node
// metadata. Encoded, it must fit memberlist.MetaMaxSize (512 bytes).
type Meta struct {
	// HTTPAddr is the host:port of the node's HTTP API as others reach it.
	HTTPAddr string
	// RaftAddr is the host:port of the node's Raft transport.
	RaftAddr string
	// Modules are the IDs of the node's enabled modules.
	Modules []string
	// RaftModules are the IDs of those that keep state in Raft: every
	// server of a cluster must run the same ones (autopilot adds no server
	// that runs others).
	RaftModules []string
	// Version is the node's shoal version.
	Version string
	// BootstrapExpect is the node's --bootstrap-expect (0 = none).
	BootstrapExpect int
	// Zone is the node's --zone (a rack, an availability zone; "" = none):
	// Raft voters are spread over zones.
	Zone string
	// DiskFull: the node's disk alarm is raised (less than --min-free-disk
	// free); the cluster refuses client writes while any member has it.
	DiskFull bool
	// HasRaftState reports that the node already has Raft state (it is or
	// was in a cluster).
	HasRaftState bool
	// Role is RoleServer (Raft) or RoleClient (a light member: gossip
	// only; it forwards Raft modules' requests to a server).
	Role Role
}

// Role is a node's part in the cluster (--role).
type Role string

const (
	// RoleServer holds Raft state: a voter or a non-voter.
	RoleServer Role = "server"
	// RoleClient is a light member: it takes part in gossip and kv, holds
	// no Raft state, is never added to Raft, and forwards the requests of
	// Raft modules to a server over the cluster port.
	RoleClient Role = "client"
)

// IsClient reports whether the member is a light member. Nodes of
// versions before roles advertise none: they are servers.
func (m Meta) IsClient() bool { return m.Role == RoleClient }

// Clone returns a copy of m that shares no memory with it.
func (m Meta) Clone() Meta {
	m.Modules = slices.Clone(m.Modules)
	m.RaftModules = slices.Clone(m.RaftModules)
	return m
}

// Equal reports whether m and o hold the same values.
func (m Meta) Equal(o Meta) bool {
	return m.HTTPAddr == o.HTTPAddr && m.RaftAddr == o.RaftAddr &&
		slices.Equal(m.Modules, o.Modules) && slices.Equal(m.RaftModules, o.RaftModules) && m.Version == o.Version &&
		m.BootstrapExpect == o.BootstrapExpect && m.HasRaftState == o.HasRaftState && m.Zone == o.Zone && m.DiskFull == o.DiskFull && m.IsClient() == o.IsClient()
}

// wireMeta is Meta on the wire: short keys keep it well below 512 bytes.
// Leaving is internal: a node sets it just before a graceful leave, so the
// others can tell "left" from "dead" (memberlist does not expose which one
// it saw).
type wireMeta struct {
	HTTPAddr        string   `json:"h,omitempty"`
	RaftAddr        string   `json:"r,omitempty"`
	Modules         []string `json:"m,omitempty"`
	RaftModules     []string `json:"R,omitempty"`
	Version         string   `json:"v,omitempty"`
	BootstrapExpect int      `json:"b,omitempty"`
	Zone            string   `json:"z,omitempty"`
	DiskFull        bool     `json:"d,omitempty"`
	HasRaftState    bool     `json:"s,omitempty"`
	Client          bool     `json:"c,omitempty"` // Role client; servers say nothing
	Leaving         bool     `json:"l,omitempty"`
}

// encodeMeta encodes m for memberlist. It fails if m is too large even
// without the leave flag set, so that Leave can always set it.
func encodeMeta(m Meta, leaving bool) ([]byte, error) {
	w := wireMeta{
		HTTPAddr:        m.HTTPAddr,
		RaftAddr:        m.RaftAddr,
		Modules:         m.Modules,
		RaftModules:     m.RaftModules,
		Version:         m.Version,
		BootstrapExpect: m.BootstrapExpect,
		Zone:            m.Zone,
		DiskFull:        m.DiskFull,
		HasRaftState:    m.HasRaftState,
		Client:          m.IsClient(),
		Leaving:         true,
	}
	withFlag, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode meta: %w", err)
	}
	if len(withFlag) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("encode meta: %d bytes: %w", len(withFlag), ErrMetaTooLarge)
	}
	if leaving {
		return withFlag, nil
	}
	w.Leaving = false
	buf, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode meta: %w", err)
	}
	return buf, nil
}

// decodeMeta decodes what encodeMeta produced. Empty input is an empty
// Meta (a node that advertises nothing).
func decodeMeta(buf []byte) (meta Meta, leaving bool, err error) {
	if len(buf) == 0 {
		return Meta{}, false, nil
	}
	var w wireMeta
	if err := json.Unmarshal(buf, &w); err != nil {
		return Meta{}, false, fmt.Errorf("decode meta: %w", err)
	}
	role := RoleServer
	if w.Client {
		role = RoleClient
	}
	return Meta{
		Role:            role,
		HTTPAddr:        w.HTTPAddr,
		RaftAddr:        w.RaftAddr,
		Modules:         w.Modules,
		RaftModules:     w.RaftModules,
		Version:         w.Version,
		BootstrapExpect: w.BootstrapExpect,
		Zone:            w.Zone,
		DiskFull:        w.DiskFull,
		HasRaftState:    w.HasRaftState,
	}, w.Leaving, nil
}
