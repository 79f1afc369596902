package document

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// The replicated state applies a patch on every node for every change of
// an object, and the node that takes a whole object diffs it against the
// current one. Done on decoded trees, both cost a decode and an encode of
// the whole document (about a millisecond for 10 KB) however small the
// change. Here they work on the canonical bytes instead: a change of one
// member copies the bytes around it and encodes only the new value, and a
// diff walks the two encodings side by side. Both are shortcuts that must
// give exactly what the slow path gives, byte for byte (the fuzzers check
// it); wherever one is unsure (a failed operation, a test it cannot
// settle, anything not plainly canonical), it declines and the caller
// takes the slow path, whose errors are the ones clients see.

// ApplyCanonical is Apply for a doc that is canonical (an object's stored
// state, a client's copy of it): the same result or error, byte for byte,
// in a time that grows with the patch rather than with the document for
// the operations diffs are made of.
func ApplyCanonical(doc, patch []byte, maxSize int) ([]byte, error) {
	if out, ok := spliceApply(doc, patch, maxSize); ok {
		return out, nil
	}
	return Apply(doc, patch, maxSize)
}

// patchOp is one operation of a patch, as ApplyValue and spliceApply
// read it.
type patchOp struct {
	Op    string          `json:"op"`
	Path  *string         `json:"path"`
	From  *string         `json:"from"`
	Value json.RawMessage `json:"value"`
}

// spliceApply applies patch to the canonical object doc on its bytes. ok
// is false when it cannot, or when the patch fails: the caller then
// applies it with Apply, which decides and words the error.
func spliceApply(doc, patch []byte, maxSize int) ([]byte, bool) {
	if len(doc) < 2 || doc[0] != '{' || doc[len(doc)-1] != '}' {
		return nil, false
	}
	var ops []patchOp
	if err := json.Unmarshal(patch, &ops); err != nil {
		return nil, false
	}
	for _, op := range ops {
		if !simpleOp(op.Op, op.Path) {
			return nil, false
		}
	}
	out := doc
	changed := false
	for _, op := range ops {
		path, err := parsePointer(*op.Path)
		if err != nil {
			return nil, false
		}
		var value []byte
		if op.Op != "remove" {
			if op.Value == nil {
				return nil, false
			}
			if value, err = Canonical(op.Value); err != nil {
				return nil, false
			}
		}
		var ok bool
		if out, ok = spliceOne(out, op.Op, path, value); !ok {
			return nil, false
		}
		changed = changed || op.Op != "test"
	}
	if maxSize > 0 && len(out) > maxSize {
		return nil, false
	}
	if !changed {
		out = append([]byte(nil), doc...) // a result never aliases doc
	}
	return out, true
}

// spliceOne applies one simple operation (path has at least one token)
// and returns a new buffer; doc is never written.
func spliceOne(doc []byte, op string, path []string, value []byte) ([]byte, bool) {
	start, end, ok := locate(doc, path[:len(path)-1])
	if !ok {
		return nil, false
	}
	last := path[len(path)-1]
	switch doc[start] {
	case '{':
		m := findMember(doc, start, end, last)
		if m.bad {
			return nil, false
		}
		switch op {
		case "test":
			return doc, m.found && bytes.Equal(doc[m.valStart:m.valEnd], value)
		case "replace":
			if !m.found {
				return nil, false
			}
			return splice(doc, m.valStart, m.valEnd, value), true
		case "add":
			if m.found {
				return splice(doc, m.valStart, m.valEnd, value), true
			}
			key, err := Encode(last)
			if err != nil {
				return nil, false
			}
			member := append(append(key, ':'), value...)
			switch {
			case end-start == 2: // {}
				return splice(doc, start+1, start+1, member), true
			case m.insertAt < end-1: // before the first greater key
				return splice(doc, m.insertAt, m.insertAt, append(member, ',')), true
			default:
				return splice(doc, end-1, end-1, append([]byte{','}, member...)), true
			}
		case "remove":
			if !m.found {
				return nil, false
			}
			from, to := listItem(doc, start, end, m.keyStart, m.valEnd)
			return splice(doc, from, to, nil), true
		}
	case '[':
		items, ok := arrayItems(doc, start, end)
		if !ok {
			return nil, false
		}
		n := len(items)
		if op == "add" {
			i := n
			if last != "-" {
				var err error
				if i, err = arrayIndex(last, n+1); err != nil {
					return nil, false
				}
			}
			switch {
			case n == 0:
				return splice(doc, start+1, start+1, value), true
			case i < n:
				return splice(doc, items[i][0], items[i][0], append(append([]byte(nil), value...), ',')), true
			default:
				return splice(doc, end-1, end-1, append([]byte{','}, value...)), true
			}
		}
		i, err := arrayIndex(last, n)
		if err != nil {
			return nil, false
		}
		switch op {
		case "test":
			return doc, bytes.Equal(doc[items[i][0]:items[i][1]], value)
		case "replace":
			return splice(doc, items[i][0], items[i][1], value), true
		case "remove":
			from, to := listItem(doc, start, end, items[i][0], items[i][1])
			return splice(doc, from, to, nil), true
		}
	}
	return nil, false
}

// splice returns a new buffer: doc with doc[from:to] replaced by insert.
func splice(doc []byte, from, to int, insert []byte) []byte {
	out := make([]byte, 0, len(doc)-(to-from)+len(insert))
	out = append(out, doc[:from]...)
	out = append(out, insert...)
	return append(out, doc[to:]...)
}

// listItem returns the span to cut to remove the item (member or element)
// doc[from:to] of the container doc[start:end], with one of its commas.
func listItem(doc []byte, start, end, from, to int) (int, int) {
	switch {
	case doc[to] == ',':
		return from, to + 1
	case from-1 > start: // the last of several: the comma before it
		return from - 1, to
	default:
		return from, to
	}
}

// locate returns the span of the value at path in the canonical document
// doc (the whole of doc is its root: no scan is needed to find its end).
func locate(doc []byte, path []string) (start, end int, ok bool) {
	start, end = 0, len(doc)
	for _, t := range path {
		switch doc[start] {
		case '{':
			m := findMember(doc, start, end, t)
			if m.bad || !m.found {
				return 0, 0, false
			}
			start, end = m.valStart, m.valEnd
		case '[':
			items, ok := arrayItems(doc, start, end)
			if !ok {
				return 0, 0, false
			}
			i, err := arrayIndex(t, len(items))
			if err != nil {
				return 0, 0, false
			}
			start, end = items[i][0], items[i][1]
		default:
			return 0, 0, false
		}
	}
	return start, end, true
}

// member is what findMember learns of a key in an object.
type member struct {
	found            bool
	keyStart         int // of the member, when found
	valStart, valEnd int // of its value, when found
	insertAt         int // where a member with the key goes, when not found: the first greater key, or the closing brace
	bad              bool
}

// findMember looks for key among the members of the canonical object
// doc[start:end]. Canonical objects have their keys sorted (as Go
// compares strings), so it stops at the first greater key.
func findMember(doc []byte, start, end int, key string) member {
	m := member{insertAt: end - 1}
	ok := forMembers(doc, start, end, func(keyStart int, raw []byte, vs, ve int) bool {
		c, ok := compareKey(raw, key)
		switch {
		case !ok:
			m.bad = true
			return false
		case c == 0:
			m = member{found: true, keyStart: keyStart, valStart: vs, valEnd: ve}
			return false
		case c > 0:
			m.insertAt = keyStart
			return false
		}
		return true
	})
	if !ok {
		return member{bad: true}
	}
	return m
}

// forMembers calls fn with each member of the canonical object
// doc[start:end] in order (the start of its key, the key as it is
// encoded, the span of its value) until fn returns false. It returns
// false if the object is not canonical JSON as far as it read.
func forMembers(doc []byte, start, end int, fn func(keyStart int, rawKey []byte, valStart, valEnd int) bool) bool {
	i := start + 1
	if doc[i] == '}' {
		return true
	}
	for i < end {
		kEnd := stringEnd(doc, i)
		if kEnd < 0 || kEnd >= end || doc[kEnd] != ':' {
			return false
		}
		vEnd := valueEnd(doc, kEnd+1)
		if vEnd < 0 || vEnd >= end {
			return false
		}
		if !fn(i, doc[i:kEnd], kEnd+1, vEnd) {
			return true
		}
		switch doc[vEnd] {
		case ',':
			i = vEnd + 1
		case '}':
			return true
		default:
			return false
		}
	}
	return false
}

// compareKey compares the key a raw canonical string encodes with key, as
// Go compares strings; without escapes (nearly always) it decodes
// nothing.
func compareKey(raw []byte, key string) (int, bool) {
	if bytes.IndexByte(raw, '\\') < 0 {
		body := raw[1 : len(raw)-1]
		switch {
		case string(body) == key:
			return 0, true
		case string(body) < key:
			return -1, true
		}
		return 1, true
	}
	k, ok := decodeKey(raw)
	return strings.Compare(k, key), ok
}

// compareKeys compares the keys two raw canonical strings encode.
func compareKeys(a, b []byte) (int, bool) {
	if bytes.IndexByte(a, '\\') < 0 && bytes.IndexByte(b, '\\') < 0 {
		return bytes.Compare(a[1:len(a)-1], b[1:len(b)-1]), true
	}
	ka, okA := decodeKey(a)
	kb, okB := decodeKey(b)
	return strings.Compare(ka, kb), okA && okB
}

// decodeKey returns the string a canonical JSON string encodes.
func decodeKey(raw []byte) (string, bool) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// arrayItems returns the spans of the elements of the canonical array
// doc[start:end].
func arrayItems(doc []byte, start, end int) ([][2]int, bool) {
	var items [][2]int
	i := start + 1
	if doc[i] == ']' {
		return nil, true
	}
	for i < end {
		e := valueEnd(doc, i)
		if e < 0 || e >= end {
			return nil, false
		}
		items = append(items, [2]int{i, e})
		switch doc[e] {
		case ',':
			i = e + 1
		case ']':
			return items, true
		default:
			return nil, false
		}
	}
	return nil, false
}

// valueEnd returns the index just past the canonical JSON value that
// starts at doc[i], or -1 if there is none. Canonical JSON has no
// whitespace, so a scalar other than a string runs to the next ',', '}'
// or ']'.
func valueEnd(doc []byte, i int) int {
	if i >= len(doc) {
		return -1
	}
	switch doc[i] {
	case '"':
		return stringEnd(doc, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(doc); j++ {
			switch doc[j] {
			case '"':
				e := stringEnd(doc, j)
				if e < 0 {
					return -1
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default:
		j := i
		for j < len(doc) && doc[j] != ',' && doc[j] != '}' && doc[j] != ']' {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
}

// stringEnd returns the index just past the JSON string that starts at
// doc[i] (a '"'), or -1.
func stringEnd(doc []byte, i int) int {
	if i >= len(doc) || doc[i] != '"' {
		return -1
	}
	// Most strings have no escape: two vectorised scans find the end.
	if q := bytes.IndexByte(doc[i+1:], '"'); q >= 0 && bytes.IndexByte(doc[i+1:i+1+q], '\\') < 0 {
		return i + 1 + q + 1
	}
	for j := i + 1; j < len(doc); j++ {
		switch doc[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// spliceDiff returns the patch that turns the canonical object from into
// the canonical object to, walking both encodings: members in key order
// (both are sorted), arrays element by element (extra elements appended
// or removed at the end), anything else replaced whole. ok is false when
// either is not plainly canonical.
func spliceDiff(from, to []byte) (patch []byte, ok bool) {
	if len(from) < 2 || len(to) < 2 || from[0] != '{' || to[0] != '{' {
		return nil, false
	}
	d := differ{from: from, to: to, patch: []byte{'['}}
	if !d.value(nil, 0, len(from), 0, len(to)) || d.bad {
		return nil, false
	}
	return append(d.patch, ']'), true
}

// differ accumulates the operations of one spliceDiff.
type differ struct {
	from, to []byte
	patch    []byte
	bad      bool // a key did not decode
}

// value diffs from[fs:fe] against to[ts:te], two values at pointer path.
func (d *differ) value(path []byte, fs, fe, ts, te int) bool {
	a, b := d.from[fs:fe], d.to[ts:te]
	switch {
	case bytes.Equal(a, b):
		return true
	case a[0] == '{' && b[0] == '{':
		return d.object(path, fs, fe, ts, te)
	case a[0] == '[' && b[0] == '[':
		return d.array(path, fs, fe, ts, te)
	default:
		return d.op("replace", path, b)
	}
}

func (d *differ) object(path []byte, fs, fe, ts, te int) bool {
	am, ok := members(d.from, fs, fe)
	if !ok {
		return false
	}
	bm, ok := members(d.to, ts, te)
	if !ok {
		return false
	}
	i, j := 0, 0
	for i < len(am) || j < len(bm) {
		c := 0
		switch {
		case j == len(bm):
			c = -1
		case i == len(am):
			c = 1
		default:
			if c, ok = compareKeys(am[i].raw, bm[j].raw); !ok {
				return false
			}
		}
		switch {
		case c < 0:
			if !d.op("remove", d.pointer(path, am[i].raw), nil) {
				return false
			}
			i++
		case c > 0:
			if !d.op("add", d.pointer(path, bm[j].raw), d.to[bm[j].start:bm[j].end]) {
				return false
			}
			j++
		default:
			changed := !bytes.Equal(d.from[am[i].start:am[i].end], d.to[bm[j].start:bm[j].end])
			if changed && !d.value(d.pointer(path, am[i].raw), am[i].start, am[i].end, bm[j].start, bm[j].end) {
				return false
			}
			i++
			j++
		}
	}
	return true
}

// pointer returns path extended by the member whose raw key is raw.
func (d *differ) pointer(path, raw []byte) []byte {
	k, ok := decodeKey(raw)
	if !ok {
		d.bad = true
	}
	return pointer(path, k)
}

func (d *differ) array(path []byte, fs, fe, ts, te int) bool {
	ai, ok := arrayItems(d.from, fs, fe)
	if !ok {
		return false
	}
	bi, ok := arrayItems(d.to, ts, te)
	if !ok {
		return false
	}
	common := min(len(ai), len(bi))
	for k := 0; k < common; k++ {
		if bytes.Equal(d.from[ai[k][0]:ai[k][1]], d.to[bi[k][0]:bi[k][1]]) {
			continue
		}
		if !d.value(pointer(path, strconv.Itoa(k)), ai[k][0], ai[k][1], bi[k][0], bi[k][1]) {
			return false
		}
	}
	for k := len(ai) - 1; k >= len(bi); k-- {
		if !d.op("remove", pointer(path, strconv.Itoa(k)), nil) {
			return false
		}
	}
	for k := len(ai); k < len(bi); k++ {
		if !d.op("add", pointer(path, "-"), d.to[bi[k][0]:bi[k][1]]) {
			return false
		}
	}
	return true
}

// op appends one operation, encoded canonically: keys in order, the path
// a canonical string, the value (already canonical) as it is.
func (d *differ) op(name string, path, value []byte) bool {
	p, err := Encode(string(path))
	if err != nil {
		return false
	}
	if len(d.patch) > 1 {
		d.patch = append(d.patch, ',')
	}
	d.patch = append(d.patch, `{"op":"`...)
	d.patch = append(d.patch, name...)
	d.patch = append(d.patch, `","path":`...)
	d.patch = append(d.patch, p...)
	if value != nil {
		d.patch = append(d.patch, `,"value":`...)
		d.patch = append(d.patch, value...)
	}
	d.patch = append(d.patch, '}')
	return true
}

// keyedValue is one member of an object: its key as encoded and the span
// of its value.
type keyedValue struct {
	raw        []byte
	start, end int
}

// members returns the members of the canonical object doc[start:end], in
// their (sorted) order.
func members(doc []byte, start, end int) ([]keyedValue, bool) {
	var out []keyedValue
	sorted := true
	ok := forMembers(doc, start, end, func(_ int, raw []byte, vs, ve int) bool {
		if len(out) > 0 {
			if c, ok := compareKeys(out[len(out)-1].raw, raw); !ok || c >= 0 {
				sorted = false // not canonical
				return false
			}
		}
		out = append(out, keyedValue{raw: raw, start: vs, end: ve})
		return true
	})
	return out, ok && sorted
}

// pointer returns path extended by the reference token t (RFC 6901:
// '~' is written "~0" and '/' "~1").
func pointer(path []byte, t string) []byte {
	out := make([]byte, 0, len(path)+1+len(t))
	out = append(out, path...)
	out = append(out, '/')
	for k := 0; k < len(t); k++ {
		switch t[k] {
		case '~':
			out = append(out, '~', '0')
		case '/':
			out = append(out, '~', '1')
		default:
			out = append(out, t[k])
		}
	}
	return out
}
