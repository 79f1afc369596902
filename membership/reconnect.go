package membership

import (
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// reconnect keeps trying to reach members that failed, as Serf does.
//
// memberlist stops gossiping to a dead member once GossipToTheDeadTime has
// passed, and never probes it again: after a partition longer than that,
// both sides would stay split forever even once the network heals (Raft
// reconnects on its own, gossip does not). So every ReconnectInterval some
// random dead members are asked to join us again at their last addresses
// (see reconnectTargets). A member that left gracefully is not contacted:
// it said goodbye. A member the cluster forgot (Forget, after Raft removed
// it) is not either.
func (m *Membership) reconnect() {
	defer m.loops.Done()
	if m.cfg.Timing.ReconnectInterval <= 0 {
		return
	}
	ticker := time.NewTicker(m.cfg.Timing.ReconnectInterval)
	defer ticker.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-ticker.C:
		}
		if m.usable() != nil {
			continue
		}
		var dead []Member
		for _, mem := range m.Members() {
			if mem.Status == StatusDead && mem.Name != m.cfg.NodeName && mem.Addr != "" {
				dead = append(dead, mem)
			}
		}
		// Concurrently: a member behind a partition takes TCPTimeout to
		// fail, and must not hold up the others.
		var wg sync.WaitGroup
		for _, target := range reconnectTargets(dead) {
			wg.Go(func() {
				if _, err := m.ml.Join([]string{target.Addr}); err != nil {
					m.logger.Debug("reconnect to a failed member", "member", target.Name, "addr", target.Addr, "err", err)
					return
				}
				m.metrics.reconnects.Inc()
				m.logger.Info("reconnected to a failed member", "member", target.Name, "addr", target.Addr)
			})
		}
		wg.Wait()
	}
}

// reconnectSpread is how many intervals it takes at most, on average, to
// try every dead member once.
const reconnectSpread = 8

// reconnectTargets picks the dead members to contact this interval: one
// in reconnectSpread of them, at least one, at random. One per interval
// was too few after a mass restart: a member that came back while the
// others still had it dead (its refutation lost among gossip to members
// that were down) stayed dead in their view until the loop happened to
// pick it among dozens, minutes later.
func reconnectTargets(dead []Member) []Member {
	if len(dead) == 0 {
		return nil
	}
	k := (len(dead) + reconnectSpread - 1) / reconnectSpread
	picked := slices.Clone(dead)
	rand.Shuffle(len(picked), func(i, j int) { picked[i], picked[j] = picked[j], picked[i] })
	return picked[:k]
}
