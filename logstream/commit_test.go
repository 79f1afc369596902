package logstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"shoal/internal/httpjson"
	"shoal/modules"
)

func onePublish(log, id, data string) []byte {
	return encodeAppend(appendCmd{log: log, maxEntries: 1000, dedupWindow: time.Minute,
		entries: []newEntry{{id: id, data: []byte(data)}}})
}

// gatedApply applies through a test node, but every command waits at a
// gate until the test opens it, so publishes pile up behind the flushers.
type gatedApply struct {
	n    *testNode
	gate chan struct{}
	mu   sync.Mutex
	held int    // publishes carried by commands waiting at the gate
	ops  []byte // the op of every command applied
}

func (g *gatedApply) apply(ctx context.Context, op byte, payload []byte) (modules.Applied, error) {
	carried := 1
	if op == opAppendGroups {
		parts, err := decodeGroups(payload, 0)
		if err != nil {
			return modules.Applied{}, err
		}
		carried = len(parts)
	}
	g.mu.Lock()
	g.held += carried
	g.mu.Unlock()
	<-g.gate
	g.mu.Lock()
	g.ops = append(g.ops, op)
	g.mu.Unlock()
	return g.n.apply(op, payload)
}

func TestCommitter_CoalescesConcurrentPublishes(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	g := &gatedApply{n: n, gate: make(chan struct{})}
	c := newCommitter(g.apply)
	var openGate sync.Once
	open := func() { openGate.Do(func() { close(g.gate) }) }
	defer func() {
		open() // never leave flushers stuck, even when the test fails
		c.stop(context.Background())
	}()

	const publishes = 40
	outs := make([]publishOutcome, publishes)
	var wg sync.WaitGroup
	for i := range publishes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// ids 0 and 1 twice each: duplicates, possibly inside one command.
			outs[i] = c.submit(context.Background(), onePublish("orders", fmt.Sprint("id-", i%(publishes-2)), fmt.Sprint(i)))
		}()
	}
	// Wait until every publish is queued or held at the gate.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		queued := len(c.queue)
		c.mu.Unlock()
		g.mu.Lock()
		held := g.held
		g.mu.Unlock()
		if queued+held == publishes {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d publishes queued and %d held, want %d in all", queued, held, publishes)
		}
		time.Sleep(time.Millisecond) // polling counters the test itself drives
	}
	open()
	wg.Wait()
	indexes := map[uint64]string{}
	dups := 0
	for i, o := range outs {
		if o.err != nil {
			t.Fatalf("publish %d: %v", i, o.err)
		}
		if len(o.res.indexes) != 1 {
			t.Fatalf("publish %d: %d results", i, len(o.res.indexes))
		}
		id := fmt.Sprint("id-", i%(publishes-2))
		if o.res.duplicates[0] {
			dups++
		}
		if other, ok := indexes[o.res.indexes[0]]; ok && other != id {
			t.Fatalf("index %d given to %s and %s", o.res.indexes[0], other, id)
		}
		indexes[o.res.indexes[0]] = id
	}
	if dups != 2 || len(indexes) != publishes-2 {
		t.Fatalf("got %d duplicates and %d distinct indexes, want 2 and %d", dups, len(indexes), publishes-2)
	}
	for idx := uint64(1); idx <= publishes-2; idx++ {
		if _, ok := indexes[idx]; !ok {
			t.Fatalf("log index %d is missing: indexes are not contiguous", idx)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.ops) >= publishes {
		t.Fatalf("%d commands for %d publishes: nothing was coalesced", len(g.ops), publishes)
	}
	grouped := false
	for _, op := range g.ops {
		grouped = grouped || op == opAppendGroups
	}
	if !grouped {
		t.Fatalf("no group command among %v", g.ops)
	}
}

func TestCommitter_ApplyErrorReachesEveryPublish(t *testing.T) {
	noLeader := httpjson.Errorf(503, "no_leader", "no leader")
	c := newCommitter(func(context.Context, byte, []byte) (modules.Applied, error) {
		return modules.Applied{}, noLeader
	})
	defer c.stop(context.Background())
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out := c.submit(context.Background(), onePublish("l", fmt.Sprint(i), "1")); !errors.Is(out.err, noLeader) {
				t.Errorf("publish %d: got %v, want no_leader", i, out.err)
			}
		}()
	}
	wg.Wait()
}

func TestCommitter_StopRefusesNewPublishes(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	c := newCommitter(func(ctx context.Context, op byte, payload []byte) (modules.Applied, error) {
		return n.apply(op, payload)
	})
	if out := c.submit(context.Background(), onePublish("l", "a", "1")); out.err != nil {
		t.Fatal(out.err)
	}
	if err := c.stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out := c.submit(context.Background(), onePublish("l", "b", "1")); !errors.Is(out.err, httpjson.ErrShuttingDown) {
		t.Fatalf("got %v, want shutting_down", out.err)
	}
}

func TestGroups_ApplyLikeSeparateCommands(t *testing.T) {
	grouped := newTestNode(t, DefaultConfig())
	separate := newTestNode(t, DefaultConfig())
	parts := [][]byte{
		onePublish("a", "x", "1"),
		onePublish("b", "y", "2"),
		onePublish("a", "x", "3"), // duplicate of the first
		onePublish("a", "", "4"),
	}
	applied, err := grouped.apply(opAppendGroups, encodeGroups(parts))
	if err != nil {
		t.Fatal(err)
	}
	results, err := decodeGroups(applied.Result, len(parts))
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range parts {
		want, err := separate.apply(opAppend, p)
		if err != nil {
			t.Fatal(err)
		}
		if string(results[i]) != string(want.Result) {
			t.Fatalf("group %d: result %x, separately %x", i, results[i], want.Result)
		}
	}
}

func TestGroups_MalformedGroupChangesNothing(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	bad := encodeGroups([][]byte{onePublish("a", "x", "1"), []byte("garbage")})
	if _, err := n.apply(opAppendGroups, bad); !errors.Is(err, ErrMalformedCommand) {
		t.Fatalf("got %v, want a malformed command", err)
	}
	n.log.mu.RLock()
	defer n.log.mu.RUnlock()
	if len(n.log.st.logs) != 0 {
		t.Fatal("a group command with a malformed group changed the state")
	}
}

func FuzzDecodeGroups(f *testing.F) {
	f.Add(encodeGroups([][]byte{onePublish("a", "x", "1"), onePublish("b", "", `{"k":[1,2]}`)}))
	f.Add([]byte{0})
	f.Add([]byte{2, 1, 0, 200})
	f.Fuzz(func(t *testing.T, data []byte) {
		parts, err := decodeGroups(data, 0)
		if err != nil {
			return
		}
		// Varints may come in non-minimal forms, so compare what decodes.
		again, err := decodeGroups(encodeGroups(parts), len(parts))
		if err != nil {
			t.Fatalf("re-encoded groups of %x do not decode: %v", data, err)
		}
		for i := range parts {
			if string(again[i]) != string(parts[i]) {
				t.Fatalf("group %d changed in a round trip: %x, then %x", i, parts[i], again[i])
			}
		}
		for _, p := range parts {
			_, _ = decodeAppend(p) // must not panic
		}
	})
}
