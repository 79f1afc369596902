package membership

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestPickPeers(t *testing.T) {
	var peers []*memberlist.Node
	for i := range 5 {
		peers = append(peers, &memberlist.Node{Name: fmt.Sprintf("n%d", i)})
	}
	for _, tc := range []struct {
		n, want int
	}{{0, 0}, {1, 1}, {3, 3}, {5, 5}, {9, 5}} {
		for range 50 {
			got := pickPeers(peers, tc.n)
			if len(got) != tc.want {
				t.Fatalf("pick %d of 5 peers: got %d", tc.n, len(got))
			}
			seen := map[string]bool{}
			for _, nd := range got {
				if seen[nd.Name] {
					t.Fatalf("pick %d: %s picked twice", tc.n, nd.Name)
				}
				seen[nd.Name] = true
			}
		}
	}
	for i, nd := range peers {
		if nd.Name != fmt.Sprintf("n%d", i) {
			t.Fatalf("pickPeers reordered its input: %d is %s", i, nd.Name)
		}
	}
	// Every peer gets picked: the sample is not stuck on the first ones.
	picked := map[string]bool{}
	for range 200 {
		for _, nd := range pickPeers(peers, 1) {
			picked[nd.Name] = true
		}
	}
	if len(picked) != 5 {
		t.Fatalf("200 single picks reached %d of 5 peers: %v", len(picked), picked)
	}
}

func TestPushBudget(t *testing.T) {
	var b pushBudget
	interval := 200 * time.Millisecond
	now := time.Unix(1000, 0)
	for i := range pushesPerInterval / 4 {
		if !b.take(4, now, interval) {
			t.Fatalf("take %d of a full bucket refused", i)
		}
	}
	if b.take(1, now, interval) {
		t.Fatal("an empty bucket gave a push")
	}
	// A quarter interval later, a quarter of the budget is back.
	now = now.Add(interval / 4)
	if !b.take(pushesPerInterval/4, now, interval) {
		t.Fatal("a quarter of the budget did not come back in a quarter interval")
	}
	if b.take(1, now, interval) {
		t.Fatal("more came back than the elapsed time allows")
	}
	// Idle for long: the bucket is full, never more.
	now = now.Add(time.Hour)
	if !b.take(pushesPerInterval, now, interval) || b.take(1, now, interval) {
		t.Fatal("after an idle hour the bucket should hold exactly its size")
	}
}

// TestChannel_SpreadPushesAtOnce runs a cluster whose gossip rounds never
// come (an hour apart): what arrives was pushed.
func TestChannel_SpreadPushesAtOnce(t *testing.T) {
	const n = 4
	nodes := make([]*Membership, n)
	handlers := make([]*recordingHandler, n)
	var addrs []string
	for i := range n {
		cfg := testConfig(t, fmt.Sprintf("n%d", i))
		cfg.Timing.GossipInterval = time.Hour
		nodes[i] = start(t, cfg)
		handlers[i] = &recordingHandler{}
		nodes[i].Channel(5).SetHandler(handlers[i])
		if i > 0 {
			// Join every earlier node: without gossip rounds, a join's
			// push/pull is how members learn of each other.
			if _, err := nodes[i].Join(addrs); err != nil {
				t.Fatalf("join n%d: %v", i, err)
			}
		}
		addrs = append(addrs, nodes[i].LocalMember().Addr)
	}
	waitAlive(t, nodes, n)

	c := nodes[0].Channel(5)
	if err := c.Spread("k", []byte("hello"), n-1); err != nil {
		t.Fatalf("spread: %v", err)
	}
	for i := 1; i < n; i++ {
		eventually(t, 10*time.Second, func() error {
			if got := handlers[i].messages(); !slices.Contains(got, "hello") {
				return fmt.Errorf("n%d has %q", i, got)
			}
			return nil
		})
	}
	if got := handlers[0].messages(); len(got) != 0 {
		t.Errorf("the sender pushed to itself: %q", got)
	}
	if got := testutil.ToFloat64(nodes[0].metrics.pushes.WithLabelValues(pushSent)); got != n-1 {
		t.Errorf("pushes sent: got %v, want %d", got, n-1)
	}
	// Still queued for piggybacking, for members a push missed.
	if got := c.queued(); got != 1 {
		t.Errorf("queued after spread: got %d, want 1", got)
	}
}

// TestChannel_SpreadIsPiggybacked spreads with no push at all: the
// piggybacked copies reach the members (two peers; RetransmitMult 32 gives
// spreads a multiplier of 8, so eight transmissions over a few gossip
// rounds: with only two, one gossip packet lost on a loaded machine, or a
// round that picked one peer, left a member without the message).
func TestChannel_SpreadIsPiggybacked(t *testing.T) {
	nodes := startCluster(t, 3, func(_ int, cfg *Config) { cfg.RetransmitMult = 32 })
	handlers := make([]*recordingHandler, len(nodes))
	for i, m := range nodes {
		handlers[i] = &recordingHandler{}
		m.Channel(6).SetHandler(handlers[i])
	}
	if err := nodes[0].Channel(6).Spread("", []byte("x"), 0); err != nil {
		t.Fatalf("spread: %v", err)
	}
	for i := 1; i < len(nodes); i++ {
		eventually(t, 10*time.Second, func() error {
			if !slices.Contains(handlers[i].messages(), "x") {
				return fmt.Errorf("n%d has not received it", i)
			}
			return nil
		})
	}
	if got := testutil.ToFloat64(nodes[0].metrics.pushes.WithLabelValues(pushSent)); got != 0 {
		t.Errorf("pushes sent with fanout 0: %v", got)
	}
}

// TestChannel_SpreadRetransmitsLess checks that a spread message is
// piggybacked a quarter as often as a broadcast one, and replaces a queued
// spread of the same key.
func TestChannel_SpreadRetransmitsLess(t *testing.T) {
	cfg := testConfig(t, "a")
	cfg.RetransmitMult = 4
	a := start(t, cfg) // alone: only this test drains the queues
	c := a.Channel(3)
	if err := c.Broadcast("", []byte("b")); err != nil {
		t.Fatalf("broadcast: %v", err)
	}
	for _, v := range []string{"s1", "s2"} {
		if err := c.Spread("key", []byte(v), 3); err != nil { // no peer to push to
			t.Fatalf("spread: %v", err)
		}
	}
	if got := c.queued(); got != 2 {
		t.Fatalf("queued: got %d, want 2", got)
	}
	sent := map[string]int{}
	for range 10 {
		for _, msg := range (delegate{a}).GetBroadcasts(2, 1400) {
			sent[string(msg[1:])]++
		}
	}
	// Alone, N = 1: a broadcast goes out mult*ceil(log10(2)) = 4 times.
	want := map[string]int{"b": 4, "s2": 1}
	if !maps(sent, want) {
		t.Fatalf("transmissions: got %v, want %v", sent, want)
	}
	if got := testutil.ToFloat64(a.metrics.pushes.WithLabelValues(pushSent)); got != 0 {
		t.Errorf("pushes sent with no peer: %v", got)
	}
}

func TestChannel_SpreadRefuses(t *testing.T) {
	a := start(t, testConfig(t, "a"))
	c := a.Channel(3)
	if err := c.Spread("", make([]byte, MaxBroadcastSize), 3); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized spread: got %v, want ErrMessageTooLarge", err)
	}
	if err := a.Shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := c.Spread("", []byte("late"), 3); !errors.Is(err, ErrShutdown) {
		t.Fatalf("spread after shutdown: got %v, want ErrShutdown", err)
	}
}

func maps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestChannel_SpreadOverBudgetIsBroadcast spreads more than a gossip
// interval's pushes (the interval is an hour, so none come back): the rest
// are queued as plain broadcasts.
func TestChannel_SpreadOverBudgetIsBroadcast(t *testing.T) {
	var nodes []*Membership
	for i := range 2 {
		cfg := testConfig(t, fmt.Sprintf("n%d", i))
		cfg.Timing.GossipInterval = time.Hour
		nodes = append(nodes, start(t, cfg))
	}
	if _, err := nodes[1].Join([]string{nodes[0].LocalMember().Addr}); err != nil {
		t.Fatalf("join: %v", err)
	}
	waitAlive(t, nodes, 2)
	c := nodes[0].Channel(5)
	const extra = 3
	for i := range pushesPerInterval + extra {
		if err := c.Spread("", []byte(fmt.Sprint(i)), 1); err != nil {
			t.Fatalf("spread %d: %v", i, err)
		}
	}
	if got := testutil.ToFloat64(nodes[0].metrics.pushes.WithLabelValues(pushSent)); got != pushesPerInterval {
		t.Errorf("pushes sent: got %v, want %d", got, pushesPerInterval)
	}
	if got := testutil.ToFloat64(nodes[0].metrics.pushes.WithLabelValues(pushDeferred)); got != extra {
		t.Errorf("pushes deferred: got %v, want %d", got, extra)
	}
	if got := c.queue.NumQueued() - 1; got != extra {
		t.Errorf("broadcast queue: got %d, want the %d spreads over budget", got, extra)
	}
}
