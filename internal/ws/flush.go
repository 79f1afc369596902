package ws

import (
	"sync"
	"time"
)

// A flusher writes the frames queued on its share of a hub's connections,
// from one goroutine, with non-blocking writes. A delivery used to wake
// the connection's own writer goroutine: at a thousand subscribers and a
// hundred changes a second, a hundred thousand wakes and parks of the
// scheduler a second, a quarter of the node's CPU besides the writes.
// A flusher is woken once for a whole fan-out, and writes each
// connection's frames in one system call.
//
// A connection is scheduled when a frame is queued on it while nothing
// is (Conn.wakeLocked): at once if it was quiet for Config.BatchInterval,
// else at its last write plus the interval, so that a busy connection is
// written to at most once per interval, with everything queued meanwhile.
// A socket that does not take a write whole (a client that reads slowly),
// a TLS connection (no descriptor of its own for non-blocking writes),
// or a full flow window hands the connection to its own writer goroutine,
// which blocks for it until its queue is empty (Conn.write).
//
// The goroutine runs while something is scheduled, and ends when nothing
// is; Hub.Stop drains it.
type flusher struct {
	mu      sync.Mutex
	now     []scheduled // due at once
	paced   []scheduled // due at their time, in the order they were scheduled
	running bool
	kick    chan struct{} // one token: something is due at once
	done    sync.WaitGroup

	// The goroutine's own.
	fr  framer
	due []scheduled
}

// A scheduled connection is due at once, or at its last write plus
// BatchInterval. Connections are paced in the order of their writes, so
// the times rarely go backwards; when one does, that connection waits for
// the ones before it, never longer than the interval. gen is the
// connection's schedule it stands for (Conn.sched): a paced connection
// whose queue fills up is scheduled again, at once, and its paced entry
// then stands for nothing.
type scheduled struct {
	c   *Conn
	gen uint64
	at  time.Time
}

func newFlusher() *flusher {
	return &flusher{kick: make(chan struct{}, 1)}
}

// schedule has c written at once (at zero) or at at, and starts the
// goroutine if it does not run. The caller holds c.mu; c.mu is always
// taken before f.mu.
func (f *flusher) schedule(c *Conn, at time.Time) {
	c.sched++
	c.due = at
	e := scheduled{c: c, gen: c.sched, at: at}
	f.mu.Lock()
	defer f.mu.Unlock()
	if at.IsZero() {
		f.now = append(f.now, e)
	} else {
		f.paced = append(f.paced, e)
	}
	if !f.running {
		f.running = true
		f.done.Add(1)
		go f.run()
		return
	}
	if at.IsZero() {
		select {
		case f.kick <- struct{}{}:
		default:
		}
	}
}

// drain drops what is scheduled and waits for the goroutine to end: Stop's,
// once every connection has closed (a paced connection may be scheduled
// an interval ahead).
func (f *flusher) drain() {
	f.mu.Lock()
	clear(f.now)
	f.now = f.now[:0]
	clear(f.paced)
	f.paced = f.paced[:0]
	select {
	case f.kick <- struct{}{}:
	default:
	}
	f.mu.Unlock()
	f.done.Wait()
}

// run writes what is due, sleeps until the next paced time or a kick, and
// ends when nothing is scheduled.
func (f *flusher) run() {
	defer f.done.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		now := time.Now()
		f.mu.Lock()
		f.due = append(f.due, f.now...)
		clear(f.now)
		f.now = f.now[:0]
		i := 0
		for i < len(f.paced) && !f.paced[i].at.After(now) {
			f.due = append(f.due, f.paced[i])
			i++
		}
		if i > 0 {
			n := copy(f.paced, f.paced[i:])
			clear(f.paced[n:])
			f.paced = f.paced[:n]
		}
		if len(f.due) == 0 {
			if len(f.paced) == 0 {
				f.running = false
				f.mu.Unlock()
				return
			}
			wait := f.paced[0].at.Sub(now)
			f.mu.Unlock()
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-f.kick:
				timer.Stop()
			}
			continue
		}
		f.mu.Unlock()
		for _, e := range f.due {
			e.c.flush(&f.fr, now, e.gen)
		}
		clear(f.due)
		f.due = f.due[:0]
	}
}
