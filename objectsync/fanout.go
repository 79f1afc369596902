package objectsync

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"

	"shoal/objectsync/internal/document"
	"shoal/objectsync/internal/protocol"
)

// A frame is one server message, encoded once and sent as the same bytes
// to every subscriber it concerns (websockets send b; SSE watches send b
// as the data of an event of type kind whose id is ver).
type frame struct {
	kind    string // protocol.TypeObject, TypePatch, TypeRemoved or TypeError
	id      string
	seq     uint64 // the state a subscriber holds after it; 0 after removed
	fromSeq uint64 // a patch's base state
	ver     string // the version after it, canonical JSON ("" for removed)
	b       []byte
}

// fullFrame returns the "object" frame of o, encoding it on first use.
func (o *object) fullFrame() *frame {
	if f := o.full.Load(); f != nil {
		return f
	}
	f := &frame{kind: protocol.TypeObject, id: o.id, seq: o.seq, ver: o.ver.String(),
		b: protocol.Encode(protocol.Message{Type: protocol.TypeObject, ID: o.id,
			Version: json.RawMessage(o.ver.String()), Object: json.RawMessage(o.data)})}
	o.full.CompareAndSwap(nil, f)
	return o.full.Load()
}

// frame returns the "patch" frame of e for object id, encoding it on first
// use.
func (e *patchEntry) patchFrame(id string) *frame {
	if f := e.frame.Load(); f != nil {
		return f
	}
	f := &frame{kind: protocol.TypePatch, id: id, seq: e.toSeq, fromSeq: e.fromSeq, ver: e.to,
		b: protocol.Encode(protocol.Message{Type: protocol.TypePatch, ID: id,
			From: json.RawMessage(e.from), To: json.RawMessage(e.to), Patch: json.RawMessage(e.patch)})}
	e.frame.CompareAndSwap(nil, f)
	return e.frame.Load()
}

func removedFrame(id string) *frame {
	return &frame{kind: protocol.TypeRemoved, id: id, b: protocol.Encode(protocol.Message{Type: protocol.TypeRemoved, ID: id})}
}

func errorFrame(code, message, ref string) *frame {
	return &frame{kind: protocol.TypeError, b: protocol.Encode(protocol.Message{Type: protocol.TypeError, Code: code, Message: message, Ref: ref})}
}

// Errors of a sink.
var (
	errFull   = errors.New("subscriber queue is full")
	errClosed = errors.New("subscriber is gone")
)

// A sink is where a subscriber's frames go: a websocket or an SSE watch.
// Its methods never block and may be called from any goroutine.
type sink interface {
	// send queues f, or fails with errFull or errClosed.
	send(f *frame) error
	// replace discards every queued frame and queues f instead.
	replace(f *frame) error
	// queued returns how many frames wait.
	queued() int
}

// session is one subscriber (a websocket connection or an SSE watch) as
// the fan-out sees it. Its fields are guarded by fanout.mu.
type session struct {
	sink     sink
	capacity int
	exact    map[string]struct{}
	patterns map[string]struct{}
	// sent is, for each object the subscriber was sent, the state (seq) it
	// holds: a patch is sent only if it starts there.
	sent    map[string]uint64
	lagging bool                // frames were dropped: missed ids get full states
	missed  map[string]struct{} // ids whose next frame must be a full state
	// ahead holds, for an id subscribed with a have_version newer than
	// this node's state (this node lags: it restarted, say), the version
	// the subscriber holds: it gets nothing until this node catches up,
	// so that its version never goes back.
	ahead  map[string]string
	closed bool
}

func (s *session) wants(id string) bool {
	if _, ok := s.exact[id]; ok {
		return true
	}
	for p := range s.patterns {
		if covers(p, id) {
			return true
		}
	}
	return false
}

// covers reports whether pattern p covers object id. The introspection
// objects (shoal:...) are covered only by patterns that name them: a
// catch-all subscriber does not want them every second.
func covers(p, id string) bool {
	if strings.HasPrefix(id, reservedPrefix) && !strings.HasPrefix(p, reservedPrefix) {
		return false
	}
	return document.Match(p, id)
}

func (s *session) subscriptions() int { return len(s.exact) + len(s.patterns) }

// fanout is the set of this node's subscribers. Lock order: fanout.mu
// before the module's state lock; the state machine never holds both (it
// publishes a change after releasing the state lock).
type fanout struct {
	mu       sync.Mutex
	exact    map[string]map[*session]struct{}
	patterns map[string]map[*session]struct{}
	sessions map[*session]struct{}
	lagging  int

	kick chan struct{} // one token: a session started lagging
	// lookup reads an object of the current state (under the state's read
	// lock); nil if absent.
	lookup func(id string) *object
	// match lists the objects of the current state whose id matches pattern.
	match func(pattern string) []*object
	m     *metrics
	// onDemand, if set, is called (under mu; it must not block) when the
	// set of exactly subscribed ids may have changed.
	onDemand func()
}

func (fo *fanout) demandChanged() {
	if fo.onDemand != nil {
		fo.onDemand()
	}
}

func newFanout(lookup func(string) *object, match func(string) []*object, m *metrics) *fanout {
	return &fanout{
		exact: map[string]map[*session]struct{}{}, patterns: map[string]map[*session]struct{}{},
		sessions: map[*session]struct{}{}, kick: make(chan struct{}, 1), lookup: lookup, match: match, m: m,
	}
}

func (fo *fanout) open(sk sink, capacity int) *session {
	s := &session{sink: sk, capacity: capacity, exact: map[string]struct{}{}, patterns: map[string]struct{}{},
		sent: map[string]uint64{}, missed: map[string]struct{}{}, ahead: map[string]string{}}
	fo.mu.Lock()
	fo.sessions[s] = struct{}{}
	fo.mu.Unlock()
	return s
}

// close forgets a session and its subscriptions.
func (fo *fanout) close(s *session) {
	fo.mu.Lock()
	defer fo.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	for id := range s.exact {
		fo.unindex(fo.exact, id, s)
	}
	if len(s.exact) > 0 {
		fo.demandChanged()
	}
	for p := range s.patterns {
		fo.unindex(fo.patterns, p, s)
	}
	if s.lagging {
		fo.lagging--
	}
	delete(fo.sessions, s)
	fo.m.subscriptions.Sub(float64(s.subscriptions()))
}

func (fo *fanout) unindex(idx map[string]map[*session]struct{}, key string, s *session) {
	set := idx[key]
	delete(set, s)
	if len(set) == 0 {
		delete(idx, key)
	}
}

// subscribe adds an id (or a pattern) to s and sends what the subscriber
// lacks: for an id, the full object, or, given the version have that the
// subscriber holds, nothing until the caller, once this node has caught
// up, calls resolve; for a pattern, the full state of each object that
// matches, but for those of haves (id -> the version the subscriber
// holds), which wait for resolve as an id with have does. It returns the
// ids to resolve. limit bounds s's subscriptions.
func (fo *fanout) subscribe(s *session, key string, pattern bool, have string, haves map[string]string, limit int) ([]string, error) {
	fo.mu.Lock()
	defer fo.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	idx, mine := fo.exact, s.exact
	if pattern {
		idx, mine = fo.patterns, s.patterns
	}
	if _, dup := mine[key]; !dup {
		if s.subscriptions() >= limit {
			return nil, ErrTooManySubscriptions.WithMessage("this connection has %d subscriptions; the limit is %d (--objectsync-max-subscriptions)", s.subscriptions(), limit)
		}
		mine[key] = struct{}{}
		if idx[key] == nil {
			idx[key] = map[*session]struct{}{}
		}
		idx[key][s] = struct{}{}
		fo.m.subscriptions.Inc()
		if !pattern {
			fo.demandChanged()
		}
	}
	// An id the subscriber holds waits for resolve, once this node has
	// caught up, so that a lagging node never sends a version older than
	// the one held; until then deliver handles updates against it.
	waits := func(id, have string) bool {
		if _, had := s.sent[id]; have == "" || had || s.lagging {
			return false
		}
		s.ahead[id] = have
		return true
	}
	var resolve []string
	if pattern {
		for _, o := range fo.match(key) {
			if _, waiting := s.ahead[o.id]; waiting {
				continue // another subscription's resolve answers it
			}
			if waits(o.id, haves[o.id]) {
				resolve = append(resolve, o.id)
				continue
			}
			fo.deliver(s, o.id, o, nil)
		}
		for id, have := range haves {
			if fo.lookup(id) == nil && waits(id, have) {
				resolve = append(resolve, id) // removed meanwhile: resolve says so
			}
		}
		return resolve, nil
	}
	if waits(key, have) {
		return []string{key}, nil
	}
	if o := fo.lookup(key); o != nil {
		fo.deliver(s, key, o, nil)
	}
	return nil, nil
}

// resolve sends a subscriber that subscribed to id with a have_version
// what it lacks, once this node has caught up (the caller ran a read
// barrier): nothing if it holds the current version, the patches from
// have if have is in the history, the removal if the object is gone, else
// the full object.
func (fo *fanout) resolve(s *session, id string) {
	fo.mu.Lock()
	defer fo.mu.Unlock()
	have, ok := s.ahead[id]
	if !ok || s.closed {
		return // resolved by an update meanwhile, or unsubscribed
	}
	o := fo.lookup(id)
	switch {
	case o == nil:
		delete(s.ahead, id)
		s.sent[id] = 0
		fo.deliver(s, id, nil, nil)
	case o.ver.String() == have:
		delete(s.ahead, id)
		s.sent[id] = o.seq
	default:
		if entries, ok := o.catchUp(have); ok {
			delete(s.ahead, id)
			s.sent[id] = entries[0].fromSeq
			for _, e := range entries {
				fo.deliver(s, id, o, e)
			}
			fo.m.resumes.WithLabelValues("patches").Inc()
			return
		}
		if c, ok := document.Compare(o.ver, document.MustVersion(have)); ok && c < 0 {
			return // still behind have (removed and written again?): wait
		}
		delete(s.ahead, id)
		fo.m.resumes.WithLabelValues("full").Inc()
		fo.deliver(s, id, o, nil)
	}
}

// unsubscribe removes an id or pattern from s.
func (fo *fanout) unsubscribe(s *session, key string, pattern bool) {
	fo.mu.Lock()
	defer fo.mu.Unlock()
	idx, mine := fo.exact, s.exact
	if pattern {
		idx, mine = fo.patterns, s.patterns
	}
	if _, ok := mine[key]; !ok {
		return
	}
	delete(mine, key)
	fo.unindex(idx, key, s)
	fo.m.subscriptions.Dec()
	if !pattern {
		fo.demandChanged()
	}
	for id := range s.sent {
		if !s.wants(id) {
			delete(s.sent, id)
			delete(s.missed, id)
		}
	}
	for id := range s.ahead {
		if !s.wants(id) {
			delete(s.ahead, id)
		}
	}
}

// publish sends a change to every subscriber it concerns. The state
// machine calls it after each change, in log order, never holding the
// state lock; it never blocks on a subscriber.
func (fo *fanout) publish(ch *change) {
	fo.mu.Lock()
	defer fo.mu.Unlock()
	for s := range fo.exact[ch.id] {
		fo.deliver(s, ch.id, ch.obj, ch.entry)
	}
	for p, set := range fo.patterns {
		if !covers(p, ch.id) {
			continue
		}
		for s := range set {
			if _, exact := s.exact[ch.id]; exact {
				continue // served above
			}
			fo.deliver(s, ch.id, ch.obj, ch.entry)
		}
	}
}

// deliver sends s what it needs to hold state o of object id (o nil:
// removed), given that entry, if not nil, is the patch that made o. A
// subscriber that holds the patch's base gets the patch; one that holds
// o already gets nothing; any other gets the full state. The caller holds
// fo.mu.
func (fo *fanout) deliver(s *session, id string, o *object, entry *patchEntry) {
	if have, ok := s.ahead[id]; ok {
		switch {
		case o == nil:
			delete(s.ahead, id)
			s.sent[id] = 0 // holds something: send the removal
		case o.ver.String() == have:
			delete(s.ahead, id)
			s.sent[id] = o.seq
			return
		case entry != nil && entry.from == have:
			delete(s.ahead, id)
			s.sent[id] = entry.fromSeq
		default:
			if c, ok := document.Compare(o.ver, document.MustVersion(have)); ok && c < 0 {
				return // still behind
			}
			delete(s.ahead, id)
			s.sent[id] = 0
		}
	}
	sent, had := s.sent[id]
	var f *frame
	switch {
	case o == nil:
		if !had {
			delete(s.missed, id)
			return
		}
		f = removedFrame(id)
	case sent == o.seq:
		return
	case entry != nil && had && sent == entry.fromSeq:
		f = entry.patchFrame(id)
	default:
		f = o.fullFrame()
	}
	if s.lagging {
		s.missed[id] = struct{}{}
		return
	}
	switch err := s.sink.send(f); {
	case err == nil:
		fo.sent(s, id, f)
	case errors.Is(err, errFull):
		fo.collapse(s, id, o)
	}
}

func (fo *fanout) sent(s *session, id string, f *frame) {
	fo.m.frameQueued(f.kind)
	if f.kind == protocol.TypeRemoved {
		delete(s.sent, id)
	} else {
		s.sent[id] = f.seq
	}
	delete(s.missed, id)
}

// collapse handles a subscriber whose queue is full: what it has not
// received yet is discarded and replaced by the full state of id (or its
// removal); every other object it was sent is marked for a full state,
// which the resync loop sends as the queue drains. The caller holds fo.mu.
func (fo *fanout) collapse(s *session, id string, o *object) {
	fo.m.collapses.Inc()
	f := removedFrame(id)
	if o != nil {
		f = o.fullFrame()
	}
	if err := s.sink.replace(f); err != nil {
		return // closed
	}
	// What was sent to the others may have been discarded: their next
	// frame is a full state (their entries in sent only say that the
	// subscriber may hold them, for a removal).
	for other := range s.sent {
		if other != id {
			s.missed[other] = struct{}{}
		}
	}
	fo.sent(s, id, f)
	if len(s.missed) > 0 && !s.lagging {
		s.lagging = true
		fo.lagging++
		signal(fo.kick)
	}
}

// resyncAll marks, after the state was replaced by a snapshot, every
// object each subscriber holds or wants for a full state (or removal).
func (fo *fanout) resyncAll() {
	fo.mu.Lock()
	defer fo.mu.Unlock()
	for s := range fo.sessions {
		for id := range s.sent {
			s.missed[id] = struct{}{}
		}
		for id := range s.exact {
			s.missed[id] = struct{}{}
		}
		for p := range s.patterns {
			for _, o := range fo.match(p) {
				s.missed[o.id] = struct{}{}
			}
		}
		if len(s.missed) > 0 && !s.lagging {
			s.lagging = true
			fo.lagging++
		}
	}
	signal(fo.kick)
}

// resync sends lagging subscribers the full states they missed, as far as
// their queues have room (half of them), and reports whether any is still
// lagging.
func (fo *fanout) resync() bool {
	fo.mu.Lock()
	defer fo.mu.Unlock()
	for s := range fo.sessions {
		if !s.lagging {
			continue
		}
		for id := range s.missed {
			if s.sink.queued() >= s.capacity/2 {
				break
			}
			if !s.wants(id) {
				delete(s.missed, id)
				delete(s.sent, id)
				continue
			}
			o := fo.lookup(id)
			_, had := s.sent[id]
			var f *frame
			switch {
			case o == nil && !had:
				delete(s.missed, id)
				continue
			case o == nil:
				f = removedFrame(id)
			default:
				// Even if sent says it holds o: that frame may have been
				// discarded by the collapse.
				f = o.fullFrame()
			}
			if err := s.sink.send(f); err != nil {
				break
			}
			fo.sent(s, id, f)
		}
		if len(s.missed) == 0 {
			s.lagging = false
			fo.lagging--
		}
	}
	return fo.lagging > 0
}

// sendError queues an error frame; a full queue drops it.
func (fo *fanout) sendError(s *session, code, message, ref string) {
	if err := s.sink.send(errorFrame(code, message, ref)); err != nil {
		fo.m.errorsDropped.Inc()
	}
}
