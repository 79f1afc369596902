package kv

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"shoal/internal/httpjson"
	"shoal/internal/moduletest"
)

// testHTTP is the tests' HTTP client: a request that hangs fails the test
// instead of the whole run.
var testHTTP = &http.Client{Timeout: 60 * time.Second}

// watchHTTP opens watches: no overall timeout (a watch lasts), but the
// headers must come.
var watchHTTP = &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 60 * time.Second}}

// call sends a request and returns the status and body.
func call(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatalf("new request: %v", err)
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
	return resp.StatusCode, string(b)
}

// errorCode returns the code of an error body, checking its shape.
func errorCode(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == nil {
		t.Fatalf("body %q is not in the error shape", body)
	}
	code, _ := e.Error["code"].(string)
	if msg, _ := e.Error["message"].(string); code == "" || msg == "" {
		t.Fatalf("error body %q lacks code or message", body)
	}
	return code
}

// keyURL is the URL of key, escaped the way the Go client does it.
func keyURL(base, key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return base + "/v1/kv/" + strings.Join(segs, "/")
}

func TestHTTP_PutGetDelete(t *testing.T) {
	n := startNode(t, newFakeNet(), "n1", testConfig())
	srv := n.serve()
	keys := []string{"plain", "a/b/c", "with space", "percent%25", "q?x=1#frag", "ünïcødé/€", "a//double", "trailing/", "dots/./and/../x", "a%2Fb"}
	for i, key := range keys {
		value := fmt.Sprintf("value %d of %q\nline two", i, key)
		status, body := call(t, "PUT", keyURL(srv.URL, key), value)
		if status != 200 {
			t.Fatalf("PUT %q: %d %s", key, status, body)
		}
		var w WriteResult
		if err := json.Unmarshal([]byte(body), &w); err != nil || w.Key != key || w.Version.Node != "n1" || w.Version.Time == 0 {
			t.Fatalf("PUT %q answered %s", key, body)
		}
		status, body = call(t, "GET", keyURL(srv.URL, key), "")
		var e EntryJSON
		if err := json.Unmarshal([]byte(body), &e); status != 200 || err != nil {
			t.Fatalf("GET %q: %d %s", key, status, body)
		}
		if e.Key != key || e.Value == nil || *e.Value != value || e.Version != w.Version || e.UpdatedAt == "" {
			t.Fatalf("GET %q: got %+v, want value %q at %+v", key, e, value, w.Version)
		}
		if status, body = call(t, "GET", keyURL(srv.URL, key)+"?raw", ""); status != 200 || body != value {
			t.Fatalf("GET %q?raw: %d %q", key, status, body)
		}
	}
	// An encoded slash and a plain one name the same key.
	if status, body := call(t, "GET", srv.URL+"/v1/kv/a%2Fb%2Fc", ""); status != 200 || !strings.Contains(body, `"key":"a/b/c"`) {
		t.Fatalf("GET a%%2Fb%%2Fc: %d %s", status, body)
	}
	status, body := call(t, "DELETE", keyURL(srv.URL, "a/b/c"), "")
	if status != 200 || !strings.Contains(body, `"key":"a/b/c"`) {
		t.Fatalf("DELETE: %d %s", status, body)
	}
	if status, body := call(t, "GET", keyURL(srv.URL, "a/b/c"), ""); status != 404 || errorCode(t, body) != "key_not_found" {
		t.Fatalf("GET after DELETE: %d %s", status, body)
	}
	if status, _ := call(t, "DELETE", keyURL(srv.URL, "a/b/c"), ""); status != 200 {
		t.Fatalf("second DELETE: %d, want 200 (idempotent)", status)
	}
	if status, _ := call(t, "DELETE", keyURL(srv.URL, "never/written"), ""); status != 200 {
		t.Fatalf("DELETE of an unknown key: %d, want 200", status)
	}
	if status, body := call(t, "GET", keyURL(srv.URL, "never/written"), ""); status != 404 || errorCode(t, body) != "key_not_found" {
		t.Fatalf("GET unknown: %d %s", status, body)
	}
	if got := moduletest.MetricValue(t, n.reg, "shoal_kv_writes_total", "op", "put"); got != float64(len(keys)) {
		t.Fatalf("writes_total{put}: got %v, want %d", got, len(keys))
	}
	if got := moduletest.MetricValue(t, n.reg, "shoal_kv_keys"); got != float64(len(keys)-1) {
		t.Fatalf("shoal_kv_keys: got %v, want %d", got, len(keys)-1)
	}
}

func TestHTTP_List(t *testing.T) {
	n := startNode(t, newFakeNet(), "n1", testConfig())
	srv := n.serve()
	for _, k := range []string{"app/3", "app/1", "app/2", "other", "app/4"} {
		n.put(k, "v-"+k)
	}
	n.del("app/4")
	list := func(query string) ListResult {
		t.Helper()
		status, body := call(t, "GET", srv.URL+"/v1/kv?"+query, "")
		var out ListResult
		if err := json.Unmarshal([]byte(body), &out); status != 200 || err != nil {
			t.Fatalf("list %s: %d %s", query, status, body)
		}
		return out
	}
	keys := func(r ListResult) string {
		var ks []string
		for _, e := range r.Items {
			ks = append(ks, e.Key+"="+*e.Value)
		}
		return strings.Join(ks, ",")
	}
	if got := list("prefix=app/"); keys(got) != "app/1=v-app/1,app/2=v-app/2,app/3=v-app/3" || got.Next != "" {
		t.Fatalf("prefix app/: got %s next %q", keys(got), got.Next)
	}
	page1 := list("prefix=app/&limit=2")
	if keys(page1) != "app/1=v-app/1,app/2=v-app/2" || page1.Next != "app/2" {
		t.Fatalf("page 1: got %s next %q", keys(page1), page1.Next)
	}
	page2 := list("prefix=app/&limit=2&after=" + url.QueryEscape(page1.Next))
	if keys(page2) != "app/3=v-app/3" || page2.Next != "" {
		t.Fatalf("page 2: got %s next %q", keys(page2), page2.Next)
	}
	if got := list(""); len(got.Items) != 4 {
		t.Fatalf("all: got %s", keys(got))
	}
	if status, body := call(t, "GET", srv.URL+"/v1/kv/", ""); status != 200 || !strings.Contains(body, `"items"`) {
		t.Fatalf("GET /v1/kv/: %d %s", status, body)
	}
	if got := list("prefix=none"); got.Items == nil || len(got.Items) != 0 {
		t.Fatalf("an empty list must be [], got %+v", got)
	}
}

func TestHTTP_RejectsBadInput(t *testing.T) {
	cfg := testConfig()
	cfg.MaxValue = 16
	n := startNode(t, newFakeNet(), "n1", cfg)
	srv := n.serve()
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"invalid UTF-8 value", "PUT", "/v1/kv/k", "\xff\xfe", 400, "invalid_value"},
		{"value over the limit", "PUT", "/v1/kv/k", strings.Repeat("x", 17), 413, "value_too_large"},
		{"empty key", "PUT", "/v1/kv/", "v", 400, "invalid_key"},
		{"control character in key", "PUT", "/v1/kv/a%01b", "v", 400, "invalid_key"},
		{"newline in key", "PUT", "/v1/kv/a%0Ab", "v", 400, "invalid_key"},
		{"DEL in key", "GET", "/v1/kv/a%7F", "", 400, "invalid_key"},
		{"C1 control in key", "DELETE", "/v1/kv/a%C2%85", "", 400, "invalid_key"},
		{"invalid UTF-8 key", "PUT", "/v1/kv/%FF", "v", 400, "invalid_key"},
		{"key too long", "PUT", "/v1/kv/" + strings.Repeat("k", MaxKeyLen+1), "v", 400, "invalid_key"},
		{"invalid UTF-8 prefix", "GET", "/v1/kv?prefix=%FF", "", 400, "invalid_parameter"},
		{"control character in prefix", "GET", "/v1/kv?prefix=a%00", "", 400, "invalid_parameter"},
		{"prefix too long", "GET", "/v1/kv?prefix=" + strings.Repeat("p", MaxKeyLen+1), "", 400, "invalid_parameter"},
		{"invalid after", "GET", "/v1/kv?after=%01", "", 400, "invalid_parameter"},
		{"limit not a number", "GET", "/v1/kv?limit=ten", "", 400, "invalid_parameter"},
		{"limit zero", "GET", "/v1/kv?limit=0", "", 400, "invalid_parameter"},
		{"limit too large", "GET", "/v1/kv?limit=1001", "", 400, "invalid_parameter"},
		{"watch not a bool", "GET", "/v1/kv?watch=maybe", "", 400, "invalid_parameter"},
		{"watch with limit", "GET", "/v1/kv?watch=true&limit=5", "", 400, "invalid_parameter"},
		{"raw not a bool", "GET", "/v1/kv/k?raw=please", "", 400, "invalid_parameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := call(t, tt.method, srv.URL+tt.path, tt.body)
			if status != tt.status {
				t.Fatalf("got %d %s, want %d", status, body, tt.status)
			}
			if code := errorCode(t, body); code != tt.code {
				t.Fatalf("got code %q, want %q", code, tt.code)
			}
		})
	}
	// The largest accepted value and the longest key still work.
	if status, body := call(t, "PUT", srv.URL+"/v1/kv/"+strings.Repeat("k", MaxKeyLen), strings.Repeat("x", 16)); status != 200 {
		t.Fatalf("limits: %d %s", status, body)
	}
	if n.live() != 1 {
		t.Fatalf("rejected writes left %d keys", n.live())
	}
}

func TestErrors_AreSentinels(t *testing.T) {
	for _, e := range []*httpjson.Error{ErrInvalidKey, ErrInvalidValue, ErrValueTooLarge, ErrKeyNotFound, ErrInvalidParameter, ErrWatchOverflow} {
		rebuilt := httpjson.ReadError(e.Status, []byte(fmt.Sprintf(`{"error":{"code":%q,"message":"m"}}`, e.Code)))
		if !errors.Is(rebuilt, e) {
			t.Fatalf("%s does not match after a round trip", e.Code)
		}
	}
}

// sseEvent is one event read from a watch.
type sseEvent struct {
	typ  string
	data string
}

// watch opens a watch on url and returns its events; it ends with the
// test or when the server closes the stream (the channel is closed).
func watch(t *testing.T, url string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := watchHTTP.Do(req)
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("watch: %d %s", resp.StatusCode, b)
	}
	out := make(chan sseEvent, 1024)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.typ != "" {
					out <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.typ = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return out
}

// next returns the next event that is not synced, failing after timeout.
func next(t *testing.T, events <-chan sseEvent, timeout time.Duration) sseEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the watch ended")
			}
			if ev.typ != string(EventSynced) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no event within %s", timeout)
		}
	}
}

func TestWatch_EventsOncePerChangeAndNoneForLosingVersions(t *testing.T) {
	net := newFakeNet()
	n := startNode(t, net, "n1", testConfig())
	srv := n.serve()
	events := watch(t, srv.URL+"/v1/kv?prefix=app/&watch=true")
	n.put("other/x", "not watched")
	v1 := n.put("app/k", "1")
	n.put("app/k", "2")
	// A late copy of the first version arrives as a broadcast: it loses,
	// and fires nothing.
	n.kv.NotifyMsg(encodeMessage(message{Type: msgEntry, From: "n2", Entries: []entry{{Key: "app/k", Value: "1", Version: v1}}}))
	n.del("app/k")
	// A newer write of another key, through the same inbox after the late
	// copy: once its event is out, the late copy has been handled.
	barrier := entry{Key: "app/barrier", Value: "b", Version: Version{Time: v1.Time + 1, Node: "n2"}}
	n.kv.NotifyMsg(encodeMessage(message{Type: msgEntry, From: "n2", Entries: []entry{barrier}}))
	want := []struct{ typ, key, value string }{
		{"new_key", "app/k", "1"}, {"key_changed", "app/k", "2"}, {"key_removed", "app/k", ""}, {"new_key", "app/barrier", "b"},
	}
	for i, w := range want {
		ev := next(t, events, 10*time.Second)
		var e EntryJSON
		if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
			t.Fatalf("event %d: data %q: %v", i, ev.data, err)
		}
		got := ""
		if e.Value != nil {
			got = *e.Value
		}
		if ev.typ != w.typ || e.Key != w.key || got != w.value || (w.typ == "key_removed") != (e.Value == nil) {
			t.Fatalf("event %d: got %s %s, want %s %s=%q", i, ev.typ, ev.data, w.typ, w.key, w.value)
		}
	}
}

func TestWatch_SyncedAndStop(t *testing.T) {
	n := startNode(t, newFakeNet(), "n1", testConfig())
	srv := n.serve()
	n.put("k", "v")
	events := watch(t, srv.URL+"/v1/kv?watch=true")
	// Alone, the node becomes the source of truth after a while, and a
	// watch gets synced once: when it happens or at once if it has.
	deadline := time.After(30 * time.Second)
	for got := false; !got; {
		select {
		case ev := <-events:
			if ev.typ != "synced" || ev.data != `{"node":"n1","keys":1}` {
				t.Fatalf("got %s %s, want synced", ev.typ, ev.data)
			}
			got = true
		case <-deadline:
			t.Fatalf("no synced event")
		}
	}
	late := watch(t, srv.URL+"/v1/kv?watch=true")
	select {
	case ev := <-late:
		if ev.typ != "synced" {
			t.Fatalf("a watch opened after the sync got %s first, want synced", ev.typ)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("a watch opened after the sync got no synced event")
	}
	n.stop() // ends both streams
	for _, ch := range []<-chan sseEvent{events, late} {
		timeout := time.After(10 * time.Second)
	drain:
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					break drain
				}
			case <-timeout:
				t.Fatalf("Stop did not end a watch")
			}
		}
	}
	if status, body := call(t, "GET", srv.URL+"/v1/kv?watch=true", ""); status != 503 || errorCode(t, body) != "shutting_down" {
		t.Fatalf("watch after Stop: %d %s", status, body)
	}
}
