package consensus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"shoal/internal/clusterport"
	"shoal/internal/logging"
	"shoal/modules"
)

// Forwarder carries requests to the leader when this node is a follower.
// The agent implements it over the HTTP API.
type Forwarder interface {
	// ForwardApply submits a batch of commands on the leader named
	// leaderID and returns one outcome per command, in order (see
	// Node.ApplyBatch). An error is the outcome of every command: one
	// wrapping ErrLeaderUnreachable means the batch was not delivered.
	ForwardApply(ctx context.Context, leaderID string, cmds [][]byte) ([]Outcome, error)
	// ForwardReadIndex asks the leader for a read index (see LeaderReadIndex).
	ForwardReadIndex(ctx context.Context, leaderID string) (uint64, error)
}

// Member is a gossip member as autopilot and bootstrap-expect see it: the
// agent fills it from what the member announces.
type Member struct {
	Name   string
	Status MemberStatus
	// Since is the local time Status last changed.
	Since time.Time
	// RaftAddr is the member's cluster (Raft) address; empty for a member
	// that runs no Raft.
	RaftAddr string
	// RaftModules are the IDs of the member's modules that keep state in
	// Raft (autopilot adds only members that run the leader's).
	RaftModules []string
	// BootstrapExpect is the member's --bootstrap-expect (0 = none).
	BootstrapExpect int
	// Zone is the member's --zone ("" = none): voters spread over zones.
	Zone string
	// HasRaftState: the member is or was in a cluster.
	HasRaftState bool
}

// MemberStatus is what gossip says of a member.
type MemberStatus int

// The statuses of a Member. A suspect member counts as alive.
const (
	MemberAlive MemberStatus = iota + 1
	MemberDead
	MemberLeft
)

// Cluster is the gossip view autopilot and bootstrap-expect follow.
type Cluster interface {
	// Members lists every known member, dead and left ones included.
	Members() []Member
	// AppliedIndex asks a member how far its FSM has applied.
	AppliedIndex(ctx context.Context, m Member) (uint64, error)
	// Forget drops a member that was removed from Raft after leaving.
	Forget(name string)
	// RaftAddr is the Raft address a member announces in gossip now. Raft
	// dials it rather than the address in its configuration, which may be
	// stale after a restart. It must not block: raft calls it per dial.
	RaftAddr(name string) (string, bool)
}

// Node is one node's Raft server. Its methods are safe for concurrent use.
type Node struct {
	cfg       Config
	raft      *raft.Raft
	fsm       *FSM
	stores    *Stores
	snaps     raft.SnapshotStore
	transport *transport
	stream    *streamLayer
	advertise string
	hadState  bool

	forwarder    Forwarder
	cluster      Cluster
	onLeadership func(isLeader bool)

	leaderReady atomic.Bool // leads, and its term-start marker is applied
	// caughtUp: applied the leader's commit index as of this start
	// (catchup.go); catchUpTarget is that index once learned.
	caughtUp      atomic.Bool
	catchUpKnown  atomic.Bool
	catchUpTarget atomic.Uint64
	// leaderChanged fires when the leader this node knows changes:
	// forwarded batches in flight to the old one are answered at once.
	leaderChanged *leaderSignal
	leaderObs     *raft.Observer
	electionsWon  prometheus.Counter
	forwardQ      chan *forwardRequest
	// noticeWanted says a follower waits to learn of a commit, and
	// noticeWake carries that to the commit-notice loop (commitnotice.go).
	noticeWanted atomic.Bool
	noticeWake   chan struct{}
	stop         chan struct{}
	stopOnce     sync.Once
	wg           sync.WaitGroup
	metrics      *metrics
	autopilot    *autopilot
}

// Deps are the parts of the node consensus calls back into.
type Deps struct {
	// Port is the node's cluster port; Raft is served on it and dials
	// peers through it.
	Port      *clusterport.Port
	Forwarder Forwarder
	Cluster   Cluster
	// OnLeadership is called with true once this node leads and has
	// applied every entry of earlier terms, with false when it stops
	// leading. Calls are sequential and alternate.
	OnLeadership func(isLeader bool)
}

// New opens the Raft stores and transport and creates the Raft server. It
// does not bootstrap: see BootstrapSelf and RunBootstrapExpect.
func New(cfg Config, fsm *FSM, deps Deps) (n *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consensus config: %w", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create raft directory: %w", err)
	}
	n = &Node{cfg: cfg, fsm: fsm, forwarder: deps.Forwarder, cluster: deps.Cluster,
		onLeadership: deps.OnLeadership, stop: make(chan struct{}), noticeWake: make(chan struct{}, 1), forwardQ: make(chan *forwardRequest, maxBatchCommands),
		leaderChanged: newLeaderSignal(),
		electionsWon: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_raft_elections_won_total",
			Help: "Elections this node won.",
		})}
	if n.onLeadership == nil {
		n.onLeadership = func(bool) {}
	}
	hclogger := logging.HCLogger(cfg.Logger)
	closers := []func() error{}
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				_ = closers[i]()
			}
		}
	}()

	n.stores, err = OpenStores(cfg.Dir, StoreOptions{Kind: cfg.LogStore, WALSegmentSize: cfg.WALSegmentSize,
		Logger: cfg.Logger, Registerer: cfg.Registerer})
	if err != nil {
		return nil, fmt.Errorf("open raft log store: %w", err)
	}
	closers = append(closers, n.stores.Close)
	// At most 64 entries and 8 MiB (logCache says why bytes too): the
	// count serves a follower a step behind with small commands, the bytes
	// keep batch publishes (up to 4 MiB each) from filling the heap.
	logs, err := newLogCache(n.stores.Log, 64, 8<<20)
	if err != nil {
		return nil, fmt.Errorf("raft log cache: %w", err)
	}
	files, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hclogger.Named("snapshot"))
	if err != nil {
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	snaps := &distinctSnapshotStore{SnapshotStore: files}

	if deps.Port == nil {
		return nil, errors.New("consensus: a cluster port is required")
	}
	n.advertise, err = advertiseAddr(cfg.AdvertiseAddr, deps.Port.Addr().(*net.TCPAddr))
	if err != nil {
		return nil, err
	}
	raftLn, err := deps.Port.Listen(clusterport.KindRaft)
	if err != nil {
		return nil, fmt.Errorf("serve raft on the cluster port: %w", err)
	}
	closers = append(closers, raftLn.Close)
	var lookup func(string) (string, bool)
	if n.cluster != nil {
		lookup = n.cluster.RaftAddr
	}
	n.stream = &streamLayer{Listener: raftLn, port: deps.Port, advertise: n.advertise, lookup: lookup}
	n.transport = &transport{
		NetworkTransport: raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  n.stream,
			MaxPool: 5,
			Timeout: 10 * time.Second,
			Logger:  hclogger.Named("transport"),
		}),
		lookup: lookup,
	}
	closers = append(closers, n.transport.Close)

	n.snaps = snaps
	n.hadState, err = raft.HasExistingState(logs, n.stores.Stable, snaps)
	if err != nil {
		return nil, fmt.Errorf("check existing raft state: %w", err)
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = &electionLogger{Logger: hclogger, won: n.elected}
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	rc.TrailingLogs = cfg.TrailingLogs
	rc.HeartbeatTimeout = cfg.Timing.HeartbeatTimeout
	rc.ElectionTimeout = cfg.Timing.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.Timing.LeaderLeaseTimeout
	if cfg.Timing.CommitTimeout > 0 {
		rc.CommitTimeout = cfg.Timing.CommitTimeout
	}
	rc.MaxAppendEntries = 512
	rc.BatchApplyCh = true // group commit: many concurrent Applies share one disk write

	if err := n.recoverConfiguration(rc, logs, snaps); err != nil { // recover.go
		return nil, err
	}
	n.raft, err = raft.NewRaft(rc, fsm, logs, n.stores.Stable, snaps, n.transport)
	if err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	n.metrics, err = newMetrics(n, cfg.Registerer)
	if err != nil {
		_ = n.raft.Shutdown().Error()
		return nil, err
	}
	n.autopilot = newAutopilot(n)
	obs := make(chan raft.Observation, 1)
	n.leaderObs = raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.raft.RegisterObserver(n.leaderObs)
	n.wg.Add(6)
	go n.watchLeadership()
	go n.runCommitNotices()
	go n.watchLeaderChanges(obs)
	go n.runForwarder()
	go n.runCatchUp()
	go n.runSnapshotsByBytes(logs)
	return n, nil
}

// advertiseAddr picks the address other servers dial: the configured one
// (with the bound port if it says port 0 or none), else the bound address.
func advertiseAddr(configured string, bound *net.TCPAddr) (string, error) {
	if configured == "" {
		if bound.IP.IsUnspecified() {
			return "", fmt.Errorf("raft is bound to %s: an advertise address is required", bound)
		}
		return bound.String(), nil
	}
	host, port, err := net.SplitHostPort(configured)
	if err != nil {
		return "", fmt.Errorf("raft advertise address %q: %w", configured, err)
	}
	if port == "" || port == "0" {
		port = strconv.Itoa(bound.Port)
	}
	return net.JoinHostPort(host, port), nil
}

// Addr is the Raft address other servers use to reach this node.
func (n *Node) Addr() string { return n.advertise }

// HadState reports whether the node found Raft state on disk when it
// started (it is or was part of a cluster and must never bootstrap).
func (n *Node) HadState() bool { return n.hadState }

// HasState reports whether the node has Raft state now.
func (n *Node) HasState() bool {
	return n.hadState || n.raft.LastIndex() > 0
}

// BootstrapSelf makes this node a one-voter cluster, unless it has state.
func (n *Node) BootstrapSelf() error {
	if n.HasState() {
		return nil
	}
	return n.bootstrap([]raft.Server{{ID: raft.ServerID(n.cfg.NodeID), Address: raft.ServerAddress(n.advertise)}})
}

func (n *Node) bootstrap(servers []raft.Server) error {
	err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap raft: %w", err)
	}
	return nil
}

// IsLeader reports whether this node is the Raft leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// LeaderReady reports whether this node leads and has applied every entry of
// earlier terms, so that it can serve read indexes.
func (n *Node) LeaderReady() bool { return n.leaderReady.Load() && n.IsLeader() }

// Leader returns the current leader's ID and Raft address, empty if none is
// known.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// FSM returns the node's state machine.
func (n *Node) FSM() *FSM { return n.fsm }

// Apply submits cmd (an envelope from EncodeCommand) and returns the
// module's result once the command is committed and applied. A follower
// forwards it to the leader (unless forwarded is set: the command already
// came from another node) and then waits until it has applied the command
// itself. Only ErrNoLeader, ErrLeaderUnreachable and ErrTimeout guarantee
// that the command was not committed.
func (n *Node) Apply(ctx context.Context, cmd []byte, forwarded bool) ([]byte, uint64, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	backoff := 5 * time.Millisecond
	var lastErr error = ErrNoLeader
	for {
		if n.IsLeader() {
			res, idx, err, retry := n.applyLocal(ctx, cmd)
			if !retry {
				n.metrics.observeApply("local", start, err)
				return res, idx, err
			}
			lastErr = err
		} else if forwarded {
			return nil, 0, ErrNotLeader
		} else if leaderID, _ := n.Leader(); leaderID != "" && n.forwarder != nil {
			o := n.forward(ctx, cmd)
			if o.Index > 0 {
				// Committed: make this node's own state include it too,
				// so a read here right after sees the write.
				_ = n.fsm.WaitApplied(ctx.Done(), o.Index)
				n.metrics.observeApply("forwarded", start, o.Err)
				return o.Result, o.Index, o.Err
			}
			if !retryable(o.Err) {
				n.metrics.observeApply("forwarded", start, o.Err)
				return nil, 0, o.Err
			}
			lastErr = o.Err
		}
		select {
		case <-ctx.Done():
			n.metrics.observeApply("none", start, lastErr)
			return nil, 0, lastErr
		case <-n.stop:
			return nil, 0, ErrShutdown
		case <-time.After(backoff):
		}
		if backoff < 200*time.Millisecond {
			backoff *= 2
		}
	}
}

func retryable(err error) bool {
	return errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader) || errors.Is(err, ErrLeaderUnreachable)
}

// applyLocal applies on this node as leader; retry says the command was
// certainly not submitted and leadership moved.
func (n *Node) applyLocal(ctx context.Context, cmd []byte) (res []byte, idx uint64, err error, retry bool) {
	if err := n.fsm.Check(cmd); err != nil {
		return nil, 0, err, false
	}
	timeout := n.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	return n.outcome(n.raft.Apply(cmd, timeout))
}

// outcome waits for an apply future and maps raft's errors to ours; retry
// says the command was certainly not submitted.
func (n *Node) outcome(f raft.ApplyFuture) (res []byte, idx uint64, err error, retry bool) {
	if err := n.await(f); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader):
			return nil, 0, ErrNotLeader, true
		case errors.Is(err, raft.ErrLeadershipTransferInProgress):
			return nil, 0, ErrNotLeader, true // refused before submission
		case errors.Is(err, raft.ErrLeadershipLost):
			return nil, 0, ErrLeadershipLost, false
		case errors.Is(err, raft.ErrRaftShutdown):
			return nil, 0, ErrShutdown, false
		case errors.Is(err, raft.ErrEnqueueTimeout):
			return nil, 0, ErrTimeout, false
		default:
			return nil, 0, fmt.Errorf("raft apply: %w", err), false
		}
	}
	r, ok := f.Response().(*applyResult)
	if !ok {
		return nil, f.Index(), fmt.Errorf("raft apply: unexpected response %T", f.Response()), false
	}
	return r.data, f.Index(), r.err, false
}

// await waits for f, or until the node stops. raft answers every future
// it took, except one still queued in its batching channel when it shuts
// down (hashicorp/raft#498): without the stop, a write racing a stop would
// wait forever. Its waiter goroutine then stays until the process exits.
func (n *Node) await(f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-n.stop:
		return raft.ErrRaftShutdown
	}
}

// LeaderReadIndex returns an index such that every write committed before
// the call is at or below it. Only the leader answers: it records its commit
// index, then confirms with a quorum that it is still the leader (Raft's
// read-index protocol).
func (n *Node) LeaderReadIndex(ctx context.Context) (uint64, error) {
	if !n.IsLeader() {
		return 0, ErrNotLeader
	}
	if !n.leaderReady.Load() {
		return 0, ErrNoLeader.WithMessage("the new leader has not finished taking over; retry shortly")
	}
	idx := n.raft.CommitIndex()
	done := make(chan error, 1)
	go func() { done <- n.raft.VerifyLeader().Error() }()
	select {
	case err := <-done:
		if err != nil {
			return 0, ErrNotLeader
		}
	case <-ctx.Done():
		return 0, ErrTimeout
	}
	// Commit notices at the end of the log change nothing: name the
	// last entry before them, whose commit followers know (a follower
	// would otherwise wait for the notice's own commit, which reaches it
	// only with the next entry or after CommitTimeout). The leader
	// applies what it committed within moments; a halted state machine
	// never will, and then idx stands.
	if n.fsm.Halted() != "" {
		return idx, nil
	}
	if n.fsm.WaitApplied(ctx.Done(), idx) != nil {
		return 0, ErrTimeout
	}
	if e := n.fsm.Effective(); e < idx {
		idx = e
	}
	return idx, nil
}

// FollowerReadIndex is LeaderReadIndex for a follower that asked for it:
// the follower then waits to learn the commit of the index, so the leader
// sends a commit notice without its idle wait (commitnotice.go).
func (n *Node) FollowerReadIndex(ctx context.Context) (uint64, error) {
	idx, err := n.LeaderReadIndex(ctx)
	if err == nil && n.fsm.Effective() == n.raft.LastIndex() {
		// The log ends with a write no notice has followed: the follower
		// may not know it is committed.
		n.followerWaits()
	}
	return idx, err
}

// ReadIndex blocks until this node has applied every write committed before
// the call, asking the leader for the read index if this node is a
// follower. It makes a following local read linearizable.
func (n *Node) ReadIndex(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	backoff := 5 * time.Millisecond
	var lastErr error = ErrNoLeader
	for {
		var idx uint64
		var err error
		if n.IsLeader() {
			idx, err = n.LeaderReadIndex(ctx)
		} else if leaderID, _ := n.Leader(); leaderID != "" && n.forwarder != nil {
			idx, err = n.forwarder.ForwardReadIndex(ctx, leaderID)
		} else {
			err = ErrNoLeader
		}
		if err == nil {
			if werr := n.fsm.WaitApplied(ctx.Done(), idx); werr != nil {
				return ErrTimeout.WithMessage("this node did not catch up with the leader in time")
			}
			return nil
		}
		if !retryable(err) {
			return err
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return lastErr
		case <-n.stop:
			return ErrShutdown
		case <-time.After(backoff):
		}
		if backoff < 200*time.Millisecond {
			backoff *= 2
		}
	}
}

// watchLeadership runs one leadTerm per period of leadership, strictly one
// after the other, so OnLeadership calls alternate.
func (n *Node) watchLeadership() {
	defer n.wg.Done()
	// LeaderCh holds only the latest state; the ticker is a backstop
	// that looks again without a signal, slowly enough that an idle node
	// hardly wakes for it.
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	type term struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	var cur *term
	stopTerm := func() {
		if cur != nil {
			cur.cancel()
			<-cur.done
			cur = nil
		}
	}
	defer stopTerm()
	for {
		select {
		case <-n.stop:
			return
		case <-n.raft.LeaderCh():
		case <-ticker.C:
		}
		leading := n.IsLeader()
		switch {
		case leading && cur == nil:
			ctx, cancel := context.WithCancel(context.Background())
			cur = &term{cancel: cancel, done: make(chan struct{})}
			go func(done chan struct{}) {
				defer close(done)
				n.leadTerm(ctx)
			}(cur.done)
		case !leading && cur != nil:
			stopTerm()
		}
	}
}

// leadTerm is the leader's work for one term: commit the term-start marker,
// tell the modules, then run autopilot until leadership ends.
func (n *Node) leadTerm(ctx context.Context) {
	marker := EncodeCommand(modules.TagNone, opTermStart, nil)
	for {
		err := n.raft.Apply(marker, n.cfg.ApplyTimeout).Error()
		if err == nil {
			break
		}
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrRaftShutdown) {
			return
		}
		n.cfg.Logger.Warn("commit term-start marker", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	n.leaderReady.Store(true)
	n.cfg.Logger.Info("leading", "term", n.raft.CurrentTerm())
	n.onLeadership(true)
	defer func() {
		n.leaderReady.Store(false)
		n.onLeadership(false)
		n.cfg.Logger.Info("no longer leading")
	}()
	n.autopilot.run(ctx)
}

// Configuration returns the current Raft configuration.
func (n *Node) Configuration() (raft.Configuration, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raft.Configuration{}, fmt.Errorf("get raft configuration: %w", err)
	}
	return f.Configuration(), nil
}

// Stats is a point-in-time summary of the node's Raft state.
type Stats struct {
	State        string
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	// EffectiveIndex is the last applied entry that is not a commit
	// notice (commitnotice.go).
	EffectiveIndex uint64
	LastIndex      uint64
	LastContact    time.Time
	// Halted says why the state machine stopped applying ("" if it runs).
	Halted string
}

// Stats returns the node's Raft state.
func (n *Node) Stats() Stats {
	return Stats{
		State:          stateName(n.raft.State()),
		Term:           n.raft.CurrentTerm(),
		CommitIndex:    n.raft.CommitIndex(),
		AppliedIndex:   n.fsm.Applied(),
		EffectiveIndex: n.fsm.Effective(),
		LastIndex:      n.raft.LastIndex(),
		LastContact:    n.raft.LastContact(),
		Halted:         n.fsm.Halted(),
	}
}

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Candidate:
		return "candidate"
	case raft.Follower:
		return "follower"
	default:
		return "shutdown"
	}
}

// RemoveServer removes a server from the configuration; leader only.
func (n *Node) RemoveServer(id string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("remove raft server %s: %w", id, err)
	}
	return nil
}

// TransferLeadership hands leadership to another voter and waits for it.
func (n *Node) TransferLeadership() error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	if err := n.raft.LeadershipTransfer().Error(); err != nil {
		return fmt.Errorf("transfer leadership: %w", err)
	}
	return nil
}

// StepDown hands leadership to another voter if this node leads and there
// is one; it is a no-op otherwise.
func (n *Node) StepDown() error {
	if !n.IsLeader() || n.otherVoters() == 0 {
		return nil
	}
	return n.TransferLeadership()
}

// Shutdown stops Raft cleanly: a leader first hands leadership to another
// voter so the cluster does not wait for an election timeout. It does not
// remove the node from the configuration (a restart must not shrink the
// voter set). The stores are closed afterwards.
func (n *Node) Shutdown() error {
	if err := n.StepDown(); err != nil {
		n.cfg.Logger.Warn("leadership transfer before shutdown failed", "err", err)
	}
	return n.Close()
}

// Close stops Raft at once, without handing leadership over (a crash, as
// far as the other nodes can tell), and closes the stores. Every entry
// acknowledged before was already fsynced.
func (n *Node) Close() error {
	var err error
	n.stopOnce.Do(func() {
		close(n.stop)
		n.wg.Wait()
		n.raft.DeregisterObserver(n.leaderObs)
		n.stream.endHolds()
		shutdownErr := n.raft.Shutdown().Error()
		n.transport.quiesce()
		// Close the pooled connections to the peers too: raft's Close
		// stops only the listener, and each pooled connection keeps a
		// goroutine reading on the peer's side until it closes.
		n.transport.CloseStreams()
		err = errors.Join(
			shutdownErr,
			n.transport.Close(),
			n.stores.Close(),
		)
		n.metrics.unregister()
	})
	return err
}

func (n *Node) otherVoters() int {
	cfg, err := n.Configuration()
	if err != nil {
		return 0
	}
	count := 0
	for _, s := range cfg.Servers {
		if s.Suffrage == raft.Voter && string(s.ID) != n.cfg.NodeID {
			count++
		}
	}
	return count
}
