package acl

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// The route table: every route the API serves, with the resource a
// request to it touches. It is the one place that knows the API's paths;
// TestRoutes_EveryRouteMapped walks a real node's routes and fails on a
// route missing here, so a new route cannot ship unmapped.
//
// Patterns are chi's, as the routers declare them: {x} is one path
// segment, a trailing * is the rest of the path. Entries are tried in
// order, so a fixed path comes before a {param} at the same place.
// Method "" matches every method (chi's Handle). HEAD is served wherever
// GET is (chi's GetHead middleware), so a GET entry also matches HEAD.
//
// Actions: GET and HEAD read; POST, PUT, PATCH and DELETE of data write;
// configuring or deleting a whole log or semaphore is admin. Node
// administration (join, leave, raft peers, leadership, snapshots, the
// gossip keyring, ACL management) is operator. The node's status, members
// and metrics are cluster:read. Public routes are served before the token
// check (health probes, the console's page and assets, objectsync's
// browser client): the API does not ask for a token there, and their
// resources only say what they would need.
var routeTable = []route{
	// Health probes: open, for orchestrators.
	{method: "GET", pattern: "/livez", module: ModuleCluster, action: ActionRead, public: true},
	{method: "GET", pattern: "/readyz", module: ModuleCluster, action: ActionRead, public: true},
	{method: "GET", pattern: "/v1/health/live", module: ModuleCluster, action: ActionRead, public: true},
	{method: "GET", pattern: "/v1/health/ready", module: ModuleCluster, action: ActionRead, public: true},

	// The web console's page and assets (its /ui/api/ calls are rewritten
	// into API requests before routing, and meet this table as such).
	{method: "GET", pattern: "/ui", module: ModuleCluster, action: ActionRead, public: true},
	{method: "GET", pattern: "/ui/", module: ModuleCluster, action: ActionRead, public: true},
	{method: "GET", pattern: "/ui/assets/*", module: ModuleCluster, action: ActionRead, public: true},
	{method: "GET", pattern: "/ui/session", module: ModuleCluster, action: ActionRead, public: true},
	{method: "POST", pattern: "/ui/login", module: ModuleCluster, action: ActionRead, public: true},
	{method: "POST", pattern: "/ui/logout", module: ModuleCluster, action: ActionRead, public: true},
	// objectsync's browser client and viewer page: static, no data.
	{method: "GET", pattern: "/ui/objects", module: ModuleObjects, action: ActionRead, public: true},
	{method: "GET", pattern: "/v1/objects/client.js", module: ModuleObjects, action: ActionRead, public: true},
	{method: "GET", pattern: "/v1/objects/viewer", module: ModuleObjects, action: ActionRead, public: true},

	// The node (api/server.go).
	{method: "", pattern: "/metrics", module: ModuleCluster, action: ActionRead},
	{method: "GET", pattern: "/v1/status", module: ModuleCluster, action: ActionRead},
	{method: "GET", pattern: "/v1/members", module: ModuleCluster, action: ActionRead},
	{method: "POST", pattern: "/v1/cluster/join", module: ModuleOperator, action: ActionAdmin},
	{method: "POST", pattern: "/v1/cluster/leave", module: ModuleOperator, action: ActionAdmin},
	{method: "GET", pattern: "/v1/raft/peers", module: ModuleOperator, action: ActionAdmin},
	{method: "DELETE", pattern: "/v1/raft/peers/{name}", module: ModuleOperator, action: ActionAdmin},
	{method: "POST", pattern: "/v1/raft/transfer-leadership", module: ModuleOperator, action: ActionAdmin},
	{method: "GET", pattern: "/v1/snapshot", module: ModuleOperator, action: ActionAdmin},
	{method: "PUT", pattern: "/v1/snapshot", module: ModuleOperator, action: ActionAdmin},
	{method: "GET", pattern: "/v1/keyring", module: ModuleOperator, action: ActionAdmin},
	{method: "POST", pattern: "/v1/keyring/{op}", module: ModuleOperator, action: ActionAdmin},

	// acl (this package).
	{method: "GET", pattern: "/v1/acl/tokens/", module: ModuleOperator, action: ActionAdmin},
	{method: "POST", pattern: "/v1/acl/tokens/", module: ModuleOperator, action: ActionAdmin},
	{method: "GET", pattern: "/v1/acl/tokens/{accessor}", module: ModuleOperator, action: ActionAdmin},
	{method: "DELETE", pattern: "/v1/acl/tokens/{accessor}", module: ModuleOperator, action: ActionAdmin},

	// kv: a list is restricted to its ?prefix=.
	{method: "GET", pattern: "/v1/kv/", module: ModuleKV, action: ActionRead, name: queryName("prefix")},
	{method: "GET", pattern: "/v1/kv/*", module: ModuleKV, action: ActionRead, name: restName},
	{method: "PUT", pattern: "/v1/kv/*", module: ModuleKV, action: ActionWrite, name: restName},
	{method: "DELETE", pattern: "/v1/kv/*", module: ModuleKV, action: ActionWrite, name: restName},

	// The log module.
	{method: "GET", pattern: "/v1/logs/", module: ModuleLogs, action: ActionRead},
	{method: "POST", pattern: "/v1/logs/{name}", module: ModuleLogs, action: ActionWrite, name: paramName},
	{method: "GET", pattern: "/v1/logs/{name}", module: ModuleLogs, action: ActionRead, name: paramName},
	{method: "PUT", pattern: "/v1/logs/{name}", module: ModuleLogs, action: ActionAdmin, name: paramName},
	{method: "DELETE", pattern: "/v1/logs/{name}", module: ModuleLogs, action: ActionAdmin, name: paramName},
	{method: "GET", pattern: "/v1/logs/{name}/stream", module: ModuleLogs, action: ActionRead, name: paramName},

	// locks: semaphores and read/write locks share one namespace of rules.
	{method: "GET", pattern: "/v1/semaphores/", module: ModuleLocks, action: ActionRead},
	{method: "PUT", pattern: "/v1/semaphores/{name}", module: ModuleLocks, action: ActionAdmin, name: paramName},
	{method: "GET", pattern: "/v1/semaphores/{name}", module: ModuleLocks, action: ActionRead, name: paramName},
	{method: "DELETE", pattern: "/v1/semaphores/{name}", module: ModuleLocks, action: ActionAdmin, name: paramName},
	{method: "POST", pattern: "/v1/semaphores/{name}/acquire", module: ModuleLocks, action: ActionWrite, name: paramName},
	{method: "POST", pattern: "/v1/semaphores/{name}/release", module: ModuleLocks, action: ActionWrite, name: paramName},
	{method: "POST", pattern: "/v1/semaphores/{name}/renew", module: ModuleLocks, action: ActionWrite, name: paramName},
	{method: "GET", pattern: "/v1/locks/", module: ModuleLocks, action: ActionRead},
	{method: "GET", pattern: "/v1/locks/{name}", module: ModuleLocks, action: ActionRead, name: paramName},
	{method: "POST", pattern: "/v1/locks/{name}/acquire", module: ModuleLocks, action: ActionWrite, name: paramName},
	{method: "POST", pattern: "/v1/locks/{name}/release", module: ModuleLocks, action: ActionWrite, name: paramName},
	{method: "POST", pattern: "/v1/locks/{name}/renew", module: ModuleLocks, action: ActionWrite, name: paramName},

	// objectsync. A list's ?pattern= is authorised by its literal part
	// before the first '*'. The websocket both reads and writes any
	// object it names in its messages, so opening one needs write on
	// every object (until the websocket checks each message itself).
	// Dependency counters share the objects' namespace.
	{method: "GET", pattern: "/v1/objects/", module: ModuleObjects, action: ActionRead, name: patternName},
	{method: "GET", pattern: "/v1/objects/ws", module: ModuleObjects, action: ActionWrite},
	{method: "POST", pattern: "/v1/objects/deps/{name}/bump", module: ModuleObjects, action: ActionWrite, name: paramName},
	{method: "GET", pattern: "/v1/objects/deps/{name}", module: ModuleObjects, action: ActionRead, name: paramName},
	{method: "GET", pattern: "/v1/objects/{id}", module: ModuleObjects, action: ActionRead, name: paramName},
	{method: "PUT", pattern: "/v1/objects/{id}", module: ModuleObjects, action: ActionWrite, name: paramName},
	{method: "PATCH", pattern: "/v1/objects/{id}", module: ModuleObjects, action: ActionWrite, name: paramName},
	{method: "DELETE", pattern: "/v1/objects/{id}", module: ModuleObjects, action: ActionWrite, name: paramName},
	{method: "GET", pattern: "/v1/objects/{id}/watch", module: ModuleObjects, action: ActionRead, name: paramName},

	// replication: files by path; a list is restricted to its ?prefix=.
	{method: "GET", pattern: "/v1/files/", module: ModuleFiles, action: ActionRead, name: queryName("prefix")},
	{method: "GET", pattern: "/v1/files/*", module: ModuleFiles, action: ActionRead, name: restName},
	{method: "HEAD", pattern: "/v1/files/*", module: ModuleFiles, action: ActionRead, name: restName},
	{method: "PUT", pattern: "/v1/files/*", module: ModuleFiles, action: ActionWrite, name: restName},
	{method: "POST", pattern: "/v1/files/*", module: ModuleFiles, action: ActionWrite, name: restName},
	{method: "DELETE", pattern: "/v1/files/*", module: ModuleFiles, action: ActionWrite, name: restName},
	{method: "GET", pattern: "/v1/replication/status", module: ModuleFiles, action: ActionRead},
}

// route is one entry of the route table.
type route struct {
	method  string // "" for every method
	pattern string
	module  string
	action  Action
	public  bool
	// name extracts the resource's name from the matched request; nil:
	// the resource has no name (a whole-module list, an operator route).
	name func(m match) (string, bool)
}

// match is what matching a pattern captured.
type match struct {
	param string // the last {param}, still escaped
	rest  string // what a trailing * matched, still escaped
	query string // the raw query
}

func paramName(m match) (string, bool) {
	s, err := url.PathUnescape(m.param)
	return s, err == nil
}

func restName(m match) (string, bool) {
	s, err := url.PathUnescape(m.rest)
	return s, err == nil
}

func queryName(key string) func(m match) (string, bool) {
	return func(m match) (string, bool) {
		q, err := url.ParseQuery(m.query)
		if err != nil {
			return "", false
		}
		return q.Get(key), true
	}
}

// patternName is the literal prefix of objectsync's ?pattern= (before its
// first '*'): every id the pattern matches starts with it.
func patternName(m match) (string, bool) {
	q, err := url.ParseQuery(m.query)
	if err != nil {
		return "", false
	}
	p, _, _ := strings.Cut(q.Get("pattern"), "*")
	return p, true
}

// ResourceOf returns the resource a request touches, from its method and
// its target as chi routes it: the escaped path, optionally followed by
// "?" and the raw query (r.URL.RequestURI() is exactly that; the query
// carries a list's prefix). Names are unescaped. ok is false for a route
// the API does not serve, and for a malformed name or query (the route's
// handler would refuse the request with a 400 anyway): the caller must
// then refuse a restricted token.
func ResourceOf(method, target string) (res Resource, ok bool) {
	rt, m, ok := lookup(method, target)
	if !ok {
		return Resource{}, false
	}
	res = Resource{Module: rt.module, Action: rt.action}
	if rt.name != nil {
		if res.Name, ok = rt.name(m); !ok {
			return Resource{}, false
		}
	}
	return res, true
}

// ResourceOfRequest is ResourceOf(r.Method, r.URL.RequestURI()).
func ResourceOfRequest(r *http.Request) (Resource, bool) {
	return ResourceOf(r.Method, r.URL.RequestURI())
}

// Public reports whether the API serves method and target without a
// token (health probes, the console's static page, objectsync's browser
// client). The API's router decides that; this says the same for the
// table's readers.
func Public(method, target string) bool {
	rt, _, ok := lookup(method, target)
	return ok && rt.public
}

// lookup finds the table entry serving method on target.
func lookup(method, target string) (route, match, bool) {
	path, query, _ := strings.Cut(target, "?")
	if method == http.MethodHead {
		// GetHead: HEAD is GET where no route serves HEAD itself.
		if rt, m, ok := find(http.MethodHead, path, query); ok {
			return rt, m, true
		}
		method = http.MethodGet
	}
	return find(method, path, query)
}

func find(method, path, query string) (route, match, bool) {
	for _, rt := range routeTable {
		if rt.method != "" && rt.method != method {
			continue
		}
		if m, ok := matchPattern(rt.pattern, path); ok {
			m.query = query
			return rt, m, true
		}
	}
	return route{}, match{}, false
}

// matchPattern matches an escaped path against a chi pattern. As chi
// mounts a sub-router, "/v1/kv" is served by the sub-router's "/" route,
// so a pattern ending in "/" also matches the path without it. {param}
// matches one non-empty segment; a trailing * matches the rest, also
// empty (chi prefers the exact "/" route, which comes first here).
func matchPattern(pattern, path string) (match, bool) {
	var m match
	if strings.HasSuffix(pattern, "/") && path == strings.TrimSuffix(pattern, "/") {
		return m, true
	}
	for {
		if pattern == "*" {
			m.rest = path
			return m, true
		}
		if pattern == "" || path == "" {
			return m, pattern == path
		}
		if pattern[0] == '{' {
			end := strings.IndexByte(pattern, '}')
			seg, _, _ := strings.Cut(path, "/")
			if seg == "" || end < 0 {
				return m, false
			}
			m.param = seg
			pattern, path = pattern[end+1:], path[len(seg):]
			continue
		}
		if pattern[0] != path[0] {
			return m, false
		}
		pattern, path = pattern[1:], path[1:]
	}
}

// PatternOf returns the pattern of the table entry serving method on
// target ("" if none): tests compare it with the routers' own patterns.
func PatternOf(method, target string) string {
	rt, _, _ := lookup(method, target)
	return rt.pattern
}

// Patterns lists the patterns of the route table, in table order, once
// each.
func Patterns() []string {
	var out []string
	for _, rt := range routeTable {
		if !slices.Contains(out, rt.pattern) {
			out = append(out, rt.pattern)
		}
	}
	return out
}
