//go:build unix

package main

// This file holds the publishing clients of the crash test in main_test.go
// and the checker of what they saw against the log the nodes hold.

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"
)

// ack is one acknowledged publish: the id and the index the node answered.
type ack struct {
	id    string
	index uint64
}

// clientHistory is what one sequential publishing client saw: its
// acknowledged publishes in the order it made them, and the id it was
// still retrying when it gave up ("" if none).
type clientHistory struct {
	acked   []ack
	pending string
}

// checkPublished checks a log read in full against the histories of
// clients that each published one entry at a time: every acknowledged id
// exactly once, at the index its acknowledgement gave, and after the
// client's previous publish; a pending id at most once; nothing else.
func checkPublished(clients []clientHistory, entries []logEntry) error {
	byID := map[string][]uint64{}
	for i, e := range entries {
		if i > 0 && e.Index != entries[i-1].Index+1 {
			return fmt.Errorf("index %d follows index %d", e.Index, entries[i-1].Index)
		}
		byID[e.ID] = append(byID[e.ID], e.Index)
	}
	for _, c := range clients {
		var prev uint64
		for _, a := range c.acked {
			got := byID[a.id]
			switch {
			case len(got) == 0:
				return fmt.Errorf("acknowledged id %s (index %d) is missing", a.id, a.index)
			case len(got) > 1:
				return fmt.Errorf("acknowledged id %s is stored %d times, at indexes %v", a.id, len(got), got)
			case got[0] != a.index:
				return fmt.Errorf("acknowledged id %s is at index %d, acknowledged as %d", a.id, got[0], a.index)
			case a.index <= prev:
				return fmt.Errorf("id %s was acknowledged at index %d, not after the same client's previous publish at %d", a.id, a.index, prev)
			}
			prev = a.index
			delete(byID, a.id)
		}
		if got := byID[c.pending]; c.pending != "" && len(got) > 1 {
			return fmt.Errorf("unacknowledged id %s is stored %d times", c.pending, len(got))
		}
		delete(byID, c.pending)
	}
	if len(byID) > 0 {
		ids := slices.Sorted(maps.Keys(byID))
		return fmt.Errorf("%d ids were never published, such as %q at indexes %v", len(ids), ids[0], byID[ids[0]])
	}
	return nil
}

// TestCheckPublished_Control proves that checkPublished catches the
// failures it exists for: a history it must reject for each kind.
func TestCheckPublished_Control(t *testing.T) {
	entry := func(i uint64, id string) logEntry { return logEntry{Index: i, ID: id} }
	clients := []clientHistory{{acked: []ack{{"a", 1}, {"c", 3}}, pending: "d"}, {acked: []ack{{"b", 2}}}}
	good := []logEntry{entry(1, "a"), entry(2, "b"), entry(3, "c")}
	if err := checkPublished(clients, good); err != nil {
		t.Fatalf("a correct history: %v", err)
	}
	if err := checkPublished(clients, append(slices.Clone(good), entry(4, "d"))); err != nil {
		t.Fatalf("a correct history with the pending id stored: %v", err)
	}
	for name, entries := range map[string][]logEntry{
		"lost":          {entry(1, "a"), entry(2, "c")},
		"duplicate":     {entry(1, "a"), entry(2, "b"), entry(3, "b"), entry(4, "c")},
		"moved":         {entry(1, "b"), entry(2, "a"), entry(3, "c")},
		"invented":      {entry(1, "a"), entry(2, "b"), entry(3, "c"), entry(4, "x")},
		"gap":           {entry(1, "a"), entry(2, "b"), entry(4, "c")},
		"pending twice": {entry(1, "a"), entry(2, "b"), entry(3, "c"), entry(4, "d"), entry(5, "d")},
	} {
		if err := checkPublished(clients, entries); err == nil {
			t.Errorf("%s: checkPublished accepted %v", name, entries)
		}
	}
	reordered := []clientHistory{{acked: []ack{{"a", 2}, {"b", 1}}}}
	if err := checkPublished(reordered, []logEntry{entry(1, "b"), entry(2, "a")}); err == nil {
		t.Errorf("a client's publishes stored out of order: accepted")
	}
}

// publisher runs clients that each publish entries with ids c<k>-0001,
// c<k>-0002, ... to one log, one at a time, round-robin over the running
// nodes; a failed publish is retried with the same id on the next node
// until it is acknowledged.
type publisher struct {
	nodes []*agentProc
	log   string
	stop  chan struct{}
	wg    sync.WaitGroup

	mu       sync.Mutex
	clients  []clientHistory
	failed   int // failed attempts, each retried
	dups     int // retries answered "duplicate": an earlier attempt had committed
	stopOnce sync.Once
}

func startPublisher(nodes []*agentProc, log string, clients int) *publisher {
	p := &publisher{nodes: nodes, log: log, stop: make(chan struct{}), clients: make([]clientHistory, clients)}
	for k := range clients {
		p.wg.Add(1)
		go p.run(k)
	}
	return p
}

func (p *publisher) run(k int) {
	defer p.wg.Done()
	next := k
	for i := 1; ; i++ {
		select {
		case <-p.stop:
			return
		default:
		}
		id := fmt.Sprintf("c%d-%04d", k, i)
		var giveUp time.Time // set once stopped: finish this id, but bounded
		for attempt := 0; ; attempt++ {
			var a *agentProc
			for range p.nodes {
				a = p.nodes[next%len(p.nodes)]
				next++
				if a.running() {
					break
				}
			}
			var res struct {
				Index     uint64 `json:"index"`
				Duplicate bool   `json:"duplicate"`
			}
			err := doJSON("POST", a.url()+"/v1/logs/"+p.log, map[string]any{"id": id, "data": map[string]int{"client": k, "i": i}}, &res)
			p.mu.Lock()
			if err == nil {
				p.clients[k].acked = append(p.clients[k].acked, ack{id: id, index: res.Index})
				if res.Duplicate && attempt > 0 {
					p.dups++
				}
				p.mu.Unlock()
				break
			}
			p.failed++
			p.mu.Unlock()
			select {
			case <-p.stop:
				if giveUp.IsZero() {
					giveUp = time.Now().Add(30 * time.Second)
				} else if time.Now().After(giveUp) {
					p.mu.Lock()
					p.clients[k].pending = id
					p.mu.Unlock()
					return
				}
			default:
			}
			time.Sleep(20 * time.Millisecond) // paces retries against a node that is down
		}
	}
}

// count returns how many publishes were acknowledged so far.
func (p *publisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.clients {
		n += len(c.acked)
	}
	return n
}

func (p *publisher) failures() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

// halt stops the clients once each has its current id acknowledged (or
// given up after 30 s of failures) and returns their histories.
func (p *publisher) halt() []clientHistory {
	p.stopOnce.Do(func() { close(p.stop) })
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]clientHistory, len(p.clients))
	for k, c := range p.clients {
		out[k] = clientHistory{acked: slices.Clone(c.acked), pending: c.pending}
	}
	return out
}
