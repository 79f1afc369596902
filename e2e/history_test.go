//go:build e2e

package e2e

// This file holds the checkers of recorded histories: porcupine models of
// a log and of a semaphore, the linearizability check that saves
// porcupine's visualisation when it fails, and the check of a log read in
// full against what the publishing clients were told. Each checker has a
// negative control in history_control_test.go.

import (
	"fmt"
	"hash/fnv"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"shoal/client"
)

// history records the operations of concurrent clients for porcupine, with
// call and return times on one monotonic clock.
type history struct {
	base time.Time
	mu   sync.Mutex
	ops  []porcupine.Operation
}

func newHistory() *history { return &history{base: time.Now()} }

// now is the time since the history started, in nanoseconds, monotonic.
func (h *history) now() int64 { return int64(time.Since(h.base)) }

// add records one operation.
func (h *history) add(clientID int, in, out any, call, ret int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: clientID, Input: in, Output: out, Call: call, Return: ret})
}

// operations returns a copy of the recorded operations.
func (h *history) operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// pendingReturn is the return time of an operation whose outcome the client
// never learned: porcupine may place it anywhere after its call, also after
// every other operation (where it changes nothing anyone observed).
const pendingReturn = int64(1) << 62

// checkLinearizable checks ops against model. When porcupine finds the
// history illegal (or cannot decide within the bound), the test fails and
// the visualisation is saved as <dir>/<name>.html.
func checkLinearizable(t *testing.T, dir, name string, model porcupine.Model, ops []porcupine.Operation) {
	t.Helper()
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(model, ops, time.Minute)
	took := time.Since(start).Round(time.Millisecond)
	if res == porcupine.Ok {
		t.Logf("%s: %d operations are linearizable (checked in %v)", name, len(ops), took)
		return
	}
	path := filepath.Join(dir, name+".html")
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		t.Errorf("%s: save the visualisation: %v", name, err)
	}
	t.Errorf("%s: porcupine says %s for %d operations (after %v); visualisation: %s", name, res, len(ops), took, path)
}

// The log model. A log is a sequence of ids; a publish appends one and
// answers its index, a consistent read of index k answers the id there or
// "" when the log is shorter.

// logInput is a log operation: a publish of ID, or a read of Index.
type logInput struct {
	Read  bool
	ID    string
	Index uint64
}

// logOutput is its outcome: the publish's index, or the id read.
type logOutput struct {
	Unknown bool // the client gave up: it never learned the outcome
	Index   uint64
	ID      string
}

// logState is an immutable log: its length, a hash of its ids in order,
// and the last cell of a list shared between states.
type logState struct {
	n    uint64
	hash uint64
	tail *logCell
}

type logCell struct {
	id   string
	prev *logCell
}

func (s logState) appendID(id string) logState {
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(s.hash >> (8 * i))
	}
	h.Write(b[:])
	h.Write([]byte(id))
	return logState{n: s.n + 1, hash: h.Sum64(), tail: &logCell{id: id, prev: s.tail}}
}

// at returns the id at index k (1-based), which must be at most n.
func (s logState) at(k uint64) string {
	c := s.tail
	for i := s.n; i > k; i-- {
		c = c.prev
	}
	return c.id
}

var logModel = porcupine.Model{
	Init: func() any { return logState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(logState), input.(logInput), output.(logOutput)
		if in.Read {
			if in.Index > s.n {
				return out.ID == "", s
			}
			return out.ID == s.at(in.Index), s
		}
		if !out.Unknown && out.Index != s.n+1 {
			return false, s
		}
		return true, s.appendID(in.ID)
	},
	Equal: func(a, b any) bool {
		x, y := a.(logState), b.(logState)
		return x.n == y.n && x.hash == y.hash
	},
	Hash: func(state any) uint64 { return state.(logState).hash },
	DescribeOperation: func(input, output any) string {
		in, out := input.(logInput), output.(logOutput)
		switch {
		case in.Read:
			return fmt.Sprintf("read(%d) -> %q", in.Index, out.ID)
		case out.Unknown:
			return fmt.Sprintf("publish(%s) -> ?", in.ID)
		default:
			return fmt.Sprintf("publish(%s) -> %d", in.ID, out.Index)
		}
	},
	DescribeState: func(state any) string {
		s := state.(logState)
		if s.n == 0 {
			return "[]"
		}
		return fmt.Sprintf("[... %d entries, last %s]", s.n, s.tail.id)
	},
}

// The semaphore model. A semaphore of a fixed limit; every grant gets a
// fencing token greater than every earlier grant's; acquiring again while
// holding answers the same token. No lease expires during a test (the TTL
// is longer than any step), so expiry is not modelled.
//
// An acquire whose answer the client did not get (a timeout, a 503 other
// than no_leader) may have been granted; the node serving it then commits
// a cancel that releases the grant again, unless that fails too and the
// grant lives until its TTL (docs/locks.md). Such a grant is a phantom
// here: it holds a slot (and shows in reads) until the model drops it, at
// any step, or until the client's own next acquire claims it.

// semMaxHolders bounds the model's holder array; the semaphores of the
// suite have a smaller limit.
const semMaxHolders = 4

type semOp int

const (
	semAcquire semOp = iota
	semRelease
	semRead
)

type semInput struct {
	Op     semOp
	Holder string
	Limit  int
}

// semOutput is the outcome of a semaphore operation.
type semOutput struct {
	Unknown bool // the client did not learn the outcome
	// Acquire: granted with Token, or full.
	Granted bool
	Token   uint64
	// Release: released, or not_holder.
	Released bool
	// Read: the holders, sorted.
	Holders []semHolder
}

type semHolder struct {
	Holder  string
	Token   uint64 // 0: not known (a phantom nobody has read yet)
	Phantom bool   // granted to an acquire whose answer was lost
	Floor   uint64 // a phantom's token is above this: the last token when it was granted
}

func (h semHolder) String() string {
	if h.Phantom {
		return fmt.Sprintf("%s:%d?", h.Holder, h.Token)
	}
	return fmt.Sprintf("%s:%d", h.Holder, h.Token)
}

// semState is comparable, so porcupine's default == compares states.
type semState struct {
	holders [semMaxHolders]semHolder // sorted by holder; the first n are used
	n       int
	last    uint64 // the largest token known to be granted
}

func (s semState) find(holder string) int {
	for i := range s.n {
		if s.holders[i].Holder == holder {
			return i
		}
	}
	return -1
}

func (s semState) list() []semHolder { return slices.Clone(s.holders[:s.n]) }

func semStateOf(list []semHolder, last uint64) semState {
	slices.SortFunc(list, func(a, b semHolder) int { return strings.Compare(a.Holder, b.Holder) })
	var out semState
	copy(out.holders[:], list)
	out.n, out.last = len(list), last
	for _, h := range list {
		out.last = max(out.last, h.Token)
	}
	return out
}

func (s semState) with(h semHolder) semState { return semStateOf(append(s.list(), h), s.last) }

func (s semState) without(i int) semState { return semStateOf(slices.Delete(s.list(), i, i+1), s.last) }

// dropPhantoms returns s with every subset of its phantoms released.
func (s semState) dropPhantoms() []semState {
	out := []semState{s}
	for i := range s.n {
		if !s.holders[i].Phantom {
			continue
		}
		for _, t := range slices.Clone(out) {
			if j := t.find(s.holders[i].Holder); j >= 0 {
				out = append(out, t.without(j))
			}
		}
	}
	return out
}

// semStep applies one operation to s; it returns the possible next states
// (none: the operation cannot have had that outcome in state s).
func semStep(s semState, in semInput, out semOutput) []semState {
	i := s.find(in.Holder)
	switch in.Op {
	case semAcquire:
		switch {
		case out.Unknown: // nothing happened, or a phantom grant
			if i < 0 && s.n < in.Limit && s.n < semMaxHolders {
				return []semState{s, s.with(semHolder{Holder: in.Holder, Phantom: true, Floor: s.last})}
			}
			return []semState{s}
		case !out.Granted: // full
			if i < 0 && s.n >= in.Limit {
				return []semState{s}
			}
			return nil
		case i >= 0: // holding already: the same token again
			held := s.holders[i]
			if held.Token != 0 && held.Token != out.Token {
				return nil
			}
			if held.Token == 0 && out.Token <= held.Floor {
				return nil
			}
			return []semState{s.without(i).with(semHolder{Holder: in.Holder, Token: out.Token})}
		case s.n < in.Limit && out.Token > s.last:
			return []semState{s.with(semHolder{Holder: in.Holder, Token: out.Token})}
		default:
			return nil
		}
	case semRelease:
		switch {
		case out.Unknown:
			if i >= 0 {
				return []semState{s, s.without(i)}
			}
			return []semState{s}
		case out.Released && i >= 0:
			return []semState{s.without(i)}
		case !out.Released && i < 0:
			return []semState{s}
		default:
			return nil
		}
	default: // read
		if len(out.Holders) != s.n {
			return nil
		}
		list := s.list()
		for j, h := range out.Holders {
			m := &list[j]
			if h.Holder != m.Holder || (m.Token != 0 && h.Token != m.Token) {
				return nil
			}
			if m.Token == 0 {
				if h.Token <= m.Floor {
					return nil
				}
				m.Token = h.Token // the read tells a phantom's token
			}
		}
		return []semState{semStateOf(list, s.last)}
	}
}

var semModel = (&porcupine.NondeterministicModel{
	Init: func() []any { return []any{semState{}} },
	Step: func(state, input, output any) []any {
		var next []any
		for _, s := range state.(semState).dropPhantoms() {
			for _, t := range semStep(s, input.(semInput), output.(semOutput)) {
				next = append(next, t)
			}
		}
		return next
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(semInput), output.(semOutput)
		res := "?"
		switch {
		case out.Unknown:
		case in.Op == semAcquire && out.Granted:
			res = fmt.Sprintf("token %d", out.Token)
		case in.Op == semAcquire:
			res = "full"
		case in.Op == semRelease && out.Released:
			res = "released"
		case in.Op == semRelease:
			res = "not holder"
		default:
			res = fmt.Sprint(out.Holders)
		}
		switch in.Op {
		case semAcquire:
			return fmt.Sprintf("acquire(%s) -> %s", in.Holder, res)
		case semRelease:
			return fmt.Sprintf("release(%s) -> %s", in.Holder, res)
		default:
			return "read -> " + res
		}
	},
	DescribeState: func(state any) string {
		s := state.(semState)
		return fmt.Sprintf("holders %v, last token %d", s.holders[:s.n], s.last)
	},
}).ToModel()

// ack is one acknowledged publish: the id and the index the node answered.
type ack struct {
	id    string
	index uint64
}

// clientHistory is what one sequential publishing client saw: its
// acknowledged publishes in order, and the id it was still retrying when
// it gave up ("" if none).
type clientHistory struct {
	acked   []ack
	pending string
}

// checkPublished checks a log read in full against the histories of
// clients that each published one entry at a time: indexes without gaps,
// every acknowledged id exactly once at the index its acknowledgement
// gave and after the client's previous publish, a pending id at most once,
// and no id nobody published.
func checkPublished(clients []clientHistory, entries []client.LogEntry) error {
	byID := map[string][]uint64{}
	for i, e := range entries {
		if i > 0 && e.Index != entries[i-1].Index+1 {
			return fmt.Errorf("index %d follows index %d", e.Index, entries[i-1].Index)
		}
		byID[e.ID] = append(byID[e.ID], e.Index)
	}
	for _, c := range clients {
		var prev uint64
		for _, a := range c.acked {
			got := byID[a.id]
			switch {
			case len(got) == 0:
				return fmt.Errorf("acknowledged id %s (index %d) is missing", a.id, a.index)
			case len(got) > 1:
				return fmt.Errorf("acknowledged id %s is stored %d times, at indexes %v", a.id, len(got), got)
			case got[0] != a.index:
				return fmt.Errorf("acknowledged id %s is at index %d, acknowledged as %d", a.id, got[0], a.index)
			case a.index <= prev:
				return fmt.Errorf("id %s was acknowledged at index %d, not after the same client's previous publish at %d", a.id, a.index, prev)
			}
			prev = a.index
			delete(byID, a.id)
		}
		if got := byID[c.pending]; c.pending != "" && len(got) > 1 {
			return fmt.Errorf("unacknowledged id %s is stored %d times", c.pending, len(got))
		}
		delete(byID, c.pending)
	}
	if len(byID) > 0 {
		ids := slices.Sorted(maps.Keys(byID))
		return fmt.Errorf("%d ids were never published, such as %q at indexes %v", len(ids), ids[0], byID[ids[0]])
	}
	return nil
}
