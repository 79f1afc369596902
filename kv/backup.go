package kv

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"shoal/internal/httpjson"
)

// kv's section of a backup (modules.BackupSection; docs/operations.md,
// "Backups") is JSON, one value per line: a header, then each live key of
// the node that saved it, in key order:
//
//	{"kv_backup":1,"node":"n1","created":"2026-12-05T21:00:00Z"}
//	{"key":"config/a","value":"1"}
//	{"key":"session/x","value":"…","expires_ms":1796500000000}
//
// Versions are not kept: a restore writes every key anew on the node that
// restores, with versions newer than any it has seen, and deletes the live
// keys the backup does not hold, so that once gossip has spread those
// writes every node holds what the backup holds. Tombstones are not kept
// either; they only matter against older versions, which the new writes
// beat anyway.

// backupFormat is the section's version, in its header.
const backupFormat = 1

// backupBatch is how many keys a restore writes in one transaction.
const backupBatch = 512

// ErrNotSyncedForBackup: this node has not completed its first sync, so
// its kv data may be missing what other nodes hold.
var ErrNotSyncedForBackup = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "kv_not_synced",
	Message: "this node's kv store has not completed its first sync with the cluster, so a backup could miss keys; try again shortly or back up from another node", RetryAfter: time.Second}

type backupHeader struct {
	Format  int       `json:"kv_backup"`
	Node    string    `json:"node"`
	Created time.Time `json:"created"`
}

type backupEntry struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	// ExpiresMs is the value's expiry (Unix ms), if it has a TTL.
	ExpiresMs int64 `json:"expires_ms,omitempty"`
}

// SaveBackup writes every live key of this node, from one consistent read
// of its store.
func (k *KV) SaveBackup(ctx context.Context, w io.Writer) error {
	if err := k.acquire(); err != nil {
		return err
	}
	defer k.release()
	if !k.isSynced() {
		return ErrNotSyncedForBackup
	}
	now := k.cfg.now()
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(backupHeader{Format: backupFormat, Node: k.node, Created: now.UTC()}); err != nil {
		return err
	}
	nowMs := now.UnixMilli()
	err := k.st.forEach(func(e entry) error {
		if e.Deleted || e.expiredAt(nowMs) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		return enc.Encode(backupEntry{Key: e.Key, Value: e.Value, ExpiresMs: e.Expires})
	})
	if err != nil {
		return fmt.Errorf("kv backup: %w", err)
	}
	return bw.Flush()
}

// CheckBackup reads a whole section and reports the first thing
// RestoreBackup would refuse.
func (k *KV) CheckBackup(r io.Reader) error {
	_, err := readBackup(r, func(backupEntry) error { return nil })
	return err
}

// readBackup decodes a section, calling fn with each entry once it is
// known to be valid. It returns the number of entries.
func readBackup(r io.Reader, fn func(backupEntry) error) (int, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var h backupHeader
	if err := dec.Decode(&h); err != nil {
		return 0, fmt.Errorf("kv section header: %w", err)
	}
	if h.Format != backupFormat {
		return 0, fmt.Errorf("kv section of format %d; this node reads format %d", h.Format, backupFormat)
	}
	n := 0
	for {
		var e backupEntry
		err := dec.Decode(&e)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("kv section, entry %d: %w", n+1, err)
		}
		switch {
		case !validKey(e.Key):
			return n, fmt.Errorf("kv section, entry %d: %w", n+1, ErrInvalidKey)
		case len(e.Value) > maxValueLimit:
			return n, fmt.Errorf("kv section, key %q: a value of %d bytes, over the %d-byte limit", truncateKey([]byte(e.Key)), len(e.Value), maxValueLimit)
		case !utf8.ValidString(e.Value):
			return n, fmt.Errorf("kv section, key %q: %w", truncateKey([]byte(e.Key)), ErrInvalidValue)
		case e.ExpiresMs < 0 || e.ExpiresMs > maxTime:
			return n, fmt.Errorf("kv section, key %q: expiry %d out of range", truncateKey([]byte(e.Key)), e.ExpiresMs)
		}
		if err := fn(e); err != nil {
			return n, err
		}
		n++
	}
}

// RestoreBackup writes every key of the section that has not expired, as
// new versions of this node, then deletes every other live key, a batch
// (and one fsync) at a time. Gossip spreads the writes as any others.
func (k *KV) RestoreBackup(ctx context.Context, r io.Reader) error {
	if err := k.acquire(); err != nil {
		return err
	}
	defer k.release()
	kept := map[string]struct{}{}
	var batch []entry
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := k.writeBatch(batch); err != nil {
			return err
		}
		batch = batch[:0]
		return ctx.Err()
	}
	_, err := readBackup(r, func(b backupEntry) error {
		t, c := k.clock.Now()
		e := entry{Key: b.Key, Value: b.Value, Version: Version{Time: t, Counter: c, Node: k.node}, Expires: b.ExpiresMs}
		if e.Expires != 0 && e.Expires <= t {
			return nil // expired since the backup: absent, like any expired key
		}
		kept[e.Key] = struct{}{}
		batch = append(batch, e)
		if len(batch) == backupBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("kv restore: %w", err)
	}
	restored := len(kept)
	removed := 0
	for after := ""; ; {
		items, more, err := k.st.list("", after, backupBatch, k.cfg.now().UnixMilli(), false)
		if err != nil {
			return fmt.Errorf("kv restore: list the keys to remove: %w", err)
		}
		for _, it := range items {
			if _, ok := kept[it.Key]; ok {
				continue
			}
			t, c := k.clock.Now()
			batch = append(batch, entry{Key: it.Key, Version: Version{Time: t, Counter: c, Node: k.node}, Deleted: true})
			removed++
		}
		if err := flush(); err != nil {
			return fmt.Errorf("kv restore: %w", err)
		}
		if !more {
			break
		}
		after = items[len(items)-1].Key
	}
	k.logger.Warn("kv restored from a backup", "keys", restored, "removed", removed)
	return nil
}

// writeBatch writes entries this node made, as write does one: persisted
// in one transaction, applied, pushed to the other nodes.
func (k *KV) writeBatch(entries []entry) error {
	if err := k.st.persist(entries, false); err != nil {
		return err
	}
	k.st.apply(entries, k.horizon(k.cfg.now()))
	k.updateGauges()
	for _, e := range entries {
		k.broadcast(e, false)
		if e.Deleted {
			k.m.writes.WithLabelValues("delete").Inc()
		} else {
			k.m.writes.WithLabelValues("put").Inc()
		}
	}
	return nil
}
