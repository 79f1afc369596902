package modules

import (
	"context"
	"sync"
)

// LeaderLoop runs a module's leader-only loop (an expiry loop, say) while
// the node leads: started on a leadership gain, cancelled on its loss or
// at Stop. A new term's loop starts only once the previous term's has
// returned, so two never run at once. Its zero value is ready. Its
// methods are called under the module's own lock, which also guards the
// module's stopped flag; the loop's goroutine is counted in the
// module's WaitGroup, which the module's Stop waits for.
type LeaderLoop struct {
	cancel context.CancelFunc // ends the current loop; nil when none runs
	done   chan struct{}      // closed when the last loop returned
}

// Start runs run(ctx) in a goroutine counted by wg, ctx a child of parent
// cancelled by Stop, unless a loop runs already.
func (l *LeaderLoop) Start(parent context.Context, wg *sync.WaitGroup, run func(ctx context.Context)) {
	if l.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(parent)
	prev, done := l.done, make(chan struct{})
	l.cancel, l.done = cancel, done
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		if prev != nil {
			<-prev // its context is cancelled: it returns promptly
		}
		run(ctx)
	}()
}

// Stop cancels the running loop, if any; it returns at once.
func (l *LeaderLoop) Stop() {
	if l.cancel != nil {
		l.cancel()
		l.cancel = nil
	}
}
