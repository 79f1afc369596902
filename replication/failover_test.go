package replication

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"shoal/internal/testcluster"
)

// TestCluster_FollowerCatchUpMovesOnlyChanges kills a follower, changes a
// few files, restarts it, and checks that its catch-up received only what
// changed (appended tails, new and replaced files), not the whole
// directory, and that it then streams and rejoins the in-sync set.
func TestCluster_FollowerCatchUpMovesOnlyChanges(t *testing.T) {
	c := newCluster(t, nil)
	r := rand.New(rand.NewPCG(3, 4))
	leader := replLeader(t, c)
	const files, size = 12, 256 << 10
	for i := range files {
		mustWrite(t, c.Nodes()[i%3], "PUT", fmt.Sprintf("/v1/files/seg/%02d", i), randomBytes(r, size))
	}
	waitConverged(t, c, nil)

	victim := (leader.Index + 1) % 3
	c.Kill(victim)
	waitInSync(t, c, 2) // it left the in-sync set: writes go on without it
	var budget int64
	via := c.Node((leader.Index + 2) % 3)
	for i := range 3 { // appends: only the tails should move
		data := randomBytes(r, 4<<10)
		mustWrite(t, via, "POST", fmt.Sprintf("/v1/files/seg/%02d?append", i), data)
		budget += int64(len(data))
	}
	data := randomBytes(r, 100<<10) // a replace: the whole file moves
	mustWrite(t, via, "PUT", "/v1/files/seg/05", data)
	budget += int64(len(data))
	data = randomBytes(r, 50<<10) // a new file
	mustWrite(t, via, "PUT", "/v1/files/new/one", data)
	budget += int64(len(data))
	mustWrite(t, via, "DELETE", "/v1/files/seg/07", nil)

	c.Restart(victim)
	waitInSync(t, c, 3)
	waitConverged(t, c, nil)
	got := module(t, c.Node(victim)).catchupReceived.Load()
	t.Logf("catch-up moved %d bytes (budget %d, directory %d)", got, budget, files*size)
	if got == 0 || got > budget {
		t.Fatalf("the restarted follower received %d catch-up bytes, want 1 to %d (the directory holds %d)", got, budget, files*size)
	}
	if mm := module(t, c.Node(victim)).mismatches.Load(); mm != 0 {
		t.Fatalf("%d checksum mismatches", mm)
	}
	// It streams: a new write reaches it.
	mustWrite(t, via, "POST", "/v1/files/seg/00?append", []byte("live"))
	waitConverged(t, c, nil)
}

// TestCluster_LeaderFailoverKeepsAcknowledgedWrites writes files through
// every node while the replication leader is killed: every write that was
// acknowledged must be, with its content, on the new leader and on the
// other follower; writes then resume, and the old leader rejoins.
func TestCluster_LeaderFailoverKeepsAcknowledgedWrites(t *testing.T) {
	c := newCluster(t, nil)
	leader := replLeader(t, c)
	var (
		mu    sync.Mutex
		acked = map[string][]byte{}
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	for w := range 3 {
		if w == leader.Index {
			continue // its HTTP server dies with it
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := fmt.Sprintf("w%d/%04d", w, i)
				data := randomBytes(r, 1+r.IntN(32<<10))
				res := send("PUT", c.Node(w).URL()+"/v1/files/"+p, data)
				if res.status == 200 {
					mu.Lock()
					acked[p] = data
					mu.Unlock()
				}
			}
		}()
	}
	waitAcked := func(n int) {
		testcluster.Eventually(t, 30*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(acked) < n {
				return fmt.Errorf("%d writes acknowledged, want %d", len(acked), n)
			}
			return nil
		})
	}
	waitAcked(20)
	c.Kill(leader.Index)
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	waitAcked(before + 20) // writes resume under the new leader
	close(stop)
	wg.Wait()

	newLeader := replLeader(t, c)
	if newLeader == leader {
		t.Fatalf("the killed node still leads")
	}
	waitConverged(t, c, nil)
	mu.Lock()
	defer mu.Unlock()
	for _, n := range c.Up() {
		dir := module(t, n).cfg.Dir
		for p, data := range acked {
			got, err := readFile(dir, p)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("acknowledged write %s is not on %s (err %v, %d bytes, want %d)", p, n.Name, err, len(got), len(data))
			}
		}
	}
	c.Restart(leader.Index)
	waitInSync(t, c, 3)
	waitConverged(t, c, nil)
}

// TestCluster_PausedFollowerLeavesAndRejoinsInSyncSet freezes a follower
// (its connections stay open, nothing is delivered): it leaves the
// in-sync set and writes go on; thawed, it catches up and rejoins.
func TestCluster_PausedFollowerLeavesAndRejoinsInSyncSet(t *testing.T) {
	c := newCluster(t, nil)
	t.Cleanup(c.Heal) // before the cluster stops: raft cannot stop talking to a frozen peer
	leader := replLeader(t, c)
	victim := (leader.Index + 1) % 3
	c.Pause(victim)
	waitInSync(t, c, 2)
	leader = replLeader(t, c)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 10 {
		mustWrite(t, leader, "PUT", fmt.Sprintf("/v1/files/p/%d", i), randomBytes(r, 64<<10))
	}
	c.Resume(victim)
	waitInSync(t, c, 3)
	waitConverged(t, c, nil)
}

// TestCluster_NotDurableBelowMinAcks requires both followers' acks: with
// one follower down, a write is applied on the leader but answered 503
// not_durable; once the follower is back in the in-sync set, writes are
// acknowledged again. With min-acks 0 (async) the leader alone suffices.
func TestCluster_NotDurableBelowMinAcks(t *testing.T) {
	cfg := testConfig()
	cfg.MinAcks = 2
	c := newCluster(t, cfg)
	leader := replLeader(t, c)
	mustWrite(t, leader, "PUT", "/v1/files/x", []byte("one"))
	victim := (leader.Index + 1) % 3
	c.Kill(victim)
	waitInSync(t, c, 2)
	r := send("PUT", leader.URL()+"/v1/files/x", []byte("two"))
	if r.status != 503 || r.code() != "not_durable" {
		t.Fatalf("write with one of two required followers down: %s, want 503 not_durable", r)
	}
	c.Restart(victim)
	waitInSync(t, c, 3)
	mustWrite(t, leader, "PUT", "/v1/files/x", []byte("three"))
	waitConverged(t, c, map[string]string{"x": sumHex([]byte("three"))})
}

// TestCluster_CatchUpRepairsDamagedCopy damages a stopped follower's copy
// behind the module's back: a file flipped in its middle moves whole, a
// truncated file gets only its missing tail, an extra file is deleted and
// a missing one comes back.
func TestCluster_CatchUpRepairsDamagedCopy(t *testing.T) {
	c := newCluster(t, nil)
	leader := replLeader(t, c)
	r := rand.New(rand.NewPCG(11, 12))
	const size = 64 << 10
	for _, p := range []string{"flipped", "truncated", "missing", "intact"} {
		mustWrite(t, leader, "PUT", "/v1/files/"+p, randomBytes(r, size))
	}
	waitConverged(t, c, nil)
	victim := (leader.Index + 1) % 3
	dir := module(t, c.Node(victim)).cfg.Dir
	c.Stop(victim)
	b, err := readFile(dir, "flipped")
	if err != nil {
		t.Fatal(err)
	}
	b[size/2] ^= 0xff
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "flipped"), b, 0o644))
	must(os.Truncate(filepath.Join(dir, "truncated"), size-1000))
	must(os.Remove(filepath.Join(dir, "missing")))
	must(os.WriteFile(filepath.Join(dir, "extra"), []byte("not on the leader"), 0o644))
	c.Restart(victim)
	waitConverged(t, c, nil)
	if got, want := module(t, c.Node(victim)).catchupReceived.Load(), int64(size+1000+size); got != want {
		t.Fatalf("catch-up moved %d bytes, want %d (flipped whole, truncated tail, missing whole)", got, want)
	}
}

// TestDiffTrees_NegativeControl: the convergence check must see every kind
// of difference, or the tests above could pass on diverged copies.
func TestDiffTrees_NegativeControl(t *testing.T) {
	a := map[string]string{"x": "1", "y": "2"}
	if d := diffTrees(a, map[string]string{"x": "1", "y": "2"}); d != "" {
		t.Fatalf("equal trees differ: %s", d)
	}
	for _, b := range []map[string]string{{"x": "1"}, {"x": "1", "y": "3"}, {"x": "1", "y": "2", "z": "4"}, {}} {
		if diffTrees(a, b) == "" {
			t.Fatalf("%v and %v reported equal", a, b)
		}
	}
}

// TestCluster_StaleNodeNeverLeads leaves a follower out of the in-sync set
// (down while writes are acknowledged without it), then kills the leader
// and restarts the stale node: whichever of the two survivors Raft elects,
// the one outside the set must not lead replication before it has caught
// up, so every acknowledged write ends on both survivors, and writes
// resume.
func TestCluster_StaleNodeNeverLeads(t *testing.T) {
	testcluster.FullRunOnly(t, "a stale node refused as leader, beside the failover tests")
	c := newCluster(t, nil)
	leader := replLeader(t, c)
	member := c.Node((leader.Index + 1) % 3)
	stale := c.Node((leader.Index + 2) % 3)
	c.Kill(stale.Index)
	waitInSync(t, c, 2)
	r := rand.New(rand.NewPCG(15, 16))
	acked := map[string]string{}
	for i := range 10 {
		p := fmt.Sprintf("while-frozen/%d", i)
		data := randomBytes(r, 16<<10)
		mustWrite(t, member, "PUT", "/v1/files/"+p, data)
		acked[p] = sumHex(data)
	}
	c.Kill(leader.Index)
	c.Restart(stale.Index)
	newLeader := replLeader(t, c)
	putKnown(t, newLeader, "after", []byte("resumed")) // the first writes may wait for the set to settle
	acked["after"] = sumHex([]byte("resumed"))
	waitConverged(t, c, nil)
	for _, n := range []*testcluster.Node{member, stale} {
		got := tree(t, n)
		for p, h := range acked {
			if got[p] != h {
				t.Fatalf("acknowledged write %s is not on %s", p, n.Name)
			}
		}
	}
}

// TestCluster_WritesDuringCatchUp wipes a stopped follower's copy and
// restarts it while writes (appends to the very files it is fetching,
// replaces, deletes, new files) keep coming: the leader queues them during
// the catch-up, skips those a fetched copy already holds, and the follower
// ends byte-identical.
func TestCluster_WritesDuringCatchUp(t *testing.T) {
	c := newCluster(t, nil)
	leader := replLeader(t, c)
	r := rand.New(rand.NewPCG(17, 18))
	const files = 20
	for i := range files {
		mustWrite(t, leader, "PUT", fmt.Sprintf("/v1/files/f/%02d", i), randomBytes(r, 512<<10))
	}
	victim := (leader.Index + 1) % 3
	dir := module(t, c.Node(victim)).cfg.Dir
	c.Stop(victim)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != reservedDir {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.Restart(victim)
	deleted := map[int]bool{}
	for i := 0; ; i++ {
		k := r.IntN(files)
		p := fmt.Sprintf("f/%02d", k)
		switch {
		case deleted[k]:
			putKnown(t, leader, p, randomBytes(r, 1000))
			delete(deleted, k)
		case i%7 == 3:
			testcluster.Eventually(t, 30*time.Second, func() error {
				if got := send("DELETE", leader.URL()+"/v1/files/"+p, nil); got.status != 200 && got.status != 404 {
					return fmt.Errorf("delete %s: %s", p, got)
				}
				return nil
			})
			deleted[k] = true
		case i%5 == 0:
			putKnown(t, leader, p, randomBytes(r, 4000))
		default:
			// Appends may come back not durable while the follower syncs; the
			// convergence check below does not need their outcome.
			send("POST", leader.URL()+"/v1/files/"+p+"?append", randomBytes(r, 3000))
		}
		if i >= 30 {
			if s := module(t, c.Node(victim)).follower.Load(); s.State == stateStreaming {
				break
			}
		}
		if i > 5000 {
			t.Fatalf("the follower never streamed")
		}
	}
	waitConverged(t, c, nil)
	if mm := module(t, c.Node(victim)).mismatches.Load(); mm != 0 {
		t.Logf("%d mismatches during the catch-up (each restarts it)", mm)
	}
}
