package moduletest

import (
	"context"
	"errors"

	"shoal/modules"
)

// ErrNoApply is what Raft.Apply returns when the test did not set
// ApplyFunc.
var ErrNoApply = errors.New("moduletest: Raft.ApplyFunc is not set")

// Raft is a modules.Raft made of functions the test sets, typically to
// apply each command at once to the module under test. A nil function
// behaves as a single-node cluster whose leader has nothing to do: Apply
// fails with ErrNoApply, ReadIndex succeeds, AppliedIndex returns 0 and
// IsLeader returns true.
//
// The methods call the functions on the module's goroutines, possibly
// concurrently; a test that replaces a function while the module runs must
// make sure no call is in flight (usually by replacing it before the
// request that uses it).
type Raft struct {
	ApplyFunc        func(ctx context.Context, op byte, payload []byte) (modules.Applied, error)
	ReadIndexFunc    func(ctx context.Context) error
	AppliedIndexFunc func() uint64
	IsLeaderFunc     func() bool
}

// Apply implements modules.Raft.
func (r *Raft) Apply(ctx context.Context, op byte, payload []byte) (modules.Applied, error) {
	if r.ApplyFunc == nil {
		return modules.Applied{}, ErrNoApply
	}
	return r.ApplyFunc(ctx, op, payload)
}

// ReadIndex implements modules.Raft.
func (r *Raft) ReadIndex(ctx context.Context) error {
	if r.ReadIndexFunc == nil {
		return nil
	}
	return r.ReadIndexFunc(ctx)
}

// AppliedIndex implements modules.Raft.
func (r *Raft) AppliedIndex() uint64 {
	if r.AppliedIndexFunc == nil {
		return 0
	}
	return r.AppliedIndexFunc()
}

// ApplyOnLeader implements modules.Raft: Apply when IsLeader, else
// ErrNotLeader.
func (r *Raft) ApplyOnLeader(ctx context.Context, op byte, payload []byte) (modules.Applied, error) {
	if !r.IsLeader() {
		return modules.Applied{}, ErrNotLeader
	}
	return r.Apply(ctx, op, payload)
}

// ErrNotLeader is what ApplyOnLeader returns when IsLeader is false.
var ErrNotLeader = errors.New("moduletest: not the leader")

// IsLeader implements modules.Raft.
func (r *Raft) IsLeader() bool {
	if r.IsLeaderFunc == nil {
		return true
	}
	return r.IsLeaderFunc()
}

var _ modules.Raft = (*Raft)(nil)
