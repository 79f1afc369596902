package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/client"
	"shoal/internal/agent"
	"shoal/internal/keyring"
	"shoal/internal/testcluster"
	"shoal/membership"

	_ "shoal/kv"
	_ "shoal/logstream"
)

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func clientOf(t *testing.T, n *testcluster.Node) *client.Client {
	t.Helper()
	cl, err := client.New(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestSecurity_StrangersCannotJoin: with a cluster secret, a process
// without it, or with another one, that knows a member's gossip address
// never becomes a member, never enters Raft and never gets any data; the
// cluster's logs say why. The same process with the secret joins.
func TestSecurity_StrangersCannotJoin(t *testing.T) {
	secret := newSecret(t)
	var logs syncBuffer
	c := testcluster.New(t, 3, testcluster.WithClusterSecret(secret), testcluster.WithLogs(&logs),
		testcluster.WithModules("log", "kv"))
	cl := clientOf(t, c.Leader())
	ctx := context.Background()
	if _, err := cl.Publish(ctx, "orders", "o-1", json.RawMessage(`{"sku":"A1"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.KVPut(ctx, "config/color", "blue"); err != nil {
		t.Fatal(err)
	}
	strangers := []*testcluster.Node{
		c.AddNodeWith(func(cfg *agent.Config) { cfg.ClusterSecret = "" }),
		c.AddNodeWith(func(cfg *agent.Config) { cfg.ClusterSecret = newSecret(t) }),
	}
	window := 30 * time.Second
	if testing.Short() {
		window = 5 * time.Second
	}
	members := c.Nodes()[:3]
	for end := time.Now().Add(window); time.Now().Before(end); {
		cfg, err := c.LeaderOf(members...).Agent().Raft().Configuration()
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Servers) != 3 {
			t.Fatalf("the raft configuration has %d servers: %v", len(cfg.Servers), cfg.Servers)
		}
		for _, n := range members {
			for _, s := range strangers {
				if m, ok := n.Agent().Members().Member(s.Name); ok && m.Status == membership.StatusAlive {
					t.Fatalf("%s sees the stranger %s alive", n.Name, s.Name)
				}
			}
		}
		for _, s := range strangers {
			scl := clientOf(t, s)
			if _, err := scl.Read(ctx, "orders", 1, 10, false); !errors.Is(err, client.ErrLogNotFound) {
				t.Fatalf("the stranger %s reads the log: %v", s.Name, err)
			}
			if _, err := scl.KVGet(ctx, "config/color"); !errors.Is(err, client.ErrKeyNotFound) {
				t.Fatalf("the stranger %s has the kv key: %v", s.Name, err)
			}
		}
		time.Sleep(200 * time.Millisecond) // the pace of the checks over the window
	}
	// What the members logged about the strangers' attempts.
	if out := logs.String(); !strings.Contains(out, "decrypt") && !strings.Contains(out, "not encrypted") {
		t.Fatalf("the cluster's logs do not say why the strangers were refused")
	}
	for _, s := range strangers {
		c.Stop(s.Index)
	}
	member := c.AddNodeWith(func(cfg *agent.Config) { cfg.ClusterSecret = secret })
	c.WaitServers(4) // the fourth server is a non-voter: the voter set stays odd
	testcluster.Eventually(t, 15*time.Second, func() error {
		_, err := clientOf(t, member).Read(ctx, "orders", 1, 10, false)
		return err
	})
}

// TestSecurity_GossipIsNotPlaintextOnTheWire captures the gossip packets
// a node sends while it spreads a kv write: with a secret the value never
// appears in them; without one (the control) it does.
func TestSecurity_GossipIsNotPlaintextOnTheWire(t *testing.T) {
	for _, tc := range []struct {
		name       string
		secret     string
		wantCanary bool
	}{
		{"without a secret (control)", "", true},
		{"with a secret", newSecret(t), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testcluster.New(t, 3, testcluster.WithClusterSecret(tc.secret), testcluster.WithModules("kv"))
			canary := fmt.Sprintf("plaintext-canary-%d", rand.Uint64())
			var mu sync.Mutex
			seen, packets := false, 0
			c.Node(0).Gate.ObservePackets(func(_ string, p []byte) {
				mu.Lock()
				defer mu.Unlock()
				packets++
				seen = seen || bytes.Contains(p, []byte(canary))
			})
			if _, err := clientOf(t, c.Node(0)).KVPut(context.Background(), "wire/canary", canary); err != nil {
				t.Fatal(err)
			}
			testcluster.Eventually(t, 10*time.Second, func() error {
				e, err := clientOf(t, c.Node(2)).KVGet(context.Background(), "wire/canary")
				if err != nil {
					return err
				}
				if e.Value != canary {
					return fmt.Errorf("node2 has %q", e.Value)
				}
				return nil
			})
			mu.Lock()
			defer mu.Unlock()
			if packets == 0 {
				t.Fatal("no gossip packet was captured")
			}
			if seen != tc.wantCanary {
				t.Fatalf("the value was visible on the wire: %v, want %v (%d packets)", seen, tc.wantCanary, packets)
			}
		})
	}
}

// TestSecurity_KeyRotationUnderLoad rotates the cluster secret the way an
// operator does (install, use, remove on every member) while clients
// publish through every node: no request fails, nothing is lost, a
// restarted node keeps the new key, and the old secret no longer gets in.
func TestSecurity_KeyRotationUnderLoad(t *testing.T) {
	old := newSecret(t)
	c := testcluster.New(t, 3, testcluster.WithClusterSecret(old), testcluster.WithModules("log"))
	ctx := context.Background()

	var mu sync.Mutex
	var acked []string
	var failures []error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				cl := clientOf(t, c.Node((w+i)%3))
				_, err := cl.Publish(ctx, "rotation", id, json.RawMessage(`{"n":1}`))
				mu.Lock()
				if err != nil {
					failures = append(failures, fmt.Errorf("%s: %w", id, err))
				} else {
					acked = append(acked, id)
				}
				mu.Unlock()
			}
		}()
	}
	progress := func(what string) {
		t.Helper()
		mu.Lock()
		target := len(acked) + 30
		mu.Unlock()
		testcluster.Eventually(t, 20*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(acked) < target {
				return fmt.Errorf("%s: %d writes acknowledged, want %d", what, len(acked), target)
			}
			return nil
		})
	}
	run := func(op, key string) {
		t.Helper()
		res, err := c.Node(1).Agent().KeyringOp(ctx, op, key)
		if err != nil || res.Failed != 0 || len(res.Nodes) != 3 {
			t.Fatalf("keyring %s: %+v, %v", op, res, err)
		}
	}
	progress("before the rotation")
	next := newSecret(t)
	nextSecret, _ := keyring.Parse(next)
	run("install", next)
	progress("after install")
	run("use", nextSecret.ID())
	progress("after use")
	run("remove", old)
	progress("after remove")
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d requests failed during the rotation; the first: %v", len(failures), failures[0])
	}
	for _, n := range c.Nodes() {
		keys := n.Agent().Security().Keys
		if len(keys) != 1 || keys[0].ID != nextSecret.ID() || !keys[0].Primary {
			t.Fatalf("%s has keys %v", n.Name, keys)
		}
	}
	testcluster.Eventually(t, 15*time.Second, func() error {
		page, err := clientOf(t, c.Node(2)).Read(ctx, "rotation", 1, uint64(len(acked)+10), true)
		if err != nil {
			return err
		}
		if len(page.Entries) < len(acked) {
			return fmt.Errorf("%d entries, %d acknowledged", len(page.Entries), len(acked))
		}
		return nil
	})

	// A restart keeps the rotated keyring (the --cluster-secret it was
	// started with is the old one: the data directory's keyring wins).
	c.Stop(1)
	c.Restart(1)
	c.WaitVoters(3)
	if _, err := clientOf(t, c.Node(1)).Publish(ctx, "rotation", "after-restart", json.RawMessage(`1`)); err != nil {
		t.Fatalf("a write through the restarted node: %v", err)
	}
	// The old secret no longer gets a node in.
	late := c.AddNodeWith(func(cfg *agent.Config) { cfg.ClusterSecret = old })
	window := 10 * time.Second
	if testing.Short() {
		window = 3 * time.Second
	}
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if m, ok := c.Node(0).Agent().Members().Member(late.Name); ok && m.Status == membership.StatusAlive {
			t.Fatalf("a node with the removed secret joined")
		}
	}
}
