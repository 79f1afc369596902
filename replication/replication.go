package replication

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"

	"shoal/modules"
)

func init() {
	modules.Register(modules.Info{
		ID:  "replication",
		New: func() modules.Module { return new(Replication) },
		NewConfig: func() modules.Config {
			c := DefaultConfig()
			return &c
		},
	})
}

// Replication is the replication module. Its zero value is ready for
// Provision.
//
// Concurrency: the Raft state (st) is changed only by the FSM goroutine
// under stMu; every change closes stCh, which the follow loop, the lead
// loop, the Raft leader's duty and waiting writes select on. The
// replicated directory is written by one role at a time: the follower
// session or the leadership holds disk (a one-slot semaphore) for as long
// as it runs.
type Replication struct {
	host   modules.Host
	cfg    Config
	logger *slog.Logger
	m      *metrics
	store  *store // set by Start

	once sync.Once

	stMu sync.Mutex
	st   syncState
	stCh chan struct{} // closed and replaced on every change of st or of this node's Raft leadership

	disk chan struct{} // one slot: held by the follower session or the leadership

	life       sync.Mutex
	ctx        context.Context
	cancel     context.CancelFunc
	started    bool
	stopped    bool
	wg         sync.WaitGroup
	dutyCancel context.CancelFunc // ends the Raft leader's duty
	dutyDone   chan struct{}

	raftLeader atomic.Bool
	notInSync  atomic.Bool                // this node leads Raft and no in-sync member is alive to lead replication
	current    atomic.Pointer[leadership] // the serving leadership, nil when not leading
	follower   atomic.Pointer[followerStatus]
	hooks      chan hookRun // to the hook runner, in order

	// Counters read by tests and the status (the metrics count the same).
	catchupSent     atomic.Int64 // file bytes this node sent to catching-up followers
	catchupReceived atomic.Int64 // file bytes this node received while catching up
	catchupFiles    atomic.Int64 // files this node received while catching up
	mismatches      atomic.Int64 // checksum or offset mismatches seen
	refused         atomic.Int64 // streams refused (bad header, not leader)
	dropped         atomic.Int64 // follower streams ended to make them resync (queue overflow, large outside change)
	watched         atomic.Int64 // outside changes of the watched directory streamed
	watchedAppends  atomic.Int64 // of which appends
}

func (m *Replication) init() {
	m.once.Do(func() {
		m.stCh = make(chan struct{})
		m.disk = make(chan struct{}, 1)
		m.ctx, m.cancel = context.WithCancel(context.Background())
		if m.logger == nil {
			m.logger = slog.New(slog.DiscardHandler)
		}
		m.follower.Store(&followerStatus{State: stateDisconnected})
		m.hooks = make(chan hookRun, maxQueuedHooks)
	})
}

// ID returns "replication".
func (m *Replication) ID() string { return "replication" }

// Provision reads the configuration and registers the metrics.
func (m *Replication) Provision(host modules.Host) error {
	m.host = host
	m.logger = host.Logger()
	cfg, err := modules.ConfigAs(host.Config(), DefaultConfig(), ErrInvalidConfig)
	if err != nil {
		return fmt.Errorf("replication module: %w", err)
	}
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(host.DataDir(), "files")
	}
	m.cfg = cfg
	mt, err := newMetrics(host.Registerer())
	if err != nil {
		return fmt.Errorf("replication module: %w", err)
	}
	m.m = mt
	m.init()
	return nil
}

// Start opens the replicated directory and starts the follow loop, which
// follows whichever node Raft records as replication leader.
func (m *Replication) Start(ctx context.Context) error {
	m.init()
	st, err := openStore(m.cfg.Dir, m.cfg.Fsync)
	if err != nil {
		return fmt.Errorf("replication module: %w", err)
	}
	if err := st.loadCache(m.host.DataDir()); err != nil {
		_ = st.close()
		return fmt.Errorf("replication module: %w", err)
	}
	m.life.Lock()
	defer m.life.Unlock()
	if m.stopped {
		_ = st.close()
		return fmt.Errorf("replication module: %w", ErrShuttingDown)
	}
	m.store = st
	m.started = true
	m.wg.Add(3)
	go func() {
		defer m.wg.Done()
		m.followLoop(m.ctx)
	}()
	go func() {
		defer m.wg.Done()
		m.leadLoop(m.ctx)
	}()
	go func() {
		defer m.wg.Done()
		m.runHooks(m.ctx)
	}()
	if m.raftLeader.Load() {
		m.startRaftDuty()
	}
	return nil
}

// Stop ends the follower session and the leadership, closing every
// stream, and waits for them.
func (m *Replication) Stop(ctx context.Context) error {
	m.init()
	m.life.Lock()
	m.stopped = true
	m.cancel()
	if m.dutyCancel != nil {
		m.dutyCancel()
		m.dutyCancel = nil
	}
	m.life.Unlock()
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("stop replication module: %w", ctx.Err())
	}
	if m.store == nil {
		return nil
	}
	if err := m.store.saveCache(m.host.DataDir()); err != nil {
		m.logger.Warn("the hash cache was not saved: the next start hashes the directory again", "err", err)
	}
	return m.store.close()
}

// track counts a request Stop must wait for; false once Stop has begun.
func (m *Replication) track() bool {
	m.init()
	m.life.Lock()
	defer m.life.Unlock()
	if m.stopped || !m.started {
		return false
	}
	m.wg.Add(1)
	return true
}

func (m *Replication) untrack() { m.wg.Done() }

// stateChanged wakes everyone waiting on the state.
func (m *Replication) stateChanged() {
	m.stMu.Lock()
	close(m.stCh)
	m.stCh = make(chan struct{})
	m.stMu.Unlock()
}

// stateAndChan returns the state and the channel closed at its next change.
func (m *Replication) stateAndChan() (syncState, <-chan struct{}) {
	m.stMu.Lock()
	defer m.stMu.Unlock()
	return m.st.clone(), m.stCh
}

var (
	_ modules.Module            = (*Replication)(nil)
	_ modules.Router            = (*Replication)(nil)
	_ modules.RaftHandler       = (*Replication)(nil)
	_ modules.LeaderObserver    = (*Replication)(nil)
	_ modules.StatusReporter    = (*Replication)(nil)
	_ modules.PeerHandler       = (*Replication)(nil)
	_ modules.PeerStreamHandler = (*Replication)(nil)
)
