package membership

import (
	"bytes"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// detached returns a Membership that is not started: enough to drive the
// delegate directly.
func detached(t testing.TB) *Membership {
	t.Helper()
	cfg := testConfig(t, "d")
	cfg.Logger = nil
	m, err := newMembership(cfg)
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	return m
}

func TestStateFrames_RoundTrip(t *testing.T) {
	var buf []byte
	buf = appendStateFrame(buf, 1, []byte("one"))
	buf = appendStateFrame(buf, 2, nil)
	buf = appendStateFrame(buf, 200, bytes.Repeat([]byte{7}, 300)) // 2-byte length
	frames, err := decodeStateFrames(buf)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if len(frames) != 3 || frames[0].tag != 1 || string(frames[0].data) != "one" ||
		frames[1].tag != 2 || len(frames[1].data) != 0 || frames[2].tag != 200 || len(frames[2].data) != 300 {
		t.Fatalf("got %+v", frames)
	}
}

func TestStateFrames_Malformed(t *testing.T) {
	tests := []struct {
		name string
		buf  []byte
	}{
		{"tag only", []byte{1}},
		{"length past end", []byte{1, 5, 'a', 'b'}},
		{"unterminated uvarint", []byte{1, 0x80, 0x80}},
		{"overflowing uvarint", append([]byte{1}, bytes.Repeat([]byte{0xff}, 11)...)},
		{"huge length", []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
		{"good then truncated", append(appendStateFrame(nil, 1, []byte("ok")), 2, 3, 'x')},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if frames, err := decodeStateFrames(tt.buf); err == nil {
				t.Fatalf("got %+v, want an error", frames)
			}
		})
	}
	if frames, err := decodeStateFrames(nil); err != nil || len(frames) != 0 {
		t.Fatalf("empty buffer: got %+v, %v", frames, err)
	}
}

func TestDelegate_MergeRemoteStateDispatchesByTag(t *testing.T) {
	m := detached(t)
	h1, h2 := &stateHandler{}, &stateHandler{}
	m.Channel(1).SetHandler(h1)
	m.Channel(2).SetHandler(h2)
	m.Channel(3).SetHandler(&recordingHandler{}) // not a StateHandler
	d := delegate{m}

	var buf []byte
	buf = appendStateFrame(buf, 2, []byte("two"))
	buf = appendStateFrame(buf, 9, []byte("unknown tag"))
	buf = appendStateFrame(buf, 3, []byte("no state handler"))
	buf = appendStateFrame(buf, 1, []byte("one"))
	d.MergeRemoteState(buf, true)
	if got := h1.merged(); !slices.Equal(got, []string{"one"}) {
		t.Errorf("tag 1 got %q", got)
	}
	if got := h2.merged(); !slices.Equal(got, []string{"two"}) {
		t.Errorf("tag 2 got %q", got)
	}
	if got := testutil.ToFloat64(m.metrics.dropped.WithLabelValues(dropNoHandler)); got != 2 {
		t.Errorf("dropped no_handler: got %v, want 2", got)
	}

	// A malformed buffer reaches no handler, even its good first frame.
	d.MergeRemoteState(append(appendStateFrame(nil, 1, []byte("x")), 2, 9), false)
	if got := h1.merged(); len(got) != 1 {
		t.Errorf("tag 1 saw part of a malformed buffer: %q", got)
	}
	if got := testutil.ToFloat64(m.metrics.dropped.WithLabelValues(dropMalformed)); got != 1 {
		t.Errorf("dropped malformed: got %v, want 1", got)
	}
}

func TestDelegate_LocalStateFramesStateHandlers(t *testing.T) {
	m := detached(t)
	h2 := &stateHandler{}
	h2.local = []byte("B")
	h1 := &stateHandler{}
	h1.local = []byte("A")
	m.Channel(2).SetHandler(h2) // created first, still framed in tag order
	m.Channel(1).SetHandler(h1)
	m.Channel(3).SetHandler(&recordingHandler{})
	m.Channel(4) // no handler yet
	got := delegate{m}.LocalState(false)
	want := appendStateFrame(appendStateFrame(nil, 1, []byte("A")), 2, []byte("B"))
	if !bytes.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestDelegate_NotifyMsg(t *testing.T) {
	m := detached(t)
	h := &recordingHandler{}
	m.Channel(4).SetHandler(h)
	d := delegate{m}
	d.NotifyMsg([]byte{4, 'b'})            // broadcast
	d.NotifyMsg([]byte{directTag, 4, 'd'}) // direct
	d.NotifyMsg([]byte{5, 'x'})            // channel without handler
	d.NotifyMsg([]byte{6})                 // unknown channel, empty payload
	d.NotifyMsg(nil)                       // malformed
	d.NotifyMsg([]byte{directTag})         // malformed
	d.NotifyMsg([]byte{4})                 // empty payload is a message
	if got := h.messages(); !slices.Equal(got, []string{"b", "d", ""}) {
		t.Fatalf("got %q", got)
	}
	for _, c := range []struct {
		label string
		vec   func(string) float64
		want  float64
	}{
		{kindBroadcast, func(l string) float64 { return testutil.ToFloat64(m.metrics.received.WithLabelValues(l)) }, 2},
		{kindDirect, func(l string) float64 { return testutil.ToFloat64(m.metrics.received.WithLabelValues(l)) }, 1},
		{dropNoHandler, func(l string) float64 { return testutil.ToFloat64(m.metrics.dropped.WithLabelValues(l)) }, 2},
		{dropMalformed, func(l string) float64 { return testutil.ToFloat64(m.metrics.dropped.WithLabelValues(l)) }, 2},
	} {
		if got := c.vec(c.label); got != c.want {
			t.Errorf("%s: got %v, want %v", c.label, got, c.want)
		}
	}
}

func TestDelegate_GetBroadcastsIsFairAcrossChannels(t *testing.T) {
	m := detached(t)
	// Each channel has far more than fits one packet.
	for _, tag := range []byte{1, 2, 3} {
		c := m.Channel(tag)
		for range 50 {
			if err := c.Broadcast("", bytes.Repeat([]byte{tag}, 200)); err != nil {
				t.Fatalf("broadcast: %v", err)
			}
		}
	}
	firstPick := map[byte]int{}
	for range 30 {
		msgs := delegate{m}.GetBroadcasts(3, 1000)
		if len(msgs) == 0 {
			t.Fatal("no broadcasts")
		}
		used := 0
		for _, msg := range msgs {
			used += 3 + len(msg)
		}
		if used > 1000 {
			t.Fatalf("used %d bytes, limit 1000", used)
		}
		firstPick[msgs[0][0]]++
	}
	for _, tag := range []byte{1, 2, 3} {
		if firstPick[tag] != 10 {
			t.Fatalf("first pick per channel: %v, want 10 each", firstPick)
		}
	}
}

func TestChannel_SetHandlerTwicePanics(t *testing.T) {
	m := detached(t)
	c := m.Channel(1)
	if m.Channel(1) != c {
		t.Fatal("Channel(1) returned a different channel")
	}
	c.SetHandler(&recordingHandler{})
	for name, f := range map[string]func(){
		"second handler": func() { c.SetHandler(&recordingHandler{}) },
		"nil handler":    func() { m.Channel(2).SetHandler(nil) },
		"tag 0":          func() { m.Channel(0) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f()
		})
	}
}

func TestMeta_EncodeDecode(t *testing.T) {
	server := Meta{HTTPAddr: "10.0.0.1:8080", RaftAddr: "10.0.0.1:8300", Modules: []string{"kv"}, Version: "1.2.3", BootstrapExpect: 3, HasRaftState: true, Role: RoleServer}
	client := Meta{HTTPAddr: "10.0.0.2:8080", RaftAddr: "10.0.0.2:8300", Modules: []string{"kv"}, Version: "1.2.3", Role: RoleClient}
	for _, meta := range []Meta{server, client} {
		for _, leaving := range []bool{false, true} {
			buf, err := encodeMeta(meta, leaving)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			got, gotLeaving, err := decodeMeta(buf)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !got.Equal(meta) || gotLeaving != leaving || got.IsClient() != (meta.Role == RoleClient) {
				t.Fatalf("got %+v leaving=%v, want %+v leaving=%v", got, gotLeaving, meta, leaving)
			}
		}
	}
	// A node of a version before roles says nothing: it is a server.
	if got, _, err := decodeMeta([]byte(`{"h":"10.0.0.3:8080","r":"10.0.0.3:8300"}`)); err != nil || got.Role != RoleServer {
		t.Fatalf("meta without a role: got %+v, %v", got, err)
	}
	if got, _, err := decodeMeta(nil); err != nil || !got.Equal(Meta{}) {
		t.Fatalf("empty meta: got %+v, %v", got, err)
	}
	if _, _, err := decodeMeta([]byte("{")); err == nil {
		t.Fatal("decode garbage: got nil error")
	}
}

// FuzzMergeRemoteState feeds arbitrary push/pull state to the delegate: it
// must never panic, must dispatch only well-formed buffers, and every
// buffer it accepts must re-encode to itself.
func FuzzMergeRemoteState(f *testing.F) {
	f.Add(appendStateFrame(appendStateFrame(nil, 1, []byte("one")), 2, []byte("two")))
	f.Add([]byte{1, 0x80})
	m := detached(f)
	var merged atomic.Int64
	for _, tag := range []byte{1, 2} {
		m.Channel(tag).SetHandler(countingState{&merged})
	}
	m.Channel(3).SetHandler(&recordingHandler{})
	d := delegate{m}
	f.Fuzz(func(t *testing.T, buf []byte) {
		frames, err := decodeStateFrames(buf)
		before := merged.Load()
		d.MergeRemoteState(buf, false)
		got := merged.Load() - before
		if err != nil {
			if got != 0 {
				t.Fatalf("malformed buffer %q reached a handler", buf)
			}
			return
		}
		total := 0
		var re []byte
		for _, fr := range frames {
			total += 1 + len(fr.data)
			re = appendStateFrame(re, fr.tag, fr.data)
		}
		if total > len(buf) {
			t.Fatalf("frames hold %d bytes, buffer has %d", total, len(buf))
		}
		// Uvarints have non-minimal encodings (0x80 0x00 is 0) that the
		// decoder accepts, so compare the frames decoded again.
		again, err := decodeStateFrames(re)
		if err != nil || len(again) != len(frames) {
			t.Fatalf("re-encoding %q: %d frames, %v", buf, len(again), err)
		}
		for i := range frames {
			if again[i].tag != frames[i].tag || !bytes.Equal(again[i].data, frames[i].data) {
				t.Fatalf("frame %d changed after re-encoding", i)
			}
		}
		want := int64(0)
		for _, fr := range frames {
			if fr.tag == 1 || fr.tag == 2 {
				want++
			}
		}
		if got != want {
			t.Fatalf("%d frames for state handlers, %d dispatched", want, got)
		}
	})
}

// countingState counts the state frames merged into it.
type countingState struct{ n *atomic.Int64 }

func (c countingState) NotifyMsg([]byte)                       {}
func (c countingState) LocalState(bool) []byte                 { return nil }
func (c countingState) MergeRemoteState(buf []byte, join bool) { c.n.Add(1) }
