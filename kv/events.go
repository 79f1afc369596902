package kv

import (
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

// bus fans events out to subscribers. Its methods are safe for concurrent
// use; publish is called with the store's lock held (so events leave in
// the order of the changes) and never blocks.
type bus struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

func newBus() *bus { return &bus{subs: map[*subscriber]struct{}{}} }

// subscribe adds a subscriber for the events match accepts.
func (b *bus) subscribe(match func(Event) bool, buffer int, dropped func()) *subscriber {
	s := &subscriber{match: match, ch: make(chan Event, buffer), lost: make(chan struct{}), dropped: dropped}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// unsubscribe removes s; it is idempotent.
func (b *bus) unsubscribe(s *subscriber) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}

// publish offers ev to every interested subscriber without blocking.
func (b *bus) publish(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
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
