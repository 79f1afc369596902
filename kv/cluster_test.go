package kv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/client"
	"shoal/internal/moduletest"
	"shoal/internal/testcluster"
)

// The real-cluster tests: in-process nodes built by the agent, with real
// memberlist gossip, bolt files and HTTP. They wait by polling, never by
// sleeping, and their bounds are generous for a loaded machine under
// -race.

const clusterWait = 60 * time.Second

// kvOf returns node n's kv module.
func kvOf(t *testing.T, n *testcluster.Node) *KV {
	t.Helper()
	a := n.Agent()
	if a == nil {
		t.Fatalf("%s is down", n.Name)
	}
	m, ok := a.Module("kv")
	if !ok {
		t.Fatalf("%s does not run kv", n.Name)
	}
	return m.(*KV)
}

// newKVCluster starts n nodes running only kv with cfg.
func newKVCluster(t *testing.T, n int, cfg Config) *testcluster.Cluster {
	t.Helper()
	c := cfg
	return testcluster.New(t, n, testcluster.WithModules("kv"), testcluster.WithModuleConfig("kv", &c))
}

// status reads a node's kv status through the API.
func status(t *testing.T, n *testcluster.Node) (Status, error) {
	t.Helper()
	resp, err := testHTTP.Get(n.URL() + "/v1/status")
	if err != nil {
		return Status{}, err
	}
	defer resp.Body.Close()
	var body struct {
		KV Status `json:"kv"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return Status{}, err
	}
	return body.KV, nil
}

// waitClusterSynced waits until every running node is synced and sees
// all the others as kv peers.
func waitClusterSynced(t *testing.T, c *testcluster.Cluster) {
	t.Helper()
	up := c.Up()
	testcluster.Eventually(t, clusterWait, func() error {
		for _, n := range up {
			st, err := status(t, n)
			if err != nil {
				return err
			}
			if !st.Synced || len(st.Peers) != len(up)-1 {
				return fmt.Errorf("%s: synced=%v with %d peers", n.Name, st.Synced, len(st.Peers))
			}
		}
		return nil
	})
}

// waitClusterConverged waits until every running node has the same digest
// and want live keys.
func waitClusterConverged(t *testing.T, c *testcluster.Cluster, want int) {
	t.Helper()
	testcluster.Eventually(t, clusterWait, func() error {
		var first Status
		for i, n := range c.Up() {
			st, err := status(t, n)
			if err != nil {
				return err
			}
			if st.Keys != want {
				return fmt.Errorf("%s has %d keys, want %d", n.Name, st.Keys, want)
			}
			if i == 0 {
				first = st
			} else if st.Digest != first.Digest {
				return fmt.Errorf("%s has digest %s, %s has %s", n.Name, st.Digest, c.Up()[0].Name, first.Digest)
			}
		}
		return nil
	})
}

// getValue reads key on n: its value and whether it exists.
func getValue(n *testcluster.Node, key string) (string, bool, error) {
	resp, err := testHTTP.Get(keyURL(n.URL(), key) + "?raw")
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", false, err
	}
	switch resp.StatusCode {
	case 200:
		return string(b), true, nil
	case 404:
		return "", false, nil
	default:
		return "", false, fmt.Errorf("GET %s on %s: %d %s", key, n.Name, resp.StatusCode, b)
	}
}

// putValue writes key on n through the API and returns its version.
func putValue(t *testing.T, n *testcluster.Node, key, value string) Version {
	t.Helper()
	status, body := call(t, "PUT", keyURL(n.URL(), key), value)
	var w WriteResult
	if status != 200 || json.Unmarshal([]byte(body), &w) != nil {
		t.Fatalf("PUT %s on %s: %d %s", key, n.Name, status, body)
	}
	return w.Version
}

func deleteValue(t *testing.T, n *testcluster.Node, key string) {
	t.Helper()
	if status, body := call(t, "DELETE", keyURL(n.URL(), key), ""); status != 200 {
		t.Fatalf("DELETE %s on %s: %d %s", key, n.Name, status, body)
	}
}

// waitValue waits until key has value on every given node ("" with
// absent for a deleted key).
func waitValue(t *testing.T, nodes []*testcluster.Node, key, value string, present bool) {
	t.Helper()
	testcluster.Eventually(t, clusterWait, func() error {
		for _, n := range nodes {
			v, ok, err := getValue(n, key)
			if err != nil {
				return err
			}
			if ok != present || v != value {
				return fmt.Errorf("%s has %s=%q (present %v), want %q (present %v)", n.Name, key, v, ok, value, present)
			}
		}
		return nil
	})
}

// writeMany writes count keys prefix<i> on the node through its module,
// from 32 goroutines so that fsyncs are shared.
func writeMany(t *testing.T, k *KV, prefix string, count int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < count; i += 32 {
				if _, err := k.write(writeOp{key: fmt.Sprintf("%s%05d", prefix, i), value: fmt.Sprintf("value %d", i)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("write: %v", err)
	}
}

func TestCluster_WriteOneReadAllAndConcurrentWritesConverge(t *testing.T) {
	c := newKVCluster(t, 5, DefaultConfig())
	waitClusterSynced(t, c)
	start := time.Now()
	putValue(t, c.Node(2), "greeting/hello", "world")
	waitValue(t, c.Nodes(), "greeting/hello", "world", true)
	t.Logf("a write reached all 5 nodes in %s", time.Since(start))

	// Every node writes the same key at once: one version wins everywhere.
	versions := make([]Version, 5)
	var wg sync.WaitGroup
	for i, n := range c.Nodes() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			versions[i] = putValue(t, n, "race", n.Name)
		}()
	}
	wg.Wait()
	winner := versions[0]
	for _, v := range versions[1:] {
		if v.Compare(winner) > 0 {
			winner = v
		}
	}
	waitValue(t, c.Nodes(), "race", winner.Node, true)
	for _, n := range c.Nodes() {
		_, body := call(t, "GET", keyURL(n.URL(), "race"), "")
		var e EntryJSON
		if err := json.Unmarshal([]byte(body), &e); err != nil || e.Version != winner {
			t.Fatalf("%s holds version %+v, want the winner %+v", n.Name, e.Version, winner)
		}
	}
	waitClusterConverged(t, c, 2)
}

// healGossip rejoins a node to the others after a partition: memberlist
// declares cut-off members dead and stops gossiping to them, so a partition
// longer than its gossip-to-the-dead time does not heal by itself.
func healGossip(t *testing.T, c *testcluster.Cluster, i int) {
	t.Helper()
	c.Heal()
	var addrs []string
	for _, n := range c.Nodes() {
		if n.Index != i {
			addrs = append(addrs, n.Agent().GossipAddr())
		}
	}
	testcluster.Eventually(t, clusterWait, func() error {
		if len(kvOf(t, c.Node(i)).peers()) == len(c.Nodes())-1 {
			return nil
		}
		_, err := c.Node(i).Agent().Members().Join(addrs)
		return err
	})
}

func TestCluster_PartitionAndHeal(t *testing.T) {
	c := newKVCluster(t, 5, DefaultConfig())
	waitClusterSynced(t, c)
	for _, k := range []string{"old/deleted-by-majority", "old/deleted-then-rewritten", "old/kept"} {
		putValue(t, c.Node(0), k, "before")
	}
	waitClusterConverged(t, c, 3)

	c.Partition(4)
	majority, minority := c.Nodes()[:4], c.Node(4)
	putValue(t, majority[0], "side/majority", "m")
	deleteValue(t, majority[1], "old/deleted-by-majority")
	deleteValue(t, majority[2], "old/deleted-then-rewritten")
	putValue(t, minority, "side/minority", "n")
	waitValue(t, majority, "old/deleted-by-majority", "", false)
	// The minority's write comes after the majority's delete: it is newer.
	putValue(t, minority, "old/deleted-then-rewritten", "rewritten")
	if v, ok, _ := getValue(minority, "side/majority"); ok {
		t.Fatalf("the cut-off node has the majority's write %q", v)
	}

	healGossip(t, c, 4)
	waitClusterConverged(t, c, 4)
	all := c.Nodes()
	waitValue(t, all, "old/deleted-by-majority", "", false)            // the tombstone beats the older value
	waitValue(t, all, "old/deleted-then-rewritten", "rewritten", true) // and loses to the newer one
	waitValue(t, all, "side/majority", "m", true)
	waitValue(t, all, "side/minority", "n", true)
	waitValue(t, all, "old/kept", "before", true)
}

func TestCluster_RestartCatchesUp(t *testing.T) {
	c := newKVCluster(t, 3, DefaultConfig())
	waitClusterSynced(t, c)
	for i := range 20 {
		putValue(t, c.Node(0), fmt.Sprintf("before/%d", i), "v")
	}
	waitClusterConverged(t, c, 20)
	c.Kill(2)
	writer := kvOf(t, c.Node(0))
	writeMany(t, writer, "away/", 1000)
	for i := range 100 {
		deleteValue(t, c.Node(1), fmt.Sprintf("away/%05d", i*10))
	}
	for i := range 10 {
		deleteValue(t, c.Node(1), fmt.Sprintf("before/%d", i))
	}
	c.Restart(2)
	waitClusterSynced(t, c)
	waitClusterConverged(t, c, 10+900)
	back := c.Node(2)
	for _, key := range []string{"away/00000", "away/00990", "before/0", "before/9"} {
		if v, ok, err := getValue(back, key); ok || err != nil {
			t.Fatalf("the restarted node has deleted %s=%q (%v)", key, v, err)
		}
	}
	if v, _, _ := getValue(back, "away/00999"); v != "value 999" {
		t.Fatalf("the restarted node has away/00999=%q", v)
	}
}

// TestCluster_RestartPastTombstoneTTL is TestCluster_RestartCatchesUp with
// a TTL so short that the deletes are forgotten before the node returns:
// it must still not bring the deleted keys back.
func TestCluster_RestartPastTombstoneTTL(t *testing.T) {
	testcluster.FullRunOnly(t, "tombstones forgotten across a restart past their TTL")
	cfg := DefaultConfig()
	cfg.TombstoneTTL = 2 * time.Second
	c := newKVCluster(t, 3, cfg)
	waitClusterSynced(t, c)
	for i := range 50 {
		putValue(t, c.Node(0), fmt.Sprintf("before/%02d", i), "v")
	}
	waitClusterConverged(t, c, 50)
	c.Kill(2)
	writeMany(t, kvOf(t, c.Node(0)), "away/", 1000)
	for i := range 25 {
		deleteValue(t, c.Node(1), fmt.Sprintf("before/%02d", i))
	}
	for i := range 100 {
		deleteValue(t, c.Node(1), fmt.Sprintf("away/%05d", i))
	}
	waitClusterConverged(t, c, 25+900)
	testcluster.Eventually(t, clusterWait, func() error {
		for _, n := range c.Up() {
			st, err := status(t, n)
			if err != nil {
				return err
			}
			if st.Tombstones != 0 {
				return fmt.Errorf("%s still has %d tombstones", n.Name, st.Tombstones)
			}
		}
		return nil
	})
	c.Restart(2)
	waitClusterSynced(t, c)
	waitClusterConverged(t, c, 25+900)
	for _, n := range c.Nodes() {
		for _, key := range []string{"before/00", "before/24", "away/00000", "away/00099"} {
			if v, ok, err := getValue(n, key); ok || err != nil {
				t.Fatalf("%s resurrected %s=%q (%v)", n.Name, key, v, err)
			}
		}
	}
}

// TestCluster_NewNodeGetsEveryKey: a node that joins a cluster holding
// 10,000 keys (500 with -short: most of the time is the writes) gets
// them all in one full sync.
func TestCluster_NewNodeGetsEveryKey(t *testing.T) {
	keys := 10000
	if testing.Short() {
		keys = 500
	}
	c := newKVCluster(t, 3, DefaultConfig())
	waitClusterSynced(t, c)
	start := time.Now()
	writeMany(t, kvOf(t, c.Node(0)), "bulk/", keys)
	t.Logf("%d writes on one node took %s", keys, time.Since(start))
	waitClusterConverged(t, c, keys)
	t.Logf("and reached the other nodes after %s", time.Since(start))
	n := c.AddNode()
	start = time.Now()
	waitClusterSynced(t, c)
	waitClusterConverged(t, c, keys)
	t.Logf("a new node got %d keys in %s", keys, time.Since(start))
	st, err := status(t, n)
	if err != nil {
		t.Fatal(err)
	}
	if st.Keys != keys {
		t.Fatalf("the new node has %d keys, want %d", st.Keys, keys)
	}
	if got := moduletest.MetricValue(t, n.Agent().Registry(), "shoal_kv_syncs_total", "result", "completed"); got != 1 {
		t.Fatalf("the new node completed %v full syncs, want 1", got)
	}
}

func TestCluster_EventsOncePerChange(t *testing.T) {
	c := newKVCluster(t, 3, DefaultConfig())
	waitClusterSynced(t, c)
	streams := make([]<-chan sseEvent, 3)
	for i, n := range c.Nodes() {
		streams[i] = watch(t, n.URL()+"/v1/kv?prefix=ev/&watch=true")
	}
	expect := func(typ, key, value string) {
		t.Helper()
		for i, ch := range streams {
			ev := next(t, ch, clusterWait)
			var e EntryJSON
			if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
				t.Fatalf("node %d: event data %q: %v", i, ev.data, err)
			}
			got := ""
			if e.Value != nil {
				got = *e.Value
			}
			if ev.typ != typ || e.Key != key || got != value {
				t.Fatalf("node %d: got %s %s, want %s %s=%q", i, ev.typ, ev.data, typ, key, value)
			}
		}
	}
	v1 := putValue(t, c.Node(0), "ev/k", "1")
	expect("new_key", "ev/k", "1")
	putValue(t, c.Node(1), "ev/k", "2")
	expect("key_changed", "ev/k", "2")
	deleteValue(t, c.Node(2), "ev/k")
	expect("key_removed", "ev/k", "")

	// A losing write: the first version again, as a late duplicate would
	// come. Then a barrier through the same inbox: its event proves the
	// late copy was handled without one.
	stale := encodeMessage(message{Type: msgEntry, From: "node0", Entries: []entry{{Key: "ev/k", Value: "1", Version: v1}}})
	barrier := encodeMessage(message{Type: msgEntry, From: "zz-test", Entries: []entry{{Key: "ev/barrier", Value: "b",
		Version: Version{Time: time.Now().Add(time.Hour).UnixMilli(), Node: "zz-test"}}}})
	for _, n := range c.Nodes() {
		k := kvOf(t, n)
		k.NotifyMsg(stale)
		k.NotifyMsg(barrier)
	}
	expect("new_key", "ev/barrier", "b")
}

func TestCluster_RejectsBadInput(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxValue = 1024
	c := newKVCluster(t, 3, cfg)
	url := c.Node(1).URL()
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"invalid UTF-8", "PUT", "/v1/kv/k", "ok\xc3\x28", 400, "invalid_value"},
		{"control characters in key", "PUT", "/v1/kv/bad%07bell", "v", 400, "invalid_key"},
		{"tab in key", "PUT", "/v1/kv/bad%09tab", "v", 400, "invalid_key"},
		{"oversize value", "PUT", "/v1/kv/k", strings.Repeat("x", 1025), 413, "value_too_large"},
		{"over the API body limit", "PUT", "/v1/kv/k", strings.Repeat("x", 5<<20), 413, "body_too_large"},
		{"bad prefix", "GET", "/v1/kv?prefix=%C3%28", "", 400, "invalid_parameter"},
		{"bad limit", "GET", "/v1/kv?prefix=a&limit=-1", "", 400, "invalid_parameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := call(t, tt.method, url+tt.path, tt.body)
			if status != tt.status || errorCode(t, body) != tt.code {
				t.Fatalf("got %d %s, want %d %s", status, body, tt.status, tt.code)
			}
		})
	}
	st, err := status(t, c.Node(1))
	if err != nil || st.Keys != 0 || st.Tombstones != 0 {
		t.Fatalf("bad requests changed the store: %+v %v", st, err)
	}
}

// TestCluster_GoClient drives a real node with the Go client, so that the
// client and the module agree on the wire format.
func TestCluster_GoClient(t *testing.T) {
	c := newKVCluster(t, 3, DefaultConfig())
	waitClusterSynced(t, c)
	cl0, err := client.New(c.Node(0).URL())
	if err != nil {
		t.Fatal(err)
	}
	cl2, err := client.New(c.Node(2).URL())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*clusterWait)
	defer cancel()
	events := make(chan client.KVEvent, 16)
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- cl2.KVWatch(ctx, "conf/", func(ev client.KVEvent) error {
			events <- ev
			return nil
		})
	}()
	recv := func() client.KVEvent {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case err := <-watchDone:
			t.Fatalf("the watch ended: %v", err)
		case <-time.After(clusterWait):
			t.Fatalf("no event within %s", clusterWait)
		}
		return client.KVEvent{}
	}
	if ev := recv(); ev.Type != "synced" || ev.Node != "node2" {
		t.Fatalf("first event: %+v, want synced from node2", ev)
	}
	keys := []string{"conf/a b", "conf/./dot", "conf/q?x#y", "conf/100%", "conf/ü/€", "conf//double"}
	for _, key := range keys {
		v, err := cl0.KVPut(ctx, key, "value of "+key)
		if err != nil {
			t.Fatalf("put %q: %v", key, err)
		}
		ev := recv()
		if ev.Type != "new_key" || ev.Entry.Key != key || ev.Entry.Value != "value of "+key || ev.Entry.Version != client.KVVersion(v) {
			t.Fatalf("event for %q: %+v (put version %v)", key, ev, v)
		}
		e, err := cl2.KVGet(ctx, key)
		if err != nil || e.Value != "value of "+key || e.Version != v || e.UpdatedAt.IsZero() {
			t.Fatalf("get %q on node2: %+v, %v", key, e, err)
		}
	}
	page, err := cl2.KVList(ctx, client.KVListOptions{Prefix: "conf/", Limit: 4})
	if err != nil || len(page.Items) != 4 || page.Next == "" {
		t.Fatalf("list: %+v, %v", page, err)
	}
	if _, err := cl0.KVDelete(ctx, "conf/a b"); err != nil {
		t.Fatal(err)
	}
	if ev := recv(); ev.Type != "key_removed" || !ev.Removed || ev.Entry.Key != "conf/a b" {
		t.Fatalf("removal event: %+v", ev)
	}
	if _, err := cl2.KVGet(ctx, "conf/a b"); !errors.Is(err, client.ErrKeyNotFound) {
		t.Fatalf("get deleted: got %v, want ErrKeyNotFound", err)
	}
	if _, err := cl0.KVPut(ctx, "bad\x01key", "v"); !errors.Is(err, client.ErrInvalidKey) {
		t.Fatalf("bad key: got %v, want ErrInvalidKey", err)
	}
	cancel()
	select {
	case err := <-watchDone:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("watch ended with %v", err)
		}
	case <-time.After(clusterWait):
		t.Fatalf("the watch did not end with its context")
	}
}
