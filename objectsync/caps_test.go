package objectsync

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"shoal/internal/testcluster"
)

// The caps on objects and dependency counters: a write that would create
// a third object, or a bump that would create a second counter, is 409
// on any node, and changes nothing; existing ones keep working; a delete
// makes room.
func TestCluster_Caps(t *testing.T) {
	cfg := testConfig()
	cfg.MaxObjects, cfg.MaxDependencies = 2, 1
	c := newCluster(t, cfg)
	n0, n1 := c.Node(0), c.Node(1)
	putObject(t, n0, "a", 1, `{}`)
	putObject(t, n1, "b", 1, `{}`)
	r := must(t, n1, "PUT", "/v1/objects/c", "application/json", []byte(`{"version":1,"object":{}}`), 409)
	if !contains(r.body, `"too_many_objects"`) {
		t.Fatalf("a third object: %s", r.body)
	}
	putObject(t, n0, "a", 2, `{"x":1}`) // an existing object
	must(t, n0, "POST", "/v1/objects/deps/d1/bump", "", nil, 200)
	must(t, n1, "POST", "/v1/objects/deps/d1/bump", "", nil, 200)
	r = must(t, n0, "POST", "/v1/objects/deps/d2/bump", "", nil, 409)
	if !contains(r.body, `"too_many_dependencies"`) {
		t.Fatalf("a second counter: %s", r.body)
	}
	for _, tc := range []struct {
		n    *testcluster.Node
		kind string
	}{{n1, "object"}, {n0, "dependency"}} {
		m, _ := tc.n.Agent().Module("objectsync")
		if got := testutil.ToFloat64(m.(*ObjectSync).m.capRefusals.WithLabelValues(tc.kind)); got != 1 {
			t.Fatalf("%s: shoal_objectsync_cap_refusals_total{kind=%q} = %v, want 1", tc.n.Name, tc.kind, got)
		}
	}
	must(t, n0, "DELETE", "/v1/objects/b", "", nil, 204)
	putObject(t, n1, "c", 1, `{}`)
	r = must(t, n1, "GET", "/v1/objects?consistent=true", "", nil, 200)
	if got := string(r.body); !contains(r.body, `"id":"a"`) || !contains(r.body, `"id":"c"`) || contains(r.body, `"id":"b"`) {
		t.Fatalf("objects after the delete: %s", got)
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }
