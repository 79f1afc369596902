package objectsync

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"shoal/internal/testcluster"
	"shoal/objectsync/internal/document"
	"shoal/objectsync/internal/protocol"
)

// TestCluster_Introspection: the read-only shoal:* objects describe the
// node, change as it does, and reach subscribers as patches.
func TestCluster_Introspection(t *testing.T) {
	c := newCluster(t, nil)
	n := c.Node(1)
	putObject(t, c.Node(0), "seen-1", 7, `{}`)
	testcluster.Eventually(t, 10*time.Second, func() error {
		r := send("GET", n.URL()+"/v1/objects/shoal:objects", "", nil)
		if r.status != 200 || !strings.Contains(string(r.body), `"seen-1":7`) {
			return fmt.Errorf("shoal:objects: %s", r)
		}
		return nil
	})
	must(t, n, "GET", "/v1/objects/shoal:stats", "", nil, 200)

	ws := rawDial(t, n)
	ws.send(`{"type":"subscribe","id":"shoal:connections"}`)
	m := ws.next()
	if m.Type != protocol.TypeObject {
		t.Fatalf("got %+v, want the object", m)
	}
	state, ver := []byte(m.Object), string(m.Version)
	// Another connection: the count moves, and the subscriber follows.
	star := rawDial(t, n)
	star.send(`{"type":"subscribe","pattern":"*"}`)
	if m := star.next(); m.ID != "seen-1" {
		t.Fatalf("got %+v, want seen-1", m)
	}
	testcluster.Eventually(t, 10*time.Second, func() error {
		m := ws.next()
		switch m.Type {
		case protocol.TypeObject:
			state, ver = []byte(m.Object), string(m.Version)
		case protocol.TypePatch:
			if string(m.From) != ver {
				t.Fatalf("patch from %s, holding %s", m.From, ver)
			}
			out, err := document.Apply(state, m.Patch, 0)
			if err != nil {
				t.Fatal(err)
			}
			state, ver = out, string(m.To)
		}
		var doc struct {
			Websockets int `json:"websockets"`
		}
		_ = json.Unmarshal(state, &doc)
		if doc.Websockets != 2 {
			return fmt.Errorf("websockets %d in %s", doc.Websockets, state)
		}
		return nil
	})
	// A catch-all subscriber is not sent the introspection objects.
	star.noFrameBefore("fence")
}
