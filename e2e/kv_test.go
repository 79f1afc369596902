//go:build e2e

package e2e

// The kv module's steps: writes on both sides of a partition, and while a
// node is down, converge on every node once it is whole again. They skip
// when the cluster does not run the kv module.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"shoal/client"
)

// kvConvergeBound is how long the nodes may take to agree once the
// cluster is whole (gossip broadcasts, then anti-entropy).
const kvConvergeBound = 45 * time.Second

func skipWithoutKV(t *testing.T, c *cluster) {
	t.Helper()
	if !c.hasModule("kv") {
		t.Skipf("the kv module is not enabled on this cluster (its modules: %v)", c.modules)
	}
}

// kvPut writes key on n, retrying for a while, and returns the version.
func kvPut(t *testing.T, n *node, key, value string) client.KVVersion {
	t.Helper()
	var v client.KVVersion
	eventually(t, 20*time.Second, "put "+key+" on "+n.name, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		defer cancel()
		var err error
		v, err = n.cl.KVPut(ctx, key, value)
		return err
	})
	return v
}

// kvList returns every live entry under prefix as n holds it, by key.
func kvList(n *node, prefix string) (map[string]client.KVEntry, error) {
	out := map[string]client.KVEntry{}
	opts := client.KVListOptions{Prefix: prefix, Limit: 1000}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		page, err := n.cl.KVList(ctx, opts)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		for _, e := range page.Items {
			out[e.Key] = e
		}
		if page.Next == "" {
			return out, nil
		}
		opts.After = page.Next
	}
}

// kvConverged waits until every node holds exactly want under prefix: the
// same keys, values and versions everywhere.
func kvConverged(t *testing.T, c *cluster, prefix string, want map[string]string) map[string]client.KVEntry {
	t.Helper()
	var first map[string]client.KVEntry
	eventually(t, kvConvergeBound, "kv converged under "+prefix, func() error {
		nodes := c.all()
		for i, n := range nodes {
			got, err := kvList(n, prefix)
			if err != nil {
				return err
			}
			for k, v := range want {
				if e, ok := got[k]; !ok || e.Value != v {
					return fmt.Errorf("%s: key %s is %q (present %v), want %q", n, k, e.Value, ok, v)
				}
			}
			if len(got) != len(want) {
				extra := slices.Sorted(maps.Keys(got))
				return fmt.Errorf("%s holds %d keys under %s, want %d: %v", n, len(got), prefix, len(want), extra)
			}
			if i == 0 {
				first = got
				continue
			}
			for k, e := range got {
				if e.Version != first[k].Version {
					return fmt.Errorf("key %s: %s holds version %s, %s %s", k, n, e.Version, nodes[0], first[k].Version)
				}
			}
		}
		return nil
	})
	return first
}

// parseVersion parses the TIME.COUNTER@NODE that shoal kv put prints.
func parseVersion(s string) (client.KVVersion, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "version ")
	ts, node, ok := strings.Cut(s, "@")
	tm, cnt, ok2 := strings.Cut(ts, ".")
	if !ok || !ok2 {
		return client.KVVersion{}, fmt.Errorf("version %q: want TIME.COUNTER@NODE", s)
	}
	t, err := strconv.ParseInt(tm, 10, 64)
	if err != nil {
		return client.KVVersion{}, fmt.Errorf("version %q: %w", s, err)
	}
	n, err := strconv.ParseUint(cnt, 10, 32)
	if err != nil {
		return client.KVVersion{}, fmt.Errorf("version %q: %w", s, err)
	}
	return client.KVVersion{Time: t, Counter: uint32(n), Node: node}, nil
}

// kvWritesOnBothSides writes kv keys on both sides of a partition while
// cut is cut off (on its side through docker exec), including one key
// written on both sides, and returns what every node must hold once the
// partition heals: every key, and for the key written on both sides the
// value with the newer version.
func kvWritesOnBothSides(t *testing.T, c *cluster, cut *node, majority []*node) map[string]string {
	t.Helper()
	const prefix = "e2e/partition/"
	want := map[string]string{}
	for i := range 10 {
		k, v := fmt.Sprintf("%smajority-%02d", prefix, i), fmt.Sprintf("m%d", i)
		kvPut(t, majority[i%2], k, v)
		want[k] = v
	}
	vMajority := kvPut(t, majority[0], prefix+"both", "majority")
	for i := range 5 {
		k, v := fmt.Sprintf("%sminority-%02d", prefix, i), fmt.Sprintf("n%d", i)
		if _, err := c.exec(cut, "kv", "put", k, v); err != nil {
			t.Fatalf("kv put on the cut-off %s: %v", cut, err)
		}
		want[k] = v
	}
	res, err := c.exec(cut, "kv", "put", prefix+"both", "minority")
	if err != nil {
		t.Fatalf("kv put on the cut-off %s: %v", cut, err)
	}
	vMinority, err := parseVersion(res.stdout)
	if err != nil {
		t.Fatal(err)
	}
	want[prefix+"both"] = "majority"
	if vMinority.Compare(vMajority) > 0 {
		want[prefix+"both"] = "minority"
	}
	return want
}

// kvConvergedAfterPartition checks what kvWritesOnBothSides wrote.
func kvConvergedAfterPartition(t *testing.T, c *cluster, want map[string]string) {
	t.Helper()
	const prefix = "e2e/partition/"
	got := kvConverged(t, c, prefix, want)
	t.Logf("%d keys converged on every node; the key written on both sides holds %q (%s)", len(got), got[prefix+"both"].Value, got[prefix+"both"].Version)
}

// testKVAfterRestart kills a node, writes and deletes keys on the others,
// starts it again: it converges with them.
func testKVAfterRestart(t *testing.T, c *cluster) {
	skipWithoutKV(t, c)
	const prefix = "e2e/restart/"
	want := map[string]string{}
	nodes := c.all()
	for i := range 5 {
		k, v := fmt.Sprintf("%sbefore-%02d", prefix, i), fmt.Sprintf("b%d", i)
		kvPut(t, nodes[i%3], k, v)
		want[k] = v
	}
	kvConverged(t, c, prefix, want)

	down := c.others(c.leader(t, 10*time.Second))[0]
	up := c.others(down)
	c.kill(t, down)
	for i := range 10 {
		k, v := fmt.Sprintf("%swhile-down-%02d", prefix, i), fmt.Sprintf("w%d", i)
		kvPut(t, up[i%2], k, v)
		want[k] = v
	}
	deleted := prefix + "before-00"
	eventually(t, 20*time.Second, "delete "+deleted, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		defer cancel()
		_, err := up[0].cl.KVDelete(ctx, deleted)
		return err
	})
	delete(want, deleted)
	kvPut(t, up[1], prefix+"before-01", "changed")
	want[prefix+"before-01"] = "changed"

	c.start(t, down)
	c.waitHealthy(t, 60*time.Second)
	got := kvConverged(t, c, prefix, want)
	t.Logf("%d keys converged on every node after %s restarted", len(got), down)
}
