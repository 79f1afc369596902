package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"shoal/client"
	"shoal/internal/httpjson"
)

// sseServer answers the stream of log "events" with one scripted handler
// per connection, in order, and records what each request asked for.
type sseServer struct {
	t       *testing.T
	mu      sync.Mutex
	scripts []func(w http.ResponseWriter, r *http.Request)
	seen    []streamRequest
}

type streamRequest struct {
	from, lastEventID, accept, auth string
}

func newSSEServer(t *testing.T, scripts ...func(w http.ResponseWriter, r *http.Request)) (*sseServer, *httptest.Server) {
	s := &sseServer{t: t, scripts: scripts}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/logs/{name}/stream", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != "ev ents" {
			httpjson.WriteError(w, r, httpjson.ErrNotFound.WithMessage("no log %q", r.PathValue("name")))
			return
		}
		s.mu.Lock()
		n := len(s.seen)
		s.seen = append(s.seen, streamRequest{
			from:        r.URL.Query().Get("from"),
			lastEventID: r.Header.Get("Last-Event-ID"),
			accept:      r.Header.Get("Accept"),
			auth:        r.Header.Get("Authorization"),
		})
		s.mu.Unlock()
		if n >= len(s.scripts) {
			t.Errorf("unexpected stream connection %d", n+1)
			http.Error(w, "no more scripts", http.StatusGone)
			return
		}
		s.scripts[n](w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *sseServer) requests() []streamRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// sendEntries writes entries first..last as SSE events and flushes.
func sendEntries(w http.ResponseWriter, first, last int) {
	for i := first; i <= last; i++ {
		fmt.Fprintf(w, "id: %d\nevent: entry\ndata: {\"index\":%d,\"id\":\"e%d\",\"data\":{\"n\":%d},\"time\":\"2025-01-02T03:04:05Z\"}\n\n", i, i, i, i)
	}
	w.(http.Flusher).Flush()
}

func startStream(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": connected\n\n")
}

// resumeFrom returns the first index a well-behaved server sends: after
// Last-Event-ID when present, else from.
func resumeFrom(r *http.Request) int {
	var n int
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		fmt.Sscan(id, &n)
		return n + 1
	}
	fmt.Sscan(r.URL.Query().Get("from"), &n)
	return n
}

var errStop = errors.New("stop")

// collect returns a Tail callback that records indexes and stops Tail
// once it has seen stopAt.
func collect(got *[]uint64, stopAt uint64) func(client.LogEntry) error {
	return func(e client.LogEntry) error {
		*got = append(*got, e.Index)
		if e.Index == stopAt {
			return errStop
		}
		return nil
	}
}

func tailClient(t *testing.T, addr string, opts ...client.Option) *client.Client {
	return newClient(t, addr, append([]client.Option{client.WithReconnectBackoff(time.Millisecond, 5*time.Millisecond)}, opts...)...)
}

func TestTail_ResumesAfterDrop(t *testing.T) {
	s, srv := newSSEServer(t,
		func(w http.ResponseWriter, r *http.Request) {
			startStream(w)
			sendEntries(w, resumeFrom(r), 3)
			// The connection drops in the middle of event 4: it must not be
			// delivered, and the resume must start at 4.
			fmt.Fprint(w, "id: 4\nevent: entry\ndata: {\"index\":4,")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // cut the connection, no clean end of stream
		},
		func(w http.ResponseWriter, r *http.Request) {
			startStream(w)
			fmt.Fprint(w, ": heartbeat\n\n")
			sendEntries(w, resumeFrom(r), 6)
		},
	)
	var got []uint64
	var entries []client.LogEntry
	fn := collect(&got, 6)
	err := tailClient(t, srv.URL, client.WithToken("tok")).Tail(context.Background(), "ev ents", 2, func(e client.LogEntry) error {
		entries = append(entries, e)
		return fn(e)
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("got %v, want the callback's error", err)
	}
	if want := []uint64{2, 3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Fatalf("got indexes %v, want %v", got, want)
	}
	if e := entries[0]; e.ID != "e2" || string(e.Data) != `{"n":2}` || !e.Time.Equal(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("got entry %+v", e)
	}
	reqs := s.requests()
	want := []streamRequest{
		{from: "2", lastEventID: "", accept: "text/event-stream", auth: "Bearer tok"},
		{from: "4", lastEventID: "3", accept: "text/event-stream", auth: "Bearer tok"},
	}
	if !slices.Equal(reqs, want) {
		t.Fatalf("got requests %+v, want %+v", reqs, want)
	}
}

func TestTail_SkipsReplayedEntries(t *testing.T) {
	// A server that ignores Last-Event-ID and replays from the start must
	// not make the caller see entries twice.
	s, srv := newSSEServer(t,
		func(w http.ResponseWriter, r *http.Request) { startStream(w); sendEntries(w, 1, 2) },
		func(w http.ResponseWriter, r *http.Request) { startStream(w); sendEntries(w, 1, 4) },
	)
	var got []uint64
	err := tailClient(t, srv.URL).Tail(context.Background(), "ev ents", 1, collect(&got, 4))
	if !errors.Is(err, errStop) {
		t.Fatalf("got %v, want the callback's error", err)
	}
	if want := []uint64{1, 2, 3, 4}; !slices.Equal(got, want) {
		t.Fatalf("got indexes %v, want %v", got, want)
	}
	if reqs := s.requests(); reqs[1].lastEventID != "2" {
		t.Fatalf("got Last-Event-ID %q on reconnect, want 2", reqs[1].lastEventID)
	}
}

func TestTail_RetriesUnavailable(t *testing.T) {
	s, srv := newSSEServer(t,
		func(w http.ResponseWriter, r *http.Request) {
			httpjson.WriteError(w, r, httpjson.Errorf(503, "no_leader", "no leader"))
		},
		func(w http.ResponseWriter, r *http.Request) { startStream(w); sendEntries(w, 1, 1) },
	)
	var got []uint64
	err := tailClient(t, srv.URL).Tail(context.Background(), "ev ents", 0, collect(&got, 1))
	if !errors.Is(err, errStop) || !slices.Equal(got, []uint64{1}) {
		t.Fatalf("got %v, %v", got, err)
	}
	if reqs := s.requests(); len(reqs) != 2 || reqs[1].lastEventID != "" || reqs[1].from != "" {
		t.Fatalf("got requests %+v", reqs)
	}
}

func TestTail_MultiLineDataAndUnknownEvents(t *testing.T) {
	_, srv := newSSEServer(t, func(w http.ResponseWriter, r *http.Request) {
		startStream(w)
		fmt.Fprint(w, "event: stats\ndata: {\"ignored\":true}\n\n")
		fmt.Fprint(w, "retry: 1000\r\nid: 9\r\nevent: entry\r\ndata: {\"index\":9,\r\ndata: \"data\":[1,\r\ndata: 2]}\r\n\r\n")
		w.(http.Flusher).Flush()
	})
	var got []client.LogEntry
	err := tailClient(t, srv.URL).Tail(context.Background(), "ev ents", 9, func(e client.LogEntry) error {
		got = append(got, e)
		return errStop
	})
	if !errors.Is(err, errStop) || len(got) != 1 || got[0].Index != 9 || string(got[0].Data) != "[1,\n2]" {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestTail_FatalErrors(t *testing.T) {
	_, srv := newSSEServer(t,
		func(w http.ResponseWriter, r *http.Request) {
			startStream(w)
			fmt.Fprint(w, "event: error\ndata: {\"error\":{\"code\":\"trimmed\",\"message\":\"log was trimmed\",\"first_index\":50}}\n\n")
		},
		func(w http.ResponseWriter, r *http.Request) {
			startStream(w)
			fmt.Fprint(w, "id: 1\nevent: entry\ndata: not json\n\n")
		},
	)
	c := tailClient(t, srv.URL)
	never := func(client.LogEntry) error { t.Error("callback called"); return nil }

	err := c.Tail(context.Background(), "missing", 0, never)
	if !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("unknown log: got %v, want not_found", err)
	}
	err = c.Tail(context.Background(), "ev ents", 1, never)
	var e *client.Error
	if !errors.Is(err, httpjson.Errorf(410, "trimmed", "")) || !errors.As(err, &e) || e.Details["first_index"] != float64(50) {
		t.Fatalf("error event: got %v", err)
	}
	if err := c.Tail(context.Background(), "ev ents", 1, never); err == nil {
		t.Fatalf("malformed entry: got nil error")
	}
}

func TestTail_ContextCancel(t *testing.T) {
	_, srv := newSSEServer(t, func(w http.ResponseWriter, r *http.Request) {
		startStream(w)
		sendEntries(w, 1, 1)
		<-r.Context().Done() // hold the stream open until the client goes
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := tailClient(t, srv.URL).Tail(ctx, "ev ents", 1, func(client.LogEntry) error {
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestTail_IdleStreamReconnects(t *testing.T) {
	s, srv := newSSEServer(t,
		func(w http.ResponseWriter, r *http.Request) {
			startStream(w)
			sendEntries(w, 1, 1)
			<-r.Context().Done() // silent: no entries, no heartbeats
		},
		func(w http.ResponseWriter, r *http.Request) { startStream(w); sendEntries(w, resumeFrom(r), 2) },
	)
	var got []uint64
	c := tailClient(t, srv.URL, client.WithTailIdleTimeout(50*time.Millisecond))
	if err := c.Tail(context.Background(), "ev ents", 1, collect(&got, 2)); !errors.Is(err, errStop) {
		t.Fatalf("got %v, want the callback's error", err)
	}
	if !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("got %v", got)
	}
	if reqs := s.requests(); len(reqs) != 2 || reqs[1].lastEventID != "1" {
		t.Fatalf("got requests %+v", reqs)
	}
}

func TestTail_CallbackErrorOnOpenStream(t *testing.T) {
	// The stream stays open after the entry: Tail must return fn's error
	// without waiting for the stream to end.
	_, srv := newSSEServer(t, func(w http.ResponseWriter, r *http.Request) {
		startStream(w)
		sendEntries(w, 1, 1)
		<-r.Context().Done()
	})
	var got []uint64
	if err := tailClient(t, srv.URL).Tail(context.Background(), "ev ents", 1, collect(&got, 1)); !errors.Is(err, errStop) {
		t.Fatalf("got %v, want the callback's error", err)
	}
}
