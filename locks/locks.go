package locks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"shoal/modules"
)

func init() {
	modules.Register(modules.Info{
		ID:  "locks",
		New: func() modules.Module { return new(Locks) },
		NewConfig: func() modules.Config {
			c := DefaultConfig()
			return &c
		},
	})
}

// Locks is the locks module. Its zero value is ready for Provision.
//
// ApplyCommand, Snapshot and Restore run on the FSM goroutine and hold mu
// for writing only while they change the state; HTTP handlers and the
// leader's expiry loop hold it for reading. Outcomes for waiting requests
// and audit events are delivered after mu is released, and never block.
type Locks struct {
	host   modules.Host
	cfg    Config
	logger *slog.Logger
	m      *metrics

	once sync.Once // initialises what the zero value lacks

	mu sync.RWMutex
	st *state // replaced whole by Restore

	// watchers are the blocking acquires of this node waiting for their
	// outcome, by request nonce.
	watchMu  sync.Mutex
	watchers map[uint64]*watch

	// changed has room for one signal: the state changed, so the leader's
	// expiry loop looks for the next deadline again.
	changed chan struct{}

	life    sync.Mutex
	ctx     context.Context // cancelled by Stop
	cancel  context.CancelFunc
	stopped bool
	stopCh  chan struct{} // closed by Stop
	wg      sync.WaitGroup
	expiry  modules.LeaderLoop // the expiry loop, while this node leads
	leading atomic.Bool
	waiting atomic.Int64 // requests of this node blocked in a queue
}

// watch is one waiting request's mailbox.
type watch struct {
	ready chan struct{} // has room for one signal
	out   outcome       // guarded by Locks.watchMu
}

func (l *Locks) init() {
	l.once.Do(func() {
		l.st = newState()
		l.watchers = map[uint64]*watch{}
		l.changed = make(chan struct{}, 1)
		l.stopCh = make(chan struct{})
		l.ctx, l.cancel = context.WithCancel(context.Background())
		if l.logger == nil {
			l.logger = slog.New(slog.DiscardHandler)
		}
	})
}

// ID returns "locks".
func (l *Locks) ID() string { return "locks" }

// Provision reads the configuration and registers the metrics. It starts
// nothing.
func (l *Locks) Provision(host modules.Host) error {
	l.host = host
	l.logger = host.Logger()
	cfg, err := modules.ConfigAs(host.Config(), DefaultConfig(), ErrInvalidConfig)
	if err != nil {
		return fmt.Errorf("locks module: %w", err)
	}
	l.cfg = cfg
	m, err := newMetrics(host.Registerer())
	if err != nil {
		return fmt.Errorf("locks module: %w", err)
	}
	l.m = m
	l.init()
	return nil
}

// Start does nothing of its own: the expiry loop runs only while this node
// leads (LeadershipChanged), and requests start their own work.
func (l *Locks) Start(ctx context.Context) error {
	l.init()
	return nil
}

// Stop ends the expiry loop, makes every waiting request give up (each
// commits a cancel, so no slot stays held for it) and waits, bounded by
// ctx, until all of them and every background cancel have returned.
// Requests arriving afterwards are refused with 503.
func (l *Locks) Stop(ctx context.Context) error {
	l.init()
	l.life.Lock()
	if !l.stopped {
		l.stopped = true
		close(l.stopCh)
		l.cancel()
		l.expiry.Stop()
	}
	l.life.Unlock()
	done := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop locks module: %w", ctx.Err())
	}
}

// track counts one request or goroutine that Stop must wait for; it
// returns false once Stop has begun.
func (l *Locks) track() bool {
	l.init()
	l.life.Lock()
	defer l.life.Unlock()
	if l.stopped {
		return false
	}
	l.wg.Add(1)
	return true
}

func (l *Locks) untrack() { l.wg.Done() }

// Tag returns modules.TagLocks.
func (l *Locks) Tag() modules.Tag { return modules.TagLocks }

// ApplyCommand applies one committed command. It is called from the FSM
// goroutine only and never blocks: it holds the state's write lock for one
// command, then hands outcomes to waiting requests without waiting for
// them. A malformed command or an unknown op is an error and changes
// nothing; so is a refused one (semaphore full, not a holder), whose error
// is the *httpjson.Error the client gets.
// Ops implements modules.RaftHandler.
func (l *Locks) Ops() []byte {
	return []byte{opCreate, opDelete, opAcquire, opRelease, opRenew, opCancel, opExpire, opRearm, opCapped}
}

func (l *Locks) ApplyCommand(cmd modules.Command) ([]byte, error) {
	l.init()
	apply, err := decodeCommand(cmd.Op, cmd.Payload)
	if err != nil {
		return nil, fmt.Errorf("apply locks command at raft index %d: %w", cmd.Index, err)
	}
	fx := &effects{index: cmd.Index, audit: l.cfg.audit != nil}
	l.mu.Lock()
	res, err := apply(l.st, unixNano(cmd.Time), fx)
	counts := l.st.counts()
	l.mu.Unlock()
	l.after(fx, counts)
	return res, err
}

// applyFunc applies one decoded command to the state at command time now.
type applyFunc func(st *state, now int64, fx *effects) ([]byte, error)

// decodeCommand decodes a command into the function that applies it.
func decodeCommand(op byte, payload []byte) (applyFunc, error) {
	return decodeUnder(op, payload, caps{})
}

// decodeUnder is decodeCommand for a command under lim, the caps of an
// opCapped (none for a bare command). The caps are checked with the
// command decoded once, before it changes anything.
func decodeUnder(op byte, payload []byte, lim caps) (applyFunc, error) {
	switch op {
	case opCreate:
		c, err := decodeCreate(payload)
		return func(st *state, now int64, fx *effects) ([]byte, error) {
			if err := lim.admit(st, kindSemaphore, c.name, true); err != nil {
				return nil, err
			}
			r, err := st.create(c, now, fx)
			if err != nil {
				return nil, err
			}
			return []byte{byte(r)}, nil
		}, err
	case opDelete:
		c, err := decodeDelete(payload)
		return func(st *state, now int64, fx *effects) ([]byte, error) {
			r, err := st.remove(c, fx)
			if err != nil {
				return nil, err
			}
			return encodeDeleteResult(r), nil
		}, err
	case opAcquire:
		c, err := decodeAcquire(payload)
		return func(st *state, now int64, fx *effects) ([]byte, error) {
			// A semaphore acquire creates only with a create_limit.
			if err := lim.admit(st, c.kind, c.name, c.kind == kindLock || c.createLimit > 0); err != nil {
				return nil, err
			}
			r, err := st.acquire(c, now, fx)
			if err != nil {
				return nil, err
			}
			return encodeAcquireResult(r), nil
		}, err
	case opRelease:
		c, err := decodeRelease(payload)
		return func(st *state, now int64, fx *effects) ([]byte, error) {
			r, err := st.release(c, now, fx)
			if err != nil {
				return nil, err
			}
			return []byte{byte(r)}, nil
		}, err
	case opRenew:
		c, err := decodeRenew(payload)
		return func(st *state, now int64, fx *effects) ([]byte, error) {
			r, err := st.renew(c, now)
			if err != nil {
				return nil, err
			}
			return encodeAcquireResult(r), nil
		}, err
	case opCancel:
		c, err := decodeCancel(payload)
		return func(st *state, now int64, fx *effects) ([]byte, error) {
			return []byte{byte(st.cancel(c, now, fx))}, nil
		}, err
	case opExpire:
		c, err := decodeExpire(payload)
		return func(st *state, now int64, fx *effects) ([]byte, error) {
			return encodeExpireResult(st.expire(c, now, fx)), nil
		}, err
	case opRearm:
		err := decodeRearm(payload)
		return func(st *state, now int64, fx *effects) ([]byte, error) {
			st.rearm(now)
			return nil, nil
		}, err
	case opCapped:
		c, inner, payload, err := decodeCapped(payload)
		if err != nil {
			return nil, err
		}
		return decodeUnder(inner, payload, c) // inner is opCreate or opAcquire
	default:
		return nil, fmt.Errorf("op %d: %w", op, ErrUnknownOp)
	}
}

// capped returns the command to submit for an opCreate or opAcquire
// payload: wrapped with the caps, or as it is without any (which a node of
// the release before opCapped still applies).
func (l *Locks) capped(op byte, payload []byte) (byte, []byte) {
	c := caps{semaphores: uint64(l.cfg.MaxSemaphores), locks: uint64(l.cfg.MaxLocks)}
	if c == (caps{}) {
		return op, payload
	}
	return opCapped, encodeCapped(c, op, payload)
}

// countCap counts a submission the caps refused.
func (l *Locks) countCap(err error) {
	switch {
	case errors.Is(err, ErrTooManySemaphores):
		l.m.capRefusals.WithLabelValues(kindSemaphore.String()).Inc()
	case errors.Is(err, ErrTooManyLocks):
		l.m.capRefusals.WithLabelValues(kindLock.String()).Inc()
	}
}

// admit refuses, with nothing changed, a command that would create
// (create) the semaphore or lock name of kind k while the state holds as
// many as its cap (0: no cap).
func (c caps) admit(st *state, k kind, name string, create bool) error {
	max, tooMany := c.semaphores, ErrTooManySemaphores
	if k == kindLock {
		max, tooMany = c.locks, ErrTooManyLocks
	}
	tbl := st.table(k)
	if !create || max == 0 || tbl[name] != nil || uint64(len(tbl)) < max {
		return nil
	}
	return tooMany.WithMessage("the cluster holds %d %ss, its limit: release or delete some first", len(tbl), k).WithDetail("limit", max)
}

// stateCounts are the sizes of the state, for the gauges.
type stateCounts struct {
	semaphores, locks, holders, waiters int
}

func (st *state) counts() stateCounts {
	return stateCounts{semaphores: len(st.sems), locks: len(st.locks), holders: st.holders, waiters: st.waiters}
}

// after delivers what applying a command did beyond the state: outcomes
// to waiting requests, audit events, metrics, and a wake-up of the expiry
// loop. It never blocks.
func (l *Locks) after(fx *effects, c stateCounts) {
	if len(fx.notes) > 0 {
		l.watchMu.Lock()
		for _, n := range fx.notes {
			l.post(n.nonce, n.out)
		}
		l.watchMu.Unlock()
	}
	if l.cfg.audit != nil {
		for _, e := range fx.events {
			l.cfg.audit(e)
		}
	}
	if l.m != nil {
		l.setGauges(c)
		l.m.expiredHolders.Add(float64(fx.expiredHolders))
		l.m.expiredWaiters.Add(float64(fx.expiredWaiters))
	}
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *Locks) setGauges(c stateCounts) {
	if l.m == nil {
		return
	}
	l.m.semaphores.Set(float64(c.semaphores))
	l.m.locks.Set(float64(c.locks))
	l.m.holders.Set(float64(c.holders))
	l.m.waiters.Set(float64(c.waiters))
}

// post hands o to the request waiting with nonce, if it is on this node.
// A recheck never overwrites a real outcome not yet taken. The caller
// holds watchMu.
func (l *Locks) post(nonce uint64, o outcome) {
	w := l.watchers[nonce]
	if w == nil {
		return
	}
	if o.kind == outRecheck && w.out.kind != 0 && w.out.kind != outRecheck {
		return
	}
	w.out = o
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

// watch registers a mailbox for the request with nonce; it must be
// registered before the acquire is submitted, so no outcome is missed.
func (l *Locks) watch(nonce uint64) *watch {
	w := &watch{ready: make(chan struct{}, 1)}
	l.watchMu.Lock()
	l.watchers[nonce] = w
	l.watchMu.Unlock()
	return w
}

func (l *Locks) unwatch(nonce uint64) {
	l.watchMu.Lock()
	delete(l.watchers, nonce)
	l.watchMu.Unlock()
}

// take returns and clears the outcome in w.
func (l *Locks) take(w *watch) outcome {
	l.watchMu.Lock()
	defer l.watchMu.Unlock()
	o := w.out
	w.out = outcome{}
	return o
}

// Snapshot encodes the state. It runs on the FSM goroutine and is
// O(holders + waiters).
func (l *Locks) Snapshot() (modules.Snapshot, error) {
	l.init()
	l.mu.RLock()
	defer l.mu.RUnlock()
	return snapshot{b: l.st.encode()}, nil
}

// Restore replaces the whole state with a snapshot Persist wrote; an empty
// reader is the empty state. On error the state is unchanged. Waiting
// requests look their outcome up again in the new state.
func (l *Locks) Restore(r io.Reader) error {
	l.init()
	st, err := readSnapshot(r)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.st = st
	c := st.counts()
	l.mu.Unlock()
	l.watchMu.Lock()
	for nonce := range l.watchers {
		l.post(nonce, outcome{kind: outRecheck})
	}
	l.watchMu.Unlock()
	l.after(&effects{}, c)
	return nil
}

// Status is the module's section of GET /v1/status.
type Status struct {
	Semaphores int `json:"semaphores"`
	Locks      int `json:"locks"`
	Holders    int `json:"holders"`
	Waiters    int `json:"waiters"`
	// Expiring reports that this node leads and runs the expiry timers.
	Expiring bool `json:"expiring"`
	// WaitingRequests counts the blocking acquires this node serves.
	WaitingRequests int64 `json:"waiting_requests"`
}

// Status returns the sizes of this node's state and what it is doing.
func (l *Locks) Status() any {
	l.init()
	l.mu.RLock()
	c := l.st.counts()
	l.mu.RUnlock()
	return Status{
		Semaphores: c.semaphores, Locks: c.locks, Holders: c.holders, Waiters: c.waiters,
		Expiring: l.leading.Load(), WaitingRequests: l.waiting.Load(),
	}
}

var (
	_ modules.Module         = (*Locks)(nil)
	_ modules.Router         = (*Locks)(nil)
	_ modules.RaftHandler    = (*Locks)(nil)
	_ modules.LeaderObserver = (*Locks)(nil)
	_ modules.StatusReporter = (*Locks)(nil)
)
