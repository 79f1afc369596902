package document

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/wI2L/jsondiff"
)

// Errors of this package; the module maps them to client errors.
var (
	// ErrNotJSON: the input is not one valid JSON value.
	ErrNotJSON = errors.New("not valid JSON")
	// ErrNotObject: a document must be a JSON object.
	ErrNotObject = errors.New("not a JSON object")
	// ErrTooLarge: a document or patch result is over the size limit.
	ErrTooLarge = errors.New("over the size limit")
	// ErrBadPatch: a patch is not a JSON array of RFC 6902 operations.
	ErrBadPatch = errors.New("not an RFC 6902 patch")
	// ErrPatchFailed: a patch does not apply to the document (a test
	// failed, a path is missing).
	ErrPatchFailed = errors.New("patch does not apply")
)

// Canonical returns the canonical encoding of the JSON value in b (see the
// package documentation). It fails with ErrNotJSON on anything that is not
// exactly one JSON value.
func Canonical(b []byte) ([]byte, error) {
	if isCanonical(b) {
		return bytes.Clone(b), nil // already so: no decode and encode
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotJSON, err)
	}
	return Encode(v)
}

// Encode returns the canonical encoding of a value decoded by
// json.Unmarshal into an any (or built of the same types).
func Encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotJSON, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Object returns the canonical encoding of b, which must be a JSON object
// of at most maxSize canonical bytes (maxSize <= 0: no limit).
func Object(b []byte, maxSize int) ([]byte, error) {
	c, err := Canonical(b)
	if err != nil {
		return nil, err
	}
	if len(c) == 0 || c[0] != '{' {
		return nil, ErrNotObject
	}
	if maxSize > 0 && len(c) > maxSize {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(c), maxSize)
	}
	return c, nil
}

// Patch returns the canonical encoding of an RFC 6902 patch: a JSON array
// of operation objects, each with a known "op" and a string "path".
func Patch(b []byte) ([]byte, error) {
	var ops []map[string]any
	if err := json.Unmarshal(b, &ops); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPatch, err)
	}
	for i, op := range ops {
		name, _ := op["op"].(string)
		if _, ok := op["path"].(string); !ok {
			return nil, fmt.Errorf("%w: operation %d has no string path", ErrBadPatch, i)
		}
		switch name {
		case "add", "replace", "test":
			if _, ok := op["value"]; !ok {
				return nil, fmt.Errorf("%w: operation %d (%s) has no value", ErrBadPatch, i, name)
			}
		case "remove":
		case "move", "copy":
			if _, ok := op["from"].(string); !ok {
				return nil, fmt.Errorf("%w: operation %d (%s) has no string from", ErrBadPatch, i, name)
			}
		default:
			return nil, fmt.Errorf("%w: operation %d has op %q", ErrBadPatch, i, name)
		}
	}
	if ops == nil {
		ops = []map[string]any{}
	}
	return Encode(ops)
}

// Apply applies the canonical patch to the canonical object doc and returns
// the canonical result, which must be a JSON object of at most maxSize
// bytes (maxSize <= 0: no limit). It is deterministic and never panics.
func Apply(doc, patch []byte, maxSize int) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("%w: %v", ErrPatchFailed, r)
		}
	}()
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPatch, err)
	}
	opts := jsonpatch.NewApplyOptions()
	opts.SupportNegativeIndices = false // RFC 6902 has none
	opts.EscapeHTML = false
	if maxSize > 0 {
		opts.AccumulatedCopySizeLimit = int64(maxSize)
	}
	res, err := p.ApplyWithOptions(doc, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPatchFailed, err)
	}
	c, err := Canonical(res)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPatchFailed, err)
	}
	if len(c) == 0 || c[0] != '{' {
		return nil, fmt.Errorf("%w: the result is not a JSON object", ErrPatchFailed)
	}
	if maxSize > 0 && len(c) > maxSize {
		return nil, fmt.Errorf("%w: the result is %d bytes, the limit is %d", ErrTooLarge, len(c), maxSize)
	}
	return c, nil
}

// Diff returns a canonical RFC 6902 patch that turns the canonical object
// from into the canonical object to, or ok false when a patch would not be
// smaller than to itself (send the whole object then). It checks its own
// work: a patch that does not reproduce to exactly is never returned.
//
// It first walks the two encodings (splice.go), which is cheap and finds
// the patches of member changes; a patch that is not smaller (an array
// whose elements moved) is looked for again by jsondiff.
func Diff(from, to []byte) (patch []byte, ok bool) {
	if p, ok := spliceDiff(from, to); ok && len(p) < len(to) {
		if got, err := ApplyCanonical(from, p, 0); err == nil && bytes.Equal(got, to) {
			return p, true
		}
	}
	p, err := jsondiff.CompareJSON(from, to)
	if err != nil {
		return nil, false
	}
	ops := []jsondiff.Operation(p)
	if ops == nil {
		ops = []jsondiff.Operation{}
	}
	raw, err := json.Marshal(ops)
	if err != nil {
		return nil, false
	}
	patch, err = Canonical(raw)
	if err != nil || len(patch) >= len(to) {
		return nil, false
	}
	got, err := ApplyCanonical(from, patch, 0)
	if err != nil || !bytes.Equal(got, to) {
		return nil, false
	}
	return patch, true
}

// MaxIDLen is the length in bytes of the longest object id.
const MaxIDLen = 256

// ValidID reports whether id may name an object: 1 to MaxIDLen bytes of
// UTF-8 without control characters and without '*' (which patterns use).
func ValidID(id string) bool {
	return validText(id) && !containsStar(id)
}

// ValidPattern reports whether p is an id pattern: the text of an id in
// which each '*' stands for any run of characters (an id without '*' is a
// pattern matching only itself).
func ValidPattern(p string) bool { return validText(p) }

// IsPattern reports whether p has a wildcard.
func IsPattern(p string) bool { return containsStar(p) }

func containsStar(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '*' {
			return true
		}
	}
	return false
}

func validText(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}

// Match reports whether id matches pattern, where '*' matches any run of
// bytes (possibly empty). It runs in O(len(pattern)·len(id)) at worst.
func Match(pattern, id string) bool {
	p, s := 0, 0
	star, mark := -1, 0
	for s < len(id) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, s
			p++
		case p < len(pattern) && pattern[p] == id[s]:
			p++
			s++
		case star >= 0:
			p = star + 1
			mark++
			s = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
