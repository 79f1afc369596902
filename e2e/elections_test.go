//go:build e2e

package e2e

// This file holds the check of Raft's first guarantee, at most one leader
// per term, over what the nodes themselves logged: hashicorp/raft logs
// "election won" with the term each time a node wins one, and the agent's
// logs keep every line of every run of a container. It also holds the
// step that restarts the whole cluster so that the nodes come back on each
// other's addresses (issue 9), and the follower's write gap while the
// leader is frozen.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// electionLine matches raft's line in the agent's text log format:
// ... msg="election won" ... term=4 tally=2
var electionLine = regexp.MustCompile(`msg="election won".*\bterm=(\d+)\b`)

// electionWins returns, per term, the nodes whose log says they won it.
// logs maps a node name to its whole log.
func electionWins(logs map[string]string) map[uint64][]string {
	wins := map[uint64][]string{}
	names := make([]string, 0, len(logs))
	for name := range logs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		sc := bufio.NewScanner(strings.NewReader(logs[name]))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			m := electionLine.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			term, err := strconv.ParseUint(m[1], 10, 64)
			if err != nil {
				continue
			}
			if !slices.Contains(wins[term], name) {
				wins[term] = append(wins[term], name)
			}
		}
	}
	return wins
}

// checkOneLeaderPerTerm returns an error naming every term two nodes won.
func checkOneLeaderPerTerm(wins map[uint64][]string) error {
	var terms []uint64
	for term, who := range wins {
		if len(who) > 1 {
			terms = append(terms, term)
		}
	}
	if len(terms) == 0 {
		return nil
	}
	slices.Sort(terms)
	var parts []string
	for _, term := range terms {
		parts = append(parts, fmt.Sprintf("term %d won by %s", term, strings.Join(wins[term], " and ")))
	}
	return fmt.Errorf("two leaders in one term: %s", strings.Join(parts, "; "))
}

// nodeLogs reads every node's docker logs (all runs of its container).
func (c *cluster) nodeLogs(t *testing.T) map[string]string {
	t.Helper()
	logs := map[string]string{}
	for _, n := range c.all() {
		res, err := run(60*time.Second, nil, "docker", "logs", n.container)
		if err != nil {
			t.Fatalf("docker logs %s: %v", n, err)
		}
		logs[n.name] = res.stdout + res.stderr
	}
	return logs
}

// checkElections fails the test if the nodes' logs show two leaders in
// one term, and reports how many elections they show.
func (c *cluster) checkElections(t *testing.T) {
	t.Helper()
	wins := electionWins(c.nodeLogs(t))
	if len(wins) == 0 {
		t.Errorf("no \"election won\" line in any node's log: did raft's message change?")
	}
	if err := checkOneLeaderPerTerm(wins); err != nil {
		t.Error(err)
	}
	t.Logf("%d terms were won, each by one node", len(wins))
}

// address returns the node's IP address on the project's network.
func (c *cluster) address(t *testing.T, n *node) string {
	t.Helper()
	res, err := docker("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", n.container)
	if err != nil {
		t.Fatalf("address of %s: %v", n, err)
	}
	return strings.TrimSpace(res.stdout)
}

// testFullRestartShuffled kills every node at once and starts them again
// in an order that hands them each other's addresses (Docker gives out
// addresses in start order), under load: the cluster comes back, no term
// has two leaders, and nothing acknowledged is lost.
func testFullRestartShuffled(t *testing.T, c *cluster) {
	load := startLogLoad(c.all(), "shuffle", publishers)
	defer load.halt()
	load.progress(t, "publishes before the restart", 50, 30*time.Second)

	nodes := c.all()
	before := map[string]string{}
	for _, n := range nodes {
		before[n.name] = c.address(t, n)
	}
	// Start the node with the second-lowest address first, and so on: a
	// rotation of the address order, so each node should get another's.
	byAddr := slices.Clone(nodes)
	slices.SortFunc(byAddr, func(a, b *node) int { return compareIPs(before[a.name], before[b.name]) })
	order := append(slices.Clone(byAddr[1:]), byAddr[0])

	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.kill(t, n)
		}()
	}
	wg.Wait()
	for _, n := range order {
		c.start(t, n)
	}
	moved := 0
	for _, n := range nodes {
		after := c.address(t, n)
		if after != before[n.name] {
			moved++
		}
		t.Logf("%s: %s -> %s", n, before[n.name], after)
	}
	if moved < 2 {
		t.Logf("only %d node(s) changed address: Docker did not hand the addresses out in start order", moved)
	}
	l := c.waitHealthy(t, 60*time.Second)
	t.Logf("healthy again after the full restart; %s leads", l)
	load.progress(t, "publishes after the restart", 50, 30*time.Second)
	load.finish(t, c, false)
	c.checkElections(t)
}

func compareIPs(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range min(len(pa), len(pb)) {
		x, _ := strconv.Atoi(pa[i])
		y, _ := strconv.Atoi(pb[i])
		if x != y {
			return x - y
		}
	}
	return len(pa) - len(pb)
}

// gapWriter publishes through one node only, one entry at a time, each
// retried on that node until acknowledged, and records when each was
// acknowledged: the longest time between two acknowledgements is how long
// writes through that node stalled.
type gapWriter struct {
	n        *node
	log      string
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	mu    sync.Mutex
	acks  []time.Time
	fails int
}

func startGapWriter(n *node, log string) *gapWriter {
	w := &gapWriter{n: n, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 1; ; i++ {
			id := fmt.Sprintf("%s-gap-%05d", log, i)
			for {
				select {
				case <-w.stop:
					return
				default:
				}
				// Longer than the apply timeout (10 s): the node, not this
				// client, decides when to give up on a frozen leader.
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, err := w.n.cl.Publish(ctx, log, id, json.RawMessage(`{"gap":true}`))
				cancel()
				w.mu.Lock()
				if err == nil {
					w.acks = append(w.acks, time.Now())
				} else {
					w.fails++
				}
				w.mu.Unlock()
				if err == nil {
					break
				}
				time.Sleep(retryPause)
			}
		}
	}()
	return w
}

// halt stops the writer; calling it again is harmless.
func (w *gapWriter) halt() {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
}

// count returns how many writes were acknowledged and when the last was.
func (w *gapWriter) count() (int, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.acks) == 0 {
		return 0, time.Time{}
	}
	return len(w.acks), w.acks[len(w.acks)-1]
}

// finish stops the writer and returns its longest gap between two
// acknowledgements within [from, to] (including the gaps that span
// them), and how many attempts failed.
func (w *gapWriter) finish(from, to time.Time) (time.Duration, int) {
	w.halt()
	w.mu.Lock()
	defer w.mu.Unlock()
	var worst time.Duration
	for i := 1; i < len(w.acks); i++ {
		if w.acks[i].Before(from) || w.acks[i-1].After(to) {
			continue
		}
		worst = max(worst, w.acks[i].Sub(w.acks[i-1]))
	}
	return worst, w.fails
}
