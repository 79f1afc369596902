package cli

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"shoal/acl" // not yet in modules/all: the test registers it itself
	"shoal/internal/testcluster"
)

// aclNode starts a real one-node cluster with the acl module.
func aclNode(t *testing.T) *testcluster.Cluster {
	t.Helper()
	return testcluster.New(t, 1, testcluster.WithModules("acl"))
}

var secretLine = regexp.MustCompile(`(?m)^secret:\s+(\S+)$`)

func TestACL_TokenCommands(t *testing.T) {
	c := aclNode(t)
	addr := c.Leader().URL()
	a := func(args ...string) []string { return append(args, "--addr", addr) }

	// create prints the secret, once, and the accessor.
	code, out, errs := runMain(a("acl", "token", "create", "--name", "ci", "--rule", "kv:write:config/", "--rule", "logs:read:*", "--ttl", "720h")...)
	if code != 0 || errs != "" {
		t.Fatalf("create: exit %d, stderr %q", code, errs)
	}
	m := secretLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("create printed no secret line:\n%s", out)
	}
	secret := m[1]
	for _, s := range []string{"accessor:", "name:", " ci\n", "rules:", "kv:write:config/, logs:read:*", "created:", "expires:", "shown only this once", "--token or SHOAL_TOKEN"} {
		if !strings.Contains(out, s) {
			t.Errorf("create output lacks %q:\n%s", s, out)
		}
	}
	mod, ok := c.Leader().Agent().Module("acl")
	if !ok {
		t.Fatal("the node runs no acl module")
	}
	tok, ok := mod.(*acl.ACL).Authenticate(secret)
	if !ok || tok.Name != "ci" {
		t.Fatalf("the printed secret does not authenticate as ci: %+v, %v", tok, ok)
	}
	accessor := tok.AccessorID
	if !strings.Contains(out, "accessor:  "+accessor+"\n") {
		t.Fatalf("create output lacks the accessor %s:\n%s", accessor, out)
	}

	// -o json is the API's answer, secret included.
	code, out, errs = runMain(a("acl", "token", "create", "--name", "ops", "--rule", "operator", "-o", "json")...)
	if code != 0 || errs != "" {
		t.Fatalf("create -o json: exit %d, stderr %q", code, errs)
	}
	var created map[string]any
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("create -o json printed %q: %v", out, err)
	}
	for _, k := range []string{"accessor_id", "secret_id", "name", "rules", "created", "expires"} {
		if _, ok := created[k]; !ok {
			t.Errorf("create -o json lacks %q: %s", k, out)
		}
	}
	if len(created) != 6 || created["expires"] != nil || created["name"] != "ops" || created["secret_id"] == "" {
		t.Fatalf("create -o json: %s", out)
	}
	opsSecret := created["secret_id"].(string)

	noSecrets := []string{secret, opsSecret, "secret"}
	runCases(t, []cliCase{
		{name: "list", args: a("acl", "token", "list"),
			wantOut:    []string{"ACCESSOR", "NAME", "RULES", "CREATED", "EXPIRES", accessor, "ci", "kv:write:config/, logs:read:*", "ops", "operator", "never"},
			wantNotOut: noSecrets},
		{name: "list json", args: a("acl", "token", "list", "-o", "json"),
			wantOut:    []string{"[\n", `"accessor_id": "` + accessor + `"`, `"name": "ops"`, `"expires": null`, `"rules": [`},
			wantNotOut: noSecrets},
		{name: "read by accessor", args: a("acl", "token", "read", accessor),
			wantOut: []string{"accessor:  " + accessor, "name:", "ci", "rules:", "kv:write:config/, logs:read:*", "created:", "expires:"}, wantNotOut: noSecrets},
		{name: "read by name, json", args: a("acl", "token", "read", "ops", "--json"),
			wantOut: []string{`"name": "ops"`, `"rules": [`, `"operator"`, `"expires": null`}, wantNotOut: noSecrets},
		{name: "read never expires", args: a("acl", "token", "read", "ops"), wantOut: []string{"expires:   never"}},
		{name: "bad rule", args: a("acl", "token", "create", "--name", "x", "--rule", "kv:read:*", "--rule", "kv:frob:config/"),
			wantCode: 1, wantErr: []string{`shoal: create token "x": rule 1: `, `unknown action "frob"`, "(invalid_rule)"}},
		{name: "star inside a pattern", args: a("acl", "token", "create", "--name", "x", "--rule", "kv:read:config/*"),
			wantCode: 1, wantErr: []string{`write "config/"`, "(invalid_rule)"}},
		{name: "name taken", args: a("acl", "token", "create", "--name", "ci", "--rule", "operator"),
			wantCode: 1, wantErr: []string{"(token_name_taken)"}},
		{name: "ttl too short", args: a("acl", "token", "create", "--name", "x", "--rule", "operator", "--ttl", "10ms"),
			wantCode: 1, wantErr: []string{"(invalid_ttl)"}},
		{name: "revoke by name", args: a("acl", "token", "revoke", "ci"), wantOut: []string{"revoked token ci\n"}},
		{name: "read revoked", args: a("acl", "token", "read", accessor),
			wantCode: 1, wantErr: []string{`shoal: read token "` + accessor + `": `, "(token_not_found)"}},
		{name: "revoke revoked", args: a("acl", "token", "revoke", accessor), wantCode: 1, wantErr: []string{"(token_not_found)"}},
		{name: "revoke by accessor", args: a("acl", "token", "revoke", created["accessor_id"].(string)), wantOut: []string{"revoked token "}},
		{name: "list empty", args: a("acl", "token", "list"), wantOut: []string{"ACCESSOR"}, wantNotOut: []string{"ops", "ci"}},
		{name: "list empty json", args: a("acl", "token", "list", "-o", "json"), wantOut: []string{"[]\n"}},
	})
	if _, ok := mod.(*acl.ACL).Authenticate(secret); ok {
		t.Fatal("a revoked token still authenticates")
	}
}

func TestACL_UsageErrors(t *testing.T) {
	// Usage errors come before any request: the address is never dialled.
	a := func(args ...string) []string { return append(args, "--addr", "http://127.0.0.1:1") }
	runCases(t, []cliCase{
		{name: "group help", args: []string{"acl", "help"}, wantOut: []string{"token"}},
		{name: "token help", args: []string{"acl", "token", "help"}, wantOut: []string{"create", "list", "read", "revoke"}},
		{name: "create help", args: []string{"acl", "token", "create", "-h"}, wantOut: []string{"shoal acl token create [flags] --name NAME --rule RULE", "--rule RULE", "--ttl", "operator", "MODULE:ACTION:PATTERN"}},
		{name: "no command", args: []string{"acl", "token"}, wantCode: 2, wantErr: []string{"shoal acl token <command>"}},
		{name: "unknown command", args: []string{"acl", "token", "mint"}, wantCode: 2, wantErr: []string{`shoal acl token: unknown command "mint"`}},
		{name: "create without name", args: a("acl", "token", "create", "--rule", "operator"), wantCode: 2, wantErr: []string{"--name is required"}},
		{name: "create without rule", args: a("acl", "token", "create", "--name", "ci"), wantCode: 2, wantErr: []string{"at least one --rule is required"}},
		{name: "create negative ttl", args: a("acl", "token", "create", "--name", "ci", "--rule", "operator", "--ttl", "-1h"), wantCode: 2, wantErr: []string{"--ttl must not be negative"}},
		{name: "create bad ttl", args: a("acl", "token", "create", "--name", "ci", "--rule", "operator", "--ttl", "soon"), wantCode: 2, wantErr: []string{`invalid value "soon" for flag -ttl`}},
		{name: "create extra argument", args: a("acl", "token", "create", "ci", "--rule", "operator"), wantCode: 2, wantErr: []string{`unexpected argument "ci"`}},
		{name: "read without accessor", args: a("acl", "token", "read"), wantCode: 2, wantErr: []string{"exactly one accessor id or token name"}},
		{name: "revoke two", args: a("acl", "token", "revoke", "a", "b"), wantCode: 2, wantErr: []string{"exactly one accessor id or token name"}},
	})
}

func TestACL_Completion(t *testing.T) {
	code, out, _ := runIn(nil, "completion", "bash")
	if code != 0 {
		t.Fatalf("completion: exit %d", code)
	}
	for _, s := range []string{"'acl token'", "'acl token create'", "'acl token revoke'", "--rule", "--ttl"} {
		if !strings.Contains(out, s) {
			t.Errorf("the bash script lacks %s", s)
		}
	}
}

func TestTokenExpiry_Text(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Second), now.Add(720*time.Hour)
	tests := []struct {
		in   *time.Time
		want string
	}{
		{nil, "never"},
		{&future, "2027-01-04T12:00:00Z"},
		{&now, "2026-12-05T12:00:00Z (expired)"},
		{&past, "2026-12-05T11:59:59Z (expired)"},
	}
	for _, tt := range tests {
		if got := tokenExpiry(tt.in, now); got != tt.want {
			t.Errorf("tokenExpiry(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
