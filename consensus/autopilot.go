package consensus

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// catchUpLag is how many entries a non-voter may trail the leader's commit
// index and still count as caught up (writes keep arriving while we probe).
const catchUpLag = 64

// autopilot keeps the Raft configuration in line with gossip membership, the
// way Consul's autopilot does. It runs only on the leader, from leadTerm's
// goroutine, so its maps need no lock.
type autopilot struct {
	n *Node
	// caughtUpSince is when a non-voter was first seen caught up.
	caughtUpSince map[string]time.Time
	// missingSince is when a configured server was first not found in
	// gossip at all (its dead entry may have been reclaimed).
	missingSince map[string]time.Time
	// mismatchLogged: members whose raft modules differ, already logged.
	mismatchLogged map[string]bool
	termStart      time.Time
}

func newAutopilot(n *Node) *autopilot { return &autopilot{n: n} }

func (a *autopilot) run(ctx context.Context) {
	if a.n.cluster == nil {
		<-ctx.Done()
		return
	}
	a.caughtUpSince = map[string]time.Time{}
	a.missingSince = map[string]time.Time{}
	a.mismatchLogged = map[string]bool{}
	a.termStart = time.Now()
	ticker := time.NewTicker(a.n.cfg.ReconcileInterval)
	defer ticker.Stop()
	for {
		a.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (a *autopilot) reconcile(ctx context.Context) {
	n := a.n
	cfg, err := n.Configuration()
	if err != nil {
		return
	}
	servers := map[string]raft.Server{}
	for _, s := range cfg.Servers {
		servers[string(s.ID)] = s
	}
	members := map[string]Member{}
	for _, m := range n.cluster.Members() {
		if m.RaftAddr != "" {
			members[m.Name] = m
		}
	}
	leaderCommit := n.raft.CommitIndex()

	if a.repairAddresses(members) {
		// Addresses moved: work from the configuration as it is now.
		if cfg, err = n.Configuration(); err != nil {
			return
		}
		clear(servers)
		for _, s := range cfg.Servers {
			servers[string(s.ID)] = s
		}
	}
	addrHeld := map[string]bool{}
	for _, s := range cfg.Servers {
		addrHeld[string(s.Address)] = true
	}

	self := members[n.cfg.NodeID]
	replicas := map[string]bool{} // non-voters caught up for the stabilization time
	for name, m := range members {
		if name == n.cfg.NodeID || m.Status != MemberAlive {
			continue
		}
		if why := ModuleMismatch(self.RaftModules, m.RaftModules); why != "" {
			// It would skip commands of a module it does not run, or
			// hold state of one this leader does not: never a server,
			// never a voter.
			if !a.mismatchLogged[name] {
				a.mismatchLogged[name] = true
				n.cfg.Logger.Warn("autopilot leaves a member out of raft: it runs other raft modules", "member", name, "why", why)
			}
			continue
		}
		delete(a.mismatchLogged, name)
		s, known := servers[name]
		switch {
		case !known && !addrHeld[m.RaftAddr]:
			a.change("add_nonvoter", name, n.raft.AddNonvoter(raft.ServerID(name), raft.ServerAddress(m.RaftAddr), 0, n.cfg.ApplyTimeout))
			delete(a.caughtUpSince, name)
		case !known:
			// Its address is still held by a server that moved away or
			// died; repairAddresses frees it first.
		case s.Suffrage == raft.Nonvoter:
			if a.caughtUp(ctx, m, leaderCommit) {
				replicas[name] = true
			}
		}
	}
	a.reconcileVoters(cfg, members, replicas)

	for name, s := range servers {
		if name == n.cfg.NodeID {
			continue
		}
		m, inGossip := members[name]
		if inGossip {
			delete(a.missingSince, name)
		}
		switch {
		case inGossip && m.Status == MemberLeft:
			if a.change("remove_left", name, n.raft.RemoveServer(s.ID, 0, n.cfg.ApplyTimeout)) {
				n.cluster.Forget(name)
			}
		case inGossip && m.Status == MemberDead:
			if a.deadLongEnough(m.Since) && a.quorumSafe(cfg, members, s) {
				if a.change("reap_dead", name, n.raft.RemoveServer(s.ID, 0, n.cfg.ApplyTimeout)) {
					n.cluster.Forget(name)
				}
			}
		case !inGossip:
			since, ok := a.missingSince[name]
			if !ok {
				a.missingSince[name] = time.Now()
				continue
			}
			if a.deadLongEnough(since) && a.quorumSafe(cfg, members, s) {
				a.change("reap_dead", name, n.raft.RemoveServer(s.ID, 0, n.cfg.ApplyTimeout))
			}
		}
	}
}

// deadLongEnough: dead for DeadNodeReap (see downLongerThan).
func (a *autopilot) deadLongEnough(since time.Time) bool {
	return a.downLongerThan(since, a.n.cfg.DeadNodeReap)
}

// downLongerThan: down since since for at least d, counted at the earliest
// from the start of this leader's term (a new leader does not trust old
// timestamps it did not observe itself).
func (a *autopilot) downLongerThan(since time.Time, d time.Duration) bool {
	if since.Before(a.termStart) {
		since = a.termStart
	}
	return time.Since(since) >= d
}

// quorumSafe reports whether removing s leaves a configuration whose alive
// voters are still a majority. Removing a non-voter is always safe.
func (a *autopilot) quorumSafe(cfg raft.Configuration, members map[string]Member, s raft.Server) bool {
	if s.Suffrage != raft.Voter {
		return true
	}
	voters, alive := 0, 0
	for _, srv := range cfg.Servers {
		if srv.Suffrage != raft.Voter || srv.ID == s.ID {
			continue
		}
		voters++
		if string(srv.ID) == a.n.cfg.NodeID {
			alive++
		} else if m, ok := members[string(srv.ID)]; ok && m.Status == MemberAlive {
			alive++
		}
	}
	return voters > 0 && alive >= voters/2+1
}

// caughtUp reports whether a non-voter's FSM has stayed within catchUpLag
// of the leader's commit index for the stabilization time (Kibitz calls
// the promotion that may follow naturalization).
func (a *autopilot) caughtUp(ctx context.Context, m Member, leaderCommit uint64) bool {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	applied, err := a.n.cluster.AppliedIndex(pctx, m)
	cancel()
	if err != nil || applied+catchUpLag < leaderCommit {
		delete(a.caughtUpSince, m.Name)
		return false
	}
	since, ok := a.caughtUpSince[m.Name]
	if !ok {
		a.caughtUpSince[m.Name] = time.Now()
		return a.n.cfg.Stabilization <= 0
	}
	return time.Since(since) >= a.n.cfg.Stabilization
}

// reconcileVoters makes at most one change to the voter set, the one
// planVoters asks for: the set stays at MaxVoters (odd), a voter lost for
// longer than VoterGrace is replaced by a caught-up non-voter, and voters
// spread over zones.
func (a *autopilot) reconcileVoters(cfg raft.Configuration, members map[string]Member, replicas map[string]bool) {
	n := a.n
	views := make([]voterView, 0, len(cfg.Servers))
	addrs := map[string]raft.ServerAddress{}
	for _, s := range cfg.Servers {
		name := string(s.ID)
		addrs[name] = s.Address
		m, inGossip := members[name]
		v := voterView{name: name, voter: s.Suffrage == raft.Voter, zone: m.Zone, leader: name == n.cfg.NodeID}
		switch {
		case v.leader:
			v.healthy = true
		case !v.voter:
			v.healthy = replicas[name]
		case inGossip && m.Status == MemberAlive:
			v.healthy = true
		case inGossip:
			v.healthy = !a.downLongerThan(m.Since, n.cfg.VoterGrace)
		default:
			since, ok := a.missingSince[name]
			v.healthy = !ok || !a.downLongerThan(since, n.cfg.VoterGrace)
		}
		views = append(views, v)
	}
	plan := planVoters(views, n.cfg.MaxVoters)
	switch {
	case plan.promote != "":
		if a.change("promote", plan.promote, n.raft.AddVoter(raft.ServerID(plan.promote), addrs[plan.promote], 0, n.cfg.ApplyTimeout)) {
			delete(a.caughtUpSince, plan.promote)
			n.cfg.Logger.Info("autopilot promoted a non-voter", "server", plan.promote, "why", plan.why)
		}
	case plan.demote != "":
		if a.change("demote", plan.demote, n.raft.DemoteVoter(raft.ServerID(plan.demote), 0, n.cfg.ApplyTimeout)) {
			n.cfg.Logger.Info("autopilot demoted a voter to non-voter", "server", plan.demote, "why", plan.why)
		}
	}
}

// change waits for a configuration change and logs and counts it.
func (a *autopilot) change(action, name string, f raft.IndexFuture) bool {
	if err := f.Error(); err != nil {
		a.n.cfg.Logger.Warn("autopilot change failed", "action", action, "server", name, "err", err)
		return false
	}
	a.n.cfg.Logger.Info("autopilot changed the raft configuration", "action", action, "server", name)
	a.n.metrics.autopilotActions.WithLabelValues(action).Inc()
	return true
}

// ModuleMismatch says how a member's raft modules differ from this node's
// ("" when they are the same set). Every server must run the same raft
// modules: a server without one skips its commands and diverges.
func ModuleMismatch(local, member []string) string {
	missing, extra := setDiff(local, member), setDiff(member, local)
	switch {
	case len(member) == 0 && len(local) > 0:
		return "it announces no raft modules (an older version?); this node runs " + strings.Join(local, ",")
	case len(missing) > 0 && len(extra) > 0:
		return fmt.Sprintf("it does not run %s and runs %s, which this node does not", strings.Join(missing, ","), strings.Join(extra, ","))
	case len(missing) > 0:
		return "it does not run " + strings.Join(missing, ",")
	case len(extra) > 0:
		return "it runs " + strings.Join(extra, ",") + ", which this node does not"
	}
	return ""
}

// setDiff returns the elements of a not in b, sorted.
func setDiff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}
