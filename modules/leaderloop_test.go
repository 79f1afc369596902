package modules

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLeaderLoop: one loop at a time; Stop cancels it; a new term's loop
// starts only after the last one returned.
func TestLeaderLoop(t *testing.T) {
	var l LeaderLoop
	var wg sync.WaitGroup
	var running, overlaps, runs atomic.Int32
	release := make(chan struct{})
	run := func(ctx context.Context) {
		runs.Add(1)
		if running.Add(1) > 1 {
			overlaps.Add(1)
		}
		<-ctx.Done()
		<-release // returns late: the next term must wait for it
		running.Add(-1)
	}
	l.Start(context.Background(), &wg, run)
	l.Start(context.Background(), &wg, run) // already running: nothing
	waitFor(t, func() bool { return runs.Load() == 1 })
	l.Stop()
	l.Start(context.Background(), &wg, run) // a new term, while the old loop has not returned
	time.Sleep(20 * time.Millisecond)
	if n := runs.Load(); n != 1 {
		t.Fatalf("%d loops started before the previous one returned, want 1", n)
	}
	close(release)
	waitFor(t, func() bool { return runs.Load() == 2 })
	l.Stop()
	wg.Wait()
	if overlaps.Load() != 0 {
		t.Fatal("two loops ran at once")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("condition not met within 5s")
		}
	}
}
