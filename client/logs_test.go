package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/client"
	"shoal/internal/httpjson"
)

// fakeLogAdmin answers DELETE and PUT /v1/logs/{name} as the contract of
// the log module says, recording the bodies it got.
type fakeLogAdmin struct {
	mu     sync.Mutex
	logs   map[string]map[string]any
	bodies []string
}

func newFakeLogAdmin(t *testing.T) (*fakeLogAdmin, *httptest.Server) {
	t.Helper()
	f := &fakeLogAdmin{logs: map[string]map[string]any{"orders": {"name": "orders", "first_index": 1, "last_index": 3, "entries": 3, "bytes": 300}}}
	mux := http.NewServeMux()
	mux.Handle("DELETE /v1/logs/{name}", httpjson.Handle(func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		name := r.PathValue("name")
		if _, ok := f.logs[name]; !ok {
			return client.ErrLogNotFound.WithMessage("no log %q", name)
		}
		delete(f.logs, name)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	mux.Handle("PUT /v1/logs/{name}", httpjson.Handle(func(w http.ResponseWriter, r *http.Request) error {
		b, _ := io.ReadAll(r.Body)
		var in map[string]any
		if err := json.Unmarshal(b, &in); err != nil {
			return httpjson.BadRequest("invalid_json", "%s", err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.bodies = append(f.bodies, string(b))
		name := r.PathValue("name")
		info, ok := f.logs[name]
		if !ok {
			info = map[string]any{"name": name, "first_index": 0, "last_index": 0, "entries": 0, "bytes": 0}
			f.logs[name] = info
		}
		for _, k := range []string{"max_entries", "max_bytes", "max_age"} {
			if v, ok := in[k]; ok {
				info[k] = v
			}
		}
		httpjson.WriteJSON(w, 200, info)
		return nil
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, srv
}

func TestClient_DeleteLog(t *testing.T) {
	_, srv := newFakeLogAdmin(t)
	c := newClient(t, srv.URL)
	ctx := context.Background()
	if err := c.DeleteLog(ctx, "orders"); err != nil {
		t.Fatalf("DeleteLog: %v", err)
	}
	err := c.DeleteLog(ctx, "orders")
	if !errors.Is(err, client.ErrLogNotFound) {
		t.Fatalf("got %v, want ErrLogNotFound", err)
	}
	if !strings.Contains(err.Error(), `delete log "orders"`) {
		t.Fatalf("got %q, want the operation in the message", err)
	}
}

func TestClient_ConfigureLog(t *testing.T) {
	f, srv := newFakeLogAdmin(t)
	c := newClient(t, srv.URL)
	ctx := context.Background()
	info, err := c.ConfigureLog(ctx, "orders", client.LogRetention{MaxEntries: new(int64(1000)), MaxBytes: new(int64(10 << 20)), MaxAge: new(24 * time.Hour)})
	if err != nil {
		t.Fatalf("ConfigureLog: %v", err)
	}
	want := client.LogInfo{Name: "orders", FirstIndex: 1, LastIndex: 3, Entries: 3, Bytes: 300,
		MaxEntries: 1000, MaxBytes: 10 << 20, MaxAge: client.Duration(24 * time.Hour)}
	if info != want {
		t.Fatalf("got %+v, want %+v", info, want)
	}
	zero := int64(0)
	info, err = c.ConfigureLog(ctx, "fresh", client.LogRetention{MaxEntries: &zero})
	if err != nil || info.Name != "fresh" || info.MaxEntries != 0 {
		t.Fatalf("got %+v, %v", info, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	wantBodies := []string{`{"max_entries":1000,"max_bytes":10485760,"max_age":"24h0m0s"}`, `{"max_entries":0}`}
	for i, w := range wantBodies {
		if i >= len(f.bodies) || strings.TrimSpace(f.bodies[i]) != w {
			t.Fatalf("got bodies %q, want %q", f.bodies, wantBodies)
		}
	}
}

func TestDuration_JSON(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{`"24h0m0s"`, 24 * time.Hour, true},
		{`"1.5s"`, 1500 * time.Millisecond, true},
		{`""`, 0, true},
		{`null`, 0, true},
		{`"soon"`, 0, false},
		{`86400000000000`, 24 * time.Hour, true},
		{`true`, 0, false},
	} {
		var d client.Duration
		err := json.Unmarshal([]byte(tt.in), &d)
		if (err == nil) != tt.ok || (tt.ok && time.Duration(d) != tt.want) {
			t.Errorf("Unmarshal(%s): got %v, %v; want %v, ok %v", tt.in, time.Duration(d), err, tt.want, tt.ok)
		}
	}
	b, err := json.Marshal(client.LogInfo{Name: "x", MaxAge: client.Duration(time.Hour)})
	if err != nil || !strings.Contains(string(b), `"max_age":"1h0m0s"`) {
		t.Fatalf("got %s, %v", b, err)
	}
}

func TestTailWithOptions_ReportsAndStopsRetries(t *testing.T) {
	unavailable := func(w http.ResponseWriter, r *http.Request) {
		httpjson.WriteError(w, r, httpjson.Errorf(503, "no_leader", "no leader"))
	}
	_, srv := newSSEServer(t, unavailable, unavailable, unavailable)
	var seen []client.TailRetry
	giveUp := errors.New("enough")
	err := tailClient(t, srv.URL).TailWithOptions(context.Background(), "ev ents", client.TailOptions{
		OnRetry: func(r client.TailRetry) error {
			seen = append(seen, r)
			if r.Attempt == 3 {
				return giveUp
			}
			return nil
		}}, func(client.LogEntry) error { return nil })
	if !errors.Is(err, giveUp) || !strings.Contains(err.Error(), `tail log "ev ents"`) {
		t.Fatalf("got %v, want the hook's error wrapped", err)
	}
	if len(seen) != 3 {
		t.Fatalf("got %d retries, want 3", len(seen))
	}
	for i, r := range seen {
		var he *client.Error
		if r.Attempt != i+1 || r.Delay <= 0 || !errors.As(r.Err, &he) || he.Code != "no_leader" {
			t.Fatalf("retry %d: got %+v", i, r)
		}
	}
}

// FuzzDuration: decoding never panics, and a decoded duration encodes to
// a string that decodes to the same value.
func FuzzDuration(f *testing.F) {
	for _, s := range []string{`"24h0m0s"`, `"1.5s"`, `""`, `null`, `86400000000000`, `"soon"`, `true`, `"-3m"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var d client.Duration
		if json.Unmarshal([]byte(in), &d) != nil {
			return
		}
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("Marshal(%v): %v", time.Duration(d), err)
		}
		var back client.Duration
		if err := json.Unmarshal(b, &back); err != nil || back != d {
			t.Fatalf("%s: got %v, %v back, want %v", b, time.Duration(back), err, time.Duration(d))
		}
	})
}
