package modules

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidName_Behavior(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"a", true}, {"A-z_0.9", true}, {"..", true}, {"orders.eu-1_x", true},
		{strings.Repeat("x", MaxNameLen), true},
		{"", false}, {"a/b", false}, {"a b", false}, {"é", false}, {"a%2F", false}, {"a\n", false},
		{strings.Repeat("x", MaxNameLen+1), false}, {string(make([]byte, 129)), false},
		{string([]byte{'x', 0}), false}, {"a:b", false},
	}
	for _, tt := range tests {
		if got := ValidName(tt.name); got != tt.want {
			t.Errorf("ValidName(%q): got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestValidAPIName_RefusesDotSegments(t *testing.T) {
	for name, want := range map[string]bool{".": false, "..": false, "...": true, ".a": true, "a.b": true, "": false} {
		if got := ValidAPIName(name); got != want {
			t.Errorf("ValidAPIName(%q) = %v, want %v", name, got, want)
		}
	}
	if !ValidName(".") {
		t.Errorf("ValidName(\".\") = false: decoders must still read names written before the API refused them")
	}
}

func TestEcho_CutsLongInputOnARuneBoundary(t *testing.T) {
	if got := Echo("short"); got != "short" {
		t.Errorf("Echo(short) = %q", got)
	}
	long := strings.Repeat("a", 63) + "é" + strings.Repeat("b", 100_000)
	got := Echo(long)
	if len(got) > 70 || !strings.HasSuffix(got, "...") || !utf8.ValidString(got) {
		t.Errorf("Echo of %d bytes = %q (%d bytes)", len(long), got, len(got))
	}
}
