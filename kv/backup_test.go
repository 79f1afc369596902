package kv

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// A backup section saved on one node and restored on another makes the
// second hold exactly the first's live keys, with their expiries: keys it
// had that the backup lacks are deleted, and a value that expired since
// the backup was taken stays absent.
func TestBackup_RestoreReplacesTheKeys(t *testing.T) {
	src := startNode(t, newFakeNet(), "src", testConfig())
	waitSynced(t, src)
	src.put("keep/a", "1")
	src.put("keep/b", strings.Repeat("é", 1000))
	src.put("gone", "x")
	src.del("gone")
	soon, err := src.kv.write(writeOp{key: "ttl/soon", value: "v", ttl: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	later, err := src.kv.write(writeOp{key: "ttl/later", value: "v", ttl: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var section bytes.Buffer
	if err := src.kv.SaveBackup(context.Background(), &section); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(section.String(), "\n"); got != 5 { // the header and 4 live keys
		t.Fatalf("the section has %d lines, want 5:\n%s", got, section.String())
	}
	if err := src.kv.CheckBackup(bytes.NewReader(section.Bytes())); err != nil {
		t.Fatalf("check: %v", err)
	}

	dst := startNode(t, newFakeNet(), "dst", testConfig())
	waitSynced(t, dst)
	dst.put("keep/a", "overwritten later")
	dst.put("extra", "not in the backup")
	time.Sleep(time.Until(time.UnixMilli(soon.Expires))) // ttl/soon expires
	if err := dst.kv.RestoreBackup(context.Background(), bytes.NewReader(section.Bytes())); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"keep/a": "1", "keep/b": strings.Repeat("é", 1000), "ttl/later": "v"}
	items, _, err := dst.kv.st.list("", "", 100, time.Now().UnixMilli(), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != len(want) {
		t.Fatalf("after the restore: %d keys, want %d: %+v", len(items), len(want), items)
	}
	for _, e := range items {
		if want[e.Key] != e.Value {
			t.Fatalf("after the restore %s = %q, want %q", e.Key, e.Value, want[e.Key])
		}
		if e.Version.Node != "dst" {
			t.Fatalf("%s restored at %+v, want a version of the restoring node", e.Key, e.Version)
		}
	}
	if v, _ := dst.kv.st.current("ttl/later", time.Now().UnixMilli()); v.Node != "dst" {
		t.Fatalf("ttl/later: %+v", v)
	}
	dst.kv.st.mu.RLock()
	expires := dst.kv.st.index["ttl/later"].expires
	dst.kv.st.mu.RUnlock()
	if expires != later.Expires {
		t.Fatalf("ttl/later expires at %d after the restore, want %d (the backup's)", expires, later.Expires)
	}
}

// A section that is not kv's, or damaged, is refused whole by CheckBackup,
// which a restore runs on every section before it changes anything.
func TestBackup_CheckRefusesABadSection(t *testing.T) {
	const header = `{"kv_backup":1,"node":"n1","created":"2026-12-05T00:00:00Z"}` + "\n"
	for name, section := range map[string]string{
		"empty":               "",
		"another format":      `{"kv_backup":2,"node":"n1"}` + "\n",
		"not JSON":            header + "key=value\n",
		"an unknown field":    header + `{"key":"a","value":"1","version":3}` + "\n",
		"an invalid key":      header + `{"key":"","value":"1"}` + "\n",
		"a control character": header + `{"key":"a\u0001b","value":"1"}` + "\n",
		"a negative expiry":   header + `{"key":"a","value":"1","expires_ms":-5}` + "\n",
		"cut in an entry":     header + `{"key":"a","val`,
	} {
		if err := (&KV{}).CheckBackup(strings.NewReader(section)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := (&KV{}).CheckBackup(strings.NewReader(header + `{"key":"a","value":"1"}` + "\n")); err != nil {
		t.Fatalf("a good section: %v", err)
	}
}

// FuzzBackupSection: the section decoder never panics, and what it
// accepts holds only keys a write could make.
func FuzzBackupSection(f *testing.F) {
	f.Add(`{"kv_backup":1,"node":"n1","created":"2026-12-05T00:00:00Z"}` + "\n" + `{"key":"a","value":"1","expires_ms":5}` + "\n")
	f.Add(`{"kv_backup":1}{"key":"a\u00e9","value":""}`)
	f.Add(`{"kv_backup":1}` + "\n" + `{"key":"` + strings.Repeat("k", MaxKeyLen+1) + `","value":"v"}`)
	f.Fuzz(func(t *testing.T, section string) {
		_, _ = readBackup(strings.NewReader(section), func(e backupEntry) error {
			if !validKey(e.Key) || e.ExpiresMs < 0 {
				t.Fatalf("accepted %+v", e)
			}
			return nil
		})
	})
}
