package objectsync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"shoal/internal/sse"
	"shoal/internal/wire"
	"shoal/internal/ws"
	"shoal/modules"
	"shoal/objectsync/internal/document"
	"shoal/objectsync/internal/protocol"
)

func init() {
	modules.Register(modules.Info{
		ID:  "objectsync",
		New: func() modules.Module { return new(ObjectSync) },
		NewConfig: func() modules.Config {
			c := DefaultConfig()
			return &c
		},
	})
}

// ObjectSync is the objectsync module. Its zero value is ready for
// Provision.
//
// ApplyCommand, Snapshot and Restore run on the FSM goroutine and hold mu
// for writing only while they change the state, then publish the change to
// this node's subscribers (fanout) without holding it. Websocket readers,
// HTTP handlers and the resync loop read the state under mu's read lock.
type ObjectSync struct {
	host   modules.Host
	cfg    Config
	logger *slog.Logger
	m      *metrics
	hub    *ws.Hub // nil until Provision
	fo     *fanout

	// incarnation names this run of the module on this node: the owner of
	// a master claim is node/incarnation/connection, so that a restarted
	// node can drop the claims of its previous run.
	incarnation string

	once sync.Once

	mu sync.RWMutex
	st *state // replaced whole by Restore

	streams sse.Streams
	watches atomic.Int64

	prod producers   // this node's producer connections
	lead leaderState // demand and productions, while this node leads
	virt virtuals    // the introspection objects (introspect.go)
	// releases counts the goroutines that release a closed master's
	// claims; Stop waits for them after closing the websockets.
	releases sync.WaitGroup

	life         sync.Mutex
	ctx          context.Context // cancelled by Stop
	cancel       context.CancelFunc
	stopped      bool
	wg           sync.WaitGroup
	leaderCancel context.CancelFunc
}

func (o *ObjectSync) init() {
	o.once.Do(func() {
		o.st = newState()
		if o.logger == nil {
			o.logger = slog.New(slog.DiscardHandler)
		}
		if o.m == nil {
			o.m, _ = newMetrics(nil)
		}
		if o.cfg.MaxSize == 0 {
			o.cfg = DefaultConfig()
		}
		o.fo = newFanout(o.lookup, o.matching, o.m)
		o.prod.changed = make(chan struct{}, 1)
		o.lead.changed = make(chan struct{}, 1)
		o.fo.onDemand = o.prod.markDirty
		o.ctx, o.cancel = context.WithCancel(context.Background())
		if o.incarnation == "" {
			var b [8]byte
			_, _ = rand.Read(b[:])
			o.incarnation = hex.EncodeToString(b[:])
		}
	})
}

// ID returns "objectsync".
func (o *ObjectSync) ID() string { return "objectsync" }

// Provision reads the configuration, registers the metrics and creates
// the websocket hub. It starts nothing.
func (o *ObjectSync) Provision(host modules.Host) error {
	o.host = host
	o.logger = host.Logger()
	cfg, err := modules.ConfigAs(host.Config(), DefaultConfig(), ErrInvalidConfig)
	if err != nil {
		return fmt.Errorf("objectsync module: %w", err)
	}
	o.cfg = cfg
	if o.m, err = newMetrics(host.Registerer()); err != nil {
		return fmt.Errorf("objectsync module: %w", err)
	}
	wc := ws.DefaultConfig()
	wc.Subprotocol = protocol.Subprotocol
	wc.BatchSubprotocol = protocol.BatchSubprotocol
	wc.MaxConns = cfg.MaxConnections
	// Room for an object twice over --objectsync-max-size (its JSON may
	// be less compact than the canonical form), so that an oversize
	// object gets a too_large error frame rather than a closed socket.
	wc.MaxMessageBytes = int64(2*cfg.MaxSize + 64<<10)
	wc.SendQueue = cfg.SendQueue
	wc.FlowWindow = cfg.FlowWindow
	wc.BatchInterval = cfg.BatchInterval
	wc.PingInterval = cfg.PingInterval
	wc.PingTimeout = min(wc.PingTimeout, cfg.PingInterval)
	// Every origin, here: the API refuses a handshake from a page of
	// another origin unless it is in --cors-origins (api/cors.go), one
	// list for every route.
	wc.OriginPatterns = []string{"*"}
	wc.MetricPrefix = "shoal_objectsync_ws"
	wc.Logger = o.logger.With("component", "ws")
	wc.Registerer = host.Registerer()
	if o.hub, err = ws.NewHub(wc); err != nil {
		return fmt.Errorf("objectsync module: %w", err)
	}
	o.init()
	return nil
}

// Start starts the resync loop (which feeds slow subscribers their missed
// states) and, in the background, drops the master claims this node held
// in an earlier run.
func (o *ObjectSync) Start(ctx context.Context) error {
	o.init()
	if !o.track() {
		return nil
	}
	go func() {
		defer o.untrack()
		o.resyncLoop()
	}()
	if o.host != nil && o.track() {
		go func() {
			defer o.untrack()
			o.dropOldClaims()
		}()
	}
	if o.host != nil && o.track() {
		go func() {
			defer o.untrack()
			o.reportLoop()
		}()
	}
	if o.track() {
		go func() {
			defer o.untrack()
			o.introspectLoop()
		}()
	}
	return nil
}

// Stop closes every websocket and SSE watch and waits, bounded by ctx, for
// the module's goroutines (the releases of closing masters' claims
// included).
func (o *ObjectSync) Stop(ctx context.Context) error {
	o.init()
	o.life.Lock()
	if !o.stopped {
		o.stopped = true
		if o.leaderCancel != nil {
			o.leaderCancel()
			o.leaderCancel = nil
		}
	}
	o.life.Unlock()
	var errs []error
	o.streams.Stop()
	if o.hub != nil {
		// Closing masters release their claims; the module's context is
		// cancelled only afterwards, so those releases can still commit.
		if err := o.hub.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	done := make(chan struct{})
	go func() {
		o.releases.Wait()
		o.cancel()
		o.streams.Wait()
		o.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		o.cancel()
		errs = append(errs, ctx.Err())
	}
	if len(errs) > 0 {
		return fmt.Errorf("stop objectsync module: %v", errs)
	}
	return nil
}

// track counts one goroutine that Stop must wait for; false once Stop has
// begun.
func (o *ObjectSync) track() bool {
	o.init()
	o.life.Lock()
	defer o.life.Unlock()
	if o.stopped {
		return false
	}
	o.wg.Add(1)
	return true
}

func (o *ObjectSync) untrack() { o.wg.Done() }

// resyncLoop sends lagging subscribers their missed states as their queues
// drain. It polls only while some subscriber lags: the websocket hub does
// not say when a queue drained.
func (o *ObjectSync) resyncLoop() {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-o.ctx.Done():
			return
		case <-o.fo.kick:
		}
		for o.fo.resync() {
			select {
			case <-o.ctx.Done():
				return
			case <-t.C:
			}
		}
	}
}

// dropOldClaims commits, once, the release of the claims an earlier run of
// this node held (its masters' connections are gone), retrying while there
// is no leader.
func (o *ObjectSync) dropOldClaims() {
	payload := encodeReleaseNode(releaseNodeCmd{node: o.host.NodeName(), keep: o.incarnation})
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		ctx, cancel := context.WithTimeout(o.ctx, 10*time.Second)
		_, err := o.host.Raft().Apply(ctx, opReleaseNode, payload)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-o.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Tag returns modules.TagObjectSync.
func (o *ObjectSync) Tag() modules.Tag { return modules.TagObjectSync }

// Ops implements modules.RaftHandler.
func (o *ObjectSync) Ops() []byte {
	return []byte{opWrite, opDelete, opClaim, opRelease, opReleaseNode, opBump, opStall, opCapped}
}

// ApplyCommand applies one committed command. It is called from the FSM
// goroutine only and never blocks: it holds the state's write lock for one
// command, then publishes the change to this node's subscribers, which
// only queues frames. A malformed command or an unknown op is an error
// and changes nothing; so is a refused one (stale version, another
// master), whose error is the *httpjson.Error the client gets.
func (o *ObjectSync) ApplyCommand(cmd modules.Command) ([]byte, error) {
	o.init()
	var (
		ch  *change
		res []byte
		err error
	)
	now := int64(0)
	if !cmd.Time.IsZero() {
		now = cmd.Time.UnixNano()
	}
	var lim caps // an opCapped's caps, checked by its inner command's case
	if cmd.Op == opCapped {
		if lim, cmd.Op, cmd.Payload, err = decodeCapped(cmd.Payload); err != nil {
			return nil, fmt.Errorf("apply objectsync command at raft index %d: %w", cmd.Index, err)
		}
	}
	switch cmd.Op {
	case opWrite:
		var c writeCmd
		if c, err = decodeWrite(cmd.Payload); err == nil {
			if err = o.admitObject(lim, c.id); err != nil {
				break
			}
			// c.data aliases the payload, which is only valid during the
			// call: write keeps only the canonical copies it makes.
			o.mu.Lock()
			ch, err = o.st.write(c, cmd.Index, now)
			seq := cmd.Index
			if err == nil && ch == nil { // a no-op: the state it asked for is there
				seq = o.st.objects[c.id].seq
			}
			o.mu.Unlock()
			if err == nil {
				res = wire.AppendUvarint(nil, seq)
			}
		}
	case opStall:
		var c writeCmd
		if c, err = decodeWrite(cmd.Payload); err == nil {
			if err = o.admitObject(lim, c.id); err != nil {
				break
			}
			if c.patch || len(c.data) > 0 {
				err = fmt.Errorf("decode stall: %w: a stall carries no data", ErrMalformedCommand)
				break
			}
			o.mu.Lock()
			ch, err = o.st.stall(c, cmd.Index, now)
			o.mu.Unlock()
		}
	case opDelete:
		var id string
		if id, err = decodeID(cmd.Payload); err == nil {
			o.mu.Lock()
			ch, err = o.st.remove(id)
			o.mu.Unlock()
		}
	case opClaim, opRelease:
		var c claimCmd
		if c, err = decodeClaim(cmd.Payload); err == nil {
			o.mu.Lock()
			if cmd.Op == opClaim {
				err = o.st.claim(c)
			} else {
				o.st.release(c)
			}
			o.mu.Unlock()
		}
	case opReleaseNode:
		var c releaseNodeCmd
		if c, err = decodeReleaseNode(cmd.Payload); err == nil {
			o.mu.Lock()
			n := o.st.releaseNode(c)
			o.mu.Unlock()
			res = wire.AppendUvarint(nil, uint64(n))
		}
	case opBump:
		var name string
		if name, err = decodeBump(cmd.Payload); err == nil {
			if err = o.admitDependency(lim, name); err != nil {
				break
			}
			o.mu.Lock()
			res = o.st.bump(name)
			o.mu.Unlock()
		}
	default:
		err = fmt.Errorf("op %d: %w", cmd.Op, ErrUnknownOp)
	}
	if err != nil {
		return nil, fmt.Errorf("apply objectsync command at raft index %d: %w", cmd.Index, err)
	}
	o.mu.RLock()
	n := len(o.st.objects)
	o.mu.RUnlock()
	o.m.objects.Set(float64(n))
	if ch != nil {
		o.fo.publish(ch)
	}
	o.lead.notePlanInput() // a dependency, a state or a claim may have moved
	return res, nil
}

// admitObject refuses, with nothing changed, a write or stall that would
// create object id while the cluster holds lim.objects (0: no cap). It
// runs on the FSM goroutine, the state's only writer.
func (o *ObjectSync) admitObject(lim caps, id string) error {
	if lim.objects == 0 || o.st.objects[id] != nil || uint64(len(o.st.objects)) < lim.objects {
		return nil
	}
	return ErrTooManyObjects.WithMessage("the cluster holds %d objects, its limit (--objectsync-max-objects): delete some first", len(o.st.objects)).
		WithDetail("limit", lim.objects)
}

// admitDependency refuses a bump that would create counter name past
// lim.deps (0: no cap).
func (o *ObjectSync) admitDependency(lim caps, name string) error {
	if _, ok := o.st.deps[name]; ok || lim.deps == 0 || uint64(len(o.st.deps)) < lim.deps {
		return nil
	}
	return ErrTooManyDependencies.WithMessage("the cluster holds %d dependency counters, its limit (--objectsync-max-dependencies)", len(o.st.deps)).
		WithDetail("limit", lim.deps)
}

// countCap counts a submission the caps refused.
func (o *ObjectSync) countCap(err error) {
	switch {
	case errors.Is(err, ErrTooManyObjects):
		o.m.capRefusals.WithLabelValues("object").Inc()
	case errors.Is(err, ErrTooManyDependencies):
		o.m.capRefusals.WithLabelValues("dependency").Inc()
	}
}

// capped returns the command to submit for an opWrite, opStall or opBump
// payload: wrapped with the caps, or as it is without any (which a node of
// the release before opCapped still applies).
func (o *ObjectSync) capped(op byte, payload []byte) (byte, []byte) {
	c := caps{objects: uint64(o.cfg.MaxObjects), deps: uint64(o.cfg.MaxDependencies)}
	if c == (caps{}) {
		return op, payload
	}
	return opCapped, encodeCapped(c, op, payload)
}

// lookup returns the current state of object id, or nil.
func (o *ObjectSync) lookup(id string) *object {
	if strings.HasPrefix(id, reservedPrefix) {
		return o.virt.get(id)
	}
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.st.objects[id]
}

// matching returns the objects whose id matches pattern, sorted by id.
func (o *ObjectSync) matching(pattern string) []*object {
	o.mu.RLock()
	var out []*object
	for id, obj := range o.st.objects {
		if document.Match(pattern, id) {
			out = append(out, obj)
		}
	}
	o.mu.RUnlock()
	out = append(out, o.virt.matching(pattern)...)
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// Snapshot captures the state: the maps are copied, the objects (which
// never change) are shared. Persist encodes them on another goroutine.
func (o *ObjectSync) Snapshot() (modules.Snapshot, error) {
	o.init()
	o.mu.RLock()
	defer o.mu.RUnlock()
	return captureSnapshot(o.st), nil
}

// Restore replaces the whole state with a snapshot Persist wrote; an empty
// reader is the empty state. On error the state is unchanged. Every
// subscriber then gets the full state of what it follows.
func (o *ObjectSync) Restore(r io.Reader) error {
	o.init()
	st, err := readSnapshot(r)
	if err != nil {
		return err
	}
	o.mu.Lock()
	o.st = st
	n := len(st.objects)
	o.mu.Unlock()
	o.m.objects.Set(float64(n))
	o.fo.resyncAll()
	return nil
}

// Status is the module's section of GET /v1/status.
type Status struct {
	Objects       int   `json:"objects"`
	Masters       int   `json:"masters"`
	Dependencies  int   `json:"dependencies"`
	Connections   int   `json:"connections"`
	Watches       int64 `json:"watches"`
	Subscribers   int   `json:"subscribers"`
	Lagging       int   `json:"lagging"`
	Leading       bool  `json:"leading"`
	HistoryLength int   `json:"history_setting"`
	// Producers counts this node's producer connections; the leader also
	// reports the productions it asked for and the objects it dropped.
	Producers   int `json:"producers"`
	Known       int `json:"known_producers,omitempty"`
	Pending     int `json:"pending_productions,omitempty"`
	Asks        int `json:"productions_asked,omitempty"`
	LingerDrops int `json:"linger_drops,omitempty"`
}

// Status returns the sizes of this node's state and subscribers.
func (o *ObjectSync) Status() any {
	o.init()
	o.mu.RLock()
	s := Status{Objects: len(o.st.objects), Masters: len(o.st.claims), Dependencies: len(o.st.deps), HistoryLength: o.cfg.History}
	o.mu.RUnlock()
	o.fo.mu.Lock()
	s.Subscribers, s.Lagging = len(o.fo.sessions), o.fo.lagging
	o.fo.mu.Unlock()
	if o.hub != nil {
		s.Connections = o.hub.Len()
	}
	s.Watches = o.watches.Load()
	o.life.Lock()
	s.Leading = o.leaderCancel != nil
	o.life.Unlock()
	o.prod.mu.Lock()
	s.Producers = len(o.prod.conns)
	o.prod.mu.Unlock()
	o.lead.mu.Lock()
	s.Pending, s.Asks, s.LingerDrops = len(o.lead.pending), o.lead.asks, o.lead.drops
	for _, r := range o.lead.reports {
		s.Known += len(r.producers)
	}
	o.lead.mu.Unlock()
	return s
}

var (
	_ modules.Module         = (*ObjectSync)(nil)
	_ modules.Router         = (*ObjectSync)(nil)
	_ modules.PublicRouter   = (*ObjectSync)(nil)
	_ modules.RaftHandler    = (*ObjectSync)(nil)
	_ modules.LeaderObserver = (*ObjectSync)(nil)
	_ modules.StatusReporter = (*ObjectSync)(nil)
	_ modules.PeerHandler    = (*ObjectSync)(nil)
)
