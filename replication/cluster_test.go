package replication

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/internal/testcluster"
)

// Real-cluster tests: real Raft, gossip, cluster port and HTTP in one
// process (internal/testcluster); nothing of the network is faked.

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

func send(method, url string, body []byte, hdr ...string) reply {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return reply{err: err}
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := testHTTP.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, body: b, header: resp.Header, err: err}
}

// retryable: the write was certainly not applied.
func retryable(r reply) bool {
	switch r.code() {
	case "no_replication_leader", "no_leader", "shutting_down":
		return true
	}
	return false
}

// mustWrite sends a write through n, retrying only while it was certainly
// not applied, or, for a PUT (a replace is idempotent), while its outcome
// is unknown (a leader change under load), and fails unless it is
// acknowledged.
func mustWrite(t *testing.T, n *testcluster.Node, method, path string, body []byte) writeResult {
	t.Helper()
	var r reply
	testcluster.Eventually(t, 30*time.Second, func() error {
		r = send(method, n.URL()+path, body)
		again := retryable(r) || (method == "PUT" && r.status == 503)
		if r.err == nil && (r.status == 200 || !again) {
			return nil
		}
		return fmt.Errorf("%s %s on %s: %s", method, path, n.Name, r)
	})
	if r.status != 200 {
		t.Fatalf("%s %s on %s: %s", method, path, n.Name, r)
	}
	var res writeResult
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
	return res
}

func testConfig() *Config {
	cfg := DefaultConfig()
	cfg.AckTimeout = time.Second
	return &cfg
}

func newCluster(t *testing.T, cfg *Config) *testcluster.Cluster {
	t.Helper()
	if cfg == nil {
		cfg = testConfig()
	}
	c := testcluster.New(t, 3, testcluster.WithModules("replication"), testcluster.WithModuleConfig("replication", cfg))
	waitInSync(t, c, 3)
	return c
}

func module(t *testing.T, n *testcluster.Node) *Replication {
	t.Helper()
	a := n.Agent()
	if a == nil {
		t.Fatalf("%s is down", n.Name)
	}
	mod, ok := a.Module("replication")
	if !ok {
		t.Fatalf("%s runs no replication module", n.Name)
	}
	return mod.(*Replication)
}

// replLeader waits until one running node serves as replication leader and
// returns it.
func replLeader(t *testing.T, c *testcluster.Cluster) *testcluster.Node {
	t.Helper()
	var leader *testcluster.Node
	testcluster.Eventually(t, 30*time.Second, func() error {
		leader = nil
		for _, n := range c.Up() {
			if module(t, n).current.Load() != nil {
				if leader != nil {
					return fmt.Errorf("%s and %s both lead", leader.Name, n.Name)
				}
				leader = n
			}
		}
		if leader == nil {
			return errors.New("no replication leader yet")
		}
		return nil
	})
	return leader
}

// waitInSync waits until the leader's in-sync set has n members, every
// follower of it streaming.
func waitInSync(t *testing.T, c *testcluster.Cluster, n int) {
	t.Helper()
	testcluster.Eventually(t, 30*time.Second, func() error {
		leader := replLeader(t, c)
		s := module(t, leader).localStatus()
		if len(s.InSync) != n {
			return fmt.Errorf("in-sync set %v, want %d members", s.InSync, n)
		}
		return nil
	})
}

// tree returns the sha256 of every file in n's replicated directory.
func tree(t *testing.T, n *testcluster.Node) map[string]string {
	t.Helper()
	return treeOf(t, module(t, n).cfg.Dir)
}

func treeOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == reservedDir {
			return fs.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = fmt.Sprintf("%x", sha256.Sum256(b))
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return out
}

func diffTrees(a, b map[string]string) string {
	var d []string
	for p, h := range a {
		if b[p] != h {
			d = append(d, fmt.Sprintf("%s: %.8s vs %.8s", p, h, b[p]))
		}
	}
	for p, h := range b {
		if _, ok := a[p]; !ok {
			d = append(d, fmt.Sprintf("%s: missing vs %.8s", p, h))
		}
	}
	slices.Sort(d)
	if len(d) > 5 {
		d = append(d[:5], fmt.Sprintf("... %d more", len(d)-5))
	}
	return strings.Join(d, "; ")
}

// waitConverged waits until every running node's directory equals want
// (or, if want is nil, the leader's).
func waitConverged(t *testing.T, c *testcluster.Cluster, want map[string]string) {
	t.Helper()
	testcluster.Eventually(t, 60*time.Second, func() error {
		ref := want
		if ref == nil {
			ref = tree(t, replLeader(t, c))
		}
		for _, n := range c.Up() {
			if d := diffTrees(ref, tree(t, n)); d != "" {
				return fmt.Errorf("%s differs: %s", n.Name, d)
			}
		}
		return nil
	})
}

func randomBytes(r *rand.Rand, n int) []byte {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], r.Uint64())
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(seed).Read(b)
	return b
}

// putKnown replaces p through n until it is acknowledged: a replace is
// idempotent, so repeating one whose outcome was unknown is safe.
func putKnown(t *testing.T, n *testcluster.Node, p string, data []byte) writeResult {
	t.Helper()
	var r reply
	testcluster.Eventually(t, 60*time.Second, func() error {
		r = send("PUT", n.URL()+"/v1/files/"+p, data)
		if r.err == nil && r.status == 200 {
			return nil
		}
		return fmt.Errorf("put %s on %s: %s", p, n.Name, r)
	})
	var res writeResult
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
	return res
}

func sumHex(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }

// TestCluster_RandomWritesConverge writes files (replaces of up to a few
// MiB, appends, deletes) through random nodes, checks every answer against
// a model, and checks that every node's directory ends byte-identical to
// the model. A write whose outcome is unknown (a leader change under load)
// is made known again: a replace is repeated, an append is replaced by
// the whole content the model expects.
func TestCluster_RandomWritesConverge(t *testing.T) {
	testcluster.FullRunOnly(t, "random writes on many paths, beyond the targeted convergence tests")
	ops, maxSize := 200, 3<<20
	if testing.Short() {
		ops, maxSize = 60, 512<<10
	}
	c := newCluster(t, nil)
	r := rand.New(rand.NewPCG(1, 2))
	model := map[string][]byte{}
	for i := range ops {
		n := c.Nodes()[r.IntN(3)]
		p := fmt.Sprintf("dir%d/file-%02d.dat", r.IntN(3), r.IntN(25))
		switch k := r.IntN(10); {
		case k < 4 || model[p] == nil && k < 8:
			data := randomBytes(r, r.IntN(maxSize))
			res := putKnown(t, n, p, data)
			model[p] = data
			if res.Size != uint64(len(data)) || res.SHA256 != sumHex(data) {
				t.Fatalf("op %d: put %s: got %+v, want size %d", i, p, res, len(data))
			}
		case k < 8:
			data := randomBytes(r, 1+r.IntN(64<<10))
			want := append(bytes.Clone(model[p]), data...)
			got := send("POST", n.URL()+"/v1/files/"+p+"?append", data)
			for got.status != 200 && retryable(got) {
				got = send("POST", n.URL()+"/v1/files/"+p+"?append", data)
			}
			if got.status != 200 {
				t.Logf("op %d: append %s: %s; making it known with a replace", i, p, got)
				putKnown(t, n, p, want)
			} else {
				var res writeResult
				if err := json.Unmarshal(got.body, &res); err != nil || res.Size != uint64(len(want)) || res.SHA256 != sumHex(want) {
					t.Fatalf("op %d: append %s: got %s, want size %d", i, p, got, len(want))
				}
			}
			model[p] = want
		default:
			if model[p] == nil {
				if got := send("DELETE", n.URL()+"/v1/files/"+p, nil); got.status != 404 {
					t.Fatalf("op %d: delete missing %s: %s, want 404", i, p, got)
				}
				continue
			}
			testcluster.Eventually(t, 30*time.Second, func() error {
				got := send("DELETE", n.URL()+"/v1/files/"+p, nil)
				if got.status == 200 || got.status == 404 { // 404: an earlier try applied it
					return nil
				}
				return fmt.Errorf("delete %s: %s", p, got)
			})
			delete(model, p)
		}
	}
	want := map[string]string{}
	for p, b := range model {
		want[p] = sumHex(b)
	}
	waitConverged(t, c, want)

	// Reads on any node: the local copy, with ETag and Range.
	for p, b := range model {
		n := c.Nodes()[r.IntN(3)]
		got := send("GET", n.URL()+"/v1/files/"+p, nil)
		if got.status != 200 || !bytes.Equal(got.body, b) || got.header.Get("ETag") != `"`+sumHex(b)+`"` {
			t.Fatalf("get %s on %s: status %d, %d bytes, etag %s", p, n.Name, got.status, len(got.body), got.header.Get("ETag"))
		}
		if len(b) > 10 {
			got = send("GET", n.URL()+"/v1/files/"+p, nil, "Range", "bytes=3-9")
			if got.status != 206 || !bytes.Equal(got.body, b[3:10]) {
				t.Fatalf("range of %s: %s", p, got)
			}
		}
		break
	}
	// The status, asked of a follower, shows the leader's view.
	leader := replLeader(t, c)
	follower := c.Nodes()[(leader.Index+1)%3]
	testcluster.Eventually(t, 10*time.Second, func() error {
		r := send("GET", follower.URL()+"/v1/replication/status", nil)
		var s Status
		if err := json.Unmarshal(r.body, &s); err != nil || r.status != 200 {
			return fmt.Errorf("status: %s", r)
		}
		if s.Role != "follower" || s.Leader != leader.Name || len(s.InSync) != 3 || len(s.Followers) != 2 || s.Position == 0 {
			return fmt.Errorf("status %+v", s)
		}
		for _, f := range s.Followers {
			if f.State != stateStreaming || !f.InSync || f.LagBytes != 0 || f.AckedBytes != s.Position {
				return fmt.Errorf("follower %+v at position %d", f, s.Position)
			}
		}
		return nil
	})
	got := send("GET", c.Node(1).URL()+"/v1/files?prefix=dir1/", nil)
	var list struct{ Files []fileJSON }
	if err := json.Unmarshal(got.body, &list); err != nil || got.status != 200 {
		t.Fatalf("list: %s", got)
	}
	for _, f := range list.Files {
		if !strings.HasPrefix(f.Path, "dir1/") || f.SHA256 != want[f.Path] {
			t.Fatalf("listing has %+v, want only dir1/ files with their hashes", f)
		}
	}
}

func readFile(dir, p string) ([]byte, error) {
	return os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
}

// TestCluster_ConcurrentWriters has writers append to their own files at
// once through every node: writes share the leader's fsyncs (group
// commit), each file keeps its writer's order, and every node converges.
func TestCluster_ConcurrentWriters(t *testing.T) {
	testcluster.FullRunOnly(t, "writers on every node at once")
	c := newCluster(t, nil)
	const writers, appends = 6, 15
	want := make([][]byte, writers)
	failed := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := c.Node(w % 3)
			p := fmt.Sprintf("w/%d.log", w)
			var content []byte
			for i := range appends {
				line := []byte(fmt.Sprintf("writer %d line %d\n", w, i))
				content = append(content, line...)
				r := send("POST", n.URL()+"/v1/files/"+p+"?append", line)
				for r.status != 200 && retryable(r) {
					r = send("POST", n.URL()+"/v1/files/"+p+"?append", line)
				}
				if r.status != 200 { // outcome unknown: make the file known again
					for try := 0; send("PUT", n.URL()+"/v1/files/"+p, content).status != 200; try++ {
						if try == 100 {
							failed <- fmt.Errorf("put %s never acknowledged", p)
							return
						}
					}
				}
			}
			want[w] = content
		}()
	}
	wg.Wait()
	close(failed)
	for err := range failed {
		t.Fatal(err)
	}
	exp := map[string]string{}
	for w, b := range want {
		exp[fmt.Sprintf("w/%d.log", w)] = sumHex(b)
	}
	waitConverged(t, c, exp)
}
