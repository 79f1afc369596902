package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	_ "shoal/acl" // scoped tokens
	"shoal/internal/testcluster"
	_ "shoal/kv"        // kv: a module outside Raft, with a section in backups
	_ "shoal/locks"     // semaphores, for the scoped tokens test
	_ "shoal/logstream" // the log module: a real module on every node
	"shoal/modules"
	_ "shoal/objectsync" // the objects websocket
)

// testModuleID is the module this package registers; no other package
// registers it (each test binary has its own registry, and this is the only
// test package that uses the ID).
const testModuleID = "apitest"

func init() {
	modules.Register(modules.Info{ID: testModuleID, New: func() modules.Module { return new(testModule) }})
}

// testModule is a module whose routes misbehave on purpose, so that the
// API's recovery can be tested on a real node. It uses neither Raft nor
// gossip (it would take modules.TagTest if it did).
type testModule struct {
	notReady atomic.Pointer[string] // the readiness failure, or nil
}

func (m *testModule) ID() string                      { return testModuleID }
func (m *testModule) Provision(modules.Host) error    { return nil }
func (m *testModule) Start(ctx context.Context) error { return nil }
func (m *testModule) Stop(ctx context.Context) error  { return nil }

func (m *testModule) Routes(r chi.Router) {
	r.Route("/apitest", func(r chi.Router) {
		r.Get("/panic", func(w http.ResponseWriter, r *http.Request) { panic("apitest: deliberate panic") })
		r.Get("/abort", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	})
}

func (m *testModule) Ready() error {
	if p := m.notReady.Load(); p != nil {
		return errors.New(*p)
	}
	return nil
}

func (m *testModule) Status() any { return map[string]any{"ok": true} }

var (
	_ modules.Router           = (*testModule)(nil)
	_ modules.ReadinessChecker = (*testModule)(nil)
	_ modules.StatusReporter   = (*testModule)(nil)
)

func testModuleOf(t *testing.T, n *testcluster.Node) *testModule {
	t.Helper()
	a := n.Agent()
	if a == nil {
		t.Fatalf("%s is down", n.Name)
	}
	m, ok := a.Module(testModuleID)
	if !ok {
		t.Fatalf("%s does not run the %s module", n.Name, testModuleID)
	}
	return m.(*testModule)
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string {
	return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body))
}

// send performs one request; header may be nil. A body of -1 length (see
// chunked) is sent without Content-Length.
func send(method, url string, body io.Reader, header http.Header) (response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return response{}, err
	}
	if c, ok := body.(chunked); ok {
		req.Body = io.NopCloser(c.r)
		req.ContentLength = -1
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("read body of %s %s: %w", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// chunked wraps a body so that it is sent with chunked transfer encoding.
type chunked struct{ r io.Reader }

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p) }

// call is send that fails the test on a transport error.
func call(t *testing.T, method, url, body string, header http.Header) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	resp, err := send(method, url, r, header)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

func get(t *testing.T, url string) response {
	t.Helper()
	return call(t, http.MethodGet, url, "", nil)
}

// decode unmarshals a JSON response body, failing the test otherwise.
func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("got Content-Type %q, want application/json (response %v)", ct, r)
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("response %v is not the expected JSON: %v", r, err)
	}
	return v
}

// apiError is the one error shape.
type apiError struct {
	Error map[string]any `json:"error"`
}

// wantError checks status, the JSON error shape and its code, and returns
// the error object.
func wantError(t *testing.T, r response, status int, code string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("got %v, want status %d", r, status)
	}
	e := decode[apiError](t, r).Error
	if e == nil {
		t.Fatalf("got %v, want the {\"error\":{...}} shape", r)
	}
	if e["code"] != code {
		t.Fatalf("got code %v, want %q (response %v)", e["code"], code, r)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Fatalf("got no message (response %v)", r)
	}
	return e
}

// statusJSON is GET /v1/status.
type statusJSON struct {
	Node   string `json:"node"`
	Leader string `json:"leader"`
	Raft   struct {
		State        string   `json:"state"`
		Term         uint64   `json:"term"`
		CommitIndex  uint64   `json:"commit_index"`
		AppliedIndex uint64   `json:"applied_index"`
		LastIndex    uint64   `json:"last_index"`
		Voters       []string `json:"voters"`
		NonVoters    []string `json:"non_voters"`
	} `json:"raft"`
	Members int      `json:"members"`
	Modules []string `json:"modules"`
	Version string   `json:"version"`
}

// memberJSON is one entry of GET /v1/members.
type memberJSON struct {
	Name         string   `json:"name"`
	Addr         string   `json:"addr"`
	Status       string   `json:"status"`
	HTTPAddr     string   `json:"http_addr"`
	RaftAddr     string   `json:"raft_addr"`
	RaftSuffrage string   `json:"raft_suffrage"`
	Leader       bool     `json:"leader"`
	Modules      []string `json:"modules"`
	Version      string   `json:"version"`
}

// peerJSON is one entry of GET /v1/raft/peers.
type peerJSON struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

// statusOf fetches a node's status without failing the test (for polling).
func statusOf(n *testcluster.Node) (statusJSON, error) {
	var st statusJSON
	r, err := send(http.MethodGet, n.URL()+"/v1/status", nil, nil)
	if err != nil {
		return st, err
	}
	if r.status != http.StatusOK {
		return st, fmt.Errorf("status of %s: %v", n.Name, r)
	}
	return st, json.Unmarshal(r.body, &st)
}

// membersOf fetches a node's member list without failing the test.
func membersOf(n *testcluster.Node) (map[string]memberJSON, error) {
	r, err := send(http.MethodGet, n.URL()+"/v1/members", nil, nil)
	if err != nil {
		return nil, err
	}
	if r.status != http.StatusOK {
		return nil, fmt.Errorf("members of %s: %v", n.Name, r)
	}
	var out struct {
		Members []memberJSON `json:"members"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		return nil, err
	}
	byName := map[string]memberJSON{}
	for _, m := range out.Members {
		byName[m.Name] = m
	}
	return byName, nil
}

// waitVoters polls n's /v1/status until its voters are exactly want.
func waitVoters(t *testing.T, n *testcluster.Node, want ...string) {
	t.Helper()
	slices.Sort(want)
	testcluster.Eventually(t, 30*time.Second, func() error {
		st, err := statusOf(n)
		if err != nil {
			return err
		}
		if !slices.Equal(st.Raft.Voters, want) {
			return fmt.Errorf("%s lists voters %v, want %v", n.Name, st.Raft.Voters, want)
		}
		return nil
	})
}

// waitServers polls n's status until its Raft servers, voters and
// non-voters together, are exactly want.
func waitServers(t *testing.T, n *testcluster.Node, want ...string) {
	t.Helper()
	slices.Sort(want)
	testcluster.Eventually(t, 30*time.Second, func() error {
		st, err := statusOf(n)
		if err != nil {
			return err
		}
		got := slices.Sorted(slices.Values(append(slices.Clone(st.Raft.Voters), st.Raft.NonVoters...)))
		if !slices.Equal(got, want) {
			return fmt.Errorf("%s lists servers %v (voters %v), want %v", n.Name, got, st.Raft.Voters, want)
		}
		return nil
	})
}

// waitMemberStatus polls n's /v1/members until member has the status.
func waitMemberStatus(t *testing.T, n *testcluster.Node, member, status string) {
	t.Helper()
	testcluster.Eventually(t, 30*time.Second, func() error {
		ms, err := membersOf(n)
		if err != nil {
			return err
		}
		if got := ms[member].Status; got != status {
			return fmt.Errorf("%s sees %s as %q, want %q", n.Name, member, got, status)
		}
		return nil
	})
}

// names returns the names of nodes, sorted.
func names(nodes ...*testcluster.Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Name
	}
	slices.Sort(out)
	return out
}

// metricLines returns the sample lines of the metric families whose name
// starts with prefix.
func metricLines(text, prefix string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return out
}

// label returns the value of label name in a sample line.
func label(line, name string) (string, bool) {
	_, rest, ok := strings.Cut(line, name+`="`)
	if !ok {
		return "", false
	}
	v, _, ok := strings.Cut(rest, `"`)
	return v, ok
}
