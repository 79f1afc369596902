package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/internal/httpjson"
)

// fakeKVNode answers the kv routes from memory. It is routed by hand, as
// the node's router does not clean paths and http.ServeMux does.
type fakeKVNode struct {
	mu      sync.Mutex
	data    map[string]string
	clock   int64
	watches int
}

func newFakeKV(t *testing.T) (*fakeKVNode, *httptest.Server) {
	t.Helper()
	f := &fakeKVNode{data: map[string]string{}, clock: 1000}
	entry := func(key string) map[string]any {
		return map[string]any{"key": key, "value": f.data[key], "version": map[string]any{"time": f.clock, "counter": 0, "node": "n1"},
			"updated_at": "2025-01-02T03:04:05Z"}
	}
	handle := httpjson.Handle(func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if r.URL.Path == "/v1/kv" {
			q := r.URL.Query()
			if q.Get("watch") == "true" {
				f.watches++
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(200)
				if f.watches == 1 {
					fmt.Fprint(w, "event: synced\ndata: {\"node\":\"n1\",\"keys\":2}\n\n")
				}
				fmt.Fprintf(w, "event: new_key\ndata: {\"key\":\"%sk%d\",\"value\":\"v\",\"version\":{\"time\":7,\"counter\":0,\"node\":\"n2\"},\"updated_at\":\"2025-01-02T03:04:05Z\"}\n\n", q.Get("prefix"), f.watches)
				fmt.Fprint(w, "event: key_removed\ndata: {\"key\":\"gone\",\"version\":{\"time\":8,\"counter\":0,\"node\":\"n2\"},\"updated_at\":\"2025-01-02T03:04:05Z\"}\n\n")
				return nil // the stream ends: the command reconnects
			}
			var keys []string
			for k := range f.data {
				if strings.HasPrefix(k, q.Get("prefix")) && k > q.Get("after") {
					keys = append(keys, k)
				}
			}
			sort.Strings(keys)
			limit := 100
			fmt.Sscan(q.Get("limit"), &limit)
			out := map[string]any{}
			items := []map[string]any{}
			for i, k := range keys {
				if i == limit {
					out["next"] = keys[i-1]
					break
				}
				items = append(items, entry(k))
			}
			out["items"] = items
			httpjson.WriteJSON(w, 200, out)
			return nil
		}
		rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/v1/kv/")
		key, err := url.PathUnescape(rest)
		if !ok || err != nil || key == "" {
			return httpjson.BadRequest("invalid_key", "bad key")
		}
		switch r.Method {
		case "PUT":
			b, _ := io.ReadAll(r.Body)
			f.clock++
			f.data[key] = string(b)
		case "DELETE":
			f.clock++
			delete(f.data, key)
		case "GET":
			if _, ok := f.data[key]; !ok {
				return httpjson.Errorf(404, "key_not_found", "key %q not found", key)
			}
		}
		httpjson.WriteJSON(w, 200, entry(key))
		return nil
	})
	srv := httptest.NewServer(handle)
	t.Cleanup(srv.Close)
	return f, srv
}

func TestKV_Commands(t *testing.T) {
	f, srv := newFakeKV(t)
	a := func(args ...string) []string { return append(args, "--addr", srv.URL) }
	runCases(t, []cliCase{
		{name: "put", args: a("kv", "put", "app/a b", "hello world"), wantOut: []string{"version 1001.0@n1\n"}},
		{name: "put dash value", args: []string{"kv", "put", "--addr", srv.URL, "app/dash", "--", "-5"}, wantOut: []string{"version 1002.0@n1"}},
		{name: "put more", args: a("kv", "put", "app/c", "3"), wantOut: []string{"version"}},
		{name: "put other", args: a("kv", "put", "other", "o"), wantOut: []string{"version"}},
		{name: "put without value", args: a("kv", "put", "k"), wantCode: 2, wantErr: []string{"a key and a value are required"}},
		{name: "get", args: a("kv", "get", "app/a b"), wantOut: []string{"hello world\n"}},
		{name: "get json", args: a("kv", "get", "--json", "app/dash"), wantOut: []string{`"key": "app/dash"`, `"value": "-5"`, `"node": "n1"`}},
		{name: "get missing", args: a("kv", "get", "nope"), wantCode: 1, wantErr: []string{`shoal: get key "nope": key "nope" not found (key_not_found)`}},
		{name: "get two keys", args: a("kv", "get", "a", "b"), wantCode: 2, wantErr: []string{"exactly one key"}},
		{name: "ls", args: a("kv", "ls"), wantOut: []string{"app/a b\napp/c\napp/dash\nother\n"}},
		{name: "ls prefix", args: a("kv", "ls", "app/"), wantOut: []string{"app/a b\napp/c\napp/dash\n"}, wantNotOut: []string{"other"}},
		{name: "ls limit", args: a("kv", "ls", "--limit", "2"), wantOut: []string{"app/a b\napp/c\n"}, wantNotOut: []string{"app/dash"}},
		{name: "ls json", args: a("kv", "ls", "--json", "other"), wantOut: []string{`{"key":"other","value":"o","version":{"time":`}},
		{name: "ls two prefixes", args: a("kv", "ls", "a", "b"), wantCode: 2, wantErr: []string{"at most one prefix"}},
		{name: "del", args: a("kv", "del", "other"), wantOut: []string{"deleted other (version 1005.0@n1)"}},
		{name: "get deleted", args: a("kv", "get", "other"), wantCode: 1, wantErr: []string{"(key_not_found)"}},
		{name: "del empty key", args: a("kv", "del", ""), wantCode: 1, wantErr: []string{"(invalid_key)"}},
		{name: "no subcommand", args: []string{"kv"}, wantCode: 2, wantErr: []string{"shoal kv <command>", "watch"}},
		{name: "help", args: []string{"kv", "help"}, wantOut: []string{"put", "get", "del", "ls", "watch"}},
		{name: "subcommand help", args: []string{"kv", "ls", "-h"}, wantOut: []string{"shoal kv ls [flags] [PREFIX]", "--limit", "--json"}},
		{name: "top-level help lists kv", args: []string{"help"}, wantOut: []string{"kv", "gossip key-value store"}},
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.data["app/a b"] != "hello world" || f.data["app/dash"] != "-5" {
		t.Fatalf("server holds %v", f.data)
	}
}

func TestKVWatch_PrintsLinesAndReconnects(t *testing.T) {
	f, srv := newFakeKV(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := &lineWriter{wrote: make(chan struct{}, 1)}
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runKV(ctx, []string{"watch", "app/", "--addr", srv.URL}, stdout, &stderr)
	}()
	// Two connections: the first ends after its events, the second is
	// opened by the command itself.
	deadline := time.After(10 * time.Second)
	for strings.Count(stdout.String(), "\n") < 5 {
		select {
		case <-stdout.wrote:
		case code := <-done:
			t.Fatalf("watch ended early with %d: stdout %q stderr %q", code, stdout.String(), stderr.String())
		case <-deadline:
			t.Fatalf("got %q", stdout.String())
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("got exit code %d after interrupt, want 0 (stderr %q)", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("watch did not stop after interrupt")
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	want := []map[string]any{
		{"event": "synced", "node": "n1", "keys": float64(2)},
		{"event": "new_key", "key": "app/k1", "value": "v"},
		{"event": "key_removed", "key": "gone"},
		{"event": "new_key", "key": "app/k2", "value": "v"},
	}
	for i, w := range want {
		var got map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
			t.Fatalf("line %d %q: %v", i, lines[i], err)
		}
		for k, v := range w {
			if got[k] != v {
				t.Fatalf("line %d: got %s, want %s=%v", i, lines[i], k, v)
			}
		}
		if w["event"] == "key_removed" {
			if _, has := got["value"]; has {
				t.Fatalf("line %d: a removal has a value: %s", i, lines[i])
			}
		}
	}
	if !strings.Contains(stderr.String(), "shoal kv watch: the node closed the watch, retrying in 100ms (attempt 1)\n") {
		t.Fatalf("no reconnect note on stderr: %q", stderr.String())
	}
	if strings.Contains(stderr.String(), "shoal kv watch: shoal:") {
		t.Fatalf("the reconnect note repeats its prefix: %q", stderr.String())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.watches < 2 {
		t.Fatalf("%d watch connections, want a reconnect", f.watches)
	}
}

func TestKVWatch_FailsOnRefusal(t *testing.T) {
	srv := httptest.NewServer(httpjson.Handle(func(w http.ResponseWriter, r *http.Request) error {
		return httpjson.ErrUnauthorized
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	code := runKV(context.Background(), []string{"watch", "--addr", srv.URL}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "(unauthorized)") {
		t.Fatalf("got %d, stderr %q", code, stderr.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
