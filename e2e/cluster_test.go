//go:build e2e

package e2e

// This file holds the cluster harness: it builds the image, starts the
// compose project, finds its containers, injects faults into them, and
// tears everything down at the end, saving every container's logs first
// when the test failed.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/client"
	"shoal/internal/keyring"
)

// composeDir is the compose directory, relative to the repository root.
const composeDir = "deploy/compose"

// nodeNames are the services (and node names) of docker-compose.yml.
var nodeNames = []string{"shoal1", "shoal2", "shoal3"}

// cluster is one compose project of the suite.
type cluster struct {
	t         *testing.T
	root      string  // repository root
	compose   compose // docker-compose.yml only
	compose4  compose // with docker-compose.node4.yml: scale-out and teardown
	project   string
	network   string
	token     string
	image     string
	builtBy   bool   // the image was built by this run: remove it at the end
	version   string // stamped into the binary; "" when the image was given
	artifacts string
	envDir    string         // holds the env file of the compose commands
	ports     map[string]int // published HTTP port by service

	mu    sync.Mutex
	nodes []*node
	// modules are the module IDs every node reports, found at formation.
	modules []string
}

// node is one service of the project.
type node struct {
	name      string // service name, which is also the node name
	container string // container id
	url       string // http://127.0.0.1:<published port>
	cl        *client.Client
}

func (n *node) String() string { return n.name }

// newID returns n random bytes in hex.
func newID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// clusterSecret returns a new cluster secret, as shoal keygen makes one.
func clusterSecret(t *testing.T) string {
	t.Helper()
	s, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startCluster builds the image (unless SHOAL_E2E_IMAGE names one), starts
// docker-compose.yml under a unique project name and returns once every
// node is ready. Teardown is registered before anything is started.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	if err := dockerAvailable(); err != nil {
		t.Skipf("no Docker engine answers (%v): the e2e suite needs one", err)
	}
	cmp, err := findCompose()
	if err != nil {
		t.Fatalf("a Docker engine answers but %v", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	id := newID(4)
	c := &cluster{
		t:       t,
		root:    root,
		project: "shoale2e" + id,
		token:   newID(16),
		ports:   map[string]int{},
	}
	c.network = c.project + "_shoal"
	c.artifacts = os.Getenv("SHOAL_E2E_ARTIFACTS")
	if c.artifacts == "" {
		if c.artifacts, err = os.MkdirTemp("", "shoal-e2e-"+id+"-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(c.artifacts, 0o755); err != nil {
		t.Fatal(err)
	}

	c.image = os.Getenv("SHOAL_E2E_IMAGE")
	if c.image == "" {
		c.image = "shoal:e2e-" + id
		c.version = "e2e-" + id
		c.builtBy = true
	}
	t.Logf("project %s, image %s, artifacts in %s", c.project, c.image, c.artifacts)
	t.Cleanup(c.teardown) // also removes the image if the build below fails halfway
	if c.builtBy {
		start := time.Now()
		if err := buildImage(root, c.image, c.version); err != nil {
			t.Fatalf("build the image: %v", err)
		}
		t.Logf("built the binary and image %s in %v", c.image, time.Since(start).Round(time.Millisecond))
	}

	env := []string{
		"SHOAL_IMAGE=" + c.image,
		"SHOAL_TOKEN=" + c.token,
		"SHOAL_CLUSTER_SECRET=" + clusterSecret(t),
		"SHOAL_LOG_LEVEL=info",
	}
	for i, name := range append(slices.Clone(nodeNames), "shoal4") {
		port := freePort(t)
		c.ports[name] = port
		env = append(env, fmt.Sprintf("SHOAL%d_HTTP_PORT=%d", i+1, port))
	}
	// The variables go both into an env file, so that a developer's
	// deploy/compose/.env is never read, and into the environment. The
	// file lives until the teardown's compose down has run.
	envDir, err := os.MkdirTemp("", "shoal-e2e-env-")
	if err != nil {
		t.Fatal(err)
	}
	c.envDir = envDir
	envFile := filepath.Join(envDir, "e2e.env")
	if err := os.WriteFile(envFile, []byte(strings.Join(env, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"-p", c.project, "--env-file", envFile, "-f", filepath.Join(root, composeDir, "docker-compose.yml")}
	c.compose = cmp
	c.compose.args, c.compose.env = base, env
	c.compose4 = c.compose
	c.compose4.args = append(slices.Clone(base), "-f", filepath.Join(root, composeDir, "docker-compose.node4.yml"))
	t.Logf("if this run is interrupted, clean up with: %s down -v --remove-orphans; docker rmi %s", c.compose4, c.image)

	start := time.Now()
	if _, err := c.compose.run(3*time.Minute, "up", "-d"); err != nil {
		t.Fatalf("compose up: %v", err)
	}
	for _, name := range nodeNames {
		c.nodes = append(c.nodes, c.findNode(t, name))
	}
	for _, n := range c.nodes {
		c.waitReady(t, n, 60*time.Second)
	}
	t.Logf("compose up: 3 nodes ready in %v", time.Since(start).Round(time.Millisecond))
	return c
}

// buildImage builds the static binary and the image the way `make image`
// does, in a temporary build context (the repository is never written to).
func buildImage(root, image, version string) error {
	ctxDir, err := os.MkdirTemp("", "shoal-e2e-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(ctxDir)
	if err := os.Mkdir(filepath.Join(ctxDir, "data"), 0o755); err != nil {
		return err
	}
	// go test puts the go that runs the test first on PATH.
	if _, err := run(10*time.Minute, []string{"CGO_ENABLED=0"}, "go", "build", "-C", root, "-trimpath",
		"-ldflags", "-s -w -X shoal/internal/cli.Version="+version, "-o", filepath.Join(ctxDir, "shoal"), "."); err != nil {
		return err
	}
	_, err = run(5*time.Minute, []string{"DOCKER_BUILDKIT=0"}, "docker", "build", "-q",
		"-f", filepath.Join(root, "deploy/docker/Dockerfile"), "-t", image, ctxDir)
	return err
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pick a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// findNode finds the container of a service and builds its client.
func (c *cluster) findNode(t *testing.T, name string) *node {
	t.Helper()
	res, err := docker("ps", "-aq", "--no-trunc", "--filter", "label=com.docker.compose.project="+c.project,
		"--filter", "label=com.docker.compose.service="+name)
	ids := strings.Fields(res.stdout)
	if err != nil || len(ids) != 1 {
		t.Fatalf("container of service %s: %v %q", name, err, res.stdout)
	}
	n := &node{name: name, container: ids[0], url: fmt.Sprintf("http://127.0.0.1:%d", c.ports[name])}
	if n.cl, err = client.New(n.url, client.WithToken(c.token)); err != nil {
		t.Fatal(err)
	}
	return n
}

// add makes n a node of the cluster; remove drops it.
func (c *cluster) add(n *node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes = append(c.nodes, n)
}

func (c *cluster) remove(n *node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes = slices.DeleteFunc(c.nodes, func(m *node) bool { return m == n })
}

// all returns the nodes of the cluster.
func (c *cluster) all() []*node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.nodes)
}

// others returns the nodes other than not.
func (c *cluster) others(not ...*node) []*node {
	var out []*node
	for _, n := range c.all() {
		if !slices.Contains(not, n) {
			out = append(out, n)
		}
	}
	return out
}

// hasModule reports whether every node runs the module id.
func (c *cluster) hasModule(id string) bool { return slices.Contains(c.modules, id) }

// teardown saves the logs of every container if the test failed, then
// removes the project (containers, network, volumes) and the image.
func (c *cluster) teardown() {
	t := c.t
	ids := c.containers()
	if t.Failed() {
		c.saveLogs(ids)
	}
	for _, id := range ids {
		_, _ = docker("unpause", id) // down cannot stop a paused container; most are not paused
	}
	if c.compose4.bin != "" {
		if _, err := c.compose4.run(3*time.Minute, "down", "-v", "--remove-orphans", "-t", "5"); err != nil {
			t.Errorf("compose down: %v", err)
		}
	}
	if left := c.containers(); len(left) > 0 {
		t.Errorf("containers left after compose down: %v", left)
	}
	if c.envDir != "" {
		os.RemoveAll(c.envDir)
	}
	if c.builtBy {
		if _, err := docker("rmi", c.image); err != nil {
			t.Logf("remove image %s: %v", c.image, err)
		}
	}
	if t.Failed() {
		t.Logf("container logs and linearizability visualisations are in %s", c.artifacts)
	} else if os.Getenv("SHOAL_E2E_ARTIFACTS") == "" {
		os.RemoveAll(c.artifacts)
	}
}

// containers lists every container of the project, running or not.
func (c *cluster) containers() []string {
	res, err := docker("ps", "-aq", "--filter", "label=com.docker.compose.project="+c.project)
	if err != nil {
		c.t.Logf("list containers: %v", err)
		return nil
	}
	return strings.Fields(res.stdout)
}

// saveLogs writes the docker logs and inspect output of each container to
// the artifacts directory.
func (c *cluster) saveLogs(ids []string) {
	for _, id := range ids {
		name := id
		if res, err := docker("inspect", "--format", "{{index .Config.Labels \"com.docker.compose.service\"}}", id); err == nil {
			name = strings.TrimSpace(res.stdout)
		}
		res, err := run(60*time.Second, nil, "docker", "logs", "--timestamps", id)
		if err != nil {
			c.t.Logf("docker logs %s: %v", name, err)
		}
		// The agent logs to stderr and prints one line to stdout.
		path := filepath.Join(c.artifacts, name+".log")
		if err := os.WriteFile(path, []byte(res.stdout+res.stderr), 0o644); err != nil {
			c.t.Logf("save logs of %s: %v", name, err)
		}
		if res, err := docker("inspect", id); err == nil {
			_ = os.WriteFile(filepath.Join(c.artifacts, name+".inspect.json"), []byte(res.stdout), 0o644)
		}
	}
	c.t.Logf("saved the logs of %d containers in %s", len(ids), c.artifacts)
}

// Faults and actions on one node. Each is logged with the time, so that
// the test log reads as the story of the run.

func (c *cluster) do(t *testing.T, what string, n *node, args ...string) {
	t.Helper()
	start := time.Now()
	if _, err := docker(args...); err != nil {
		t.Fatalf("%s %s: %v", what, n, err)
	}
	t.Logf("%s %s (%v)", what, n, time.Since(start).Round(time.Millisecond))
}

// kill SIGKILLs the node's container and waits until it has stopped.
func (c *cluster) kill(t *testing.T, n *node) {
	t.Helper()
	c.do(t, "docker kill", n, "kill", n.container)
	eventually(t, 20*time.Second, n.name+" stopped", func() error {
		if c.running(n) {
			return fmt.Errorf("%s still running", n)
		}
		return nil
	})
}

// start starts a stopped container again (same volume, same published
// port; possibly a new address on the network).
func (c *cluster) start(t *testing.T, n *node) {
	t.Helper()
	c.do(t, "docker start", n, "start", n.container)
}

// restart stops the node with SIGTERM (30 s grace, as in the compose file)
// and starts it again.
func (c *cluster) restart(t *testing.T, n *node) {
	t.Helper()
	c.do(t, "docker restart", n, "restart", "-t", "30", n.container)
}

func (c *cluster) pause(t *testing.T, n *node) {
	t.Helper()
	c.do(t, "docker pause", n, "pause", n.container)
}

func (c *cluster) unpause(t *testing.T, n *node) {
	t.Helper()
	c.do(t, "docker unpause", n, "unpause", n.container)
}

// disconnect cuts the node off the project's network: it can reach no
// other node, and its published port does not answer.
func (c *cluster) disconnect(t *testing.T, n *node) {
	t.Helper()
	c.do(t, "docker network disconnect", n, "network", "disconnect", c.network, n.container)
}

// connect puts the node back on the network under its service name, as
// compose attached it, so that the others' --join by name finds it again.
func (c *cluster) connect(t *testing.T, n *node) {
	t.Helper()
	c.do(t, "docker network connect", n, "network", "connect", "--alias", n.name, c.network, n.container)
}

// sideDoor attaches n to a network of its own, which no other node is on,
// and returns a client that reaches n's API there from this host (a node
// cut off by disconnect cannot be reached through its published port).
// closeDoor detaches n and removes the network; it is also registered as
// a cleanup.
func (c *cluster) sideDoor(t *testing.T, n *node) (cl *client.Client, closeDoor func()) {
	t.Helper()
	side := c.project + "_side"
	if _, err := docker("network", "create", "--label", "shoal-e2e="+c.project, side); err != nil {
		t.Fatalf("create network %s: %v", side, err)
	}
	var once sync.Once
	closeDoor = func() {
		once.Do(func() {
			_, _ = docker("network", "disconnect", "-f", side, n.container)
			if _, err := docker("network", "rm", side); err != nil {
				t.Errorf("remove network %s: %v", side, err)
			}
		})
	}
	t.Cleanup(closeDoor)
	c.do(t, "docker network connect (side door)", n, "network", "connect", side, n.container)
	res, err := docker("inspect", "--format", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).IPAddress}}", side), n.container)
	ip := strings.TrimSpace(res.stdout)
	if err != nil || net.ParseIP(ip) == nil {
		t.Fatalf("address of %s on %s: %q %v", n, side, ip, err)
	}
	if cl, err = client.New("http://"+net.JoinHostPort(ip, "7480"), client.WithToken(c.token)); err != nil {
		t.Fatal(err)
	}
	return cl, closeDoor
}

// running reports whether the node's container runs (paused counts).
func (c *cluster) running(n *node) bool {
	res, err := docker("inspect", "--format", "{{.State.Running}}", n.container)
	return err == nil && strings.TrimSpace(res.stdout) == "true"
}

// health returns Docker's health status of the node's container.
func (c *cluster) health(n *node) (string, error) {
	res, err := docker("inspect", "--format", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", n.container)
	return strings.TrimSpace(res.stdout), err
}

// exec runs the shoal CLI inside the node's container. The container's
// environment supplies SHOAL_TOKEN and SHOAL_ADDR (its own API on
// 127.0.0.1), so this reaches a node that is cut off from the network.
func (c *cluster) exec(n *node, args ...string) (cmdResult, error) {
	return run(40*time.Second, nil, "docker", append([]string{"exec", n.container, "/shoal"}, args...)...)
}

// Cluster state.

// reqTimeout bounds every status and readiness request of the harness: a
// paused node accepts connections but never answers.
const reqTimeout = 3 * time.Second

func (n *node) status() (client.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
	defer cancel()
	st, err := n.cl.Status(ctx)
	if err != nil {
		return st, fmt.Errorf("%s: %w", n, err)
	}
	return st, nil
}

func (n *node) ready() error {
	ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
	defer cancel()
	if err := n.cl.Ready(ctx); err != nil {
		return fmt.Errorf("%s: %w", n, err)
	}
	return nil
}

// waitReady waits until the node answers ready.
func (c *cluster) waitReady(t *testing.T, n *node, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, n.name+" ready", n.ready)
}

// findLeader returns the node among that every node of among names leader
// and that says it leads, or an error.
func findLeader(among []*node) (*node, error) {
	var leader *node
	name := ""
	for _, n := range among {
		st, err := n.status()
		if err != nil {
			return nil, err
		}
		if st.Leader == "" || (name != "" && st.Leader != name) {
			return nil, fmt.Errorf("%s names leader %q, another node %q", n, st.Leader, name)
		}
		name = st.Leader
		if st.Node == name {
			if st.Raft.State != "leader" {
				return nil, fmt.Errorf("%s is named leader but is %s", n, st.Raft.State)
			}
			leader = n
		}
	}
	if leader == nil {
		return nil, fmt.Errorf("the leader %q is not among %v", name, among)
	}
	return leader, nil
}

// leader waits until the nodes among agree on a leader among them.
func (c *cluster) leader(t *testing.T, timeout time.Duration, among ...*node) *node {
	t.Helper()
	if len(among) == 0 {
		among = c.all()
	}
	var l *node
	eventually(t, timeout, fmt.Sprintf("one leader among %v", among), func() (err error) {
		l, err = findLeader(among)
		return err
	})
	return l
}

// raftHealthy checks that every node is ready, all agree on one leader,
// and the servers are exactly the nodes, with an odd voter set of
// min(5, nodes) (the default --raft-voters; a fourth node is a
// non-voter). It returns the leader.
func raftHealthy(nodes []*node) (*node, error) {
	var names []string
	for _, n := range nodes {
		names = append(names, n.name)
	}
	slices.Sort(names)
	for _, n := range nodes {
		if err := n.ready(); err != nil {
			return nil, err
		}
	}
	l, err := findLeader(nodes)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		st, err := n.status()
		if err != nil {
			return nil, err
		}
		servers := slices.Sorted(slices.Values(append(slices.Clone(st.Raft.Voters), st.Raft.NonVoters...)))
		wantVoters := min(5, len(names))
		if wantVoters%2 == 0 {
			wantVoters--
		}
		if !slices.Equal(servers, names) || len(st.Raft.Voters) != wantVoters {
			return nil, fmt.Errorf("%s: voters %v non-voters %v, want the servers %v with %d voters", n, st.Raft.Voters, st.Raft.NonVoters, names, wantVoters)
		}
	}
	return l, nil
}

// gossipWhole checks that every node sees every node alive in gossip.
func gossipWhole(nodes []*node) error {
	for _, n := range nodes {
		st, err := n.status()
		if err != nil {
			return err
		}
		if st.Members != len(nodes) {
			return fmt.Errorf("%s sees %d alive members, want %d", n, st.Members, len(nodes))
		}
	}
	return nil
}

// waitHealthy waits until every node is ready, all agree on one leader,
// the voters are exactly the nodes, and every node sees every other alive
// in gossip. It returns the leader.
func (c *cluster) waitHealthy(t *testing.T, timeout time.Duration) *node {
	t.Helper()
	nodes := c.all()
	var l *node
	eventually(t, timeout, "a healthy cluster", func() (err error) {
		if l, err = raftHealthy(nodes); err != nil {
			return err
		}
		return gossipWhole(nodes)
	})
	return l
}

// gossipRejoinBound is how long gossip may take to become whole again by
// itself once a partition has healed.
const gossipRejoinBound = 45 * time.Second

// heal reconnects a node cut off by disconnect and waits until Raft is
// whole again (every node ready, one leader, the same voters). Then, in
// the subtest GossipRejoins, it waits up to gossipRejoinBound for every
// node to see every other alive in gossip by itself; if that does not
// happen the subtest fails, and heal makes the node join the others
// explicitly (shoal join, what an operator would do) so that the suite
// can go on. It returns the leader.
func (c *cluster) heal(t *testing.T, n *node) *node {
	t.Helper()
	c.connect(t, n)
	healedAt := time.Now()
	nodes := c.all()
	var l *node
	eventually(t, 60*time.Second, "raft whole again after the partition", func() (err error) {
		l, err = raftHealthy(nodes)
		return err
	})
	t.Logf("raft whole again %v after healing; %s leads", time.Since(healedAt).Round(time.Millisecond), l)
	whole := t.Run("GossipRejoins", func(t *testing.T) {
		if err := waitFor(gossipRejoinBound, func() error { return gossipWhole(nodes) }); err != nil {
			t.Errorf("gossip is still split %v after the partition healed: %v", time.Since(healedAt).Round(time.Millisecond), err)
		} else {
			t.Logf("gossip whole again %v after healing", time.Since(healedAt).Round(time.Millisecond))
		}
	})
	if !whole {
		var seeds []string
		for _, o := range c.others(n) {
			seeds = append(seeds, o.name+":7482")
		}
		if res, err := c.exec(n, append([]string{"join"}, seeds...)...); err != nil {
			t.Fatalf("shoal join in %s: %v", n, err)
		} else {
			t.Logf("made %s join %v by hand: %s", n, seeds, strings.TrimSpace(res.stdout))
		}
	}
	return c.waitHealthy(t, 60*time.Second)
}

// waitFor polls f until it returns nil or timeout passes, and returns f's
// last error then. The pause between polls grows to 100 ms; it paces the
// polling and never stands in for waiting on an event.
func waitFor(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	pause := 10 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(pause)
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// eventually is waitFor that fails the test with what and f's last error.
func eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	if err := waitFor(timeout, f); err != nil {
		t.Fatalf("%s: not done after %v: %v", what, timeout, err)
	}
}

// readLog reads a whole log from a node's local state, page by page. A log
// that does not exist is empty.
func readLog(n *node, name string) ([]client.LogEntry, error) {
	var all []client.LogEntry
	from := uint64(1)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		page, err := n.cl.Read(ctx, name, from, 1000, false)
		cancel()
		if errors.Is(err, client.ErrLogNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		if len(page.Entries) == 0 {
			return all, nil
		}
		all = append(all, page.Entries...)
		from = page.Next
	}
}

// sameLogEverywhere waits until every node holds the same entries of the
// log and returns them.
func (c *cluster) sameLogEverywhere(t *testing.T, name string, timeout time.Duration) []client.LogEntry {
	t.Helper()
	var first []client.LogEntry
	eventually(t, timeout, "every node holds the same log "+name, func() error {
		nodes := c.all()
		for i, n := range nodes {
			entries, err := readLog(n, name)
			if err != nil {
				return err
			}
			if i == 0 {
				first = entries
				continue
			}
			if len(entries) != len(first) {
				return fmt.Errorf("%s holds %d entries, %s %d", n, len(entries), nodes[0], len(first))
			}
			for j := range entries {
				a, b := first[j], entries[j]
				if a.Index != b.Index || a.ID != b.ID || string(a.Data) != string(b.Data) {
					return fmt.Errorf("entry %d: %s holds %d/%s, %s holds %d/%s", j, nodes[0], a.Index, a.ID, n, b.Index, b.ID)
				}
			}
		}
		return nil
	})
	return first
}

// statusJSON decodes the JSON output of `shoal status --json`.
func statusJSON(out string) (client.Status, error) {
	var st client.Status
	err := json.Unmarshal([]byte(out), &st)
	return st, err
}
