package sse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"shoal/internal/httpjson"
)

// WriteTimeout bounds one flush to a client: a client that does not read
// for that long is dropped, so a stalled reader cannot hold its handler
// (and the module's Stop) forever.
const WriteTimeout = 30 * time.Second

// ErrStopped is returned by Flush on a stream that Streams.Stop ended.
var ErrStopped = errors.New("event stream stopped")

// Streams is the set of a module's open event streams, so that the
// module's Stop can end them and wait for their handlers. The zero value
// is ready to use; its methods may be called from any goroutine.
type Streams struct {
	mu      sync.Mutex
	open    map[*Stream]struct{}
	stopped bool
	wg      sync.WaitGroup // one per open stream, done by Close
}

// Open registers an event stream on w for the handler serving r. Nothing
// is written yet: the caller may still add response headers, then calls
// Begin. After Stop, Open refuses with httpjson.ErrShuttingDown, which the
// handler returns like any error. The handler must Close the stream.
func (ss *Streams) Open(w http.ResponseWriter, r *http.Request) (*Stream, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.stopped {
		return nil, httpjson.ErrShuttingDown
	}
	slot, limited := limiterFrom(r.Context())
	if limited {
		if err := slot.l.acquire(slot.client); err != nil {
			return nil, err
		}
	}
	if ss.open == nil {
		ss.open = map[*Stream]struct{}{}
	}
	ctx, cancel := context.WithCancel(r.Context())
	s := &Stream{set: ss, w: w, rc: http.NewResponseController(w), ctx: ctx, cancel: cancel}
	if limited {
		s.slot = &slot
	}
	s.enc = json.NewEncoder(&s.buf)
	s.enc.SetEscapeHTML(false)
	ss.open[s] = struct{}{}
	ss.wg.Add(1)
	return s, nil
}

// Stop ends every open stream and refuses new ones. It does not block:
// each stream's Done is closed and a write blocked on a stalled client
// fails at once. Wait waits for the handlers to Close their streams.
func (ss *Streams) Stop() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.stopped = true
	for s := range ss.open {
		s.stop()
	}
}

// Wait blocks until every opened stream has been closed. Callers that
// must not block for long run it in a goroutine bounded by a context.
func (ss *Streams) Wait() {
	ss.wg.Wait()
}

// Stream is one open event stream. Only the handler goroutine that opened
// it queues events, flushes and closes it; Streams.Stop may end it from
// another goroutine at any time.
//
// Events are queued in a buffer and reach the client at the next Flush, so
// a handler can send a batch of events with one write.
type Stream struct {
	set    *Streams
	slot   *limitSlot // the node's limiter slot, if the request carries one
	w      http.ResponseWriter
	rc     *http.ResponseController
	ctx    context.Context // cancelled by stop, Close and the end of the request
	cancel context.CancelFunc

	buf bytes.Buffer  // events queued since the last Flush
	enc *json.Encoder // writes into buf

	mu      sync.Mutex // orders stop with the write deadline Flush sets
	stopped bool
}

// Done is closed when the client has gone, the request ended or the
// stream was stopped; the handler then returns.
func (s *Stream) Done() <-chan struct{} {
	return s.ctx.Done()
}

// Begin sends the response header of an event stream, with status 200 and
// any headers the caller set since Open, and the events queued so far. Its
// error, like Flush's, means the stream is unusable and the handler
// returns without writing anything else (the status is sent). An error
// wrapping http.ErrNotSupported means the ResponseWriter cannot flush (a
// middleware hides it), which is a bug worth logging.
func (s *Stream) Begin() error {
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx would buffer the stream otherwise
	s.w.WriteHeader(http.StatusOK)
	return s.Flush()
}

// Flush writes the queued events, if any, and flushes them to the client,
// under a fresh write deadline of WriteTimeout. It fails once the stream
// was stopped; the queue is empty afterwards either way.
func (s *Stream) Flush() error {
	defer s.buf.Reset()
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return ErrStopped
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(WriteTimeout)) // not every ResponseWriter supports deadlines
	s.mu.Unlock()
	if s.buf.Len() > 0 {
		if _, err := s.w.Write(s.buf.Bytes()); err != nil {
			return err
		}
	}
	return s.rc.Flush()
}

// Close unregisters the stream; Streams.Wait waits for it. The handler
// calls it exactly once, when it returns, normally deferred right after
// Open. A stream that ended on its own has its write deadline cleared, so
// a kept-alive connection does not inherit it.
func (s *Stream) Close() {
	s.mu.Lock()
	if !s.stopped {
		_ = s.rc.SetWriteDeadline(time.Time{})
	}
	s.mu.Unlock()
	s.cancel()
	s.set.mu.Lock()
	delete(s.set.open, s)
	s.set.mu.Unlock()
	if s.slot != nil {
		s.slot.l.release(s.slot.client)
	}
	s.set.wg.Done()
}

// stop ends the stream from Streams.Stop: it closes Done and sets a write
// deadline in the past, which fails a write blocked on a stalled client.
// The caller holds s.set.mu.
func (s *Stream) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	s.cancel()
	_ = s.rc.SetWriteDeadline(time.Now())
}
