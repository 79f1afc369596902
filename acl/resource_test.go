package acl

import (
	"net/http"
	"testing"
)

func TestResourceOf_Routes(t *testing.T) {
	cl := Resource{Module: ModuleCluster, Action: ActionRead}
	op := Resource{Module: ModuleOperator, Action: ActionAdmin}
	r := func(m string, a Action, name string) Resource { return Resource{Module: m, Action: a, Name: name} }
	tests := []struct {
		method, target string
		want           Resource
		public         bool
	}{
		// Health and the console: open.
		{"GET", "/livez", cl, true},
		{"GET", "/readyz", cl, true},
		{"GET", "/v1/health/live", cl, true},
		{"HEAD", "/v1/health/ready", cl, true},
		{"GET", "/ui", cl, true},
		{"GET", "/ui/", cl, true},
		{"GET", "/ui/assets/app.js", cl, true},
		{"GET", "/ui/session", cl, true},
		{"POST", "/ui/login", cl, true},
		{"POST", "/ui/logout", cl, true},
		{"GET", "/ui/objects", r(ModuleObjects, ActionRead, ""), true},
		{"GET", "/v1/objects/client.js", r(ModuleObjects, ActionRead, ""), true},
		{"GET", "/v1/objects/viewer", r(ModuleObjects, ActionRead, ""), true},

		// The node.
		{"GET", "/metrics", cl, false},
		{"POST", "/metrics", cl, false},
		{"GET", "/v1/status", cl, false},
		{"GET", "/v1/members", cl, false},
		{"POST", "/v1/cluster/join", op, false},
		{"POST", "/v1/cluster/leave", op, false},
		{"GET", "/v1/raft/peers", op, false},
		{"DELETE", "/v1/raft/peers/node-2", op, false},
		{"POST", "/v1/raft/transfer-leadership", op, false},
		{"GET", "/v1/snapshot", op, false},
		{"PUT", "/v1/snapshot", op, false},
		{"GET", "/v1/keyring", op, false},
		{"POST", "/v1/keyring/install", op, false},

		// acl.
		{"GET", "/v1/acl/tokens", op, false},
		{"POST", "/v1/acl/tokens", op, false},
		{"GET", "/v1/acl/tokens/0b9c6b0e-8f3f-4d4e-9a55-1c9d3c8a1f00", op, false},
		{"DELETE", "/v1/acl/tokens/ci", op, false},

		// kv.
		{"GET", "/v1/kv", r(ModuleKV, ActionRead, ""), false},
		{"GET", "/v1/kv/", r(ModuleKV, ActionRead, ""), false},
		{"GET", "/v1/kv/?prefix=config/&limit=10", r(ModuleKV, ActionRead, "config/"), false},
		{"GET", "/v1/kv?prefix=a%2Fb", r(ModuleKV, ActionRead, "a/b"), false},
		{"GET", "/v1/kv/config/app", r(ModuleKV, ActionRead, "config/app"), false},
		{"HEAD", "/v1/kv/config/app", r(ModuleKV, ActionRead, "config/app"), false},
		{"GET", "/v1/kv/a%2Fb%3Fc?watch=1", r(ModuleKV, ActionRead, "a/b?c"), false},
		{"PUT", "/v1/kv/config/app?ttl=10s", r(ModuleKV, ActionWrite, "config/app"), false},
		{"DELETE", "/v1/kv/config/app", r(ModuleKV, ActionWrite, "config/app"), false},

		// logs.
		{"GET", "/v1/logs", r(ModuleLogs, ActionRead, ""), false},
		{"GET", "/v1/logs/", r(ModuleLogs, ActionRead, ""), false},
		{"POST", "/v1/logs/orders", r(ModuleLogs, ActionWrite, "orders"), false},
		{"GET", "/v1/logs/orders?from=3", r(ModuleLogs, ActionRead, "orders"), false},
		{"PUT", "/v1/logs/orders", r(ModuleLogs, ActionAdmin, "orders"), false},
		{"DELETE", "/v1/logs/orders", r(ModuleLogs, ActionAdmin, "orders"), false},
		{"GET", "/v1/logs/orders/stream", r(ModuleLogs, ActionRead, "orders"), false},

		// locks.
		{"GET", "/v1/semaphores", r(ModuleLocks, ActionRead, ""), false},
		{"GET", "/v1/semaphores/", r(ModuleLocks, ActionRead, ""), false},
		{"PUT", "/v1/semaphores/db", r(ModuleLocks, ActionAdmin, "db"), false},
		{"GET", "/v1/semaphores/db", r(ModuleLocks, ActionRead, "db"), false},
		{"DELETE", "/v1/semaphores/db", r(ModuleLocks, ActionAdmin, "db"), false},
		{"POST", "/v1/semaphores/db/acquire", r(ModuleLocks, ActionWrite, "db"), false},
		{"POST", "/v1/semaphores/db/release", r(ModuleLocks, ActionWrite, "db"), false},
		{"POST", "/v1/semaphores/db/renew", r(ModuleLocks, ActionWrite, "db"), false},
		{"GET", "/v1/locks/", r(ModuleLocks, ActionRead, ""), false},
		{"GET", "/v1/locks/schema", r(ModuleLocks, ActionRead, "schema"), false},
		{"POST", "/v1/locks/schema/acquire", r(ModuleLocks, ActionWrite, "schema"), false},
		{"POST", "/v1/locks/schema/release", r(ModuleLocks, ActionWrite, "schema"), false},
		{"POST", "/v1/locks/schema/renew", r(ModuleLocks, ActionWrite, "schema"), false},

		// objects.
		{"GET", "/v1/objects", r(ModuleObjects, ActionRead, ""), false},
		{"GET", "/v1/objects/?pattern=room/*", r(ModuleObjects, ActionRead, "room/"), false},
		{"GET", "/v1/objects/?pattern=room/1", r(ModuleObjects, ActionRead, "room/1"), false},
		{"GET", "/v1/objects/?pattern=*", r(ModuleObjects, ActionRead, ""), false},
		{"GET", "/v1/objects/ws", r(ModuleObjects, ActionWrite, ""), false},
		{"POST", "/v1/objects/deps/users/bump", r(ModuleObjects, ActionWrite, "users"), false},
		{"GET", "/v1/objects/deps/users", r(ModuleObjects, ActionRead, "users"), false},
		{"GET", "/v1/objects/room%2F1", r(ModuleObjects, ActionRead, "room/1"), false},
		{"PUT", "/v1/objects/room1", r(ModuleObjects, ActionWrite, "room1"), false},
		{"PATCH", "/v1/objects/room1?from=1&to=2", r(ModuleObjects, ActionWrite, "room1"), false},
		{"DELETE", "/v1/objects/room1", r(ModuleObjects, ActionWrite, "room1"), false},
		{"GET", "/v1/objects/room1/watch", r(ModuleObjects, ActionRead, "room1"), false},

		// files.
		{"GET", "/v1/files", r(ModuleFiles, ActionRead, ""), false},
		{"GET", "/v1/files/?prefix=data/", r(ModuleFiles, ActionRead, "data/"), false},
		{"GET", "/v1/files/data/a.csv", r(ModuleFiles, ActionRead, "data/a.csv"), false},
		{"HEAD", "/v1/files/data/a.csv", r(ModuleFiles, ActionRead, "data/a.csv"), false},
		{"PUT", "/v1/files/data/a.csv", r(ModuleFiles, ActionWrite, "data/a.csv"), false},
		{"POST", "/v1/files/data/a.csv?append", r(ModuleFiles, ActionWrite, "data/a.csv"), false},
		{"DELETE", "/v1/files/data/a.csv", r(ModuleFiles, ActionWrite, "data/a.csv"), false},
		{"GET", "/v1/replication/status", r(ModuleFiles, ActionRead, ""), false},
	}
	for _, tt := range tests {
		got, ok := ResourceOf(tt.method, tt.target)
		if !ok {
			t.Errorf("ResourceOf(%s %s): no mapping", tt.method, tt.target)
			continue
		}
		if got != tt.want {
			t.Errorf("ResourceOf(%s %s) = %+v, want %+v", tt.method, tt.target, got, tt.want)
		}
		if p := Public(tt.method, tt.target); p != tt.public {
			t.Errorf("Public(%s %s) = %v, want %v", tt.method, tt.target, p, tt.public)
		}
	}
	// Every entry of the table is exercised above.
	seen := map[string]bool{}
	for _, tt := range tests {
		if rt, _, ok := lookup(tt.method, tt.target); ok {
			seen[rt.method+" "+rt.pattern] = true
		}
	}
	for _, rt := range routeTable {
		if !seen[rt.method+" "+rt.pattern] {
			t.Errorf("route %s %s has no case in this test", rt.method, rt.pattern)
		}
	}
}

func TestResourceOf_Unmapped(t *testing.T) {
	tests := []struct{ method, target string }{
		{"GET", "/"},
		{"GET", "/v1"},
		{"GET", "/v1/nope"},
		{"POST", "/v1/status"},
		{"PATCH", "/v1/kv/a"},
		{"POST", "/v1/kv/a"},
		{"GET", "/v1/logs/orders/other"},
		{"GET", "/v1/logs//stream"},
		{"PUT", "/v1/locks/x"},
		{"DELETE", "/v1/logs"},
		{"GET", "/v1/kv/bad%zzescape"},
		{"GET", "/v1/kv/?prefix=%zz"},
		{"GET", "/v1/statusx"},
		{"GET", "/v1/status/"},
		{"OPTIONS", "/v1/kv/a"},
	}
	for _, tt := range tests {
		if res, ok := ResourceOf(tt.method, tt.target); ok {
			t.Errorf("ResourceOf(%s %s) = %+v, want no mapping", tt.method, tt.target, res)
		}
	}
}

func TestResourceOfRequest(t *testing.T) {
	req, err := http.NewRequest("GET", "http://node/v1/kv/a%2Fb?prefix=x", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := ResourceOfRequest(req)
	if want := (Resource{Module: ModuleKV, Action: ActionRead, Name: "a/b"}); !ok || got != want {
		t.Fatalf("got %+v %v, want %+v", got, ok, want)
	}
}

// TestResourceOf_Decisions checks the table and Allows together, as the
// middleware will use them.
func TestResourceOf_Decisions(t *testing.T) {
	tok := Token{Rules: mustRules(t, "kv:read:config/", "logs:write:orders", "cluster:read:*")}
	tests := []struct {
		method, target string
		want           bool
	}{
		{"GET", "/v1/kv/config/a", true},
		{"PUT", "/v1/kv/config/a", false},
		{"GET", "/v1/kv/?prefix=config/", true},
		{"GET", "/v1/kv/", false},
		{"GET", "/v1/kv/?prefix=conf", false},
		{"POST", "/v1/logs/orders", true},
		{"GET", "/v1/logs/orders/stream", true},
		{"PUT", "/v1/logs/orders", false},
		{"DELETE", "/v1/logs/orders", false},
		{"GET", "/v1/logs", false},
		{"GET", "/v1/status", true},
		{"GET", "/metrics", true},
		{"GET", "/v1/snapshot", false},
		{"POST", "/v1/acl/tokens", false},
	}
	for _, tt := range tests {
		res, ok := ResourceOf(tt.method, tt.target)
		if got := ok && tok.Allows(res); got != tt.want {
			t.Errorf("%s %s: allowed %v, want %v", tt.method, tt.target, got, tt.want)
		}
	}
}
