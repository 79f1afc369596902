package replication

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"shoal/internal/wire"
)

// The hash cache survives a clean restart: Stop writes it to the module's
// private data directory and Start reads it back and deletes the file, so
// a node that crashed (no Stop) hashes its files afresh. An entry is used
// only while the file's size, mtime and inode still match it.

const (
	cacheFile    = "hashcache"
	cacheVersion = 1
	// maxCacheEntries bounds what a cache file may hold.
	maxCacheEntries = 10_000_000
)

// saveCache writes the cache to dir/hashcache.
func (s *store) saveCache(dir string) error {
	s.mu.Lock()
	b := []byte{cacheVersion}
	b = wire.AppendUvarint(b, uint64(len(s.cache)))
	for p, c := range s.cache {
		b = wire.AppendBytes(b, p)
		b = wire.AppendUvarint(b, uint64(c.size))
		b = wire.AppendVarint(b, c.mtime)
		b = wire.AppendUvarint(b, c.ino)
		b = append(b, c.sum[:]...)
		b = wire.AppendBytes(b, c.state)
	}
	s.mu.Unlock()
	tmp := filepath.Join(dir, cacheFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save hash cache: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, cacheFile)); err != nil {
		return fmt.Errorf("save hash cache: %w", err)
	}
	return nil
}

// loadCache reads dir/hashcache, if there is one, into the cache and
// deletes the file. A cache that does not decode is ignored.
func (s *store) loadCache(dir string) error {
	name := filepath.Join(dir, cacheFile)
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load hash cache: %w", err)
	}
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("load hash cache: %w", err)
	}
	entries, err := decodeCache(b)
	if err != nil {
		return nil // hashed afresh
	}
	s.mu.Lock()
	for p, c := range entries {
		s.cache[p] = c
	}
	s.mu.Unlock()
	return nil
}

// decodeCache decodes what saveCache wrote.
func decodeCache(b []byte) (map[string]cacheEntry, error) {
	d := wire.NewDecoder(b)
	if v := d.Byte("version"); d.Err() == nil && v != cacheVersion {
		d.Failf("version", "version %d, want %d", v, cacheVersion)
	}
	n := d.Count("entries", 1+1+1+1+32+1)
	if n > maxCacheEntries {
		d.Failf("entries", "%d entries exceed %d", n, maxCacheEntries)
	}
	out := make(map[string]cacheEntry, min(n, 1<<16))
	for range n {
		p := d.String("path", maxPathLen)
		c := cacheEntry{size: int64(d.Uvarint("size")), mtime: d.Varint("mtime"), ino: d.Uvarint("ino")}
		copy(c.sum[:], d.Raw("sha256", 32))
		if st := d.Bytes("state", 1024); len(st) > 0 {
			c.state = append([]byte(nil), st...)
		}
		if d.Err() != nil {
			break
		}
		if !validPath(p) || c.size < 0 {
			d.Failf("path", "invalid entry %q", p)
			break
		}
		out[p] = c
	}
	if err := d.End(); err != nil {
		return nil, err
	}
	return out, nil
}
