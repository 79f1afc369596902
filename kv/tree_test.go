package kv

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"shoal/internal/moduletest"
	"shoal/internal/testcluster"
)

func TestTree_IncrementalEqualsRebuilt(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	inc := newTree()
	final := map[string]uint64{}
	for i := range 2000 {
		key := fmt.Sprintf("key-%d", r.IntN(300))
		if old, ok := final[key]; ok {
			inc.toggle(leafOf(key), old) // remove the old version
			delete(final, key)
		}
		if i%5 != 0 {
			h := entryHash(key, ver(int64(i), 0, "n"), i%3 == 0)
			inc.toggle(leafOf(key), h)
			final[key] = h
		}
	}
	rebuilt := newTree()
	for key, h := range final {
		rebuilt.toggle(leafOf(key), h)
	}
	for l := range rebuilt.levels {
		if !slices.Equal(inc.levels[l], rebuilt.levels[l]) {
			t.Fatalf("level %d differs", l)
		}
	}
	if empty := newTree(); inc.root() == empty.root() && len(final) > 0 {
		t.Fatalf("a non-empty tree has the empty root")
	}
}

func TestEntryHash_CoversVersionAndTombstone(t *testing.T) {
	base := entryHash("k", ver(1, 2, "n"), false)
	for name, h := range map[string]uint64{
		"key":       entryHash("k2", ver(1, 2, "n"), false),
		"time":      entryHash("k", ver(2, 2, "n"), false),
		"counter":   entryHash("k", ver(1, 3, "n"), false),
		"node":      entryHash("k", ver(1, 2, "m"), false),
		"tombstone": entryHash("k", ver(1, 2, "n"), true),
		"boundary":  entryHash("kn", ver(1, 2, ""), false),
	} {
		if h == base {
			t.Fatalf("changing the %s does not change the hash", name)
		}
	}
}

func TestLeafOf_Spreads(t *testing.T) {
	seen := map[int]int{}
	for i := range 40960 {
		seen[leafOf(fmt.Sprintf("config/service-%d", i))]++
	}
	if len(seen) < numLeaves*95/100 {
		t.Fatalf("40960 similar keys fill only %d of %d leaves", len(seen), numLeaves)
	}
}

// TestDigest_DescentFindsExactlyTheDifferingLeaves walks the digest
// protocol between two stores by hand.
func TestDigest_DescentFindsExactlyTheDifferingLeaves(t *testing.T) {
	a, _ := openTestStore(t)
	b, _ := openTestStore(t)
	var common []entry
	for i := range 1000 {
		common = append(common, entry{Key: fmt.Sprintf("k%d", i), Value: "v", Version: ver(1, 0, "n")})
	}
	mergeAll(t, a, 0, common...)
	mergeAll(t, b, 0, common...)
	diffKeys := []string{"k3", "k500", "only-a"}
	mergeAll(t, a, 0,
		entry{Key: "k3", Value: "newer", Version: ver(2, 0, "n")},
		entry{Key: "only-a", Value: "x", Version: ver(2, 0, "n")})
	mergeAll(t, b, 0, entry{Key: "k500", Version: ver(2, 0, "n"), Deleted: true})

	all := make([]int, treeFanout)
	for i := range all {
		all[i] = i
	}
	l1 := b.mismatched(1, a.hashes(1, all))
	l2 := a.mismatched(2, b.hashes(2, children(l1)))
	l3 := b.mismatched(3, a.hashes(3, children(l2)))
	var want []int
	for _, k := range diffKeys {
		want = append(want, leafOf(k))
	}
	slices.Sort(want)
	want = slices.Compact(want)
	slices.Sort(l3)
	if !slices.Equal(l3, want) {
		t.Fatalf("differing leaves: got %v, want %v", l3, want)
	}
	push, wants := a.diff(b.summaries(l3), 0)
	var pushed, wanted []string
	for _, w := range push {
		pushed = append(pushed, w.Key)
	}
	for _, w := range wants {
		wanted = append(wanted, w.Key)
	}
	slices.Sort(pushed)
	if !slices.Equal(pushed, []string{"k3", "only-a"}) || !slices.Equal(wanted, []string{"k500"}) {
		t.Fatalf("a pushes %v and wants %v; want [k3 only-a] and [k500]", pushed, wanted)
	}
	// Equal stores: the first comparison ends the round.
	if got := a.mismatched(1, a.hashes(1, all)); len(got) != 0 {
		t.Fatalf("a store differs from itself at %v", got)
	}
}

// TestAntiEntropy_RepairsWithoutBroadcasts loses every broadcast: rounds
// alone bring both nodes to the same state, deletes included.
func TestAntiEntropy_RepairsWithoutBroadcasts(t *testing.T) {
	net := newFakeNet()
	a := startNode(t, net, "a", testConfig())
	b := startNode(t, net, "b", testConfig())
	waitSynced(t, a, b)
	net.mu.Lock()
	net.dropBroadcasts = true
	net.mu.Unlock()
	for i := range 300 {
		a.put(fmt.Sprintf("a/%d", i), "from a")
		b.put(fmt.Sprintf("b/%d", i), "from b")
	}
	a.put("both", "a")
	b.put("both", "b") // later: wins
	waitConverged(t, a, b)
	a.del("a/7")
	waitConverged(t, a, b)
	if _, ok := b.get("a/7"); ok {
		t.Fatalf("the delete did not reach b")
	}
	if v, _ := a.get("both"); v != "b" {
		t.Fatalf("a has both=%q, want the later write b", v)
	}
	if a.live() != 600 || b.live() != 600 {
		t.Fatalf("got %d and %d live keys, want 600", a.live(), b.live())
	}
	if got := moduletest.MetricValue(t, a.reg, "shoal_kv_antientropy_rounds_total", "result", "repaired") +
		moduletest.MetricValue(t, b.reg, "shoal_kv_antientropy_rounds_total", "result", "repaired"); got == 0 {
		t.Fatalf("no round reported a repair")
	}
}

// TestAntiEntropy_IdleRoundsSendOnlyDigests checks that nodes in sync
// exchange only the fixed-size first digest and the end of the round,
// however many keys they hold.
func TestAntiEntropy_IdleRoundsSendOnlyDigests(t *testing.T) {
	net := newFakeNet()
	a := startNode(t, net, "a", testConfig())
	b := startNode(t, net, "b", testConfig())
	waitSynced(t, a, b)
	putMany(t, a, "key/", 3000)
	waitConverged(t, a, b)
	summaries, pushes, digests := net.bytesSent(msgSummary), net.bytesSent(msgPush), net.bytesSent(msgDigest)
	rounds := func() float64 {
		return moduletest.MetricValue(t, a.reg, "shoal_kv_antientropy_rounds_total", "result", "in_sync") +
			moduletest.MetricValue(t, b.reg, "shoal_kv_antientropy_rounds_total", "result", "in_sync")
	}
	start := rounds()
	testcluster.Eventually(t, 30*time.Second, func() error {
		if n := rounds() - start; n < 20 {
			return fmt.Errorf("%v idle rounds so far", n)
		}
		return nil
	})
	n := rounds() - start
	if got := net.bytesSent(msgSummary) - summaries; got != 0 {
		t.Fatalf("idle rounds sent %d bytes of summaries", got)
	}
	perRound := float64(net.bytesSent(msgDigest)-digests+net.bytesSent(msgPush)-pushes) / n
	if perRound > 400 {
		t.Fatalf("an idle round costs %.0f bytes with 3000 keys, want a fixed ~200", perRound)
	}
}
