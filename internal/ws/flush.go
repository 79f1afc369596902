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
// is; Hub.Stop waits for it.
type flusher struct {
	mu      sync.Mutex
	now     []*Conn     // due at once
	paced   []pacedConn // due at their time, in the order they were scheduled
	running bool
	kick    chan struct{} // one token: something is due at once
	done    sync.WaitGroup

	// The goroutine's own.
	fr  framer
	due []*Conn
}

// A pacedConn is due at its last write plus BatchInterval. Connections are
// paced in the order of their writes, so the times rarely go backwards;
// when one does, that connection waits for the ones before it, never
// longer than the interval.
type pacedConn struct {
	c  *Conn
	at time.Time
}

func newFlusher() *flusher {
	return &flusher{kick: make(chan struct{}, 1)}
}

// schedule has c written at once (at zero) or at at, and starts the
// goroutine if it does not run. The caller holds c.mu; c.mu is always
// taken before f.mu.
func (f *flusher) schedule(c *Conn, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if at.IsZero() {
		f.now = append(f.now, c)
	} else {
		f.paced = append(f.paced, pacedConn{c: c, at: at})
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
			f.due = append(f.due, f.paced[i].c)
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
		for _, c := range f.due {
			c.flush(&f.fr, now)
		}
		clear(f.due)
		f.due = f.due[:0]
	}
}
