package consensus

import (
	"testing"
	"time"
)

// TestNoticeHold: a notice is held for half again the recent gap between
// writes while that is short enough for the next write to be worth
// waiting for, never longer than maxNoticeHold, and not at all once
// writes are sparse; a fixed hold (tests) wins.
func TestNoticeHold(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		fixed, gap, want time.Duration
	}{
		{0, 0, 0},                            // nothing known: no hold beyond the delay
		{0, 1 * ms, 1500 * time.Microsecond}, // a fast stream: the delay covers it
		{0, 10 * ms, 15 * ms},                // 100 writes a second: the next one comes first
		{0, 12 * ms, 18 * ms},                // about the longest hold
		{0, 14 * ms, 0},                      // 21 ms would be too long: notice at once
		{0, time.Second, 0},
		{time.Minute, 0, time.Minute},
		{time.Minute, time.Second, time.Minute},
	} {
		if got := noticeHold(c.fixed, c.gap); got != c.want {
			t.Errorf("noticeHold(%v, %v) = %v, want %v", c.fixed, c.gap, got, c.want)
		}
	}
}
