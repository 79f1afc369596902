package acl

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRule_Valid(t *testing.T) {
	tests := []struct {
		in   string
		want Rule
		text string // canonical form; "" means in
	}{
		{"operator", Rule{Operator: true}, ""},
		{"kv:read:config/", Rule{Module: "kv", Action: ActionRead, Prefix: "config/"}, ""},
		{"kv:write:*", Rule{Module: "kv", Action: ActionWrite}, ""},
		{"logs:admin:orders", Rule{Module: "logs", Action: ActionAdmin, Prefix: "orders"}, ""},
		{"locks:write:jobs-", Rule{Module: "locks", Action: ActionWrite, Prefix: "jobs-"}, ""},
		{"objects:read:room/1", Rule{Module: "objects", Action: ActionRead, Prefix: "room/1"}, ""},
		{"files:write:data/", Rule{Module: "files", Action: ActionWrite, Prefix: "data/"}, ""},
		{"cluster:read:*", Rule{Module: "cluster", Action: ActionRead}, ""},
		{"*:admin:*", Rule{Module: "*", Action: ActionAdmin}, ""},
		{"*:read:team-a/", Rule{Module: "*", Action: ActionRead, Prefix: "team-a/"}, ""},
		{"kv:read:a:b:c", Rule{Module: "kv", Action: ActionRead, Prefix: "a:b:c"}, ""},
		{"kv:read:ключ/", Rule{Module: "kv", Action: ActionRead, Prefix: "ключ/"}, ""},
	}
	for _, tt := range tests {
		got, err := ParseRule(tt.in)
		if err != nil {
			t.Errorf("ParseRule(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseRule(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		text := tt.text
		if text == "" {
			text = tt.in
		}
		if got.String() != text {
			t.Errorf("ParseRule(%q).String() = %q, want %q", tt.in, got.String(), text)
		}
		again, err := ParseRule(got.String())
		if err != nil || again != got {
			t.Errorf("round trip of %q: %+v, %v", tt.in, again, err)
		}
	}
}

func TestParseRule_Invalid(t *testing.T) {
	tests := []struct{ in, mention string }{
		{"", "MODULE:ACTION:PATTERN"},
		{"Operator", "MODULE:ACTION:PATTERN"},
		{"operator:read:*", "unknown module"},
		{"kv", "MODULE:ACTION:PATTERN"},
		{"kv:read", "MODULE:ACTION:PATTERN"},
		{"kv:read:", "empty pattern"},
		{"sql:read:*", "unknown module \"sql\""},
		{"KV:read:*", "unknown module"},
		{"kv:delete:*", "unknown action \"delete\""},
		{"kv:Read:*", "unknown action"},
		{"kv:read:config/*", `write "config/"`},
		{"kv:read:a*b", "only allowed alone"},
		{"kv:read:**", "write \"*\""},
		{"kv:read:a\nb", "control character"},
		{"kv:read:\xff", "UTF-8"},
		{"cluster:read:nodes/", "cluster rules take the pattern *"},
		{"kv:read:" + strings.Repeat("a", MaxPatternLen+1), "bytes"},
	}
	for _, tt := range tests {
		_, err := ParseRule(tt.in)
		if err == nil {
			t.Errorf("ParseRule(%q) = nil error, want one mentioning %q", tt.in, tt.mention)
			continue
		}
		if !errors.Is(err, ErrInvalidRule) {
			t.Errorf("ParseRule(%q) = %v, not ErrInvalidRule", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("ParseRule(%q) = %q, want it to mention %q", tt.in, err.Error(), tt.mention)
		}
		if len(err.Error()) > 400 {
			t.Errorf("ParseRule(%q) error is %d bytes: it must not echo long input", tt.in[:20], len(err.Error()))
		}
	}
}

func TestRule_UnmarshalText(t *testing.T) {
	var r Rule
	if err := r.UnmarshalText([]byte("kv:read:*")); err != nil || r != (Rule{Module: "kv", Action: ActionRead}) {
		t.Fatalf("got %+v, %v", r, err)
	}
	if err := r.UnmarshalText([]byte("kv:nope:*")); err == nil {
		t.Fatal("UnmarshalText accepted an invalid rule")
	}
	if b, _ := r.MarshalText(); string(b) != "kv:read:*" {
		t.Fatalf("MarshalText = %q", b)
	}
}

func mustRules(t *testing.T, ss ...string) []Rule {
	t.Helper()
	var out []Rule
	for _, s := range ss {
		r, err := ParseRule(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestToken_Allows(t *testing.T) {
	kv := func(a Action, name string) Resource { return Resource{Module: ModuleKV, Action: a, Name: name} }
	op := Resource{Module: ModuleOperator, Action: ActionAdmin}
	tests := []struct {
		name  string
		rules []string
		res   Resource
		want  bool
	}{
		{"prefix covers key", []string{"kv:read:config/"}, kv(ActionRead, "config/a"), true},
		{"prefix covers nested key", []string{"kv:read:config/"}, kv(ActionRead, "config/a/b"), true},
		{"prefix is the key", []string{"kv:read:config/"}, kv(ActionRead, "config/"), true},
		{"other key", []string{"kv:read:config/"}, kv(ActionRead, "secrets/a"), false},
		{"shorter key", []string{"kv:read:config/"}, kv(ActionRead, "config"), false},
		{"name is a prefix match, not exact", []string{"logs:read:orders"}, Resource{ModuleLogs, ActionRead, "orders-eu"}, true},
		{"read does not imply write", []string{"kv:read:*"}, kv(ActionWrite, "a"), false},
		{"write implies read", []string{"kv:write:*"}, kv(ActionRead, "a"), true},
		{"write does not imply admin", []string{"logs:write:*"}, Resource{ModuleLogs, ActionAdmin, "l"}, false},
		{"admin implies write", []string{"logs:admin:*"}, Resource{ModuleLogs, ActionWrite, "l"}, true},
		{"admin implies read", []string{"logs:admin:*"}, Resource{ModuleLogs, ActionRead, "l"}, true},
		{"other module", []string{"kv:admin:*"}, Resource{ModuleLogs, ActionRead, "l"}, false},
		{"any module", []string{"*:read:*"}, Resource{ModuleFiles, ActionRead, "f"}, true},
		{"any module with prefix", []string{"*:write:team/"}, Resource{ModuleLocks, ActionWrite, "team/x"}, true},
		{"any module covers cluster", []string{"*:read:*"}, Resource{Module: ModuleCluster, Action: ActionRead}, true},
		{"any module never covers operator", []string{"*:admin:*"}, op, false},
		{"operator", []string{"operator"}, op, true},
		{"operator grants no data", []string{"operator"}, kv(ActionRead, "a"), false},
		{"list with covered prefix", []string{"kv:read:config/"}, kv(ActionRead, "config/app/"), true},
		{"list with wider prefix", []string{"kv:read:config/"}, kv(ActionRead, "conf"), false},
		{"unrestricted list needs *", []string{"kv:read:config/"}, kv(ActionRead, ""), false},
		{"unrestricted list with *", []string{"kv:read:*"}, kv(ActionRead, ""), true},
		{"second rule grants", []string{"kv:read:a/", "kv:write:b/"}, kv(ActionWrite, "b/1"), true},
		{"no rules", nil, kv(ActionRead, "a"), false},
		{"zero resource", []string{"*:admin:*", "operator"}, Resource{}, false},
		{"invalid action", []string{"*:admin:*"}, Resource{Module: ModuleKV, Action: 9}, false},
	}
	for _, tt := range tests {
		tok := Token{Rules: mustRules(t, tt.rules...)}
		if got := tok.Allows(tt.res); got != tt.want {
			t.Errorf("%s: %v allows %+v = %v, want %v", tt.name, tt.rules, tt.res, got, tt.want)
		}
	}
}
