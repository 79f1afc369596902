package kv

import (
	"errors"
	"net/http"
	"time"

	"shoal/internal/sse"
)

// watchBatch is the most events written between two flushes.
const watchBatch = 256

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
	s, err := k.streams.Open(w, r)
	if err != nil {
		return err
	}
	defer s.Close()
	k.m.watchers.Inc()
	defer k.m.watchers.Dec()
	if synced {
		live, _, _ := k.st.counts()
		k.queueEvent(s, Event{Type: EventSynced, Keys: live})
	}
	if err := s.Begin(); err != nil {
		if errors.Is(err, http.ErrNotSupported) {
			k.logger.Error("kv watch: the response writer cannot flush", "err", err)
		}
		return nil // the status is sent; there is no error left to write
	}
	ticker := time.NewTicker(k.cfg.StreamHeartbeat)
	defer ticker.Stop()
	for {
		select {
		case ev := <-sub.ch:
			k.queueEvent(s, ev)
		drain:
			for range watchBatch - 1 {
				select {
				case ev := <-sub.ch:
					k.queueEvent(s, ev)
				default:
					break drain
				}
			}
		case <-sub.lost:
			s.ErrorEvent(ErrWatchOverflow)
			_ = s.Flush()
			return nil
		case <-ticker.C:
			s.Heartbeat()
		case <-s.Done():
			return nil
		}
		if err := s.Flush(); err != nil {
			return nil
		}
	}
}

// queueEvent queues one event on a watch stream.
func (k *KV) queueEvent(s *sse.Stream, ev Event) {
	if ev.Type == EventSynced {
		_ = s.JSONEvent(string(ev.Type), "", SyncedJSON{Node: k.node, Keys: ev.Keys}) // always encodes
		return
	}
	_ = s.JSONEvent(string(ev.Type), "", ev.Entry.json()) // always encodes
}
