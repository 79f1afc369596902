package locks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/internal/testcluster"
)

// Real-cluster tests: real Raft, gossip and HTTP in one process (see
// internal/testcluster); no consensus or network is faked.

// testHTTP is the client of the cluster tests. Its timeout bounds a
// request to a node cut off by a partition.
var testHTTP = &http.Client{Timeout: 30 * time.Second}

type reply struct {
	status int
	body   []byte
	err    error // transport failure: the node is down or unreachable
}

func (r reply) String() string {
	if r.err != nil {
		return r.err.Error()
	}
	return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body))
}

func (r reply) code() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func send(ctx context.Context, method, url string, body any) reply {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return reply{err: err}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return reply{err: err}
	}
	resp, err := testHTTP.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, body: b, err: err}
}

// must sends a request through node n, retrying while the cluster has no
// leader or the outcome is unknown (every request here is idempotent),
// until it gets wantStatus.
func must(t *testing.T, n *testcluster.Node, method, path string, body any, wantStatus int) []byte {
	t.Helper()
	var r reply
	testcluster.Eventually(t, 30*time.Second, func() error {
		r = send(context.Background(), method, n.URL()+path, body)
		if r.err == nil && r.status == wantStatus {
			return nil
		}
		return fmt.Errorf("%s %s on %s: %s", method, path, n.Name, r)
	})
	return r.body
}

func jsonOf[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}

// clusterConfig is the module configuration of the cluster tests: short
// TTLs allowed, and every node's audit events go to rec (if not nil).
func clusterConfig(rec *historyRecorder) *Config {
	cfg := DefaultConfig()
	cfg.MinTTL = 50 * time.Millisecond
	if rec != nil {
		cfg.audit = rec.record
	}
	return &cfg
}

func newLocksCluster(t *testing.T, rec *historyRecorder, opts ...testcluster.Option) *testcluster.Cluster {
	t.Helper()
	opts = append([]testcluster.Option{
		testcluster.WithModules("locks"),
		testcluster.WithModuleConfig("locks", clusterConfig(rec)),
	}, opts...)
	return testcluster.New(t, 3, opts...)
}

// semState reads a semaphore through n with a linearizable read.
func semState(t *testing.T, n *testcluster.Node, name string) semaphoreJSON {
	t.Helper()
	return jsonOf[semaphoreJSON](t, must(t, n, "GET", "/v1/semaphores/"+name+"?consistent=true", nil, 200))
}

func holderNames(s semaphoreJSON) []string {
	var out []string
	for _, h := range s.Holders {
		out = append(out, h.Holder)
	}
	return out
}

// safetyTarget is what the workers of a safety run compete for.
type safetyTarget struct {
	kind  kind
	name  string
	limit int     // semaphores
	reads float64 // locks: share of read acquires
}

func (s safetyTarget) path() string {
	if s.kind == kindLock {
		return "/v1/locks/" + s.name
	}
	return "/v1/semaphores/" + s.name
}

// observed is one grant a worker was told about.
type observed struct {
	holder string
	token  uint64
	mode   mode
}

// TestCluster_SafetyUnderFailures runs, on one cluster, 20 workers for
// each of four targets (a semaphore with limit 3, one with limit 1, a lock
// taken only for writing, and a lock with readers and writers). Workers
// acquire, hold for a moment, maybe renew, and release, with random TTLs,
// through random nodes, while the leader is killed and restarted twice and
// then a follower is cut off and healed. Then it checks the whole history
// of holds, rebuilt from the state machines' own events in commit order,
// for any moment with more holders than allowed; checks that every grant a
// worker was told about is in it; and checks that a deliberately broken
// copy of the history fails the same check (the negative control).
func TestCluster_SafetyUnderFailures(t *testing.T) {
	targets := []safetyTarget{
		{kind: kindSemaphore, name: "pool", limit: 3},
		{kind: kindSemaphore, name: "mutex", limit: 1},
		{kind: kindLock, name: "exclusive"},
		{kind: kindLock, name: "config", reads: 0.7},
	}
	perPhase := 15
	if testing.Short() {
		perPhase = 3
	}
	rec := newHistoryRecorder()
	c := newLocksCluster(t, rec)
	for _, tg := range targets {
		if tg.kind == kindSemaphore {
			must(t, c.Leader(), "PUT", tg.path(), map[string]int{"limit": tg.limit}, 201)
		}
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var (
		mu   sync.Mutex
		seen []observed
		wg   sync.WaitGroup
	)
	const workers = 20
	for i, tg := range targets {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o := safetyWorker(ctx, t, c, tg, fmt.Sprintf("%s-%02d", tg.name, w), uint64(i*workers+w))
				mu.Lock()
				seen = append(seen, o...)
				mu.Unlock()
			}()
		}
	}

	progress := func(grants int) {
		t.Helper()
		want := map[string]int{}
		for _, tg := range targets {
			want[tg.name] = rec.grantsOf(tg.name) + grants
		}
		testcluster.Eventually(t, 120*time.Second, func() error {
			for name, n := range want {
				if got := rec.grantsOf(name); got < n {
					return fmt.Errorf("%s: %d grants, waiting for %d", name, got, n)
				}
			}
			return nil
		})
	}
	progress(perPhase)
	for round := range 2 {
		old := c.Leader()
		t.Logf("round %d: killing leader %s", round+1, old.Name)
		c.Kill(old.Index)
		progress(perPhase)
		c.Restart(old.Index)
		progress(perPhase)
	}
	victim := c.Followers()[0]
	t.Logf("partitioning %s", victim.Name)
	c.Partition(victim.Index)
	progress(perPhase)
	c.Heal()
	progress(perPhase)
	stop()
	wg.Wait()

	events, conflicts := rec.history()
	if len(conflicts) > 0 {
		t.Fatalf("nodes applied the same command differently: %v", conflicts)
	}
	stats, err := checkHistory(events)
	if err != nil {
		t.Fatalf("safety violated: %v", err)
	}
	t.Logf("history: %s", stats)

	// Every grant a worker was told about is in the history, as granted
	// to that worker in that mode.
	grants := map[uint64]auditEvent{}
	for _, e := range events {
		if e.Type == auditGrant {
			grants[e.Token] = e
		}
	}
	if len(seen) == 0 {
		t.Fatalf("no worker ever acquired")
	}
	for _, o := range seen {
		e, ok := grants[o.token]
		if !ok || e.Holder != o.holder || e.Mode != o.mode {
			t.Fatalf("%s was told it holds token %d (%s), but the history has %+v", o.holder, o.token, o.mode, e)
		}
	}

	for _, tg := range targets {
		k := nameKey{tg.kind, tg.name}
		switch {
		case tg.kind == kindSemaphore && stats.maxHolders[k] != tg.limit:
			t.Errorf("%s: at most %d holders at once: the run never filled the limit of %d", tg.name, stats.maxHolders[k], tg.limit)
		case tg.reads > 0 && (stats.maxReaders[k] < 2 || stats.writes[k] == 0):
			t.Errorf("%s: the run never had two readers at once (%d) or never a writer (%d)", tg.name, stats.maxReaders[k], stats.writes[k])
		}
		// Negative control: the same check must catch one extra holder.
		broken, ok := breakHistory(events, k, tg.limit)
		if !ok {
			t.Fatalf("negative control: no point where %s was held to its limit", tg.name)
		}
		if _, err := checkHistory(broken); err == nil || !strings.Contains(err.Error(), "intruder granted") {
			t.Fatalf("negative control for %s: the checker accepted a history with an extra holder (%v)", tg.name, err)
		}
	}
}

// safetyWorker acquires, holds, maybe renews and releases target until ctx
// is done, and returns the grants it was told about.
func safetyWorker(ctx context.Context, t *testing.T, c *testcluster.Cluster, target safetyTarget, holder string, seed uint64) []observed {
	rng := rand.New(rand.NewPCG(seed, 7))
	nodes := c.Nodes()
	pick := func() *testcluster.Node { return nodes[rng.IntN(len(nodes))] }
	var seen []observed
	for ctx.Err() == nil {
		ttl := time.Duration(200+rng.IntN(1800)) * time.Millisecond
		req := map[string]any{"holder": holder, "ttl": ttl.String(), "wait": "1s"}
		m := modeSlot
		if target.kind == kindLock {
			m = modeWrite
			if rng.Float64() < target.reads {
				m = modeRead
			}
			req["mode"] = m.String()
		}
		r := send(ctx, "POST", pick().URL()+target.path()+"/acquire", req)
		if r.err != nil || r.status != 200 {
			continue // busy, no leader, node down: try again
		}
		var lease leaseResponse
		if err := json.Unmarshal(r.body, &lease); err != nil {
			t.Errorf("acquire answer %s: %v", r, err)
			return seen
		}
		seen = append(seen, observed{holder: holder, token: lease.Token, mode: m})
		time.Sleep(time.Duration(rng.IntN(int(ttl / 4)))) // holding the slot, not waiting for anything
		if rng.IntN(2) == 0 {
			r = send(ctx, "POST", pick().URL()+target.path()+"/renew", map[string]any{"holder": holder, "ttl": ttl.String()})
			if r.err == nil && r.status == 200 && !bytes.Contains(r.body, []byte(fmt.Sprintf(`"token":%d,`, lease.Token))) {
				t.Errorf("renew of %s changed its token %d: %s", holder, lease.Token, r)
			}
		}
		for range 3 { // a release that fails leaves the slot to expire
			r = send(ctx, "POST", pick().URL()+target.path()+"/release", map[string]any{"holder": holder})
			if r.err == nil && (r.status == 200 || r.status == 404) {
				break
			}
		}
	}
	return seen
}

// TestCluster_LeaderKilledWhileHoldersExist: holders keep their slots
// through a leader change (renew works on the new leader, tokens stay),
// the re-arm never moves a deadline earlier, and a lease nobody renews
// still expires afterwards.
func TestCluster_LeaderKilledWhileHoldersExist(t *testing.T) {
	c := newLocksCluster(t, nil)
	f := c.Followers()[0]
	must(t, f, "PUT", "/v1/semaphores/s", map[string]int{"limit": 3}, 201)
	keep := jsonOf[leaseResponse](t, must(t, f, "POST", "/v1/semaphores/s/acquire", map[string]string{"holder": "keep", "ttl": "3s"}, 200))
	must(t, f, "POST", "/v1/semaphores/s/acquire", map[string]string{"holder": "lapse", "ttl": "3s"}, 200)
	before := semState(t, f, "s")

	old := c.Leader()
	c.Kill(old.Index)
	newLeader := c.Leader()
	if newLeader == old {
		t.Fatal("the killed node still leads")
	}
	// Renewal through the new leader keeps the token.
	renewed := jsonOf[leaseResponse](t, must(t, newLeader, "POST", "/v1/semaphores/s/renew", map[string]string{"holder": "keep", "ttl": "3s"}, 200))
	if renewed.Token != keep.Token {
		t.Fatalf("renew on the new leader: token %d, want %d", renewed.Token, keep.Token)
	}
	after := semState(t, newLeader, "s")
	for _, h := range after.Holders {
		for _, b := range before.Holders {
			if h.Holder == b.Holder && h.ExpiresAt < b.ExpiresAt {
				t.Fatalf("%s's deadline moved earlier across the leader change: %s, was %s", h.Holder, h.ExpiresAt, b.ExpiresAt)
			}
		}
	}
	// keep renews until lapse has expired; expiry still happens.
	testcluster.Eventually(t, 30*time.Second, func() error {
		must(t, newLeader, "POST", "/v1/semaphores/s/renew", map[string]string{"holder": "keep", "ttl": "3s"}, 200)
		if names := holderNames(semState(t, newLeader, "s")); slices.Contains(names, "lapse") {
			return fmt.Errorf("lapse still holds: %v", names)
		}
		return nil
	})
	s := semState(t, newLeader, "s")
	if len(s.Holders) != 1 || s.Holders[0].Holder != "keep" || s.Holders[0].Token != keep.Token {
		t.Fatalf("after the expiry: %+v", s)
	}
	r := send(context.Background(), "POST", newLeader.URL()+"/v1/semaphores/s/renew", map[string]string{"holder": "lapse", "ttl": "3s"})
	if r.status != 404 || r.code() != "not_holder" {
		t.Fatalf("renew of the expired lease: %s", r)
	}
	// The restarted node catches up to the same state.
	c.Restart(old.Index)
	testcluster.Eventually(t, 30*time.Second, func() error {
		r := send(context.Background(), "GET", old.URL()+"/v1/semaphores/s", nil)
		if r.err != nil || r.status != 200 {
			return fmt.Errorf("%s", r)
		}
		if got := holderNames(jsonOf[semaphoreJSON](t, r.body)); !slices.Equal(got, []string{"keep"}) {
			return fmt.Errorf("restarted node sees holders %v", got)
		}
		return nil
	})
}

// TestCluster_FIFOWaiters queues three blocking acquires through
// different nodes and checks they are granted in arrival order.
func TestCluster_FIFOWaiters(t *testing.T) {
	c := newLocksCluster(t, nil)
	nodes := c.Nodes()
	must(t, nodes[0], "PUT", "/v1/semaphores/q", map[string]int{"limit": 1}, 201)
	must(t, nodes[0], "POST", "/v1/semaphores/q/acquire", map[string]string{"holder": "h0", "ttl": "30s"}, 200)
	var replies []chan reply
	for i := 1; i <= 3; i++ {
		ch := make(chan reply, 1)
		replies = append(replies, ch)
		n := nodes[i%3]
		go func() {
			ch <- send(context.Background(), "POST", n.URL()+"/v1/semaphores/q/acquire",
				map[string]string{"holder": fmt.Sprint("w", i), "ttl": "30s", "wait": "1m"})
		}()
		testcluster.Eventually(t, 20*time.Second, func() error {
			if got := semState(t, nodes[0], "q").Waiting; got != i {
				return fmt.Errorf("%d waiting, want %d", got, i)
			}
			return nil
		})
	}
	prev := "h0"
	var last uint64
	for i, ch := range replies {
		must(t, nodes[i%3], "POST", "/v1/semaphores/q/release", map[string]string{"holder": prev}, 200)
		var r reply
		select {
		case r = <-ch:
		case <-time.After(30 * time.Second):
			t.Fatalf("waiter %d was not granted after the release of %s", i+1, prev)
		}
		if r.err != nil || r.status != 200 {
			t.Fatalf("waiter %d: %s", i+1, r)
		}
		lease := jsonOf[leaseResponse](t, r.body)
		if lease.Token <= last {
			t.Fatalf("waiter %d: token %d after %d", i+1, lease.Token, last)
		}
		last = lease.Token
		prev = fmt.Sprint("w", i+1)
		if got := holderNames(semState(t, nodes[0], "q")); !slices.Equal(got, []string{prev}) {
			t.Fatalf("after waiter %d: holders %v, want [%s]", i+1, got, prev)
		}
	}
}

// TestCluster_TimedOutWaiterLeavesNoGhost: a wait that runs out through a
// follower answers semaphore_full, and neither a queued waiter nor a
// holder is left behind for it.
func TestCluster_TimedOutWaiterLeavesNoGhost(t *testing.T) {
	c := newLocksCluster(t, nil)
	f := c.Followers()[0]
	must(t, f, "PUT", "/v1/semaphores/g", map[string]int{"limit": 1}, 201)
	must(t, f, "POST", "/v1/semaphores/g/acquire", map[string]string{"holder": "h0", "ttl": "30s"}, 200)
	for i := range 3 {
		r := send(context.Background(), "POST", f.URL()+"/v1/semaphores/g/acquire",
			map[string]string{"holder": fmt.Sprint("late", i), "ttl": "30s", "wait": "200ms"})
		if r.status != 409 || r.code() != "semaphore_full" {
			t.Fatalf("timed-out wait: %s", r)
		}
		if s := semState(t, c.Leader(), "g"); s.Waiting != 0 || !slices.Equal(holderNames(s), []string{"h0"}) {
			t.Fatalf("after the timeout: %+v", s)
		}
	}
	must(t, f, "POST", "/v1/semaphores/g/release", map[string]string{"holder": "h0"}, 200)
	for _, n := range c.Nodes() {
		testcluster.Eventually(t, 10*time.Second, func() error {
			r := send(context.Background(), "GET", n.URL()+"/v1/semaphores/g", nil)
			if s := jsonOf[semaphoreJSON](t, r.body); s.Active != 0 || s.Waiting != 0 {
				return fmt.Errorf("%s: ghost left: %+v", n.Name, s)
			}
			return nil
		})
	}
}

// TestCluster_FullRestartKeepsEverything stops every node and starts them
// again (from snapshots and logs): semaphores, limits, holders, tokens and
// lock holders are all there, deadlines re-armed no earlier than before,
// and expiry works again.
func TestCluster_FullRestartKeepsEverything(t *testing.T) {
	c := newLocksCluster(t, nil, testcluster.WithSnapshotThreshold(16))
	l := c.Leader()
	must(t, l, "PUT", "/v1/semaphores/a", map[string]int{"limit": 2}, 201)
	must(t, l, "PUT", "/v1/semaphores/b", map[string]int{"limit": 5}, 201)
	for i := range 30 { // enough commands for snapshots
		must(t, l, "POST", "/v1/semaphores/b/acquire", map[string]string{"holder": "churn", "ttl": "30s"}, 200)
		if i < 29 {
			must(t, l, "POST", "/v1/semaphores/b/release", map[string]string{"holder": "churn"}, 200)
		}
	}
	must(t, l, "POST", "/v1/semaphores/a/acquire", map[string]string{"holder": "x", "ttl": "1m"}, 200)
	must(t, l, "POST", "/v1/semaphores/a/acquire", map[string]string{"holder": "short", "ttl": "2s"}, 200)
	must(t, l, "POST", "/v1/locks/cfg/acquire", map[string]string{"holder": "r1", "mode": "read", "ttl": "1m"}, 200)
	must(t, l, "POST", "/v1/locks/cfg/acquire", map[string]string{"holder": "r2", "mode": "read", "ttl": "1m"}, 200)
	semsBefore := must(t, l, "GET", "/v1/semaphores?consistent=true", nil, 200)
	aBefore, bBefore := semState(t, l, "a"), semState(t, l, "b")
	lockBefore := jsonOf[lockJSON](t, must(t, l, "GET", "/v1/locks/cfg?consistent=true", nil, 200))

	for i := range c.Nodes() {
		c.Stop(i)
	}
	for i := range c.Nodes() {
		c.Restart(i)
	}
	l = c.Leader()
	if got := must(t, l, "GET", "/v1/semaphores?consistent=true", nil, 200); !bytes.Equal(got, semsBefore) {
		t.Fatalf("semaphores after the restart:\n%s\nbefore:\n%s", got, semsBefore)
	}
	for _, before := range []semaphoreJSON{aBefore, bBefore} {
		after := semState(t, l, before.Name)
		if after.Limit != before.Limit || len(after.Holders) != len(before.Holders) {
			t.Fatalf("%s after the restart: %+v, before %+v", before.Name, after, before)
		}
		for i, h := range after.Holders {
			b := before.Holders[i]
			if h.Holder != b.Holder || h.Token != b.Token || h.ExpiresAt < b.ExpiresAt {
				t.Fatalf("%s holder %d after the restart: %+v, before %+v", before.Name, i, h, b)
			}
		}
	}
	lockAfter := jsonOf[lockJSON](t, must(t, l, "GET", "/v1/locks/cfg?consistent=true", nil, 200))
	if lockAfter.Mode != "read" || len(lockAfter.Holders) != 2 || lockAfter.Holders[0].Token != lockBefore.Holders[0].Token {
		t.Fatalf("lock after the restart: %+v, before %+v", lockAfter, lockBefore)
	}
	// The re-armed short lease still expires; the long ones stay.
	testcluster.Eventually(t, 30*time.Second, func() error {
		if got := holderNames(semState(t, l, "a")); !slices.Equal(got, []string{"x"}) {
			return fmt.Errorf("holders of a: %v", got)
		}
		return nil
	})
	// Tokens keep increasing after the restart.
	lease := jsonOf[leaseResponse](t, must(t, l, "POST", "/v1/semaphores/a/acquire", map[string]string{"holder": "new", "ttl": "1m"}, 200))
	for _, h := range aBefore.Holders {
		if lease.Token <= h.Token {
			t.Fatalf("token %d after the restart is not above %d", lease.Token, h.Token)
		}
	}
}

// TestCluster_ErrorsCrossForwarding sends bad and refused requests to a
// follower: validation errors, and the state machine's refusals rebuilt
// from the leader's answer, keep their status and code.
func TestCluster_ErrorsCrossForwarding(t *testing.T) {
	c := newLocksCluster(t, nil)
	f := c.Followers()[0]
	must(t, f, "PUT", "/v1/semaphores/s", map[string]int{"limit": 1}, 201)
	must(t, f, "POST", "/v1/semaphores/s/acquire", map[string]string{"holder": "a", "ttl": "10s"}, 200)
	tests := []struct {
		method, path string
		body         any
		status       int
		code         string
	}{
		{"PUT", "/v1/semaphores/z", map[string]int{"limit": 0}, 400, "invalid_limit"},
		{"PUT", "/v1/semaphores/s", map[string]int{"limit": 2}, 409, "limit_conflict"},
		{"POST", "/v1/semaphores/s/acquire", map[string]string{"holder": "b", "ttl": "-1s"}, 400, "invalid_ttl"},
		{"POST", "/v1/semaphores/s/acquire", map[string]string{"holder": "b", "ttl": "soon"}, 400, "invalid_duration"},
		{"POST", "/v1/semaphores/s/acquire", map[string]string{"holder": strings.Repeat("h", 1000), "ttl": "1s"}, 400, "invalid_holder"},
		{"POST", "/v1/semaphores/s/acquire", map[string]string{"holder": "b", "ttl": "1s"}, 409, "semaphore_full"},
		{"POST", "/v1/semaphores/nope/acquire", map[string]string{"holder": "b", "ttl": "1s"}, 404, "semaphore_not_found"},
		{"POST", "/v1/semaphores/s/release", map[string]string{"holder": "b"}, 404, "not_holder"},
		{"GET", "/v1/semaphores/nope", nil, 404, "semaphore_not_found"},
		{"DELETE", "/v1/semaphores/nope", nil, 404, "semaphore_not_found"},
	}
	for _, tt := range tests {
		r := send(context.Background(), tt.method, f.URL()+tt.path, tt.body)
		if r.err != nil || r.status != tt.status || r.code() != tt.code {
			t.Errorf("%s %s: got %s, want %d %s", tt.method, tt.path, r, tt.status, tt.code)
		}
	}
}
