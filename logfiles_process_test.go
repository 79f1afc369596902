//go:build unix

package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestAgentProcesses_LogFilesSurviveKillNine publishes without pause to a
// node whose log rolls a segment file every few entries, trims by count
// all the time and takes a Raft snapshot (links to the files) every 100
// commands, and SIGKILLs it at random points, again and again: each time
// it restarts from its snapshot and files, and in the end every
// acknowledged entry still retained is there exactly once at the index its
// acknowledgement gave, and nothing else is.
func TestAgentProcesses_LogFilesSurviveKillNine(t *testing.T) {
	bin := shoalBinary(t)
	t.Parallel()
	p := pickPorts(t)
	a := newAgentProc(t, bin, "n1", p, nil)
	args := append(append([]string{"agent"}, p.addrArgs()...),
		"--node-name", "n1", "--data-dir", t.TempDir(), "--bootstrap-expect", "1",
		"--log-segment-bytes", "4096", "--log-max-entries", "400", "--snapshot-threshold", "100")
	start := func() {
		t.Helper()
		if err := a.startLive(t, args...); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "n1 ready", func() error { return getJSON(a.url()+"/v1/health/ready", nil) })
	}
	start()
	pub := startPublisher([]*agentProc{a}, "crash", 4)
	defer pub.halt()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	const kills = 8
	for round := range kills {
		target := pub.count() + 80 + rng.IntN(120)
		eventually(t, 60*time.Second, fmt.Sprintf("publishes before kill %d", round+1), func() error {
			if got := pub.count(); got < target {
				return fmt.Errorf("%d publishes acknowledged, want %d", got, target)
			}
			return nil
		})
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		a.kill(t)
		start()
	}
	eventually(t, 60*time.Second, "publishes after the last restart", func() error {
		if got := pub.count(); got < 100*kills {
			return fmt.Errorf("%d publishes acknowledged", got)
		}
		return nil
	})
	clients := pub.halt()

	var list struct {
		Logs []struct {
			Name       string `json:"name"`
			FirstIndex uint64 `json:"first_index"`
			LastIndex  uint64 `json:"last_index"`
			Segments   int    `json:"segments"`
		} `json:"logs"`
	}
	if err := getJSON(a.url()+"/v1/logs", &list); err != nil || len(list.Logs) != 1 {
		t.Fatalf("list: %+v %v", list, err)
	}
	info := list.Logs[0]
	var entries []logEntry
	for from := info.FirstIndex; ; {
		var page struct {
			Entries []logEntry `json:"entries"`
			Next    uint64     `json:"next"`
		}
		if err := getJSON(fmt.Sprintf("%s/v1/logs/crash?from=%d&limit=1000", a.url(), from), &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Entries) == 0 {
			break
		}
		entries = append(entries, page.Entries...)
		from = page.Next
	}
	if uint64(len(entries)) != info.LastIndex-info.FirstIndex+1 || len(entries) != 400 {
		t.Fatalf("read %d entries of [%d, %d], want the 400 retained", len(entries), info.FirstIndex, info.LastIndex)
	}
	// Acknowledged entries below the first index were trimmed by
	// retention; the rest must all be there.
	acked := 0
	for i := range clients {
		kept := clients[i].acked[:0]
		for _, ack := range clients[i].acked {
			if ack.index >= info.FirstIndex {
				kept = append(kept, ack)
			}
		}
		acked += len(clients[i].acked)
		clients[i].acked = kept
	}
	if err := checkPublished(clients, entries); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d publishes acknowledged across %d SIGKILLs; the log holds [%d, %d] in %d segment files", acked, kills, info.FirstIndex, info.LastIndex, info.Segments)
}

// TestAgentProcesses_LogOfMillionsStaysSmall fills one log with 2,000,000
// entries of 100 bytes (SHOAL_TEST_LOG_ENTRIES changes the number) on a
// 3-node cluster, SIGKILLs a follower half way and restarts it: it catches
// up and serves the same entries by index as the leader, and no node's
// resident memory ever passes 150 MB (the in-memory log of the previous
// release took 1.3 KB an entry: 2.6 GB).
func TestAgentProcesses_LogOfMillionsStaysSmall(t *testing.T) {
	bin := shoalBinary(t)
	total := 2_000_000
	if s := os.Getenv("SHOAL_TEST_LOG_ENTRIES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 10_000 {
			t.Fatalf("SHOAL_TEST_LOG_ENTRIES=%q: want a number of at least 10000", s)
		}
		total = n
	}
	const batch, maxRSS = 1000, 150 << 20
	c := startProcCluster(t, bin)
	leader := c.leader(t, 30*time.Second, c.nodes...)
	if err := doJSON(http.MethodPut, leader.url()+"/v1/logs/big", map[string]any{"max_entries": 0}, nil); err != nil {
		t.Fatalf("lift the count limit: %v", err)
	}
	follower := c.others(leader)[0]

	var peak atomic.Int64
	sample := func() {
		for _, a := range c.nodes {
			if r := a.current(); r != nil && !r.exited() {
				if rss := processRSS(r.cmd.Process.Pid); rss > peak.Load() {
					peak.Store(rss)
				}
			}
		}
	}
	data := strings.Repeat("x", 98) // a JSON string of 100 bytes
	body := func(from int) map[string]any {
		entries := make([]map[string]any, batch)
		for i := range entries {
			entries[i] = map[string]any{"data": data, "id": ""}
		}
		return map[string]any{"entries": entries}
	}
	const publishers = 4
	publish := func(batches int, nodes []*agentProc) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, publishers)
		for w := range publishers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < batches; i += publishers {
					a := nodes[i%len(nodes)]
					if err := waitFor(30*time.Second, func() error {
						return doJSON(http.MethodPost, a.url()+"/v1/logs/big", body(i), nil)
					}); err != nil {
						errs <- fmt.Errorf("batch %d on %s: %w", i, a.name, err)
						return
					}
					if i%50 == 0 {
						sample()
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	started := time.Now()
	half := total / batch / 2
	publish(half, c.nodes)
	follower.kill(t)
	publish(total/batch-half, c.others(follower))
	c.restart(t, follower)
	t.Logf("published %d entries in %v", total, time.Since(started).Round(time.Second))

	eventually(t, 120*time.Second, follower.name+" caught up", func() error {
		var list struct {
			Logs []struct {
				LastIndex uint64 `json:"last_index"`
			} `json:"logs"`
		}
		if err := getJSON(follower.url()+"/v1/logs", &list); err != nil {
			return err
		}
		if len(list.Logs) != 1 || list.Logs[0].LastIndex != uint64(total) {
			return fmt.Errorf("%s: %+v", follower.name, list.Logs)
		}
		return nil
	})
	sample()
	// The same entries by index on the follower and the others, checked
	// at indexes spread over the log, from both ends of every page.
	for _, from := range []int{1, total / 7, total / 2, total/2 + 1, total - 999} {
		var want []logEntry
		for i, a := range c.nodes {
			var page struct {
				Entries []logEntry `json:"entries"`
			}
			if err := getJSON(fmt.Sprintf("%s/v1/logs/big?from=%d&limit=1000", a.url(), from), &page); err != nil {
				t.Fatal(err)
			}
			if len(page.Entries) == 0 || page.Entries[0].Index != uint64(from) {
				t.Fatalf("%s from %d: %d entries", a.name, from, len(page.Entries))
			}
			if i == 0 {
				want = page.Entries
			} else if !slices.EqualFunc(want, page.Entries, sameEntry) {
				t.Fatalf("%s and %s differ from index %d", c.nodes[0].name, a.name, from)
			}
		}
	}
	if p := peak.Load(); p > maxRSS {
		t.Fatalf("a node's resident memory reached %d MB, want at most %d MB", p>>20, maxRSS>>20)
	}
	t.Logf("peak resident memory of a node: %d MB", peak.Load()>>20)
}

// processRSS is a process's resident set size in bytes, 0 if unknown.
func processRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
