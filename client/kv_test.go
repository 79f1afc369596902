package client_test

import (
	"context"
	"errors"
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

	"shoal/client"
	"shoal/internal/httpjson"
)

// fakeKV is an in-memory kv module behind the API's routes, recording the
// escaped paths it was asked for.
type fakeKV struct {
	mu    sync.Mutex
	data  map[string]client.KVEntry
	clock int64
	paths []string
	watch func(w http.ResponseWriter, r *http.Request)
}

func newFakeKV(t *testing.T) (*fakeKV, *httptest.Server) {
	t.Helper()
	f := &fakeKV{data: map[string]client.KVEntry{}, clock: 1000}
	// Routed by hand: http.ServeMux cleans paths ("a/./b", "a//b"), and
	// the node's router does not, so neither may the fake.
	routes := map[string]httpjson.HandlerFunc{}
	h := func(method string, fn httpjson.HandlerFunc) { routes[method] = fn }
	h("PUT", func(w http.ResponseWriter, r *http.Request) error {
		b, _ := io.ReadAll(r.Body)
		if len(b) > 8 {
			return httpjson.Errorf(413, "value_too_large", "the value is larger than the limit of 8 bytes")
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.paths = append(f.paths, r.URL.EscapedPath())
		key := r.PathValue("key")
		f.clock++
		e := client.KVEntry{Key: key, Value: string(b), Version: client.KVVersion{Time: f.clock, Node: "n1"}, UpdatedAt: time.UnixMilli(f.clock).UTC()}
		f.data[key] = e
		httpjson.WriteJSON(w, 200, map[string]any{"key": key, "version": e.Version})
		return nil
	})
	h("GET", func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.paths = append(f.paths, r.URL.EscapedPath())
		e, ok := f.data[r.PathValue("key")]
		if !ok {
			return httpjson.Errorf(404, "key_not_found", "key %q not found", r.PathValue("key"))
		}
		httpjson.WriteJSON(w, 200, e)
		return nil
	})
	h("DELETE", func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		key := r.PathValue("key")
		delete(f.data, key)
		f.clock++
		httpjson.WriteJSON(w, 200, map[string]any{"key": key, "version": client.KVVersion{Time: f.clock, Node: "n1"}})
		return nil
	})
	list := httpjson.Handle(func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		if q.Get("watch") == "true" {
			f.watch(w, r)
			return nil
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		var keys []string
		for k := range f.data {
			if strings.HasPrefix(k, q.Get("prefix")) && k > q.Get("after") {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		limit := 100
		fmt.Sscan(q.Get("limit"), &limit)
		page := map[string]any{"items": []client.KVEntry{}}
		items := []client.KVEntry{}
		for i, k := range keys {
			if i == limit {
				page["next"] = keys[i-1]
				break
			}
			items = append(items, f.data[k])
		}
		page["items"] = items
		httpjson.WriteJSON(w, 200, page)
		return nil
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/kv" && r.Method == "GET" {
			list(w, r)
			return
		}
		rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/v1/kv/")
		key, err := url.PathUnescape(rest)
		fn := routes[r.Method]
		if !ok || err != nil || fn == nil {
			http.NotFound(w, r)
			return
		}
		r.SetPathValue("key", key)
		httpjson.Handle(fn)(w, r)
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func TestKV_PutGetDelete(t *testing.T) {
	f, srv := newFakeKV(t)
	c := newClient(t, srv.URL)
	ctx := context.Background()
	keys := map[string]string{
		"plain":        "/v1/kv/plain",
		"a/b/c":        "/v1/kv/a/b/c",
		"with space":   "/v1/kv/with%20space",
		"q?x=1#f":      "/v1/kv/q%3Fx=1%23f",
		"100%":         "/v1/kv/100%25",
		"a/./b/../c":   "/v1/kv/a/%2E/b/%2E%2E/c",
		"ünï/€":        "/v1/kv/%C3%BCn%C3%AF/%E2%82%AC",
		"a//b/":        "/v1/kv/a//b/",
		"dots.in.name": "/v1/kv/dots.in.name",
	}
	for key, path := range keys {
		v, err := c.KVPut(ctx, key, "v")
		if err != nil {
			t.Fatalf("put %q: %v", key, err)
		}
		e, err := c.KVGet(ctx, key)
		if err != nil {
			t.Fatalf("get %q: %v", key, err)
		}
		if e.Key != key || e.Value != "v" || e.Version != v || e.UpdatedAt.IsZero() {
			t.Fatalf("get %q: got %+v, want value v at %v", key, e, v)
		}
		f.mu.Lock()
		got := f.paths[len(f.paths)-1]
		f.mu.Unlock()
		if got != path {
			t.Fatalf("key %q was sent as %q, want %q", key, got, path)
		}
	}
	if _, err := c.KVDelete(ctx, "plain"); err != nil {
		t.Fatal(err)
	}
	_, err := c.KVGet(ctx, "plain")
	if !errors.Is(err, client.ErrKeyNotFound) || !strings.Contains(err.Error(), `get key "plain"`) {
		t.Fatalf("get after delete: got %v, want ErrKeyNotFound", err)
	}
	if _, err := c.KVPut(ctx, "k", "too long value"); !errors.Is(err, client.ErrValueTooLarge) {
		t.Fatalf("got %v, want ErrValueTooLarge", err)
	}
	for _, op := range []func() error{
		func() error { _, err := c.KVPut(ctx, "", "v"); return err },
		func() error { _, err := c.KVGet(ctx, ""); return err },
		func() error { _, err := c.KVDelete(ctx, ""); return err },
	} {
		if err := op(); !errors.Is(err, client.ErrInvalidKey) {
			t.Fatalf("empty key: got %v, want ErrInvalidKey", err)
		}
	}
}

func TestKV_ListPages(t *testing.T) {
	_, srv := newFakeKV(t)
	c := newClient(t, srv.URL)
	ctx := context.Background()
	for _, k := range []string{"app/1", "app/2", "app/3", "other"} {
		if _, err := c.KVPut(ctx, k, k); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	opts := client.KVListOptions{Prefix: "app/", Limit: 2}
	for {
		page, err := c.KVList(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Items {
			got = append(got, e.Key+"="+e.Value)
		}
		if page.Next == "" {
			break
		}
		opts.After = page.Next
	}
	if strings.Join(got, ",") != "app/1=app/1,app/2=app/2,app/3=app/3" {
		t.Fatalf("got %v", got)
	}
}

func TestKV_Watch(t *testing.T) {
	f, srv := newFakeKV(t)
	f.watch = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("prefix") != "app/" || r.Header.Get("Accept") != "text/event-stream" {
			http.Error(w, "bad watch request", 400)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		fmt.Fprint(w, "event: synced\ndata: {\"node\":\"n1\",\"keys\":3}\n\n: ping\n\n")
		fmt.Fprint(w, "event: new_key\ndata: {\"key\":\"app/a\",\"value\":\"1\",\"version\":{\"time\":5,\"counter\":1,\"node\":\"n2\"},\"updated_at\":\"2025-01-02T03:04:05Z\"}\n\n")
		fmt.Fprint(w, "event: future_event\ndata: {}\n\n")
		fmt.Fprint(w, "event: key_removed\ndata: {\"key\":\"app/a\",\"version\":{\"time\":6,\"counter\":0,\"node\":\"n1\"},\"updated_at\":\"2025-01-02T03:04:05Z\"}\n\n")
		fmt.Fprint(w, "event: stream_error\ndata: {\"error\":{\"code\":\"watch_overflow\",\"message\":\"behind\"}}\n\n")
	}
	c := newClient(t, srv.URL)
	var got []client.KVEvent
	err := c.KVWatch(context.Background(), "app/", func(ev client.KVEvent) error {
		got = append(got, ev)
		return nil
	})
	if !errors.Is(err, client.ErrWatchOverflow) {
		t.Fatalf("got %v, want ErrWatchOverflow", err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d events: %+v", len(got), got)
	}
	if ev := got[0]; ev.Type != "synced" || ev.Node != "n1" || ev.Keys != 3 {
		t.Fatalf("event 0: %+v", ev)
	}
	if ev := got[1]; ev.Type != "new_key" || ev.Entry.Key != "app/a" || ev.Entry.Value != "1" || ev.Removed ||
		ev.Entry.Version != (client.KVVersion{Time: 5, Counter: 1, Node: "n2"}) || ev.Entry.UpdatedAt.Year() != 2025 {
		t.Fatalf("event 1: %+v", ev)
	}
	if ev := got[2]; ev.Type != "key_removed" || !ev.Removed || ev.Entry.Value != "" {
		t.Fatalf("event 2: %+v", ev)
	}

	// The callback's error ends the watch and comes back as is.
	stop := errors.New("stop")
	if err := c.KVWatch(context.Background(), "app/", func(client.KVEvent) error { return stop }); err != stop {
		t.Fatalf("got %v, want the callback's error", err)
	}
	// A refused watch: the node's error, not a retry.
	var he *client.Error
	if err := c.KVWatch(context.Background(), "other/", func(client.KVEvent) error { return nil }); !errors.As(err, &he) || he.Status != 400 {
		t.Fatalf("got %v, want the 400 refusal", err)
	}
	// A watch the node ends cleanly.
	f.watch = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
	}
	if err := c.KVWatch(context.Background(), "app/", func(client.KVEvent) error { return nil }); !errors.Is(err, client.ErrWatchClosed) {
		t.Fatalf("got %v, want ErrWatchClosed", err)
	}
}

// TestKV_WatchFromSendsLastEventIDAndFollowsIDs: KVWatchFrom sends its
// id as Last-Event-ID, hands ids and resync events to fn, returns the last
// id (from an event or an id alone), and still reads the "error" event of
// an older node.
func TestKV_WatchFromSendsLastEventIDAndFollowsIDs(t *testing.T) {
	f, srv := newFakeKV(t)
	var gotHeader string
	f.watch = func(w http.ResponseWriter, r *http.Request) {
		gotHeader = r.Header.Get("Last-Event-ID")
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		fmt.Fprint(w, "retry: 2000\n\n")
		fmt.Fprint(w, "event: resync\ndata: {\"reason\":\"history_trimmed\",\"message\":\"old\",\"node\":\"n1\"}\n\n")
		fmt.Fprint(w, "event: new_key\ndata: {\"key\":\"a\",\"value\":\"1\",\"version\":{\"time\":5,\"counter\":0,\"node\":\"n1\"},\"updated_at\":\"2025-01-02T03:04:05Z\"}\n\n")
		fmt.Fprint(w, "id: e-7\n\n")
		fmt.Fprint(w, "id: e-8\nevent: key_removed\ndata: {\"key\":\"a\",\"version\":{\"time\":6,\"counter\":0,\"node\":\"n1\"},\"updated_at\":\"2025-01-02T03:04:05Z\"}\n\n")
		fmt.Fprint(w, "id: e-9\n\n")
		fmt.Fprint(w, "event: error\ndata: {\"error\":{\"code\":\"watch_overflow\",\"message\":\"behind\"}}\n\n")
	}
	c := newClient(t, srv.URL)
	var got []client.KVEvent
	id, err := c.KVWatchFrom(context.Background(), "", "e-3", func(ev client.KVEvent) error {
		got = append(got, ev)
		return nil
	})
	if !errors.Is(err, client.ErrWatchOverflow) || id != "e-9" || gotHeader != "e-3" {
		t.Fatalf("got %v, id %q, header %q; want ErrWatchOverflow, e-9, e-3", err, id, gotHeader)
	}
	if len(got) != 3 || got[0].Type != "resync" || got[0].Reason != "history_trimmed" || got[0].Node != "n1" ||
		got[1].Type != "new_key" || got[1].ID != "" || got[2].Type != "key_removed" || got[2].ID != "e-8" {
		t.Fatalf("got %+v", got)
	}
}

func TestKV_WatchStopsWithContext(t *testing.T) {
	f, srv := newFakeKV(t)
	f.watch = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		fmt.Fprint(w, "event: synced\ndata: {\"node\":\"n1\",\"keys\":0}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
	c := newClient(t, srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	err := c.KVWatch(ctx, "", func(ev client.KVEvent) error {
		cancel() // the way a caller stops following
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestKVVersion_Compare(t *testing.T) {
	a := client.KVVersion{Time: 5, Counter: 1, Node: "b"}
	for _, tt := range []struct {
		o    client.KVVersion
		want int
	}{
		{client.KVVersion{Time: 6}, -1},
		{client.KVVersion{Time: 5, Counter: 2}, -1},
		{client.KVVersion{Time: 5, Counter: 1, Node: "c"}, -1},
		{a, 0},
		{client.KVVersion{Time: 5, Counter: 1, Node: "a"}, 1},
		{client.KVVersion{Time: 4, Counter: 9, Node: "z"}, 1},
	} {
		if got := a.Compare(tt.o); got != tt.want {
			t.Fatalf("%v vs %v: got %d, want %d", a, tt.o, got, tt.want)
		}
	}
	if s := a.String(); s != "5.1@b" {
		t.Fatalf("got %q", s)
	}
}
