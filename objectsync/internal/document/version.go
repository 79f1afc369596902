package document

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
)

// ErrBadVersion: a version is not a number, an array of numbers, or an
// object mapping dependency names to such versions, within the limits.
var ErrBadVersion = errors.New("invalid version")

// Limits of a version.
const (
	MaxVersionBytes  = 4096
	maxVersionArray  = 64
	maxVersionDeps   = 256
	maxVersionDepLen = MaxIDLen
)

// Version is a parsed version: a number, an array of numbers (compared
// element by element), or a map of dependency name to a number or array
// (a declaration of dependencies). Its String is the canonical JSON.
type Version struct {
	raw  string
	num  float64
	arr  []float64
	deps map[string]Version
	kind versionKind
}

type versionKind byte

const (
	kindNone versionKind = iota
	kindNumber
	kindArray
	kindDeps
)

// ParseVersion parses and canonicalises a version.
func ParseVersion(b []byte) (Version, error) {
	if len(b) > MaxVersionBytes {
		return Version{}, fmt.Errorf("%w: %d bytes, the limit is %d", ErrBadVersion, len(b), MaxVersionBytes)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return Version{}, fmt.Errorf("%w: %w", ErrBadVersion, err)
	}
	ver, err := fromValue(v, true)
	if err != nil {
		return Version{}, err
	}
	raw, err := Encode(v)
	if err != nil {
		return Version{}, fmt.Errorf("%w: %w", ErrBadVersion, err)
	}
	ver.raw = string(raw)
	return ver, nil
}

// MustVersion is ParseVersion for versions known to be valid (canonical
// versions the state machine stored); an invalid one is the zero Version.
func MustVersion(raw string) Version {
	v, _ := ParseVersion([]byte(raw))
	return v
}

// NumberVersion returns the version n.
func NumberVersion(n float64) Version {
	raw, _ := Encode(n)
	return Version{raw: string(raw), num: n, kind: kindNumber}
}

func fromValue(v any, top bool) (Version, error) {
	switch t := v.(type) {
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return Version{}, fmt.Errorf("%w: not a finite number", ErrBadVersion)
		}
		return Version{num: t, kind: kindNumber}, nil
	case []any:
		if len(t) == 0 || len(t) > maxVersionArray {
			return Version{}, fmt.Errorf("%w: an array version has 1 to %d numbers", ErrBadVersion, maxVersionArray)
		}
		arr := make([]float64, len(t))
		for i, e := range t {
			n, ok := e.(float64)
			if !ok {
				return Version{}, fmt.Errorf("%w: an array version holds numbers only", ErrBadVersion)
			}
			arr[i] = n
		}
		return Version{arr: arr, kind: kindArray}, nil
	case map[string]any:
		if !top {
			return Version{}, fmt.Errorf("%w: a dependency's version is a number or an array of numbers", ErrBadVersion)
		}
		if len(t) == 0 || len(t) > maxVersionDeps {
			return Version{}, fmt.Errorf("%w: a dependency version has 1 to %d entries", ErrBadVersion, maxVersionDeps)
		}
		deps := make(map[string]Version, len(t))
		for k, e := range t {
			if !validText(k) || len(k) > maxVersionDepLen {
				return Version{}, fmt.Errorf("%w: dependency name %q", ErrBadVersion, k)
			}
			d, err := fromValue(e, false)
			if err != nil {
				return Version{}, err
			}
			deps[k] = d
		}
		return Version{deps: deps, kind: kindDeps}, nil
	default:
		return Version{}, fmt.Errorf("%w: a version is a number, an array of numbers or an object of dependencies", ErrBadVersion)
	}
}

// String returns the canonical JSON of v ("" for the zero Version).
func (v Version) String() string { return v.raw }

// IsZero reports whether v is the zero Version (no version).
func (v Version) IsZero() bool { return v.kind == kindNone }

// Deps returns the dependency names of a dependency version, sorted.
func (v Version) Deps() []string {
	out := make([]string, 0, len(v.deps))
	for k := range v.deps {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Dep returns the version recorded for dependency name.
func (v Version) Dep(name string) (Version, bool) {
	d, ok := v.deps[name]
	return d, ok
}

// Compare orders two versions of the same kind: -1 if a is older than b,
// 0 if equal, +1 if newer; ok is false when they cannot be ordered
// (different kinds, or dependency maps where some entries moved forward
// and others back, or maps that differ only in their set of names).
// Numbers compare numerically; arrays element by element, a proper prefix
// being older; dependency maps by their shared entries.
func Compare(a, b Version) (c int, ok bool) {
	if a.kind != b.kind || a.kind == kindNone {
		return 0, false
	}
	switch a.kind {
	case kindNumber:
		return cmpFloat(a.num, b.num), true
	case kindArray:
		return cmpArray(a.arr, b.arr), true
	}
	up, down, same := false, false, len(a.deps) == len(b.deps)
	for k, av := range a.deps {
		bv, found := b.deps[k]
		if !found {
			same = false
			continue
		}
		c, ok := Compare(av, bv)
		switch {
		case !ok:
			return 0, false
		case c > 0:
			up = true
		case c < 0:
			down = true
		}
	}
	switch {
	case up && down:
		return 0, false
	case up:
		return 1, true
	case down:
		return -1, true
	case same:
		return 0, true
	}
	return 0, false // the same shared entries under another set of names
}

// Newer reports whether next may follow cur: cur is the zero Version, or
// next compares strictly newer, or both declare dependencies, none of the
// shared ones went back and the set of names changed (a producer that
// now depends on something else).
func Newer(next, cur Version) bool {
	if cur.IsZero() {
		return !next.IsZero()
	}
	if c, ok := Compare(next, cur); ok {
		return c > 0
	}
	if next.kind != kindDeps || cur.kind != kindDeps {
		return false
	}
	for k, nv := range next.deps {
		if cv, found := cur.deps[k]; found {
			if c, ok := Compare(nv, cv); !ok || c < 0 {
				return false
			}
		}
	}
	return true
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpArray(a, b []float64) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := cmpFloat(a[i], b[i]); c != 0 {
			return c
		}
	}
	return cmpFloat(float64(len(a)), float64(len(b)))
}
