//go:build unix

package main

// The tests in this file run the shoal binary itself as OS processes, the
// way an operator does: agents started from flags and SHOAL_* variables,
// stopped with signals, SIGKILLed and restarted on the same data
// directories, and driven with the CLI and plain HTTP. They cover what the
// in-process clusters cannot: main's flag and environment wiring, signal
// handling and exit codes, and durability across a real process crash.
//
// Every wait polls with a deadline. Every process is killed when its test
// ends (and by the kernel if the test binary dies, on Linux).

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// statusJSON is the part of GET /v1/status the tests read.
type statusJSON struct {
	Node   string `json:"node"`
	Leader string `json:"leader"`
	Raft   struct {
		State  string   `json:"state"`
		Voters []string `json:"voters"`
	} `json:"raft"`
	Members int `json:"members"`
}

// peerJSON is one server of GET /v1/raft/peers.
type peerJSON struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"`
}

// logEntry is one entry of GET /v1/logs/{name}.
type logEntry struct {
	Index uint64          `json:"index"`
	ID    string          `json:"id"`
	Data  json.RawMessage `json:"data"`
}

// procCluster is three agent processes formed with --bootstrap-expect.
type procCluster struct {
	bin   string
	nodes []*agentProc
	// base holds each node's agent arguments without --join and
	// --bootstrap-expect: the command, its addresses, and for n3 its name
	// and data directory (n1 and n2 take theirs from SHOAL_* variables).
	base [][]string
}

func TestAgentProcesses_Cluster(t *testing.T) {
	bin := shoalBinary(t)
	start := time.Now()
	c := startProcCluster(t, bin)
	t.Logf("cluster formed in %v", time.Since(start).Round(time.Millisecond))

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"PublishThroughCLI", c.testPublishThroughCLI},
		{"KillLeaderLosesNothing", c.testKillLeaderLosesNothing},
		{"SIGTERMKeepsVoter", c.testSIGTERMKeepsVoter},
		{"SIGTERMLeaderHandsOver", c.testSIGTERMLeaderHandsOver},
		{"Leave", c.testLeave},
	}
	for _, s := range steps {
		stepStart := time.Now()
		if !t.Run(s.name, s.run) {
			t.Fatalf("step %s failed; the later steps need its outcome", s.name)
		}
		t.Logf("%s took %v", s.name, time.Since(stepStart).Round(time.Millisecond))
	}
}

// startProcCluster starts n1, n2 and n3 with --bootstrap-expect 3, n2 and
// n3 joining n1, and checks that they form one cluster by themselves:
// every node ready, one leader seen by all, three voters, three alive
// members. n1 and n2 get their name and data directory from SHOAL_NODE_NAME
// and SHOAL_DATA_DIR; n3 from flags, with SHOAL_* variables that must lose.
func startProcCluster(t *testing.T, bin string) *procCluster {
	t.Helper()
	c := &procCluster{bin: bin}
	ignoredDir := t.TempDir() // n3's SHOAL_DATA_DIR, overridden by --data-dir
	for i := range 3 {
		name := fmt.Sprintf("n%d", i+1)
		dataDir := t.TempDir()
		var env, nameArgs []string
		if i < 2 {
			env = []string{"SHOAL_NODE_NAME=" + name, "SHOAL_DATA_DIR=" + dataDir}
		} else {
			env = []string{"SHOAL_NODE_NAME=env-must-lose", "SHOAL_DATA_DIR=" + ignoredDir}
			nameArgs = []string{"--node-name", name, "--data-dir", dataDir}
		}
		var err error
		for range 5 { // new ports when one was taken before the agent bound it
			p := pickPorts(t)
			a := newAgentProc(t, bin, name, p, env)
			base := append(append([]string{"agent"}, p.addrArgs()...), nameArgs...)
			args := append(slices.Clone(base), "--bootstrap-expect", "3")
			if i > 0 {
				args = append(args, "--join", c.nodes[0].ports.gossipAddr())
			}
			if err = a.startLive(t, args...); err == nil {
				c.nodes = append(c.nodes, a)
				c.base = append(c.base, base)
				break
			}
		}
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
	}

	for _, a := range c.nodes {
		c.waitReady(t, a, 30*time.Second)
		if res := runCLI(t, bin, "health", "--addr", a.url()); res.code != 0 || strings.TrimSpace(res.stdout) != "ready" {
			t.Fatalf("shoal health on %s: %s", a.name, res)
		}
	}

	// shoal status --json: the same leader everywhere, three voters, and
	// each node's own name (n1 and n2 from the environment, n3 from the
	// flag over the environment).
	eventually(t, 20*time.Second, "one leader and three voters in every status", func() error {
		leaders := map[string]bool{}
		for _, a := range c.nodes {
			res := runCLI(t, bin, "status", "--json", "--addr", a.url())
			if res.code != 0 {
				return fmt.Errorf("shoal status on %s: %s", a.name, res)
			}
			var st statusJSON
			if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
				return fmt.Errorf("shoal status --json on %s: %w: %q", a.name, err, res.stdout)
			}
			if st.Node != a.name {
				return fmt.Errorf("node at %s calls itself %q, want %q", a.url(), st.Node, a.name)
			}
			if st.Leader == "" {
				return fmt.Errorf("%s knows no leader", a.name)
			}
			if want := []string{"n1", "n2", "n3"}; !slices.Equal(st.Raft.Voters, want) {
				return fmt.Errorf("%s: voters %v, want %v", a.name, st.Raft.Voters, want)
			}
			if st.Members != 3 {
				return fmt.Errorf("%s counts %d alive members, want 3", a.name, st.Members)
			}
			leaders[st.Leader] = true
		}
		if len(leaders) != 1 {
			return fmt.Errorf("the nodes name different leaders: %v", leaders)
		}
		return nil
	})
	if entries, err := os.ReadDir(ignoredDir); err != nil || len(entries) > 0 {
		t.Fatalf("SHOAL_DATA_DIR was used although --data-dir was given: %v %v", entries, err)
	}

	// shoal members: three alive voters, one of them the leader.
	eventually(t, 20*time.Second, "three alive voters in every member list", func() error {
		for _, a := range c.nodes {
			res := runCLI(t, bin, "members", "--addr", a.url())
			if res.code != 0 {
				return fmt.Errorf("shoal members on %s: %s", a.name, res)
			}
			if err := checkMembersTable(res.stdout, []string{"n1", "n2", "n3"}); err != nil {
				return fmt.Errorf("shoal members on %s: %w\n%s", a.name, err, res.stdout)
			}
		}
		return nil
	})
	return c
}

// checkMembersTable checks the output of shoal members: a header, then one
// alive voter per name in names, exactly one of them marked leader.
func checkMembersTable(out string, names []string) error {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || !slices.Equal(strings.Fields(lines[0]), []string{"NAME", "ADDR", "STATUS", "SUFFRAGE", "LEADER", "PROBLEM"}) {
		return fmt.Errorf("unexpected header %q", lines[0])
	}
	var seen []string
	leaders := 0
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) != 6 || f[5] != "-" {
			return fmt.Errorf("row %q: %d columns, want 6 and no problem", line, len(f))
		}
		if f[2] != "alive" || f[3] != "voter" {
			return fmt.Errorf("row %q: want an alive voter", line)
		}
		if f[4] == "yes" {
			leaders++
		}
		seen = append(seen, f[0])
	}
	slices.Sort(seen)
	if !slices.Equal(seen, names) {
		return fmt.Errorf("members %v, want %v", seen, names)
	}
	if leaders != 1 {
		return fmt.Errorf("%d rows marked leader, want 1", leaders)
	}
	return nil
}

// waitReady polls a node's readiness endpoint until it answers 200.
func (c *procCluster) waitReady(t testing.TB, a *agentProc, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, a.name+" ready", func() error {
		if !a.running() {
			return fmt.Errorf("%s: %w", a.name, errExited)
		}
		return getJSON(a.url()+"/v1/health/ready", nil)
	})
}

// leader waits until every node of among names the same leader, that
// leader is one of among, and it says it leads; it returns the leader.
func (c *procCluster) leader(t testing.TB, timeout time.Duration, among ...*agentProc) *agentProc {
	t.Helper()
	var leader *agentProc
	eventually(t, timeout, "one leader", func() error {
		leader = nil
		name := ""
		for _, a := range among {
			var st statusJSON
			if err := getJSON(a.url()+"/v1/status", &st); err != nil {
				return fmt.Errorf("%s: %w", a.name, err)
			}
			if st.Leader == "" || (name != "" && st.Leader != name) {
				return fmt.Errorf("%s names leader %q, another node %q", a.name, st.Leader, name)
			}
			name = st.Leader
			if st.Node == name {
				if st.Raft.State != "leader" {
					return fmt.Errorf("%s is named leader but is %s", a.name, st.Raft.State)
				}
				leader = a
			}
		}
		if leader == nil {
			return fmt.Errorf("the leader %q is not among the nodes asked", name)
		}
		return nil
	})
	return leader
}

// others returns the nodes other than the given ones.
func (c *procCluster) others(not ...*agentProc) []*agentProc {
	var out []*agentProc
	for _, a := range c.nodes {
		if !slices.Contains(not, a) {
			out = append(out, a)
		}
	}
	return out
}

// restart starts a stopped node again on its data directory and ports,
// joining the others' gossip addresses (it already has Raft state, so it
// needs no --bootstrap-expect), and waits until it is ready.
func (c *procCluster) restart(t testing.TB, a *agentProc) {
	t.Helper()
	var join []string
	for _, o := range c.others(a) {
		join = append(join, o.ports.gossipAddr())
	}
	i := slices.Index(c.nodes, a)
	args := append(slices.Clone(c.base[i]), "--join", strings.Join(join, ","))
	if err := a.startLive(t, args...); err != nil {
		t.Fatalf("restart %s: %v", a.name, err)
	}
	c.waitReady(t, a, 30*time.Second)
}

// raftPeers returns a node's Raft configuration.
func raftPeers(a *agentProc) ([]peerJSON, error) {
	var out struct {
		Peers []peerJSON `json:"peers"`
	}
	if err := getJSON(a.url()+"/v1/raft/peers", &out); err != nil {
		return nil, err
	}
	return out.Peers, nil
}

// readAll reads a whole log from a node's local state, page by page.
func readAll(a *agentProc, name string) ([]logEntry, error) {
	var all []logEntry
	from := uint64(1)
	for {
		var page struct {
			Entries []logEntry `json:"entries"`
			Next    uint64     `json:"next"`
		}
		if err := getJSON(fmt.Sprintf("%s/v1/logs/%s?from=%d&limit=1000", a.url(), name, from), &page); err != nil {
			return nil, fmt.Errorf("%s: %w", a.name, err)
		}
		if len(page.Entries) == 0 {
			return all, nil
		}
		all = append(all, page.Entries...)
		from = page.Next
	}
}

// testPublishThroughCLI publishes with shoal log publish on a follower and
// reads the entry back with shoal log read on the same and another node.
func (c *procCluster) testPublishThroughCLI(t *testing.T) {
	leader := c.leader(t, 30*time.Second, c.nodes...)
	followers := c.others(leader)
	pub, other := followers[0], followers[1]

	res := runCLI(t, c.bin, "log", "publish", "demo", "--id", "a", `{"n":1}`, "--addr", pub.url())
	if res.code != 0 || strings.TrimSpace(res.stdout) != "index 1" {
		t.Fatalf("shoal log publish on follower %s: %s", pub.name, res)
	}
	// The same id again, through another node: deduplicated.
	res = runCLI(t, c.bin, "log", "publish", "demo", "--id", "a", `{"n":2}`, "--addr", other.url())
	if res.code != 0 || strings.TrimSpace(res.stdout) != "index 1 (duplicate)" {
		t.Fatalf("shoal log publish of the same id on %s: %s", other.name, res)
	}

	check := func(a *agentProc) error {
		res := runCLI(t, c.bin, "log", "read", "demo", "--from", "1", "--addr", a.url())
		if res.code != 0 {
			return fmt.Errorf("shoal log read on %s: %s", a.name, res)
		}
		lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
		if len(lines) != 1 {
			return fmt.Errorf("shoal log read on %s: %d lines, want 1:\n%s", a.name, len(lines), res.stdout)
		}
		var e logEntry
		if err := json.Unmarshal([]byte(lines[0]), &e); err != nil {
			return fmt.Errorf("shoal log read on %s: %w: %q", a.name, err, lines[0])
		}
		if e.Index != 1 || e.ID != "a" || string(e.Data) != `{"n":1}` {
			return fmt.Errorf("shoal log read on %s: got %s, want index 1, id a, data {\"n\":1}", a.name, lines[0])
		}
		return nil
	}
	// A follower answers a publish only once it applied it: a read on the
	// same node right after sees it, without waiting.
	if err := check(pub); err != nil {
		t.Fatalf("read-your-write on the publishing follower: %v", err)
	}
	for _, a := range c.nodes {
		eventually(t, 10*time.Second, "the entry on "+a.name, func() error { return check(a) })
	}
}

// testKillLeaderLosesNothing publishes continuously while the leader is
// SIGKILLed and restarted, then checks that every node holds every
// acknowledged entry exactly once.
func (c *procCluster) testKillLeaderLosesNothing(t *testing.T) {
	p := startPublisher(c.nodes, "stress", 4)
	defer p.halt()
	progress := func(what string, n int) {
		t.Helper()
		target := p.count() + n
		eventually(t, 30*time.Second, what, func() error {
			if got := p.count(); got < target {
				return fmt.Errorf("%d publishes acknowledged, want %d (%d failed attempts so far)", got, target, p.failures())
			}
			return nil
		})
	}
	progress("publishes before the kill", 30)

	old := c.leader(t, 30*time.Second, c.nodes...)
	killedAt := time.Now()
	old.kill(t)
	rest := c.others(old)
	nl := c.leader(t, 30*time.Second, rest...)
	t.Logf("SIGKILLed leader %s; %s leads after %v", old.name, nl.name, time.Since(killedAt).Round(time.Millisecond))
	progress("publishes with the leader dead", 30)

	c.restart(t, old)
	t.Logf("%s restarted and ready %v after the kill", old.name, time.Since(killedAt).Round(time.Millisecond))
	progress("publishes after the restart", 30)

	clients := p.halt()
	var pending []string
	for _, c := range clients {
		if c.pending != "" {
			pending = append(pending, c.pending)
		}
	}
	acked := p.count()
	p.mu.Lock()
	failed, dups := p.failed, p.dups
	p.mu.Unlock()
	t.Logf("%d publishes acknowledged by %d clients; %d failed attempts retried, %d retries found the entry committed already; given up: %q",
		acked, len(clients), failed, dups, pending)

	eventually(t, 30*time.Second, "every node holds every acknowledged entry exactly once", func() error {
		var first []logEntry
		for i, a := range c.nodes {
			entries, err := readAll(a, "stress")
			if err != nil {
				return err
			}
			if err := checkPublished(clients, entries); err != nil {
				return fmt.Errorf("%s: %w", a.name, err)
			}
			if i == 0 {
				first = entries
			} else if !slices.EqualFunc(first, entries, sameEntry) {
				return fmt.Errorf("%s and %s hold different entries", c.nodes[0].name, a.name)
			}
		}
		return nil
	})
}

func sameEntry(a, b logEntry) bool {
	return a.Index == b.Index && a.ID == b.ID && string(a.Data) == string(b.Data)
}

// testSIGTERMKeepsVoter stops a follower with SIGTERM: it exits 0, stays a
// voter, and after a restart catches up with what was written meanwhile.
func (c *procCluster) testSIGTERMKeepsVoter(t *testing.T) {
	leader := c.leader(t, 30*time.Second, c.nodes...)
	f := c.others(leader)[0]
	f.signal(t, syscall.SIGTERM)
	if st := f.waitExit(t, 20*time.Second); st.ExitCode() != 0 {
		t.Fatalf("%s after SIGTERM: %s, want exit status 0", f.name, st)
	}

	for _, a := range c.others(f) {
		if err := checkVoters(a, 3, f.name); err != nil {
			t.Fatalf("after %s stopped: %v", f.name, err)
		}
	}

	// The two others still form a majority and take writes.
	res := runCLI(t, c.bin, "log", "publish", "demo", "--id", "while-stopped", `"x"`, "--addr", leader.url())
	if res.code != 0 {
		t.Fatalf("publish while %s is stopped: %s", f.name, res)
	}

	c.restart(t, f)
	eventually(t, 10*time.Second, f.name+" catches up", func() error {
		entries, err := readAll(f, "demo")
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(entries, func(e logEntry) bool { return e.ID == "while-stopped" }) {
			return fmt.Errorf("%s holds %d entries of demo, not the one published while it was stopped", f.name, len(entries))
		}
		return nil
	})
	if err := checkVoters(leader, 3, f.name); err != nil {
		t.Fatalf("after %s restarted: %v", f.name, err)
	}
}

// checkVoters checks that a node's Raft configuration has n voters and
// no non-voter, name among them.
func checkVoters(a *agentProc, n int, name string) error {
	peers, err := raftPeers(a)
	if err != nil {
		return err
	}
	voters := 0
	for _, p := range peers {
		if p.Suffrage == "voter" {
			voters++
		}
	}
	if len(peers) != n || voters != n || !slices.ContainsFunc(peers, func(p peerJSON) bool { return p.ID == name }) {
		return fmt.Errorf("raft peers on %s: %+v, want %d voters including %s", a.name, peers, n, name)
	}
	return nil
}

// testSIGTERMLeaderHandsOver stops the leader with SIGTERM: it exits 0,
// one of the others leads, the stopped node stays a voter, and it comes
// back ready after a restart.
func (c *procCluster) testSIGTERMLeaderHandsOver(t *testing.T) {
	old := c.leader(t, 30*time.Second, c.nodes...)
	stoppedAt := time.Now()
	old.signal(t, syscall.SIGTERM)
	if st := old.waitExit(t, 20*time.Second); st.ExitCode() != 0 {
		t.Fatalf("leader %s after SIGTERM: %s, want exit status 0", old.name, st)
	}
	nl := c.leader(t, 30*time.Second, c.others(old)...)
	t.Logf("leader %s exited %v after SIGTERM; %s leads", old.name, time.Since(stoppedAt).Round(time.Millisecond), nl.name)
	if err := checkVoters(nl, 3, old.name); err != nil {
		t.Fatalf("after the leader stopped: %v", err)
	}
	c.restart(t, old)
}

// testLeave makes a follower leave with shoal leave: its process exits 0 on
// its own and the leader's Raft configuration drops to two servers.
func (c *procCluster) testLeave(t *testing.T) {
	leader := c.leader(t, 30*time.Second, c.nodes...)
	f := c.others(leader)[0]
	res := runCLI(t, c.bin, "leave", "--addr", f.url())
	if res.code != 0 {
		t.Fatalf("shoal leave on %s: %s", f.name, res)
	}
	if st := f.waitExit(t, 30*time.Second); st.ExitCode() != 0 {
		t.Fatalf("%s after shoal leave: %s, want exit status 0", f.name, st)
	}
	eventually(t, 20*time.Second, "the leader drops the node that left", func() error {
		peers, err := raftPeers(leader)
		if err != nil {
			return err
		}
		if len(peers) != 2 || slices.ContainsFunc(peers, func(p peerJSON) bool { return p.ID == f.name }) {
			return fmt.Errorf("raft peers on %s: %+v, want 2 without %s", leader.name, peers, f.name)
		}
		return nil
	})
	for _, a := range c.others(f) {
		if res := runCLI(t, c.bin, "health", "--addr", a.url()); res.code != 0 {
			t.Errorf("shoal health on %s after %s left: %s", a.name, f.name, res)
		}
	}
}

// TestAgentProcesses_Dev runs shoal agent --dev: it becomes ready alone,
// and SIGINT stops it with exit status 0 and removes its temporary data
// directory.
func TestAgentProcesses_Dev(t *testing.T) {
	bin := shoalBinary(t)
	t.Parallel()
	tmp := t.TempDir()
	var a *agentProc
	var err error
	for range 5 {
		p := pickPorts(t)
		a = newAgentProc(t, bin, "dev", p, []string{"TMPDIR=" + tmp})
		if err = a.startLive(t, append([]string{"agent", "--dev"}, p.addrArgs()...)...); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the dev node ready", func() error {
		return getJSON(a.url()+"/v1/health/ready", nil)
	})
	if res := runCLI(t, bin, "health", "--addr", a.url()); res.code != 0 {
		t.Fatalf("shoal health on the dev node: %s", res)
	}
	dirs, err := filepath.Glob(filepath.Join(tmp, "shoal-dev-*"))
	if err != nil || len(dirs) != 1 {
		t.Fatalf("want one shoal-dev-* directory in TMPDIR %s, got %v %v", tmp, dirs, err)
	}

	a.signal(t, syscall.SIGINT)
	if st := a.waitExit(t, 20*time.Second); st.ExitCode() != 0 {
		t.Fatalf("dev node after SIGINT: %s, want exit status 0", st)
	}
	if left, err := os.ReadDir(tmp); err != nil || len(left) > 0 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Fatalf("TMPDIR after the dev node stopped: %v %v, want it empty", names, err)
	}
}

// TestAgentProcesses_BadFlags checks that a misconfigured agent exits at
// once with a non-zero status and says what is wrong.
func TestAgentProcesses_BadFlags(t *testing.T) {
	bin := shoalBinary(t)
	t.Parallel()
	p := pickPorts(t) // so a wrongly started agent binds nothing shared
	for _, tt := range []struct {
		name     string
		args     []string
		env      []string
		wantCode int // -1: any non-zero
		want     string
	}{
		{"no data dir", append([]string{"agent", "--node-name", "x"}, p.addrArgs()...), nil, 2, "--data-dir"},
		{"dev with bootstrap-expect", append([]string{"agent", "--dev", "--bootstrap-expect", "3"}, p.addrArgs()...), nil, 2, "--bootstrap-expect"},
		{"dev with join", append([]string{"agent", "--dev", "--join", "127.0.0.1:1"}, p.addrArgs()...), nil, 2, "--join"},
		{"bad env value", append([]string{"agent", "--dev"}, p.addrArgs()...), []string{"SHOAL_BOOTSTRAP_EXPECT=three"}, 2, "SHOAL_BOOTSTRAP_EXPECT"},
		{"unknown flag", []string{"agent", "--no-such-flag"}, nil, 2, "no-such-flag"},
		{"argument", []string{"agent", "extra"}, nil, 2, `unexpected argument "extra"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			env := append([]string{"TMPDIR=" + tmp}, tt.env...)
			res := runShoal(t, bin, 20*time.Second, env, tt.args...)
			if res.code == 0 || (tt.wantCode > 0 && res.code != tt.wantCode) {
				t.Fatalf("shoal %s: %s\nwant exit status %d", strings.Join(tt.args, " "), res, tt.wantCode)
			}
			if !strings.Contains(res.stderr, tt.want) {
				t.Errorf("shoal %s: stderr %q does not mention %q", strings.Join(tt.args, " "), res.stderr, tt.want)
			}
			if left, _ := os.ReadDir(tmp); len(left) > 0 {
				t.Errorf("shoal %s left %d files in TMPDIR", strings.Join(tt.args, " "), len(left))
			}
		})
	}
}
