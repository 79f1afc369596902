package kv

import (
	"errors"
	"net/http"
	"time"

	"shoal/internal/sse"
)

// watchBatch is the most events written between two flushes.
const watchBatch = 256

// watchRetry is the reconnection delay a watch suggests to EventSource
// clients (the "retry:" field at the start of the stream).
const watchRetry = 2 * time.Second

// resyncPage is how many entries of the state a resync reads and sends at
// a time.
const resyncPage = 1000

// EventResync starts the state a watch sends instead of the changes a
// client missed, when the event history cannot cover its Last-Event-ID:
// the client drops what it holds under the prefix, and a new_key event
// for every live key follows, then the changes. It is not a bus event.
const EventResync EventType = "resync"

// SyncedJSON is the data of a synced event.
type SyncedJSON struct {
	Node string `json:"node"`
	Keys int    `json:"keys"`
}

// ResyncJSON is the data of a resync event.
type ResyncJSON struct {
	// Reason is invalid_event_id, unknown_event_id (another node's, or
	// this node's before a restart) or history_trimmed (too old).
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Node    string `json:"node"`
}

// handleWatch serves GET /v1/kv?prefix=&watch=true as Server-Sent Events.
// The stream starts with a "retry:" hint, then:
//
//	event: new_key | key_changed | key_removed
//	id: EPOCH-SEQ
//	data: {"key":..,"value":..,"version":{..},"updated_at":..}
//
// for each change under prefix as it arrives on this node (key_removed has
// no value), and "event: synced" with {"node","keys"} when the node
// completes a full sync, or at once if it already has. Every change
// carries an id; an "id:" line alone (no event) says where the stream is
// at its start and with the ": ping" heartbeat comment.
//
// With a Last-Event-ID header (or ?last_event_id=, for clients that
// cannot set headers), the watch resumes: it first sends the changes
// under prefix after that event, from the node's event history, so none
// is missed or repeated. When the history cannot cover it (another node's
// id, a restart since, or older than the history keeps), it sends
// "event: resync" ({"reason","message","node"}), a new_key event for
// every live key under prefix, then the changes.
//
// A watch that falls more than watchBuffer events behind gets "event:
// stream_error" (watch_overflow) and ends; it may resume.
func (k *KV) handleWatch(w http.ResponseWriter, r *http.Request, q listQuery) error {
	lastID := r.Header.Get("Last-Event-ID")
	if lastID == "" {
		lastID = q.lastEventID
	}
	if err := k.acquire(); err != nil {
		return err
	}
	// Subscribing under ae.mu orders it with becomeSyncedLocked: the
	// watch gets the synced event either here or from the bus, not both.
	k.ae.mu.Lock()
	synced := k.ae.synced
	sub, res := k.bus.subscribeFrom(prefixMatch(q.prefix), watchBuffer, lastID)
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
	s.Retry(watchRetry)
	resumed := lastID != "" && res.reason == ""
	var dumped map[string]Version
	switch {
	case resumed:
		k.m.watchStarts.WithLabelValues("resumed").Inc()
		for _, ev := range res.replay {
			k.queueEvent(s, ev)
		}
	case lastID != "":
		k.m.watchStarts.WithLabelValues("resync").Inc()
		_ = s.JSONEvent(string(EventResync), "", ResyncJSON{Reason: res.reason, Message: res.message, Node: k.node})
	default:
		k.m.watchStarts.WithLabelValues("new").Inc()
	}
	if synced && !resumed {
		live, _, _ := k.st.counts()
		k.queueEvent(s, Event{Type: EventSynced, Keys: live})
	}
	if err := s.Begin(); err != nil {
		if errors.Is(err, http.ErrNotSupported) {
			k.logger.Error("kv watch: the response writer cannot flush", "err", err)
		}
		return nil // the status is sent; there is no error left to write
	}
	if res.reason != "" {
		if dumped, err = k.sendState(s, q.prefix); err != nil {
			return nil
		}
	}
	if len(res.replay) == 0 {
		s.Position(eventID(k.bus.epoch, res.head))
	}
	ticker := time.NewTicker(k.cfg.StreamHeartbeat)
	defer ticker.Stop()
	forward := func(ev Event) {
		if v, ok := dumped[ev.Entry.Key]; ok && ev.Type != EventSynced {
			// The state sent this key at v: an event of v or older
			// is in it already (a change applied after the read of
			// the state, persisted before it).
			if ev.Entry.Version.Compare(v) <= 0 {
				return
			}
			delete(dumped, ev.Entry.Key)
		}
		k.queueEvent(s, ev)
	}
	for {
		if err := s.Flush(); err != nil {
			return nil
		}
		select {
		case ev := <-sub.ch:
			forward(ev)
		drain:
			for range watchBatch - 1 {
				select {
				case ev := <-sub.ch:
					forward(ev)
				default:
					break drain
				}
			}
		case <-sub.lost:
			s.StreamError(ErrWatchOverflow)
			_ = s.Flush()
			return nil
		case <-ticker.C:
			s.Heartbeat()
			if head, quiet := k.bus.quietHead(sub); quiet {
				// Every change up to head that this watch matches has been
				// queued (or dropped as older than the state a resync
				// sent): a client may resume from there.
				s.Position(eventID(k.bus.epoch, head))
			}
		case <-s.Done():
			return nil
		}
	}
}

// sendState sends every live entry under prefix as a new_key event
// without an id, a page at a time, for a resync. It returns the version
// it read of every key under prefix, tombstones included, for the watch
// to drop the changes the state already holds. An error means the stream
// is unusable.
func (k *KV) sendState(s *sse.Stream, prefix string) (map[string]Version, error) {
	seen := map[string]Version{}
	after := ""
	for {
		if err := k.acquire(); err != nil {
			return nil, err
		}
		items, more, err := k.st.list(prefix, after, resyncPage, k.cfg.now().UnixMilli(), true)
		k.release()
		if err != nil {
			k.logger.Warn("kv watch: read the state for a resync", "err", err)
			s.StreamError(err)
			_ = s.Flush()
			return nil, err
		}
		for _, e := range items {
			seen[e.Key] = e.Version
			if !e.Deleted {
				_ = s.JSONEvent(string(EventNewKey), "", e.json()) // always encodes
			}
		}
		if err := s.Flush(); err != nil {
			return nil, err
		}
		if !more {
			return seen, nil
		}
		after = items[len(items)-1].Key
	}
}

// queueEvent queues one event on a watch stream, with its id (a synced
// event sent at the start of a watch has none).
func (k *KV) queueEvent(s *sse.Stream, ev Event) {
	id := ""
	if ev.Seq != 0 {
		id = eventID(k.bus.epoch, ev.Seq)
	}
	if ev.Type == EventSynced {
		_ = s.JSONEvent(string(ev.Type), id, SyncedJSON{Node: k.node, Keys: ev.Keys}) // always encodes
		return
	}
	_ = s.JSONEvent(string(ev.Type), id, ev.Entry.json()) // always encodes
}
