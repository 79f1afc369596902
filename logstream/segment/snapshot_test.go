package segment

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// openFrom serves a snapshot's files from its directory, as a peer would.
func openFrom(dir string) func(SegmentRef) (io.ReadCloser, error) {
	return func(ref SegmentRef) (io.ReadCloser, error) { return os.Open(filepath.Join(dir, ref.Name)) }
}

// TestSnapshot_SurvivesTrimsAndInstalls takes a snapshot, lets the store
// go on (appends, rolls, a trim that deletes the snapshot's segments), and
// installs the snapshot elsewhere: the installed store is the store as it
// was at the snapshot, and goes on from there.
func TestSnapshot_SurvivesTrimsAndInstalls(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, filepath.Join(root, "orders"), smallConfig())
	defer mustClose(t, s)
	raft := appendN(t, s, 1, 300, 7)
	if err := s.Trim(raft, 20); err != nil {
		t.Fatal(err)
	}
	raft++
	snapDir := filepath.Join(root, "snap")
	m, err := s.Snapshot(snapDir)
	if err != nil {
		t.Fatal(err)
	}
	if m.First != 20 || m.Next != 301 || m.Applied != raft-1 || len(m.Segments) != s.Stats().Segments {
		t.Fatalf("manifest %+v", m)
	}
	decoded, err := DecodeManifest(AppendManifest(nil, m))
	if err != nil || !reflect.DeepEqual(decoded, m) {
		t.Fatalf("manifest round trip: got %+v, %v, want %+v", decoded, err, m)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := SyncSnapshot(snapDir); err != nil {
		t.Fatal(err)
	}
	// The store goes on; its old segments are trimmed away.
	raft = appendN(t, s, raft, 200, 9)
	if err := s.Trim(raft, 450); err != nil {
		t.Fatal(err)
	}
	for _, ref := range m.Segments {
		if _, err := os.Stat(filepath.Join(snapDir, ref.Name)); err != nil {
			t.Fatalf("the snapshot lost %s: %v", ref.Name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), m.Segments[0].Name)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the trim did not delete %s from the store", m.Segments[0].Name)
	}

	inst, err := Install(filepath.Join(root, "restored"), m, smallConfig(), openFrom(snapDir))
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, inst)
	checkEntries(t, readAll(t, inst, 64), 20, 301)
	if inst.Applied() != m.Applied {
		t.Fatalf("installed applied %d, want %d", inst.Applied(), m.Applied)
	}
	appendN(t, inst, m.Applied+1, 10, 3)
	checkEntries(t, readAll(t, inst, 64), 20, 311)
}

func TestInstall_RefusesBadInput(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, filepath.Join(root, "orders"), smallConfig())
	appendN(t, s, 1, 200, 7)
	snapDir := filepath.Join(root, "snap")
	m, err := s.Snapshot(snapDir)
	if err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	short := func(ref SegmentRef) (io.ReadCloser, error) {
		f, err := os.Open(filepath.Join(snapDir, ref.Name))
		if err != nil {
			return nil, err
		}
		return struct {
			io.Reader
			io.Closer
		}{io.LimitReader(f, ref.Size-1), f}, nil
	}
	lying := m
	lying.Next++
	renamed := m
	renamed.Segments = append([]SegmentRef(nil), m.Segments...)
	renamed.Segments[0].Name = "../escape.seg"
	for _, c := range []struct {
		name string
		m    Manifest
		open func(SegmentRef) (io.ReadCloser, error)
		want error
	}{
		{"a short file", m, short, io.ErrUnexpectedEOF},
		{"a manifest that does not match", lying, openFrom(snapDir), ErrCorrupt},
		{"a name that is not the base's", renamed, openFrom(snapDir), ErrCorrupt},
		{"no segments", Manifest{First: 1, Next: 1}, openFrom(snapDir), ErrCorrupt},
	} {
		dir := filepath.Join(root, "restored")
		_, err := Install(dir, c.m, smallConfig(), c.open)
		if !errors.Is(err, c.want) {
			t.Fatalf("%s: got %v, want %v", c.name, err, c.want)
		}
		for _, d := range []string{dir, dir + installingSuffix} {
			if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s: %s left behind", c.name, d)
			}
		}
	}
	if _, err := Install(filepath.Join(root, "orders"), m, smallConfig(), openFrom(snapDir)); !errors.Is(err, os.ErrExist) {
		t.Fatalf("install over an existing store: got %v", err)
	}
}
