package api_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"shoal/internal/agent"
	"shoal/internal/testcluster"
)

// maxBody is the body limit of the node tests' cluster.
const maxBody = 1024

// TestNode runs the read-mostly checks on one formed three-node cluster:
// they do not change its configuration, so they share it.
func TestNode(t *testing.T) {
	c := testcluster.New(t, 3,
		testcluster.WithModules("log", testModuleID),
		testcluster.WithConfig(func(i int, cfg *agent.Config) { cfg.MaxBodyBytes, cfg.BodyTimeout = maxBody, bodyTimeout }))
	leader := c.Leader()

	t.Run("Health", func(t *testing.T) { testHealth(t, c) })
	t.Run("Status", func(t *testing.T) { testStatus(t, c, leader) })
	t.Run("Members", func(t *testing.T) { testMembers(t, c, leader) })
	t.Run("RaftPeers", func(t *testing.T) { testRaftPeers(t, c, leader) })
	t.Run("ModuleNotReady", func(t *testing.T) { testModuleNotReady(t, c) })
	t.Run("UnknownRoute", func(t *testing.T) { testUnknownRoute(t, c) })
	t.Run("WrongMethod", func(t *testing.T) { testWrongMethod(t, c) })
	t.Run("BodyTooLarge", func(t *testing.T) { testBodyTooLarge(t, c) })
	t.Run("SlowBody", func(t *testing.T) { testSlowBody(t, c) })
	t.Run("Join", func(t *testing.T) { testJoin(t, c) })
	t.Run("Panic", func(t *testing.T) { testPanic(t, c) })
	t.Run("Metrics", func(t *testing.T) { testMetrics(t, c) })
}

func testHealth(t *testing.T, c *testcluster.Cluster) {
	for _, n := range c.Nodes() {
		for _, path := range []string{"/livez", "/v1/health/live"} {
			r := get(t, n.URL()+path)
			if r.status != http.StatusOK {
				t.Fatalf("%s %s: got %v, want 200", n.Name, path, r)
			}
			if got := decode[map[string]any](t, r); got["status"] != "live" {
				t.Fatalf("%s %s: got %v, want status live", n.Name, path, got)
			}
		}
		// A follower may still be applying what the leader committed.
		for _, path := range []string{"/readyz", "/v1/health/ready"} {
			testcluster.Eventually(t, 10*time.Second, func() error {
				r, err := send(http.MethodGet, n.URL()+path, nil, nil)
				if err != nil {
					return err
				}
				if r.status != http.StatusOK {
					return fmt.Errorf("%s %s: got %v, want 200", n.Name, path, r)
				}
				if got := decode[map[string]any](t, r); got["status"] != "ready" {
					t.Fatalf("%s %s: got %v, want status ready", n.Name, path, got)
				}
				return nil
			})
		}
	}
}

func testStatus(t *testing.T, c *testcluster.Cluster, leader *testcluster.Node) {
	voters := names(c.Nodes()...)
	for _, n := range c.Nodes() {
		r := get(t, n.URL()+"/v1/status")
		raw := decode[map[string]any](t, r)
		for _, key := range []string{"node", "leader", "raft", "members", "modules", "version", testModuleID} {
			if _, ok := raw[key]; !ok {
				t.Fatalf("%s: status lacks %q: %v", n.Name, key, r)
			}
		}
		rawRaft, _ := raw["raft"].(map[string]any)
		for _, key := range []string{"state", "term", "commit_index", "applied_index", "last_index", "voters", "non_voters"} {
			if _, ok := rawRaft[key]; !ok {
				t.Fatalf("%s: status.raft lacks %q: %v", n.Name, key, r)
			}
		}
		if nv, ok := rawRaft["non_voters"].([]any); !ok || len(nv) != 0 {
			t.Fatalf("%s: got non_voters %#v, want []", n.Name, rawRaft["non_voters"])
		}

		// Polled: a follower applies the term-start marker once it hears
		// the commit index, and gossip on a loaded machine may briefly
		// suspect a member.
		testcluster.Eventually(t, 20*time.Second, func() error {
			st, err := statusOf(n)
			if err != nil {
				return err
			}
			wantState := "follower"
			if n == leader {
				wantState = "leader"
			}
			switch {
			case st.Node != n.Name || st.Leader != leader.Name || st.Raft.State != wantState:
				return fmt.Errorf("%s: got node %q leader %q state %q, want %q %q %q", n.Name, st.Node, st.Leader, st.Raft.State, n.Name, leader.Name, wantState)
			case st.Raft.Term == 0 || st.Raft.CommitIndex == 0 || st.Raft.LastIndex == 0 || st.Raft.AppliedIndex == 0:
				return fmt.Errorf("%s: got term %d commit %d applied %d last %d, want all positive", n.Name, st.Raft.Term, st.Raft.CommitIndex, st.Raft.AppliedIndex, st.Raft.LastIndex)
			case !slices.Equal(st.Raft.Voters, voters) || len(st.Raft.NonVoters) != 0:
				return fmt.Errorf("%s: got voters %v non-voters %v, want %v and none", n.Name, st.Raft.Voters, st.Raft.NonVoters, voters)
			case st.Members != 3:
				return fmt.Errorf("%s: got %d members, want 3", n.Name, st.Members)
			case !slices.Contains(st.Modules, "log") || !slices.Contains(st.Modules, testModuleID):
				return fmt.Errorf("%s: got modules %v, want log and %s", n.Name, st.Modules, testModuleID)
			case st.Version == "":
				return fmt.Errorf("%s: empty version", n.Name)
			}
			return nil
		})
	}
}

func testMembers(t *testing.T, c *testcluster.Cluster, leader *testcluster.Node) {
	for _, n := range c.Nodes() {
		// Polled: gossip on a loaded machine may briefly suspect a member.
		testcluster.Eventually(t, 20*time.Second, func() error {
			r, err := send(http.MethodGet, n.URL()+"/v1/members", nil, nil)
			if err != nil {
				return err
			}
			ms := decode[struct {
				Members []memberJSON `json:"members"`
			}](t, r).Members
			if len(ms) != 3 {
				return fmt.Errorf("%s: got %d members, want 3: %v", n.Name, len(ms), r)
			}
			leaders := 0
			for _, m := range ms {
				node := c.Node(nodeIndex(t, c, m.Name))
				u, _ := url.Parse(node.URL())
				if m.Status != "alive" || m.RaftSuffrage != "voter" || m.HTTPAddr != u.Host || m.RaftAddr != node.Agent().RaftAddr() || m.Addr != node.Agent().GossipAddr() {
					return fmt.Errorf("%s: got member %+v, want an alive voter at %s, %s, %s", n.Name, m, u.Host, node.Agent().RaftAddr(), node.Agent().GossipAddr())
				}
				if !slices.Contains(m.Modules, "log") || m.Version == "" {
					return fmt.Errorf("%s: got member %+v, want modules with log and a version", n.Name, m)
				}
				if m.Leader {
					leaders++
					if m.Name != leader.Name {
						return fmt.Errorf("%s: %s is flagged leader, want %s", n.Name, m.Name, leader.Name)
					}
				}
			}
			if leaders != 1 {
				return fmt.Errorf("%s: %d members flagged leader, want 1", n.Name, leaders)
			}
			return nil
		})
	}
}

func nodeIndex(t *testing.T, c *testcluster.Cluster, name string) int {
	t.Helper()
	for _, n := range c.Nodes() {
		if n.Name == name {
			return n.Index
		}
	}
	t.Fatalf("no node called %q", name)
	return -1
}

func testRaftPeers(t *testing.T, c *testcluster.Cluster, leader *testcluster.Node) {
	for _, n := range c.Nodes() {
		peers := decode[struct {
			Peers []peerJSON `json:"peers"`
		}](t, get(t, n.URL()+"/v1/raft/peers")).Peers
		var ids []string
		leaders := 0
		for _, p := range peers {
			ids = append(ids, p.ID)
			if p.Suffrage != "voter" || p.Address == "" {
				t.Fatalf("%s: got peer %+v, want a voter with an address", n.Name, p)
			}
			if p.Leader {
				leaders++
				if p.ID != leader.Name || p.Address != leader.Agent().RaftAddr() {
					t.Fatalf("%s: got leader peer %+v, want %s at %s", n.Name, p, leader.Name, leader.Agent().RaftAddr())
				}
			}
		}
		slices.Sort(ids)
		if !slices.Equal(ids, names(c.Nodes()...)) || leaders != 1 {
			t.Fatalf("%s: got peers %v with %d leaders, want %v with 1", n.Name, ids, leaders, names(c.Nodes()...))
		}
	}
}

func testModuleNotReady(t *testing.T, c *testcluster.Cluster) {
	n := c.Node(1)
	reason := "apitest: warming up"
	testModuleOf(t, n).notReady.Store(&reason)
	defer testModuleOf(t, n).notReady.Store(nil)

	for _, path := range []string{"/readyz", "/v1/health/ready"} {
		r := get(t, n.URL()+path)
		e := wantError(t, r, http.StatusServiceUnavailable, "not_ready")
		checks, _ := e["checks"].(map[string]any)
		if checks["module:"+testModuleID] != reason {
			t.Fatalf("%s: got checks %v, want module:%s = %q", path, e["checks"], testModuleID, reason)
		}
		if r.header.Get("Retry-After") == "" {
			t.Fatalf("%s: 503 without Retry-After", path)
		}
	}
	if r := get(t, n.URL()+"/v1/health/live"); r.status != http.StatusOK {
		t.Fatalf("live: got %v, want 200 while a module is not ready", r)
	}
	// The other nodes are unaffected.
	other := c.Node(0)
	testcluster.Eventually(t, 10*time.Second, func() error {
		if r, err := send(http.MethodGet, other.URL()+"/v1/health/ready", nil, nil); err != nil || r.status != http.StatusOK {
			return fmt.Errorf("ready on %s: got %v %v, want 200", other.Name, r, err)
		}
		return nil
	})
}

func testUnknownRoute(t *testing.T, c *testcluster.Cluster) {
	n := c.Node(0)
	for _, path := range []string{"/nope", "/v1/nope", "/v1/raft/nope/deeper", "/v1/status/extra", "/v2/status"} {
		e := wantError(t, get(t, n.URL()+path), http.StatusNotFound, "not_found")
		if msg := e["message"].(string); !strings.Contains(msg, path) {
			t.Fatalf("%s: message %q does not name the path", path, msg)
		}
	}
}

func testWrongMethod(t *testing.T, c *testcluster.Cluster) {
	n := c.Node(0)
	for _, tc := range []struct{ method, path string }{
		{http.MethodPost, "/livez"},
		{http.MethodDelete, "/v1/health/ready"},
		{http.MethodDelete, "/v1/status"},
		{http.MethodPut, "/v1/members"},
		{http.MethodGet, "/v1/cluster/join"},
		{http.MethodGet, "/v1/cluster/leave"},
		{http.MethodPost, "/v1/raft/peers"},
		{http.MethodGet, "/v1/raft/peers/node1"},
		{http.MethodGet, "/v1/raft/transfer-leadership"},
	} {
		r := call(t, tc.method, n.URL()+tc.path, "", nil)
		e := wantError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
		if msg := e["message"].(string); !strings.Contains(msg, tc.method) {
			t.Fatalf("%s %s: message %q does not name the method", tc.method, tc.path, msg)
		}
		if allow := r.header.Get("Allow"); allow == "" || strings.Contains(allow, tc.method) {
			t.Fatalf("%s %s: Allow %q, want the methods the route answers", tc.method, tc.path, allow)
		}
	}
	if allow := call(t, http.MethodDelete, n.URL()+"/v1/status", "", nil).header.Get("Allow"); allow != "GET, HEAD" {
		t.Fatalf("DELETE /v1/status: Allow %q, want \"GET, HEAD\"", allow)
	}
	// HEAD answers wherever GET does, with GET's status and no body.
	for _, path := range []string{"/v1/health/live", "/v1/health/ready", "/v1/status", "/v1/members"} {
		if r := call(t, http.MethodHead, n.URL()+path, "", nil); r.status != http.StatusOK || len(r.body) != 0 {
			t.Fatalf("HEAD %s: %v", path, r)
		}
	}
	// A long path is echoed cut short.
	long := "/v1/" + strings.Repeat("x", 10_000)
	if r := get(t, n.URL()+long); r.status != http.StatusNotFound || len(r.body) > 1000 {
		t.Fatalf("GET of a 10 KB path: %d, a %d-byte answer", r.status, len(r.body))
	}
}

func testBodyTooLarge(t *testing.T, c *testcluster.Cluster) {
	n := c.Node(0)
	big := `{"addrs":["` + strings.Repeat("a", 2*maxBody) + `:7482"]}`
	for _, tc := range []struct {
		name string
		body io.Reader
	}{
		{"with Content-Length", strings.NewReader(big)},
		{"chunked", chunked{strings.NewReader(big)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := send(http.MethodPost, n.URL()+"/v1/cluster/join", tc.body, nil)
			if err != nil {
				t.Fatal(err)
			}
			e := wantError(t, r, http.StatusRequestEntityTooLarge, "body_too_large")
			if msg := e["message"].(string); !strings.Contains(msg, fmt.Sprint(maxBody)) {
				t.Fatalf("message %q does not name the limit", msg)
			}
		})
	}
	t.Run("no internal endpoints", func(t *testing.T) {
		// Node-to-node calls ride the cluster port, never the client API
		// (a client could forge Raft commands through them).
		for _, path := range []string{"/v1/internal/apply", "/v1/internal/read-index", "/v1/internal/applied"} {
			r := call(t, http.MethodPost, n.URL()+path, "x", nil)
			wantError(t, r, http.StatusNotFound, "not_found")
		}
	})
	t.Run("at the limit", func(t *testing.T) {
		body := `{"addrs":[]}` + strings.Repeat(" ", maxBody-len(`{"addrs":[]}`))
		wantError(t, call(t, http.MethodPost, n.URL()+"/v1/cluster/join", body, nil), http.StatusBadRequest, "invalid_addrs")
	})
}

func testJoin(t *testing.T, c *testcluster.Cluster) {
	n := c.Node(1)
	for _, tc := range []struct{ name, body, code string }{
		{"empty body", "", "bad_json"},
		{"not JSON", "join please", "bad_json"},
		{"unknown field", `{"addrs":["127.0.0.1:1"],"force":true}`, "bad_json"},
		{"addrs not a list", `{"addrs":"127.0.0.1:1"}`, "bad_json"},
		{"trailing data", `{"addrs":["127.0.0.1:1"]} {}`, "bad_json"},
		{"no addrs field", `{}`, "invalid_addrs"},
		{"empty addrs", `{"addrs":[]}`, "invalid_addrs"},
		{"too many addrs", `{"addrs":[` + strings.TrimSuffix(strings.Repeat(`"a:1",`, 65), ",") + `]}`, "invalid_addrs"},
		{"no port", `{"addrs":["10.0.0.1"]}`, "invalid_addrs"},
		{"port out of range", `{"addrs":["10.0.0.1:70000"]}`, "invalid_addrs"},
		{"no host", `{"addrs":[":7482"]}`, "invalid_addrs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, call(t, http.MethodPost, n.URL()+"/v1/cluster/join", tc.body, nil), http.StatusBadRequest, tc.code)
		})
	}
	t.Run("nobody answers", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := ln.Addr().String()
		ln.Close()
		e := wantError(t, call(t, http.MethodPost, n.URL()+"/v1/cluster/join", `{"addrs":["`+closed+`"]}`, nil), http.StatusGatewayTimeout, "join_failed")
		if msg := e["message"].(string); strings.Contains(msg, "127.0.0.1") {
			t.Fatalf("the message %q shows addresses of the node's internals", msg)
		}
	})
	t.Run("existing member", func(t *testing.T) {
		seed := c.Node(0).Agent().GossipAddr()
		r := call(t, http.MethodPost, n.URL()+"/v1/cluster/join", `{"addrs":["`+seed+`"]}`, nil)
		if r.status != http.StatusOK {
			t.Fatalf("got %v, want 200", r)
		}
		if got := decode[map[string]any](t, r); got["joined"] != float64(1) {
			t.Fatalf("got %v, want joined 1", got)
		}
	})
}

func testPanic(t *testing.T, c *testcluster.Cluster) {
	n := c.Node(2)
	e := wantError(t, get(t, n.URL()+"/v1/apitest/panic"), http.StatusInternalServerError, "internal")
	if msg := e["message"].(string); strings.Contains(msg, "deliberate") {
		t.Fatalf("the panic value leaks to the client: %q", msg)
	}
	// http.ErrAbortHandler is re-raised: the connection is cut, no response.
	if r, err := send(http.MethodGet, n.URL()+"/v1/apitest/abort", nil, nil); err == nil {
		t.Fatalf("got %v, want the connection aborted", r)
	}
	// The node keeps serving.
	if r := get(t, n.URL()+"/v1/status"); r.status != http.StatusOK {
		t.Fatalf("after a panic: got %v, want 200", r)
	}
}

func testMetrics(t *testing.T, c *testcluster.Cluster) {
	n := c.Node(0)
	// Traffic whose raw paths must not become labels.
	get(t, n.URL()+"/v1/status")
	call(t, http.MethodDelete, n.URL()+"/v1/raft/peers/no-such-peer-1234", "", nil)
	get(t, n.URL()+"/v1/unknown-path-5678")
	get(t, n.URL()+"/v1/apitest/panic")

	r := get(t, n.URL()+"/metrics")
	if r.status != http.StatusOK {
		t.Fatalf("got %v, want 200", r)
	}
	text := string(r.body)
	for _, prefix := range []string{"shoal_raft_state", "shoal_http_requests_total", "shoal_http_request_duration_seconds",
		"shoal_membership_", "shoal_log_", "go_goroutines"} {
		if len(metricLines(text, prefix)) == 0 {
			t.Fatalf("no %s metrics in:\n%s", prefix, text)
		}
	}
	routes := map[string]bool{}
	for _, line := range metricLines(text, "shoal_http_request") {
		if strings.HasPrefix(line, "shoal_http_requests_in_flight") {
			continue
		}
		route, ok := label(line, "route")
		if !ok {
			t.Fatalf("no route label in %q", line)
		}
		if strings.Contains(route, "no-such-peer") || strings.Contains(route, "unknown-path") {
			t.Fatalf("a raw path became a route label: %q", line)
		}
		routes[route] = true
	}
	for _, want := range []string{"/v1/status", "/v1/raft/peers/{name}"} {
		if !routes[want] {
			t.Fatalf("no requests counted for route %q; routes: %v", want, routes)
		}
	}
	// A panic is a 500 the metrics see.
	found := false
	for _, line := range metricLines(text, "shoal_http_requests_total{") {
		route, _ := label(line, "route")
		code, _ := label(line, "code")
		found = found || (route == "/v1/apitest/panic" && code == "500")
	}
	if !found {
		t.Fatalf("the panicking request is not counted as a 500:\n%s", strings.Join(metricLines(text, "shoal_http_requests_total"), "\n"))
	}
}

// bodyTimeout is the test cluster's --http-body-timeout.
const bodyTimeout = time.Second

// testSlowBody: a client that sends its headers and then trickles its
// body is cut off with 408 body_timeout once the body timeout has passed,
// instead of holding the connection (and a handler) for as long as it
// likes.
func testSlowBody(t *testing.T, c *testcluster.Cluster) {
	n := c.Node(0)
	conn, err := net.Dial("tcp", strings.TrimPrefix(n.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := fmt.Fprintf(conn, "POST /v1/cluster/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"addrs\""); err != nil {
		t.Fatal(err)
	}
	// One more byte now and then, each within the timeout, never the
	// whole body.
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a trickled body after %v: %v", time.Since(start), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "body_timeout") {
		t.Fatalf("got %d %s, want 408 body_timeout", resp.StatusCode, body)
	}
	t.Logf("a trickled body was cut after %v", time.Since(start).Round(time.Millisecond))
}
