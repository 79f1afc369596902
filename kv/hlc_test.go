package kv

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"shoal/internal/testcluster"
)

// manualClock is a wall clock a test sets.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

var testEpoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func TestVersion_Compare(t *testing.T) {
	v := Version{Time: 10, Counter: 2, Node: "b"}
	tests := []struct {
		name  string
		other Version
		want  int
	}{
		{"same", v, 0},
		{"later time wins over counter and node", Version{Time: 11, Counter: 0, Node: "a"}, -1},
		{"earlier time", Version{Time: 9, Counter: 99, Node: "z"}, 1},
		{"higher counter", Version{Time: 10, Counter: 3, Node: "a"}, -1},
		{"lower counter", Version{Time: 10, Counter: 1, Node: "z"}, 1},
		{"node breaks the tie", Version{Time: 10, Counter: 2, Node: "c"}, -1},
		{"lower node", Version{Time: 10, Counter: 2, Node: "a"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := v.Compare(tt.other); got != tt.want {
				t.Fatalf("got %d, want %d", got, tt.want)
			}
			if got := tt.other.Compare(v); got != -tt.want {
				t.Fatalf("reversed: got %d, want %d", got, -tt.want)
			}
		})
	}
}

func TestHLC_NowIsStrictlyIncreasing(t *testing.T) {
	clock := &manualClock{now: testEpoch}
	c := newHLC(clock.Now)
	var last Version
	check := func(step string) {
		t.Helper()
		tm, n := c.Now()
		v := Version{Time: tm, Counter: n, Node: "n"}
		if v.Compare(last) <= 0 {
			t.Fatalf("%s: got %+v after %+v", step, v, last)
		}
		last = v
	}
	check("first")
	check("clock stands still")
	check("clock stands still again")
	if last.Time != testEpoch.UnixMilli() || last.Counter != 2 {
		t.Fatalf("got %+v, want the wall time with counter 2", last)
	}
	clock.Set(testEpoch.Add(-time.Hour))
	check("clock went back an hour")
	if last.Time != testEpoch.UnixMilli() {
		t.Fatalf("the timestamp followed the clock backwards: %+v", last)
	}
	clock.Set(testEpoch.Add(time.Second))
	check("clock moves on")
	if last.Time != testEpoch.Add(time.Second).UnixMilli() || last.Counter != 0 {
		t.Fatalf("got %+v, want the new wall time with counter 0", last)
	}
}

func TestHLC_ObserveAheadMakesLaterWritesNewer(t *testing.T) {
	behind := &manualClock{now: testEpoch.Add(-3 * time.Hour)}
	c := newHLC(behind.Now)
	ahead := Version{Time: testEpoch.Add(3 * time.Hour).UnixMilli(), Counter: 7, Node: "zz"}
	c.Observe(ahead.Time, ahead.Counter)
	tm, n := c.Now()
	if v := (Version{Time: tm, Counter: n, Node: "aa"}); v.Compare(ahead) <= 0 {
		t.Fatalf("a write after observing %+v got %+v, which does not win", ahead, v)
	}
	// Observing the past changes nothing.
	c.Observe(testEpoch.Add(-5*time.Hour).UnixMilli(), 100)
	if tm2, n2 := c.Now(); tm2 != tm || n2 != n+1 {
		t.Fatalf("got (%d, %d), want (%d, %d)", tm2, n2, tm, n+1)
	}
	// A timestamp past maxTime is ignored rather than wrapping the clock.
	c.Observe(maxTime+1, 0)
	if tm3, _ := c.Now(); tm3 != tm {
		t.Fatalf("an out-of-range timestamp moved the clock to %d", tm3)
	}
}

func TestHLC_CounterOverflowAdvancesTime(t *testing.T) {
	clock := &manualClock{now: testEpoch}
	c := newHLC(clock.Now)
	c.Observe(testEpoch.UnixMilli(), 1<<32-1)
	tm, n := c.Now()
	if tm != testEpoch.UnixMilli()+1 || n != 0 {
		t.Fatalf("got (%d, %d), want (%d, 0)", tm, n, testEpoch.UnixMilli()+1)
	}
}

// TestSkew_CausalWriteWins runs two nodes whose clocks are six hours
// apart. Whichever writes first, a write made on the other node after it
// has received the first one wins everywhere: the HLC makes it newer.
func TestSkew_CausalWriteWins(t *testing.T) {
	for _, aheadFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("ahead writes first=%v", aheadFirst), func(t *testing.T) {
			net := newFakeNet()
			aheadCfg, behindCfg := testConfig(), testConfig()
			aheadCfg.clock = func() time.Time { return time.Now().Add(3 * time.Hour) }
			behindCfg.clock = func() time.Time { return time.Now().Add(-3 * time.Hour) }
			ahead := startNode(t, net, "ahead", aheadCfg)
			behind := startNode(t, net, "behind", behindCfg)
			waitSynced(t, ahead, behind)
			first, second := ahead, behind
			if !aheadFirst {
				first, second = behind, ahead
			}
			v1 := first.put("k", "first")
			testcluster.Eventually(t, 10*time.Second, func() error {
				if v, _ := second.get("k"); v != "first" {
					return fmt.Errorf("%s has %q", second.name, v)
				}
				return nil
			})
			v2 := second.put("k", "second")
			if v2.Compare(v1) <= 0 {
				t.Fatalf("the causally later write got %+v, not newer than %+v", v2, v1)
			}
			testcluster.Eventually(t, 10*time.Second, func() error {
				for _, n := range []*testNode{ahead, behind} {
					if v, _ := n.get("k"); v != "second" {
						return fmt.Errorf("%s has %q", n.name, v)
					}
				}
				return nil
			})
		})
	}
}
