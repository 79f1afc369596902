package replication

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
)

// TestStore_CacheSurvivesCleanRestart saves the hash cache, reloads it in
// a new store, and checks that entries are used only while the file is
// unchanged, and that the cache file is consumed (a crash afterwards
// hashes afresh).
func TestStore_CacheSurvivesCleanRestart(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "files")
	st, err := openStore(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.appendTo("log/a", -1, []byte("hello ")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.appendTo("log/a", 6, []byte("world")); err != nil {
		t.Fatal(err)
	}
	if err := st.flush(); err != nil {
		t.Fatal(err)
	}
	if err := st.saveCache(base); err != nil {
		t.Fatal(err)
	}
	_ = st.close()

	st2, err := openStore(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.close()
	if err := st2.loadCache(base); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(base, cacheFile)); !os.IsNotExist(err) {
		t.Fatalf("the cache file was not consumed: %v", err)
	}
	if len(st2.cache) != 1 {
		t.Fatalf("cache has %d entries, want 1", len(st2.cache))
	}
	e, err := st2.stat("log/a")
	if err != nil || e.Sum != sha256.Sum256([]byte("hello world")) {
		t.Fatalf("entry %+v, %v", e, err)
	}
	// Changed behind the cache's back: hashed again.
	if err := os.WriteFile(filepath.Join(dir, "log", "a"), []byte("other"), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err = st2.stat("log/a")
	if err != nil || e.Sum != sha256.Sum256([]byte("other")) {
		t.Fatalf("after a change: entry %+v, %v", e, err)
	}
	// An append extends the cached hash state.
	if _, err := st2.appendTo("log/a", 5, []byte("!")); err != nil {
		t.Fatal(err)
	}
	if e, err = st2.stat("log/a"); err != nil || e.Sum != sha256.Sum256([]byte("other!")) {
		t.Fatalf("after an append: entry %+v, %v", e, err)
	}
	if _, err := st2.appendTo("log/a", 3, []byte("x")); err == nil {
		t.Fatalf("an append at the wrong offset was accepted")
	}
}
