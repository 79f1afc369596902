package replication

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"shoal/internal/httpjson"
)

// Status is the module's section of GET /v1/status, and the body of GET
// /v1/replication/status.
type Status struct {
	Node string `json:"node"`
	// Role is "leader", "follower", "not_in_sync" (this node leads Raft
	// and no live member of the in-sync set can lead replication: no
	// writes are served) or "none".
	Role   string `json:"role"`
	Leader string `json:"leader"`
	// Term is the Raft term of the leader's claim.
	Term   uint64   `json:"term"`
	InSync []string `json:"in_sync"`
	// Position is the leader's stream position in its current term.
	Position  uint64            `json:"position"`
	Followers []FollowerStatus  `json:"followers,omitempty"`
	Follower  *followerStatus   `json:"follower,omitempty"`
	Counters  map[string]uint64 `json:"counters"`
}

// FollowerStatus is one follower as the leader sees it.
type FollowerStatus struct {
	Node       string  `json:"node"`
	State      string  `json:"state"`
	InSync     bool    `json:"in_sync"`
	AckedBytes uint64  `json:"acked_bytes"`
	LagBytes   uint64  `json:"lag_bytes"`
	LagSeconds float64 `json:"lag_seconds"`
}

// Status returns this node's view.
func (m *Replication) Status() any {
	m.init()
	return m.localStatus()
}

func (m *Replication) localStatus() Status {
	st := m.state()
	s := Status{Leader: st.leader, Term: st.term, InSync: st.inSync, Role: "none", Counters: map[string]uint64{
		"catchup_sent_bytes":     uint64(m.catchupSent.Load()),
		"catchup_received_bytes": uint64(m.catchupReceived.Load()),
		"catchup_files":          uint64(m.catchupFiles.Load()),
		"mismatches":             uint64(m.mismatches.Load()),
		"refused_streams":        uint64(m.refused.Load()),
		"dropped_streams":        uint64(m.dropped.Load()),
	}}
	if s.InSync == nil {
		s.InSync = []string{}
	}
	if m.host != nil {
		s.Node = m.host.NodeName()
	}
	if l := m.current.Load(); l != nil {
		s.Role = "leader"
		s.Position, s.Followers = l.followerStatus(st)
		return s
	}
	if m.notInSync.Load() {
		s.Role = "not_in_sync"
		return s
	}
	if f := m.follower.Load(); f != nil && f.Leader != "" {
		s.Role = "follower"
		c := *f
		s.Follower = &c
	}
	return s
}

// followerStatus describes every other server as the leader sees it.
func (l *leadership) followerStatus(st syncState) (uint64, []FollowerStatus) {
	now := time.Now()
	var names []string
	if l.m.host != nil {
		for _, s := range l.m.host.Cluster().Servers() {
			if !s.Local {
				names = append(names, s.Name)
			}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for n := range l.peers {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	out := make([]FollowerStatus, 0, len(names))
	for _, n := range names {
		f := FollowerStatus{Node: n, State: stateDisconnected, InSync: st.has(n), LagBytes: l.ackPos}
		if p := l.peers[n]; p != nil {
			f.State = stateSyncing
			if p.streaming {
				f.State = stateStreaming
			}
			f.AckedBytes = p.acked
			f.LagBytes = l.ackPos - min(p.acked, l.ackPos)
			if !p.pendingSince.IsZero() {
				f.LagSeconds = now.Sub(p.pendingSince).Seconds()
			}
		}
		out = append(out, f)
	}
	return l.ackPos, out
}

// handleStatus serves this node's view; on a follower, the followers'
// progress comes from the leader when it answers.
func (m *Replication) handleStatus(w http.ResponseWriter, r *http.Request) error {
	s := m.localStatus()
	if s.Role != "leader" && s.Leader != "" && s.Leader != s.Node && m.host != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if out, err := m.host.Cluster().Call(ctx, s.Leader, "status", nil); err == nil {
			var ls Status
			if json.Unmarshal(out, &ls) == nil {
				s.Followers, s.Position = ls.Followers, ls.Position
			}
		}
	}
	httpjson.WriteJSON(w, http.StatusOK, s)
	return nil
}
