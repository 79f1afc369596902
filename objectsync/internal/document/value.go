package document

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// ApplyValue applies an RFC 6902 patch to doc, a JSON object decoded by
// json.Unmarshal into an any, changing it in place, and returns the
// result (a new top-level value when the patch replaces the whole
// document). It is for clients, which hold many versions of one object
// and read few: decoding the document once and applying each patch to
// the tree costs microseconds, where Apply decodes and encodes the whole
// document for every patch. The replicated state keeps Apply: every
// node must apply a patch exactly as every other does, release after
// release. On an error doc may be partly changed: drop it. It never
// panics, and the result must still be a JSON object.
//
// It takes the patches Diff makes and what is like them: add, remove,
// replace and test, on paths of non-empty members and plain indices.
// Anything else (move, copy, the whole document, "", "01") it refuses
// with ErrNotSimple before changing doc, and the caller applies it with
// Apply: there the library's reading of RFC 6902 is looser, and a client
// must hold exactly what the servers hold.
func ApplyValue(doc any, patch []byte) (out any, err error) {
	var ops []patchOp
	if err := json.Unmarshal(patch, &ops); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPatch, err)
	}
	for _, op := range ops {
		if !simpleOp(op.Op, op.Path) {
			return nil, ErrNotSimple
		}
	}
	for i, op := range ops {
		if op.Path == nil {
			return nil, fmt.Errorf("%w: operation %d has no string path", ErrBadPatch, i)
		}
		path, err := parsePointer(*op.Path)
		if err != nil {
			return nil, err
		}
		var value any
		switch op.Op {
		case "add", "replace", "test":
			if op.Value == nil {
				return nil, fmt.Errorf("%w: operation %d (%s) has no value", ErrBadPatch, i, op.Op)
			}
			if err := json.Unmarshal(op.Value, &value); err != nil {
				return nil, fmt.Errorf("%w: operation %d: %w", ErrBadPatch, i, err)
			}
		case "move", "copy":
			if op.From == nil {
				return nil, fmt.Errorf("%w: operation %d (%s) has no string from", ErrBadPatch, i, op.Op)
			}
		case "remove":
		default:
			return nil, fmt.Errorf("%w: operation %d has op %q", ErrBadPatch, i, op.Op)
		}
		switch op.Op {
		case "add":
			doc, err = addValue(doc, path, value)
		case "remove":
			doc, _, err = removeValue(doc, path)
		case "replace":
			if len(path) == 0 {
				doc = value
			} else if _, err = getValue(doc, path); err == nil {
				if doc, _, err = removeValue(doc, path); err == nil {
					doc, err = addValue(doc, path, value)
				}
			}
		case "test":
			var got any
			if got, err = getValue(doc, path); err == nil && !reflect.DeepEqual(got, value) {
				err = fmt.Errorf("%w: test of %q failed", ErrPatchFailed, *op.Path)
			}
		case "move", "copy":
			var from []string
			if from, err = parsePointer(*op.From); err != nil {
				return nil, err
			}
			if op.Op == "move" {
				if isProperPrefix(from, path) {
					return nil, fmt.Errorf("%w: cannot move %q into itself", ErrPatchFailed, *op.From)
				}
				if doc, value, err = removeValue(doc, from); err == nil {
					doc, err = addValue(doc, path, value)
				}
			} else if value, err = getValue(doc, from); err == nil {
				if len(path) == 0 {
					// Apply's library copies to the path "" as to the
					// member "" of the root, not over the document:
					// a client must hold what the servers hold.
					path = []string{""}
				}
				doc, err = addValue(doc, path, deepCopy(value))
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, fmt.Errorf("%w: the result is not a JSON object", ErrPatchFailed)
	}
	return doc, nil
}

// ErrNotSimple: ApplyValue leaves this patch to Apply.
var ErrNotSimple = errors.New("patch is not one ApplyValue applies")

// simpleOp reports whether ApplyValue applies op exactly as Apply does.
func simpleOp(op string, path *string) bool {
	switch op {
	case "add", "remove", "replace", "test":
	default:
		return false
	}
	if path == nil || *path == "" {
		return false
	}
	tokens, err := parsePointer(*path)
	if err != nil {
		return false
	}
	for _, t := range tokens {
		if t == "" {
			return false
		}
		if _, err := strconv.Atoi(t); err == nil && strconv.Itoa(mustAtoi(t)) != t {
			return false // "01", "+1", "-0": read as numbers only by the library
		}
	}
	return true
}

func mustAtoi(t string) int {
	i, _ := strconv.Atoi(t)
	return i
}

// parsePointer splits an RFC 6901 JSON pointer into its reference tokens.
func parsePointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if p[0] != '/' {
		return nil, fmt.Errorf("%w: pointer %q does not start with /", ErrBadPatch, p)
	}
	tokens := strings.Split(p[1:], "/")
	for i, t := range tokens {
		if strings.Contains(t, "~") {
			if strings.Contains(strings.NewReplacer("~0", "", "~1", "").Replace(t), "~") {
				return nil, fmt.Errorf("%w: pointer %q has a bad escape", ErrBadPatch, p)
			}
			tokens[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(t)
		}
	}
	return tokens, nil
}

func isProperPrefix(prefix, path []string) bool {
	if len(prefix) >= len(path) {
		return false
	}
	for i := range prefix {
		if prefix[i] != path[i] {
			return false
		}
	}
	return true
}

// arrayIndex parses an array index token below limit (len for a lookup,
// len+1 for an insertion) as Apply's library does (strconv.Atoi, no
// negative index), which is looser than RFC 6901 ("01" is 1): a client
// must accept whatever the servers applied.
func arrayIndex(t string, limit int) (int, error) {
	i, err := strconv.Atoi(t)
	if err != nil || i < 0 || i >= limit {
		return 0, fmt.Errorf("%w: %q is not an index below %d", ErrPatchFailed, t, limit)
	}
	return i, nil
}

// getValue returns the value at path.
func getValue(doc any, path []string) (any, error) {
	cur := doc
	for _, t := range path {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[t]
			if !ok {
				return nil, fmt.Errorf("%w: no member %q", ErrPatchFailed, t)
			}
			cur = v
		case []any:
			i, err := arrayIndex(t, len(c))
			if err != nil {
				return nil, err
			}
			cur = c[i]
		default:
			return nil, fmt.Errorf("%w: %q is inside a scalar", ErrPatchFailed, t)
		}
	}
	return cur, nil
}

// parentOf returns the container path's last token refers into.
func parentOf(doc any, path []string) (any, error) {
	return getValue(doc, path[:len(path)-1])
}

// setChild stores v as the container at path's parent's new child: arrays
// are values in Go, so the parent's own parent is updated too.
func setChild(doc any, path []string, child any) any {
	if len(path) == 1 {
		return child
	}
	parent, _ := parentOf(doc, path[:len(path)-1])
	switch p := parent.(type) {
	case map[string]any:
		p[path[len(path)-2]] = child
	case []any:
		i, _ := strconv.Atoi(path[len(path)-2])
		p[i] = child
	}
	return doc
}

// addValue adds v at path (RFC 6902 "add").
func addValue(doc any, path []string, v any) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	parent, err := parentOf(doc, path)
	if err != nil {
		return nil, err
	}
	last := path[len(path)-1]
	switch p := parent.(type) {
	case map[string]any:
		p[last] = v
		return doc, nil
	case []any:
		i := len(p)
		if last != "-" {
			if i, err = arrayIndex(last, len(p)+1); err != nil {
				return nil, err
			}
		}
		grown := append(p, nil)
		copy(grown[i+1:], grown[i:])
		grown[i] = v
		return setChild(doc, path, grown), nil
	default:
		return nil, fmt.Errorf("%w: %q is inside a scalar", ErrPatchFailed, last)
	}
}

// removeValue removes the value at path and returns it (RFC 6902
// "remove"); the whole document cannot be removed.
func removeValue(doc any, path []string) (any, any, error) {
	if len(path) == 0 {
		return nil, nil, fmt.Errorf("%w: cannot remove the whole document", ErrPatchFailed)
	}
	parent, err := parentOf(doc, path)
	if err != nil {
		return nil, nil, err
	}
	last := path[len(path)-1]
	switch p := parent.(type) {
	case map[string]any:
		v, ok := p[last]
		if !ok {
			return nil, nil, fmt.Errorf("%w: no member %q", ErrPatchFailed, last)
		}
		delete(p, last)
		return doc, v, nil
	case []any:
		i, err := arrayIndex(last, len(p))
		if err != nil {
			return nil, nil, err
		}
		v := p[i]
		shrunk := append(p[:i:i], p[i+1:]...)
		return setChild(doc, path, shrunk), v, nil
	default:
		return nil, nil, fmt.Errorf("%w: %q is inside a scalar", ErrPatchFailed, last)
	}
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	default:
		return v
	}
}
