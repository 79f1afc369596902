package logstream

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"shoal/internal/httpjson"
	"shoal/internal/sse"
)

// streamRetry is the reconnection delay a stream suggests to EventSource.
const streamRetry = 2 * time.Second

// streamBatch is the most entries written between two flushes.
const streamBatch = 256

// formatTime formats an entry time (Unix nanoseconds) for the API.
func formatTime(t int64) string {
	return time.Unix(0, t).UTC().Format(time.RFC3339Nano)
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
// retention later gets "event: stream_error" with the same error JSON and
// ends (not "error", which a browser's EventSource fires for a lost
// connection). The stream starts with a "retry:" hint.
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
	if v, ok := l.lookup(name, false); ok && hasFrom && from < v.first {
		return trimmedError(name, from, v.first)
	}
	s, err := l.streams.Open(w, r)
	if err != nil {
		return err
	}
	defer s.Close()
	l.m.streams.Inc()
	defer l.m.streams.Dec()
	w.Header().Set(httpjson.HeaderAppliedIndex, strconv.FormatUint(l.host.Raft().AppliedIndex(), 10))
	s.Retry(streamRetry)
	if err := s.Begin(); err != nil {
		if errors.Is(err, http.ErrNotSupported) {
			// A middleware hides Flush: streaming cannot work behind it.
			l.logger.Error("log stream: the response writer cannot flush", "log", name, "err", err)
		}
		return nil // the status is sent; there is no error left to write
	}
	l.serveStream(s, name, from, hasFrom)
	return nil
}

// streamBatchBytes bounds the data of one batch of events; a stream that
// fell behind reads its way forward from disk a batch at a time.
const streamBatchBytes = 1 << 20

// serveStream writes events until the client leaves, the stream is stopped,
// falls behind retention or its log is deleted.
func (l *Log) serveStream(s *sse.Stream, name string, from uint64, hasFrom bool) {
	ticker := time.NewTicker(l.cfg.StreamHeartbeat)
	defer ticker.Stop()
	var bound *logState // the log the stream reads, once it exists
	for {
		var wait <-chan struct{}
		v, ok := l.lookup(name, false)
		switch {
		case !ok && bound != nil, ok && bound != nil && v.ls != bound:
			l.endDeleted(s, name)
			return
		case !ok:
			l.mu.RLock()
			wait = l.st.created
			l.mu.RUnlock()
			if _, ok := l.lookup(name, false); ok {
				continue // created between the two looks
			}
		default:
			bound = v.ls
			if !hasFrom {
				from, hasFrom = v.first, true
			}
			wait = v.notify
		}
		if bound != nil {
			if from < v.first {
				s.StreamError(trimmedError(name, from, v.first))
				_ = s.Flush()
				return
			}
			entries, err := l.read(v, from, streamBatch, streamBatchBytes)
			if errors.Is(err, ErrLogNotFound) {
				l.endDeleted(s, name)
				return
			}
			if err != nil {
				s.StreamError(err)
				_ = s.Flush()
				return
			}
			if len(entries) > 0 {
				for _, e := range entriesJSON(entries) {
					_ = s.JSONEvent("entry", strconv.FormatUint(e.Index, 10), e) // always encodes
				}
				if err := s.Flush(); err != nil {
					return
				}
				from += uint64(len(entries))
				continue
			}
		}
		select {
		case <-wait:
		case <-ticker.C:
			s.Heartbeat()
			if err := s.Flush(); err != nil {
				return
			}
		case <-s.Done():
			return
		}
	}
}

// endDeleted ends a stream whose log was deleted with a "deleted" event.
func (l *Log) endDeleted(s *sse.Stream, name string) {
	_ = s.JSONEvent("deleted", "", map[string]string{"log": name, "message": "the log was deleted"})
	_ = s.Flush()
}
