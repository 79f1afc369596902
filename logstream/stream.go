package logstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"shoal/internal/httpjson"
)

const (
	// streamBatch is the most entries written between two flushes.
	streamBatch = 256
	// streamWriteTimeout bounds one write to a stream client; a client that
	// does not read for that long is dropped.
	streamWriteTimeout = 30 * time.Second
)

// errStreamStopped is returned by a write to a stream that Stop ended.
var errStreamStopped = errors.New("log stream stopped")

// formatTime formats an entry time (Unix nanoseconds) for the API.
func formatTime(t int64) string {
	return time.Unix(0, t).UTC().Format(time.RFC3339Nano)
}

// stream is one open event stream, tracked by the module so that Stop can
// end it. Its handler goroutine writes; Stop may call stop concurrently.
type stream struct {
	ctx    context.Context // cancelled by stop and when the request ends
	cancel context.CancelFunc
	rc     *http.ResponseController

	mu      sync.Mutex
	stopped bool
}

// stop ends the stream: it cancels the handler's context and sets a write
// deadline in the past, which fails a write blocked on a stalled client.
func (s *stream) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	s.cancel()
	_ = s.rc.SetWriteDeadline(time.Now()) // not every ResponseWriter supports deadlines
}

// send writes b, if any, and flushes, under a fresh write deadline. It
// fails once the stream was stopped.
func (s *stream) send(w http.ResponseWriter, b []byte) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return errStreamStopped
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	s.mu.Unlock()
	if len(b) > 0 {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return s.rc.Flush()
}

// finish clears the write deadline of a stream that ends on its own, so a
// kept-alive connection does not inherit it.
func (s *stream) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		_ = s.rc.SetWriteDeadline(time.Time{})
	}
}

// openStream registers a stream for w; after Stop it is refused.
func (l *Log) openStream(w http.ResponseWriter, r *http.Request) (*stream, error) {
	l.streamsMu.Lock()
	defer l.streamsMu.Unlock()
	if l.stopped {
		return nil, httpjson.ErrShuttingDown
	}
	ctx, cancel := context.WithCancel(r.Context())
	s := &stream{ctx: ctx, cancel: cancel, rc: http.NewResponseController(w)}
	l.streams[s] = struct{}{}
	l.streamWG.Add(1)
	l.m.streams.Inc()
	return s, nil
}

func (l *Log) closeStream(s *stream) {
	s.finish()
	s.cancel()
	l.streamsMu.Lock()
	delete(l.streams, s)
	l.streamsMu.Unlock()
	l.m.streams.Dec()
	l.streamWG.Done()
}

// handleStream serves GET /v1/logs/{name}/stream as Server-Sent Events:
// every entry from ?from= (default: the first retained index) or from the
// index after the Last-Event-ID header, then new entries as this node
// applies them, with a ": ping" comment every StreamHeartbeat. Each event is
//
//	id: <index>
//	event: entry
//	data: {"index":..,"id":..,"data":..,"time":..}
//
// A log that does not exist yet is waited for. A start below the first
// retained index is refused with 410 log_trimmed; a stream that falls behind
// retention later gets "event: error" with the same error JSON and ends.
func (l *Log) handleStream(w http.ResponseWriter, r *http.Request) error {
	name, err := logName(r)
	if err != nil {
		return err
	}
	from, hasFrom, err := indexParam(r.URL.Query().Get("from"), "from", 1)
	if err != nil {
		return err
	}
	if s := r.Header.Get("Last-Event-ID"); s != "" {
		last, err := strconv.ParseUint(s, 10, 64)
		if err != nil || last == math.MaxUint64 {
			return badParam("Last-Event-ID", "the Last-Event-ID header must be an entry index, got %q", s)
		}
		from, hasFrom = last+1, true
	}
	l.mu.RLock()
	first := uint64(0)
	if ls := l.st.logs[name]; ls != nil {
		first = ls.first
	}
	l.mu.RUnlock()
	if hasFrom && from < first {
		return trimmedError(name, from, first)
	}
	s, err := l.openStream(w, r)
	if err != nil {
		return err
	}
	defer l.closeStream(s)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set(HeaderAppliedIndex, strconv.FormatUint(l.host.Raft().AppliedIndex(), 10))
	w.WriteHeader(http.StatusOK)
	if err := s.send(w, nil); err != nil {
		if errors.Is(err, http.ErrNotSupported) {
			// A middleware hides Flush: streaming cannot work behind it.
			l.logger.Error("log stream: the response writer cannot flush", "log", name, "err", err)
		}
		return nil // the status is sent; there is no error left to write
	}
	l.serveStream(s, w, name, from, hasFrom)
	return nil
}

// serveStream writes events until the client leaves, the stream is stopped
// or falls behind retention.
func (l *Log) serveStream(s *stream, w http.ResponseWriter, name string, from uint64, hasFrom bool) {
	ticker := time.NewTicker(l.cfg.StreamHeartbeat)
	defer ticker.Stop()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for {
		var (
			p         page
			wait      <-chan struct{}
			trimmedAt uint64
		)
		l.mu.RLock()
		if ls := l.st.logs[name]; ls == nil {
			wait = l.st.created
		} else {
			if !hasFrom {
				from, hasFrom = ls.first, true
			}
			if from < ls.first {
				trimmedAt = ls.first
			} else {
				p = ls.read(from, streamBatch)
				wait = ls.notify
			}
		}
		l.mu.RUnlock()

		buf.Reset()
		if trimmedAt != 0 {
			buf.WriteString("event: error\ndata: ")
			_ = enc.Encode(errorBody(trimmedError(name, from, trimmedAt)))
			buf.WriteByte('\n')
			_ = s.send(w, buf.Bytes())
			return
		}
		if len(p.entries) > 0 {
			for _, e := range p.json() {
				buf.WriteString("id: ")
				buf.WriteString(strconv.FormatUint(e.Index, 10))
				buf.WriteString("\nevent: entry\ndata: ")
				_ = enc.Encode(e) // a line of compact JSON and '\n'
				buf.WriteByte('\n')
			}
			if err := s.send(w, buf.Bytes()); err != nil {
				return
			}
			from += uint64(len(p.entries))
			continue
		}
		select {
		case <-wait:
		case <-ticker.C:
			if err := s.send(w, []byte(": ping\n\n")); err != nil {
				return
			}
		case <-s.ctx.Done():
			return
		}
	}
}

// errorBody is err in the API's error shape, as WriteError writes it.
func errorBody(err error) map[string]any {
	e := httpjson.As(err)
	body := map[string]any{"code": e.Code, "message": e.Message}
	for k, v := range e.Details {
		body[k] = v
	}
	return map[string]any{"error": body}
}
