package consensus

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"

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
	mu      sync.Mutex
	advance chan struct{} // closed and replaced whenever applied moves

	unknownCommands prometheus.Counter
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
		handlers: make(map[modules.Tag]modules.RaftHandler, len(handlers)),
		ops:      make(map[modules.Tag]map[byte]bool, len(handlers)),
		logger:   logger,
		advance:  make(chan struct{}),
		unknownCommands: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_consensus_unknown_commands_total",
			Help: "Committed commands whose tag no enabled module owns (a node runs different modules than its peers).",
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
		if err := reg.Register(f.unknownCommands); err != nil {
			return nil, fmt.Errorf("register fsm metrics: %w", err)
		}
	}
	return f, nil
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) interface{} {
	defer f.setApplied(l.Index)
	tag, op, payload, err := DecodeCommand(l.Data)
	if err != nil {
		f.logger.Error("undecodable raft command", "index", l.Index, "err", err)
		return &applyResult{err: fmt.Errorf("%w: %w", ErrUnknownCommand, err)}
	}
	if tag == modules.TagNone {
		return &applyResult{} // core markers (term start) only move the applied index
	}
	h, ok := f.handlers[tag]
	if !ok {
		f.unknownCommands.Inc()
		f.logger.Error("raft command for a module this node does not run; every node must run the same raft modules",
			"index", l.Index, "tag", tag, "op", op)
		return &applyResult{err: ErrUnknownCommand.WithMessage("command at index %d has tag %d, which no module on this node owns", l.Index, tag)}
	}
	data, err := h.ApplyCommand(modules.Command{Index: l.Index, Time: l.AppendedAt, Op: op, Payload: payload})
	return &applyResult{data: data, err: err}
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
	f.setApplied(index)
}

func (f *FSM) setApplied(index uint64) {
	if index <= f.applied.Load() {
		return
	}
	f.applied.Store(index)
	f.mu.Lock()
	close(f.advance)
	f.advance = make(chan struct{})
	f.mu.Unlock()
}

// Applied returns the index of the last entry the FSM has applied.
func (f *FSM) Applied() uint64 { return f.applied.Load() }

// WaitApplied blocks until the FSM has applied index, or ctx is done.
func (f *FSM) WaitApplied(done <-chan struct{}, index uint64) error {
	for {
		f.mu.Lock()
		ch := f.advance
		f.mu.Unlock()
		if f.applied.Load() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-done:
			return errors.New("stopped waiting for the local apply")
		}
	}
}

// Snapshot implements raft.FSM: it asks every module for its snapshot.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	snap := &fsmSnapshot{applied: f.applied.Load()}
	for _, tag := range f.tags {
		s, err := f.handlers[tag].Snapshot()
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
	applied, err := readSnapshot(rc, f.handlers, f.logger)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.setAppliedOnRestore(applied)
	return nil
}

// setAppliedOnRestore sets applied to the snapshot's index even if it is
// lower than the current value: a restore replaces all state.
func (f *FSM) setAppliedOnRestore(index uint64) {
	f.applied.Store(index)
	f.mu.Lock()
	close(f.advance)
	f.advance = make(chan struct{})
	f.mu.Unlock()
}

var (
	_ raft.FSM                = (*FSM)(nil)
	_ raft.ConfigurationStore = (*FSM)(nil)
)
