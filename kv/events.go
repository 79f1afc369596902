package kv

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
)

// EventType names a kv event, as Pokan names them.
type EventType string

// The events a node emits. new_key, key_changed and key_removed fire on
// every node when a change arrives there, once per change, and never for a
// version that loses to the one the node holds. synced fires when the node
// completes a full sync with a peer (Pokan's after_sync).
const (
	// EventNewKey: a key got a value and had no live value before.
	EventNewKey EventType = "new_key"
	// EventKeyChanged: a newer version replaced a live value.
	EventKeyChanged EventType = "key_changed"
	// EventKeyRemoved: a live value was deleted.
	EventKeyRemoved EventType = "key_removed"
	// EventSynced: the node finished a full sync and holds the cluster's
	// data (as of that sync).
	EventSynced EventType = "synced"
)

func (t EventType) valid() bool {
	switch t {
	case EventNewKey, EventKeyChanged, EventKeyRemoved, EventSynced:
		return true
	}
	return false
}

// Event is one event as subscribers receive it.
type Event struct {
	// Seq numbers the events of this node's bus, from 1, in publish
	// order; a watch's event id is the bus's epoch and Seq.
	Seq  uint64
	Type EventType
	// Entry is the new version (a tombstone for key_removed); zero for
	// synced.
	Entry entry
	// Keys is the number of live keys, for synced.
	Keys int
}

// subscriber receives events through a bounded channel. publish never
// blocks: when the channel is full, a watcher is cut off (lost is closed
// and it receives nothing more) and a handler's event is dropped
// (dropped is called).
type subscriber struct {
	match   func(Event) bool
	ch      chan Event
	lost    chan struct{}
	dropped func() // nil for watchers

	lostOnce sync.Once
}

// prefixMatch matches the key events under prefix, and synced.
func prefixMatch(prefix string) func(Event) bool {
	return func(ev Event) bool { return ev.Type == EventSynced || strings.HasPrefix(ev.Entry.Key, prefix) }
}

// History bounds: the bus keeps the last historyEvents events, and at
// most historyBytes of their keys and values, for watches that resume
// with Last-Event-ID.
const (
	historyEvents = 8192
	historyBytes  = 16 << 20
)

// bus fans events out to subscribers and keeps a bounded history of them,
// numbered, so that a watch can resume where it left. Its methods are safe
// for concurrent use; publish is called with the store's lock held (so
// events leave in the order of the changes) and never blocks.
type bus struct {
	// epoch names this bus (one per module instance, so one per process
	// run): event ids of another node or an earlier run do not resolve
	// here.
	epoch string

	mu        sync.Mutex
	subs      map[*subscriber]struct{}
	seq       uint64  // the Seq of the last event published
	hist      []Event // the last events, oldest first, hist[i].Seq consecutive
	histBytes int
	maxEvents int
	maxBytes  int
}

func newBus() *bus {
	return &bus{epoch: fmt.Sprintf("%016x", rand.Uint64()), subs: map[*subscriber]struct{}{},
		maxEvents: historyEvents, maxBytes: historyBytes}
}

// subscribe adds a subscriber for the events match accepts.
func (b *bus) subscribe(match func(Event) bool, buffer int, dropped func()) *subscriber {
	s := &subscriber{match: match, ch: make(chan Event, buffer), lost: make(chan struct{}), dropped: dropped}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// resumeResult is what subscribeFrom found in the history.
type resumeResult struct {
	head   uint64  // the Seq of the last event published when subscribed
	replay []Event // the events after the resume point that match, in order
	// reason is empty when the history covered the resume point, else why
	// not (a resync reason).
	reason, message string
}

// Resync reasons, the "reason" of a resync event.
const (
	resyncInvalid = "invalid_event_id" // not an id this store makes
	resyncUnknown = "unknown_event_id" // of another node or an earlier run of this one
	resyncTrimmed = "history_trimmed"  // older than the oldest event kept
)

// subscribeFrom subscribes like subscribe and, atomically with it, reads
// the history after the event id lastID (see eventID): no event is both
// replayed and received, and none falls between. If the history does not
// reach back to lastID, the result says why and replays nothing.
func (b *bus) subscribeFrom(match func(Event) bool, buffer int, lastID string) (*subscriber, resumeResult) {
	s := &subscriber{match: match, ch: make(chan Event, buffer), lost: make(chan struct{})}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs[s] = struct{}{}
	r := resumeResult{head: b.seq}
	if lastID == "" {
		return s, r
	}
	epoch, after, ok := parseEventID(lastID)
	oldest := b.seq + 1
	if len(b.hist) > 0 {
		oldest = b.hist[0].Seq
	}
	switch {
	case !ok:
		r.reason, r.message = resyncInvalid, fmt.Sprintf("%q is not an event id of a kv watch", truncateKey([]byte(lastID)))
	case epoch != b.epoch:
		r.reason, r.message = resyncUnknown, "the event id is of another node, or of this node before it restarted"
	case after > b.seq:
		r.reason, r.message = resyncInvalid, fmt.Sprintf("event %d has not happened on this node (the last is %d)", after, b.seq)
	case after+1 < oldest:
		r.reason, r.message = resyncTrimmed, fmt.Sprintf("the changes after event %d are no longer kept (the oldest kept is %d)", after, oldest)
	default:
		for _, ev := range b.hist[after+1-oldest:] {
			if match(ev) {
				r.replay = append(r.replay, ev)
			}
		}
	}
	return s, r
}

// quietHead returns the Seq of the last event published, and whether s
// has received every event it matched up to it (its channel is empty):
// then that Seq is a position from which s's client resumes losing
// nothing, once it has read what the watch took from s.
func (b *bus) quietHead(s *subscriber) (uint64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seq, len(s.ch) == 0
}

// unsubscribe removes s; it is idempotent.
func (b *bus) unsubscribe(s *subscriber) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}

// eventSize is what an event costs the history, roughly.
func eventSize(ev Event) int {
	return len(ev.Entry.Key) + len(ev.Entry.Value) + len(ev.Entry.Version.Node) + 96
}

// publish numbers ev, keeps it in the history and offers it to every
// interested subscriber without blocking.
func (b *bus) publish(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	ev.Seq = b.seq
	b.hist = append(b.hist, ev)
	b.histBytes += eventSize(ev)
	drop := 0
	for len(b.hist)-drop > 1 && (len(b.hist)-drop > b.maxEvents || b.histBytes > b.maxBytes) {
		b.histBytes -= eventSize(b.hist[drop])
		drop++
	}
	if drop > 0 {
		clear(b.hist[:drop]) // the values are garbage now
		b.hist = b.hist[drop:]
		if cap(b.hist) > 4*b.maxEvents {
			b.hist = append([]Event(nil), b.hist...)
		}
	}
	for s := range b.subs {
		if !s.match(ev) {
			continue
		}
		select {
		case s.ch <- ev:
			continue
		default:
		}
		if s.dropped != nil {
			s.dropped()
			continue
		}
		delete(b.subs, s)
		s.lostOnce.Do(func() { close(s.lost) })
	}
}

// eventID is the id of event seq of the bus of epoch: "EPOCH-SEQ".
func eventID(epoch string, seq uint64) string {
	return epoch + "-" + strconv.FormatUint(seq, 10)
}

// parseEventID splits an id made by eventID.
func parseEventID(id string) (epoch string, seq uint64, ok bool) {
	epoch, s, found := strings.Cut(id, "-")
	if !found || epoch == "" {
		return "", 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return "", 0, false
	}
	return epoch, n, true
}
