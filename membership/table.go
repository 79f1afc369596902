package membership

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Status is a member's state as this node sees it.
type Status string

// The statuses of a member.
const (
	// StatusAlive: the member answers probes.
	StatusAlive Status = "alive"
	// StatusSuspect is reserved for a member that missed probes and may be
	// dead. memberlist v0.5 does not expose its suspicion state (suspect
	// members are reported alive), so this package does not report it yet.
	StatusSuspect Status = "suspect"
	// StatusDead: the member failed probes and did not refute.
	StatusDead Status = "dead"
	// StatusLeft: the member left gracefully (Leave).
	StatusLeft Status = "left"
)

// Member is one node of the cluster as this node sees it.
type Member struct {
	Name string
	// Addr is the gossip host:port the member is reachable at.
	Addr   string
	Status Status
	Meta   Meta
	// Since is the local time Status last changed.
	Since time.Time
}

// Up reports whether the member is alive or suspect.
func (m Member) Up() bool { return m.Status == StatusAlive || m.Status == StatusSuspect }

func (m Member) clone() Member {
	m.Meta = m.Meta.Clone()
	return m
}

// EventKind says what happened to a member.
type EventKind int

// The kinds of Event.
const (
	// EventJoin: a member joined, or came back after it was dead or left.
	EventJoin EventKind = iota + 1
	// EventUpdate: a member's Meta or address changed.
	EventUpdate
	// EventLeave: a member is dead or left; Member.Status says which.
	EventLeave
)

func (k EventKind) String() string {
	switch k {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventLeave:
		return "leave"
	default:
		return "unknown"
	}
}

// Event is a change of one member, with the member as it is after it.
type Event struct {
	Kind   EventKind
	Member Member
}

// Subscription receives membership events; see Membership.Subscribe.
type Subscription struct {
	// C delivers the events in the order they happened. It is closed by
	// Close and by Membership.Shutdown.
	C <-chan Event

	c chan Event
	m *Membership
}

// Close stops the subscription and closes C. It is idempotent and safe to
// call concurrently with event delivery.
func (s *Subscription) Close() {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if _, ok := s.m.subs[s]; ok {
		delete(s.m.subs, s)
		close(s.c)
	}
}

// entry is one row of the member table.
type entry struct {
	member  Member
	leaving bool // the member announced a graceful leave in its meta
}

// Subscribe returns a subscription to membership events with a channel
// buffer of buffer events (at least 1). Delivery never blocks memberlist:
// if the buffer is full, the event is dropped and counted in
// shoal_membership_events_dropped_total, so a consumer must treat events as
// hints and reconcile from Members (for example after noticing a gap, or
// periodically). Events that happened before Subscribe are not replayed.
// After Shutdown, Subscribe returns an already closed subscription.
func (m *Membership) Subscribe(buffer int) *Subscription {
	c := make(chan Event, max(buffer, 1))
	s := &Subscription{C: c, c: c, m: m}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		close(c)
		return s
	}
	m.subs[s] = struct{}{}
	return s
}

// Members returns every member this node knows, itself included, dead and
// left ones too until Forget, sorted by name. The result is a copy.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	out := make([]Member, 0, len(m.members))
	for _, e := range m.members {
		out = append(out, e.member.clone())
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Member returns the member called name.
func (m *Membership) Member(name string) (Member, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.members[name]
	if !ok {
		return Member{}, false
	}
	return e.member.clone(), true
}

// LocalMember returns this node as the table sees it.
func (m *Membership) LocalMember() Member {
	mem, _ := m.Member(m.cfg.NodeName) // memberlist reports itself during New
	return mem
}

// NumAlive returns how many members are alive or suspect, this node
// included (unless it left).
func (m *Membership) NumAlive() int {
	return int(m.numUp.Load())
}

// Forget removes a dead or left member from the table; it does nothing to
// a member that is alive or suspect, or unknown. Call it once the member is
// gone for good (Raft removed it). If the node comes back, it reappears.
func (m *Membership) Forget(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.members[name]
	if !ok || e.member.Up() {
		return
	}
	delete(m.members, name)
	m.recountLocked()
	m.logger.Debug("forgot member", "member", name, "status", e.member.Status)
}

// events is memberlist's EventDelegate. memberlist calls it with its node
// lock held, one call at a time: it must not call into memberlist and must
// not block.
type events struct{ m *Membership }

var _ memberlist.EventDelegate = events{}

func (ev events) NotifyJoin(n *memberlist.Node)   { ev.m.nodeChanged(n, EventJoin) }
func (ev events) NotifyUpdate(n *memberlist.Node) { ev.m.nodeChanged(n, EventUpdate) }
func (ev events) NotifyLeave(n *memberlist.Node)  { ev.m.nodeChanged(n, EventLeave) }

// nodeChanged applies one memberlist notification to the table and
// publishes the resulting event.
func (m *Membership) nodeChanged(n *memberlist.Node, kind EventKind) {
	meta, leaving, err := decodeMeta(n.Meta)
	if err != nil {
		m.logger.Warn("ignoring undecodable member meta", "member", n.Name, "error", err)
	}
	now := time.Now()

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	e, known := m.members[n.Name]
	if !known {
		e = &entry{member: Member{Name: n.Name}}
		m.members[n.Name] = e
	}
	old := e.member
	e.member.Addr = n.Address()
	if err == nil {
		e.member.Meta = meta
		e.leaving = leaving
	}

	status := StatusAlive
	if kind == EventLeave {
		// memberlist v0.5 never fills Node.State, so whether the member
		// left or failed comes from its leave announcement (see Leave).
		status = StatusDead
		if e.leaving || (n.Name == m.cfg.NodeName && m.leaveStarted.Load()) {
			status = StatusLeft
		}
	}
	if !known || status != old.Status {
		e.member.Status = status
		e.member.Since = now
	}
	m.recountLocked()

	switch {
	case kind == EventUpdate && !known:
		kind = EventJoin // forgotten earlier, now back
	case kind == EventUpdate && old.Status != StatusAlive:
		kind = EventJoin
	case kind == EventUpdate && old.Addr == e.member.Addr && old.Meta.Equal(e.member.Meta):
		return // only the internal leave flag changed
	}
	m.publishLocked(Event{Kind: kind, Member: e.member})
	level := slog.LevelInfo
	if kind == EventUpdate {
		level = slog.LevelDebug
	}
	m.logger.Log(context.Background(), level, "member "+kind.String(), "member", n.Name, "addr", e.member.Addr, "status", e.member.Status)
}

// publishLocked delivers ev to every subscriber without blocking.
func (m *Membership) publishLocked(ev Event) {
	for s := range m.subs {
		select {
		case s.c <- Event{Kind: ev.Kind, Member: ev.Member.clone()}:
		default:
			m.metrics.eventsDropped.Inc()
		}
	}
}

// recountLocked refreshes the member gauges and the up count.
func (m *Membership) recountLocked() {
	counts := map[Status]int{StatusAlive: 0, StatusSuspect: 0, StatusDead: 0, StatusLeft: 0}
	up := 0
	var peers []*memberlist.Node
	for _, e := range m.members {
		counts[e.member.Status]++
		if !e.member.Up() {
			continue
		}
		up++
		if e.member.Name == m.cfg.NodeName {
			continue
		}
		if nd, err := nodeAt(e.member); err == nil {
			peers = append(peers, nd)
		}
	}
	m.numUp.Store(int32(up))
	m.upPeers.Store(&peers)
	for st, n := range counts {
		m.metrics.members.WithLabelValues(string(st)).Set(float64(n))
	}
}

// closeTable closes every subscription and stops the table from changing.
func (m *Membership) closeTable() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for s := range m.subs {
		delete(m.subs, s)
		close(s.c)
	}
}

// table is the member table; mu guards everything in it.
type table struct {
	mu      sync.Mutex
	members map[string]*entry
	subs    map[*Subscription]struct{}
	closed  bool
}
