package locks

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"shoal/internal/moduletest"
	"shoal/modules"
)

// Command helpers: each applies one command through ApplyCommand.

func (n *testNode) create(t *testing.T, name string, limit int, update bool) (createResult, error) {
	t.Helper()
	a, err := n.apply(opCreate, encodeCreate(createCmd{name: name, limit: limit, update: update}))
	if err != nil {
		return 0, err
	}
	return createResult(a.Result[0]), nil
}

func (n *testNode) mustCreate(t *testing.T, name string, limit int) {
	t.Helper()
	if _, err := n.create(t, name, limit, false); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
}

func (n *testNode) acq(t *testing.T, c acquireCmd) (acquireResult, uint64, error) {
	t.Helper()
	if c.nonce == 0 {
		c.nonce = newNonce()
	}
	if c.ttl == 0 {
		c.ttl = 10 * time.Second
	}
	if c.kind == 0 {
		c.kind = kindSemaphore
	}
	a, err := n.apply(opAcquire, encodeAcquire(c))
	if err != nil {
		return acquireResult{}, a.Index, err
	}
	r, err := decodeAcquireResult(a.Result)
	if err != nil {
		t.Fatalf("acquire result: %v", err)
	}
	return r, a.Index, nil
}

// grant acquires and expects a grant; it returns the token.
func (n *testNode) grant(t *testing.T, c acquireCmd) uint64 {
	t.Helper()
	r, _, err := n.acq(t, c)
	if err != nil || !r.granted {
		t.Fatalf("acquire %+v: got %+v, %v; want a grant", c, r, err)
	}
	return r.token
}

func (n *testNode) release(t *testing.T, k kind, name, holder string) error {
	t.Helper()
	_, err := n.apply(opRelease, encodeRelease(releaseCmd{kind: k, name: name, holder: holder}))
	return err
}

func (n *testNode) mustRelease(t *testing.T, k kind, name, holder string) {
	t.Helper()
	if err := n.release(t, k, name, holder); err != nil {
		t.Fatalf("release %s of %s: %v", holder, name, err)
	}
}

func (n *testNode) cancelReq(t *testing.T, k kind, name, holder string, nonce uint64) cancelResult {
	t.Helper()
	a, err := n.apply(opCancel, encodeCancel(cancelCmd{kind: k, name: name, holder: holder, nonce: nonce}))
	if err != nil {
		t.Fatalf("cancel: %v", err)
	}
	return cancelResult(a.Result[0])
}

func (n *testNode) expireItems(t *testing.T, items ...expireItem) int {
	t.Helper()
	a, err := n.apply(opExpire, encodeExpire(expireCmd{items: items}))
	if err != nil {
		t.Fatalf("expire: %v", err)
	}
	v, err := decodeExpireResult(a.Result)
	if err != nil {
		t.Fatal(err)
	}
	return int(v)
}

// holders returns "holder:token" of a name, by token.
func (n *testNode) holders(k kind, name string) []string {
	n.locks.mu.RLock()
	defer n.locks.mu.RUnlock()
	s := n.locks.st.table(k)[name]
	if s == nil {
		return nil
	}
	var out []string
	for _, h := range s.sortedHolders() {
		out = append(out, fmt.Sprintf("%s:%d", h.id, h.token))
	}
	return out
}

func (n *testNode) holderIDs(k kind, name string) []string {
	n.locks.mu.RLock()
	defer n.locks.mu.RUnlock()
	s := n.locks.st.table(k)[name]
	if s == nil {
		return nil
	}
	var out []string
	for _, h := range s.sortedHolders() {
		out = append(out, h.id)
	}
	return out
}

func (n *testNode) queue(k kind, name string) []string {
	n.locks.mu.RLock()
	defer n.locks.mu.RUnlock()
	s := n.locks.st.table(k)[name]
	if s == nil {
		return nil
	}
	var out []string
	for _, w := range s.queue {
		out = append(out, w.holder)
	}
	return out
}

func (n *testNode) holderOf(k kind, name, id string) *holder {
	n.locks.mu.RLock()
	defer n.locks.mu.RUnlock()
	s := n.locks.st.table(k)[name]
	if s == nil || s.holders[id] == nil {
		return nil
	}
	h := *s.holders[id]
	return &h
}

func slot(name, holder string) acquireCmd {
	return acquireCmd{kind: kindSemaphore, name: name, holder: holder}
}

func lock(name, holder string, m mode) acquireCmd {
	return acquireCmd{kind: kindLock, name: name, holder: holder, mode: m}
}

func (c acquireCmd) waiting(d time.Duration) acquireCmd { c.wait = d; return c }
func (c acquireCmd) withNonce(n uint64) acquireCmd      { c.nonce = n; return c }
func (c acquireCmd) withTTL(d time.Duration) acquireCmd { c.ttl = d; return c }

func persist(t *testing.T, l *Locks) []byte {
	t.Helper()
	snap, err := l.Snapshot()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	defer snap.Release()
	var buf bytes.Buffer
	if err := snap.Persist(&buf); err != nil {
		t.Fatalf("persist: %v", err)
	}
	return buf.Bytes()
}

func TestSemaphore_LimitTokensAndIdempotentAcquire(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	n.mustCreate(t, "s", 2)
	ta := n.grant(t, slot("s", "a"))
	tb := n.grant(t, slot("s", "b"))
	if ta != 2 || tb != 3 {
		t.Fatalf("tokens %d, %d: want the raft indexes 2, 3", ta, tb)
	}
	if _, _, err := n.acq(t, slot("s", "c")); !errors.Is(err, ErrFull) {
		t.Fatalf("third acquire: got %v, want ErrFull", err)
	}
	before := n.holderOf(kindSemaphore, "s", "a").expires
	n.advance(time.Second)
	r, _, err := n.acq(t, slot("s", "a").withTTL(time.Minute))
	if err != nil || r.token != ta {
		t.Fatalf("acquire again: got %+v, %v; want the same token %d", r, err, ta)
	}
	if h := n.holderOf(kindSemaphore, "s", "a"); h.expires != before+int64(time.Second+50*time.Second) || h.ttl != time.Minute {
		t.Fatalf("acquire again did not renew: expires %d (was %d), ttl %s", h.expires, before, h.ttl)
	}
	n.mustRelease(t, kindSemaphore, "s", "a")
	tc := n.grant(t, slot("s", "c"))
	if tc <= tb {
		t.Fatalf("token %d after %d: tokens must increase", tc, tb)
	}
	if err := n.release(t, kindSemaphore, "s", "a"); !errors.Is(err, ErrNotHolder) {
		t.Fatalf("release twice: got %v, want ErrNotHolder", err)
	}
	if err := n.release(t, kindSemaphore, "nope", "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("release of an unknown semaphore: got %v, want ErrNotFound", err)
	}
	if _, _, err := n.acq(t, slot("nope", "a")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("acquire of an unknown semaphore: got %v, want ErrNotFound", err)
	}
	if got := n.holders(kindSemaphore, "s"); !slices.Equal(got, []string{"b:3", "c:" + fmt.Sprint(tc)}) {
		t.Fatalf("holders %v", got)
	}
}

func TestSemaphore_CreateLimitOnAcquire(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	c := slot("s", "a")
	c.createLimit = 2
	n.grant(t, c)
	c.holder, c.createLimit = "b", 3
	if _, _, err := n.acq(t, c); !errors.Is(err, ErrLimitConflict) {
		t.Fatalf("create_limit 3 on a limit-2 semaphore: got %v, want ErrLimitConflict", err)
	}
	c.createLimit = 2
	n.grant(t, c)
}

func TestCreate_ExistsConflictUpdate(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	tests := []struct {
		limit  int
		update bool
		want   createResult
		err    error
	}{
		{3, false, createdNew, nil},
		{3, false, createdExists, nil},
		{2, false, 0, ErrLimitConflict},
		{2, true, createdUpdated, nil},
		{2, true, createdExists, nil},
	}
	for i, tt := range tests {
		got, err := n.create(t, "s", tt.limit, tt.update)
		if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
			t.Fatalf("step %d: got %v, %v; want %v, %v", i, got, err, tt.want, tt.err)
		}
	}
}

func TestSemaphore_LoweringLimitEvictsNoOne(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	n.mustCreate(t, "s", 3)
	for _, h := range []string{"a", "b", "c"} {
		n.grant(t, slot("s", h))
	}
	if _, err := n.create(t, "s", 1, true); err != nil {
		t.Fatal(err)
	}
	if got := n.holderIDs(kindSemaphore, "s"); len(got) != 3 {
		t.Fatalf("lowering the limit evicted: %v", got)
	}
	r, _, err := n.acq(t, slot("s", "d").waiting(time.Minute))
	if err != nil || !r.queued {
		t.Fatalf("acquire over the new limit: got %+v, %v; want queued", r, err)
	}
	n.mustRelease(t, kindSemaphore, "s", "a")
	n.mustRelease(t, kindSemaphore, "s", "b")
	if q := n.queue(kindSemaphore, "s"); !slices.Equal(q, []string{"d"}) {
		t.Fatalf("d was let in while c alone filled the limit of 1: queue %v", q)
	}
	n.mustRelease(t, kindSemaphore, "s", "c")
	if got := n.holderIDs(kindSemaphore, "s"); !slices.Equal(got, []string{"d"}) {
		t.Fatalf("holders %v, want [d]", got)
	}
	// Raising the limit lets waiters in at once.
	if _, _, err := n.acq(t, slot("s", "e").waiting(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := n.create(t, "s", 3, true); err != nil {
		t.Fatal(err)
	}
	if got := n.holderIDs(kindSemaphore, "s"); !slices.Equal(got, []string{"d", "e"}) {
		t.Fatalf("raising the limit did not grant the waiter: %v", got)
	}
}

func TestWaiters_FIFOAndOutcomes(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	n.mustCreate(t, "s", 1)
	n.grant(t, slot("s", "h0"))
	var watches []*watch
	for i := 1; i <= 3; i++ {
		nonce := uint64(100 + i)
		watches = append(watches, n.locks.watch(nonce))
		r, _, err := n.acq(t, slot("s", fmt.Sprint("w", i)).waiting(time.Minute).withNonce(nonce))
		if err != nil || !r.queued {
			t.Fatalf("waiter %d: got %+v, %v; want queued", i, r, err)
		}
	}
	// A non-blocking acquire does not jump the queue.
	if _, _, err := n.acq(t, slot("s", "x")); !errors.Is(err, ErrFull) {
		t.Fatalf("non-blocking acquire with waiters: got %v, want ErrFull", err)
	}
	prev := "h0"
	var lastToken uint64
	for i, w := range watches {
		n.mustRelease(t, kindSemaphore, "s", prev)
		select {
		case <-w.ready:
		default:
			t.Fatalf("waiter %d was not told after the release of %s", i+1, prev)
		}
		o := n.locks.take(w)
		if o.kind != outGranted || o.token <= lastToken {
			t.Fatalf("waiter %d: outcome %+v after token %d", i+1, o, lastToken)
		}
		lastToken = o.token
		prev = fmt.Sprint("w", i+1)
		if got := n.holderIDs(kindSemaphore, "s"); !slices.Equal(got, []string{prev}) {
			t.Fatalf("holders %v, want [%s]", got, prev)
		}
		h := n.holderOf(kindSemaphore, "s", prev)
		if h.token != o.token || h.expires != o.expires {
			t.Fatalf("outcome %+v does not match hold %+v", o, h)
		}
	}
}

// TestCancel_ReleasesAGrantThatWonTheRace is the ghost-holder case: the
// request gave up (timeout, client gone) but its waiter was granted before
// its cancel committed. The cancel must release that grant.
func TestCancel_ReleasesAGrantThatWonTheRace(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	n.mustCreate(t, "s", 1)
	n.grant(t, slot("s", "h0"))
	if _, _, err := n.acq(t, slot("s", "w").waiting(time.Minute).withNonce(7)); err != nil {
		t.Fatal(err)
	}
	n.mustRelease(t, kindSemaphore, "s", "h0")
	if got := n.holderIDs(kindSemaphore, "s"); !slices.Equal(got, []string{"w"}) {
		t.Fatalf("holders %v, want [w]", got)
	}
	if got := n.cancelReq(t, kindSemaphore, "s", "w", 8); got != cancelNone {
		t.Fatalf("cancel with another nonce: got %v, want none", got)
	}
	if got := n.cancelReq(t, kindSemaphore, "s", "w", 7); got != cancelReleased {
		t.Fatalf("cancel: got %v, want released", got)
	}
	if got := n.holderIDs(kindSemaphore, "s"); len(got) != 0 {
		t.Fatalf("ghost holder left: %v", got)
	}
	if got := n.cancelReq(t, kindSemaphore, "s", "w", 7); got != cancelNone {
		t.Fatalf("second cancel: got %v, want none", got)
	}
}

func TestCancel_DequeuesAndKeepsAReacquiredHold(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	n.mustCreate(t, "s", 1)
	n.grant(t, slot("s", "h0").withNonce(1))
	if _, _, err := n.acq(t, slot("s", "w").waiting(time.Minute).withNonce(2)); err != nil {
		t.Fatal(err)
	}
	if got := n.cancelReq(t, kindSemaphore, "s", "w", 2); got != cancelDequeued {
		t.Fatalf("cancel of a waiter: got %v", got)
	}
	if q := n.queue(kindSemaphore, "s"); len(q) != 0 {
		t.Fatalf("queue %v after cancel", q)
	}
	// h0 acquires again (a client retrying); a late cancel of its first
	// request must not take the hold away from the retry that succeeded.
	n.grant(t, slot("s", "h0").withNonce(3))
	if got := n.cancelReq(t, kindSemaphore, "s", "h0", 1); got != cancelNone {
		t.Fatalf("stale cancel: got %v, want none", got)
	}
	if got := n.holderIDs(kindSemaphore, "s"); !slices.Equal(got, []string{"h0"}) {
		t.Fatalf("holders %v", got)
	}
}

func TestAcquire_SupersedesOwnWait(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	n.mustCreate(t, "s", 1)
	n.grant(t, slot("s", "h0"))
	n.acq(t, slot("s", "a").waiting(time.Minute).withNonce(1))
	n.acq(t, slot("s", "b").waiting(time.Minute).withNonce(2))
	old := n.locks.watch(1)
	r, _, err := n.acq(t, slot("s", "a").waiting(time.Minute).withNonce(3))
	if err != nil || !r.queued {
		t.Fatalf("second wait of a: %+v, %v", r, err)
	}
	if o := n.locks.take(old); o.kind != outSuperseded {
		t.Fatalf("first request of a: outcome %+v, want superseded", o)
	}
	if q := n.queue(kindSemaphore, "s"); !slices.Equal(q, []string{"a", "b"}) {
		t.Fatalf("queue %v: a must keep its place", q)
	}
	if _, _, err := n.acq(t, slot("s", "a")); !errors.Is(err, ErrFull) {
		t.Fatalf("non-blocking acquire of a waiting holder: %v", err)
	}
}

func TestExpire_OnlyTheDueUnchangedLease(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	n.mustCreate(t, "s", 1)
	token := n.grant(t, slot("s", "a").withTTL(10*time.Second))
	n.acq(t, slot("s", "w").waiting(time.Hour).withNonce(5))
	h := n.holderOf(kindSemaphore, "s", "a")
	item := expireItem{kind: kindSemaphore, name: "s", holder: "a", id: token, deadline: h.expires}

	if got := n.expireItems(t, item); got != 0 {
		t.Fatalf("expired before the deadline (command time)")
	}
	n.advance(10 * time.Second)
	for _, bad := range []expireItem{
		{kind: kindSemaphore, name: "s", holder: "a", id: token + 1, deadline: h.expires},
		{kind: kindSemaphore, name: "s", holder: "a", id: token, deadline: h.expires - 1},
		{kind: kindSemaphore, name: "s", holder: "b", id: token, deadline: h.expires},
		{kind: kindLock, name: "s", holder: "a", id: token, deadline: h.expires},
	} {
		if got := n.expireItems(t, bad); got != 0 {
			t.Fatalf("item %+v expired something", bad)
		}
	}
	// A renewal committed before the expiry makes it a no-op.
	if _, err := n.apply(opRenew, encodeRenew(renewCmd{kind: kindSemaphore, name: "s", holder: "a", ttl: time.Minute})); err != nil {
		t.Fatal(err)
	}
	if got := n.expireItems(t, item); got != 0 {
		t.Fatalf("a renewed lease expired")
	}
	h = n.holderOf(kindSemaphore, "s", "a")
	n.advance(time.Minute)
	w := n.locks.watch(5)
	if got := n.expireItems(t, expireItem{kind: kindSemaphore, name: "s", holder: "a", id: token, deadline: h.expires}); got != 1 {
		t.Fatalf("due lease: expired %d", got)
	}
	if got := n.holderIDs(kindSemaphore, "s"); !slices.Equal(got, []string{"w"}) {
		t.Fatalf("the waiter did not get the expired slot: %v", got)
	}
	if o := n.locks.take(w); o.kind != outGranted {
		t.Fatalf("waiter outcome %+v", o)
	}
	if got := moduletest.MetricValue(t, n.reg, "shoal_locks_expiries_total", "what", "holder"); got != 1 {
		t.Fatalf("expiries_total{holder} = %v", got)
	}
}

func TestExpire_Waiter(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	n.mustCreate(t, "s", 1)
	n.grant(t, slot("s", "a"))
	n.acq(t, slot("s", "w").waiting(time.Second).withNonce(9))
	w := n.locks.watch(9)
	deadline := unixNano(testEpoch.Add(time.Second))
	n.advance(time.Second)
	if got := n.expireItems(t, expireItem{kind: kindSemaphore, name: "s", waiter: true, holder: "w", id: 9, deadline: deadline}); got != 1 {
		t.Fatalf("expired %d waiters", got)
	}
	if o := n.locks.take(w); o.kind != outTimedOut {
		t.Fatalf("outcome %+v, want timed out", o)
	}
}

func TestRearm_NeverShortensALease(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	n.mustCreate(t, "s", 2)
	n.grant(t, slot("s", "due").withTTL(10*time.Second))
	n.advance(time.Minute)
	n.grant(t, slot("s", "fresh").withTTL(time.Hour))
	n.acq(t, slot("s", "w").waiting(30*time.Second).withNonce(4))
	freshBefore := n.holderOf(kindSemaphore, "s", "fresh").expires

	// A new leader whose clock is 1s ahead: every lease gets its full ttl
	// from the re-arm, even one that was already due.
	n.advance(time.Second)
	if _, err := n.apply(opRearm, nil); err != nil {
		t.Fatal(err)
	}
	rearm := unixNano(testEpoch.Add(time.Minute + time.Second))
	if got := n.holderOf(kindSemaphore, "s", "due").expires; got != rearm+int64(10*time.Second) {
		t.Fatalf("due lease re-armed to %d, want a full ttl from the re-arm %d", got, rearm+int64(10*time.Second))
	}
	if got := n.holderOf(kindSemaphore, "s", "fresh").expires; got != rearm+int64(time.Hour) || got < freshBefore {
		t.Fatalf("fresh lease re-armed to %d, want %d", got, rearm+int64(time.Hour))
	}
	n.locks.mu.RLock()
	deadline := n.locks.st.sems["s"].queue[0].deadline
	n.locks.mu.RUnlock()
	if deadline != rearm+int64(30*time.Second) {
		t.Fatalf("waiter deadline %d, want %d", deadline, rearm+int64(30*time.Second))
	}

	// A new leader whose clock is an hour behind keeps the later deadline
	// the old clock set.
	before := n.holderOf(kindSemaphore, "s", "fresh").expires
	n.advance(-time.Hour)
	if _, err := n.apply(opRearm, nil); err != nil {
		t.Fatal(err)
	}
	if got := n.holderOf(kindSemaphore, "s", "fresh").expires; got != before {
		t.Fatalf("a re-arm by a lagging clock moved the deadline from %d to %d", before, got)
	}
}

func TestLock_WriterPreferringFIFO(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	n.grant(t, lock("l", "r1", modeRead))
	n.grant(t, lock("l", "r2", modeRead))
	if _, _, err := n.acq(t, lock("l", "w1", modeWrite)); !errors.Is(err, ErrLockBusy) {
		t.Fatalf("writer while readers hold: %v", err)
	}
	n.acq(t, lock("l", "w1", modeWrite).waiting(time.Minute).withNonce(1))
	// A waiting writer blocks new readers, though they would fit.
	if _, _, err := n.acq(t, lock("l", "r3", modeRead)); !errors.Is(err, ErrLockBusy) {
		t.Fatalf("reader behind a waiting writer: %v", err)
	}
	n.acq(t, lock("l", "r3", modeRead).waiting(time.Minute).withNonce(2))
	n.acq(t, lock("l", "r4", modeRead).waiting(time.Minute).withNonce(3))
	n.acq(t, lock("l", "w2", modeWrite).waiting(time.Minute).withNonce(4))
	n.acq(t, lock("l", "r5", modeRead).waiting(time.Minute).withNonce(5))
	n.mustRelease(t, kindLock, "l", "r1")
	if got := n.holderIDs(kindLock, "l"); !slices.Equal(got, []string{"r2"}) {
		t.Fatalf("holders %v", got)
	}
	n.mustRelease(t, kindLock, "l", "r2")
	if got := n.holderIDs(kindLock, "l"); !slices.Equal(got, []string{"w1"}) {
		t.Fatalf("holders %v, want the writer", got)
	}
	idx := n.index + 1
	n.mustRelease(t, kindLock, "l", "w1")
	// One release grants both queued readers; tokens stay unique.
	if got := n.holders(kindLock, "l"); !slices.Equal(got, []string{fmt.Sprintf("r3:%d", idx), fmt.Sprintf("r4:%d", idx+1)}) {
		t.Fatalf("holders %v, want r3 and r4 with tokens %d and %d", got, idx, idx+1)
	}
	if q := n.queue(kindLock, "l"); !slices.Equal(q, []string{"w2", "r5"}) {
		t.Fatalf("queue %v", q)
	}
	// The next command's grant gets a token above both, though its index
	// is idx+1.
	n.mustRelease(t, kindLock, "l", "r3")
	n.mustRelease(t, kindLock, "l", "r4")
	if got := n.holders(kindLock, "l"); !slices.Equal(got, []string{fmt.Sprintf("w2:%d", idx+2)}) {
		t.Fatalf("holders %v", got)
	}
	if _, _, err := n.acq(t, lock("l", "w2", modeRead)); !errors.Is(err, ErrModeConflict) {
		t.Fatalf("read acquire by the writer: %v", err)
	}
	n.mustRelease(t, kindLock, "l", "w2")
	n.mustRelease(t, kindLock, "l", "r5")
	n.locks.mu.RLock()
	left := len(n.locks.st.locks)
	n.locks.mu.RUnlock()
	if left != 0 {
		t.Fatalf("an idle lock is still stored")
	}
	if err := n.release(t, kindLock, "l", "r5"); !errors.Is(err, ErrNotHolder) {
		t.Fatalf("release of an idle lock: %v", err)
	}
}

func TestDelete_ReleasesHoldersFailsWaiters(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	n.mustCreate(t, "s", 1)
	n.grant(t, slot("s", "a"))
	n.acq(t, slot("s", "w").waiting(time.Minute).withNonce(3))
	w := n.locks.watch(3)
	a, err := n.apply(opDelete, encodeDelete(deleteCmd{name: "s"}))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := decodeDeleteResult(a.Result); err != nil || r != (deleteResult{released: 1, failed: 1}) {
		t.Fatalf("delete result %+v, %v", r, err)
	}
	if o := n.locks.take(w); o.kind != outDeleted {
		t.Fatalf("waiter outcome %+v, want deleted", o)
	}
	if _, err := n.apply(opDelete, encodeDelete(deleteCmd{name: "s"})); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if st := n.locks.Status().(Status); st.Holders != 0 || st.Waiters != 0 || st.Semaphores != 0 {
		t.Fatalf("status after delete: %+v", st)
	}
	// Tokens keep growing across a re-create.
	n.mustCreate(t, "s", 1)
	if tok := n.grant(t, slot("s", "a")); tok <= 2 {
		t.Fatalf("token %d after re-create", tok)
	}
}

func TestApply_RefusesBadCommands(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	good := encodeAcquire(acquireCmd{kind: kindSemaphore, name: "s", holder: "h", ttl: time.Second, createLimit: 1, nonce: 1})
	tests := []struct {
		name    string
		op      byte
		payload []byte
		want    error
	}{
		{"unknown op", 99, nil, ErrUnknownOp},
		{"empty acquire", opAcquire, nil, ErrMalformedCommand},
		{"truncated", opAcquire, good[:len(good)-1], ErrMalformedCommand},
		{"trailing", opAcquire, append(append([]byte(nil), good...), 0), ErrMalformedCommand},
		{"limit 0", opCreate, encodeCreate(createCmd{name: "s", limit: 0}), ErrMalformedCommand},
		{"bad name", opCreate, encodeCreate(createCmd{name: "a b", limit: 1}), ErrMalformedCommand},
		{"ttl 0", opAcquire, encodeAcquire(acquireCmd{kind: kindSemaphore, name: "s", holder: "h", nonce: 1}), ErrMalformedCommand},
		{"lock with a slot mode", opAcquire, encodeAcquire(acquireCmd{kind: kindLock, name: "s", holder: "h", ttl: 1, nonce: 1}), ErrMalformedCommand},
		{"nonce 0", opCancel, encodeCancel(cancelCmd{kind: kindSemaphore, name: "s", holder: "h"}), ErrMalformedCommand},
		{"empty expire", opExpire, encodeExpire(expireCmd{}), ErrMalformedCommand},
		{"rearm with payload", opRearm, []byte{1}, ErrMalformedCommand},
	}
	for _, tt := range tests {
		if _, err := n.apply(tt.op, tt.payload); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
	if st := n.locks.Status().(Status); st != (Status{}) {
		t.Fatalf("refused commands changed the state: %+v", st)
	}
}

// TestSnapshot_RoundTripAndDeterminism applies the same commands to two
// instances, checks they persist to the same bytes, and that a restore
// persists to them again and keeps working.
func TestSnapshot_RoundTripAndDeterminism(t *testing.T) {
	cmds := scenario()
	var snaps [][]byte
	for range 2 {
		l := new(Locks)
		for i, c := range cmds {
			l.ApplyCommand(modules.Command{Index: uint64(i + 1), Time: testEpoch.Add(time.Duration(i) * time.Second), Op: c.op, Payload: c.payload})
		}
		snaps = append(snaps, persist(t, l))
	}
	if !bytes.Equal(snaps[0], snaps[1]) {
		t.Fatalf("two nodes applying the same commands persist different snapshots")
	}
	l := new(Locks)
	if err := l.Restore(bytes.NewReader(snaps[0])); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if again := persist(t, l); !bytes.Equal(again, snaps[0]) {
		t.Fatalf("restored state persists differently")
	}
	st := l.Status().(Status)
	if st.Semaphores != 2 || st.Locks != 1 || st.Holders == 0 || st.Waiters == 0 {
		t.Fatalf("restored status %+v", st)
	}
	if err := l.Restore(bytes.NewReader(nil)); err != nil || l.Status().(Status) != (Status{}) {
		t.Fatalf("restore of an empty snapshot: %v, %+v", err, l.Status())
	}
}

type command struct {
	op      byte
	payload []byte
}

// scenario is a mix of commands touching every part of the state.
func scenario() []command {
	acq := func(c acquireCmd) command {
		if c.ttl == 0 {
			c.ttl = time.Minute
		}
		return command{opAcquire, encodeAcquire(c)}
	}
	return []command{
		{opCreate, encodeCreate(createCmd{name: "jobs", limit: 2})},
		acq(slot("jobs", "a").withNonce(1)),
		acq(slot("jobs", "b").withNonce(2)),
		acq(slot("jobs", "c").waiting(time.Minute).withNonce(3)),
		acq(slot("jobs", "d").waiting(time.Minute).withNonce(4)),
		{opRelease, encodeRelease(releaseCmd{kind: kindSemaphore, name: "jobs", holder: "a"})},
		{opCreate, encodeCreate(createCmd{name: "other", limit: 5})},
		acq(acquireCmd{kind: kindSemaphore, name: "made", holder: "x", createLimit: 1, nonce: 5}),
		acq(lock("cfg", "r1", modeRead).withNonce(6)),
		acq(lock("cfg", "w1", modeWrite).waiting(time.Minute).withNonce(7)),
		acq(lock("cfg", "r2", modeRead).waiting(time.Minute).withNonce(8)),
		{opRearm, nil},
		{opRenew, encodeRenew(renewCmd{kind: kindLock, name: "cfg", holder: "r1", ttl: time.Hour})},
		{opDelete, encodeDelete(deleteCmd{name: "other"})},
		{opCancel, encodeCancel(cancelCmd{kind: kindSemaphore, name: "jobs", holder: "d", nonce: 4})},
	}
}

func TestAcquireResult_RoundTrip(t *testing.T) {
	for _, r := range []acquireResult{{granted: true, token: 1 << 40, expires: -5}, {queued: true}} {
		got, err := decodeAcquireResult(encodeAcquireResult(r))
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("got %+v, %v; want %+v", got, err, r)
		}
	}
	for _, bad := range [][]byte{nil, {0}, {3}, {1}, {1, 0, 0}, {2, 0}} {
		if _, err := decodeAcquireResult(bad); !errors.Is(err, ErrMalformedCommand) {
			t.Fatalf("decodeAcquireResult(%x): %v", bad, err)
		}
	}
}

func TestValidHolder_Behavior(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"h1", true}, {"4f1c-uuid", true}, {"worker 7@host", true}, {"ünïcode", true},
		{"", false}, {"a\nb", false}, {"\x7f", false}, {"\xff", false}, {string(make([]byte, 257)), false},
	}
	for _, tt := range tests {
		if got := validHolder(tt.id); got != tt.want {
			t.Errorf("validHolder(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}
