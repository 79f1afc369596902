package acl_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"shoal/acl"
	"sync"
	"testing"
	"time"

	"shoal/internal/testcluster"
)

// Real-cluster tests: real Raft, gossip and HTTP in one process (see
// internal/testcluster); no consensus or network is faked.

var testHTTP = &http.Client{Timeout: 30 * time.Second}

// aclOf returns node n's acl module.
func aclOf(t *testing.T, n *testcluster.Node) *acl.ACL {
	t.Helper()
	a := n.Agent()
	if a == nil {
		t.Fatalf("%s is down", n.Name)
	}
	m, ok := a.Module("acl")
	if !ok {
		t.Fatalf("%s runs no acl module", n.Name)
	}
	return m.(*acl.ACL)
}

// post sends a JSON body through node n until it gets a status other
// than 503 (no leader yet), and returns the status and body.
func post(t *testing.T, n *testcluster.Node, method, path string, body any) (int, []byte) {
	t.Helper()
	var status int
	var out []byte
	testcluster.Eventually(t, 20*time.Second, func() error {
		var rd io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			if err != nil {
				return err
			}
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequest(method, n.URL()+path, rd)
		if err != nil {
			return err
		}
		resp, err := testHTTP.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if out, err = io.ReadAll(resp.Body); err != nil {
			return err
		}
		status = resp.StatusCode
		if status == http.StatusServiceUnavailable {
			return fmt.Errorf("%d %s", status, out)
		}
		return nil
	})
	return status, out
}

// revocations records the accessor ids OnRevoke reports on one node.
type revocations struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (r *revocations) add(id string) {
	r.mu.Lock()
	r.ids[id] = true
	r.mu.Unlock()
}

func (r *revocations) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ids[id]
}

// TestCluster_Tokens creates tokens through a follower, authenticates
// them on every node, revokes one, lets another expire through the
// leader's loop, and restarts a node, which keeps the tokens.
func TestCluster_Tokens(t *testing.T) {
	c := testcluster.New(t, 3,
		testcluster.WithModules("acl"),
		// Tiny: the restarted node restores a snapshot, then the log.
		testcluster.WithSnapshotThreshold(2),
		testcluster.WithModuleConfig("acl", &acl.Config{ExpiryInterval: 50 * time.Millisecond}))
	nodes := c.Nodes()
	revoked := make([]*revocations, len(nodes))
	for i, n := range nodes {
		revoked[i] = &revocations{ids: map[string]bool{}}
		aclOf(t, n).OnRevoke(revoked[i].add)
	}
	via := c.Followers()[0]

	create := func(name, ttl string) acl.TokenJSON {
		t.Helper()
		body := map[string]any{"name": name, "rules": []string{"kv:read:" + name + "/"}}
		if ttl != "" {
			body["ttl"] = ttl
		}
		status, out := post(t, via, "POST", "/v1/acl/tokens", body)
		if status != http.StatusCreated {
			t.Fatalf("create %s: %d %s", name, status, out)
		}
		var tok acl.TokenJSON
		if err := json.Unmarshal(out, &tok); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	keep := create("keep", "")
	gone := create("gone", "")
	short := create("short", "1s")

	// The follower that took the create answers once it applied it; the
	// other nodes apply it soon after.
	if _, ok := aclOf(t, via).Authenticate(keep.SecretID); !ok {
		t.Fatal("the node that created the token does not know it")
	}
	authenticatesEverywhere := func(tok acl.TokenJSON, want bool) {
		t.Helper()
		testcluster.Eventually(t, 10*time.Second, func() error {
			for _, n := range c.Up() {
				got, ok := aclOf(t, n).Authenticate(tok.SecretID)
				if ok != want {
					return fmt.Errorf("%s: Authenticate(%s) = %v, want %v", n.Name, tok.Name, ok, want)
				}
				if ok && (got.AccessorID != tok.AccessorID || !got.Allows(acl.Resource{Module: acl.ModuleKV, Action: acl.ActionRead, Name: tok.Name + "/x"})) {
					return fmt.Errorf("%s: token %+v", n.Name, got)
				}
			}
			return nil
		})
	}
	authenticatesEverywhere(keep, true)
	authenticatesEverywhere(gone, true)

	// A duplicate name is refused by the state machine, through forwarding.
	if status, out := post(t, via, "POST", "/v1/acl/tokens", map[string]any{"name": "keep", "rules": []string{"operator"}}); status != http.StatusConflict {
		t.Fatalf("duplicate name: %d %s", status, out)
	}

	// Revoke through another node; every node hears of it.
	other := c.Leader()
	if status, out := post(t, other, "DELETE", "/v1/acl/tokens/"+gone.AccessorID, nil); status != http.StatusOK {
		t.Fatalf("revoke: %d %s", status, out)
	}
	authenticatesEverywhere(gone, false)
	testcluster.Eventually(t, 10*time.Second, func() error {
		for i, r := range revoked {
			if !r.has(gone.AccessorID) {
				return fmt.Errorf("%s: OnRevoke not called", nodes[i].Name)
			}
		}
		return nil
	})
	if status, _ := post(t, via, "GET", "/v1/acl/tokens/"+gone.AccessorID, nil); status != http.StatusNotFound {
		t.Fatalf("revoked token: %d, want 404", status)
	}

	// The short token expires: refused, then removed from every node by
	// the leader's loop (and reported revoked).
	authenticatesEverywhere(short, false)
	testcluster.Eventually(t, 10*time.Second, func() error {
		for i, n := range c.Up() {
			if _, ok := aclOf(t, n).Token(short.AccessorID); ok {
				return fmt.Errorf("%s still holds the expired token", n.Name)
			}
			if !revoked[i].has(short.AccessorID) {
				return fmt.Errorf("%s: OnRevoke not called for the expired token", n.Name)
			}
		}
		return nil
	})

	// A restarted node replays its log and keeps the tokens.
	i := via.Index
	c.Stop(i)
	c.Restart(i)
	testcluster.Eventually(t, 20*time.Second, func() error {
		a := aclOf(t, nodes[i])
		if _, ok := a.Authenticate(keep.SecretID); !ok {
			return errors.New("the restarted node does not know the token")
		}
		if _, ok := a.Authenticate(gone.SecretID); ok {
			return errors.New("the restarted node accepts a revoked token")
		}
		if n := len(a.Tokens()); n != 1 {
			return fmt.Errorf("the restarted node holds %d tokens, want 1", n)
		}
		return nil
	})
	status, out := post(t, nodes[i], "GET", "/v1/acl/tokens", nil)
	var list struct{ Tokens []acl.TokenJSON }
	if err := json.Unmarshal(out, &list); status != http.StatusOK || err != nil || len(list.Tokens) != 1 || list.Tokens[0].AccessorID != keep.AccessorID || list.Tokens[0].SecretID != "" {
		t.Fatalf("list on the restarted node: %d %s", status, out)
	}
}
