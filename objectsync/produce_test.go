package objectsync

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"shoal/internal/testcluster"
	"shoal/objectsync/internal/protocol"
)

// waitAny returns the next frame of any of conns, and which one sent it.
func waitAny(t *testing.T, conns ...*rawConn) (protocol.Message, int) {
	t.Helper()
	tm := time.NewTimer(60 * time.Second)
	defer tm.Stop()
	for {
		for i, c := range conns {
			select {
			case m := <-c.frames:
				return m, i
			default:
			}
		}
		select {
		case <-tm.C:
			t.Fatalf("no frame within 60s")
		case <-time.After(5 * time.Millisecond): // polling several channels
		}
	}
}

// noFrameBefore checks that c sends nothing before the answer to a fence.
func (r *rawConn) noFrameBefore(fence string) {
	r.t.Helper()
	r.send(`{"type":"nonsense","ref":"` + fence + `"}`)
	if m := r.next(); m.Ref != fence {
		r.t.Fatalf("got %+v before the fence", m)
	}
}

func leaderStatus(t *testing.T, c *testcluster.Cluster) Status {
	t.Helper()
	var out struct {
		ObjectSync Status `json:"objectsync"`
	}
	r := must(t, c.Leader(), "GET", "/v1/status", "", nil, 200)
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatalf("status %s: %v", r.body, err)
	}
	return out.ObjectSync
}

// TestCluster_Producers: the first subscriber anywhere makes the leader
// ask exactly one producer; bumping a dependency re-produces; a producer
// that dies mid-production is replaced by another; an object nobody
// wants is dropped after the linger.
func TestCluster_Producers(t *testing.T) {
	cfg := testConfig()
	cfg.Linger = time.Second
	cfg.ProduceTimeout = 3 * time.Second
	c := newCluster(t, cfg)
	pa, pb := rawDial(t, c.Node(0)), rawDial(t, c.Node(2))
	pa.send(`{"type":"produce","patterns":["prod-*"]}`)
	pb.send(`{"type":"produce","patterns":["prod-*"]}`)
	testcluster.Eventually(t, 10*time.Second, func() error {
		if s := leaderStatus(t, c); s.Known != 2 {
			return fmt.Errorf("the leader knows %d producers", s.Known)
		}
		return nil
	})
	prods := []*rawConn{pa, pb}

	sub := rawDial(t, c.Node(1))
	sub.send(`{"type":"subscribe","id":"prod-1"}`)
	m, i := waitAny(t, pa, pb)
	if m.Type != protocol.TypeProduce || m.ID != "prod-1" {
		t.Fatalf("got %+v, want produce prod-1", m)
	}
	prods[i].send(`{"type":"produced","id":"prod-1","version":{"dep-x":0},"object":{"v":0}}`)
	if m := sub.next(); m.Type != protocol.TypeObject || string(m.Object) != `{"v":0}` {
		t.Fatalf("got %+v, want the produced object", m)
	}
	pa.noFrameBefore("fence-a")
	pb.noFrameBefore("fence-b") // exactly one produce

	// A dependency moves, five times in a row: re-produced once
	// (requests for one object are coalesced while one is outstanding).
	for range 5 {
		must(t, c.Node(2), "POST", "/v1/objects/deps/dep-x/bump", "", nil, 200)
	}
	m, i = waitAny(t, pa, pb)
	if m.Type != protocol.TypeProduce || m.ID != "prod-1" {
		t.Fatalf("got %+v, want produce prod-1 again", m)
	}
	pa.noFrameBefore("fence-a2")
	pb.noFrameBefore("fence-b2")
	prods[i].send(`{"type":"produced","id":"prod-1","version":{"dep-x":5},"object":{"v":5}}`)
	if m := sub.next(); m.Type != protocol.TypeObject || string(m.Version) != `{"dep-x":5}` {
		t.Fatalf("got %+v, want the re-produced object", m)
	}

	// The producer asked dies before answering: the other is asked.
	sub.send(`{"type":"subscribe","id":"prod-2"}`)
	m, i = waitAny(t, pa, pb)
	if m.Type != protocol.TypeProduce || m.ID != "prod-2" {
		t.Fatalf("got %+v, want produce prod-2", m)
	}
	_ = prods[i].c.CloseNow()
	other := prods[1-i]
	if m := other.next(); m.Type != protocol.TypeProduce || m.ID != "prod-2" {
		t.Fatalf("got %+v, want produce prod-2 from the other producer", m)
	}
	other.send(`{"type":"produced","id":"prod-2","version":1,"object":{"two":true}}`)
	if m := sub.next(); m.Type != protocol.TypeObject || m.ID != "prod-2" {
		t.Fatalf("got %+v, want prod-2", m)
	}

	// A producer that fails is asked again after a back-off.
	sub.send(`{"type":"subscribe","id":"prod-3"}`)
	if m := other.next(); m.Type != protocol.TypeProduce || m.ID != "prod-3" {
		t.Fatalf("got %+v, want produce prod-3", m)
	}
	other.send(`{"type":"failed","id":"prod-3"}`)
	if m := other.next(); m.Type != protocol.TypeProduce || m.ID != "prod-3" {
		t.Fatalf("got %+v, want produce prod-3 again", m)
	}
	other.send(`{"type":"produced","id":"prod-3","version":1,"object":{}}`)
	if m := sub.next(); m.Type != protocol.TypeObject || m.ID != "prod-3" {
		t.Fatalf("got %+v, want prod-3", m)
	}

	// Nobody wants prod-1 any more: dropped after the linger.
	sub.send(`{"type":"unsubscribe","id":"prod-1"}`)
	testcluster.Eventually(t, 20*time.Second, func() error {
		if r := send("GET", c.Node(0).URL()+"/v1/objects/prod-1", "", nil); r.status != 404 {
			return fmt.Errorf("prod-1 still there: %s", r)
		}
		return nil
	})
	// prod-2 is still wanted: kept.
	must(t, c.Node(0), "GET", "/v1/objects/prod-2", "", nil, 200)
}

// TestCluster_MasterProducesOnDemand: Seapig's second master style, a
// master that answers produce for its own id; other producers of a
// matching pattern are not asked while it holds the id.
func TestCluster_MasterProducesOnDemand(t *testing.T) {
	c := newCluster(t, nil)
	other := rawDial(t, c.Node(2))
	other.send(`{"type":"produce","patterns":["mp-*"]}`)
	m := rawDial(t, c.Node(0))
	m.send(`{"type":"master","id":"mp-1"}`)
	m.send(`{"type":"produce","patterns":["mp-1"]}`)
	testcluster.Eventually(t, 10*time.Second, func() error {
		if s := leaderStatus(t, c); s.Known != 2 {
			return fmt.Errorf("the leader knows %d producers", s.Known)
		}
		return nil
	})
	sub := rawDial(t, c.Node(1))
	sub.send(`{"type":"subscribe","id":"mp-1"}`)
	if f := m.next(); f.Type != protocol.TypeProduce || f.ID != "mp-1" {
		t.Fatalf("got %+v, want produce mp-1 for the master", f)
	}
	m.send(`{"type":"produced","id":"mp-1","version":{"dep-m":0},"object":{"by":"master"}}`)
	if f := sub.next(); f.Type != protocol.TypeObject || string(f.Object) != `{"by":"master"}` {
		t.Fatalf("got %+v, want the master's object", f)
	}
	must(t, c.Node(1), "POST", "/v1/objects/deps/dep-m/bump", "", nil, 200)
	if f := m.next(); f.Type != protocol.TypeProduce || f.ID != "mp-1" {
		t.Fatalf("got %+v, want produce mp-1 again", f)
	}
	other.noFrameBefore("fence-other")
}

// TestCluster_ProducerStalls: a producer that answers stall makes its
// subscribers see the version without data (never the stale data), then
// the data when it produces the same version.
func TestCluster_ProducerStalls(t *testing.T) {
	c := newCluster(t, nil)
	putObject(t, c.Node(0), "st-1", map[string]int{"dep-s": 0}, `{"stale":true}`)
	p := rawDial(t, c.Node(0))
	p.send(`{"type":"produce","patterns":["st-*"]}`)
	sub := rawDial(t, c.Node(1))
	sub.send(`{"type":"subscribe","id":"st-1"}`)
	if m := sub.next(); m.Type != protocol.TypeObject || string(m.Object) != `{"stale":true}` {
		t.Fatalf("got %+v, want the existing object", m)
	}
	testcluster.Eventually(t, 10*time.Second, func() error {
		if s := leaderStatus(t, c); s.Known != 1 {
			return fmt.Errorf("the leader knows %d producers", s.Known)
		}
		return nil
	})
	// Its dependency moves: the data it holds is stale.
	must(t, c.Node(2), "POST", "/v1/objects/deps/dep-s/bump", "", nil, 200)
	if m := p.next(); m.Type != protocol.TypeProduce || m.ID != "st-1" {
		t.Fatalf("got %+v, want produce st-1", m)
	}
	p.send(`{"type":"stall","id":"st-1","version":{"dep-s":1}}`)
	if m := sub.next(); m.Type != protocol.TypeObject || string(m.Version) != `{"dep-s":1}` || string(m.Object) != "null" {
		t.Fatalf("got %+v, want the stalled version without data", m)
	}
	p.send(`{"type":"produced","id":"st-1","version":{"dep-s":1},"object":{"fresh":true}}`)
	if m := sub.next(); m.Type != protocol.TypeObject || string(m.Object) != `{"fresh":true}` {
		t.Fatalf("got %+v, want the produced data", m)
	}
	p.noFrameBefore("fence") // the stall was not followed by another produce
}
