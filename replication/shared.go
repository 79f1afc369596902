package replication

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// sharedData is file content the watcher read once and queued for every
// follower. Its buffer goes back to a pool when the last holder releases
// it, so that the next file is read into memory the process already has:
// read into fresh allocations, the leader faulted in a quarter of every
// byte it streamed (66,000 page faults for a 1 GiB tree), a cost this
// machine's virtualisation makes heavy.
//
// Holders: the watcher from getShared until it has published the action;
// each follower's queue from enqueue until its sender has written the
// frame, or the queue is dropped. Every holder releases exactly once.
type sharedData struct {
	buf   []byte // the content; cap is the pool class's size
	refs  atomic.Int32
	class int // index in sharedPools; -1: not pooled
}

// Pool classes: powers of two from 64 KiB to maxData. Smaller content is
// not pooled (it does not fault much); larger never comes here.
const (
	minSharedShift = 16
	maxSharedShift = 24 // maxData = 16 MiB
)

var sharedPools [maxSharedShift - minSharedShift + 1]sync.Pool

// getShared returns a buffer of n bytes held once, by the caller.
func getShared(n int) *sharedData {
	class := -1
	if n > 1<<(minSharedShift-1) && n <= 1<<maxSharedShift {
		class = max(bits.Len(uint(n-1)), minSharedShift) - minSharedShift
	}
	var d *sharedData
	if class >= 0 {
		if v, ok := sharedPools[class].Get().(*sharedData); ok {
			d = v
		} else {
			d = &sharedData{buf: make([]byte, 1<<(class+minSharedShift)), class: class}
		}
	} else {
		d = &sharedData{buf: make([]byte, n), class: -1}
	}
	d.buf = d.buf[:n]
	d.refs.Store(1)
	return d
}

// retain adds a holder. A nil d (content not from the pool) is allowed
// everywhere.
func (d *sharedData) retain() {
	if d != nil {
		d.refs.Add(1)
	}
}

// release drops a holder; the last one returns the buffer to its pool.
func (d *sharedData) release() {
	if d == nil || d.refs.Add(-1) != 0 || d.class < 0 {
		return
	}
	d.buf = d.buf[:cap(d.buf)]
	sharedPools[d.class].Put(d)
}

// releaseActions releases the content of actions dropped from a queue.
func releaseActions(q []action) {
	for i := range q {
		q[i].shared.release()
	}
}
