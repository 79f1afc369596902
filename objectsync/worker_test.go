package objectsync

import (
	"reflect"
	"testing"

	"shoal/objectsync/internal/protocol"
)

func TestWorkQueue_SupersededSetsAreSkipped(t *testing.T) {
	o := new(ObjectSync)
	o.init()
	c := &wsClient{o: o, workWake: make(chan struct{}, 1)}
	set := func(id, ref string) workItem {
		return workItem{m: protocol.Message{Type: protocol.TypeSet, ID: id, Ref: ref}}
	}
	c.work = []workItem{
		set("a", "r1"), set("b", "r2"), set("a", "r3"),
		{m: protocol.Message{Type: protocol.TypePatch, ID: "a", Ref: "r4"}},
		set("a", "r5"), set("a", "r6"),
	}
	type got struct {
		ref  string
		refs []string
	}
	want := []got{{"r2", nil}, {"r3", []string{"r1"}}, {"r4", nil}, {"r6", []string{"r5"}}}
	for i, w := range want {
		it, ok := c.next()
		if !ok || it.m.Ref != w.ref || !reflect.DeepEqual(it.refs, w.refs) {
			t.Fatalf("write %d: got %s %v, want %s %v", i, it.m.Ref, it.refs, w.ref, w.refs)
		}
	}
	if len(c.work) != 0 {
		t.Fatalf("%d writes left", len(c.work))
	}
}
