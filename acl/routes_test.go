package acl_test

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"shoal/acl"
	"shoal/internal/testcluster"
	"shoal/modules"

	_ "shoal/modules/all" // every module, as the binary runs them
)

// servedRoute is one route a node serves: a method ("" for every method)
// and a chi pattern.
type servedRoute struct{ method, pattern string }

// moduleRoutes walks the routers of a real node's modules: each module's
// Routes under /v1 and PublicRoutes at the root, as the API mounts them.
func moduleRoutes(t *testing.T, n *testcluster.Node) []servedRoute {
	t.Helper()
	r := chi.NewRouter()
	var routers []modules.Router
	for _, info := range modules.Registered() {
		mod, ok := n.Agent().Module(info.ID)
		if !ok {
			t.Fatalf("the node does not run module %s", info.ID)
		}
		if rt, ok := mod.(modules.Router); ok {
			routers = append(routers, rt)
		}
		if pr, ok := mod.(modules.PublicRouter); ok {
			pr.PublicRoutes(r)
		}
	}
	r.Route("/v1", func(r chi.Router) {
		for _, rt := range routers {
			rt.Routes(r)
		}
	})
	var out []servedRoute
	err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, servedRoute{method, route})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// coreRoutePattern finds a route in the API's and the console's sources:
// r.Get("/status", ...), r.Handle("/metrics", ...).
var coreRoutePattern = regexp.MustCompile(`\br\.(Get|Head|Post|Put|Patch|Delete|Handle)\("(/[^"]*)"`)

// coreRoutes reads the routes of the node itself and of the console from
// their sources: api's route table is unexported, so no test outside api
// can walk it. Routes declared inside api's routes function are under
// /v1.
func coreRoutes(t *testing.T) []servedRoute {
	t.Helper()
	var out []servedRoute
	for _, file := range []string{"../api/server.go", "../console/console.go"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		v1From := strings.Index(string(src), "func (s *server) routes(")
		for _, m := range coreRoutePattern.FindAllSubmatchIndex(src, -1) {
			method := strings.ToUpper(string(src[m[2]:m[3]]))
			if method == "HANDLE" {
				method = ""
			}
			pattern := string(src[m[4]:m[5]])
			if v1From >= 0 && m[0] > v1From {
				pattern = "/v1" + pattern
			}
			out = append(out, servedRoute{method, pattern})
		}
	}
	if len(out) < 15 {
		t.Fatalf("found only %d routes in the API's sources: has the route syntax changed?", len(out))
	}
	return out
}

// paramPattern is a chi {param} or {param:regexp}.
var paramPattern = regexp.MustCompile(`\{([a-z]+)(:[^}]*)?\}`)

// samplePath is a request path the pattern serves.
func samplePath(pattern string) string {
	p := paramPattern.ReplaceAllStringFunc(pattern, func(s string) string {
		if strings.HasPrefix(s, "{op") { // the keyring's {op:install|use|remove}
			return "install"
		}
		return "sample"
	})
	if strings.HasSuffix(p, "*") {
		p = strings.TrimSuffix(p, "*") + "dir/sample"
	}
	return p
}

// unmapped describes each route of served that ResourceOf does not map,
// or maps through a table entry of another pattern.
func unmapped(served []servedRoute) []string {
	var out []string
	for _, r := range served {
		pattern := paramPattern.ReplaceAllString(r.pattern, "{$1}")
		methods := []string{r.method}
		if r.method == "" {
			methods = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}
		}
		for _, m := range methods {
			path := samplePath(pattern)
			res, ok := acl.ResourceOf(m, path)
			switch {
			case !ok:
				out = append(out, fmt.Sprintf("%s %s (%s %s) has no mapping in the acl route table", m, pattern, m, path))
			case acl.PatternOf(m, path) != pattern:
				out = append(out, fmt.Sprintf("%s %s is mapped by the table's pattern %s", m, pattern, acl.PatternOf(m, path)))
			case res.Module == "" || res.Action == 0:
				out = append(out, fmt.Sprintf("%s %s maps to %+v", m, pattern, res))
			}
		}
	}
	return out
}

// TestRoutes_EveryRouteMapped walks every route a real node serves (its
// modules' routers, and the API's own routes read from its source) and
// fails on any that ResourceOf does not map, or maps through an entry of
// another pattern (the table and chi disagree on routing). It then asks
// the running node which methods it serves on each mapped path (an
// OPTIONS request answers 405 with an Allow header) and fails where the
// table lists a method the node does not serve, or the reverse.
func TestRoutes_EveryRouteMapped(t *testing.T) {
	c := testcluster.New(t, 1)
	n := c.Node(0)
	served := append(moduleRoutes(t, n), coreRoutes(t)...)
	if len(served) < 60 {
		t.Fatalf("walked only %d routes", len(served))
	}
	for _, problem := range unmapped(served) {
		t.Error(problem)
	}
	// Negative control: a route the table lacks, and one it maps through
	// another pattern, are both reported.
	extra := []servedRoute{{"POST", "/v1/status"}, {"GET", "/v1/kv/{key}/history"}}
	if got := unmapped(append(slices.Clone(served), extra...)); len(got) != len(unmapped(served))+2 {
		t.Errorf("the checker missed a bad route: %q", got)
	}

	// The table has no route the node does not serve.
	client := &http.Client{Timeout: 10 * time.Second}
	checked := map[string]bool{}
	for _, p := range acl.Patterns() {
		path := samplePath(p)
		if checked[path] || strings.HasSuffix(path, "/") {
			// A sub-router's root: chi's Match, which the API's Allow
			// header relies on, reports every method there.
			continue
		}
		checked[path] = true
		req, err := http.NewRequest(http.MethodOptions, n.URL()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			if p != "/metrics" { // chi's Handle: every method, OPTIONS too
				t.Errorf("OPTIONS %s: %d, want 405 with an Allow header", path, resp.StatusCode)
			}
			continue
		}
		var allow []string
		for _, m := range strings.Split(resp.Header.Get("Allow"), ", ") {
			if m != "HEAD" && m != "" {
				allow = append(allow, m)
			}
		}
		var table []string
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			if _, ok := acl.ResourceOf(m, path); ok {
				table = append(table, m)
			}
		}
		sort.Strings(allow)
		sort.Strings(table)
		if !slices.Equal(allow, table) {
			t.Errorf("%s: the node serves %v, the acl table maps %v", path, allow, table)
		}
	}
}
