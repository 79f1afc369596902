package logstream_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/client"
	"shoal/consensus"
	"shoal/internal/agent"
	"shoal/internal/moduletest"
	"shoal/internal/testcluster"
)

// TestCluster_LeaderKilledNoAcknowledgedEntryLost kills the leader while
// three writers publish with ids, round-robin over the live nodes,
// retrying every failure with the same id. Every acknowledged id must end
// up in the log exactly once, at the index it was acknowledged with, the
// indexes 1..N without a gap, on every node, including the killed one
// after it restarts.
func TestCluster_LeaderKilledNoAcknowledgedEntryLost(t *testing.T) {
	testcluster.FullRunOnly(t, "a killed leader loses no acknowledged entry (the e2e suite kills the leader every run)")
	h := newHarness(t)
	p := h.publisher("orders")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	const writers, each = 3, 60
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.publishAll(ctx, ids(fmt.Sprintf("w%d", w), each)); err != nil {
				errs <- err
			}
		}()
	}
	// Kill the leader with the writers in full flow: a third is in.
	testcluster.Eventually(t, 60*time.Second, func() error {
		if n := p.ackedCount(); n < writers*each/3 {
			return fmt.Errorf("%d of %d acknowledged", n, writers*each)
		}
		return nil
	})
	old := h.Leader()
	h.Kill(old.Index)
	killedAt := p.ackedCount()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want, err := p.inIndexOrder()
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != writers*each {
		t.Fatalf("%d ids acknowledged, want %d", len(want), writers*each)
	}
	t.Logf("killed the leader %s after %d acknowledgements; %d failed attempts retried, %d acknowledged as duplicates",
		old.Name, killedAt, p.retries, p.duplicates)

	if h.Leader() == old {
		t.Fatal("the killed node still leads")
	}
	for _, n := range h.Up() {
		h.waitLog(n, "orders", want)
	}
	h.Restart(old.Index)
	h.waitLog(old, "orders", want)
}

// TestCluster_FollowerRestartCatchesUp stops a follower, publishes while it
// is down and checks that it has every entry after it restarts.
func TestCluster_FollowerRestartCatchesUp(t *testing.T) {
	h := newHarness(t)
	p := h.publisher("orders")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.publishAll(ctx, ids("before", 20)); err != nil {
		t.Fatal(err)
	}
	f := h.Followers()[0]
	h.Stop(f.Index)
	if err := p.publishAll(ctx, ids("down", 40)); err != nil {
		t.Fatal(err)
	}
	want, err := p.inIndexOrder()
	if err != nil {
		t.Fatal(err)
	}
	h.Restart(f.Index)
	h.waitLog(f, "orders", want)

	logs, err := h.client(f).Logs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantInfo := []client.LogInfo{{Name: "orders", FirstIndex: 1, LastIndex: 60, Entries: 60}}
	for i := range logs {
		if logs[i].Bytes <= 0 {
			t.Fatalf("GET /v1/logs on %s: %+v, want the bytes on disk", f.Name, logs[i])
		}
		logs[i].Bytes = 0 // the segment format's business
	}
	if fmt.Sprint(logs) != fmt.Sprint(wantInfo) {
		t.Fatalf("GET /v1/logs on %s: got %+v, want %+v", f.Name, logs, wantInfo)
	}
}

// TestCluster_RestoresFromSnapshot runs with a snapshot every 16 Raft
// entries (and 16 trailing entries kept), so a follower that was down
// while 300 entries were published can only catch up from a snapshot; then
// every node restarts from its own snapshot, and a node added late is sent
// one. The dedup table is part of the snapshot: publishing an old id again
// returns the original index.
func TestCluster_RestoresFromSnapshot(t *testing.T) {
	// raft-wal drops compacted entries only a whole segment (64 MiB) at a
	// time, so with it the leader would still send the entries; bolt
	// drops them at once, and the follower must install the snapshot.
	h := newHarness(t, testcluster.WithSnapshotThreshold(16), testcluster.WithConfig(func(_ int, cfg *agent.Config) {
		cfg.RaftLogStore = consensus.LogStoreBolt
	}))
	p := h.publisher("orders")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	f := h.Followers()[0]
	h.Stop(f.Index)

	const writers, each = 3, 100
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.publishAll(ctx, ids(fmt.Sprintf("w%d", w), each)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want, err := p.inIndexOrder()
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != writers*each {
		t.Fatalf("%d ids acknowledged, want %d", len(want), writers*each)
	}

	h.Restart(f.Index)
	h.waitLog(f, "orders", want)
	// It caught up from the leader's snapshot: the log's segment files
	// came over the cluster port, not the entries over Raft.
	if got := moduletest.MetricValue(t, f.Agent().Registry(), "shoal_log_snapshot_installs_total"); got < 1 {
		t.Fatalf("the follower installed %v logs from a snapshot, want at least 1", got)
	}

	for i := range h.Nodes() {
		h.Stop(i)
	}
	for i := range h.Nodes() {
		h.Restart(i)
	}
	h.Leader()
	for _, n := range h.Nodes() {
		h.waitLog(n, "orders", want)
	}

	late := h.AddNode()
	h.waitLog(late, "orders", want)
	if got := moduletest.MetricValue(t, late.Agent().Registry(), "shoal_log_snapshot_installs_total"); got < 1 {
		t.Fatalf("the late node installed %v logs from a snapshot, want at least 1", got)
	}

	// Old ids are still remembered: through any node, the late one
	// included, they are duplicates with their original index.
	for i, id := range []string{want[0], want[149], want[len(want)-1]} {
		n := h.Nodes()[i%len(h.Nodes())]
		if i == 0 {
			n = late
		}
		var res client.PublishResult
		testcluster.Eventually(t, 20*time.Second, func() error {
			var err error
			res, err = h.client(n).Publish(ctx, "orders", id, dataFor(id))
			return err
		})
		if wantIndex := p.acked[id]; !res.Duplicate || res.Index != wantIndex {
			t.Fatalf("publish of the old id %s through %s: got %+v, want index %d, duplicate", id, n.Name, res, wantIndex)
		}
	}
	res, err := p.publish(ctx, "after-snapshot")
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicate || res.Index != uint64(len(want)+1) {
		t.Fatalf("publish of a new id: got %+v, want index %d", res, len(want)+1)
	}
	want = append(want, "after-snapshot")
	for _, n := range h.Nodes() {
		h.waitLog(n, "orders", want)
	}
}

// TestCluster_PartitionedMinorityRefusesPublishes cuts the leader off. The
// cut-off node refuses a publish with 503 and Retry-After while the
// majority elects a new leader and accepts publishes; after the partition
// heals the cut-off node has the majority's entries and nothing of the
// refused attempt, whose id is then still free.
func TestCluster_PartitionedMinorityRefusesPublishes(t *testing.T) {
	testcluster.FullRunOnly(t, "a partitioned minority refuses publishes (the e2e suite partitions real containers every run)")
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p := h.publisher("orders")
	if err := p.publishAll(ctx, ids("before", 10)); err != nil {
		t.Fatal(err)
	}

	cut := h.Leader()
	h.Partition(cut.Index)
	majority := h.others(cut)
	var refused rawResponse
	var refusedErr error
	var took time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		start := time.Now()
		refused, refusedErr = h.raw(ctx, cut, http.MethodPost, "/v1/logs/orders",
			strings.NewReader(`{"id":"minority","data":{"id":"minority"}}`), nil)
		took = time.Since(start)
	}()

	h.LeaderOf(majority...)
	p.nodes = majority
	if err := p.publishAll(ctx, ids("majority", 10)); err != nil {
		t.Fatal(err)
	}
	<-done
	if refusedErr != nil {
		t.Fatalf("publish on the cut-off node: %v", refusedErr)
	}
	code, _ := refused.errorBody()
	if refused.status != http.StatusServiceUnavailable {
		t.Fatalf("publish on the cut-off node: got %d %s, want 503", refused.status, refused.body)
	}
	if secs, err := strconv.Atoi(refused.header.Get("Retry-After")); err != nil || secs < 1 {
		t.Fatalf("publish on the cut-off node: Retry-After %q, want a number of seconds", refused.header.Get("Retry-After"))
	}
	t.Logf("the cut-off node answered 503 %s after %v", code, took.Round(time.Millisecond))

	h.Heal()
	want, err := p.inIndexOrder()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range h.Nodes() {
		h.waitLog(n, "orders", want)
	}
	// The refused id was never committed, so it is not remembered either.
	res, err := h.publisher("orders", cut).publish(ctx, "minority")
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicate || res.Index != uint64(len(want)+1) {
		t.Fatalf("publish of the refused id after the heal: got %+v, want a new entry at %d", res, len(want)+1)
	}
}

// TestCluster_NoLeaderAnswers503WithRetryAfter leaves one node of three.
// A publish and a consistent read on it fail with 503 and Retry-After once
// the node gives up waiting for a leader (its apply timeout, 10s); a
// local read is still served.
func TestCluster_NoLeaderAnswers503WithRetryAfter(t *testing.T) {
	testcluster.FullRunOnly(t, "the 10 s apply timeout turned into 503 on a publish and a consistent read (consensus tests no_leader under -short)")
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := h.publisher("orders")
	if err := p.publishAll(ctx, ids("a", 3)); err != nil {
		t.Fatal(err)
	}
	want, err := p.inIndexOrder()
	if err != nil {
		t.Fatal(err)
	}
	survivor := h.Followers()[0]
	h.waitLog(survivor, "orders", want)
	for _, n := range h.others(survivor) {
		h.Kill(n.Index)
	}
	cl := h.client(survivor)

	// A local read needs no leader.
	rr, err := cl.Read(ctx, "orders", 1, 0, false)
	if err != nil {
		t.Fatalf("local read without a leader: %v", err)
	}
	if err := checkEntries(rr.Entries, want, 1); err != nil {
		t.Fatalf("local read without a leader: %v", err)
	}

	var wg sync.WaitGroup
	var pub rawResponse
	var pubErr, readErr error
	var pubTook, readTook time.Duration
	wg.Add(2)
	go func() {
		defer wg.Done()
		start := time.Now()
		pub, pubErr = h.raw(ctx, survivor, http.MethodPost, "/v1/logs/orders",
			strings.NewReader(`{"id":"x","data":{"id":"x"}}`), nil)
		pubTook = time.Since(start)
	}()
	go func() {
		defer wg.Done()
		start := time.Now()
		_, readErr = cl.Read(ctx, "orders", 1, 0, true)
		readTook = time.Since(start)
	}()
	wg.Wait()

	if pubErr != nil {
		t.Fatalf("publish without a leader: %v", pubErr)
	}
	code, _ := pub.errorBody()
	if pub.status != http.StatusServiceUnavailable {
		t.Fatalf("publish without a leader: got %d %s, want 503", pub.status, pub.body)
	}
	if secs, err := strconv.Atoi(pub.header.Get("Retry-After")); err != nil || secs < 1 {
		t.Fatalf("publish without a leader: Retry-After %q, want a number of seconds", pub.header.Get("Retry-After"))
	}
	var ce *client.Error
	if !errors.As(readErr, &ce) || ce.Status != http.StatusServiceUnavailable || ce.RetryAfter < time.Second {
		t.Fatalf("consistent read without a leader: got %v, want 503 with Retry-After", readErr)
	}
	t.Logf("without a leader: publish 503 %s after %v, consistent read 503 %s after %v",
		code, pubTook.Round(time.Millisecond), ce.Code, readTook.Round(time.Millisecond))
}
