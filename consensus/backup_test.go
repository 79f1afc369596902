package consensus

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"shoal/modules"
)

// backupBodyFile writes a backup body: a snapshot with one Raft module's
// section, then (unless v1) the other sections. It
// returns the file and where the snapshot ends.
func backupBodyFile(t *testing.T, v1 bool, sections map[string]string) (*os.File, int64) {
	t.Helper()
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	w.Write(snapshotMagic)
	w.Write(binary.AppendUvarint(nil, 42))
	w.WriteByte(7) // a Raft module's tag
	cw := &chunkWriter{w: w}
	cw.Write(bytes.Repeat([]byte("r"), 3*snapshotChunk/2))
	cw.Close()
	w.WriteByte(byte(modules.TagNone))
	w.Flush()
	snapEnd := int64(buf.Len())
	if !v1 {
		for _, name := range []string{"kv", "other"} {
			data, ok := sections[name]
			if !ok {
				continue
			}
			w.Write(binary.AppendUvarint(nil, uint64(len(name))))
			w.WriteString(name)
			cw := &chunkWriter{w: w}
			cw.Write([]byte(data))
			cw.Close()
		}
		w.WriteByte(0)
	}
	w.Flush()
	path := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, snapEnd
}

func TestWalkBackupBody_FindsTheSnapshotEndAndTheSections(t *testing.T) {
	f, want := backupBodyFile(t, false, map[string]string{"kv": "{\"kv_backup\":1}\n", "other": "x"})
	got := map[string]string{}
	collect := func(name string, r io.Reader) error {
		b, err := io.ReadAll(r)
		got[name] = string(b)
		return err
	}
	end, err := walkBackupBody(f, 0, false, collect)
	if err != nil || end != want {
		t.Fatalf("walk: end %d, %v; want end %d", end, err, want)
	}
	if got["kv"] != "{\"kv_backup\":1}\n" || got["other"] != "x" || len(got) != 2 {
		t.Fatalf("sections: %q", got)
	}
	// From the snapshot's end: the sections again, as a restore reads them.
	clear(got)
	if _, err := walkBackupBody(f, end, false, collect); err != nil || len(got) != 2 {
		t.Fatalf("walk from %d: %q, %v", end, got, err)
	}
	// A section its reader refuses stops the walk with that error.
	refuse := errors.New("refused")
	if _, err := walkBackupBody(f, 0, false, func(string, io.Reader) error { return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("a refused section: %v", err)
	}
}

func TestWalkBackupBody_Version1HasNoSections(t *testing.T) {
	f, want := backupBodyFile(t, true, nil)
	end, err := walkBackupBody(f, 0, true, func(name string, _ io.Reader) error {
		t.Fatalf("a version 1 body has no sections, got %q", name)
		return nil
	})
	if err != nil || end != want {
		t.Fatalf("walk: end %d, %v; want end %d", end, err, want)
	}
}

func TestWalkBackupBody_RefusesWhatDoesNotEndWhereItShould(t *testing.T) {
	// withoutEnd drops the body's final 0 (no more sections) so that
	// the test can put something else there.
	withoutEnd := func(tail ...byte) func([]byte) []byte {
		return func(b []byte) []byte { return append(b[:len(b)-1], tail...) }
	}
	for name, tc := range map[string]struct {
		v1     bool
		mangle func([]byte) []byte
	}{
		"a byte after the sections":           {false, func(b []byte) []byte { return append(b, 1) }},
		"sections after a version 1 snapshot": {true, func(b []byte) []byte { return append(b, 2, 'k', 'v', 0) }},
		"a section name cut off":              {false, withoutEnd(2, 'k')},
		"a section without its end":           {false, withoutEnd(2, 'k', 'v', 3, 'a', 'b')},
		"a name longer than any module's":     {false, withoutEnd(binary.AppendUvarint(nil, maxSectionName+1)...)},
	} {
		t.Run(name, func(t *testing.T) {
			f, _ := backupBodyFile(t, tc.v1, nil)
			b, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f.Name(), tc.mangle(b), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := walkBackupBody(f, 0, tc.v1, func(string, io.Reader) error { return nil }); !errors.Is(err, ErrBadBackup) {
				t.Fatalf("got %v, want ErrBadBackup", err)
			}
		})
	}
}
