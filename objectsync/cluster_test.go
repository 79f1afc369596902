package objectsync

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"shoal/internal/testcluster"
	"shoal/objectsync/client"
)

// Real-cluster tests: real Raft, gossip, HTTP and websockets in one
// process (see internal/testcluster); nothing is faked.

var testHTTP = &http.Client{Timeout: 30 * time.Second}

type reply struct {
	status int
	body   []byte
	header http.Header
	err    error
}

func (r reply) String() string {
	if r.err != nil {
		return r.err.Error()
	}
	return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body))
}

func (r reply) code() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func send(method, url, contentType string, body []byte) reply {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		return reply{err: err}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := testHTTP.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, body: b, header: resp.Header, err: err}
}

// must sends a request through node n until it gets wantStatus (retrying
// while the cluster elects a leader).
func must(t *testing.T, n *testcluster.Node, method, path, contentType string, body []byte, wantStatus int) reply {
	t.Helper()
	var r reply
	testcluster.Eventually(t, 30*time.Second, func() error {
		r = send(method, n.URL()+path, contentType, body)
		if r.err == nil && r.status == wantStatus {
			return nil
		}
		return fmt.Errorf("%s %s on %s: %s", method, path, n.Name, r)
	})
	return r
}

func testConfig() *Config {
	cfg := DefaultConfig()
	cfg.History = 16
	cfg.PingInterval = 5 * time.Second
	cfg.Linger = 10 * time.Minute // no test but TestCluster_Producers waits for a drop
	// Paced writes still, but a test that waits for each update in turn
	// does not wait 20 ms for each.
	cfg.BatchInterval = 5 * time.Millisecond
	return &cfg
}

func newCluster(t *testing.T, cfg *Config, opts ...testcluster.Option) *testcluster.Cluster {
	t.Helper()
	if cfg == nil {
		cfg = testConfig()
	}
	opts = append([]testcluster.Option{
		testcluster.WithModules("objectsync"),
		testcluster.WithModuleConfig("objectsync", cfg),
	}, opts...)
	return testcluster.New(t, 3, opts...)
}

// dial connects a client to the given nodes (the first that answers).
func dial(t *testing.T, nodes ...*testcluster.Node) *client.Client {
	t.Helper()
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.URL())
	}
	c, err := client.Dial(context.Background(), urls, client.Options{MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// awaitState waits until c holds id at version with object want.
func awaitState(t *testing.T, c *client.Client, id, version string, want []byte) {
	t.Helper()
	testcluster.Eventually(t, 20*time.Second, func() error {
		st, ok := c.Get(id)
		switch {
		case !ok:
			return fmt.Errorf("no state of %q", id)
		case st.Version != version || !bytes.Equal(st.Object, want):
			return fmt.Errorf("%q at version %s %s, want %s %s", id, st.Version, st.Object, version, want)
		}
		return nil
	})
}

func TestCluster_Smoke(t *testing.T) {
	c := newCluster(t, nil)
	master := dial(t, c.Node(0))
	sub := dial(t, c.Node(1))
	if err := sub.Subscribe("smoke-*"); err != nil {
		t.Fatal(err)
	}
	if err := master.Master("smoke-1"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for v := 1; v <= 5; v++ {
		if err := master.SetWait(ctx, "smoke-1", v, map[string]any{"n": v, "fixed": "a long enough text that a patch is smaller"}); err != nil {
			t.Fatalf("set %d: %v", v, err)
		}
	}
	awaitState(t, sub, "smoke-1", "5", []byte(`{"fixed":"a long enough text that a patch is smaller","n":5}`))
	r := must(t, c.Node(2), "GET", "/v1/objects/smoke-1?consistent=true", "", nil, 200)
	if got, want := string(bytes.TrimSpace(r.body)), `{"id":"smoke-1","version":5,"object":{"fixed":"a long enough text that a patch is smaller","n":5}}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if s := sub.Stats(); s.Violations != 0 || s.Patches == 0 {
		t.Fatalf("got stats %+v, want patches and no violations", s)
	}
}
