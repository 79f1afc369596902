package doctest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Match reports whether got, a command's real output, matches want, the
// output a document shows, by the loose rules in the package comment. The
// error says where they first differ.
func Match(want, got string) error {
	w, err := wantItems(want)
	if err != nil {
		return err
	}
	g := gotItems(got)
	m := matcher{want: w, got: g, seen: map[[2]int]bool{}}
	if m.run(0, 0) {
		return nil
	}
	return m.worst
}

// item is one line of text, one JSON value (which may span lines) or, in
// wanted output, a "..." line.
type item struct {
	line int // 1-based, in its text
	text string
	json *jv  // wanted JSON
	val  any  // got JSON
	isJS bool // got: val is set
	any  bool // wanted: "..." line
}

type matcher struct {
	want, got []item
	seen      map[[2]int]bool
	worst     error
	worstAt   int
}

func (m *matcher) fail(wi int, err error) {
	if m.worst == nil || wi >= m.worstAt {
		m.worst, m.worstAt = err, wi
	}
}

func (m *matcher) run(wi, gi int) bool {
	if m.seen[[2]int{wi, gi}] {
		return false
	}
	m.seen[[2]int{wi, gi}] = true
	if wi == len(m.want) {
		if gi == len(m.got) {
			return true
		}
		m.fail(wi, fmt.Errorf("output line %d: %q is more than the document shows", m.got[gi].line, m.got[gi].text))
		return false
	}
	w := m.want[wi]
	if w.any {
		for k := gi; k <= len(m.got); k++ {
			if m.run(wi+1, k) {
				return true
			}
		}
		return false
	}
	if gi == len(m.got) {
		m.fail(wi, fmt.Errorf("the output ends where the document shows %q (line %d of the expected output)", w.text, w.line))
		return false
	}
	g := m.got[gi]
	var err error
	switch {
	case w.json != nil && g.isJS:
		err = matchJSON(w.json, g.val, "$")
	case w.json != nil:
		err = fmt.Errorf("got text, want a JSON value")
	default:
		err = matchText(w.text, g.text)
	}
	if err != nil {
		m.fail(wi, fmt.Errorf("expected line %d %q, output line %d %q: %w", w.line, w.text, g.line, g.text, err))
		return false
	}
	return m.run(wi+1, gi+1)
}

func isEllipsis(s string) bool { return s == "..." || s == "…" }

func startsJSON(s string) bool { return strings.HasPrefix(s, "{") || strings.HasPrefix(s, "[") }

// wantItems splits a document's output into items.
func wantItems(text string) ([]item, error) {
	lines := strings.Split(strings.ReplaceAll(text, "\r", ""), "\n")
	var items []item
	for i := 0; i < len(lines); i++ {
		t := strings.TrimSpace(lines[i])
		switch {
		case t == "":
		case isEllipsis(t):
			items = append(items, item{line: i + 1, text: t, any: true})
		case startsJSON(t):
			rest := strings.Join(lines[i:], "\n")
			p := &parser{s: rest}
			v, err := p.value()
			if err == nil && p.lineRestBlank() {
				used := strings.Count(rest[:p.i], "\n")
				items = append(items, item{line: i + 1, text: t, json: v})
				i += used
				continue
			}
			items = append(items, item{line: i + 1, text: t})
		default:
			items = append(items, item{line: i + 1, text: t})
		}
	}
	return items, nil
}

// gotItems splits real output into items.
func gotItems(text string) []item {
	lines := strings.Split(strings.ReplaceAll(text, "\r", ""), "\n")
	var items []item
	for i := 0; i < len(lines); i++ {
		t := strings.TrimSpace(lines[i])
		if t == "" {
			continue
		}
		if startsJSON(t) {
			rest := strings.Join(lines[i:], "\n")
			dec := json.NewDecoder(strings.NewReader(rest))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err == nil {
				off := int(dec.InputOffset())
				tail := rest[off:]
				if nl := strings.IndexByte(tail, '\n'); nl >= 0 {
					tail = tail[:nl]
				}
				if strings.TrimSpace(tail) == "" {
					items = append(items, item{line: i + 1, text: t, val: v, isJS: true})
					i += strings.Count(rest[:off], "\n")
					continue
				}
			}
		}
		items = append(items, item{line: i + 1, text: t})
	}
	return items
}

var (
	blanksRE   = regexp.MustCompile(`\s+`)
	nodeNameRE = regexp.MustCompile(`\b(?:n|node)[0-9]+\b`)
	digitsRE   = regexp.MustCompile(`[0-9]+`)
)

// normalize makes the volatile parts of s equal: blanks, node names,
// digits.
func normalize(s string) string {
	s = blanksRE.ReplaceAllString(strings.TrimSpace(s), " ")
	s = nodeNameRE.ReplaceAllString(s, "NODE")
	return digitsRE.ReplaceAllString(s, "0")
}

// matchText matches one line of text; "..." in want matches anything.
func matchText(want, got string) error {
	w, g := normalize(want), normalize(got)
	parts := strings.Split(strings.ReplaceAll(w, "…", "..."), "...")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	re, err := regexp.Compile("^" + strings.Join(parts, ".*") + "$")
	if err != nil {
		return fmt.Errorf("expected text as a pattern: %w", err)
	}
	if !re.MatchString(g) {
		return fmt.Errorf("the text differs")
	}
	return nil
}

// matchJSON matches a real JSON value against a wanted one; path names
// the place in messages.
func matchJSON(w *jv, g any, path string) error {
	switch w.kind {
	case kAny:
		return nil
	case kObject:
		obj, ok := g.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: got %s, want an object", path, kindOf(g))
		}
		for _, m := range w.members {
			v, ok := obj[m.key]
			if !ok {
				return fmt.Errorf("%s: no key %q", path, m.key)
			}
			if err := matchJSON(m.val, v, path+"."+m.key); err != nil {
				return err
			}
		}
		if !w.rest {
			var extra []string
			for k := range obj {
				if !w.has(k) {
					extra = append(extra, k)
				}
			}
			if len(extra) > 0 {
				sort.Strings(extra)
				return fmt.Errorf("%s: keys %q not shown in the document (add them, or \"...\")", path, extra)
			}
		}
		return nil
	case kArray:
		arr, ok := g.([]any)
		if !ok {
			return fmt.Errorf("%s: got %s, want an array", path, kindOf(g))
		}
		if len(arr) < len(w.elems) || (!w.rest && len(arr) != len(w.elems)) {
			return fmt.Errorf("%s: got %d elements, want %d", path, len(arr), len(w.elems))
		}
		for i, e := range w.elems {
			if err := matchJSON(e, arr[i], fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	case kString:
		s, ok := g.(string)
		if !ok {
			return fmt.Errorf("%s: got %s, want a string", path, kindOf(g))
		}
		if err := matchText(w.str, s); err != nil {
			return fmt.Errorf("%s: got %q, want %q", path, s, w.str)
		}
		return nil
	case kNumber:
		if _, ok := g.(json.Number); !ok {
			return fmt.Errorf("%s: got %s, want a number", path, kindOf(g))
		}
		return nil
	case kBool:
		if b, ok := g.(bool); !ok || b != w.b {
			return fmt.Errorf("%s: got %v, want %v", path, g, w.b)
		}
		return nil
	case kNull:
		if g != nil {
			return fmt.Errorf("%s: got %s, want null", path, kindOf(g))
		}
		return nil
	}
	return fmt.Errorf("%s: unknown expected value", path)
}

func kindOf(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// jv is a wanted JSON value: JSON with "..." allowed as a value, as an
// object member and as an array element.
type jv struct {
	kind    int
	members []member
	elems   []*jv
	rest    bool // object or array: "..." among the members or elements
	str     string
	b       bool
}

type member struct {
	key string
	val *jv
}

const (
	kAny = iota
	kObject
	kArray
	kString
	kNumber
	kBool
	kNull
)

func (v *jv) has(key string) bool {
	for _, m := range v.members {
		if m.key == key {
			return true
		}
	}
	return false
}

// parser reads wanted JSON.
type parser struct {
	s string
	i int
}

func (p *parser) ws() {
	for p.i < len(p.s) && strings.ContainsRune(" \t\r\n", rune(p.s[p.i])) {
		p.i++
	}
}

func (p *parser) errf(format string, args ...any) error {
	return fmt.Errorf("expected JSON at offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

// ellipsis consumes "..." or "…" if it comes next.
func (p *parser) ellipsis() bool {
	for _, e := range []string{"...", "…"} {
		if strings.HasPrefix(p.s[p.i:], e) {
			p.i += len(e)
			return true
		}
	}
	return false
}

// lineRestBlank reports whether only blanks follow the value on its line.
func (p *parser) lineRestBlank() bool {
	rest := p.s[p.i:]
	if nl := strings.IndexByte(rest, '\n'); nl >= 0 {
		rest = rest[:nl]
	}
	return strings.TrimSpace(rest) == ""
}

func (p *parser) value() (*jv, error) {
	p.ws()
	if p.i >= len(p.s) {
		return nil, p.errf("unexpected end")
	}
	if p.ellipsis() {
		return &jv{kind: kAny}, nil
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		if isEllipsis(s) {
			return &jv{kind: kAny}, nil
		}
		return &jv{kind: kString, str: s}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.i
		for p.i < len(p.s) && strings.ContainsRune("+-.eE0123456789", rune(p.s[p.i])) {
			p.i++
		}
		if _, err := strconv.ParseFloat(p.s[start:p.i], 64); err != nil {
			return nil, p.errf("bad number %q", p.s[start:p.i])
		}
		return &jv{kind: kNumber}, nil
	default:
		for _, lit := range []struct {
			s string
			v jv
		}{{"true", jv{kind: kBool, b: true}}, {"false", jv{kind: kBool}}, {"null", jv{kind: kNull}}} {
			if strings.HasPrefix(p.s[p.i:], lit.s) {
				p.i += len(lit.s)
				v := lit.v
				return &v, nil
			}
		}
		return nil, p.errf("unexpected %q", c)
	}
}

func (p *parser) str() (string, error) {
	start := p.i
	p.i++
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case '\\':
			p.i += 2
			continue
		case '"':
			p.i++
			var s string
			if err := json.Unmarshal([]byte(p.s[start:p.i]), &s); err != nil {
				return "", p.errf("bad string: %v", err)
			}
			return s, nil
		case '\n':
			return "", p.errf("string runs past the end of the line")
		}
		p.i++
	}
	return "", p.errf("unterminated string")
}

func (p *parser) object() (*jv, error) {
	v := &jv{kind: kObject}
	p.i++ // {
	for {
		p.ws()
		if p.i < len(p.s) && p.s[p.i] == '}' && len(v.members) == 0 && !v.rest {
			p.i++
			return v, nil
		}
		if p.ellipsis() {
			v.rest = true
		} else {
			if p.i >= len(p.s) || p.s[p.i] != '"' {
				return nil, p.errf("want a key")
			}
			k, err := p.str()
			if err != nil {
				return nil, err
			}
			p.ws()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return nil, p.errf("want ':' after key %q", k)
			}
			p.i++
			val, err := p.value()
			if err != nil {
				return nil, err
			}
			v.members = append(v.members, member{k, val})
		}
		p.ws()
		if p.i >= len(p.s) {
			return nil, p.errf("unterminated object")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return v, nil
		default:
			return nil, p.errf("want ',' or '}'")
		}
	}
}

func (p *parser) array() (*jv, error) {
	v := &jv{kind: kArray}
	p.i++ // [
	for {
		p.ws()
		if p.i < len(p.s) && p.s[p.i] == ']' && len(v.elems) == 0 && !v.rest {
			p.i++
			return v, nil
		}
		if p.ellipsis() {
			v.rest = true
		} else {
			e, err := p.value()
			if err != nil {
				return nil, err
			}
			if v.rest {
				return nil, p.errf("elements after \"...\" in an array")
			}
			v.elems = append(v.elems, e)
		}
		p.ws()
		if p.i >= len(p.s) {
			return nil, p.errf("unterminated array")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return v, nil
		default:
			return nil, p.errf("want ',' or ']'")
		}
	}
}
