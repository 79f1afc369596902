package locks

import (
	"cmp"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"shoal/modules"
)

// Limits shared by the HTTP layer, the command decoder and the snapshot
// decoder.
const (
	maxNameLen   = modules.MaxNameLen // names are checked by modules.ValidName
	maxHolderLen = 256
	maxLimit     = 1_000_000
	// maxWaiters bounds the queue of one semaphore or lock.
	maxWaiters = 10_000
)

// kind says whether a name is a counting semaphore or a read/write lock.
// Semaphores and locks live in separate namespaces.
type kind byte

const (
	kindSemaphore kind = 1
	kindLock      kind = 2
)

func (k kind) String() string {
	if k == kindLock {
		return "lock"
	}
	return "semaphore"
}

func validKind(k kind) bool { return k == kindSemaphore || k == kindLock }

// mode is what a holder holds: a semaphore slot, or a read or write lock.
type mode byte

const (
	modeSlot  mode = 0
	modeRead  mode = 1
	modeWrite mode = 2
)

func (m mode) String() string {
	switch m {
	case modeRead:
		return "read"
	case modeWrite:
		return "write"
	default:
		return "slot"
	}
}

// validMode reports whether m is a mode of kind k.
func validMode(k kind, m mode) bool {
	if k == kindLock {
		return m == modeRead || m == modeWrite
	}
	return m == modeSlot
}

// validHolder reports whether id is 1-256 bytes of UTF-8 without control
// characters.
func validHolder(id string) bool {
	if len(id) == 0 || len(id) > maxHolderLen || !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}

// holder is one live hold of a slot or lock.
type holder struct {
	id    string
	mode  mode
	token uint64
	ttl   time.Duration // of the last acquire or renew; re-armed on a leader change
	// expires is when the lease ends, in command time (Unix nanoseconds
	// of the leader's clock that appended the granting, renewing or
	// re-arming command).
	expires int64
	// origin is the nonce of the acquire request that granted or last
	// re-acquired the hold: a cancel naming it releases the hold, because
	// that request's client was never told it holds.
	origin uint64
}

// waiter is one blocking acquire in a queue.
type waiter struct {
	holder   string
	mode     mode
	ttl      time.Duration // of the lease to grant
	wait     time.Duration // as asked; re-armed on a leader change
	deadline int64         // command time after which the leader may drop it
	nonce    uint64        // names the request; unique per queue
}

// sem is one semaphore or read/write lock.
type sem struct {
	kind    kind
	name    string
	limit   int // semaphores only
	holders map[string]*holder
	queue   []*waiter // FIFO
	writers int       // holders in write mode (locks)
}

func newSem(k kind, name string, limit int) *sem {
	return &sem{kind: k, name: name, limit: limit, holders: map[string]*holder{}}
}

// canGrant reports whether a new holder in mode m fits beside the current
// holders, ignoring the queue.
func (s *sem) canGrant(m mode) bool {
	if s.kind == kindSemaphore {
		return len(s.holders) < s.limit
	}
	if m == modeWrite {
		return len(s.holders) == 0
	}
	return s.writers == 0
}

// waiterIndex returns the queue position of holder id's waiter, or -1.
func (s *sem) waiterIndex(id string) int {
	return slices.IndexFunc(s.queue, func(w *waiter) bool { return w.holder == id })
}

// sortedHolders returns the holders by token.
func (s *sem) sortedHolders() []*holder {
	hs := make([]*holder, 0, len(s.holders))
	for _, h := range s.holders {
		hs = append(hs, h)
	}
	slices.SortFunc(hs, func(a, b *holder) int { return cmp.Compare(a.token, b.token) })
	return hs
}

// state is the module's replicated state. It is mutated only from the FSM
// goroutine, under Locks.mu held for writing.
type state struct {
	sems  map[string]*sem
	locks map[string]*sem
	// lastToken is the highest fencing token ever granted, by any name;
	// tokens only grow, across deletes and re-creates.
	lastToken uint64
	holders   int // across all names
	waiters   int
}

func newState() *state {
	return &state{sems: map[string]*sem{}, locks: map[string]*sem{}}
}

func (st *state) table(k kind) map[string]*sem {
	if k == kindLock {
		return st.locks
	}
	return st.sems
}

// outcomeKind is how a blocking acquire ended.
type outcomeKind byte

const (
	outGranted outcomeKind = iota + 1
	outTimedOut
	outDeleted
	outSuperseded
	outCancelled
	// outRecheck: the state was replaced by a snapshot; look it up again.
	outRecheck
)

// outcome is what the state machine tells a waiting request.
type outcome struct {
	kind    outcomeKind
	token   uint64
	expires int64
}

// note is one outcome for the request with the given nonce.
type note struct {
	nonce uint64
	out   outcome
}

// auditType says what an auditEvent records.
type auditType byte

const (
	auditGrant auditType = iota + 1
	auditEnd
	auditLimit
)

// auditEvent is one change of who holds what, in the order the state
// machine made it. Tests reconstruct the whole history of holds from
// them (see Config.audit).
type auditEvent struct {
	Index  uint64 // Raft index of the command
	Seq    int    // position among the command's events
	Type   auditType
	Kind   kind
	Name   string
	Holder string
	Mode   mode
	Token  uint64
	Limit  int    // auditLimit: the new limit, 0 when deleted
	Reason string // auditEnd: release, expire, cancel, delete
}

// effects collects what applying one command does beyond the state: the
// outcomes to hand to waiting requests and the audit events, both
// delivered after the state lock is released, and counts for metrics.
type effects struct {
	index  uint64
	audit  bool
	notes  []note
	events []auditEvent

	expiredHolders int
	expiredWaiters int
}

func (fx *effects) note(nonce uint64, o outcome) {
	fx.notes = append(fx.notes, note{nonce: nonce, out: o})
}

func (fx *effects) event(e auditEvent) {
	if !fx.audit {
		return
	}
	e.Index = fx.index
	e.Seq = len(fx.events)
	fx.events = append(fx.events, e)
}

// nextToken returns the fencing token of a grant made by the command at
// index: the index itself, or one more than the last token when a command
// grants several holds (a release letting three readers in), so tokens are
// unique and strictly increasing across the whole history.
func (st *state) nextToken(index uint64) uint64 {
	t := max(index, st.lastToken+1)
	st.lastToken = t
	return t
}

// addHolder grants s to id.
func (st *state) addHolder(s *sem, id string, m mode, ttl time.Duration, now int64, origin uint64, fx *effects) *holder {
	h := &holder{id: id, mode: m, token: st.nextToken(fx.index), ttl: ttl, expires: now + int64(ttl), origin: origin}
	s.holders[id] = h
	if m == modeWrite {
		s.writers++
	}
	st.holders++
	fx.event(auditEvent{Type: auditGrant, Kind: s.kind, Name: s.name, Holder: id, Mode: m, Token: h.token})
	return h
}

// removeHolder ends h's hold of s.
func (st *state) removeHolder(s *sem, h *holder, reason string, fx *effects) {
	delete(s.holders, h.id)
	if h.mode == modeWrite {
		s.writers--
	}
	st.holders--
	fx.event(auditEvent{Type: auditEnd, Kind: s.kind, Name: s.name, Holder: h.id, Mode: h.mode, Token: h.token, Reason: reason})
}

// removeWaiter drops the waiter at queue position i.
func (st *state) removeWaiter(s *sem, i int) *waiter {
	w := s.queue[i]
	s.queue = slices.Delete(s.queue, i, i+1)
	st.waiters--
	return w
}

// grantWaiters grants the queue in FIFO order for as long as its head
// fits. A head that does not fit blocks everything behind it: that is what
// makes a waiting writer hold back new readers, and keeps the queue fair.
func (st *state) grantWaiters(s *sem, now int64, fx *effects) {
	n := 0
	for n < len(s.queue) && s.canGrant(s.queue[n].mode) {
		w := s.queue[n]
		h := st.addHolder(s, w.holder, w.mode, w.ttl, now, w.nonce, fx)
		fx.note(w.nonce, outcome{kind: outGranted, token: h.token, expires: h.expires})
		n++
	}
	if n > 0 {
		s.queue = slices.Delete(s.queue, 0, n)
		st.waiters -= n
	}
}

// settle grants what the queue can take and forgets an idle lock (locks
// exist only while held or waited for; semaphores until deleted).
func (st *state) settle(s *sem, now int64, fx *effects) {
	st.grantWaiters(s, now, fx)
	if s.kind == kindLock && len(s.holders) == 0 && len(s.queue) == 0 {
		delete(st.locks, s.name)
	}
}

// create applies a createCmd.
func (st *state) create(c createCmd, now int64, fx *effects) (createResult, error) {
	s := st.sems[c.name]
	switch {
	case s == nil:
		st.sems[c.name] = newSem(kindSemaphore, c.name, c.limit)
		fx.event(auditEvent{Type: auditLimit, Kind: kindSemaphore, Name: c.name, Limit: c.limit})
		return createdNew, nil
	case s.limit == c.limit:
		return createdExists, nil
	case !c.update:
		return 0, ErrLimitConflict.WithMessage("semaphore %q exists with limit %d, not %d; use ?update to change it", c.name, s.limit, c.limit).
			WithDetail("limit", s.limit)
	}
	// Lowering the limit evicts no one: it only stops new grants until
	// enough holders have gone. Raising it lets waiters in at once.
	s.limit = c.limit
	fx.event(auditEvent{Type: auditLimit, Kind: kindSemaphore, Name: c.name, Limit: c.limit})
	st.settle(s, now, fx)
	return createdUpdated, nil
}

// remove applies a deleteCmd: every holder is released and every waiter
// fails with ErrDeleted.
func (st *state) remove(c deleteCmd, fx *effects) (deleteResult, error) {
	s := st.sems[c.name]
	if s == nil {
		return deleteResult{}, ErrNotFound.WithMessage("semaphore %q does not exist", c.name)
	}
	res := deleteResult{released: len(s.holders), failed: len(s.queue)}
	for _, h := range s.sortedHolders() {
		st.removeHolder(s, h, "delete", fx)
	}
	for len(s.queue) > 0 {
		w := st.removeWaiter(s, 0)
		fx.note(w.nonce, outcome{kind: outDeleted})
	}
	delete(st.sems, c.name)
	fx.event(auditEvent{Type: auditLimit, Kind: kindSemaphore, Name: c.name})
	return res, nil
}

// acquire applies an acquireCmd: grant at once if the holder already holds
// (a renewal keeping its token), or if nothing waits and the request fits;
// otherwise queue it (wait > 0) or refuse it.
func (st *state) acquire(c acquireCmd, now int64, fx *effects) (acquireResult, error) {
	tbl := st.table(c.kind)
	s := tbl[c.name]
	if s == nil {
		switch {
		case c.kind == kindLock:
			s = newSem(kindLock, c.name, 0)
		case c.createLimit > 0:
			s = newSem(kindSemaphore, c.name, c.createLimit)
			fx.event(auditEvent{Type: auditLimit, Kind: kindSemaphore, Name: c.name, Limit: c.createLimit})
		default:
			return acquireResult{}, ErrNotFound.WithMessage("semaphore %q does not exist", c.name)
		}
		tbl[c.name] = s
	} else if c.createLimit > 0 && c.createLimit != s.limit {
		return acquireResult{}, ErrLimitConflict.WithMessage("semaphore %q exists with limit %d, not %d", c.name, s.limit, c.createLimit).
			WithDetail("limit", s.limit)
	}
	if h := s.holders[c.holder]; h != nil {
		if h.mode != c.mode {
			return acquireResult{}, ErrModeConflict.WithMessage("holder %q holds lock %q in %s mode; release it before asking for %s", c.holder, c.name, h.mode, c.mode)
		}
		// A renewal makes the hold nobody's request in particular: a
		// cancel of this request, or of the one that granted the hold, must
		// not release a hold the client was told (by another answer) that it
		// has. If every request was abandoned, the hold expires with its
		// TTL. (Setting origin to this request let a late, abandoned
		// acquire take over a hold and its cancel release it: found by e2e.)
		h.ttl, h.expires, h.origin = c.ttl, now+int64(c.ttl), 0
		return acquireResult{granted: true, token: h.token, expires: h.expires}, nil
	}
	if c.wait > 0 && slices.ContainsFunc(s.queue, func(w *waiter) bool { return w.nonce == c.nonce && w.holder != c.holder }) {
		// Nonces are random per request; a clash would make a cancel
		// ambiguous, so the (astronomically unlikely) command is refused.
		return acquireResult{}, fmt.Errorf("acquire nonce %d already waits for %s %q: %w", c.nonce, s.kind, s.name, ErrMalformedCommand)
	}
	if i := s.waiterIndex(c.holder); i >= 0 {
		if c.wait == 0 {
			return acquireResult{}, busy(s)
		}
		// A newer blocking acquire of the same holder (a client retrying
		// after losing its connection) takes over the place in the queue.
		w := s.queue[i]
		fx.note(w.nonce, outcome{kind: outSuperseded})
		*w = waiter{holder: c.holder, mode: c.mode, ttl: c.ttl, wait: c.wait, deadline: now + int64(c.wait), nonce: c.nonce}
		st.settle(s, now, fx)
		if h := s.holders[c.holder]; h != nil && h.origin == c.nonce {
			return acquireResult{granted: true, token: h.token, expires: h.expires}, nil
		}
		return acquireResult{queued: true}, nil
	}
	if len(s.queue) == 0 && s.canGrant(c.mode) {
		h := st.addHolder(s, c.holder, c.mode, c.ttl, now, c.nonce, fx)
		return acquireResult{granted: true, token: h.token, expires: h.expires}, nil
	}
	if c.wait == 0 {
		return acquireResult{}, busy(s)
	}
	if len(s.queue) >= maxWaiters {
		return acquireResult{}, ErrQueueFull.WithMessage("%d requests already wait for %s %q", len(s.queue), s.kind, s.name)
	}
	s.queue = append(s.queue, &waiter{holder: c.holder, mode: c.mode, ttl: c.ttl, wait: c.wait, deadline: now + int64(c.wait), nonce: c.nonce})
	st.waiters++
	return acquireResult{queued: true}, nil
}

// busy is the error of an acquire that does not fit. (A name created by
// the acquire always fits, so nothing is left behind.)
func busy(s *sem) error {
	if s.kind == kindLock {
		return ErrLockBusy.WithMessage("lock %q is held in a conflicting mode or a writer waits", s.name)
	}
	return ErrFull.WithMessage("all %d slots of semaphore %q are held", s.limit, s.name)
}

// lookupHeld returns the semaphore or lock c names, with the error of a
// release or renew when it does not exist.
func (st *state) lookupHeld(k kind, name, holder string) (*sem, error) {
	s := st.table(k)[name]
	if s == nil {
		if k == kindSemaphore {
			return nil, ErrNotFound.WithMessage("semaphore %q does not exist", name)
		}
		return nil, ErrNotHolder.WithMessage("%q does not hold lock %q", holder, name)
	}
	return s, nil
}

// release applies a releaseCmd: the holder's hold ends, and a wait of the
// same holder is dropped too, so a release leaves the holder with nothing.
func (st *state) release(c releaseCmd, now int64, fx *effects) (releaseResult, error) {
	s, err := st.lookupHeld(c.kind, c.name, c.holder)
	if err != nil {
		return 0, err
	}
	var res releaseResult
	if h := s.holders[c.holder]; h != nil {
		st.removeHolder(s, h, "release", fx)
		res |= releasedHold
	}
	if i := s.waiterIndex(c.holder); i >= 0 {
		w := st.removeWaiter(s, i)
		fx.note(w.nonce, outcome{kind: outCancelled})
		res |= releasedWait
	}
	if res == 0 {
		return 0, ErrNotHolder.WithMessage("%q does not hold %s %q", c.holder, s.kind, c.name)
	}
	st.settle(s, now, fx)
	return res, nil
}

// renew applies a renewCmd: the lease runs ttl from the command's time.
func (st *state) renew(c renewCmd, now int64) (acquireResult, error) {
	s, err := st.lookupHeld(c.kind, c.name, c.holder)
	if err != nil {
		return acquireResult{}, err
	}
	h := s.holders[c.holder]
	if h == nil {
		return acquireResult{}, ErrNotHolder.WithMessage("%q does not hold %s %q (released or expired)", c.holder, s.kind, c.name)
	}
	h.ttl, h.expires = c.ttl, now+int64(c.ttl)
	return acquireResult{granted: true, token: h.token, expires: h.expires}, nil
}

// cancel applies a cancelCmd, sent when the request with c.nonce gave up
// (timeout, client gone, unknown outcome): its waiter leaves the queue, or,
// if the grant won the race, the hold it got is released, so no holder
// remains that no client knows about.
func (st *state) cancel(c cancelCmd, now int64, fx *effects) cancelResult {
	s := st.table(c.kind)[c.name]
	if s == nil {
		return cancelNone
	}
	if i := slices.IndexFunc(s.queue, func(w *waiter) bool { return w.nonce == c.nonce }); i >= 0 {
		st.removeWaiter(s, i)
		st.settle(s, now, fx)
		return cancelDequeued
	}
	if h := s.holders[c.holder]; h != nil && h.origin == c.nonce {
		st.removeHolder(s, h, "cancel", fx)
		st.settle(s, now, fx)
		return cancelReleased
	}
	return cancelNone
}

// expire applies an expireCmd. Each item names exactly the hold (token and
// deadline) or wait (nonce and deadline) the leader saw due, so a renewal
// or re-arm committed in between makes it a no-op; and it only takes
// effect if the command's own time, from the appending leader's clock, has
// reached the deadline.
func (st *state) expire(c expireCmd, now int64, fx *effects) int {
	touched := make([]*sem, 0, len(c.items))
	n := 0
	for _, it := range c.items {
		s := st.table(it.kind)[it.name]
		if s == nil || now < it.deadline {
			continue
		}
		if it.waiter {
			i := slices.IndexFunc(s.queue, func(w *waiter) bool { return w.nonce == it.id })
			if i < 0 || s.queue[i].holder != it.holder || s.queue[i].deadline != it.deadline {
				continue
			}
			w := st.removeWaiter(s, i)
			fx.note(w.nonce, outcome{kind: outTimedOut})
			fx.expiredWaiters++
		} else {
			h := s.holders[it.holder]
			if h == nil || h.token != it.id || h.expires != it.deadline {
				continue
			}
			st.removeHolder(s, h, "expire", fx)
			fx.expiredHolders++
		}
		n++
		if !slices.Contains(touched, s) {
			touched = append(touched, s)
		}
	}
	for _, s := range touched {
		st.settle(s, now, fx)
	}
	return n
}

// rearm applies the re-arm a new leader commits before it expires
// anything: every lease runs at least its full TTL, and every wait its
// full wait, from the re-arm command's time. See the package doc.
func (st *state) rearm(now int64) {
	for _, tbl := range []map[string]*sem{st.sems, st.locks} {
		for _, s := range tbl {
			for _, h := range s.holders {
				h.expires = max(h.expires, now+int64(h.ttl))
			}
			for _, w := range s.queue {
				w.deadline = max(w.deadline, now+int64(w.wait))
			}
		}
	}
}

// lookupWait reports what became of the blocking acquire with nonce:
// still queued (pending), granted (the hold it got is still there), or
// gone for an unknown reason (the state was replaced by a snapshot taken
// after it was resolved).
func (st *state) lookupWait(k kind, name, holderID string, nonce uint64) (pending bool, o outcome) {
	s := st.table(k)[name]
	if s == nil {
		if k == kindSemaphore {
			return false, outcome{kind: outDeleted}
		}
		return false, outcome{kind: outTimedOut}
	}
	if slices.ContainsFunc(s.queue, func(w *waiter) bool { return w.nonce == nonce }) {
		return true, outcome{}
	}
	if h := s.holders[holderID]; h != nil && h.origin == nonce {
		return false, outcome{kind: outGranted, token: h.token, expires: h.expires}
	}
	return false, outcome{kind: outTimedOut}
}
