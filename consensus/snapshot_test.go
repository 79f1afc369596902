package consensus

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"shoal/modules"
)

// blob is a RaftHandler whose state is one byte string.
type blob struct {
	tag      modules.Tag
	state    []byte
	restores int
}

func (b *blob) Tag() modules.Tag                             { return b.tag }
func (b *blob) ApplyCommand(modules.Command) ([]byte, error) { return nil, nil }
func (b *blob) Ops() []byte                                  { return []byte{1} }
func (b *blob) Snapshot() (modules.Snapshot, error)          { return blobSnap(b.state), nil }
func (b *blob) Restore(r io.Reader) error {
	b.restores++
	data, err := io.ReadAll(r)
	b.state = data
	return err
}

type blobSnap []byte

func (s blobSnap) Persist(w io.Writer) error { _, err := w.Write(s); return err }
func (s blobSnap) Release()                  {}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestSnapshot_RoundTripsEveryModuleAcrossChunks(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 3*snapshotChunk/10+7) // several chunks, ragged end
	a := &blob{tag: 1, state: big}
	b := &blob{tag: 3, state: []byte("small")}
	c := &blob{tag: 4} // empty state: a section with no chunks
	snap := &fsmSnapshot{applied: 42}
	for _, h := range []*blob{a, b, c} {
		s, _ := h.Snapshot()
		snap.parts = append(snap.parts, snapshotPart{tag: h.tag, snap: s})
	}
	var buf bytes.Buffer
	if err := snap.write(&buf); err != nil {
		t.Fatal(err)
	}
	ra, rb, rc := &blob{tag: 1}, &blob{tag: 3}, &blob{tag: 4, state: []byte("stale")}
	applied, err := readSnapshot(&buf, map[modules.Tag]modules.RaftHandler{1: ra, 3: rb, 4: rc})
	if err != nil {
		t.Fatal(err)
	}
	if applied != 42 {
		t.Fatalf("applied %d, want 42", applied)
	}
	if !bytes.Equal(ra.state, big) || string(rb.state) != "small" || len(rc.state) != 0 {
		t.Fatalf("restored %d/%q/%q bytes, want %d/small/empty", len(ra.state), rb.state, rc.state, len(big))
	}
}

func TestSnapshot_ModuleMissingFromSnapshotGetsEmptyState(t *testing.T) {
	snap := &fsmSnapshot{applied: 7, parts: []snapshotPart{{tag: 1, snap: blobSnap("x")}}}
	var buf bytes.Buffer
	if err := snap.write(&buf); err != nil {
		t.Fatal(err)
	}
	newer := &blob{tag: 9, state: []byte("left over")}
	if _, err := readSnapshot(&buf, map[modules.Tag]modules.RaftHandler{1: &blob{tag: 1}, 9: newer}); err != nil {
		t.Fatal(err)
	}
	if newer.restores != 1 || len(newer.state) != 0 {
		t.Fatalf("module absent from the snapshot: %d restores, state %q; want one restore to empty", newer.restores, newer.state)
	}
}

// TestSnapshot_RefusesSectionsOfUnknownModules: a node that does not run
// a module whose state the snapshot holds must not restore the rest and go
// on without it (it would diverge): the restore fails and says why.
func TestSnapshot_RefusesSectionsOfUnknownModules(t *testing.T) {
	snap := &fsmSnapshot{applied: 1, parts: []snapshotPart{{tag: 2, snap: blobSnap("unknown")}, {tag: 5, snap: blobSnap("known")}}}
	var buf bytes.Buffer
	if err := snap.write(&buf); err != nil {
		t.Fatal(err)
	}
	known := &blob{tag: 5}
	_, err := readSnapshot(&buf, map[modules.Tag]modules.RaftHandler{5: known})
	if !errors.Is(err, ErrUnknownModule) || !strings.Contains(err.Error(), "--modules") {
		t.Fatalf("got %v, want ErrUnknownModule naming --modules", err)
	}
}

func TestSnapshot_RejectsDamagedInput(t *testing.T) {
	snap := &fsmSnapshot{applied: 3, parts: []snapshotPart{{tag: 1, snap: blobSnap("payload")}}}
	var buf bytes.Buffer
	if err := snap.write(&buf); err != nil {
		t.Fatal(err)
	}
	whole := buf.Bytes()
	cases := map[string][]byte{
		"empty":     nil,
		"bad magic": append([]byte("not-a-snapshot----\n"), whole[len(snapshotMagic):]...),
		"truncated": whole[:len(whole)-3],
		"no end":    whole[:len(whole)-1],
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := readSnapshot(bytes.NewReader(data), map[modules.Tag]modules.RaftHandler{1: &blob{tag: 1}})
			if err == nil {
				t.Fatal("damaged snapshot accepted")
			}
		})
	}
}

func TestEnvelope_RoundTrip(t *testing.T) {
	cmd := EncodeCommand(modules.TagLocks, 7, []byte("payload"))
	tag, op, payload, err := DecodeCommand(cmd)
	if err != nil || tag != modules.TagLocks || op != 7 || string(payload) != "payload" {
		t.Fatalf("got %d %d %q %v", tag, op, payload, err)
	}
	if _, _, _, err := DecodeCommand([]byte{1}); err == nil {
		t.Fatal("a one-byte command was accepted")
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add(EncodeCommand(modules.TagLog, 1, []byte(`{"x":1}`)))
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, data []byte) {
		tag, op, payload, err := DecodeCommand(data)
		if err != nil {
			return
		}
		if again := EncodeCommand(tag, op, payload); !bytes.Equal(again, data) {
			t.Fatalf("re-encoding %x gave %x", data, again)
		}
	})
}

// FuzzReadSnapshot: any bytes either restore or fail with an error; never a
// panic, never a hang.
func FuzzReadSnapshot(f *testing.F) {
	snap := &fsmSnapshot{applied: 9, parts: []snapshotPart{{tag: 1, snap: blobSnap("abc")}, {tag: 2, snap: blobSnap(strings.Repeat("z", 300))}}}
	var buf bytes.Buffer
	if err := snap.write(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(snapshotMagic)
	f.Add(append(append([]byte{}, snapshotMagic...), 0x05, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f))
	f.Fuzz(func(t *testing.T, data []byte) {
		handlers := map[modules.Tag]modules.RaftHandler{1: &blob{tag: 1}, 2: &blob{tag: 2}}
		_, err := readSnapshot(bytes.NewReader(data), handlers)
		if err != nil && errors.Is(err, io.EOF) {
			t.Fatalf("bare EOF leaked from a damaged snapshot: %v", err)
		}
	})
}
