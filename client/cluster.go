package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
)

// Status is a node's view of itself and the cluster, from GET /v1/status.
type Status struct {
	Node string `json:"node"`
	// Role is "server" or "client" (a light member: it has no Raft state,
	// so Leader and Raft are empty).
	Role    string     `json:"role"`
	Leader  string     `json:"leader"`
	Raft    RaftStatus `json:"raft"`
	Members int        `json:"members"`
	Modules []string   `json:"modules"`
	Version string     `json:"version"`
	// Sections holds every other top-level key of the response, such as the
	// per-module sections, undecoded.
	Sections map[string]json.RawMessage `json:"-"`
	// Raw is the whole response body as the node sent it.
	Raw json.RawMessage `json:"-"`
}

// RaftStatus is the consensus part of Status.
type RaftStatus struct {
	State        string   `json:"state"`
	Term         uint64   `json:"term"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	Voters       []string `json:"voters"`
	NonVoters    []string `json:"non_voters"`
}

// statusKeys are the top-level keys Status decodes into fields.
var statusKeys = []string{"node", "role", "leader", "raft", "members", "modules", "version"}

// UnmarshalJSON decodes the known fields and keeps the others in Sections.
func (s *Status) UnmarshalJSON(b []byte) error {
	type plain Status
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	for _, k := range statusKeys {
		delete(all, k)
	}
	if len(all) == 0 {
		all = nil
	}
	*s = Status(p)
	s.Sections = all
	s.Raw = append(json.RawMessage(nil), b...)
	return nil
}

// MarshalJSON encodes the known fields and the Sections beside them (Raw
// is not used).
func (s Status) MarshalJSON() ([]byte, error) {
	type plain Status
	b, err := json.Marshal(plain(s))
	if err != nil {
		return nil, err
	}
	if len(s.Sections) == 0 {
		return b, nil
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	for k, v := range s.Sections {
		if _, known := all[k]; !known {
			all[k] = v
		}
	}
	return json.Marshal(all)
}

// SectionNames returns the keys of Sections in sorted order.
func (s Status) SectionNames() []string {
	names := make([]string, 0, len(s.Sections))
	for k := range s.Sections {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Member is one node of the gossip membership, from GET /v1/members.
type Member struct {
	Name     string `json:"name"`
	Addr     string `json:"addr"`
	Status   string `json:"status"`
	HTTPAddr string `json:"http_addr"`
	// Role is "server" or "client" (a light member, never in Raft).
	Role string `json:"role"`
	// RaftSuffrage is "voter", "nonvoter", or "" when the node is not in
	// the Raft configuration.
	RaftSuffrage string `json:"raft_suffrage"`
	Leader       bool   `json:"leader"`
	// Problem says why the member is kept out of Raft, if it is (it runs
	// other raft modules than the node asked).
	Problem string `json:"problem,omitempty"`
}

// RaftPeer is one server of the Raft configuration, from GET /v1/raft/peers.
type RaftPeer struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

// Status returns the node's status. It blocks for one request.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	if _, err := c.do(ctx, http.MethodGet, "/v1/status", nil, nil, &s); err != nil {
		return Status{}, fmt.Errorf("get status: %w", err)
	}
	return s, nil
}

// Members returns the gossip membership as the node sees it.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var out struct {
		Members []Member `json:"members"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/members", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	return out.Members, nil
}

// Live returns nil when the node's process answers its liveness check.
func (c *Client) Live(ctx context.Context) error {
	if _, err := c.do(ctx, http.MethodGet, "/v1/health/live", nil, nil, nil); err != nil {
		return fmt.Errorf("check liveness: %w", err)
	}
	return nil
}

// Ready returns nil when the node is ready to serve. A node that is not
// ready yields an error matching ErrNotReady whose failing checks
// ReadyChecks returns.
func (c *Client) Ready(ctx context.Context) error {
	if _, err := c.do(ctx, http.MethodGet, "/v1/health/ready", nil, nil, nil); err != nil {
		return fmt.Errorf("check readiness: %w", err)
	}
	return nil
}

// ReadyChecks returns the per-check messages carried by a not-ready error
// from Ready ({"checks":{"leader":"no leader elected"}}), or nil.
func ReadyChecks(err error) map[string]string {
	var e *Error
	if !errors.As(err, &e) {
		return nil
	}
	raw, ok := e.Details["checks"].(map[string]any)
	if !ok {
		return nil
	}
	checks := make(map[string]string, len(raw))
	for k, v := range raw {
		if s, ok := v.(string); ok {
			checks[k] = s
		} else {
			b, _ := json.Marshal(v) // v came from json.Unmarshal, so it encodes
			checks[k] = string(b)
		}
	}
	return checks
}

// Join asks the node to join the cluster through the gossip addresses
// addrs (host:port of any existing members).
func (c *Client) Join(ctx context.Context, addrs []string) error {
	in := struct {
		Addrs []string `json:"addrs"`
	}{addrs}
	if _, err := c.do(ctx, http.MethodPost, "/v1/cluster/join", nil, in, nil); err != nil {
		return fmt.Errorf("join cluster: %w", err)
	}
	return nil
}

// Leave asks the node to leave the cluster gracefully.
func (c *Client) Leave(ctx context.Context) error {
	if _, err := c.do(ctx, http.MethodPost, "/v1/cluster/leave", nil, nil, nil); err != nil {
		return fmt.Errorf("leave cluster: %w", err)
	}
	return nil
}

// RaftPeers returns the servers of the Raft configuration.
func (c *Client) RaftPeers(ctx context.Context) ([]RaftPeer, error) {
	var out struct {
		Peers []RaftPeer `json:"peers"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/raft/peers", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list raft peers: %w", err)
	}
	return out.Peers, nil
}

// RemovePeer removes the server called name from the Raft configuration.
func (c *Client) RemovePeer(ctx context.Context, name string) error {
	if _, err := c.do(ctx, http.MethodDelete, "/v1/raft/peers/"+escape(name), nil, nil, nil); err != nil {
		return fmt.Errorf("remove raft peer %q: %w", name, err)
	}
	return nil
}

// TransferLeadership asks the current leader to hand leadership to another
// voter.
func (c *Client) TransferLeadership(ctx context.Context) error {
	if _, err := c.do(ctx, http.MethodPost, "/v1/raft/transfer-leadership", nil, nil, nil); err != nil {
		return fmt.Errorf("transfer leadership: %w", err)
	}
	return nil
}
