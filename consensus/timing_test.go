package consensus

import (
	"testing"
	"time"
)

// TestTiming_Scaled: the multiplier scales what decides heartbeats and
// elections, not the commit timeout; 0 and 1 change nothing.
func TestTiming_Scaled(t *testing.T) {
	base := DefaultTiming()
	for _, m := range []int{0, 1} {
		if got := base.Scaled(m); got != base {
			t.Fatalf("Scaled(%d) = %+v, want %+v", m, got, base)
		}
	}
	got := base.Scaled(5)
	want := Timing{HeartbeatTimeout: 5 * time.Second, ElectionTimeout: 5 * time.Second,
		LeaderLeaseTimeout: 2500 * time.Millisecond, CommitTimeout: base.CommitTimeout}
	if got != want {
		t.Fatalf("Scaled(5) = %+v, want %+v", got, want)
	}
}
