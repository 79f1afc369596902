package moduletest

import (
	"context"
	"sync"
	"testing"
	"time"

	"shoal/modules"
)

// StopTimeout bounds the Stop of a module started with Start.
const StopTimeout = 30 * time.Second

// Start takes m through the first steps of its lifecycle as the node
// does, Provision with host and then Start, and fails the test if either
// fails. It returns stop, which calls m.Stop bounded by StopTimeout and
// reports a failure with t.Errorf. Only the first call of stop stops m, as
// the lifecycle requires; it is also called at cleanup, so a test may stop
// the module early to check what Stop does.
func Start(t testing.TB, m modules.Module, host modules.Host) (stop func()) {
	t.Helper()
	if err := m.Provision(host); err != nil {
		t.Fatalf("provision module %s on %s: %v", m.ID(), host.NodeName(), err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatalf("start module %s on %s: %v", m.ID(), host.NodeName(), err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), StopTimeout)
			defer cancel()
			if err := m.Stop(ctx); err != nil {
				t.Errorf("stop module %s on %s: %v", m.ID(), host.NodeName(), err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
