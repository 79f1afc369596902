package membership

import (
	"math/rand/v2"
	"time"
)

// reconnect keeps trying to reach members that failed, as Serf does.
//
// memberlist stops gossiping to a dead member once GossipToTheDeadTime has
// passed, and never probes it again: after a partition longer than that,
// both sides would stay split forever even once the network heals (Raft
// reconnects on its own, gossip does not). So every ReconnectInterval one
// random dead member is asked to join us again at its last address. A
// member that left gracefully is not contacted: it said goodbye. A member
// the cluster forgot (Forget, after Raft removed it) is not either.
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
		if len(dead) == 0 {
			continue
		}
		target := dead[rand.IntN(len(dead))]
		if _, err := m.ml.Join([]string{target.Addr}); err != nil {
			m.logger.Debug("reconnect to a failed member", "member", target.Name, "addr", target.Addr, "err", err)
			continue
		}
		m.metrics.reconnects.Inc()
		m.logger.Info("reconnected to a failed member", "member", target.Name, "addr", target.Addr)
	}
}
