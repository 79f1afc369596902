package membership

import (
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// pushesPerInterval bounds the pushes (one UDP packet each) a node sends
// per gossip interval. A piggybacked broadcast shares a gossip packet with
// others; a push does not, so a burst of writes pushed one by one would
// flood the receivers' sockets and crowd out the probes that failure
// detection lives on. Past the bound, Spread piggybacks instead, with
// Broadcast's full retransmissions. 256 per 200 ms is 1,280 packets a
// second: 20 writes a second pushed to 63 members each.
const pushesPerInterval = 256

// pushBudget is a token bucket of pushes: pushesPerInterval tokens, refilled
// at that rate per gossip interval.
type pushBudget struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// take takes n tokens if the bucket holds them at now.
func (b *pushBudget) take(n int, now time.Time, interval time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.IsZero() {
		b.tokens = pushesPerInterval
	} else {
		b.tokens += float64(now.Sub(b.last)) / float64(interval) * pushesPerInterval
		b.tokens = min(b.tokens, pushesPerInterval)
	}
	b.last = now
	if b.tokens < float64(n) {
		return false
	}
	b.tokens -= float64(n)
	return true
}

// push sends a broadcast frame at once, each copy in its own UDP packet,
// to fanout members picked at random among those up, this node excluded.
// It reports false, sending nothing, when the push budget is spent. It
// waits for nothing but the sends themselves: a failed one is counted and
// logged at debug level, and the piggybacked copies cover for it.
func (m *Membership) push(frame []byte, fanout int) bool {
	if fanout <= 0 || m.usable() != nil {
		return true
	}
	up := m.upPeers.Load()
	if up == nil {
		return true
	}
	peers := pickPeers(*up, fanout)
	if len(peers) == 0 {
		return true
	}
	if !m.pushes.take(len(peers), time.Now(), m.cfg.Timing.GossipInterval) {
		m.metrics.pushes.WithLabelValues(pushDeferred).Add(float64(len(peers)))
		return false
	}
	for _, to := range peers {
		if err := m.ml.SendBestEffort(to, frame); err != nil {
			m.metrics.pushes.WithLabelValues(pushFailed).Inc()
			m.logger.Debug("push not sent", "peer", to.Name, "err", err)
			continue
		}
		m.metrics.pushes.WithLabelValues(pushSent).Inc()
	}
	return true
}

// pickPeers returns up to n of peers picked at random, in a new slice.
func pickPeers(peers []*memberlist.Node, n int) []*memberlist.Node {
	if n >= len(peers) {
		return slices.Clone(peers)
	}
	// A partial Fisher-Yates shuffle of a copy: the first n are a
	// uniform sample.
	out := slices.Clone(peers)
	for i := range n {
		j := i + rand.IntN(len(out)-i)
		out[i], out[j] = out[j], out[i]
	}
	return out[:n]
}
