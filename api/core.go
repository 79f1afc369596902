package api

import (
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/hashicorp/raft"

	"shoal/consensus"
	"shoal/internal/httpjson"
	"shoal/membership"
	"shoal/modules"
)

var errNotReady = httpjson.Errorf(http.StatusServiceUnavailable, "not_ready", "this node is not ready")

// live answers 200 while the process runs and Raft's loops are up; it never
// needs a leader, so a lost quorum does not make an orchestrator restart
// every node.
func (s *server) live(w http.ResponseWriter, r *http.Request) error {
	if s.Raft == nil {
		// A client: its process runs, which is all live says.
	} else if st := s.Raft.Stats(); st.State == "shutdown" {
		return &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "not_live", Message: "raft is shut down"}
	}
	httpjson.WriteJSON(w, http.StatusOK, map[string]any{"status": "live"})
	return nil
}

// ready answers 200 only when the node is in a cluster with a known leader,
// has applied everything it knows to be committed, is not stopping, and
// every module is ready; otherwise 503 with each failing check.
func (s *server) ready(w http.ResponseWriter, r *http.Request) error {
	checks := map[string]string{}
	if s.Stopping() {
		checks["node"] = "shutting down"
	}
	if s.Raft == nil {
		if err := s.Forward.Ready(); err != nil {
			checks["servers"] = err.Error()
		}
	} else {
		if id, _ := s.Raft.Leader(); id == "" {
			checks["leader"] = "no raft leader is known"
		}
		if ok, why := s.Raft.CaughtUp(); !ok {
			checks["applied"] = why
		}
	}
	for _, mod := range s.Modules.Modules() {
		if rc, ok := mod.(modules.ReadinessChecker); ok {
			if err := rc.Ready(); err != nil {
				checks["module:"+mod.ID()] = err.Error()
			}
		}
	}
	if len(checks) > 0 {
		e := errNotReady.WithDetail("checks", checks)
		e.RetryAfter = time.Second
		return e
	}
	body := map[string]any{"status": "ready"}
	if s.Alarms != nil {
		if alarms := s.Alarms(); len(alarms) > 0 {
			// Ready for reads: a disk alarm refuses writes only, so the
			// node stays in service; the body says why writes fail.
			body["alarms"] = map[string]any{"disk_full": alarms}
		}
	}
	httpjson.WriteJSON(w, http.StatusOK, body)
	return nil
}

type raftStatus struct {
	State        string   `json:"state"`
	Term         uint64   `json:"term"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	LastIndex    uint64   `json:"last_index"`
	Halted       string   `json:"halted,omitempty"`
	Voters       []string `json:"voters"`
	NonVoters    []string `json:"non_voters"`
}

func (s *server) status(w http.ResponseWriter, r *http.Request) error {
	out := map[string]any{
		"node":    s.NodeName,
		"role":    membership.RoleServer,
		"members": s.aliveMembers(),
		"modules": s.Modules.IDs(),
		"version": s.Version,
	}
	if s.Raft != nil {
		out["raft"], out["leader"] = s.raftStatus()
	} else {
		// A client has no Raft state: the cluster's is a server's
		// (GET /v1/raft/peers, /v1/members, forwarded).
		out["role"] = membership.RoleClient
	}
	if s.Alarms != nil {
		out["alarms"] = map[string]any{"disk_full": orEmpty(s.Alarms())}
	}
	if s.Security != nil {
		out["security"] = s.Security()
	}
	self := s.Members.LocalMember().Meta.RaftModules
	mismatched := map[string]string{}
	for _, m := range s.Members.Members() {
		if p := memberProblem(self, m); p != "" {
			mismatched[m.Name] = p
		}
	}
	if len(mismatched) > 0 && s.Raft != nil {
		out["mismatched_members"] = mismatched
	}
	for _, mod := range s.Modules.Modules() {
		if sr, ok := mod.(modules.StatusReporter); ok {
			out[mod.ID()] = sr.Status()
		}
	}
	httpjson.WriteJSON(w, http.StatusOK, out)
	return nil
}

// aliveMembers counts the members gossip sees alive (or suspect).
func (s *server) aliveMembers() int {
	alive := 0
	for _, m := range s.Members.Members() {
		if m.Status == membership.StatusAlive || m.Status == membership.StatusSuspect {
			alive++
		}
	}
	return alive
}

// raftStatus is a server's Raft state and leader, for /v1/status.
func (s *server) raftStatus() (raftStatus, string) {
	st := s.Raft.Stats()
	rs := raftStatus{State: st.State, Term: st.Term, CommitIndex: st.CommitIndex,
		AppliedIndex: st.AppliedIndex, LastIndex: st.LastIndex, Halted: st.Halted, Voters: []string{}, NonVoters: []string{}}
	if cfg, err := s.Raft.Configuration(); err == nil {
		for _, srv := range cfg.Servers {
			if srv.Suffrage == raft.Voter {
				rs.Voters = append(rs.Voters, string(srv.ID))
			} else {
				rs.NonVoters = append(rs.NonVoters, string(srv.ID))
			}
		}
		sort.Strings(rs.Voters)
		sort.Strings(rs.NonVoters)
	}
	leader, _ := s.Raft.Leader()
	return rs, leader
}

type memberJSON struct {
	Name         string   `json:"name"`
	Addr         string   `json:"addr"`
	Status       string   `json:"status"`
	HTTPAddr     string   `json:"http_addr"`
	RaftAddr     string   `json:"raft_addr"`
	Role         string   `json:"role"`          // server or client
	RaftSuffrage string   `json:"raft_suffrage"` // voter, nonvoter, or "" (a client; a server not added yet)
	Leader       bool     `json:"leader"`
	Modules      []string `json:"modules"`
	RaftModules  []string `json:"raft_modules"`
	Version      string   `json:"version"`
	Zone         string   `json:"zone,omitempty"`
	// Problem says why the member is kept out of Raft, if it is: it runs
	// other raft modules than this node.
	Problem string `json:"problem,omitempty"`
}

func (s *server) membersList(w http.ResponseWriter, r *http.Request) error {
	suffrage := map[string]string{}
	if cfg, err := s.Raft.Configuration(); err == nil {
		for _, srv := range cfg.Servers {
			if srv.Suffrage == raft.Voter {
				suffrage[string(srv.ID)] = "voter"
			} else {
				suffrage[string(srv.ID)] = "nonvoter"
			}
		}
	}
	leader, _ := s.Raft.Leader()
	out := []memberJSON{}
	self := s.Members.LocalMember().Meta.RaftModules
	for _, m := range s.Members.Members() {
		out = append(out, memberJSON{Name: m.Name, Addr: m.Addr, Status: string(m.Status), HTTPAddr: m.Meta.HTTPAddr,
			RaftAddr: m.Meta.RaftAddr, Role: string(roleOf(m.Meta)), RaftSuffrage: suffrage[m.Name], Leader: m.Name == leader,
			Modules: orEmpty(m.Meta.Modules), RaftModules: orEmpty(m.Meta.RaftModules), Version: m.Meta.Version,
			Zone: m.Meta.Zone, Problem: memberProblem(self, m)})
	}
	httpjson.WriteJSON(w, http.StatusOK, map[string]any{"members": out})
	return nil
}

func (s *server) join(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Addrs []string `json:"addrs"`
	}
	if err := httpjson.DecodeJSON(r, &req); err != nil {
		return err
	}
	if len(req.Addrs) == 0 || len(req.Addrs) > 64 {
		return httpjson.BadRequest("invalid_addrs", "addrs must list 1 to 64 gossip addresses (host:port)")
	}
	for _, a := range req.Addrs {
		host, port, err := net.SplitHostPort(a)
		if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
			return httpjson.BadRequest("invalid_addrs", "%q is not a gossip address (host:port)", modules.Echo(a))
		}
	}
	n, err := s.Members.Join(req.Addrs)
	if n == 0 {
		// The resolver's and the dialer's words name this node's
		// internals (its resolver's address, say): they go to the log.
		s.Logger.Warn("join failed", "addrs", req.Addrs, "err", err)
		return &httpjson.Error{Status: http.StatusGatewayTimeout, Code: "join_failed",
			Message: "join failed: no address answered (does it resolve, and is its gossip port reachable from this node?)"}
	}
	httpjson.WriteJSON(w, http.StatusOK, map[string]any{"joined": n})
	return nil
}

func (s *server) leave(w http.ResponseWriter, r *http.Request) error {
	httpjson.WriteJSON(w, http.StatusAccepted, map[string]any{"status": "leaving"})
	s.Leave()
	return nil
}

type peerJSON struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

func (s *server) raftPeers(w http.ResponseWriter, r *http.Request) error {
	cfg, err := s.Raft.Configuration()
	if err != nil {
		return err
	}
	leader, _ := s.Raft.Leader()
	peers := []peerJSON{}
	for _, srv := range cfg.Servers {
		suffrage := "voter"
		if srv.Suffrage != raft.Voter {
			suffrage = "nonvoter"
		}
		peers = append(peers, peerJSON{ID: string(srv.ID), Address: string(srv.Address), Suffrage: suffrage, Leader: string(srv.ID) == leader})
	}
	httpjson.WriteJSON(w, http.StatusOK, map[string]any{"peers": peers})
	return nil
}

var errPeerNotFound = httpjson.Errorf(http.StatusNotFound, "peer_not_found", "no such raft peer")

func (s *server) removePeer(w http.ResponseWriter, r *http.Request) error {
	name := chi.URLParam(r, "name")
	cfg, err := s.Raft.Configuration()
	if err != nil {
		return err
	}
	found := false
	for _, srv := range cfg.Servers {
		found = found || string(srv.ID) == name
	}
	if !found {
		return errPeerNotFound.WithMessage("%q is not in the raft configuration", name)
	}
	if name == s.NodeName {
		return httpjson.Errorf(http.StatusConflict, "cannot_remove_leader", "the leader cannot remove itself; transfer leadership first or use leave")
	}
	if err := s.Raft.RemoveServer(name); err != nil {
		return err
	}
	httpjson.WriteJSON(w, http.StatusOK, map[string]any{"removed": name})
	return nil
}

func (s *server) transferLeadership(w http.ResponseWriter, r *http.Request) error {
	if err := s.Raft.TransferLeadership(); err != nil {
		return httpjson.Errorf(http.StatusConflict, "transfer_failed", "leadership transfer failed: %s", err.Error())
	}
	leader, _ := s.Raft.Leader()
	httpjson.WriteJSON(w, http.StatusOK, map[string]any{"previous": s.NodeName, "leader": leader})
	return nil
}

// keyringList shows every alive member's cluster keys (by ID).
func (s *server) keyringList(w http.ResponseWriter, r *http.Request) error {
	return s.keyringRun(w, r, "list", "")
}

// keyringChange installs, makes primary or removes a key on every alive
// member: {"key": "<secret, or for use and remove its ID>"}.
func (s *server) keyringChange(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Key string `json:"key"`
	}
	if err := httpjson.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Key == "" {
		return httpjson.BadRequest("key_required", "the body must name a key: {\"key\": \"...\"}")
	}
	return s.keyringRun(w, r, chi.URLParam(r, "op"), req.Key)
}

// keyringRun answers 200 when every member applied the operation, and 502
// keyring_partial, with every member's answer, when some did not.
func (s *server) keyringRun(w http.ResponseWriter, r *http.Request, op, key string) error {
	res, err := s.Keyring(r.Context(), op, key)
	if err != nil {
		return err
	}
	if ck, ok := res.(interface{ FailedCount() int }); ok && ck.FailedCount() > 0 {
		e := &httpjson.Error{Status: http.StatusBadGateway, Code: "keyring_partial",
			Message: fmt.Sprintf("the operation failed on %d member(s); see nodes", ck.FailedCount())}
		return e.WithDetail("result", res)
	}
	httpjson.WriteJSON(w, http.StatusOK, res)
	return nil
}

// memberProblem says why a member is kept out of Raft ("" if it is not):
// it runs other raft modules than this node. Only servers are compared
// (clients run none).
func memberProblem(self []string, m membership.Member) string {
	if m.Meta.RaftAddr == "" || m.Meta.IsClient() || m.Status == membership.StatusLeft {
		return ""
	}
	return consensus.ModuleMismatch(self, m.Meta.RaftModules)
}

// roleOf is a member's role; a member that announces none (the local
// member before its meta is read back) is a server.
func roleOf(m membership.Meta) membership.Role {
	if m.IsClient() {
		return membership.RoleClient
	}
	return membership.RoleServer
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
