package locks

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// historyRecorder collects the audit events of every node of a cluster.
// Each node applies the same commands, so events are keyed by (Raft
// index, position in the command): a node replaying its log after a
// restart reports the same events again, and any difference between two
// nodes' events for one key is a divergence of their state machines.
//
// The union is the complete history: every committed command was applied
// "live" (not only through a snapshot) by at least the first node that
// applied it, and that node reported it.
type historyRecorder struct {
	mu        sync.Mutex
	events    map[[2]uint64]auditEvent
	grants    int
	byName    map[string]int // grants by name
	conflicts []string
}

func newHistoryRecorder() *historyRecorder {
	return &historyRecorder{events: map[[2]uint64]auditEvent{}, byName: map[string]int{}}
}

// record is the audit hook; it runs on each node's FSM goroutine.
func (h *historyRecorder) record(e auditEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := [2]uint64{e.Index, uint64(e.Seq)}
	if old, ok := h.events[k]; ok {
		if old != e && len(h.conflicts) < 10 {
			h.conflicts = append(h.conflicts, fmt.Sprintf("index %d event %d: %+v vs %+v", e.Index, e.Seq, old, e))
		}
		return
	}
	h.events[k] = e
	if e.Type == auditGrant {
		h.grants++
		h.byName[e.Name]++
	}
}

func (h *historyRecorder) grantsOf(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byName[name]
}

// history returns the events in commit order, and the divergences seen.
func (h *historyRecorder) history() ([]auditEvent, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]auditEvent, 0, len(h.events))
	for _, e := range h.events {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b auditEvent) int {
		return cmp.Or(cmp.Compare(a.Index, b.Index), cmp.Compare(a.Seq, b.Seq))
	})
	return out, slices.Clone(h.conflicts)
}

type nameKey struct {
	kind kind
	name string
}

// historyStats summarises a checked history.
type historyStats struct {
	grants     int
	ends       map[string]int // by reason
	maxHolders map[nameKey]int
	maxReaders map[nameKey]int
	writes     map[nameKey]int
}

func (s historyStats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d grants, ends %v", s.grants, s.ends)
	for k, n := range s.maxHolders {
		fmt.Fprintf(&b, "; %s %s: at most %d holders", k.kind, k.name, n)
	}
	return b.String()
}

// checkHistory replays a history in commit order and fails at the first
// event that breaks the safety rules: a semaphore granted beyond its
// limit, a lock granted to a writer beside anyone or to a reader beside a
// writer, a token not above every earlier one, a grant to a holder that
// already holds, or the end of a hold that does not exist. Wall-clock
// times play no part: commit order alone says who held what at once.
func checkHistory(events []auditEvent) (historyStats, error) {
	st := historyStats{ends: map[string]int{}, maxHolders: map[nameKey]int{}, maxReaders: map[nameKey]int{}, writes: map[nameKey]int{}}
	type hold struct {
		token uint64
		mode  mode
	}
	held := map[nameKey]map[string]hold{}
	limits := map[nameKey]int{}
	var lastToken uint64
	var prev auditEvent
	for i, e := range events {
		if i > 0 && cmp.Or(cmp.Compare(e.Index, prev.Index), cmp.Compare(e.Seq, prev.Seq)) <= 0 {
			return st, fmt.Errorf("events out of commit order at index %d", e.Index)
		}
		prev = e
		k := nameKey{e.Kind, e.Name}
		hs := held[k]
		if hs == nil {
			hs = map[string]hold{}
			held[k] = hs
		}
		switch e.Type {
		case auditLimit:
			if e.Limit == 0 {
				if len(hs) > 0 {
					return st, fmt.Errorf("index %d: %s deleted with %d holds not ended", e.Index, e.Name, len(hs))
				}
				delete(limits, k)
			} else {
				limits[k] = e.Limit
			}
		case auditGrant:
			if e.Token <= lastToken {
				return st, fmt.Errorf("index %d: token %d granted to %s after token %d", e.Index, e.Token, e.Holder, lastToken)
			}
			lastToken = e.Token
			if _, dup := hs[e.Holder]; dup {
				return st, fmt.Errorf("index %d: %s granted %s %q while holding it", e.Index, e.Holder, e.Kind, e.Name)
			}
			switch e.Kind {
			case kindSemaphore:
				limit, ok := limits[k]
				if !ok {
					return st, fmt.Errorf("index %d: grant of semaphore %q, which does not exist", e.Index, e.Name)
				}
				if len(hs)+1 > limit {
					return st, fmt.Errorf("index %d: %s granted semaphore %q (token %d) while %d of %d slots were held: %v",
						e.Index, e.Holder, e.Name, e.Token, len(hs), limit, hs)
				}
			case kindLock:
				for id, h := range hs {
					if e.Mode == modeWrite || h.mode == modeWrite {
						return st, fmt.Errorf("index %d: %s granted lock %q for %s (token %d) while %s held it for %s (token %d)",
							e.Index, e.Holder, e.Name, e.Mode, e.Token, id, h.mode, h.token)
					}
				}
				if e.Mode == modeWrite {
					st.writes[k]++
				}
			}
			hs[e.Holder] = hold{token: e.Token, mode: e.Mode}
			st.grants++
			st.maxHolders[k] = max(st.maxHolders[k], len(hs))
			if e.Mode == modeRead {
				st.maxReaders[k] = max(st.maxReaders[k], len(hs))
			}
		case auditEnd:
			h, ok := hs[e.Holder]
			if !ok || h.token != e.Token {
				return st, fmt.Errorf("index %d: end (%s) of a hold of %s %q by %s with token %d that does not exist",
					e.Index, e.Reason, e.Kind, e.Name, e.Holder, e.Token)
			}
			delete(hs, e.Holder)
			st.ends[e.Reason]++
		default:
			return st, fmt.Errorf("index %d: unknown event type %d", e.Index, e.Type)
		}
	}
	return st, nil
}

// breakHistory returns a copy of events with one extra grant slipped in
// where name is held to its limit (for a lock: a writer beside a holder),
// which checkHistory must reject. ok is false if no such point exists.
func breakHistory(events []auditEvent, k nameKey, limit int) ([]auditEvent, bool) {
	count := 0
	for i, e := range events {
		if e.Kind != k.kind || e.Name != k.name {
			continue
		}
		switch e.Type {
		case auditGrant:
			count++
		case auditEnd:
			count--
		}
		full := count == limit // a semaphore at its limit
		if k.kind == kindLock {
			full = count > 0 // a lock held at all: an extra writer conflicts
		}
		if !full || i+1 >= len(events) || events[i+1].Index == e.Index {
			continue
		}
		var maxToken uint64
		for _, x := range events[:i+1] {
			if x.Type == auditGrant {
				maxToken = max(maxToken, x.Token)
			}
		}
		// Its token is above every earlier one, so the only thing wrong
		// with it is the overlap.
		intruder := auditEvent{Index: e.Index, Seq: e.Seq + 1, Type: auditGrant, Kind: k.kind, Name: k.name,
			Holder: "intruder", Mode: modeWrite, Token: maxToken + 1}
		if k.kind == kindSemaphore {
			intruder.Mode = modeSlot
		}
		out := slices.Clone(events[:i+1])
		out = append(out, intruder)
		return append(out, events[i+1:]...), true
	}
	return nil, false
}

func TestCheckHistory_AcceptsSafeAndRejectsUnsafeHistories(t *testing.T) {
	sem := func(idx uint64, typ auditType, holder string, token uint64) auditEvent {
		return auditEvent{Index: idx, Type: typ, Kind: kindSemaphore, Name: "s", Holder: holder, Token: token, Reason: "release"}
	}
	lk := func(idx uint64, typ auditType, holder string, m mode, token uint64) auditEvent {
		return auditEvent{Index: idx, Type: typ, Kind: kindLock, Name: "l", Holder: holder, Mode: m, Token: token, Reason: "release"}
	}
	create := auditEvent{Index: 1, Type: auditLimit, Kind: kindSemaphore, Name: "s", Limit: 2}
	tests := []struct {
		name   string
		events []auditEvent
		ok     bool
	}{
		{"safe semaphore", []auditEvent{create, sem(2, auditGrant, "a", 2), sem(3, auditGrant, "b", 3), sem(4, auditEnd, "a", 2), sem(5, auditGrant, "c", 5)}, true},
		{"over the limit", []auditEvent{create, sem(2, auditGrant, "a", 2), sem(3, auditGrant, "b", 3), sem(4, auditGrant, "c", 4)}, false},
		{"token not increasing", []auditEvent{create, sem(2, auditGrant, "a", 5), sem(3, auditGrant, "b", 4)}, false},
		{"end without grant", []auditEvent{create, sem(2, auditEnd, "a", 2)}, false},
		{"end of another token", []auditEvent{create, sem(2, auditGrant, "a", 2), sem(3, auditEnd, "a", 9)}, false},
		{"double grant", []auditEvent{create, sem(2, auditGrant, "a", 2), sem(3, auditGrant, "a", 3)}, false},
		{"grant before create", []auditEvent{sem(2, auditGrant, "a", 2)}, false},
		{"readers together", []auditEvent{lk(2, auditGrant, "r1", modeRead, 2), lk(3, auditGrant, "r2", modeRead, 3), lk(4, auditEnd, "r1", modeRead, 2), lk(5, auditEnd, "r2", modeRead, 3), lk(6, auditGrant, "w", modeWrite, 6)}, true},
		{"writer beside a reader", []auditEvent{lk(2, auditGrant, "r1", modeRead, 2), lk(3, auditGrant, "w", modeWrite, 3)}, false},
		{"reader beside a writer", []auditEvent{lk(2, auditGrant, "w", modeWrite, 2), lk(3, auditGrant, "r", modeRead, 3)}, false},
	}
	for _, tt := range tests {
		_, err := checkHistory(tt.events)
		if (err == nil) != tt.ok {
			t.Errorf("%s: got %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	// The negative control the cluster tests use must produce a history
	// the checker rejects.
	safe := tests[0].events
	broken, ok := breakHistory(safe, nameKey{kindSemaphore, "s"}, 2)
	if !ok {
		t.Fatal("breakHistory found no full point")
	}
	if _, err := checkHistory(broken); err == nil || !strings.Contains(err.Error(), "intruder granted") {
		t.Fatalf("the checker did not catch the intruder: %v", err)
	}
}
