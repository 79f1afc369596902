package kv

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/internal/testcluster"
)

// do sends a request with headers and returns the status, headers and
// body.
func do(t *testing.T, method, url, body string, headers ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := testHTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestETag_RoundTrip(t *testing.T) {
	for _, v := range []Version{{Time: 1733412345678, Counter: 3, Node: "n1"}, {Time: 0, Node: `we"ird node/é`}, {Time: maxTime, Counter: 1<<32 - 1, Node: "x"}} {
		tag := etag(v)
		for _, r := range tag[1 : len(tag)-1] {
			if r == '"' || r <= ' ' || r > '~' {
				t.Fatalf("etag %s has %q, not allowed in an entity tag", tag, r)
			}
		}
		if got, ok := parseETag(tag); !ok || got != v {
			t.Fatalf("parse %s: got %+v %v, want %+v", tag, got, ok, v)
		}
	}
	for _, bad := range []string{``, `"`, `W/"1.0@n"`, `"1.0"`, `"x.0@n"`, `"1.x@n"`, `"1.0@"`, `"-1.0@n"`, `"1.0@%zz"`, `1.0@n`} {
		if v, ok := parseETag(bad); ok {
			t.Fatalf("parse %q: got %+v, want a refusal", bad, v)
		}
	}
}

func TestHTTP_ConditionalWrites(t *testing.T) {
	n := startNode(t, newFakeNet(), "n1", testConfig())
	srv := n.serve()
	u := keyURL(srv.URL, "c/k")
	code := func(body string) string { t.Helper(); return errorCode(t, body) }

	// Create only: succeeds once.
	st, h, body := do(t, "PUT", u, "1", "If-None-Match", "*")
	if st != 200 || h.Get("ETag") == "" {
		t.Fatalf("create: %d %s (ETag %q)", st, body, h.Get("ETag"))
	}
	tag1 := h.Get("ETag")
	if st, _, body := do(t, "PUT", u, "again", "If-None-Match", "*"); st != 412 || code(body) != "precondition_failed" {
		t.Fatalf("second create: %d %s, want 412", st, body)
	}
	// GET shows the same ETag; If-None-Match with it is 304.
	if st, h, body := do(t, "GET", u, ""); st != 200 || h.Get("ETag") != tag1 {
		t.Fatalf("GET: %d %s ETag %q, want %q", st, body, h.Get("ETag"), tag1)
	}
	if st, _, _ := do(t, "GET", u+"?raw", "", "If-None-Match", tag1); st != http.StatusNotModified {
		t.Fatalf("GET If-None-Match current: %d, want 304", st)
	}
	// If-Match on the current version succeeds and moves the ETag.
	st, h, body = do(t, "PUT", u, "2", "If-Match", tag1)
	if st != 200 || h.Get("ETag") == tag1 {
		t.Fatalf("If-Match current: %d %s ETag %q", st, body, h.Get("ETag"))
	}
	tag2 := h.Get("ETag")
	// On the old one it fails, says what the version is, and writes nothing.
	st, _, body = do(t, "PUT", u, "3", "If-Match", tag1)
	if st != 412 || code(body) != "precondition_failed" || !strings.Contains(body, `"current_etag":"`+strings.ReplaceAll(tag2, `"`, `\"`)+`"`) {
		t.Fatalf("If-Match stale: %d %s, want 412 naming %s", st, body, tag2)
	}
	if v, _ := n.get("c/k"); v != "2" {
		t.Fatalf("after a failed If-Match the value is %q, want 2", v)
	}
	// A list of tags: one matching is enough.
	if st, _, body := do(t, "PUT", u, "4", "If-Match", tag1+", "+tag2); st != 200 {
		t.Fatalf("If-Match list: %d %s", st, body)
	}
	// DELETE with a stale If-Match fails; If-Match: * on a missing key too.
	if st, _, body := do(t, "DELETE", u, "", "If-Match", tag1); st != 412 {
		t.Fatalf("DELETE If-Match stale: %d %s", st, body)
	}
	if st, _, body := do(t, "PUT", keyURL(srv.URL, "c/missing"), "x", "If-Match", "*"); st != 412 || code(body) != "precondition_failed" {
		t.Fatalf("If-Match * on a missing key: %d %s", st, body)
	}
	// Malformed headers are 400.
	for _, h := range [][2]string{{"If-Match", "nope"}, {"If-Match", `W/"1.0@n1"`}, {"If-Match", "*, " + tag1}, {"If-None-Match", `"x"`}} {
		if st, _, body := do(t, "PUT", u, "x", h[0], h[1]); st != 400 || code(body) != "invalid_precondition" {
			t.Fatalf("%s: %s: %d %s, want 400 invalid_precondition", h[0], h[1], st, body)
		}
	}
	// An expired value is no value: If-None-Match: * creates over it.
	if st, _, body := do(t, "PUT", keyURL(srv.URL, "c/ttl")+"?ttl=1s", "x"); st != 200 {
		t.Fatalf("PUT ttl: %d %s", st, body)
	}
	var cur Version
	n.kv.st.mu.RLock()
	cur = n.kv.st.index["c/ttl"].ver
	n.kv.st.mu.RUnlock()
	if _, live := n.kv.st.current("c/ttl", cur.Time+1000); live {
		t.Fatalf("a value is still current at its expiry")
	}
}

// TestHTTP_IfMatchIsAtomicOnTheNode: of concurrent writes with the same
// If-Match on one node, exactly one succeeds.
func TestHTTP_IfMatchIsAtomicOnTheNode(t *testing.T) {
	n := startNode(t, newFakeNet(), "n1", testConfig())
	srv := n.serve()
	u := keyURL(srv.URL, "race")
	_, h, _ := do(t, "PUT", u, "0")
	tag := h.Get("ETag")
	var wg sync.WaitGroup
	statuses := make(chan int, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, _, _ := do(t, "PUT", u, strings.Repeat("x", i+1), "If-Match", tag)
			statuses <- st
		}()
	}
	wg.Wait()
	close(statuses)
	won := 0
	for st := range statuses {
		switch st {
		case 200:
			won++
		case 412:
		default:
			t.Fatalf("got status %d, want 200 or 412", st)
		}
	}
	if won != 1 {
		t.Fatalf("%d conditional writes on the same version succeeded, want exactly 1", won)
	}
}

func TestHTTP_UnknownParameters(t *testing.T) {
	n := startNode(t, newFakeNet(), "n1", testConfig())
	srv := n.serve()
	k := keyURL(srv.URL, "p/k")
	for _, tt := range []struct {
		method, url, param string
	}{
		{"PUT", k + "?cas=1", "cas"},
		{"PUT", k + "?ttl=30s&tll=30s", "tll"},
		{"GET", k + "?rw", "rw"},
		{"DELETE", k + "?recurse=true", "recurse"},
		{"GET", srv.URL + "/v1/kv?prefix=p/&sort=desc", "sort"},
		{"GET", srv.URL + "/v1/kv?watch=true&since=5", "since"},
	} {
		st, _, body := do(t, tt.method, tt.url, "v")
		var e struct {
			Error struct {
				Code    string         `json:"code"`
				Message string         `json:"message"`
				Details map[string]any `json:"details"`
			} `json:"error"`
		}
		if st != 400 || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != "unknown_parameter" ||
			!strings.Contains(e.Error.Message, `"`+tt.param+`"`) || !strings.Contains(e.Error.Message, "accepts") {
			t.Fatalf("%s %s: %d %s, want 400 unknown_parameter naming %q and the accepted ones", tt.method, tt.url, st, body, tt.param)
		}
	}
	// The refused PUT wrote nothing.
	if _, ok := n.get("p/k"); ok {
		t.Fatalf("a PUT with an unknown parameter wrote the value")
	}
	// The accepted ones still work; ?token is the API's.
	for _, u := range []string{k + "?ttl=1m", k + "?token=x"} {
		if st, _, body := do(t, "PUT", u, "v"); st != 200 {
			t.Fatalf("PUT %s: %d %s", u, st, body)
		}
	}
	// TTL bounds.
	for _, ttl := range []string{"999ms", "0s", "-5s", "721h", "30", "forever", ""} {
		if st, _, body := do(t, "PUT", k+"?ttl="+ttl, "v"); st != 400 || errorCode(t, body) != "invalid_parameter" {
			t.Fatalf("ttl=%q: %d %s, want 400 invalid_parameter", ttl, st, body)
		}
	}
}

// TestTTL_ReadsNeverShowAnExpiredValue: once its expiry has passed by the
// node's clock, a value is gone from GET, the list and conditions, before
// the sweep has replaced it.
func TestTTL_ReadsNeverShowAnExpiredValue(t *testing.T) {
	clock := new(skewClock)
	cfg := testConfig()
	cfg.clock = clock.now
	cfg.GossipInterval = time.Hour // no tick: no sweep during the test
	n := startNode(t, newFakeNet(), "n1", cfg)
	srv := n.serve()
	if st, _, body := do(t, "PUT", keyURL(srv.URL, "e/k")+"?ttl=1m", "v"); st != 200 {
		t.Fatalf("PUT: %d %s", st, body)
	}
	st, _, body := do(t, "GET", keyURL(srv.URL, "e/k"), "")
	var e EntryJSON
	if st != 200 || json.Unmarshal([]byte(body), &e) != nil || e.ExpiresAt == "" {
		t.Fatalf("GET before the expiry: %d %s", st, body)
	}
	clock.advance(time.Minute)
	if st, _, body := do(t, "GET", keyURL(srv.URL, "e/k"), ""); st != 404 {
		t.Fatalf("GET after the expiry: %d %s, want 404", st, body)
	}
	if st, _, body := do(t, "GET", srv.URL+"/v1/kv?prefix=e/", ""); st != 200 || strings.Contains(body, "e/k") {
		t.Fatalf("list after the expiry: %d %s, want no e/k", st, body)
	}
	if st, _, body := do(t, "PUT", keyURL(srv.URL, "e/k"), "new", "If-None-Match", "*"); st != 200 {
		t.Fatalf("create over an expired value: %d %s", st, body)
	}
}

// TestTTL_ExpiredOnArrivalNeverShows: a value that reaches a node after
// its expiry (by that node's clock) is merged as its tombstone: it never
// shows there, and fires nothing.
func TestTTL_ExpiredOnArrivalNeverShows(t *testing.T) {
	n := startNode(t, newFakeNet(), "n1", testConfig())
	events := watch(t, n.serve().URL+"/v1/kv?prefix=x/&watch=true")
	now := time.Now().UnixMilli()
	old := entry{Key: "x/old", Value: "v", Version: Version{Time: now - 2000, Node: "n2"}, Expires: now - 1000}
	n.kv.NotifyMsg(encodeMessage(message{Type: msgEntry, From: "n2", Entries: []entry{old}}))
	barrier := entry{Key: "x/barrier", Value: "b", Version: Version{Time: now, Node: "n2"}}
	n.kv.NotifyMsg(encodeMessage(message{Type: msgEntry, From: "n2", Entries: []entry{barrier}}))
	if ev := next(t, events, 10*time.Second); ev.typ != "new_key" || !strings.Contains(ev.data, "x/barrier") {
		t.Fatalf("got %s %s, want the barrier's new_key and nothing for the expired value", ev.typ, ev.data)
	}
	n.kv.st.mu.RLock()
	m := n.kv.st.index["x/old"]
	n.kv.st.mu.RUnlock()
	if want := old.expiredTombstone().Version; m == nil || !m.deleted || m.ver != want {
		t.Fatalf("got %+v, want the tombstone at %+v", m, want)
	}
}

// TestTTL_SurvivesARestartAndExpiresAfterIt: the expiry is stored with the
// value; a node restarted past it never serves the value and replaces it
// by the same tombstone as a running node would.
func TestTTL_SurvivesARestartAndExpiresAfterIt(t *testing.T) {
	clock := new(skewClock)
	cfg := testConfig()
	cfg.clock = clock.now
	n := startNode(t, newFakeNet(), "n1", cfg)
	st, _, body := do(t, "PUT", keyURL(n.serve().URL, "r/k")+"?ttl=1h", "v")
	var w WriteResult
	if st != 200 || json.Unmarshal([]byte(body), &w) != nil {
		t.Fatalf("PUT: %d %s", st, body)
	}
	n.restart()
	if v, ok := n.get("r/k"); !ok || v != "v" {
		t.Fatalf("after a restart before the expiry: %q %v, want the value", v, ok)
	}
	n.stop()
	clock.advance(2 * time.Hour)
	n.start()
	if _, ok, _ := n.kv.st.get("r/k", clock.now().UnixMilli()); ok {
		t.Fatalf("a node restarted past the expiry serves the value")
	}
	want := entry{Key: "r/k", Version: w.Version, Expires: w.Version.Time + time.Hour.Milliseconds()}.expiredTombstone().Version
	testcluster.Eventually(t, 30*time.Second, func() error {
		n.kv.st.mu.RLock()
		defer n.kv.st.mu.RUnlock()
		if m := n.kv.st.index["r/k"]; m == nil || !m.deleted || m.ver != want {
			return fmt.Errorf("holds %+v, want the tombstone %+v", m, want)
		}
		return nil
	})
}
