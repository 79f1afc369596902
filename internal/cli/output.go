package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Output formats of -o.
const (
	formatTable = "table"
	formatJSON  = "json"
)

// outputFormat is the value of a command's -o flag: "table" (the
// human-readable form, whatever its shape) or "json" (the API's own field
// names). --json is kept as an alias of -o json.
type outputFormat struct {
	name    string
	allowed []string
}

func (o *outputFormat) String() string {
	if o == nil {
		return ""
	}
	return o.name
}

func (o *outputFormat) Set(s string) error {
	if !slices.Contains(o.allowed, s) {
		return fmt.Errorf("want %s", strings.Join(o.allowed, " or "))
	}
	o.name = s
	return nil
}

// json reports whether JSON output was asked for.
func (o *outputFormat) json() bool { return o.name == formatJSON }

// jsonAlias is the --json flag: a boolean that sets -o json.
type jsonAlias struct{ o *outputFormat }

func (j jsonAlias) String() string   { return "false" }
func (j jsonAlias) IsBoolFlag() bool { return true }
func (j jsonAlias) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	if v {
		j.o.name = formatJSON
	} else if j.o.name == formatJSON {
		j.o.name = j.o.allowed[0]
	}
	return nil
}

// outputFlag adds -o (table, the default, or json) and its alias --json
// to the command. tableDoc says what the default output is ("aligned
// columns", "one line of text").
func (c *cmdline) outputFlag(tableDoc string) *outputFormat {
	o := &outputFormat{name: formatTable, allowed: []string{formatTable, formatJSON}}
	c.fs.Var(o, "o", "output `FORMAT`: table, "+tableDoc+"; or json, the API's answer with its field names")
	c.fs.Var(jsonAlias{o}, "json", "same as -o json")
	return o
}

// jsonOnlyOutput adds -o and --json to a command whose output is JSON
// whatever the flag says (one JSON object per line, as it streams), so
// scripts may pass -o json to every command alike.
func (c *cmdline) jsonOnlyOutput() *outputFormat {
	o := &outputFormat{name: formatJSON, allowed: []string{formatJSON}}
	c.fs.Var(o, "o", "output `FORMAT`: json only (one JSON object per line)")
	c.fs.Var(jsonAlias{o}, "json", "same as -o json (the default)")
	return o
}

// durationRE matches a Go duration as time.Duration.String prints it.
var durationRE = regexp.MustCompile(`\b[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|h|m|s)(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|h|m|s))*\b`)

// roundDurations rewrites every Go duration with a fraction finer than a
// millisecond in msg ("1.999999329s") to its value rounded to the
// millisecond ("2s"), for people to read.
func roundDurations(msg string) string {
	return durationRE.ReplaceAllStringFunc(msg, func(s string) string {
		if !strings.Contains(s, ".") {
			return s
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return s
		}
		return humanDuration(d)
	})
}

// humanDuration returns d rounded for people: to the millisecond, or to
// the second from a minute up.
func humanDuration(d time.Duration) string {
	switch {
	case d >= time.Minute || d <= -time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Millisecond || d <= -time.Millisecond:
		return d.Round(time.Millisecond).String()
	default:
		return d.String()
	}
}

// formatBytes prints a size for people: bytes below 1 KiB, otherwise with
// a binary unit and one decimal ("1.5 MiB").
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// sectionLines renders one module section of the status as readable
// lines: scalar fields as "name value" pairs joined by commas on the
// first line, each nested object or list of objects on a line of its own
// named "section.field". Keys are sorted, so the output is stable.
func sectionLines(name string, raw json.RawMessage) [][2]string {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return [][2]string{{name, strings.TrimSpace(string(raw))}}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return [][2]string{{name, scalarText(v)}}
	}
	var out [][2]string
	var scalars []string
	var nested []string
	for _, k := range sortedKeys(obj) {
		switch x := obj[k].(type) {
		case map[string]any:
			nested = append(nested, k)
		case []any:
			if slices.ContainsFunc(x, func(e any) bool { _, isObj := e.(map[string]any); return isObj }) {
				nested = append(nested, k)
				continue
			}
			scalars = append(scalars, k+" "+listText(x))
		default:
			scalars = append(scalars, k+" "+scalarText(x))
		}
	}
	out = append(out, [2]string{name, joinOrDash(scalars)})
	for _, k := range nested {
		out = append(out, [2]string{name + "." + k, nestedText(obj[k])})
	}
	return out
}

// nestedText renders an object or list one level down on one line:
// "n2 (rounds 4, last_round ...), n3 (...)" for an object of objects.
func nestedText(v any) string {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			return "-"
		}
		parts := make([]string, 0, len(x))
		for _, k := range sortedKeys(x) {
			parts = append(parts, k+" "+inlineText(x[k]))
		}
		return strings.Join(parts, ", ")
	case []any:
		if len(x) == 0 {
			return "-"
		}
		parts := make([]string, 0, len(x))
		for _, e := range x {
			parts = append(parts, inlineText(e))
		}
		return strings.Join(parts, "; ")
	default:
		return scalarText(v)
	}
}

// inlineText renders a value inside a line: objects as "(k v, k v)".
func inlineText(v any) string {
	switch x := v.(type) {
	case map[string]any:
		parts := make([]string, 0, len(x))
		for _, k := range sortedKeys(x) {
			parts = append(parts, k+" "+inlineText(x[k]))
		}
		return "(" + strings.Join(parts, ", ") + ")"
	case []any:
		return listText(x)
	default:
		return scalarText(v)
	}
}

func listText(x []any) string {
	if len(x) == 0 {
		return "-"
	}
	parts := make([]string, len(x))
	for i, e := range x {
		parts[i] = inlineText(e)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func scalarText(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case string:
		return orDash(x)
	case json.Number:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
