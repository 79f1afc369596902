package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"shoal/internal/httpjson"
)

// fakeNode answers the API endpoints the commands use with canned data.
type fakeNode struct {
	token    string
	notReady bool

	mu      sync.Mutex
	joined  []string
	left    bool
	removed []string
	ids     map[string]uint64
	next    uint64
	streams []string // Last-Event-ID of each stream request
}

func newFake(t *testing.T, f *fakeNode) *httptest.Server {
	t.Helper()
	f.ids = map[string]uint64{}
	mux := http.NewServeMux()
	h := func(pattern string, fn httpjson.HandlerFunc) { mux.Handle(pattern, httpjson.Handle(fn)) }
	raw := func(body string) httpjson.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Content-Type", "application/json")
			_, err := fmt.Fprintln(w, body)
			return err
		}
	}
	h("GET /v1/status", raw(`{"node":"n1","leader":"n2","raft":{"state":"follower","term":7,"commit_index":42,"applied_index":41,"voters":["n1","n2"],"non_voters":[]},"members":3,"modules":["log"],"version":"v1.2.3","log":{"logs": 2}}`))
	h("GET /v1/members", raw(`{"members":[{"name":"n1","addr":"10.0.0.1:7946","status":"alive","http_addr":"10.0.0.1:7480","role":"server","raft_suffrage":"voter","leader":true},{"name":"n9","addr":"10.0.0.9:7946","status":"alive","http_addr":"10.0.0.9:7480","role":"client","raft_suffrage":"","leader":false}]}`))
	h("GET /v1/raft/peers", raw(`{"peers":[{"id":"n1","address":"10.0.0.1:7947","suffrage":"voter","leader":true},{"id":"n2","address":"10.0.0.2:7947","suffrage":"nonvoter","leader":false}]}`))
	h("GET /v1/logs", raw(`{"logs":[{"name":"orders","first_index":1,"last_index":3,"entries":3}]}`))
	h("GET /v1/health/live", raw(`{"status":"live"}`))
	h("GET /v1/health/ready", func(w http.ResponseWriter, r *http.Request) error {
		if f.notReady {
			return httpjson.Errorf(503, "not_ready", "node is not ready").
				WithDetail("checks", map[string]string{"raft": "ok", "leader": "no leader elected"})
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
		f.mu.Lock()
		f.joined = append(f.joined, in.Addrs...)
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	h("POST /v1/cluster/leave", func(w http.ResponseWriter, r *http.Request) error {
		f.mu.Lock()
		f.left = true
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	h("DELETE /v1/raft/peers/{name}", func(w http.ResponseWriter, r *http.Request) error {
		if r.PathValue("name") == "ghost" {
			return httpjson.ErrNotFound.WithMessage("no raft peer %q", "ghost")
		}
		f.mu.Lock()
		f.removed = append(f.removed, r.PathValue("name"))
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	h("POST /v1/raft/transfer-leadership", func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	h("POST /v1/logs/{name}", func(w http.ResponseWriter, r *http.Request) error {
		if r.PathValue("name") == "full" {
			return httpjson.Errorf(http.StatusConflict, "log_full", "log %q is full", "full")
		}
		var in struct {
			ID   string          `json:"id"`
			Data json.RawMessage `json:"data"`
		}
		if err := httpjson.DecodeJSON(r, &in); err != nil {
			return err
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if idx, ok := f.ids[in.ID]; ok && in.ID != "" {
			httpjson.WriteJSON(w, 200, map[string]any{"index": idx, "duplicate": true})
			return nil
		}
		f.next++
		f.ids[in.ID] = f.next
		httpjson.WriteJSON(w, 201, map[string]any{"index": f.next})
		return nil
	})
	h("GET /v1/logs/{name}", func(w http.ResponseWriter, r *http.Request) error {
		if r.PathValue("name") != "orders" {
			return httpjson.ErrNotFound.WithMessage("no log %q", r.PathValue("name"))
		}
		q := r.URL.Query()
		if q.Get("from") != "2" || q.Get("limit") != "2" || q.Get("consistent") != "true" {
			return httpjson.BadRequest("bad_query", "unexpected query %s", r.URL.RawQuery)
		}
		w.Header().Set("X-Shoal-Applied-Index", "9")
		w.Header().Set("Content-Type", "application/json")
		_, err := fmt.Fprintln(w, `{"entries":[{"index":2,"id":"b","data":{"html":"<b>"},"time":"2025-01-02T03:04:05Z"},{"index":3,"data":[1, 2]}],"next":4}`)
		return err
	})
	h("GET /v1/logs/{name}/stream", func(w http.ResponseWriter, r *http.Request) error {
		if r.PathValue("name") != "orders" {
			return httpjson.ErrNotFound.WithMessage("no log %q", r.PathValue("name"))
		}
		f.mu.Lock()
		f.streams = append(f.streams, r.Header.Get("Last-Event-ID"))
		n := len(f.streams)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		if n == 1 {
			fmt.Fprint(w, "id: 5\nevent: entry\ndata: {\"index\":5,\"data\":\"a\"}\n\n")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // drop the connection
		}
		fmt.Fprint(w, ": hello\n\nid: 6\nevent: entry\ndata: {\"index\":6,\"data\":\"b\"}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return nil
	})
	var handler http.Handler = mux
	if f.token != "" {
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+f.token {
				httpjson.WriteError(w, r, httpjson.ErrUnauthorized)
				return
			}
			mux.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv
}
