package kv

import (
	"cmp"
	"math"
	"strings"
	"sync"
	"time"
)

// maxTime is the largest version time accepted (the last millisecond of
// year 9999). Decoders refuse larger ones, so that a corrupt or hostile
// message cannot push every clock out of range.
const maxTime = 253402300799999

// Version orders the writes of one key: a hybrid logical clock timestamp
// (Time, Counter) and the name of the node that wrote it. Versions are
// totally ordered by (Time, Counter, Node), so every node picks the same
// winner among concurrent writes (last writer wins).
type Version struct {
	// Time is the physical part of the timestamp, in Unix milliseconds.
	Time int64 `json:"time"`
	// Counter is the logical part: it orders writes within one millisecond,
	// and after a node has seen a timestamp ahead of its own clock.
	Counter uint32 `json:"counter"`
	// Node is the name of the node that wrote the version.
	Node string `json:"node"`
}

// Compare returns -1, 0 or +1 as v is older than, the same as or newer
// than o.
func (v Version) Compare(o Version) int {
	if c := cmp.Compare(v.Time, o.Time); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Counter, o.Counter); c != 0 {
		return c
	}
	return strings.Compare(v.Node, o.Node)
}

// IsZero reports whether v is the zero Version (no write).
func (v Version) IsZero() bool { return v == Version{} }

// WallTime is the physical part of v as a time.
func (v Version) WallTime() time.Time { return time.UnixMilli(v.Time).UTC() }

// hlc is a hybrid logical clock (Kulkarni et al., 2014). Now returns a
// timestamp greater than every timestamp it returned or observed before,
// and close to the wall clock: it follows physical time while that moves
// forward, and counts logically when the wall clock stands still, goes
// back, or lags behind a timestamp received from another node. So a write
// that causally follows another (its node had seen the earlier version)
// always gets a larger timestamp, whatever the clocks of the two nodes say.
// It is safe for concurrent use.
type hlc struct {
	wall func() time.Time

	mu      sync.Mutex
	time    int64
	counter uint32
}

func newHLC(wall func() time.Time) *hlc { return &hlc{wall: wall} }

// Now returns a fresh timestamp, strictly greater than any before.
func (c *hlc) Now() (int64, uint32) {
	pt := c.wall().UnixMilli()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case pt > c.time && pt <= maxTime:
		c.time, c.counter = pt, 0
	case c.counter < math.MaxUint32:
		c.counter++
	case c.time < maxTime:
		c.time, c.counter = c.time+1, 0
	}
	return c.time, c.counter
}

// Observe makes later timestamps greater than (t, counter), a timestamp
// seen on a version from another node (or loaded from disk).
func (c *hlc) Observe(t int64, counter uint32) {
	if t > maxTime {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t > c.time || (t == c.time && counter > c.counter) {
		c.time, c.counter = t, counter
	}
}
