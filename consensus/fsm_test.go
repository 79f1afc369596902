package consensus

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"shoal/modules"
)

// counting is a raft module that counts the commands it applies.
type counting struct {
	blob
	applied int
}

func (c *counting) ApplyCommand(modules.Command) ([]byte, error) {
	c.applied++
	return nil, nil
}

// TestFSM_HaltsOnACommandOfAModuleItDoesNotRun: rather than skip the
// command and diverge from the nodes that run the module, the state
// machine stops: nothing more is applied, the applied index stops (also
// for configuration entries), snapshots are refused, and it says why.
func TestFSM_HaltsOnACommandOfAModuleItDoesNotRun(t *testing.T) {
	mod := &counting{blob: blob{tag: 5}}
	f, err := NewFSM([]modules.RaftHandler{mod}, quietLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	apply := func(index uint64, tag modules.Tag) *applyResult {
		return f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: EncodeCommand(tag, 1, nil)}).(*applyResult)
	}
	if r := apply(1, 5); r.err != nil || mod.applied != 1 || f.Applied() != 1 {
		t.Fatalf("a known command: %v, applied %d, index %d", r.err, mod.applied, f.Applied())
	}
	if r := apply(2, 7); !errors.Is(r.err, ErrHalted) {
		t.Fatalf("an unknown module's command: got %v, want ErrHalted", r.err)
	}
	if f.Halted() == "" {
		t.Fatal("the FSM does not say why it stopped")
	}
	if r := apply(3, 5); !errors.Is(r.err, ErrHalted) || mod.applied != 1 {
		t.Fatalf("after the halt: %v, module applied %d commands, want 1", r.err, mod.applied)
	}
	f.StoreConfiguration(4, raft.Configuration{})
	if f.Applied() != 1 {
		t.Fatalf("applied index %d after the halt, want it to stay at 1", f.Applied())
	}
	if _, err := f.Snapshot(); err == nil {
		t.Fatal("a halted FSM took a snapshot")
	}
}

// TestFSM_WaitAppliedWakesEachWaiterAtItsIndex: waiters are released when
// the applied index reaches theirs, not before; one that gives up leaves
// no trace.
func TestFSM_WaitAppliedWakesEachWaiterAtItsIndex(t *testing.T) {
	f, err := NewFSM(nil, quietLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make([]chan error, 6)
	for i := range done {
		done[i] = make(chan error, 1)
		go func() { done[i] <- f.WaitApplied(nil, uint64(i+1)*10) }()
	}
	gaveUp := make(chan struct{})
	quit := make(chan error, 1)
	go func() { quit <- f.WaitApplied(gaveUp, 25) }()
	// Wait until every waiter is queued (the only poll of this test).
	for {
		f.mu.Lock()
		n := len(f.waiters)
		f.mu.Unlock()
		if n == 7 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(gaveUp)
	if err := <-quit; err == nil {
		t.Fatal("a waiter that gave up returned nil")
	}
	f.setApplied(30, true)
	for i := range 3 {
		if err := <-done[i]; err != nil {
			t.Fatalf("waiter %d: %v", i, err)
		}
	}
	f.mu.Lock()
	left := len(f.waiters)
	f.mu.Unlock()
	if left != 3 {
		t.Fatalf("%d waiters left after applying 30, want 3 (40, 50, 60)", left)
	}
	f.setApplied(60, true)
	for i := 3; i < 6; i++ {
		if err := <-done[i]; err != nil {
			t.Fatalf("waiter %d: %v", i, err)
		}
	}
	if err := f.WaitApplied(nil, 5); err != nil {
		t.Fatalf("an index already applied: %v", err)
	}
}
