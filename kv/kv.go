package kv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"shoal/internal/httpjson"
	"shoal/internal/sse"
	"shoal/modules"
)

func init() {
	modules.Register(modules.Info{
		ID:  "kv",
		New: func() modules.Module { return new(KV) },
		NewConfig: func() modules.Config {
			c := DefaultConfig()
			return &c
		},
	})
}

// Sizes of the module's queues and messages.
const (
	inboxSize = 4096 // received messages waiting for the worker
	// maxInboxBytes bounds the bytes waiting in the inbox: full-sync
	// chunks are up to 1 MiB each, and 4096 of them would be 4 GiB (a
	// node that several peers served at once under load was killed for
	// it). What is dropped, anti-entropy and sync bring again.
	maxInboxBytes = 64 << 20
	outboxSize    = 4096 // messages waiting for a sender
	numSenders    = 4    // goroutines sending outbox messages
	workerBatch   = 256  // messages the worker handles per pass
	// maxChunk bounds the entries of one push or sync message, in bytes.
	maxChunk = 1 << 20
	// maxBroadcast is the largest message Broadcast takes (the gossip
	// layer's 1200-byte frame, minus its tag byte).
	maxBroadcast = 1199
	// originFanout is how many members the node that takes a write pushes
	// it to at once (Gossip.Spread): in a cluster of up to 65 nodes, all
	// of them, so a write reaches every node in one hop, and the nodes it
	// reaches only piggyback it on, as a backstop for a lost push. That is
	// as many pushes per write as any epidemic needs (one per node), and
	// none is left to chance: random relay pushes miss a node with
	// probability e^-fanout, and a write is complete only when its last
	// node has it.
	originFanout = 64
	// relayFanout is how many members each node a write is new to pushes it
	// on to, in a cluster too large for its writer to push to every node.
	relayFanout = 4
	// maxServing bounds the full syncs this node serves at once.
	maxServing = 2
	// watchBuffer is a watcher's event buffer; a watcher further behind is
	// cut off with a watch_overflow error event.
	watchBuffer = 4096
)

// Lifecycle states.
const (
	stateNew int32 = iota
	stateRunning
	stateStopped
)

// KV is the kv module. Its zero value is ready for Provision.
//
// Goroutines (all started by Start, all stopped and waited for by Stop):
// the worker, which handles every received message in order; the senders,
// which send the outbox; the loop, which starts anti-entropy rounds, drives
// full syncs and collects tombstones; one per event handler; and
// short-lived ones that serve a full sync to a peer. NotifyMsg only copies
// a message into the inbox. HTTP handlers run on the server's goroutines.
type KV struct {
	host   modules.Host
	cfg    Config
	logger *slog.Logger
	node   string
	m      *metrics
	clock  *hlc
	bus    *bus
	specs  []handlerKind // parsed handlers and webhooks, from Provision

	st *store // set by Start, closed by Stop

	state atomic.Int32
	// opsMu is held for reading by every API operation on the store and
	// for writing by Stop before it closes the store.
	opsMu  sync.RWMutex
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	inbox      chan []byte
	inboxBytes atomic.Int64 // bytes of the messages in inbox
	outbox     chan outMsg
	serving    atomic.Int32

	ae antiEntropy
	// askNext wakes the loop to ask the next peer for a full sync at once
	// when one has refused, instead of at the next tick (see onNotSynced).
	askNext chan struct{}

	streams sse.Streams // open watches, ended by Stop

	// condMu orders the conditional writes of this node (If-Match,
	// If-None-Match): each checks and writes under it.
	condMu sync.Mutex
}

// ID returns "kv".
func (k *KV) ID() string { return "kv" }

// Tag returns modules.TagKV.
func (k *KV) Tag() modules.Tag { return modules.TagKV }

// Provision reads and validates the configuration and registers the
// metrics. It opens nothing and starts nothing.
func (k *KV) Provision(host modules.Host) error {
	k.host = host
	k.logger = host.Logger()
	k.node = host.NodeName()
	cfg, err := modules.ConfigAs(host.Config(), DefaultConfig(), ErrInvalidConfig)
	if err != nil {
		return fmt.Errorf("kv module: %w", err)
	}
	k.cfg = cfg
	if !validNode(k.node+expiredSuffix) || strings.ContainsRune(k.node, 0) {
		// A NUL would let a write collide with the tombstone of an
		// expiry (see expiredSuffix).
		return fmt.Errorf("kv module: node name %q cannot sign versions: %w", k.node, ErrInvalidConfig)
	}
	for _, s := range k.cfg.handlerSpecs() {
		spec, _ := ParseHandlerSpec(s) // Validate checked it
		k.specs = append(k.specs, handlerKind{kind: kindScript, spec: spec})
	}
	for _, s := range k.cfg.webhookSpecs() {
		spec, _ := ParseWebhookSpec(s)
		k.specs = append(k.specs, handlerKind{kind: kindWebhook, spec: spec})
	}
	m, err := newMetrics(host.Registerer())
	if err != nil {
		return fmt.Errorf("kv module: %w", err)
	}
	k.m = m
	k.clock = newHLC(k.cfg.now)
	k.bus = newBus()
	return nil
}

// Start opens the store in the module's data directory, loads it, and
// starts the module's goroutines. The node starts unsynced: its loop asks a
// peer for the full state before it takes part in anti-entropy.
func (k *KV) Start(ctx context.Context) error {
	st, newest, err := openStore(filepath.Join(k.host.DataDir(), "kv.db"), k.onChange)
	if err != nil {
		return fmt.Errorf("kv module: %w", err)
	}
	k.st = st
	st.setGrace(k.settleGrace(), k.cfg.now)
	k.clock.Observe(newest.Time, newest.Counter)
	live, tombs, _ := st.counts()
	k.m.keys.Set(float64(live))
	k.m.tombstones.Set(float64(tombs))
	now := k.cfg.now()
	k.ae.init(now, st.loadLastSync(), live+tombs > 0, k.cfg.TombstoneTTL)

	k.ctx, k.cancel = context.WithCancel(context.Background())
	k.inbox = make(chan []byte, inboxSize)
	k.outbox = make(chan outMsg, outboxSize)
	k.askNext = make(chan struct{}, 1)
	k.state.Store(stateRunning)
	k.goroutine(k.worker)
	for range numSenders {
		k.goroutine(k.sender)
	}
	k.goroutine(k.loop)
	for _, h := range k.specs {
		r := k.newRunner(h)
		k.goroutine(r.run)
	}
	k.logger.Info("kv store opened", "keys", live, "tombstones", tombs, "handlers", len(k.specs))
	return nil
}

// goroutine starts f, owned by the module until Stop.
func (k *KV) goroutine(f func()) {
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		f()
	}()
}

// Stop refuses new operations and messages, ends the watch streams, stops
// every goroutine (a running handler script is killed), records the last
// sync time and closes the store. It waits for all of that, bounded by ctx.
func (k *KV) Stop(ctx context.Context) error {
	if !k.state.CompareAndSwap(stateRunning, stateStopped) {
		return nil
	}
	k.cancel()
	k.streams.Stop()
	done := make(chan error, 1)
	go func() {
		k.wg.Wait()
		k.streams.Wait()
		k.opsMu.Lock() // in-flight API operations finish first
		defer k.opsMu.Unlock()
		var errs []error
		if t, dirty := k.ae.lastSyncToSave(); dirty {
			if err := k.st.saveLastSync(t); err != nil {
				errs = append(errs, fmt.Errorf("save last sync time: %w", err))
			}
		}
		if err := k.st.close(); err != nil {
			errs = append(errs, fmt.Errorf("close kv store: %w", err))
		}
		done <- errors.Join(errs...)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("stop kv module (it finishes in the background): %w", ctx.Err())
	}
}

// acquire admits one API operation on the store; release ends it.
func (k *KV) acquire() error {
	if k.state.Load() != stateRunning {
		return httpjson.ErrShuttingDown
	}
	k.opsMu.RLock()
	if k.state.Load() != stateRunning {
		k.opsMu.RUnlock()
		return httpjson.ErrShuttingDown
	}
	return nil
}

func (k *KV) release() { k.opsMu.RUnlock() }

// NotifyMsg queues a message of the kv channel for the worker. It never
// blocks: with the inbox full the message is dropped (and counted), which
// anti-entropy repairs. It copies msg.
func (k *KV) NotifyMsg(msg []byte) {
	if k.state.Load() != stateRunning {
		if k.m != nil {
			k.m.dropped.WithLabelValues("not_running").Inc()
		}
		return
	}
	switch msgType(firstByte(msg)) {
	case msgEntry:
		k.m.broadcastRecv.WithLabelValues("entry").Inc()
	case msgNotice:
		k.m.broadcastRecv.WithLabelValues("notice").Inc()
	default:
		k.m.aeBytes.WithLabelValues("received").Add(float64(len(msg)))
	}
	n := int64(len(msg))
	if k.inboxBytes.Add(n) > maxInboxBytes {
		k.inboxBytes.Add(-n)
		k.m.dropped.WithLabelValues("inbox_full").Inc()
		return
	}
	select {
	case k.inbox <- slices.Clone(msg):
	default:
		k.inboxBytes.Add(-n)
		k.m.dropped.WithLabelValues("inbox_full").Inc()
	}
}

func firstByte(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// onChange is the store's change hook: it publishes the event. It runs
// with the store's lock held.
func (k *KV) onChange(c change) {
	k.bus.publish(Event{Type: c.typ, Entry: c.e})
}

// updateGauges sets the key and tombstone gauges from the store.
func (k *KV) updateGauges() {
	live, tombs, _ := k.st.counts()
	k.m.keys.Set(float64(live))
	k.m.tombstones.Set(float64(tombs))
}

// horizon is the tombstone horizon at now, in Unix ms: tombstones older
// than it are collected.
func (k *KV) horizon(now time.Time) int64 {
	return now.UnixMilli() - k.cfg.TombstoneTTL.Milliseconds()
}

// newRef returns a random round or session id, never 0 (which means "no
// round").
func newRef() uint64 { return rand.Uint64() | 1 }

// Status is the module's section of GET /v1/status.
type Status struct {
	// Keys and Tombstones count this node's live keys and tombstones.
	Keys       int `json:"keys"`
	Tombstones int `json:"tombstones"`
	// Digest is the root hash of the node's digest tree: two nodes with the
	// same digest hold the same versions of the same keys.
	Digest string `json:"digest"`
	// Synced reports whether the node has completed its full sync.
	Synced bool `json:"synced"`
	// LastSync is when the node last completed an anti-entropy round or a
	// full sync (RFC 3339), empty if never.
	LastSync string `json:"last_sync,omitempty"`
	// Peers maps each current kv peer to the last anti-entropy round this
	// node completed with it.
	Peers map[string]PeerStatus `json:"peers"`
}

// PeerStatus is this node's anti-entropy record with one peer.
type PeerStatus struct {
	// LastRound is when the last round with the peer completed (RFC 3339),
	// empty if none did.
	LastRound string `json:"last_round,omitempty"`
	// Rounds counts the rounds completed with the peer, both ways.
	Rounds uint64 `json:"rounds"`
}

// Status returns the node's key counts, digest and anti-entropy state.
func (k *KV) Status() any {
	if k.state.Load() != stateRunning {
		return Status{Peers: map[string]PeerStatus{}}
	}
	live, tombs, root := k.st.counts()
	st := Status{Keys: live, Tombstones: tombs, Digest: fmt.Sprintf("%016x", root), Peers: map[string]PeerStatus{}}
	peers := k.peers()
	k.ae.mu.Lock()
	defer k.ae.mu.Unlock()
	st.Synced = k.ae.synced
	if !k.ae.lastSync.IsZero() {
		st.LastSync = k.ae.lastSync.UTC().Format(time.RFC3339Nano)
	}
	for _, p := range peers {
		ps := PeerStatus{}
		if r := k.ae.peers[p]; r != nil {
			ps.Rounds = r.rounds
			ps.LastRound = r.lastRound.UTC().Format(time.RFC3339Nano)
		}
		st.Peers[p] = ps
	}
	return st
}

// peers returns the names of the other alive members that run kv.
func (k *KV) peers() []string {
	var out []string
	for _, m := range k.host.Gossip().Members() {
		if !m.Local && m.Name != k.node && slices.Contains(m.Modules, "kv") {
			out = append(out, m.Name)
		}
	}
	return out
}

var (
	_ modules.Module         = (*KV)(nil)
	_ modules.Router         = (*KV)(nil)
	_ modules.GossipHandler  = (*KV)(nil)
	_ modules.StatusReporter = (*KV)(nil)
)
