package kv

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// outMsg is one message waiting in the outbox.
type outMsg struct {
	to         string
	msg        []byte
	bestEffort bool // UDP (sendRound), else TCP
}

// send queues m for to without blocking; with the outbox full it is
// dropped (and counted): anti-entropy and sync retry.
func (k *KV) send(to string, m message) {
	k.queue(to, m, false)
}

// sendRound queues a message of an anti-entropy round's comparison (a
// digest, a summary, the empty push that ends a round): in one UDP packet
// when it fits a gossip packet. A round at rest is one digest and one
// empty push every few seconds per node, and a TCP connection for each
// cost more than everything else a node does at rest; one lost is one
// round that times out (roundTimeout), and the next compares again.
// Entries (pushes with entries, pulls) and full syncs stay on TCP.
func (k *KV) sendRound(to string, m message) {
	k.queue(to, m, true)
}

func (k *KV) queue(to string, m message, round bool) {
	m.From = k.node
	b := encodeMessage(m)
	select {
	case k.outbox <- outMsg{to: to, msg: b, bestEffort: round && len(b) <= maxBroadcast}:
	default:
		k.m.dropped.WithLabelValues("outbox_full").Inc()
	}
}

// sendNow sends m to to at once, blocking up to the send timeout.
func (k *KV) sendNow(to string, m message) error {
	m.From = k.node
	b := encodeMessage(m)
	ctx, cancel := context.WithTimeout(k.ctx, k.sendTimeout())
	defer cancel()
	if err := k.host.Gossip().SendTo(ctx, to, b); err != nil {
		k.m.dropped.WithLabelValues("send_failed").Inc()
		return fmt.Errorf("send %s to %s: %w", m.Type, to, err)
	}
	k.m.aeBytes.WithLabelValues("sent").Add(float64(len(b)))
	return nil
}

func (k *KV) sendTimeout() time.Duration { return max(10*k.cfg.GossipInterval, 5*time.Second) }

// sender sends outbox messages until Stop.
func (k *KV) sender() {
	for {
		select {
		case <-k.ctx.Done():
			return
		case o := <-k.outbox:
			var err error
			if o.bestEffort {
				err = k.host.Gossip().SendBestEffort(o.to, o.msg)
			} else {
				ctx, cancel := context.WithTimeout(k.ctx, k.sendTimeout())
				err = k.host.Gossip().SendTo(ctx, o.to, o.msg)
				cancel()
			}
			if err != nil {
				if k.ctx.Err() == nil {
					k.m.dropped.WithLabelValues("send_failed").Inc()
					k.logger.Debug("kv message not sent", "peer", o.to, "type", msgType(firstByte(o.msg)).String(), "err", err)
				}
				continue
			}
			k.m.aeBytes.WithLabelValues("sent").Add(float64(len(o.msg)))
		}
	}
}

// broadcast spreads a write to every member (Gossip.Spread): a local one
// pushed at once to every member (up to originFanout), one new here and
// received by broadcast passed on by piggybacking, and in a cluster larger
// than the writer's pushes reach, also pushed to relayFanout members. It
// sends the whole entry when it fits a gossip packet, else a notice with
// its version, from which every node that lacks it pulls the entry from
// this node over TCP (and anti-entropy repairs what a lost notice or pull
// misses). It is keyed by the key, so a newer write of the same key
// replaces one still queued.
func (k *KV) broadcast(e entry, relay bool) {
	msg := encodeMessage(message{Type: msgEntry, From: k.node, Entries: []entry{e}})
	kind := "entry"
	if len(msg) > maxBroadcast {
		n := e
		n.Value = ""
		msg = encodeMessage(message{Type: msgNotice, From: k.node, Entries: []entry{n}})
		kind = "notice"
	}
	fanout := originFanout
	if relay {
		// The peer count of the last tick, not a fresh member list: this
		// runs for every write a node relays.
		k.ae.mu.Lock()
		peers := k.ae.numPeers
		k.ae.mu.Unlock()
		fanout = 0
		if peers > originFanout {
			fanout = relayFanout
		}
	}
	if err := k.host.Gossip().Spread(e.Key, msg, fanout); err != nil {
		k.m.dropped.WithLabelValues("send_failed").Inc()
		k.logger.Debug("kv broadcast refused; anti-entropy will carry the write", "err", err)
		return
	}
	k.m.broadcastSent.WithLabelValues(kind).Inc()
}

// worker handles received messages, in order, until Stop.
func (k *KV) worker() {
	batch := make([][]byte, 0, workerBatch)
	for {
		select {
		case <-k.ctx.Done():
			return
		case b := <-k.inbox:
			batch = append(batch[:0], b)
		}
	drain:
		for len(batch) < workerBatch {
			select {
			case b := <-k.inbox:
				batch = append(batch, b)
			default:
				break drain
			}
		}
		k.handleBatch(batch)
	}
}

// handleBatch decodes a batch of messages, merges all the entries they
// carry in one transaction, then handles each message's protocol part.
func (k *KV) handleBatch(batch [][]byte) {
	now := k.cfg.now()
	msgs := make([]message, 0, len(batch))
	var viaBroadcast, viaAE, viaSync []entry
	for _, b := range batch {
		k.inboxBytes.Add(-int64(len(b)))
		m, err := decodeMessage(b)
		if err != nil {
			k.m.dropped.WithLabelValues("malformed").Inc()
			k.logger.Debug("dropping malformed kv message", "bytes", len(b), "err", err)
			continue
		}
		msgs = append(msgs, m)
		switch {
		case m.Type == msgEntry, m.Type == msgPush && m.Ref == 0: // a broadcast, or the pull a notice asked for
			viaBroadcast = append(viaBroadcast, m.Entries...)
		case m.Type == msgPush:
			viaAE = append(viaAE, m.Entries...)
		case m.Type == msgSyncData && k.inSession(m.From, m.Ref):
			// Chunks of a sync this node gave up on (it timed out and
			// asked another peer) are not merged: under load, merging
			// every transfer that still arrives is what keeps the next
			// one from finishing in time.
			viaSync = append(viaSync, m.Entries...)
		}
	}
	k.merge(now, viaBroadcast, viaAE, viaSync)
	for _, m := range msgs {
		switch m.Type {
		case msgNotice:
			n := m.Entries[0]
			k.clock.Observe(n.Version.Time, n.Version.Counter)
			if k.st.isNewer(n.Key, n.Version) {
				k.send(m.From, message{Type: msgPush, Wants: []want{{Key: n.Key, Version: n.Version}}})
			}
		case msgDigest:
			k.onDigest(m, now)
		case msgSummary:
			k.onSummary(m, now)
		case msgPush:
			k.onPush(m)
		case msgSyncReq:
			k.onSyncReq(m, now)
		case msgSyncData:
			k.onSyncData(m, now)
		case msgNotSynced:
			k.onNotSynced(m, now)
		}
	}
}

// merge applies the remote entries that are newer than ours: it passes
// the broadcast ones on, persists them all in one transaction, then makes
// them visible (firing their events). A failure leaves them unapplied;
// anti-entropy brings them again.
func (k *KV) merge(now time.Time, viaBroadcast, viaAE, viaSync []entry) {
	total := len(viaBroadcast) + len(viaAE) + len(viaSync)
	if total == 0 {
		return
	}
	all := make([]entry, 0, total)
	all = append(append(append(all, viaBroadcast...), viaAE...), viaSync...)
	source := make(map[string]string, total)
	for _, e := range viaBroadcast {
		source[e.Key] = "broadcast"
	}
	for _, e := range viaAE {
		source[e.Key] = "antientropy"
	}
	for _, e := range viaSync {
		source[e.Key] = "sync"
	}
	nowMs := now.UnixMilli()
	for i, e := range all {
		if e.expiredAt(nowMs) {
			// A value that expired on its way is merged as its tombstone,
			// the one every node makes: the value never shows here.
			e = e.expiredTombstone()
			all[i] = e
		}
		k.clock.Observe(e.Version.Time, e.Version.Counter)
	}
	horizon := k.horizon(now)
	accepted := k.st.filter(all, horizon)
	if len(accepted) == 0 {
		return
	}
	for _, e := range accepted {
		if source[e.Key] == "broadcast" {
			// Pass it on, as Serf does with user events: memberlist sends
			// a broadcast to only a few nodes, so every node that learns a
			// new version from one gossips it once more; a node that has
			// it already does not, which ends the epidemic. It goes before
			// the fsync: durability is the writer's, and the next hop
			// should not wait for this node's disk.
			k.broadcast(e, true)
		}
	}
	if err := k.st.persist(accepted, false); err != nil {
		if !errors.Is(err, context.Canceled) {
			k.logger.Error("persist merged kv entries", "entries", len(accepted), "err", err)
		}
		return
	}
	applied := k.st.apply(accepted, horizon)
	k.updateGauges()
	repairs := 0
	for _, e := range applied {
		k.m.merged.WithLabelValues(source[e.Key]).Inc()
		k.m.lag.Observe(float64(max(nowMs-e.Version.Time, 0)) / 1000)
		if source[e.Key] != "broadcast" {
			repairs++
		}
	}
	if repairs > 0 {
		k.repaired(repairs)
	}
}

// writeOp is one local write: a value (with a TTL, if not 0), or a
// tombstone; cond, if set, is checked against this node's copy first.
type writeOp struct {
	key     string
	value   string
	deleted bool
	ttl     time.Duration
	cond    *precondition
}

// write makes a local write: a new version from the clock, persisted
// (fsynced) before it is applied, answered and broadcast. A write with a
// precondition is checked and made under condMu, so two conditional
// writes on this node cannot both pass the same check; writes that arrive
// from other nodes meanwhile are not held back (see docs/kv.md).
func (k *KV) write(op writeOp) (entry, error) {
	if err := k.acquire(); err != nil {
		return entry{}, err
	}
	defer k.release()
	if op.cond != nil {
		k.condMu.Lock()
		defer k.condMu.Unlock()
		cur, live := k.st.current(op.key, k.cfg.now().UnixMilli())
		if err := op.cond.check(op.key, cur, live); err != nil {
			k.m.writes.WithLabelValues("precondition_failed").Inc()
			return entry{}, err
		}
	}
	t, c := k.clock.Now()
	e := entry{Key: op.key, Value: op.value, Version: Version{Time: t, Counter: c, Node: k.node}, Deleted: op.deleted}
	if op.ttl > 0 {
		// The expiry counts from the version's time, so it is always after
		// it (the tombstone must be newer than the value).
		e.Expires = t + op.ttl.Milliseconds()
		if e.Expires > maxTime {
			return entry{}, badParam("ttl", "the expiry would be past the year 9999")
		}
	}
	if err := k.st.persist([]entry{e}, true); err != nil {
		return entry{}, fmt.Errorf("persist write of key %q: %w", op.key, err)
	}
	k.st.apply([]entry{e}, k.horizon(k.cfg.now()))
	k.updateGauges()
	k.broadcast(e, false)
	opName := "put"
	if op.deleted {
		opName = "delete"
	}
	k.m.writes.WithLabelValues(opName).Inc()
	return e, nil
}

// expire replaces the values that have expired by now with their
// tombstones (entry.expiredTombstone), as a merge would: persisted, then
// applied, firing key_removed. Every node does it on its own and makes the
// same tombstones, so they are not broadcast: a node that has not expired
// a value yet does so by itself, or gets the tombstone by anti-entropy.
func (k *KV) expire(now time.Time) {
	tombs := k.st.dueExpired(now.UnixMilli())
	if len(tombs) == 0 {
		return
	}
	for _, e := range tombs {
		// A write made here after the expiry is newer than its tombstone.
		k.clock.Observe(e.Version.Time, e.Version.Counter)
	}
	if err := k.st.persist(tombs, false); err != nil {
		// The values stay, unreadable (reads check the expiry); the next
		// received copy of a tombstone, or a restart, retries.
		k.logger.Warn("persist expired kv entries", "entries", len(tombs), "err", err)
		return
	}
	applied := k.st.apply(tombs, k.horizon(now))
	k.m.expired.Add(float64(len(applied)))
	k.updateGauges()
}
