package client

import (
	"encoding/json"
	"testing"

	"shoal/objectsync/internal/protocol"
)

func newTestClient() *Client {
	return &Client{states: map[string]State{}, values: map[string]any{}, exact: map[string]bool{}, patterns: map[string]bool{},
		masters: map[string]bool{}, waiters: map[string]*waiter{}, changed: make(chan struct{}), errs: make(chan Error, 8)}
}

func msg(s string) protocol.Message {
	var m protocol.Message
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		panic(err)
	}
	return m
}

// TestClient_CountsViolations is the negative control of the cluster
// tests, which require Violations and Regressions to stay 0: fed a broken
// stream, the client's checks do count.
func TestClient_CountsViolations(t *testing.T) {
	c := newTestClient()
	c.handle(msg(`{"type":"object","id":"a","version":2,"object":{"n":2}}`))
	c.handle(msg(`{"type":"patch","id":"a","from":2,"to":3,"patch":[{"op":"replace","path":"/n","value":3}]}`))
	if st, _ := c.Get("a"); st.Version != "3" || string(st.Object) != `{"n":3}` {
		t.Fatalf("got %+v", st)
	}
	// A patch applied in place, one left to Apply (a copy), and reads in
	// between: each read is the object at that version.
	c.handle(msg(`{"type":"patch","id":"a","from":3,"to":4,"patch":[{"op":"add","path":"/l","value":[1]}]}`))
	c.handle(msg(`{"type":"patch","id":"a","from":4,"to":5,"patch":[{"op":"copy","from":"/l","path":"/m"}]}`))
	if st, _ := c.Get("a"); st.Version != "5" || string(st.Object) != `{"l":[1],"m":[1],"n":3}` {
		t.Fatalf("got %+v", st)
	}
	c.handle(msg(`{"type":"patch","id":"a","from":5,"to":6,"patch":[{"op":"add","path":"/m/-","value":2}]}`))
	if st, _ := c.States()["a"]; st.Version != "6" || string(st.Object) != `{"l":[1],"m":[1,2],"n":3}` {
		t.Fatalf("got %+v", st)
	}
	if s := c.Stats(); s.Violations != 0 || s.Regressions != 0 || s.Patches != 4 {
		t.Fatalf("a good stream: %+v", s)
	}
	// A gap: a patch from 4 while the client holds 3.
	c.handle(msg(`{"type":"patch","id":"a","from":4,"to":5,"patch":[]}`))
	if _, ok := c.Get("a"); ok || c.Stats().Violations != 1 {
		t.Fatalf("a gap: %+v, state kept: %t", c.Stats(), ok)
	}
	// A patch that does not apply.
	c.handle(msg(`{"type":"object","id":"b","version":1,"object":{}}`))
	c.handle(msg(`{"type":"patch","id":"b","from":1,"to":2,"patch":[{"op":"remove","path":"/x"}]}`))
	if c.Stats().Violations != 2 {
		t.Fatalf("a patch that does not apply: %+v", c.Stats())
	}
	// A version going back.
	c.handle(msg(`{"type":"object","id":"c","version":[1,2],"object":{}}`))
	c.handle(msg(`{"type":"object","id":"c","version":[1,1],"object":{}}`))
	if c.Stats().Regressions != 1 {
		t.Fatalf("a version going back: %+v", c.Stats())
	}
}

func TestWSURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://h:1": "ws://h:1/v1/objects/ws",
		"https://h/": "wss://h/v1/objects/ws",
		"ws://h:2":   "ws://h:2/v1/objects/ws",
	} {
		if got := wsURL(in); got != want {
			t.Fatalf("wsURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestClient_SplitsBatchedFrames: under shoal.objects.v2 a frame may carry
// several messages, one per line; each is handled, in order.
func TestClient_SplitsBatchedFrames(t *testing.T) {
	c := newTestClient()
	c.exact["a"] = true
	c.handleFrame([]byte(`{"type":"object","id":"a","version":1,"object":{"n":1}}` + "\n" +
		`{"type":"patch","id":"a","from":1,"to":2,"patch":[{"op":"replace","path":"/n","value":2}]}` + "\n" +
		`{"type":"object","id":"b","version":7,"object":{}}`))
	if st, _ := c.Get("a"); st.Version != "2" || string(st.Object) != `{"n":2}` {
		t.Fatalf("a: got %+v", st)
	}
	if st, ok := c.Get("b"); !ok || st.Version != "7" {
		t.Fatalf("b: got %+v, %t", st, ok)
	}
	if s := c.Stats(); s.Violations != 0 || s.Patches != 1 {
		t.Fatalf("stats %+v", s)
	}
}
