package objectsync

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"shoal/internal/moduletest"
	"shoal/internal/testcluster"
	"shoal/objectsync/internal/protocol"
)

// rawConn is a bare websocket to a node, for tests that look at each frame.
type rawConn struct {
	t      *testing.T
	c      *websocket.Conn
	frames chan protocol.Message
	done   chan struct{}
}

func rawDial(t *testing.T, n *testcluster.Node) *rawConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+n.Addresses().HTTP+"/v1/objects/ws", &websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(64 << 20)
	r := &rawConn{t: t, c: c, frames: make(chan protocol.Message, 100000), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				return
			}
			var m protocol.Message
			if err := json.Unmarshal(b, &m); err != nil {
				t.Errorf("server frame %s is not JSON: %v", b, err)
				return
			}
			r.frames <- m
		}
	}()
	t.Cleanup(func() {
		_ = c.CloseNow()
		<-r.done
	})
	return r
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		r.t.Fatalf("send %s: %v", s, err)
	}
}

// next returns the next frame, failing the test if none comes in time.
func (r *rawConn) next() protocol.Message {
	r.t.Helper()
	t := time.NewTimer(60 * time.Second)
	defer t.Stop()
	select {
	case m := <-r.frames:
		return m
	case <-r.done:
		r.t.Fatalf("connection closed while a frame was expected")
	case <-t.C:
		r.t.Fatalf("no frame within 60s")
	}
	return protocol.Message{}
}

// expectError sends s and expects an error frame with code (and ref).
func (r *rawConn) expectError(s, code, ref string) {
	r.t.Helper()
	r.send(s)
	m := r.next()
	if m.Type != protocol.TypeError || m.Code != code || m.Ref != ref {
		r.t.Fatalf("sent %.80s: got %+v, want error %s ref %q", s, m, code, ref)
	}
}

// putObject writes a version through REST.
func putObject(t *testing.T, n *testcluster.Node, id string, version any, object string) {
	t.Helper()
	v, _ := json.Marshal(version)
	must(t, n, "PUT", "/v1/objects/"+id, "application/json", []byte(fmt.Sprintf(`{"version":%s,"object":%s}`, v, object)), 200)
}

func padded(n int) string {
	return fmt.Sprintf(`{"n":%d,"pad":"%s"}`, n, strings.Repeat("x", 200))
}

// TestCluster_ResumeWithHaveVersion: a subscriber whose have_version is in
// the history gets only the patches after it; one whose version left the
// history gets the full object; one that is up to date gets nothing.
func TestCluster_ResumeWithHaveVersion(t *testing.T) {
	c := newCluster(t, nil) // history 16
	for v := 1; v <= 30; v++ {
		putObject(t, c.Node(0), "res", v, padded(v))
	}
	n := c.Node(1)
	testcluster.Eventually(t, 10*time.Second, func() error {
		if r := send("GET", n.URL()+"/v1/objects/res", "", nil); r.status != 200 || !strings.Contains(string(r.body), `"version":30`) {
			return fmt.Errorf("node 1 not caught up: %s", r)
		}
		return nil
	})
	ws := rawDial(t, n)
	// Inside the history: patches 25→26 … 29→30, nothing else.
	ws.send(`{"type":"subscribe","id":"res","have_version":25}`)
	for v := 25; v < 30; v++ {
		m := ws.next()
		if m.Type != protocol.TypePatch || string(m.From) != fmt.Sprint(v) || string(m.To) != fmt.Sprint(v+1) {
			t.Fatalf("got %+v, want the patch %d→%d", m, v, v+1)
		}
	}
	ws.expectError(`{"type":"nonsense","ref":"fence-1"}`, protocol.CodeUnknownType, "fence-1") // nothing came between
	// Outside the history: the full object.
	ws2 := rawDial(t, n)
	ws2.send(`{"type":"subscribe","id":"res","have_version":3}`)
	if m := ws2.next(); m.Type != protocol.TypeObject || string(m.Version) != "30" {
		t.Fatalf("got %+v, want the full object at 30", m)
	}
	// Up to date: nothing.
	ws3 := rawDial(t, n)
	ws3.send(`{"type":"subscribe","id":"res","have_version":30}`)
	ws3.expectError(`{"type":"nonsense","ref":"fence-3"}`, protocol.CodeUnknownType, "fence-3")
	// And the next change reaches all three as a patch.
	putObject(t, c.Node(2), "res", 31, padded(31))
	for i, w := range []*rawConn{ws, ws2, ws3} {
		if m := w.next(); m.Type != protocol.TypePatch || string(m.From) != "30" || string(m.To) != "31" {
			t.Fatalf("subscriber %d: got %+v, want the patch 30→31", i, m)
		}
	}
}

// TestCluster_ResumePatternWithHaveVersions: a pattern subscription that
// names the versions it holds is resumed per object as an id with
// have_version is: patches from a version in the history, the full
// object from one that left it, a removal for an object gone meanwhile,
// and the full state of a matching object it did not hold.
func TestCluster_ResumePatternWithHaveVersions(t *testing.T) {
	c := newCluster(t, nil) // history 16
	for v := 1; v <= 30; v++ {
		putObject(t, c.Node(0), "pr-1", v, padded(v))
		if v <= 20 {
			putObject(t, c.Node(0), "pr-2", v, padded(v))
		}
	}
	putObject(t, c.Node(0), "pr-3", 1, padded(1))
	must(t, c.Node(0), "DELETE", "/v1/objects/pr-3", "", nil, 204)
	putObject(t, c.Node(0), "pr-4", 7, padded(7))
	n := c.Node(1)
	testcluster.Eventually(t, 10*time.Second, func() error {
		if r := send("GET", n.URL()+"/v1/objects/pr-4", "", nil); r.status != 200 {
			return fmt.Errorf("node 1 not caught up: %s", r)
		}
		return nil
	})
	ws := rawDial(t, n)
	ws.send(`{"type":"subscribe","pattern":"pr-*","have_versions":{"pr-1":25,"pr-2":2,"pr-3":1,"pr-9":4}}`)
	want := map[string][]string{
		"pr-1": {"patch 25→26", "patch 26→27", "patch 27→28", "patch 28→29", "patch 29→30"},
		"pr-2": {"object 20"},
		"pr-3": {"removed"},
		"pr-4": {"object 7"},
		"pr-9": {"removed"},
	}
	got := map[string][]string{}
	for n := 0; n < 9; n++ {
		m := ws.next()
		switch m.Type {
		case protocol.TypePatch:
			got[m.ID] = append(got[m.ID], fmt.Sprintf("patch %s→%s", m.From, m.To))
		case protocol.TypeObject:
			got[m.ID] = append(got[m.ID], fmt.Sprintf("object %s", m.Version))
		default:
			got[m.ID] = append(got[m.ID], m.Type)
		}
	}
	for id, w := range want {
		if !slices.Equal(got[id], w) {
			t.Errorf("%s: got %v, want %v", id, got[id], w)
		}
	}
	ws.expectError(`{"type":"nonsense","ref":"fence"}`, protocol.CodeUnknownType, "fence") // nothing more came
	for kind, atLeast := range map[string]float64{"patch": 5, "object": 2, "removed": 2} {
		if got := moduletest.MetricValue(t, n.Agent().Registry(), "shoal_objectsync_frames_total", "type", kind); got < atLeast {
			t.Errorf("node 1 counted %v %s frames, want at least %v", got, kind, atLeast)
		}
	}
	// Resumed, it follows changes as usual.
	putObject(t, c.Node(2), "pr-1", 31, padded(31))
	if m := ws.next(); m.Type != protocol.TypePatch || m.ID != "pr-1" || string(m.From) != "30" {
		t.Fatalf("got %+v, want the patch 30→31 of pr-1", m)
	}
}

// TestCluster_BadInput: malformed and refused messages get clear error
// frames, and the connection and the node stay usable.
func TestCluster_BadInput(t *testing.T) {
	cfg := testConfig()
	cfg.MaxSize = 4096
	c := newCluster(t, cfg)
	putObject(t, c.Node(0), "bad", 5, padded(5))
	ws := rawDial(t, c.Node(1))
	ws.expectError(`{not json`, protocol.CodeBadJSON, "")
	ws.expectError(`{"type":"fly","ref":"r1"}`, protocol.CodeUnknownType, "r1")
	ws.expectError(`{"type":"subscribe","ref":"r2"}`, protocol.CodeBadMessage, "r2")
	ws.expectError(`{"type":"subscribe","id":"x","have_version":"v1","ref":"r3"}`, "invalid_version", "r3")
	ws.expectError(`{"type":"set","id":"bad","version":6,"object":{},"ref":"r4"}`, "not_master", "r4")
	ws.send(`{"type":"master","id":"bad","ref":"m1"}`)
	ws.expectError(`{"type":"set","id":"bad","version":4,"object":{},"ref":"r5"}`, "stale_version", "r5")
	ws.expectError(`{"type":"set","id":"bad","version":6,"object":[1],"ref":"r6"}`, "invalid_object", "r6")
	big := `{"a":"` + strings.Repeat("b", 5000) + `"}`
	ws.expectError(`{"type":"set","id":"bad","version":6,"object":`+big+`,"ref":"r7"}`, "too_large", "r7")
	ws.expectError(`{"type":"patch","id":"bad","from":5,"to":6,"patch":[{"op":"remove","path":"/missing"}],"ref":"r8"}`, "patch_failed", "r8")
	ws.expectError(`{"type":"patch","id":"bad","from":4,"to":6,"patch":[],"ref":"r9"}`, "version_mismatch", "r9")
	ws.expectError(`{"type":"patch","id":"bad","from":5,"to":6,"patch":{"op":"x"},"ref":"r10"}`, "bad_patch", "r10")
	ws.expectError(`{"type":"master","id":"shoal:objects","ref":"r11"}`, "reserved_id", "r11")
	ws.expectError(`{"type":"produced","id":"bad","version":7,"object":{},"ref":"r12"}`, "not_producer", "r12")
	// A second master, on another node.
	other := rawDial(t, c.Node(2))
	other.expectError(`{"type":"master","id":"bad","ref":"m2"}`, "conflict", "m2")
	// REST writes are refused too while a master holds the id.
	if r := send("PUT", c.Node(0).URL()+"/v1/objects/bad", "application/json", []byte(`{"version":9,"object":{}}`)); r.status != 409 || r.code() != "conflict" {
		t.Fatalf("PUT while a master holds it: %s", r)
	}
	// The connection still works: a valid write lands.
	ws.send(`{"type":"subscribe","id":"bad"}`)
	if m := ws.next(); m.Type != protocol.TypeObject || string(m.Version) != "5" {
		t.Fatalf("got %+v, want the object", m)
	}
	ws.send(`{"type":"patch","id":"bad","from":5,"to":6,"patch":[{"op":"replace","path":"/n","value":6}]}`)
	if m := ws.next(); m.Type != protocol.TypePatch || string(m.To) != "6" {
		t.Fatalf("got %+v, want the patch to 6", m)
	}
	// Releasing lets the other master in.
	ws.send(`{"type":"release","id":"bad"}`)
	testcluster.Eventually(t, 10*time.Second, func() error {
		other.send(`{"type":"master","id":"bad","ref":"m3"}`)
		other.send(`{"type":"set","id":"bad","version":6,"object":{},"ref":"m4"}`)
		m := other.next()
		if m.Ref == "m3" { // the release is not committed yet
			other.next() // and so the set is refused: not_master
			return fmt.Errorf("claim refused: %s", m.Code)
		}
		if m.Ref != "m4" || m.Code != "stale_version" {
			t.Fatalf("got %+v, want the set refused as stale", m)
		}
		return nil
	})
}

// TestCluster_SubscriptionLimit: a connection that subscribes past
// --objectsync-max-subscriptions gets a limit error per refusal and stays
// usable.
func TestCluster_SubscriptionLimit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxSubscriptions = 100
	c := newCluster(t, cfg)
	ws := rawDial(t, c.Node(1))
	// 10,000 subscriptions, in batches that fit the send queue (error
	// frames beyond it are dropped, never queued without bound), each
	// batch fenced by a message whose error marks its end.
	const total, batch = 10000, 50
	limits := 0
	for b := 0; b < total/batch; b++ {
		for i := b * batch; i < (b+1)*batch; i++ {
			ws.send(fmt.Sprintf(`{"type":"subscribe","id":"lim-%d","ref":"s%d"}`, i, i))
		}
		fence := fmt.Sprintf("fence-%d", b)
		ws.send(`{"type":"nonsense","ref":"` + fence + `"}`)
		for {
			m := ws.next()
			if m.Ref == fence {
				break
			}
			if m.Type != protocol.TypeError || m.Code != "too_many_subscriptions" {
				t.Fatalf("got %+v, want a limit error", m)
			}
			limits++
		}
	}
	if limits != total-100 {
		t.Fatalf("got %d limit errors, want %d", limits, total-100)
	}
	putObject(t, c.Node(0), "lim-7", 1, `{"ok":true}`)
	if m := ws.next(); m.Type != protocol.TypeObject || m.ID != "lim-7" {
		t.Fatalf("got %+v, want lim-7", m)
	}
	if r := send("GET", c.Node(1).URL()+"/v1/objects/lim-7", "", nil); r.status != http.StatusOK {
		t.Fatalf("node not usable: %s", r)
	}
}

// TestCluster_ClaimsOfDeadNodeReleased: a master's node dies; the leader
// releases its claims once gossip says it is dead, and another master
// takes the id over.
func TestCluster_ClaimsOfDeadNodeReleased(t *testing.T) {
	c := newCluster(t, nil)
	leader := c.Leader()
	var victim, survivor *testcluster.Node
	for _, n := range c.Nodes() {
		switch {
		case n == leader:
		case victim == nil:
			victim = n
		default:
			survivor = n
		}
	}
	first := rawDial(t, victim)
	first.send(`{"type":"master","id":"dn-1"}`)
	first.send(`{"type":"set","id":"dn-1","version":1,"object":{"by":"first"}}`)
	second := rawDial(t, survivor)
	second.send(`{"type":"subscribe","id":"dn-1"}`)
	if m := second.next(); m.Type != protocol.TypeObject || string(m.Version) != "1" {
		t.Fatalf("got %+v, want the first master's object", m)
	}
	second.expectError(`{"type":"master","id":"dn-1","ref":"early"}`, "conflict", "early")

	c.Kill(victim.Index)
	attempt := 0
	testcluster.Eventually(t, 60*time.Second, func() error {
		attempt++
		mref, sref := fmt.Sprintf("m%d", attempt), fmt.Sprintf("s%d", attempt)
		second.send(`{"type":"master","id":"dn-1","ref":"` + mref + `"}`)
		second.send(`{"type":"set","id":"dn-1","version":2,"object":{"by":"second"},"ref":"` + sref + `"}`)
		m := second.next()
		if m.Ref == mref { // still held: the set is refused too
			if m2 := second.next(); m2.Ref != sref {
				t.Fatalf("got %+v, want the refusal of %s", m2, sref)
			}
			return fmt.Errorf("claim refused: %s", m.Code)
		}
		if m.Type == protocol.TypeError || string(m.Version)+string(m.To) != "2" {
			t.Fatalf("got %+v, want version 2", m)
		}
		return nil
	})
}
