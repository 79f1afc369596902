package kv

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Anti-entropy limits. A round expands every differing child of the root,
// then at most maxL2Expand differing nodes of level 2, so it compares at
// most maxL2Expand*16 leaves: its cost is bounded whatever the size of the
// keyspace or of the difference, and later rounds repair the rest.
const (
	maxL2Expand = 8
)

// antiEntropy is the module's anti-entropy and sync state. Its fields are
// guarded by mu, which is held briefly and never while sending or doing
// I/O; under it the module may read the store's counts and publish on the
// bus, neither of which takes mu (lock order: ae.mu, then the store's
// lock, then the bus's).
type antiEntropy struct {
	mu sync.Mutex
	// synced: the node has completed a full sync (or is the cluster's
	// source of truth); only a synced node starts or answers anti-entropy
	// rounds and serves full syncs.
	synced        bool
	unsyncedSince time.Time
	// lastSync is the last completed round or sync; savedSync what the
	// store has on disk.
	lastSync, savedSync time.Time
	lastSave            time.Time
	// staleAtStart: the node started with data and had not synced for
	// longer than the TTL (or never). Such data may hold keys deleted
	// meanwhile, so the node waits much longer before it makes itself the
	// source of truth for want of peers.
	staleAtStart bool
	// session is the full sync in progress, if any.
	session *syncSession
	// answers are the peers that refused a sync since the node became
	// unsynced, with what they said.
	answers map[string]syncAnswer
	// rounds are the rounds this node started and that are not finished.
	rounds map[uint64]*round
	// peers are per-peer round records for the status.
	peers  map[string]*peerRecord
	lastGC time.Time
	// pace is the number of ticks between the rounds this node starts,
	// and wait the ticks left until the next; numPeers the peers seen at
	// the last tick. See slowDownLocked and speedUpLocked.
	pace, wait int
	numPeers   int
	// repairs counts the entries anti-entropy (or a sync) brought this
	// node that were new to it: a round that raised it found something.
	repairs uint64
}

type syncSession struct {
	ref      uint64
	peer     string
	progress time.Time
	got      map[uint64]bool
	last     int64 // Seq of the last chunk, -1 until it arrives
	seen     map[string]struct{}
	done     bool // complete, being finalized
}

type syncAnswer struct {
	at       time.Time
	lastSync int64
}

type round struct {
	peer     string
	started  time.Time
	diverged bool
	repairs  uint64 // antiEntropy.repairs when it started
}

type peerRecord struct {
	lastRound time.Time
	rounds    uint64
}

func (a *antiEntropy) init(now, lastSync time.Time, hasData bool, ttl time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.synced = false
	a.staleAtStart = hasData && (lastSync.IsZero() || now.Sub(lastSync) > ttl)
	a.unsyncedSince = now
	a.lastSync, a.savedSync = lastSync, lastSync
	a.lastSave, a.lastGC = now, now
	a.answers = map[string]syncAnswer{}
	a.rounds = map[uint64]*round{}
	a.peers = map[string]*peerRecord{}
	a.pace, a.wait = 1, 0
}

// maxPace bounds how far an idle node slows its rounds down: to one every
// maxPace gossip intervals.
const maxPace = 8

// slowDownLocked doubles the pace after a round that found the trees
// equal: a cluster at rest then spends an eighth of what it would on
// rounds that find nothing. ae.mu must be held.
func (a *antiEntropy) slowDownLocked(limit int) {
	a.pace = min(a.pace*2, limit)
}

// speedUpLocked returns to a round every interval: when a round brought
// entries this node lacked, or the peers changed, and rounds have
// something to find. Not on a write or a broadcast: broadcast carries
// them, and under a steady load of writes two trees rarely match (entries
// settle while a digest is on its way), so rounds that speed up on every
// difference would run at full pace for nothing. ae.mu must be held.
func (a *antiEntropy) speedUpLocked() {
	a.pace, a.wait = 1, 0
}

// lastSyncToSave returns the last sync time and whether the disk has an
// older one.
func (a *antiEntropy) lastSyncToSave() (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastSync, !a.lastSync.Equal(a.savedSync)
}

func (k *KV) isSynced() bool {
	k.ae.mu.Lock()
	defer k.ae.mu.Unlock()
	return k.ae.synced
}

// syncedAt is isSynced for a node that a peer has just reached: it first
// applies checkStaleLocked.
func (k *KV) syncedAt(now time.Time) bool {
	k.ae.mu.Lock()
	defer k.ae.mu.Unlock()
	k.checkStaleLocked(now)
	return k.ae.synced
}

// checkStaleLocked makes a synced node unsynced if it has completed no
// round for longer than the tombstone TTL while a peer is reachable (it
// was partitioned, or alone): its old entries may be keys deleted
// meanwhile whose tombstones are gone, so it must sync fully again before
// it serves them. ae.mu must be held.
func (k *KV) checkStaleLocked(now time.Time) {
	if k.ae.synced && now.Sub(k.ae.lastSync) > k.cfg.TombstoneTTL {
		k.logger.Warn("no anti-entropy round for longer than the tombstone TTL; syncing fully again",
			"last_sync", k.ae.lastSync, "ttl", k.cfg.TombstoneTTL)
		k.markUnsyncedLocked(now)
	}
}

// Intervals derived from the configuration.
func (k *KV) roundTimeout() time.Duration { return max(20*k.cfg.GossipInterval, 5*time.Second) }
func (k *KV) syncTimeout() time.Duration  { return max(25*k.cfg.GossipInterval, 3*time.Second) }
func (k *KV) replyTimeout() time.Duration { return max(5*k.cfg.GossipInterval, time.Second) }
func (k *KV) aloneAfter() time.Duration   { return max(10*k.cfg.GossipInterval, 2*time.Second) }

// maxPace is maxPace, or less where the tombstone TTL is so short that an
// idle node must still complete a round well within it (see
// checkStaleLocked).
func (k *KV) maxPace() int {
	return max(1, min(maxPace, int(k.cfg.TombstoneTTL/(4*k.cfg.GossipInterval))))
}

// repaired records that anti-entropy or a sync brought n entries new to
// this node, and makes its rounds fast again: there may be more.
func (k *KV) repaired(n int) {
	k.ae.mu.Lock()
	k.ae.repairs += uint64(n)
	k.ae.speedUpLocked()
	k.ae.mu.Unlock()
}

// settleGrace is how long anti-entropy leaves a new entry to broadcast
// (see store.settled): ten gossip intervals, in which a broadcast reaches
// every node of a cluster of hundreds; but at most an eighth of the
// tombstone TTL, because a tombstone that broadcast missed somewhere must
// settle, and be compared, well before it is collected.
func (k *KV) settleGrace() time.Duration {
	return min(10*k.cfg.GossipInterval, k.cfg.TombstoneTTL/8)
}

// answerTTL is how long a peer's refusal counts. An unsynced node asks one
// peer at a time, so asking every peer takes up to one reply timeout per
// peer: the TTL grows with the number of peers, or a large new cluster
// would never see all its refusals fresh at once and never get going.
func (k *KV) answerTTL(peers int) time.Duration {
	return max(25*k.cfg.GossipInterval, 5*time.Second, time.Duration(peers)*k.replyTimeout())
}
func (k *KV) gcInterval() time.Duration {
	return min(max(k.cfg.TombstoneTTL/8, 10*time.Millisecond), time.Minute)
}
func (k *KV) saveInterval() time.Duration {
	return min(max(k.cfg.TombstoneTTL/4, 100*time.Millisecond), 10*time.Second)
}

// loop runs the periodic work every GossipInterval until Stop; a synced
// node with no round in flight sleeps through the ticks until its next
// round instead (see idleTicks).
func (k *KV) loop() {
	k.tick(1)
	steps := k.idleTicks()
	t := time.NewTimer(time.Duration(steps) * k.cfg.GossipInterval)
	defer t.Stop()
	for {
		select {
		case <-k.ctx.Done():
			return
		case <-t.C:
			k.tick(steps)
			steps = k.idleTicks()
			t.Reset(time.Duration(steps) * k.cfg.GossipInterval)
		case <-k.askNext:
			if !k.isSynced() {
				k.syncStep(k.peers(), k.cfg.now())
			}
		}
	}
}

// idleTicks is how many gossip intervals the loop may sleep: one while
// anything needs the tick (a full sync, a round waiting for its answer
// or its timeout), else the ticks until the next round is due. An idle
// node (a round every maxPace intervals) then wakes once per round, not
// five times a second: at rest the wake-ups, not the work, are most of a
// node's CPU. What a tick also does waits at most that long: the purge of
// expired keys (reads check expiry themselves) and noticing a change in
// the peers (a joining node asks for its sync itself).
func (k *KV) idleTicks() int {
	k.ae.mu.Lock()
	defer k.ae.mu.Unlock()
	if !k.ae.synced || len(k.ae.rounds) > 0 {
		return 1
	}
	return max(1, k.ae.wait+1) // the tick that finds wait at 0 starts the round
}

// tick is one step of the loop, standing for steps gossip intervals:
// expire rounds, start a round (synced) or drive the full sync
// (unsynced), collect tombstones and save the last sync time when due.
func (k *KV) tick(steps int) {
	now := k.cfg.now()
	peers := k.peers()
	k.ae.mu.Lock()
	for ref, r := range k.ae.rounds {
		if now.Sub(r.started) > k.roundTimeout() {
			delete(k.ae.rounds, ref)
			k.m.rounds.WithLabelValues("failed").Inc()
		}
	}
	if len(peers) > 0 {
		k.checkStaleLocked(now)
	}
	if len(peers) != k.ae.numPeers {
		k.ae.numPeers = len(peers)
		k.ae.speedUpLocked()
	}
	if len(k.ae.peers) > 2*len(peers)+16 {
		// Forget the records of members long gone.
		for name, p := range k.ae.peers {
			if !slices.Contains(peers, name) && now.Sub(p.lastRound) > time.Hour {
				delete(k.ae.peers, name)
			}
		}
	}
	synced := k.ae.synced
	k.ae.wait -= steps - 1 // the intervals slept through
	roundDue := synced && k.ae.wait <= 0
	if roundDue {
		k.ae.wait = k.ae.pace
	}
	k.ae.wait--
	gcDue := now.Sub(k.ae.lastGC) >= k.gcInterval()
	if gcDue {
		k.ae.lastGC = now
	}
	saveDue := now.Sub(k.ae.lastSave) >= k.saveInterval() && !k.ae.lastSync.Equal(k.ae.savedSync)
	lastSync := k.ae.lastSync
	if saveDue {
		k.ae.lastSave = now
	}
	k.ae.mu.Unlock()

	switch {
	case roundDue:
		k.startRound(peers, now)
	case !synced:
		k.syncStep(peers, now)
	}
	k.expire(now)
	if gcDue {
		k.collect(now)
	}
	if saveDue {
		if err := k.st.saveLastSync(lastSync); err != nil {
			k.logger.Warn("save last sync time", "err", err)
		} else {
			k.ae.mu.Lock()
			k.ae.savedSync = lastSync
			k.ae.mu.Unlock()
		}
	}
}

// collect removes the tombstones older than the TTL.
func (k *KV) collect(now time.Time) {
	expired := k.st.expiredTombstones(k.horizon(now))
	if len(expired) == 0 {
		return
	}
	n, err := k.st.removeIf(expired)
	if err != nil {
		k.logger.Warn("collect tombstones", "err", err)
		return
	}
	k.m.collected.Add(float64(n))
	k.updateGauges()
}

// startRound starts an anti-entropy round with a random peer: it sends
// the hashes of the root's children. See the package documentation for
// the protocol.
func (k *KV) startRound(peers []string, now time.Time) {
	if len(peers) == 0 {
		return
	}
	peer := peers[rand.IntN(len(peers))]
	ref := newRef()
	k.ae.mu.Lock()
	k.ae.rounds[ref] = &round{peer: peer, started: now, repairs: k.ae.repairs}
	k.ae.mu.Unlock()
	k.m.hooks.WithLabelValues("before_gossip").Inc()
	// The root alone: most rounds find the trees equal, and then cost
	// one hash each way; a difference costs one more round trip.
	k.sendRound(peer, message{Type: msgDigest, Ref: ref, Level: 0, Nodes: k.st.hashes(0, []int{0})})
	k.m.hooks.WithLabelValues("after_gossip").Inc()
}

// onDigest compares a peer's hashes of some nodes of one level with ours
// and answers: the round is over if none differs; else our hashes of the
// children of the differing nodes; at the leaves, our summaries of the
// differing leaves.
func (k *KV) onDigest(m message, now time.Time) {
	if !k.syncedAt(now) {
		k.refuse(m.From, m.Ref)
		return
	}
	level := int(m.Level)
	diff := k.st.mismatched(level, m.Nodes)
	if len(diff) == 0 {
		k.sendRound(m.From, message{Type: msgPush, Ref: m.Ref, Final: true})
		k.roundDone(m.From, m.Ref)
		return
	}
	k.markDiverged(m.Ref)
	if level == 2 {
		diff = sample(diff, maxL2Expand)
	}
	if level < treeDepth {
		k.sendRound(m.From, message{Type: msgDigest, Ref: m.Ref, Level: uint8(level + 1), Nodes: k.st.hashes(level+1, children(diff))})
		return
	}
	k.sendRound(m.From, message{Type: msgSummary, Ref: m.Ref, Leaves: k.st.summaries(diff)})
}

// sample returns at most n of xs, chosen at random, so that a difference
// that cannot be repaired never starves the others.
func sample(xs []int, n int) []int {
	if len(xs) <= n {
		return xs
	}
	rand.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
	xs = xs[:n]
	slices.Sort(xs)
	return xs
}

// onSummary compares a peer's versions in the differing leaves with ours:
// it pushes the entries the peer lacks and asks for those we lack.
func (k *KV) onSummary(m message, now time.Time) {
	if !k.isSynced() {
		return
	}
	k.markDiverged(m.Ref)
	push, wants := k.st.diff(m.Leaves, k.horizon(now))
	entries, err := k.st.read(push)
	if err != nil {
		k.logger.Warn("anti-entropy: read entries to push", "peer", m.From, "err", err)
		return
	}
	k.sendEntries(m.From, message{Type: msgPush, Ref: m.Ref, Wants: wants, Final: len(wants) == 0}, entries)
	if len(wants) == 0 {
		k.roundDone(m.From, m.Ref)
	}
}

// onPush answers the wants of a push (its entries were merged already)
// and records the end of a round.
func (k *KV) onPush(m message) {
	if len(m.Wants) > 0 {
		entries, err := k.st.read(m.Wants)
		if err != nil {
			k.logger.Warn("anti-entropy: read wanted entries", "peer", m.From, "err", err)
			return
		}
		k.sendEntries(m.From, message{Type: msgPush, Ref: m.Ref, Final: true}, entries)
		if m.Ref != 0 {
			k.roundDone(m.From, m.Ref)
		}
		return
	}
	if m.Final && m.Ref != 0 {
		k.roundDone(m.From, m.Ref)
	}
}

// sendEntries sends last, carrying entries split into chunks of at most
// maxChunk bytes: every chunk but the last is a non-final push without
// wants.
func (k *KV) sendEntries(to string, last message, entries []entry) {
	var chunk []entry
	size := 0
	for _, e := range entries {
		n := len(e.Key) + len(e.Value) + len(e.Version.Node) + 24
		if len(chunk) > 0 && size+n > maxChunk {
			k.send(to, message{Type: msgPush, Ref: last.Ref, Entries: chunk})
			chunk, size = nil, 0
		}
		chunk = append(chunk, e)
		size += n
	}
	last.Entries = chunk
	k.send(to, last)
}

// markDiverged records that a round found a difference (if this node
// started it, for the metrics).
func (k *KV) markDiverged(ref uint64) {
	k.ae.mu.Lock()
	defer k.ae.mu.Unlock()
	if r := k.ae.rounds[ref]; r != nil {
		r.diverged = true
	}
}

// roundDone records a completed round with peer: as the last sync, in the
// peer's record, and, if this node started it, in the round metrics.
func (k *KV) roundDone(peer string, ref uint64) {
	now := k.cfg.now()
	k.ae.mu.Lock()
	defer k.ae.mu.Unlock()
	if !k.ae.synced {
		return
	}
	k.ae.lastSync = now
	p := k.ae.peers[peer]
	if p == nil {
		p = &peerRecord{}
		k.ae.peers[peer] = p
	}
	p.lastRound = now
	p.rounds++
	if r := k.ae.rounds[ref]; r != nil && r.peer == peer {
		delete(k.ae.rounds, ref)
		result := "in_sync"
		if r.diverged {
			result = "repaired"
		}
		if k.ae.repairs == r.repairs {
			// Nothing new here: the trees matched, or differed by entries
			// broadcast was bringing (the peer speeds up itself if it
			// took any).
			k.ae.slowDownLocked(k.maxPace())
		}
		k.m.rounds.WithLabelValues(result).Inc()
		k.m.roundDuration.Observe(now.Sub(r.started).Seconds())
	}
}

// refuse tells a peer that this node cannot take part (it is not synced).
func (k *KV) refuse(to string, ref uint64) {
	k.ae.mu.Lock()
	lastSync := k.ae.lastSync
	k.ae.mu.Unlock()
	live, tombs, _ := k.st.counts()
	m := message{Type: msgNotSynced, Ref: ref, Keys: uint64(live + tombs)}
	if !lastSync.IsZero() {
		m.LastSync = lastSync.UnixMilli()
	}
	k.send(to, m)
}

// onNotSynced handles a refusal: of a round this node started, or of its
// sync request.
func (k *KV) onNotSynced(m message, now time.Time) {
	k.ae.mu.Lock()
	defer k.ae.mu.Unlock()
	if r := k.ae.rounds[m.Ref]; r != nil && r.peer == m.From {
		delete(k.ae.rounds, m.Ref)
		k.m.rounds.WithLabelValues("refused").Inc()
		return
	}
	s := k.ae.session
	if s == nil || s.ref != m.Ref || s.peer != m.From || s.done {
		return
	}
	k.ae.session = nil
	if !m.Busy {
		k.ae.answers[m.From] = syncAnswer{at: now, lastSync: m.LastSync}
		// Ask the next peer now: in a new cluster every peer refuses,
		// and asking one per tick would take a tick per member.
		select {
		case k.askNext <- struct{}{}:
		default:
		}
	}
}

// markUnsyncedLocked makes the node unsynced; ae.mu must be held.
func (k *KV) markUnsyncedLocked(now time.Time) {
	k.ae.synced = false
	k.ae.unsyncedSince = now
	k.ae.session = nil
	k.ae.answers = map[string]syncAnswer{}
	k.m.synced.Set(0)
}

// syncStep drives the full sync of an unsynced node: it asks one peer at
// a time for its full state. With no peer for aloneAfter (thirty times
// that for a node that started with stale data), or when every
// peer has refused because it is not synced either and this node is the
// most recently synced of them (then the lowest name), the node becomes
// the source of truth itself: that is how a new cluster, or one restarted
// as a whole, gets going.
func (k *KV) syncStep(peers []string, now time.Time) {
	k.ae.mu.Lock()
	if s := k.ae.session; s != nil {
		timeout := k.syncTimeout()
		if len(s.got) == 0 {
			timeout = k.replyTimeout()
		}
		if s.done || now.Sub(s.progress) < timeout {
			k.ae.mu.Unlock()
			return
		}
		k.logger.Info("full sync timed out; trying another peer", "peer", s.peer, "chunks", len(s.got))
		k.m.syncs.WithLabelValues("failed").Inc()
		k.ae.session = nil
	}
	if len(peers) == 0 {
		wait := k.aloneAfter()
		if k.ae.staleAtStart {
			wait *= 30
		}
		if now.Sub(k.ae.unsyncedSince) >= wait {
			k.m.syncs.WithLabelValues("self").Inc()
			k.becomeSyncedLocked(now, "no kv peer is up: this node is the source of truth")
		}
		k.ae.mu.Unlock()
		return
	}
	var unasked []string
	for _, p := range peers {
		if a, ok := k.ae.answers[p]; !ok || now.Sub(a.at) > k.answerTTL(len(peers)) {
			unasked = append(unasked, p)
		}
	}
	if len(unasked) == 0 && k.ranksFirstLocked(peers) {
		k.m.syncs.WithLabelValues("self").Inc()
		k.becomeSyncedLocked(now, "every kv peer is unsynced and this node synced last: this node is the source of truth")
		k.ae.mu.Unlock()
		return
	}
	pool := unasked
	if len(pool) == 0 {
		pool = peers
	}
	peer := pool[rand.IntN(len(pool))]
	ref := newRef()
	k.ae.session = &syncSession{ref: ref, peer: peer, progress: now, got: map[uint64]bool{}, last: -1, seen: map[string]struct{}{}}
	k.ae.mu.Unlock()
	k.send(peer, message{Type: msgSyncReq, Ref: ref})
}

// ranksFirstLocked reports whether this node comes first among itself and
// the refusing peers: the latest last sync, then the lowest name.
func (k *KV) ranksFirstLocked(peers []string) bool {
	mine := int64(0)
	if !k.ae.lastSync.IsZero() {
		mine = k.ae.lastSync.UnixMilli()
	}
	for _, p := range peers {
		theirs := k.ae.answers[p].lastSync
		if c := cmp.Compare(theirs, mine); c > 0 || (c == 0 && p < k.node) {
			return false
		}
	}
	return true
}

// becomeSyncedLocked makes the node synced and emits the synced event;
// ae.mu must be held.
func (k *KV) becomeSyncedLocked(now time.Time, reason string) {
	k.ae.synced = true
	k.ae.lastSync = now
	k.ae.session = nil
	k.ae.answers = map[string]syncAnswer{}
	k.m.synced.Set(1)
	k.m.hooks.WithLabelValues("after_sync").Inc()
	live, _, _ := k.st.counts()
	k.logger.Info("kv synced", "reason", reason, "keys", live)
	k.bus.publish(Event{Type: EventSynced, Keys: live})
}

// onSyncReq serves this node's full state to an unsynced peer, or refuses.
func (k *KV) onSyncReq(m message, now time.Time) {
	if !k.syncedAt(now) {
		k.refuse(m.From, m.Ref)
		return
	}
	if k.serving.Add(1) > maxServing {
		k.serving.Add(-1)
		k.send(m.From, message{Type: msgNotSynced, Ref: m.Ref, Busy: true})
		return
	}
	k.goroutine(func() {
		defer k.serving.Add(-1)
		k.serveSync(m.From, m.Ref)
	})
}

// serveSync streams every entry, tombstones included, from one read
// transaction, in chunks of at most maxChunk bytes; the last chunk is
// flagged. It sends directly (not through the outbox), in order.
func (k *KV) serveSync(to string, ref uint64) {
	var pending *message
	seq := uint64(0)
	size := 0
	cur := &message{Type: msgSyncData, Ref: ref}
	flush := func(last bool) error {
		if pending != nil {
			if err := k.sendNow(to, *pending); err != nil {
				return err
			}
		}
		if last {
			cur.Last = true
			return k.sendNow(to, *cur)
		}
		pending = cur
		seq++
		cur = &message{Type: msgSyncData, Ref: ref, Seq: seq}
		size = 0
		return nil
	}
	err := k.st.forEach(func(e entry) error {
		n := len(e.Key) + len(e.Value) + len(e.Version.Node) + 24
		if len(cur.Entries) > 0 && size+n > maxChunk {
			if err := flush(false); err != nil {
				return err
			}
		}
		cur.Entries = append(cur.Entries, e)
		size += n
		return k.ctx.Err()
	})
	if err == nil {
		err = flush(true)
	}
	if err != nil && k.ctx.Err() == nil {
		k.logger.Warn("serve full sync", "peer", to, "err", err)
	}
}

// inSession reports whether a sync chunk from peer with ref belongs to
// the full sync in progress.
func (k *KV) inSession(peer string, ref uint64) bool {
	k.ae.mu.Lock()
	defer k.ae.mu.Unlock()
	s := k.ae.session
	return s != nil && s.ref == ref && s.peer == peer && !s.done
}

// onSyncData tracks the chunks of the current session (their entries were
// merged already); once all have arrived it finishes the sync.
func (k *KV) onSyncData(m message, now time.Time) {
	k.ae.mu.Lock()
	s := k.ae.session
	if s == nil || s.ref != m.Ref || s.peer != m.From || s.done {
		k.ae.mu.Unlock()
		return
	}
	s.progress = now
	s.got[m.Seq] = true
	for _, e := range m.Entries {
		s.seen[e.Key] = struct{}{}
	}
	if m.Last {
		s.last = int64(m.Seq)
	}
	if s.last < 0 || int64(len(s.got)) != s.last+1 {
		k.ae.mu.Unlock()
		return
	}
	s.done = true
	k.ae.mu.Unlock()
	k.finishSync(s, now)
}

// finishSync applies the no-resurrection rule and makes the node synced:
// an entry older than the tombstone horizon that the source does not have
// was deleted and collected while this node was away (or never reached
// the cluster in a whole TTL), so it is removed here too, without a
// tombstone.
func (k *KV) finishSync(s *syncSession, now time.Time) {
	stale := k.st.absentOlderThan(s.seen, k.horizon(now))
	n, err := k.st.removeIf(stale)
	if err != nil {
		k.logger.Warn("full sync: remove entries the source no longer has", "err", err)
		k.ae.mu.Lock()
		if k.ae.session == s {
			k.ae.session = nil
		}
		k.ae.mu.Unlock()
		return
	}
	k.updateGauges()
	k.m.syncs.WithLabelValues("completed").Inc()
	if n > 0 {
		k.logger.Info("full sync removed entries deleted while this node was away", "removed", n)
	}
	k.ae.mu.Lock()
	defer k.ae.mu.Unlock()
	if k.ae.session != s {
		return
	}
	k.becomeSyncedLocked(now, "full sync from "+s.peer)
}
