package consensus

import (
	"container/heap"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"shoal/modules"
)

// FSM is the one Raft state machine of a node. It dispatches each committed
// command to the module that owns its tag and keeps the index of the last
// log entry it has applied.
//
// Raft calls Apply, Snapshot, Restore and StoreConfiguration from one
// goroutine; Applied and WaitApplied may be called from any goroutine.
type FSM struct {
	handlers map[modules.Tag]modules.RaftHandler
	ops      map[modules.Tag]map[byte]bool // what each module declares
	tags     []modules.Tag                 // sorted: snapshot sections are written in this order
	logger   *slog.Logger

	applied atomic.Uint64
	// effective is the index of the last applied entry a read can tell
	// apart from the one before: every entry but a commit notice, which
	// changes nothing (commitnotice.go). effectiveMoved is signalled,
	// without blocking, when it moves.
	effective      atomic.Uint64
	effectiveMoved chan struct{}
	// effectiveAt is when the last effective entry was applied (Unix
	// nanoseconds), and gaps the time between the last few: the commit
	// notice loop expects the next write within them (RecentGap).
	effectiveAt atomic.Int64
	gaps        [4]atomic.Int64
	gapNext     atomic.Uint32
	mu          sync.Mutex
	// waiters wait for the applied index to reach theirs, in a min-heap by
	// index: an apply wakes only those it satisfies, not every waiter (a
	// busy follower has as many waiters as writes in flight).
	waiters waitHeap

	// halted, once set, says why this node stopped applying (see halt).
	halted atomic.Pointer[string]

	unknownCommands prometheus.Counter
	localFailures   prometheus.Counter
}

// applyResult is what FSM.Apply returns through raft's ApplyFuture.
type applyResult struct {
	data []byte
	err  error
}

// NewFSM returns an FSM dispatching to handlers, which must have distinct
// tags other than modules.TagNone.
func NewFSM(handlers []modules.RaftHandler, logger *slog.Logger, reg prometheus.Registerer) (*FSM, error) {
	f := &FSM{
		handlers:       make(map[modules.Tag]modules.RaftHandler, len(handlers)),
		effectiveMoved: make(chan struct{}, 1),
		ops:            make(map[modules.Tag]map[byte]bool, len(handlers)),
		logger:         logger,
		unknownCommands: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_consensus_unknown_commands_total",
			Help: "Committed commands whose tag no enabled module owns (a node runs different modules than its peers).",
		}),
		localFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_consensus_local_apply_failures_total",
			Help: "Committed commands this node failed to apply (a disk write failed); the state machine then stops until a restart.",
		}),
	}
	for _, h := range handlers {
		tag := h.Tag()
		if tag == modules.TagNone {
			return nil, fmt.Errorf("raft handler %T uses the reserved tag 0", h)
		}
		if _, dup := f.handlers[tag]; dup {
			return nil, fmt.Errorf("two raft handlers use tag %d", tag)
		}
		f.handlers[tag] = h
		f.tags = append(f.tags, tag)
		f.ops[tag] = map[byte]bool{}
		for _, op := range h.Ops() {
			f.ops[tag][op] = true
		}
	}
	sort.Slice(f.tags, func(i, j int) bool { return f.tags[i] < f.tags[j] })
	if reg != nil {
		for _, c := range []prometheus.Collector{f.unknownCommands, f.localFailures} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register fsm metrics: %w", err)
			}
		}
	}
	return f, nil
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) interface{} {
	if why := f.halted.Load(); why != nil {
		return &applyResult{err: ErrHalted.WithMessage("this node stopped applying commands: %s", *why)}
	}
	tag, op, payload, err := DecodeCommand(l.Data)
	if err != nil {
		return f.halt(fmt.Sprintf("the command at index %d cannot be decoded (%s)", l.Index, err.Error()))
	}
	if tag == modules.TagNone {
		// Core markers only move the applied index; a commit notice is
		// the one entry that does not count as a change.
		f.setApplied(l.Index, op != opCommitNotice)
		return &applyResult{}
	}
	h, ok := f.handlers[tag]
	if !ok {
		f.unknownCommands.Inc()
		return f.halt(fmt.Sprintf("the command at index %d belongs to the module with tag %d, which this node does not run", l.Index, tag))
	}
	data, err := h.ApplyCommand(modules.Command{Index: l.Index, Term: l.Term, Time: l.AppendedAt, Op: op, Payload: payload})
	if errors.Is(err, modules.ErrNodeFailure) {
		// Not an outcome of the command: this node's copy of the state is
		// now unknown, so it must not claim to have applied it.
		f.localFailures.Inc()
		return f.haltWith(fmt.Sprintf("the command at index %d failed on this node (%s)", l.Index, err.Error()),
			"free the disk or fix the fault, then restart the node: it recovers its files and replays the log")
	}
	f.setApplied(l.Index, true)
	return &applyResult{data: data, err: err}
}

// halt stops this node's state machine for good. Applying any later
// command would diverge from the nodes that run the module this one does
// not (as Consul's FSM refuses unknown message types): the modules keep
// the state they had, the applied index stops moving, so the node reports
// not ready with the reason and serves no write as done, and snapshots
// are refused (they would claim entries the modules never saw). Raft
// itself keeps running: the cluster goes on without this node's state
// machine until an operator fixes --modules and restarts it.
func (f *FSM) halt(reason string) *applyResult {
	return f.haltWith(reason, "every server must run the same raft modules (--modules): fix this node's and restart it")
}

// haltWith is halt with what the operator should do.
func (f *FSM) haltWith(reason, fix string) *applyResult {
	if f.halted.CompareAndSwap(nil, &reason) {
		f.logger.Error("the raft state machine stopped: "+reason+"; "+fix, "applied", f.applied.Load())
	}
	return &applyResult{err: ErrHalted.WithMessage("this node stopped applying commands: %s", reason)}
}

// Halted returns why the state machine stopped applying, "" if it did not.
func (f *FSM) Halted() string {
	if why := f.halted.Load(); why != nil {
		return *why
	}
	return ""
}

// Check reports whether cmd is a command this node's modules declare: a
// well-formed envelope whose tag is a Raft module's and whose op that
// module lists (modules.RaftHandler.Ops). The leader checks every command
// before it reaches the log, so the log never holds a command no module
// declared. Check is safe for concurrent use.
func (f *FSM) Check(cmd []byte) error {
	tag, op, _, err := DecodeCommand(cmd)
	if err != nil {
		return ErrUndeclaredCommand.WithMessage("the command is not a well-formed envelope: %s", err.Error())
	}
	ops, ok := f.ops[tag]
	if !ok {
		return ErrUndeclaredCommand.WithMessage("no raft module on the leader has tag %d", tag)
	}
	if !ops[op] {
		return ErrUndeclaredCommand.WithMessage("the module with tag %d declares no operation %d", tag, op)
	}
	return nil
}

// StoreConfiguration implements raft.ConfigurationStore, so that membership
// changes move the applied index too.
func (f *FSM) StoreConfiguration(index uint64, _ raft.Configuration) {
	f.setApplied(index, true)
}

// setApplied records that the entry at index is applied; effective says
// whether it is a change a read can observe (see FSM.effective).
func (f *FSM) setApplied(index uint64, effective bool) {
	if index <= f.applied.Load() || f.halted.Load() != nil {
		return // a halted state machine does not move, not even for configurations
	}
	if effective {
		f.effective.Store(index)
		now := time.Now().UnixNano()
		if last := f.effectiveAt.Swap(now); last != 0 {
			f.gaps[f.gapNext.Add(1)%uint32(len(f.gaps))].Store(now - last)
		}
	}
	f.applied.Store(index)
	f.wake(index)
	if effective {
		signal(f.effectiveMoved)
	}
}

// RecentGap is the longest time between consecutive effective entries
// among the last few applied: how soon the next write can be expected
// while writes keep coming.
func (f *FSM) RecentGap() time.Duration {
	var longest int64
	for i := range f.gaps {
		longest = max(longest, f.gaps[i].Load())
	}
	return time.Duration(longest)
}

// signal puts the one token in ch, or leaves the one there: a wake-up
// that never blocks its sender.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// wake releases the waiters whose index is at or below index.
func (f *FSM) wake(index uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.waiters) > 0 && f.waiters[0].index <= index {
		close(heap.Pop(&f.waiters).(*waiter).ch)
	}
}

// Applied returns the index of the last entry the FSM has applied.
func (f *FSM) Applied() uint64 { return f.applied.Load() }

// Effective returns the index of the last applied entry that is not a
// commit notice: the state at Applied is the state at Effective.
func (f *FSM) Effective() uint64 { return f.effective.Load() }

// WaitApplied blocks until the FSM has applied index, or done is closed.
func (f *FSM) WaitApplied(done <-chan struct{}, index uint64) error {
	if f.applied.Load() >= index {
		return nil
	}
	w := &waiter{index: index, ch: make(chan struct{})}
	f.mu.Lock()
	if f.applied.Load() >= index { // applied moved before we queued
		f.mu.Unlock()
		return nil
	}
	heap.Push(&f.waiters, w)
	f.mu.Unlock()
	select {
	case <-w.ch:
		return nil
	case <-done:
		f.mu.Lock()
		if w.pos >= 0 {
			heap.Remove(&f.waiters, w.pos)
		}
		f.mu.Unlock()
		return errors.New("stopped waiting for the local apply")
	}
}

// waiter is one WaitApplied call; pos is its place in the heap, -1 once
// it left it.
type waiter struct {
	index uint64
	ch    chan struct{}
	pos   int
}

// waitHeap is a min-heap of waiters by index (container/heap).
type waitHeap []*waiter

func (h waitHeap) Len() int           { return len(h) }
func (h waitHeap) Less(i, j int) bool { return h[i].index < h[j].index }
func (h waitHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos, h[j].pos = i, j
}
func (h *waitHeap) Push(x any) {
	w := x.(*waiter)
	w.pos = len(*h)
	*h = append(*h, w)
}
func (h *waitHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	w.pos = -1
	return w
}

// Snapshot implements raft.FSM: it asks every module for its snapshot.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	if why := f.Halted(); why != "" {
		return nil, fmt.Errorf("no snapshot: the state machine stopped (%s)", why)
	}
	snap := &fsmSnapshot{applied: f.applied.Load()}
	for _, tag := range f.tags {
		var s modules.Snapshot
		var err error
		if ix, ok := f.handlers[tag].(modules.IndexedSnapshotter); ok {
			s, err = ix.SnapshotAt(snap.applied)
		} else {
			s, err = f.handlers[tag].Snapshot()
		}
		if err != nil {
			snap.Release()
			return nil, fmt.Errorf("snapshot of module with tag %d: %w", tag, err)
		}
		snap.parts = append(snap.parts, snapshotPart{tag: tag, snap: s})
	}
	return snap, nil
}

// Restore implements raft.FSM: it hands each module its section of the
// snapshot, and an empty one to modules the snapshot has no section for.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	applied, err := readSnapshot(rc, f.handlers)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.setAppliedOnRestore(applied)
	return nil
}

// setAppliedOnRestore sets applied to the snapshot's index even if it is
// lower than the current value: a restore replaces all state.
func (f *FSM) setAppliedOnRestore(index uint64) {
	f.effective.Store(index)
	f.applied.Store(index)
	f.wake(index)
}

var (
	_ raft.FSM                = (*FSM)(nil)
	_ raft.ConfigurationStore = (*FSM)(nil)
)
