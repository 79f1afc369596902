package client_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"shoal/client"
	"shoal/internal/httpjson"
)

// fakeNode mimics the shoal API closely enough to exercise the client:
// the cluster endpoints with canned answers, and an in-memory log module.
type fakeNode struct {
	token string

	mu       sync.Mutex
	logs     map[string][]client.LogEntry
	ids      map[string]map[string]uint64 // log → id → index
	joined   []string
	left     bool
	removed  []string
	transfer int
	ready    bool
}

var errLogFull = httpjson.Errorf(http.StatusConflict, "log_full", "log is full")

func newFakeNode(t *testing.T, token string) (*fakeNode, *httptest.Server) {
	t.Helper()
	f := &fakeNode{
		token: token,
		logs:  map[string][]client.LogEntry{},
		ids:   map[string]map[string]uint64{},
		ready: true,
	}
	srv := httptest.NewServer(f.routes())
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeNode) routes() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, fn httpjson.HandlerFunc) {
		mux.Handle(pattern, f.auth(httpjson.Handle(fn)))
	}
	h("GET /v1/status", func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write([]byte(`{"node":"n1","leader":"n2","raft":{"state":"follower","term":7,"commit_index":42,"applied_index":41,"voters":["n1","n2","n3"],"non_voters":["n4"],"last_contact":"1ms"},"members":4,"modules":["log","kv"],"version":"v1.2.3","log":{"logs":2},"kv":{"keys":10}}`))
		return err
	})
	h("GET /v1/members", func(w http.ResponseWriter, r *http.Request) error {
		httpjson.WriteJSON(w, 200, map[string]any{"members": []map[string]any{
			{"name": "n1", "addr": "10.0.0.1:7946", "status": "alive", "http_addr": "10.0.0.1:7480", "raft_suffrage": "voter", "leader": true},
			{"name": "n2", "addr": "10.0.0.2:7946", "status": "alive", "http_addr": "10.0.0.2:7480", "raft_suffrage": "nonvoter"},
			{"name": "n3", "addr": "10.0.0.3:7946", "status": "left", "http_addr": "10.0.0.3:7480", "raft_suffrage": ""},
		}})
		return nil
	})
	h("GET /v1/health/live", func(w http.ResponseWriter, r *http.Request) error {
		httpjson.WriteJSON(w, 200, map[string]string{"status": "live"})
		return nil
	})
	h("GET /v1/health/ready", func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		ready := f.ready
		f.mu.Unlock()
		if !ready {
			return httpjson.Errorf(503, "not_ready", "node is not ready").
				WithDetail("checks", map[string]string{"leader": "no leader elected", "log": "ok"})
		}
		httpjson.WriteJSON(w, 200, map[string]string{"status": "ready"})
		return nil
	})
	h("POST /v1/cluster/join", func(w http.ResponseWriter, r *http.Request) error {
		var in struct {
			Addrs []string `json:"addrs"`
		}
		if err := httpjson.DecodeJSON(r, &in); err != nil {
			return err
		}
		if len(in.Addrs) == 0 {
			return httpjson.BadRequest("no_addrs", "addrs must not be empty")
		}
		f.mu.Lock()
		f.joined = append(f.joined, in.Addrs...)
		f.mu.Unlock()
		httpjson.WriteJSON(w, 200, map[string]int{"joined": len(in.Addrs)})
		return nil
	})
	h("POST /v1/cluster/leave", func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		f.left = true
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	h("GET /v1/raft/peers", func(w http.ResponseWriter, r *http.Request) error {
		httpjson.WriteJSON(w, 200, map[string]any{"peers": []map[string]any{
			{"id": "n1", "address": "10.0.0.1:7947", "suffrage": "voter", "leader": true},
			{"id": "n2", "address": "10.0.0.2:7947", "suffrage": "nonvoter", "leader": false},
		}})
		return nil
	})
	h("DELETE /v1/raft/peers/{name}", func(w http.ResponseWriter, r *http.Request) error {
		name := r.PathValue("name")
		if name == "ghost" {
			return httpjson.ErrNotFound.WithMessage("no raft peer %q", name)
		}
		f.mu.Lock()
		f.removed = append(f.removed, name)
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	h("POST /v1/raft/transfer-leadership", func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		f.transfer++
		f.mu.Unlock()
		httpjson.WriteJSON(w, 200, map[string]string{"leader": "n2"})
		return nil
	})
	h("GET /v1/logs", f.listLogs)
	h("POST /v1/logs/{name}", f.publish)
	h("GET /v1/logs/{name}", f.read)
	return mux
}

func (f *fakeNode) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
			httpjson.WriteError(w, r, httpjson.ErrUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (f *fakeNode) listLogs(w http.ResponseWriter, r *http.Request) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []client.LogInfo{}
	for name, entries := range f.logs {
		info := client.LogInfo{Name: name, Entries: uint64(len(entries))}
		if len(entries) > 0 {
			info.FirstIndex, info.LastIndex = entries[0].Index, entries[len(entries)-1].Index
		}
		out = append(out, info)
	}
	httpjson.WriteJSON(w, 200, map[string]any{"logs": out})
	return nil
}

// appendLocked appends one entry, deduplicating by id. f.mu is held.
func (f *fakeNode) appendLocked(name string, e client.Entry) (uint64, bool) {
	if e.ID != "" {
		if idx, ok := f.ids[name][e.ID]; ok {
			return idx, true
		}
	}
	idx := uint64(len(f.logs[name]) + 1)
	f.logs[name] = append(f.logs[name], client.LogEntry{
		Index: idx, ID: e.ID, Data: e.Data,
		Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	})
	if e.ID != "" {
		if f.ids[name] == nil {
			f.ids[name] = map[string]uint64{}
		}
		f.ids[name][e.ID] = idx
	}
	return idx, false
}

func (f *fakeNode) publish(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if name == "full" {
		return errLogFull
	}
	var in struct {
		ID      string          `json:"id"`
		Data    json.RawMessage `json:"data"`
		Entries []client.Entry  `json:"entries"`
	}
	if err := httpjson.DecodeJSON(r, &in); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if in.Entries != nil {
		idx := make([]uint64, 0, len(in.Entries))
		for _, e := range in.Entries {
			i, _ := f.appendLocked(name, e)
			idx = append(idx, i)
		}
		httpjson.WriteJSON(w, 201, map[string]any{"indexes": idx})
		return nil
	}
	if len(in.Data) == 0 {
		return httpjson.BadRequest("no_data", "data is required")
	}
	idx, dup := f.appendLocked(name, client.Entry{ID: in.ID, Data: in.Data})
	if dup {
		httpjson.WriteJSON(w, 200, map[string]any{"index": idx, "duplicate": true})
		return nil
	}
	httpjson.WriteJSON(w, 201, map[string]any{"index": idx})
	return nil
}

func (f *fakeNode) read(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	q := r.URL.Query()
	from := uint64(1) // like the real node: no from means the first index
	if s := q.Get("from"); s != "" {
		var err error
		if from, err = strconv.ParseUint(s, 10, 64); err != nil || from == 0 {
			return httpjson.BadRequest("invalid_parameter", "from must be an index of at least 1")
		}
	}
	var err error
	limit := uint64(100)
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.ParseUint(s, 10, 64); err != nil {
			return httpjson.BadRequest("bad_limit", "limit must be a number")
		}
	}
	f.mu.Lock()
	entries, ok := f.logs[name]
	f.mu.Unlock()
	if !ok {
		return client.ErrLogNotFound.WithMessage("no log %q", name)
	}
	out := []client.LogEntry{}
	next := from
	for _, e := range entries {
		if e.Index >= from && uint64(len(out)) < limit {
			out = append(out, e)
			next = e.Index + 1
		}
	}
	applied := fmt.Sprint(len(entries) + 100)
	if q.Get("consistent") == "true" {
		applied = fmt.Sprint(len(entries) + 1000)
	}
	w.Header().Set(client.AppliedIndexHeader, applied)
	httpjson.WriteJSON(w, 200, map[string]any{"entries": out, "next": next})
	return nil
}
