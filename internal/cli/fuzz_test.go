package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParseBytes: parseBytes never panics, and what it accepts is a
// number of bytes that a unit multiplies exactly.
func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"4096", "10MiB", "1GB", "256 KiB", "7B", "1.5GB", "", "MiB", "99999999999999999999TiB", " 3 TB "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseBytes(s)
		if err != nil {
			if n != 0 {
				t.Fatalf("parseBytes(%q) = %d with error %v", s, n, err)
			}
			return
		}
		if strings.TrimSpace(s) == "" {
			t.Fatalf("parseBytes(%q) accepted an empty size", s)
		}
	})
}

// FuzzSectionLines: any status section renders as lines that hold no
// JSON object braces when it is an object, and never panics.
func FuzzSectionLines(f *testing.F) {
	for _, s := range []string{`{"logs":2}`, `{"peers":{"n2":{"rounds":4}}}`, `{"in_sync":["a","b"],"followers":[{"node":"x"}]}`, `3`, `"x"`, `null`, `{`, `[]`, `{"a":{"b":{"c":[1,{"d":null}]}}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		lines := sectionLines("s", json.RawMessage(raw))
		if len(lines) == 0 {
			t.Fatalf("no line for %q", raw)
		}
		var obj map[string]any
		if json.Unmarshal([]byte(raw), &obj) != nil || obj == nil {
			return
		}
		for _, l := range lines {
			if !strings.HasPrefix(l[0], "s") {
				t.Fatalf("line %q does not name the section", l)
			}
		}
	})
}

// FuzzRoundDurations: rounding never panics and leaves text without a
// fractional duration alone.
func FuzzRoundDurations(f *testing.F) {
	for _, s := range []string{"wait of 1.999999329s", "1h2m3.5s", "v1.2.3", "2.5µs", "1.5", "9999999999999999999.9h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := roundDurations(s)
		if !strings.Contains(s, ".") && got != s {
			t.Fatalf("roundDurations(%q) = %q, want it unchanged", s, got)
		}
	})
}
