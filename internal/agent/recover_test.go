package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shoal/client"
	"shoal/consensus"
	"shoal/internal/agent"
	"shoal/internal/httpjson"
	"shoal/internal/testcluster"
)

// TestRecover_MajorityLostForGood: two of three voters are gone for good
// (stopped, data directories deleted). The survivor has no leader and
// refuses writes; restarted with --recover it leads alone with every write
// it held, takes new writes, and two fresh nodes join it and catch up: a
// 3-voter cluster again. With both log stores, and mutual TLS on the
// cluster port.
// recoverStores are the log stores recovery is tested with: both, but only
// the default under -short (bolt takes the same path through raft's
// RecoverCluster; the full run covers it).
func recoverStores() []string {
	if testing.Short() {
		return []string{consensus.LogStoreWAL}
	}
	return []string{consensus.LogStoreWAL, consensus.LogStoreBolt}
}

func TestRecover_MajorityLostForGood(t *testing.T) {
	for _, store := range recoverStores() {
		t.Run(store, func(t *testing.T) {
			dirs := make([]string, 3)
			// Snapshots every few entries: the recovery restores one and
			// replays the log after it.
			c := testcluster.New(t, 3, testcluster.WithModules("log"), testcluster.WithClusterSecret(newSecret(t)),
				testcluster.WithSnapshotThreshold(8),
				testcluster.WithConfig(func(i int, cfg *agent.Config) {
					cfg.RaftLogStore = store
					if i < len(dirs) {
						dirs[i] = cfg.DataDir
					}
				}))
			ctx := t.Context()
			acked := map[string]uint64{} // publish id → index, for every acknowledged publish
			for i := range 30 {
				id := fmt.Sprint("before-", i)
				acked[id] = publish(t, c.Node(i%3), id)
			}
			survivor := c.Node(0)
			// A write is acknowledged once a majority holds it, which need
			// not include the survivor: wait until it holds them all.
			testcluster.Eventually(t, 20*time.Second, func() error {
				return holds(ctx, survivor, acked)
			})

			c.Kill(1)
			c.Kill(2)
			for _, i := range []int{1, 2} {
				if err := os.RemoveAll(dirs[i]); err != nil {
					t.Fatal(err)
				}
			}
			testcluster.Eventually(t, 30*time.Second, func() error {
				if id, _ := survivor.Agent().Raft().Leader(); id != "" {
					return fmt.Errorf("the survivor still sees leader %q", id)
				}
				return nil
			})
			_, err := clientOf(t, survivor).Publish(ctx, "orders", "without-quorum", json.RawMessage("0"))
			if e := (*httpjson.Error)(nil); !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable {
				t.Fatalf("publish without a quorum: got %v, want a 503", err)
			}

			c.Stop(0)
			recovered := false
			testcluster.Eventually(t, 10*time.Second, func() error { // a port may be held for a moment
				err := c.TryRestart(0, func(cfg *agent.Config) { cfg.Recover = !recovered })
				if errors.Is(err, consensus.ErrRecoveredBefore) {
					// The recovery was done, then a later port (gossip)
					// was still held: start as an operator would then.
					recovered = true
				}
				return err
			})
			if leader := c.Leader(); leader != survivor {
				t.Fatalf("got leader %s, want the recovered %s", leader.Name, survivor.Name)
			}
			conf, err := survivor.Agent().Raft().Configuration()
			if err != nil || len(conf.Servers) != 1 || string(conf.Servers[0].ID) != survivor.Name {
				t.Fatalf("configuration after recovery: got %v (%v), want %s alone", conf.Servers, err, survivor.Name)
			}
			if err := holds(ctx, survivor, acked); err != nil {
				t.Fatalf("after recovery: %v", err)
			}
			for i := range 10 {
				id := fmt.Sprint("after-", i)
				acked[id] = publish(t, survivor, id)
			}

			fresh := []*testcluster.Node{c.AddNode(), c.AddNode()}
			c.WaitVoters(3)
			for _, n := range fresh {
				testcluster.Eventually(t, 20*time.Second, func() error { return holds(ctx, n, acked) })
			}
			// The grown cluster takes writes through a new node too.
			publish(t, fresh[0], "grown")
		})
	}
}

// TestRecover_PeersFileKeepsSeveralSurvivors: three of five voters are
// lost for good; the two survivors get the same peers file listing them,
// start again, elect a leader between them with every write they held, and
// a fresh node joins them: three voters.
func TestRecover_PeersFileKeepsSeveralSurvivors(t *testing.T) {
	testcluster.FullRunOnly(t, "five voters losing three, recovered with a peers file (the file and recovery are each tested under -short)")
	dirs := make([]string, 5)
	c := testcluster.New(t, 5, testcluster.WithModules("log"), testcluster.WithClusterSecret(newSecret(t)),
		testcluster.WithConfig(func(i int, cfg *agent.Config) {
			if i < len(dirs) {
				dirs[i] = cfg.DataDir
			}
		}))
	ctx := t.Context()
	acked := map[string]uint64{}
	for i := range 20 {
		id := fmt.Sprint("before-", i)
		acked[id] = publish(t, c.Node(i%5), id)
	}
	survivors := []int{0, 1}
	for _, i := range survivors {
		testcluster.Eventually(t, 20*time.Second, func() error { return holds(ctx, c.Node(i), acked) })
	}
	for _, i := range []int{2, 3, 4} {
		c.Kill(i)
		if err := os.RemoveAll(dirs[i]); err != nil {
			t.Fatal(err)
		}
	}
	var peers []consensus.Peer
	for _, i := range survivors {
		c.Stop(i)
		peers = append(peers, consensus.Peer{ID: c.Node(i).Name, Address: c.Node(i).Addresses().Raft})
	}
	file, err := json.Marshal(peers)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range survivors {
		if err := os.WriteFile(filepath.Join(dirs[i], "raft", consensus.PeersFile), file, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range survivors {
		testcluster.Eventually(t, 10*time.Second, func() error {
			err := c.TryRestart(i, nil)
			if errors.Is(err, consensus.ErrPeersFile) {
				t.Fatalf("restart %s: %v", c.Node(i).Name, err)
			}
			return err
		})
	}
	leader := c.Leader()
	conf, err := leader.Agent().Raft().Configuration()
	if err != nil || len(conf.Servers) != 2 {
		t.Fatalf("configuration after recovery: got %v (%v), want the 2 survivors", conf.Servers, err)
	}
	for _, i := range survivors {
		if err := holds(ctx, c.Node(i), acked); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dirs[i], "raft", consensus.PeersInfo)); err != nil {
			t.Fatalf("the applied peers file: %v", err)
		}
	}
	acked["after"] = publish(t, c.Node(1), "after")
	fresh := c.AddNode()
	c.WaitVoters(3)
	testcluster.Eventually(t, 20*time.Second, func() error { return holds(ctx, fresh, acked) })
}

// publish publishes an entry with id to the log "orders" through node n
// and returns its index. It retries with the same id until a publish is
// acknowledged: a retry is applied once (idempotent publish), and a
// leader change while the cluster settles may answer outcome_unknown.
func publish(t *testing.T, n *testcluster.Node, id string) uint64 {
	t.Helper()
	var idx uint64
	testcluster.Eventually(t, 30*time.Second, func() error {
		res, err := clientOf(t, n).Publish(t.Context(), "orders", id, json.RawMessage(`"`+id+`"`))
		idx = res.Index
		return err
	})
	return idx
}

// holds checks that node n's log "orders" has every entry of acked at its
// index (a local read: what n itself holds).
func holds(ctx context.Context, n *testcluster.Node, acked map[string]uint64) error {
	cl, err := client.New(n.URL())
	if err != nil {
		return err
	}
	got := map[string]uint64{}
	for from := uint64(1); ; {
		res, err := cl.Read(ctx, "orders", from, 1000, false)
		if err != nil {
			return fmt.Errorf("%s: read: %w", n.Name, err)
		}
		for _, e := range res.Entries {
			got[e.ID] = e.Index
		}
		if len(res.Entries) == 0 || res.Next <= from {
			break
		}
		from = res.Next
	}
	for id, idx := range acked {
		if got[id] != idx {
			return fmt.Errorf("%s: entry %q at index %d, want %d", n.Name, id, got[id], idx)
		}
	}
	return nil
}

// oneNode is a one-node configuration on dir, on free ports.
func oneNode(dir string) agent.Config {
	cfg := agent.DefaultConfig()
	cfg.NodeName = "n1"
	cfg.DataDir = dir
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.GossipAddr = "127.0.0.1:0"
	cfg.Modules = []string{"log"}
	cfg.Local = true
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return cfg
}

// withState returns a data directory that holds one node's Raft state
// (it bootstrapped alone and took one write), on the given log store.
func withState(t *testing.T, store string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := oneNode(dir)
	cfg.RaftLogStore = store
	cfg.BootstrapSelf = true
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 20*time.Second, func() error {
		if !a.Raft().LeaderReady() {
			return errors.New("no leader yet")
		}
		return nil
	})
	cl, err := client.New("http://" + a.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Publish(t.Context(), "orders", "kept", json.RawMessage("1")); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRecover_Refusals: a recovery that cannot be right is refused at
// start with a clear error, and changes nothing.
func TestRecover_Refusals(t *testing.T) {
	writePeers := func(t *testing.T, dir, contents string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "raft", consensus.PeersFile), []byte(contents), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T) agent.Config
		want    error  // matched with errors.Is, if set
		wantMsg string // else a part of the message
	}{
		{"recover with bootstrap-expect", func(t *testing.T) agent.Config {
			cfg := oneNode(t.TempDir())
			cfg.Recover, cfg.BootstrapExpect = true, 3
			return cfg
		}, nil, "--recover and --bootstrap-expect exclude each other"},
		{"recover with dev", func(t *testing.T) agent.Config {
			cfg := oneNode(t.TempDir())
			cfg.Recover, cfg.BootstrapSelf = true, true
			return cfg
		}, nil, "--recover and --dev"},
		{"recover without raft state", func(t *testing.T) agent.Config {
			cfg := oneNode(t.TempDir())
			cfg.Recover = true
			return cfg
		}, consensus.ErrRecoverNoState, ""},
		{"peers file without this node", func(t *testing.T) agent.Config {
			cfg := oneNode(withState(t, consensus.LogStoreWAL))
			writePeers(t, cfg.DataDir, `[{"id":"n2","address":"127.0.0.1:7481","non_voter":false}]`)
			return cfg
		}, consensus.ErrRecoverNotListed, ""},
		{"malformed peers file", func(t *testing.T) agent.Config {
			cfg := oneNode(withState(t, consensus.LogStoreWAL))
			writePeers(t, cfg.DataDir, `[{"id":"n1","address":"127.0.0.1:7481"`)
			return cfg
		}, consensus.ErrPeersFile, ""},
		{"recover and a peers file", func(t *testing.T) agent.Config {
			cfg := oneNode(withState(t, consensus.LogStoreWAL))
			writePeers(t, cfg.DataDir, `[{"id":"n1","address":"127.0.0.1:7481","non_voter":false}]`)
			cfg.Recover = true
			return cfg
		}, consensus.ErrRecoverAmbiguous, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.prepare(t)
			a, err := agent.New(cfg)
			if err == nil {
				a.Stop(context.Background())
				t.Fatal("started")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.wantMsg != "" && !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("got %v, want an error saying %q", err, tc.wantMsg)
			}
			if _, serr := os.Stat(filepath.Join(cfg.DataDir, "raft", consensus.PeersInfo)); serr == nil {
				t.Fatalf("a refused recovery wrote %s", consensus.PeersInfo)
			}
		})
	}
}

// TestRecover_PeersFileAppliedOnce: a peers file listing this node
// recovers it (on either log store), keeps its data, and is renamed
// peers.info; --recover on that directory later is refused, so a flag left
// in a service definition cannot recover again at every restart.
func TestRecover_PeersFileAppliedOnce(t *testing.T) {
	for _, store := range recoverStores() {
		t.Run(store, func(t *testing.T) {
			cfg := oneNode(withState(t, store))
			cfg.RaftLogStore = store
			raftDir := filepath.Join(cfg.DataDir, "raft")
			peers := `[{"id":"n1","address":"127.0.0.1:7481","non_voter":false}]`
			if err := os.WriteFile(filepath.Join(raftDir, consensus.PeersFile), []byte(peers), 0o600); err != nil {
				t.Fatal(err)
			}
			a, err := agent.New(cfg)
			if err != nil {
				t.Fatalf("recover from a peers file: %v", err)
			}
			testcluster.Eventually(t, 20*time.Second, func() error {
				if !a.Raft().LeaderReady() {
					return errors.New("no leader yet")
				}
				return nil
			})
			cl, err := client.New("http://" + a.HTTPAddr())
			if err != nil {
				t.Fatal(err)
			}
			res, err := cl.Read(t.Context(), "orders", 1, 10, true)
			if err != nil || len(res.Entries) != 1 || res.Entries[0].ID != "kept" {
				t.Fatalf("read after recovery: got %+v, %v; want the entry written before", res.Entries, err)
			}
			if err := a.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(raftDir, consensus.PeersFile)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s after the recovery: %v, want it gone", consensus.PeersFile, err)
			}
			info, err := os.ReadFile(filepath.Join(raftDir, consensus.PeersInfo))
			if err != nil || string(info) != peers {
				t.Fatalf("%s: got %q, %v; want the applied file", consensus.PeersInfo, info, err)
			}

			cfg.Recover = true
			if a, err := agent.New(cfg); !errors.Is(err, consensus.ErrRecoveredBefore) {
				if err == nil {
					a.Stop(context.Background())
				}
				t.Fatalf("--recover on a recovered directory: got %v, want %v", err, consensus.ErrRecoveredBefore)
			}
		})
	}
}
