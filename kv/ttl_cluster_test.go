package kv

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"shoal/internal/agent"
	"shoal/internal/testcluster"
	"shoal/modules"
)

// skewClock is a node's kv clock: the real time plus an offset a test
// moves forward, so that a node reaches an expiry when the test says and
// not before (nothing waits for a TTL to run out in real time).
type skewClock struct{ offset atomic.Int64 }

func (c *skewClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *skewClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// newSkewedKVCluster starts n nodes running only kv with cfg, each with
// its own skewClock.
func newSkewedKVCluster(t *testing.T, n int, cfg Config) (*testcluster.Cluster, []*skewClock) {
	t.Helper()
	clocks := make([]*skewClock, n)
	for i := range clocks {
		clocks[i] = new(skewClock)
	}
	c := testcluster.New(t, n, testcluster.WithModules("kv"), testcluster.WithConfig(func(i int, ac *agent.Config) {
		nc := cfg
		nc.clock = clocks[i].now
		ac.ModuleConfigs = map[string]modules.Config{"kv": &nc} // a map of its own: the shared one is every node's
	}))
	return c, clocks
}

// storedVersion returns the version and tombstone flag node n holds for
// key, from memory.
func storedVersion(t *testing.T, n *testcluster.Node, key string) (Version, bool, bool) {
	t.Helper()
	st := kvOf(t, n).st
	st.mu.RLock()
	defer st.mu.RUnlock()
	m := st.index[key]
	if m == nil {
		return Version{}, false, false
	}
	return m.ver, m.deleted, true
}

// TestCluster_TTLExpiresToOneTombstone: a value written with a TTL
// becomes the same tombstone on every node, whether a node expires it by
// its own clock or receives another node's tombstone first, in either
// order, across a partition; nothing comes back, and every watcher sees
// one new_key and one key_removed per key, nothing more.
func TestCluster_TTLExpiresToOneTombstone(t *testing.T) {
	c, clocks := newSkewedKVCluster(t, 3, DefaultConfig())
	waitClusterSynced(t, c)
	streams := make([]<-chan sseEvent, 3)
	for i, n := range c.Nodes() {
		streams[i] = watch(t, n.URL()+"/v1/kv?prefix=ttl/&watch=true")
	}
	put := func(key, ttl string) WriteResult {
		t.Helper()
		status, body := call(t, "PUT", keyURL(c.Node(0).URL(), key)+"?ttl="+ttl, "v")
		var w WriteResult
		if status != 200 || json.Unmarshal([]byte(body), &w) != nil || w.ExpiresAt == "" {
			t.Fatalf("PUT %s?ttl=%s: %d %s", key, ttl, status, body)
		}
		return w
	}
	wa, wb := put("ttl/a", "1m"), put("ttl/b", "10m")
	all := c.Nodes()
	waitValue(t, all, "ttl/a", "v", true)
	waitValue(t, all, "ttl/b", "v", true)
	tombA := entry{Key: "ttl/a", Version: wa.Version, Expires: wa.Version.Time + time.Minute.Milliseconds()}.expiredTombstone()
	tombB := entry{Key: "ttl/b", Version: wb.Version, Expires: wb.Version.Time + 10*time.Minute.Milliseconds()}.expiredTombstone()

	// Node 2 is cut off. Node 1 passes a's expiry and makes its
	// tombstone; node 0, whose clock has not got there, gets it from
	// node 1 by anti-entropy.
	c.Partition(2)
	clocks[1].advance(2 * time.Minute)
	waitValue(t, all[:2], "ttl/a", "", false)
	if v, ok, err := getValue(c.Node(2), "ttl/a"); err != nil || !ok || v != "v" {
		t.Fatalf("the cut-off node, before the expiry by its clock: got %q %v %v, want the value", v, ok, err)
	}
	// Node 2 expires a by itself, while cut off.
	clocks[2].advance(2 * time.Minute)
	waitValue(t, all[2:], "ttl/a", "", false)
	// Nodes 0 and 1 pass b's expiry; node 2 (b still live by its clock)
	// will get that tombstone when the partition heals.
	clocks[0].advance(20 * time.Minute)
	clocks[1].advance(18 * time.Minute)
	waitValue(t, all[:2], "ttl/b", "", false)

	healGossip(t, c, 2)
	waitClusterConverged(t, c, 0)
	waitValue(t, all, "ttl/b", "", false)
	for _, n := range all {
		for _, want := range []entry{tombA, tombB} {
			v, deleted, ok := storedVersion(t, n, want.Key)
			if !ok || !deleted || v != want.Version {
				t.Fatalf("%s holds %s at %+v (deleted %v, present %v), want the tombstone %+v", n.Name, want.Key, v, deleted, ok, want.Version)
			}
		}
	}
	// Node 2 now passes b's expiry too: its value is gone already, so
	// its sweep (which has run once its expiry queue is empty) makes
	// nothing.
	clocks[2].advance(20 * time.Minute)
	testcluster.Eventually(t, clusterWait, func() error {
		st := kvOf(t, c.Node(2)).st
		st.mu.RLock()
		defer st.mu.RUnlock()
		if n := len(st.expiring); n != 0 {
			return fmt.Errorf("node 2 has %d expiries queued", n)
		}
		return nil
	})

	// A barrier: its new_key comes after every event the TTL keys caused.
	putValue(t, c.Node(1), "ttl/zz-barrier", "b")
	for i, ch := range streams {
		got := map[string][]string{}
		for {
			ev := next(t, ch, clusterWait)
			var e EntryJSON
			if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
				t.Fatalf("node %d: event data %q: %v", i, ev.data, err)
			}
			if e.Key == "ttl/zz-barrier" {
				break
			}
			got[e.Key] = append(got[e.Key], ev.typ)
		}
		for _, key := range []string{"ttl/a", "ttl/b"} {
			if fmt.Sprint(got[key]) != "[new_key key_removed]" {
				t.Fatalf("node %d: events of %s: %v, want one new_key and one key_removed", i, key, got[key])
			}
		}
	}
	// And the sweep of node 2's late expiry changed nothing: still the
	// same tombstone and digest everywhere.
	waitClusterConverged(t, c, 1)
}
