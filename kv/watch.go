package kv

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

const (
	// watchBatch is the most events written between two flushes.
	watchBatch = 256
	// streamWriteTimeout bounds one write to a watch client; a client that
	// does not read for that long is dropped.
	streamWriteTimeout = 30 * time.Second
)

var errStreamStopped = errors.New("kv watch stopped")

// stream is one open watch, tracked by the module so that Stop can end it.
// Its handler goroutine writes; Stop may call stop concurrently.
type stream struct {
	ctx    context.Context
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

// send writes b and flushes, under a fresh write deadline.
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

// finish clears the write deadline of a stream that ends on its own.
func (s *stream) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		_ = s.rc.SetWriteDeadline(time.Time{})
	}
}

// openStream registers a stream for w; after Stop it is refused.
func (k *KV) openStream(w http.ResponseWriter, r *http.Request) (*stream, error) {
	k.streamsMu.Lock()
	defer k.streamsMu.Unlock()
	if k.state.Load() != stateRunning {
		return nil, httpjson.ErrShuttingDown
	}
	ctx, cancel := context.WithCancel(r.Context())
	s := &stream{ctx: ctx, cancel: cancel, rc: http.NewResponseController(w)}
	k.streams[s] = struct{}{}
	k.streamWG.Add(1)
	k.m.watchers.Inc()
	return s, nil
}

func (k *KV) closeStream(s *stream) {
	s.finish()
	s.cancel()
	k.streamsMu.Lock()
	delete(k.streams, s)
	k.streamsMu.Unlock()
	k.m.watchers.Dec()
	k.streamWG.Done()
}

// SyncedJSON is the data of a synced event.
type SyncedJSON struct {
	Node string `json:"node"`
	Keys int    `json:"keys"`
}

// handleWatch serves GET /v1/kv?prefix=&watch=true as Server-Sent Events:
//
//	event: new_key | key_changed | key_removed
//	data: {"key":..,"value":..,"version":{..},"updated_at":..}
//
// for each change under prefix as it arrives on this node (key_removed has
// no value), and "event: synced" with {"node","keys"} when the node
// completes a full sync, or at once if it already has. A ": ping" comment
// is sent every StreamHeartbeat. A watch that falls more than watchBuffer
// events behind gets "event: error" (watch_overflow) and ends: events are
// not stored, so a client reconnects and re-reads what it needs.
func (k *KV) handleWatch(w http.ResponseWriter, r *http.Request, prefix string) error {
	if err := k.acquire(); err != nil {
		return err
	}
	// Subscribing under ae.mu orders it with becomeSyncedLocked: the
	// watch gets the synced event either here or from the bus, not both.
	k.ae.mu.Lock()
	synced := k.ae.synced
	sub := k.bus.subscribe(prefixMatch(prefix), watchBuffer, nil)
	k.ae.mu.Unlock()
	k.release()
	defer k.bus.unsubscribe(sub)
	s, err := k.openStream(w, r)
	if err != nil {
		return err
	}
	defer k.closeStream(s)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if synced {
		live, _, _ := k.st.counts()
		k.writeEvent(&buf, enc, Event{Type: EventSynced, Keys: live})
	}
	if err := s.send(w, buf.Bytes()); err != nil {
		if errors.Is(err, http.ErrNotSupported) {
			k.logger.Error("kv watch: the response writer cannot flush", "err", err)
		}
		return nil // the status is sent; there is no error left to write
	}
	ticker := time.NewTicker(k.cfg.StreamHeartbeat)
	defer ticker.Stop()
	for {
		buf.Reset()
		select {
		case ev := <-sub.ch:
			k.writeEvent(&buf, enc, ev)
		drain:
			for range watchBatch - 1 {
				select {
				case ev := <-sub.ch:
					k.writeEvent(&buf, enc, ev)
				default:
					break drain
				}
			}
		case <-sub.lost:
			buf.WriteString("event: error\ndata: ")
			_ = enc.Encode(errorBody(ErrWatchOverflow))
			buf.WriteByte('\n')
			_ = s.send(w, buf.Bytes())
			return nil
		case <-ticker.C:
			buf.WriteString(": ping\n\n")
		case <-s.ctx.Done():
			return nil
		}
		if err := s.send(w, buf.Bytes()); err != nil {
			return nil
		}
	}
}

// writeEvent appends one event in SSE form.
func (k *KV) writeEvent(buf *bytes.Buffer, enc *json.Encoder, ev Event) {
	buf.WriteString("event: ")
	buf.WriteString(string(ev.Type))
	buf.WriteString("\ndata: ")
	if ev.Type == EventSynced {
		_ = enc.Encode(SyncedJSON{Node: k.node, Keys: ev.Keys})
	} else {
		_ = enc.Encode(ev.Entry.json()) // one line of compact JSON and '\n'
	}
	buf.WriteByte('\n')
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
