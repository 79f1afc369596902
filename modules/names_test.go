package modules

import (
	"strings"
	"testing"
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
