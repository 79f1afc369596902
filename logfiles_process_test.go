//go:build unix

package main

import (
	"fmt"
	"math/rand/v2"
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
