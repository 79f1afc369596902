package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"shoal/client"
	"shoal/consensus"
	"shoal/internal/httpjson"
	"shoal/internal/testcluster"
)

// A backup saved from a follower holds every acknowledged write; restored
// through another node after the state changed, it replaces the state of
// every node (logs with their entries, limits and ids, an empty log; kv's
// keys, which are not in Raft, with their TTLs), and the restored state
// survives a restart of every node. A damaged backup is refused before
// anything changes.
func TestCluster_SnapshotSaveAndRestore(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("log", "kv"), testcluster.WithSnapshotThreshold(64))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := func(n *testcluster.Node) *client.Client {
		t.Helper()
		x, err := client.New(n.URL())
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	leader := c.Leader()
	follower := c.Followers()[0]
	for i := range 150 {
		testcluster.Eventually(t, 20*time.Second, func() error {
			_, err := cl(c.Nodes()[i%3]).Publish(ctx, "orders", fmt.Sprintf("id-%d", i), []byte(fmt.Sprintf(`{"n":%d}`, i)))
			return err
		})
	}
	if _, err := cl(leader).ConfigureLog(ctx, "orders", client.LogRetention{MaxAge: new(48 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl(leader).ConfigureLog(ctx, "empty", client.LogRetention{MaxEntries: new(int64(5))}); err != nil {
		t.Fatal(err)
	}

	// kv: written on the leader, saved from the follower once it has them.
	for _, k := range []string{"cfg/a", "cfg/b"} {
		if _, err := cl(leader).KVPut(ctx, k, k+"=1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl(leader).KVPutWith(ctx, "session/s", "ttl", client.KVPutOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 20*time.Second, func() error {
		_, err := cl(follower).KVGet(ctx, "session/s")
		return err
	})

	path := filepath.Join(t.TempDir(), "backup.snap")
	var buf bytes.Buffer
	if _, err := cl(follower).SaveSnapshot(ctx, &buf); err != nil {
		t.Fatalf("save: %v", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := consensus.InspectBackup(bytes.NewReader(buf.Bytes()))
	if err != nil || info.Node != follower.Name || info.Modules["log"] == 0 || fmt.Sprint(info.Sections) != "[kv]" {
		t.Fatalf("inspect: %+v %v", info, err)
	}
	damaged := slices.Clone(buf.Bytes())
	damaged[len(damaged)/2] ^= 1
	if _, err := consensus.InspectBackup(bytes.NewReader(damaged)); !errors.Is(err, consensus.ErrBadBackup) {
		t.Fatalf("a damaged backup: got %v, want ErrBadBackup", err)
	}

	// The state moves on: the log goes, another comes.
	if err := cl(leader).DeleteLog(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl(leader).Publish(ctx, "other", "", []byte(`"x"`)); err != nil {
		t.Fatal(err)
	}
	if _, err := cl(leader).KVPut(ctx, "cfg/a", "changed"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl(leader).KVDelete(ctx, "cfg/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl(leader).KVPut(ctx, "cfg/new", "after the backup"); err != nil {
		t.Fatal(err)
	}
	damagedPath := filepath.Join(t.TempDir(), "damaged.snap")
	_ = os.WriteFile(damagedPath, damaged, 0o600)
	var he *httpjson.Error
	if _, err := cl(follower).RestoreSnapshot(ctx, damagedPath); !errors.As(err, &he) || he.Status != 400 || he.Code != "bad_backup" {
		t.Fatalf("a damaged backup: got %v, want 400 bad_backup", err)
	}
	// Through a follower: the client follows it to the leader. A loaded
	// machine may move leadership meanwhile (503, outcome unknown): a
	// restore replaces the whole state, so sending it again is safe.
	testcluster.Eventually(t, 60*time.Second, func() error {
		_, err := cl(c.Followers()[0]).RestoreSnapshot(ctx, path)
		return err
	})

	check := func(when string) {
		t.Helper()
		for _, n := range c.Nodes() {
			testcluster.Eventually(t, 30*time.Second, func() error {
				logs, err := cl(n).Logs(ctx)
				if err != nil {
					return err
				}
				if len(logs) != 2 || logs[0].Name != "empty" || logs[0].Entries != 0 || logs[0].MaxEntries != 5 ||
					logs[1].Name != "orders" || logs[1].LastIndex != 150 || logs[1].MaxAge != client.Duration(48*time.Hour) {
					return fmt.Errorf("%s %s: logs %+v", when, n.Name, logs)
				}
				res, err := cl(n).Read(ctx, "orders", 140, 100, false)
				if err != nil {
					return err
				}
				if len(res.Entries) != 11 || string(res.Entries[10].Data) != `{"n":149}` || res.Entries[10].ID != "id-149" {
					return fmt.Errorf("%s %s: entries %+v", when, n.Name, res.Entries)
				}
				page, err := cl(n).KVList(ctx, client.KVListOptions{})
				if err != nil {
					return err
				}
				var kv []string
				for _, e := range page.Items {
					kv = append(kv, e.Key+":"+e.Value)
				}
				if got := fmt.Sprint(kv); got != "[cfg/a:cfg/a=1 cfg/b:cfg/b=1 session/s:ttl]" {
					return fmt.Errorf("%s %s: kv %s", when, n.Name, got)
				}
				if e, _ := cl(n).KVGet(ctx, "session/s"); e.ExpiresAt.IsZero() {
					return fmt.Errorf("%s %s: session/s lost its TTL: %+v", when, n.Name, e)
				}
				return nil
			})
		}
	}
	check("after the restore")
	// The remembered ids came back: an old id is a duplicate.
	res, err := cl(c.Leader()).Publish(ctx, "orders", "id-7", []byte(`{"n":7}`))
	if err != nil || !res.Duplicate || res.Index != 8 {
		t.Fatalf("an old id after the restore: %+v %v", res, err)
	}
	if _, err := cl(c.Leader()).Publish(ctx, "orders", "new", []byte(`"new"`)); err != nil {
		t.Fatal(err)
	}
	for i := range c.Nodes() {
		c.Stop(i)
	}
	for i := range c.Nodes() {
		c.Restart(i)
	}
	c.Leader()
	for _, n := range c.Nodes() {
		testcluster.Eventually(t, 30*time.Second, func() error {
			res, err := cl(n).Read(ctx, "orders", 150, 10, false)
			if err != nil {
				return err
			}
			if len(res.Entries) != 2 || res.Entries[1].ID != "new" {
				return fmt.Errorf("%s after the restart: %+v", n.Name, res.Entries)
			}
			return nil
		})
	}
}
