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
		len(e.Value) <= maxValueLimit && utf8.ValidString(e.Value) && (!e.Deleted || e.Value == "")
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
}

// json returns e as the API shows it; a tombstone has no value.
func (e entry) json() EntryJSON {
	out := EntryJSON{Key: e.Key, Version: e.Version, UpdatedAt: e.Version.WallTime().Format(time.RFC3339Nano)}
	if !e.Deleted {
		v := e.Value
		out.Value = &v
	}
	return out
}
