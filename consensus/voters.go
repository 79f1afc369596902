package consensus

import (
	"cmp"
	"fmt"
	"slices"
)

// The voter set. A commit waits for a majority of voters, and the leader
// heartbeats and replicates to every server, so the voting set is kept
// small and odd (Consul, Nomad and rqlite do the same): every other server
// is a non-voter, a read replica with the whole log and every module's
// state, promoted when a voter is lost.

// ValidVoters reports an error unless n is a voter count shoal accepts: 1,
// 3, 5 or 7. An even count tolerates no more failures than the odd count
// below it and needs one more acknowledgement per commit; more than 7
// makes every commit wait for 5 acknowledgements.
func ValidVoters(n int) error {
	switch n {
	case 1, 3, 5, 7:
		return nil
	}
	return fmt.Errorf("raft voters %d: want 1, 3, 5 or 7", n)
}

// voterView is one server of the configuration as the voter planner sees
// it.
type voterView struct {
	name  string
	voter bool
	// healthy: for a voter, alive in gossip, or dead for less than the
	// grace period (a restart is not a loss); for a non-voter, alive and
	// caught up with the leader for the stabilization time.
	healthy bool
	zone    string
	leader  bool
}

// voterChange is one change the planner asks for: promote a non-voter or
// demote a voter (at most one per reconcile, so each is committed and seen
// before the next is planned).
type voterChange struct {
	promote, demote string
	why             string
}

// oddFloor is the largest odd number ≤ n, at least 1.
func oddFloor(n int) int {
	if n < 1 {
		return 1
	}
	if n%2 == 0 {
		return n - 1
	}
	return n
}

// planVoters decides the next change to the voter set:
//
//   - The target is the largest odd number ≤ min(max, eligible), where
//     eligible counts the voters (healthy or not: a lost voter counts
//     until it is replaced or reaped) and the healthy non-voters.
//   - Fewer healthy voters than the target: promote a healthy non-voter,
//     from a zone that has no healthy voter if there is one.
//   - More voters than the target: demote one, an unhealthy voter first
//     (it was replaced), else a healthy one from the zone with the most
//     voters, never the leader; and only if the voters left keep a
//     majority of healthy ones.
//   - Otherwise, if a zone holds two voters while a healthy non-voter's
//     zone holds none, promote that non-voter (the demotion follows at the
//     next round, from the crowded zone).
//
// Ties break by name, so the plan is stable across rounds.
func planVoters(servers []voterView, max int) voterChange {
	servers = slices.Clone(servers)
	slices.SortFunc(servers, func(a, b voterView) int { return cmp.Compare(a.name, b.name) })
	voters, healthyVoters, eligible := 0, 0, 0
	voterZones := map[string]int{} // healthy voters per zone
	for _, s := range servers {
		switch {
		case s.voter:
			voters++
			eligible++
			if s.healthy {
				healthyVoters++
				voterZones[s.zone]++
			}
		case s.healthy:
			eligible++
		}
	}
	target := oddFloor(min(max, eligible))

	candidates := func() []voterView {
		var out []voterView
		for _, s := range servers {
			if !s.voter && s.healthy {
				out = append(out, s)
			}
		}
		// Zones without a healthy voter first.
		slices.SortStableFunc(out, func(a, b voterView) int {
			return cmp.Compare(voterZones[a.zone], voterZones[b.zone])
		})
		return out
	}

	if healthyVoters < target {
		if c := candidates(); len(c) > 0 {
			return voterChange{promote: c[0].name, why: fmt.Sprintf("%d healthy voters, want %d", healthyVoters, target)}
		}
		return voterChange{}
	}
	if voters > target {
		for _, s := range servers {
			if s.voter && !s.healthy && !s.leader {
				return voterChange{demote: s.name, why: fmt.Sprintf("%d voters, want %d, and it is down", voters, target)}
			}
		}
		// Only healthy voters above the target: demote from the most
		// crowded zone, if the rest keep a healthy majority.
		if healthyVoters-1 < (voters-1)/2+1 {
			return voterChange{}
		}
		var pick *voterView
		for i := range servers {
			s := &servers[i]
			if !s.voter || s.leader {
				continue
			}
			if pick == nil || voterZones[s.zone] > voterZones[pick.zone] {
				pick = s
			}
		}
		if pick != nil {
			return voterChange{demote: pick.name, why: fmt.Sprintf("%d voters, want %d", voters, target)}
		}
		return voterChange{}
	}
	// The set is the right size: spread it over zones.
	crowded := false
	for _, n := range voterZones {
		if n >= 2 {
			crowded = true
		}
	}
	if crowded {
		for _, c := range candidates() {
			if voterZones[c.zone] == 0 {
				return voterChange{promote: c.name, why: fmt.Sprintf("zone %q has no voter while another has two", c.zone)}
			}
		}
	}
	return voterChange{}
}
