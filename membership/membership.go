package membership

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"shoal/internal/logging"
)

// Errors returned by this package; match them with errors.Is.
var (
	// ErrShutdown: the Membership was shut down.
	ErrShutdown = errors.New("membership is shut down")
	// ErrLeft: this node left the cluster; it cannot rejoin or change its
	// meta (start a new Membership instead).
	ErrLeft = errors.New("node has left the cluster")
	// ErrUnknownNode: no member has that name.
	ErrUnknownNode = errors.New("unknown member")
	// ErrNodeDown: the member is dead or left.
	ErrNodeDown = errors.New("member is down")
	// ErrMessageTooLarge: a broadcast does not fit a gossip packet.
	ErrMessageTooLarge = errors.New("message too large to piggyback on gossip")
	// ErrMetaTooLarge: the encoded Meta exceeds memberlist.MetaMaxSize.
	ErrMetaTooLarge = fmt.Errorf("meta exceeds %d bytes", memberlist.MetaMaxSize)
)

// Membership is one node's membership in the cluster: a running memberlist
// instance, the table of members it has seen, and the gossip channels of
// the node's modules. All methods are safe for concurrent use.
type Membership struct {
	cfg     Config
	logger  *slog.Logger
	metrics *metrics
	ml      *memberlist.Memberlist // set once New has created it

	table              // member table and subscriptions
	numUp atomic.Int32 // alive + suspect members, kept by recountLocked
	// upPeers are the members up, this node excluded, as memberlist nodes
	// of our own (memberlist's are mutated under its lock): what push
	// picks from. Kept by recountLocked; replaced, never modified.
	upPeers atomic.Pointer[[]*memberlist.Node]
	pushes  pushBudget

	// metaMu serializes UpdateMeta and Leave; it guards localMeta and left.
	metaMu       sync.Mutex
	localMeta    Meta
	left         bool
	leaveStarted atomic.Bool
	metaBytes    atomic.Pointer[[]byte] // what NodeMeta returns

	chMu     sync.Mutex                   // serializes Channel creation
	chans    [256]atomic.Pointer[Channel] // by tag, read without locks
	chanList atomic.Pointer[[]*Channel]   // sorted by tag, copy on write
	rotate   atomic.Uint32                // GetBroadcasts' first channel

	// lifeMu serializes Leave and Shutdown: memberlist panics on a Leave
	// after Shutdown.
	lifeMu  sync.Mutex
	closing atomic.Bool    // Shutdown has begun: new calls fail fast
	done    chan struct{}  // closed by Shutdown; ends RetryJoin's waits and the reconnect loop
	loops   sync.WaitGroup // the reconnect loop

	// gate's write lock is taken once, by Shutdown, to set stopped; the
	// delegate holds the read lock while calling a handler, so no handler
	// is called after Shutdown returns.
	gate    sync.RWMutex
	stopped bool
	// sendMu guards sendsDone and orders sends.Add before Shutdown's Wait.
	sendMu    sync.Mutex
	sendsDone bool
	sends     sync.WaitGroup
}

// New validates cfg, starts memberlist listening on cfg.BindAddr and
// returns the running Membership, alone in its cluster until Join. The
// caller must call Shutdown.
func New(cfg Config) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMembership(cfg)
	if err != nil {
		return nil, err
	}
	if err := m.metrics.register(cfg.Registerer); err != nil {
		return nil, fmt.Errorf("membership: %w", err)
	}
	ml, err := m.start()
	if err != nil {
		m.metrics.unregister()
		return nil, fmt.Errorf("membership: %w", err)
	}
	m.ml = ml
	m.loops.Add(1)
	go m.reconnect()
	m.logger.Info("membership started", "node", cfg.NodeName, "addr", m.LocalMember().Addr)
	return m, nil
}

// newMembership builds a Membership without side effects: no listener, no
// metric registered. cfg must be valid.
func newMembership(cfg Config) (*Membership, error) {
	cfg.Meta = cfg.Meta.Clone()
	metaBytes, err := encodeMeta(cfg.Meta, false)
	if err != nil {
		return nil, fmt.Errorf("membership: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Membership{
		cfg:       cfg,
		logger:    logger,
		localMeta: cfg.Meta,
		table: table{
			members: make(map[string]*entry),
			subs:    make(map[*Subscription]struct{}),
		},
		done: make(chan struct{}),
	}
	m.metaBytes.Store(&metaBytes)
	m.chanList.Store(&[]*Channel{})
	m.metrics = newMetrics(m.queuedBroadcasts)
	return m, nil
}

// start creates the transport and the memberlist instance.
func (m *Membership) start() (*memberlist.Memberlist, error) {
	cfg := m.cfg
	bindHost, bindPort, err := splitHostPort(cfg.BindAddr, false)
	if err != nil {
		return nil, fmt.Errorf("bind address: %w", err)
	}
	mlLogger := logging.StdLogger(m.logger.With("lib", "memberlist"))
	nt, err := newNetTransport(bindHost, bindPort, mlLogger)
	if err != nil {
		return nil, err
	}
	metered := newMeteredTransport(nt, m.metrics.traffic())
	var transport memberlist.NodeAwareTransport = metered
	if cfg.WrapTransport != nil {
		transport = cfg.WrapTransport(metered)
	}
	port := nt.GetAutoBindPort() // the real port, also when bindPort is 0

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeName
	mc.Transport = transport
	mc.BindAddr, mc.BindPort = bindHost, port
	mc.AdvertiseAddr, mc.AdvertisePort = "", port
	if cfg.AdvertiseAddr != "" {
		host, advPort, err := splitHostPort(cfg.AdvertiseAddr, true)
		if err != nil {
			_ = metered.Shutdown()
			return nil, fmt.Errorf("advertise address: %w", err)
		}
		mc.AdvertiseAddr = host
		if advPort != 0 {
			mc.AdvertisePort = advPort
		}
	}
	t := cfg.Timing
	mc.GossipInterval, mc.GossipNodes = t.GossipInterval, t.GossipNodes
	mc.ProbeInterval, mc.ProbeTimeout = t.ProbeInterval, t.ProbeTimeout
	mc.IndirectChecks = t.IndirectChecks
	mc.SuspicionMult, mc.SuspicionMaxTimeoutMult = t.SuspicionMult, t.SuspicionMaxTimeoutMult
	mc.PushPullInterval = t.PushPullInterval
	mc.TCPTimeout = t.TCPTimeout
	mc.GossipToTheDeadTime = t.GossipToTheDeadTime
	mc.DeadNodeReclaimTime = t.DeadNodeReclaimTime
	mc.RetransmitMult = cfg.RetransmitMult
	if cfg.Keyring != nil {
		// Every packet and stream is encrypted with the primary key and
		// must decrypt with an installed one: a process without the
		// cluster's secret can neither read gossip nor join it.
		mc.Keyring = cfg.Keyring
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	mc.Delegate = delegate{m}
	mc.Events = events{m}
	mc.Logger = mlLogger

	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = metered.Shutdown() // idempotent; Create may or may not have done it
		return nil, fmt.Errorf("start memberlist on %s: %w", cfg.BindAddr, err)
	}
	return ml, nil
}

// newNetTransport listens on host:port, TCP and UDP. With port 0 the
// kernel picks the TCP port and UDP may find it taken, so it retries, as
// memberlist does for its own transport.
func newNetTransport(host string, port int, logger *log.Logger) (*memberlist.NetTransport, error) {
	tries := 1
	if port == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{host},
			BindPort:  port,
			Logger:    logger,
		})
		if err == nil {
			return nt, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("listen on %s port %d: %w", host, port, err)
}

// LocalName returns this node's name.
func (m *Membership) LocalName() string { return m.cfg.NodeName }

// Join contacts each address ("host:port") and exchanges full state with
// it; it blocks up to Timing.TCPTimeout per address. It returns how many
// answered, and an error only if none did.
func (m *Membership) Join(addrs []string) (int, error) {
	if err := m.usable(); err != nil {
		return 0, fmt.Errorf("join: %w", err)
	}
	if len(addrs) == 0 {
		return 0, errors.New("join: no addresses")
	}
	n, err := m.ml.Join(addrs)
	if err != nil {
		return n, fmt.Errorf("join %s: %w", strings.Join(addrs, ","), err)
	}
	return n, nil
}

// RetryJoin calls Join until at least one address answers, like Consul's
// retry-join: after each failure (logged at warn) it waits, with jitter, a
// delay that doubles from RetryJoinMin up to RetryJoinMax. It returns nil
// once joined, ctx's error (wrapped, with the last join error) when ctx is
// done, or ErrShutdown. ctx is checked between attempts; one attempt lasts
// up to Timing.TCPTimeout per address.
func (m *Membership) RetryJoin(ctx context.Context, addrs []string) error {
	if len(addrs) == 0 {
		return errors.New("retry join: no addresses")
	}
	delay := m.cfg.RetryJoinMin
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("retry join: %w", err)
		}
		n, err := m.Join(addrs)
		if err == nil {
			m.logger.Info("joined cluster", "contacted", n, "attempt", attempt)
			return nil
		}
		if errors.Is(err, ErrShutdown) || errors.Is(err, ErrLeft) {
			return fmt.Errorf("retry join: %w", err)
		}
		wait := jitter(delay, m.cfg.RetryJoinMin)
		m.logger.Warn("join failed, retrying", "attempt", attempt, "addrs", addrs, "retry_in", wait, "error", err)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("retry join: %w; last attempt: %w", ctx.Err(), err)
		case <-m.done:
			timer.Stop()
			return fmt.Errorf("retry join: %w", ErrShutdown)
		case <-timer.C:
		}
		delay = min(2*delay, m.cfg.RetryJoinMax)
	}
}

// jitter returns a random duration in [delay/2, delay], at least floor.
func jitter(delay, floor time.Duration) time.Duration {
	half := delay / 2
	return max(half+rand.N(delay-half+1), floor)
}

// UpdateMeta applies update to a copy of the local Meta and advertises the
// result. It blocks until the change has been gossiped (retransmitted to
// the cluster) or Timing.BroadcastTimeout passes; on timeout the change
// stays queued and still propagates, so that is not an error. It fails if
// the new Meta is too large (the old one stays), after Leave or after
// Shutdown. update must not call back into this Membership.
func (m *Membership) UpdateMeta(update func(*Meta)) error {
	if err := m.usable(); err != nil {
		return fmt.Errorf("update meta: %w", err)
	}
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	if m.left {
		return fmt.Errorf("update meta: %w", ErrLeft)
	}
	meta := m.localMeta.Clone()
	update(&meta)
	meta = meta.Clone() // update may have kept a reference
	buf, err := encodeMeta(meta, false)
	if err != nil {
		return fmt.Errorf("update meta: %w", err)
	}
	m.localMeta = meta
	m.metaBytes.Store(&buf)
	if err := m.ml.UpdateNode(m.cfg.Timing.BroadcastTimeout); err != nil {
		m.logger.Debug("meta update not fully gossiped yet", "error", err)
	}
	return nil
}

// Leave announces a graceful departure and blocks until the cluster has
// heard it or timeout passes (timeout <= 0 means Timing.BroadcastTimeout).
// It first gossips a leave intent in the node's meta, so the others record
// StatusLeft rather than StatusDead, then memberlist's leave message. The
// node keeps answering gossip until Shutdown, which should follow. Leave
// is idempotent; after it, Join and UpdateMeta fail with ErrLeft.
func (m *Membership) Leave(timeout time.Duration) error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.closing.Load() {
		return fmt.Errorf("leave: %w", ErrShutdown)
	}
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	if m.left {
		return nil
	}
	if timeout <= 0 {
		timeout = m.cfg.Timing.BroadcastTimeout
	}
	deadline := time.Now().Add(timeout)
	m.leaveStarted.Store(true)
	m.left = true

	buf, err := encodeMeta(m.localMeta, true) // fits: encodeMeta checked it
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	m.metaBytes.Store(&buf)
	if err := m.ml.UpdateNode(timeout / 2); err != nil {
		m.logger.Debug("leave intent not fully gossiped", "error", err)
	}
	if err := m.ml.Leave(max(time.Until(deadline), time.Millisecond)); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	m.logger.Info("left cluster")
	return nil
}

// Shutdown stops memberlist (without a leave message: the others will see
// this node dead unless Leave came first), waits for SendTo calls in
// flight, closes every subscription and unregisters the metrics. After it
// returns, no handler is called. It is idempotent. It waits for a Leave in
// progress, and must not be called from a handler.
func (m *Membership) Shutdown() error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.closing.Swap(true) {
		return nil
	}
	close(m.done)
	m.loops.Wait()
	err := m.ml.Shutdown() // no lock held: its goroutines may be in the delegate

	m.gate.Lock()
	m.stopped = true
	m.gate.Unlock()
	m.sendMu.Lock()
	m.sendsDone = true
	m.sendMu.Unlock()
	m.sends.Wait()

	m.closeTable()
	for _, c := range *m.chanList.Load() {
		c.queue.Reset()
		c.spread.Reset()
	}
	m.metrics.unregister()
	m.logger.Info("membership stopped")
	if err != nil {
		return fmt.Errorf("shutdown memberlist: %w", err)
	}
	return nil
}

// usable reports why the Membership can no longer act, if it cannot.
func (m *Membership) usable() error {
	if m.closing.Load() {
		return ErrShutdown
	}
	if m.leaveStarted.Load() {
		return ErrLeft
	}
	return nil
}

// queuedBroadcasts is the number of queued broadcasts over all channels.
func (m *Membership) queuedBroadcasts() float64 {
	n := 0
	for _, c := range *m.chanList.Load() {
		n += c.queued()
	}
	return float64(n)
}
