package kv

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"shoal/internal/moduletest"
	"shoal/internal/testcluster"
	"shoal/internal/wire"
)

func sampleEntry(key, value string) entry {
	return entry{Key: key, Value: value, Version: Version{Time: testEpoch.UnixMilli(), Counter: 3, Node: "node1"}}
}

// sampleMessages has one message of every type, with every field used.
func sampleMessages() []message {
	e1 := sampleEntry("config/a", "value é \n")
	e2 := entry{Key: "config/b", Version: Version{Time: 5, Counter: 0, Node: "n2"}, Deleted: true}
	notice := e1
	notice.Value = ""
	return []message{
		{Type: msgEntry, From: "n1", Entries: []entry{e1}},
		{Type: msgEntry, From: "n1", Entries: []entry{e2}},
		{Type: msgNotice, From: "n1", Entries: []entry{notice}},
		{Type: msgDigest, From: "n1", Ref: 42, Level: 1, Nodes: []treeNode{{0, 1}, {15, 1<<64 - 1}}},
		{Type: msgDigest, From: "n1", Ref: 1, Level: 3, Nodes: []treeNode{{4095, 7}}},
		{Type: msgDigest, From: "n1", Ref: 1, Level: 2, Nodes: []treeNode{}},
		{Type: msgDigest, From: "n1", Ref: 9, Level: 0, Nodes: []treeNode{{0, 12345}}},
		{Type: msgSummary, From: "n1", Ref: 9, Leaves: []leafSummary{
			{Leaf: 7, Items: []summaryItem{{Key: "a", Version: e1.Version}, {Key: "b", Version: e2.Version, Deleted: true}}},
			{Leaf: 4095, Items: []summaryItem{}},
		}},
		{Type: msgPush, From: "n1", Ref: 9, Final: true, Entries: []entry{e1, e2}, Wants: []want{{Key: "c", Version: e1.Version}}},
		{Type: msgPush, From: "n1", Entries: []entry{}, Wants: []want{}},
		{Type: msgSyncReq, From: "n1", Ref: 77},
		{Type: msgSyncData, From: "n1", Ref: 77, Seq: 3, Last: true, Entries: []entry{e1, e2}},
		{Type: msgNotSynced, From: "n1", Ref: 77, LastSync: testEpoch.UnixMilli(), Keys: 12, Busy: true},
	}
}

func TestMessage_RoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		t.Run(m.Type.String(), func(t *testing.T) {
			b := encodeMessage(m)
			got, err := decodeMessage(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("got %+v, want %+v", got, m)
			}
		})
	}
}

func TestMessage_RejectsMalformed(t *testing.T) {
	valid := encodeMessage(sampleMessages()[0])
	badEntry := func(mut func(*entry)) []byte {
		e := sampleEntry("k", "v")
		mut(&e)
		return encodeMessage(message{Type: msgEntry, From: "n1", Entries: []entry{e}})
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown type", append([]byte{99}, valid[1:]...)},
		{"truncated", valid[:len(valid)-1]},
		{"trailing byte", append(append([]byte{}, valid...), 0)},
		{"empty sender", encodeMessage(message{Type: msgSyncReq, From: "", Ref: 1})},
		{"empty key", badEntry(func(e *entry) { e.Key = "" })},
		{"control character in key", badEntry(func(e *entry) { e.Key = "a\x01" })},
		{"invalid UTF-8 value", badEntry(func(e *entry) { e.Value = "\xff" })},
		{"tombstone with a value", badEntry(func(e *entry) { e.Deleted = true })},
		{"negative time", badEntry(func(e *entry) { e.Version.Time = -1 })},
		{"time out of range", badEntry(func(e *entry) { e.Version.Time = maxTime + 1 })},
		{"key too long", badEntry(func(e *entry) { e.Key = strings.Repeat("k", MaxKeyLen+1) })},
		{"digest level 4", encodeMessage(message{Type: msgDigest, From: "n", Level: 4})},
		{"digest root index 1", encodeMessage(message{Type: msgDigest, From: "n", Level: 0, Nodes: []treeNode{{1, 0}}})},
		{"digest index out of level", encodeMessage(message{Type: msgDigest, From: "n", Level: 1, Nodes: []treeNode{{16, 0}}})},
		{"leaf out of range", encodeMessage(message{Type: msgSummary, From: "n", Leaves: []leafSummary{{Leaf: numLeaves}}})},
		{"unknown flag", []byte{byte(msgPush), 1, 'n', 0, 2, 0, 0}},
		{"huge list length", []byte{byte(msgPush), 1, 'n', 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"non-minimal varint", []byte{byte(msgSyncReq), 1, 'n', 0x80, 0x00}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if m, err := decodeMessage(tt.b); !errors.Is(err, ErrMalformedMessage) {
				t.Fatalf("got %+v, %v; want ErrMalformedMessage", m, err)
			}
		})
	}
}

func TestRecord_RoundTrip(t *testing.T) {
	withTTL := sampleEntry("x", "v")
	withTTL.Expires = withTTL.Version.Time + 30000
	for _, e := range []entry{sampleEntry("a/b", "v"), sampleEntry("a", ""), {Key: "t", Deleted: true, Version: Version{Time: 1, Node: "n"}}, withTTL} {
		got, err := decodeRecord([]byte(e.Key), encodeRecord(e))
		if err != nil || got != e {
			t.Fatalf("got %+v, %v; want %+v", got, err, e)
		}
		v, deleted, expires, err := decodeRecordVersion(encodeRecord(e))
		if err != nil || v != e.Version || deleted != e.Deleted || expires != e.Expires {
			t.Fatalf("version: got %+v %v %d %v", v, deleted, expires, err)
		}
	}
	rec := encodeRecord(sampleEntry("k", "v"))
	for name, b := range map[string][]byte{
		"empty":          nil,
		"unknown format": append([]byte{2}, rec[1:]...),
		"truncated":      rec[:len(rec)-1],
		"trailing":       append(append([]byte{}, rec...), 1),
	} {
		if _, err := decodeRecord([]byte("k"), b); !errors.Is(err, ErrMalformedRecord) {
			t.Fatalf("%s: got %v, want ErrMalformedRecord", name, err)
		}
	}
	if _, err := decodeRecord([]byte("bad\x00key"), rec); !errors.Is(err, ErrMalformedRecord) {
		t.Fatalf("a record under an invalid key: got %v, want ErrMalformedRecord", err)
	}
}

func TestBroadcast_FallsBackToNotice(t *testing.T) {
	net := newFakeNet()
	a := startNode(t, net, "a", testConfig())
	b := startNode(t, net, "b", testConfig())
	waitSynced(t, a, b)
	net.mu.Lock()
	net.dropBroadcasts = false
	net.mu.Unlock()
	big := strings.Repeat("x", 4000)
	a.put("big", big)
	a.put("small", "s")
	testcluster.Eventually(t, 10e9, func() error {
		if v, _ := b.get("big"); v != big {
			return errors.New("b lacks the big value")
		}
		return nil
	})
	if got := moduletest.MetricValue(t, a.reg, "shoal_kv_broadcasts_sent_total", "kind", "notice"); got != 1 {
		t.Fatalf("notices sent: got %v, want 1", got)
	}
	if got := moduletest.MetricValue(t, a.reg, "shoal_kv_broadcasts_sent_total", "kind", "entry"); got != 1 {
		t.Fatalf("entries sent: got %v, want 1", got)
	}
}

// TestCodec_FormatIsPinned decodes bytes written by the encoder before it
// moved onto internal/wire, and checks the encoder still writes them:
// nodes of different versions gossip with each other, and records stay on
// disk across upgrades.
func TestCodec_FormatIsPinned(t *testing.T) {
	pinned := []string{
		"01026e3108636f6e6669672f619082c3cf846503056e6f646531000a76616c756520c3a9200a",
		"01026e3108636f6e6669672f620a00026e320100",
		"02026e3108636f6e6669672f619082c3cf846503056e6f64653100",
		"03026e312a01020001000000000000000fffffffffffffffff",
		"03026e31010301ff1f0700000000000000",
		"03026e31010200",
		"03026e31090001003930000000000000",
		"04026e310902070201619082c3cf846503056e6f6465310001620a00026e3201ff1f00",
		"05026e3109010208636f6e6669672f619082c3cf846503056e6f646531000a76616c756520c3a9200a08636f6e6669672f620a00026e3201000101639082c3cf846503056e6f646531",
		"05026e3100000000",
		"06026e314d",
		"07026e314d03010208636f6e6669672f619082c3cf846503056e6f646531000a76616c756520c3a9200a08636f6e6669672f620a00026e320100",
		"08026e314d9082c3cf84650c01",
	}
	msgs := sampleMessages()
	if len(msgs) != len(pinned) {
		t.Fatalf("%d sample messages, %d pinned encodings", len(msgs), len(pinned))
	}
	for i, m := range msgs {
		want, err := hex.DecodeString(pinned[i])
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeMessage(m); !bytes.Equal(got, want) {
			t.Errorf("%s message %d: encodes as %x, want %x", m.Type, i, got, want)
		}
		if got, err := decodeMessage(want); err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("%s message %d: decodes as %+v, %v; want %+v", m.Type, i, got, err, m)
		}
	}
	records := []struct {
		e   entry
		hex string
	}{
		{sampleEntry("a/b", "v"), "019082c3cf846503056e6f646531000176"},
		{entry{Key: "t", Deleted: true, Version: Version{Time: 1, Node: "n"}}, "010200016e0100"},
	}
	for _, r := range records {
		want, _ := hex.DecodeString(r.hex)
		if got := encodeRecord(r.e); !bytes.Equal(got, want) {
			t.Errorf("record of %q: encodes as %x, want %x", r.e.Key, got, want)
		}
		if got, err := decodeRecord([]byte(r.e.Key), want); err != nil || got != r.e {
			t.Errorf("record of %q: decodes as %+v, %v; want %+v", r.e.Key, got, err, r.e)
		}
	}
}

// TestCodec_EntriesWithoutExpiryKeepTheOldFormat pins the compatibility
// with the release before TTLs: an entry without an expiry is encoded,
// on the wire and on disk, byte for byte as that release did (key,
// version, a deleted byte of 0 or 1, value), so both releases read each
// other's entries and records; only an entry with an expiry sets flag 2
// and carries the varint after the flags.
func TestCodec_EntriesWithoutExpiryKeepTheOldFormat(t *testing.T) {
	old := func(e entry) []byte { // the previous release's appendEntry
		b := wire.AppendBytes(nil, e.Key)
		b = appendVersion(b, e.Version)
		b = wire.AppendBool(b, e.Deleted)
		return wire.AppendBytes(b, e.Value)
	}
	for _, e := range []entry{sampleEntry("a", "v"), {Key: "t", Version: ver(5, 1, "n"), Deleted: true}} {
		msg := encodeMessage(message{Type: msgEntry, From: "n", Entries: []entry{e}})
		want := append([]byte{byte(msgEntry), 1, 'n'}, old(e)...)
		if !bytes.Equal(msg, want) {
			t.Fatalf("entry %+v: got % x, want the old encoding % x", e, msg, want)
		}
		rec := encodeRecord(e)
		if wantRec := append([]byte{recordFormat}, old(e)[len(wire.AppendBytes(nil, e.Key)):]...); !bytes.Equal(rec, wantRec) {
			t.Fatalf("record %+v: got % x, want the old encoding % x", e, rec, wantRec)
		}
	}
	e := sampleEntry("a", "v")
	e.Expires = e.Version.Time + 1000
	b := appendEntry(nil, e)
	flags := b[len(appendVersion(wire.AppendBytes(nil, e.Key), e.Version))]
	if flags != flagExpires {
		t.Fatalf("got flags %#x for an entry with an expiry, want %#x", flags, flagExpires)
	}
}
