package kv

import (
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxKeyLen is the longest key, in bytes.
const MaxKeyLen = 512

// maxNodeLen is the longest node name a message or record may carry (the
// agent allows 64 bytes; the slack keeps old data readable if that grows).
const maxNodeLen = 255

// entry is one version of one key: a value, or a tombstone when Deleted.
// A tombstone's Value is empty.
type entry struct {
	Key     string
	Value   string
	Version Version
	Deleted bool
	// Expires, if not 0, is when the value expires (Unix ms, by the
	// clocks of the nodes that read it): from then on it is the
	// tombstone expiredTombstone returns, on every node alike. Only a
	// live value expires, and only after its version's time.
	Expires int64
}

// expiredSuffix ends the node name of the tombstone an expiry makes. The
// kv module refuses node names with a NUL, so no write of any node can
// have that tombstone's version.
const expiredSuffix = "\x00expired"

// expiredAt reports whether e is a value that has expired at nowMs.
func (e entry) expiredAt(nowMs int64) bool {
	return !e.Deleted && e.Expires != 0 && e.Expires <= nowMs
}

// expiredTombstone is the tombstone that replaces e when it expires. Its
// version depends on e alone (the expiry time, the writer's counter and
// name with expiredSuffix), so every node makes the same tombstone on its
// own, and one node's tombstone arriving at another that made it already
// is not newer there: nothing flaps. It is newer than e (Expires is after
// e's time), so it replaces e everywhere, and anti-entropy cannot bring e
// back.
func (e entry) expiredTombstone() entry {
	return entry{Key: e.Key, Version: Version{Time: e.Expires, Counter: e.Version.Counter, Node: e.Version.Node + expiredSuffix}, Deleted: true}
}

// validKey reports whether key is 1 to MaxKeyLen bytes of UTF-8 without
// control characters.
func validKey(key string) bool {
	return key != "" && validPrefix(key)
}

// validPrefix is validKey that also allows the empty string.
func validPrefix(s string) bool {
	if len(s) > MaxKeyLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// validNode reports whether a version's node name is acceptable.
func validNode(node string) bool {
	return node != "" && len(node) <= maxNodeLen && utf8.ValidString(node)
}

// valid reports whether e could have been written through the API: a
// valid key, node and time, UTF-8 text, and no value on a tombstone. The
// value size is not checked: --kv-max-value is a local setting.
func (e entry) valid() bool {
	return validKey(e.Key) && validNode(e.Version.Node) && e.Version.Time >= 0 && e.Version.Time <= maxTime &&
		len(e.Value) <= maxValueLimit && utf8.ValidString(e.Value) && (!e.Deleted || e.Value == "") &&
		validExpiry(e.Version, e.Deleted, e.Expires)
}

// validExpiry reports whether expires fits an entry of version ver: none,
// or a live value's expiry after its version's time (so the tombstone is
// newer than the value) and in the range of version times.
func validExpiry(ver Version, deleted bool, expires int64) bool {
	return expires == 0 || !deleted && expires > ver.Time && expires <= maxTime
}

// EntryJSON is an entry as the API shows it: the body of GET
// /v1/kv/{key}, an item of a list, the data of a watch event.
type EntryJSON struct {
	Key     string  `json:"key"`
	Value   *string `json:"value,omitempty"`
	Version Version `json:"version"`
	// UpdatedAt is the physical time of the version: when the write
	// happened, by the clock of the node that wrote it.
	UpdatedAt string `json:"updated_at"`
	// ExpiresAt is when a value written with a TTL expires (RFC 3339);
	// absent without one.
	ExpiresAt string `json:"expires_at,omitempty"`
}

// json returns e as the API shows it; a tombstone has no value.
func (e entry) json() EntryJSON {
	out := EntryJSON{Key: e.Key, Version: e.Version, UpdatedAt: e.Version.WallTime().Format(time.RFC3339Nano)}
	if !e.Deleted {
		v := e.Value
		out.Value = &v
	}
	if e.Expires != 0 {
		out.ExpiresAt = time.UnixMilli(e.Expires).UTC().Format(time.RFC3339Nano)
	}
	return out
}
