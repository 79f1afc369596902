package objectsync

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"shoal/modules"
	"shoal/objectsync/internal/document"
	"shoal/objectsync/internal/protocol"
)

var testEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fsm is an ObjectSync driven by hand: commands applied in order with
// increasing indexes, as Raft would.
type fsm struct {
	o     *ObjectSync
	index uint64
}

func newFSM() *fsm { return &fsm{o: new(ObjectSync)} }

func (f *fsm) apply(op byte, payload []byte) ([]byte, error) {
	f.index++
	return f.o.ApplyCommand(modules.Command{Index: f.index, Time: testEpoch.Add(time.Duration(f.index) * time.Second), Op: op, Payload: payload})
}

func fullWrite(id, owner, ver, obj string) []byte {
	return encodeWrite(writeCmd{id: id, owner: owner, to: ver, data: []byte(obj), history: 4, maxSize: 1 << 10})
}

func patchWrite(id, owner string, fromSeq uint64, ver, patch string) []byte {
	return encodeWrite(writeCmd{id: id, owner: owner, patch: true, fromSeq: fromSeq, to: ver, data: []byte(patch), history: 4, maxSize: 1 << 10})
}

func persist(t testing.TB, o *ObjectSync) []byte {
	t.Helper()
	s, err := o.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Persist(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestState_WritePatchAndRefusals(t *testing.T) {
	f := newFSM()
	if _, err := f.apply(opWrite, fullWrite("a", "", "1", `{"x":1,"y":[1]}`)); err != nil {
		t.Fatal(err)
	}
	seq1 := f.index
	if _, err := f.apply(opWrite, patchWrite("a", "", seq1, "2", `[{"op":"replace","path":"/x","value":2}]`)); err != nil {
		t.Fatal(err)
	}
	o := f.o.lookup("a")
	if string(o.data) != `{"x":2,"y":[1]}` || o.ver.String() != "2" || len(o.history) != 1 {
		t.Fatalf("got %s at %s with %d patches", o.data, o.ver, len(o.history))
	}
	refusals := []struct {
		payload []byte
		want    error
	}{
		{patchWrite("a", "", seq1, "3", `[]`), ErrVersionMoved},                                 // base moved
		{patchWrite("a", "", f.index, "2", `[]`), ErrStaleVersion},                              // not newer
		{fullWrite("a", "", "1.5", `{}`), ErrStaleVersion},                                      // older
		{fullWrite("a", "", "[3]", `{}`), ErrStaleVersion},                                      // another kind
		{patchWrite("a", "", f.index, "3", `[{"op":"remove","path":"/nope"}]`), ErrPatchFailed}, // does not apply
		{patchWrite("a", "", f.index, "3", `[{"op":"add","path":"/big","value":"`+string(bytes.Repeat([]byte("z"), 1100))+`"}]`), ErrTooLarge},
		{fullWrite("shoal:objects", "", "1", `{}`), ErrReservedID},
		{patchWrite("new", "", 1, "1", `[]`), ErrVersionMoved}, // nothing to patch
	}
	for i, r := range refusals {
		before := persist(t, f.o)
		if _, err := f.apply(opWrite, r.payload); !errors.Is(err, r.want) {
			t.Fatalf("refusal %d: got %v, want %v", i, err, r.want)
		}
		if !bytes.Equal(before, persist(t, f.o)) {
			t.Fatalf("refusal %d changed the state", i)
		}
	}
}

func TestState_HistoryTrimmedAndCatchUp(t *testing.T) {
	f := newFSM()
	if _, err := f.apply(opWrite, fullWrite("a", "", "0", `{"n":0}`)); err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= 6; v++ {
		p := `[{"op":"replace","path":"/n","value":` + string(rune('0'+v)) + `}]`
		if _, err := f.apply(opWrite, patchWrite("a", "", f.index, string(rune('0'+v)), p)); err != nil {
			t.Fatal(err)
		}
	}
	o := f.o.lookup("a")
	if len(o.history) != 4 || o.history[0].from != "2" || o.history[3].to != "6" {
		t.Fatalf("got history of %d from %s", len(o.history), o.history[0].from)
	}
	if es, ok := o.catchUp("3"); !ok || len(es) != 3 {
		t.Fatalf("catch up from 3: %d, %t", len(es), ok)
	}
	if _, ok := o.catchUp("1"); ok {
		t.Fatalf("caught up from 1, which left the history")
	}
}

func TestState_Claims(t *testing.T) {
	f := newFSM()
	if _, err := f.apply(opClaim, encodeClaim(claimCmd{id: "a", owner: "n1/i1/1"})); err != nil {
		t.Fatal(err)
	}
	if _, err := f.apply(opClaim, encodeClaim(claimCmd{id: "a", owner: "n2/i1/1"})); !errors.Is(err, ErrConflict) {
		t.Fatalf("second master: got %v, want conflict", err)
	}
	if _, err := f.apply(opWrite, fullWrite("a", "", "1", `{}`)); !errors.Is(err, ErrConflict) {
		t.Fatalf("write by a non-master: got %v, want conflict", err)
	}
	if _, err := f.apply(opWrite, fullWrite("a", "n1/i1/1", "1", `{}`)); err != nil {
		t.Fatal(err)
	}
	// The node restarted (incarnation i2): its earlier claims go.
	if _, err := f.apply(opClaim, encodeClaim(claimCmd{id: "b", owner: "n1/i2/7"})); err != nil {
		t.Fatal(err)
	}
	res, err := f.apply(opReleaseNode, encodeReleaseNode(releaseNodeCmd{node: "n1", keep: "i2"}))
	if n, _ := decodeSeq(res); err != nil || n != 1 {
		t.Fatalf("release node: %d, %v", n, err)
	}
	if got := f.o.st.claims; len(got) != 1 || got["b"] != "n1/i2/7" {
		t.Fatalf("got claims %v", got)
	}
	if _, err := f.apply(opRelease, encodeClaim(claimCmd{id: "b", owner: "n1/i2/7"})); err != nil || len(f.o.st.claims) != 0 {
		t.Fatalf("release: %v, claims %v", err, f.o.st.claims)
	}
	if ownerNode("node/with/slash/inc/3") != "node/with/slash" {
		t.Fatalf("ownerNode")
	}
}

func TestState_SnapshotRoundTrip(t *testing.T) {
	f := newFSM()
	scenario(t, f)
	b := persist(t, f.o)
	g := new(ObjectSync)
	if err := g.Restore(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, persist(t, g)) {
		t.Fatalf("a restored state persists differently")
	}
	if err := g.Restore(bytes.NewReader(nil)); err != nil || len(g.st.objects) != 0 {
		t.Fatalf("empty restore: %v", err)
	}
	for _, bad := range [][]byte{[]byte("XOBJ\x01\x00\x00\x00"), b[:len(b)-1], append(append([]byte(nil), b...), 0)} {
		if err := g.Restore(bytes.NewReader(bad)); !errors.Is(err, ErrMalformedSnapshot) {
			t.Fatalf("got %v, want ErrMalformedSnapshot", err)
		}
	}
}

// scenario fills f with objects, patches, claims and dependencies.
func scenario(t testing.TB, f *fsm) {
	steps := []struct {
		op      byte
		payload func() []byte
	}{
		{opWrite, func() []byte { return fullWrite("a", "", "1", `{"list":[1,2],"name":"a"}`) }},
		{opWrite, func() []byte {
			return patchWrite("a", "", f.index, "2", `[{"op":"add","path":"/list/-","value":3}]`)
		}},
		{opWrite, func() []byte { return fullWrite("b-1", "", "[1,0]", `{"deep":{"x":null}}`) }},
		{opWrite, func() []byte { return fullWrite("b-2", "", `{"dep":4}`, `{}`) }},
		{opClaim, func() []byte { return encodeClaim(claimCmd{id: "a", owner: "n/i/1"}) }},
		{opBump, func() []byte { return encodeID("dep") }},
		{opBump, func() []byte { return encodeID("dep") }},
		{opWrite, func() []byte { return fullWrite("gone", "", "1", `{}`) }},
		{opDelete, func() []byte { return encodeID("gone") }},
	}
	for i, s := range steps {
		if _, err := f.apply(s.op, s.payload()); err != nil {
			t.Fatalf("scenario step %d: %v", i, err)
		}
	}
}

// fakeSink is a sink with a small queue that the test drains by hand.
type fakeSink struct {
	mu     sync.Mutex
	frames []*frame
	limit  int
}

func (s *fakeSink) send(f *frame) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.frames) >= s.limit {
		return errFull
	}
	s.frames = append(s.frames, f)
	return nil
}

func (s *fakeSink) replace(f *frame) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames = []*frame{f}
	return nil
}

func (s *fakeSink) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames)
}

func (s *fakeSink) take() []*frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.frames
	s.frames = nil
	return out
}

// replica applies frames as a client would, checking contiguity.
type replica struct {
	states map[string][2]string // id -> version, object
}

func (r *replica) apply(t *testing.T, f *frame) {
	t.Helper()
	var m protocol.Message
	if err := json.Unmarshal(f.b, &m); err != nil {
		t.Fatal(err)
	}
	switch m.Type {
	case protocol.TypeObject:
		r.states[m.ID] = [2]string{string(m.Version), string(m.Object)}
	case protocol.TypePatch:
		st, ok := r.states[m.ID]
		if !ok || st[0] != string(m.From) {
			t.Fatalf("patch of %s from %s applied to %v", m.ID, m.From, st)
		}
		out, err := document.Apply([]byte(st[1]), m.Patch, 0)
		if err != nil {
			t.Fatal(err)
		}
		r.states[m.ID] = [2]string{string(m.To), string(out)}
	case protocol.TypeRemoved:
		delete(r.states, m.ID)
	}
}

func TestFanout_SlowConsumerCollapses(t *testing.T) {
	f := newFSM()
	for _, id := range []string{"s-1", "s-2", "s-3"} {
		if _, err := f.apply(opWrite, fullWrite(id, "", "0", `{"n":0,"pad":"................................................"}`)); err != nil {
			t.Fatal(err)
		}
	}
	sk := &fakeSink{limit: 4}
	s := f.o.fo.open(sk, 4)
	if _, err := f.o.fo.subscribe(s, "s-*", true, "", nil, 10); err != nil {
		t.Fatal(err)
	}
	rep := &replica{states: map[string][2]string{}}
	seqs := map[string]uint64{}
	for _, id := range []string{"s-1", "s-2", "s-3"} {
		seqs[id] = f.o.lookup(id).seq
	}
	// Nobody drains: the queue fills and collapses; then drain and resync.
	for v := 1; v <= 20; v++ {
		for _, id := range []string{"s-1", "s-2", "s-3"} {
			p := `[{"op":"replace","path":"/n","value":` + itoa(v) + `}]`
			if _, err := f.apply(opWrite, patchWrite(id, "", seqs[id], itoa(v), p)); err != nil {
				t.Fatal(err)
			}
			seqs[id] = f.index
		}
	}
	for i := 0; i < 10; i++ {
		for _, fr := range sk.take() {
			rep.apply(t, fr)
		}
		if !f.o.fo.resync() && sk.queued() == 0 {
			break
		}
	}
	for _, fr := range sk.take() {
		rep.apply(t, fr)
	}
	for _, id := range []string{"s-1", "s-2", "s-3"} {
		o := f.o.lookup(id)
		if got := rep.states[id]; got[0] != o.ver.String() || got[1] != string(o.data) {
			t.Fatalf("%s: replica holds %v, state is %s %s", id, got, o.ver, o.data)
		}
	}
	// Removal reaches a subscriber that held the object.
	if _, err := f.apply(opDelete, encodeID("s-2")); err != nil {
		t.Fatal(err)
	}
	for _, fr := range sk.take() {
		rep.apply(t, fr)
	}
	if _, ok := rep.states["s-2"]; ok {
		t.Fatalf("s-2 not removed")
	}
}

func itoa(n int) string {
	b, _ := document.Encode(float64(n))
	return string(b)
}

func TestState_SameStateAgainIsANoOp(t *testing.T) {
	f := newFSM()
	if _, err := f.apply(opWrite, fullWrite("a", "", "1", `{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	seq := f.index
	before := persist(t, f.o)
	res, err := f.apply(opWrite, fullWrite("a", "", "1", `{ "x" : 1.0 }`))
	if got, _ := decodeSeq(res); err != nil || got != seq {
		t.Fatalf("the same state again: %d, %v; want %d, nil", got, err, seq)
	}
	if !bytes.Equal(before, persist(t, f.o)) {
		t.Fatalf("a no-op changed the state")
	}
	if _, err := f.apply(opWrite, fullWrite("a", "", "1", `{"x":2}`)); !errors.Is(err, ErrStaleVersion) {
		t.Fatalf("another object at the same version: got %v, want stale_version", err)
	}
}

func TestState_Stall(t *testing.T) {
	f := newFSM()
	if _, err := f.apply(opWrite, fullWrite("a", "", "1", `{"old":true}`)); err != nil {
		t.Fatal(err)
	}
	stall := func(ver string) []byte {
		return encodeWrite(writeCmd{id: "a", to: ver, history: 4, maxSize: 1 << 10})
	}
	if _, err := f.apply(opStall, stall("2")); err != nil {
		t.Fatal(err)
	}
	o := f.o.lookup("a")
	if !o.stalled || string(o.data) != "null" || o.ver.String() != "2" {
		t.Fatalf("stalled object: %+v", o)
	}
	checkRoundTrip(t, f.o)
	before := persist(t, f.o)
	if _, err := f.apply(opStall, stall("2")); err != nil || !bytes.Equal(before, persist(t, f.o)) {
		t.Fatalf("the same stall again: %v, or it changed the state", err)
	}
	if _, err := f.apply(opStall, stall("1")); !errors.Is(err, ErrStaleVersion) {
		t.Fatalf("an older stall: got %v", err)
	}
	if _, err := f.apply(opWrite, patchWrite("a", "", o.seq, "3", `[]`)); !errors.Is(err, ErrPatchFailed) {
		t.Fatalf("a patch of a stalled object: got %v", err)
	}
	if _, err := f.apply(opStall, encodeWrite(writeCmd{id: "a", to: "3", data: []byte(`{}`), history: 4, maxSize: 1 << 10})); !errors.Is(err, ErrMalformedCommand) {
		t.Fatalf("a stall with data: got %v", err)
	}
	// The data arrives at the stalled version.
	if _, err := f.apply(opWrite, fullWrite("a", "", "2", `{"new":true}`)); err != nil {
		t.Fatal(err)
	}
	if o := f.o.lookup("a"); o.stalled || string(o.data) != `{"new":true}` {
		t.Fatalf("completed object: %+v", o)
	}
	if _, err := f.apply(opWrite, fullWrite("a", "", "2", `{"other":true}`)); !errors.Is(err, ErrStaleVersion) {
		t.Fatalf("another object at the completed version: got %v", err)
	}
}
