package sse

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/internal/httpjson"
)

// open opens a stream on a recorder, closed at cleanup.
func open(t *testing.T, ss *Streams) (*Stream, *httptest.ResponseRecorder) {
	t.Helper()
	rec := httptest.NewRecorder()
	s, err := ss.Open(rec, httptest.NewRequest(http.MethodGet, "/stream", nil))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(s.Close)
	return s, rec
}

// parsed is one event as a client following the specification reads it.
type parsed struct {
	id, typ, data string
}

// parse reads a text/event-stream body the way the SSE specification's
// interpretation algorithm does (lines end at CR, LF or CRLF; data lines
// are joined with LF; comments are skipped), so the tests check framing
// against what a client sees rather than against our own writer.
func parse(body string) []parsed {
	body = strings.ReplaceAll(body, "\r\n", "\n")
	body = strings.ReplaceAll(body, "\r", "\n")
	var (
		out  []parsed
		ev   parsed
		data []string
	)
	for _, line := range strings.Split(body, "\n") {
		switch {
		case line == "":
			if data != nil {
				ev.data = strings.Join(data, "\n")
				out = append(out, ev)
			}
			ev, data = parsed{}, nil
		case strings.HasPrefix(line, ":"):
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				ev.id = value
			case "event":
				ev.typ = value
			case "data":
				data = append(data, value)
			}
		}
	}
	return out
}

func TestStream_Begin(t *testing.T) {
	var ss Streams
	s, rec := open(t, &ss)
	rec.Header().Set("X-Extra", "kept")
	s.Event(Event{Type: "hello", Data: []byte("first")})
	if err := s.Begin(); err != nil {
		t.Fatalf("begin: %v", err)
	}
	if rec.Code != http.StatusOK {
		t.Fatalf("got status %d, want 200", rec.Code)
	}
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
		"X-Extra":           "kept",
	} {
		if got := rec.Header().Get(k); got != want {
			t.Fatalf("got %s %q, want %q", k, got, want)
		}
	}
	if !rec.Flushed {
		t.Fatalf("got no flush, want the header flushed")
	}
	if got, want := rec.Body.String(), "event: hello\ndata: first\n\n"; got != want {
		t.Fatalf("got body %q, want the queued event %q", got, want)
	}
}

func TestStream_Event(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
		wire string
		want parsed
	}{
		{"one line", Event{ID: "7", Type: "entry", Data: []byte("x")},
			"id: 7\nevent: entry\ndata: x\n\n", parsed{id: "7", typ: "entry", data: "x"}},
		{"no id or type", Event{Data: []byte("x")},
			"data: x\n\n", parsed{data: "x"}},
		{"empty data", Event{Type: "tick"},
			"event: tick\ndata: \n\n", parsed{typ: "tick", data: ""}},
		{"multi-line LF", Event{Type: "m", Data: []byte("a\nb\nc")},
			"event: m\ndata: a\ndata: b\ndata: c\n\n", parsed{typ: "m", data: "a\nb\nc"}},
		{"multi-line CRLF and CR", Event{Data: []byte("a\r\nb\rc")},
			"data: a\ndata: b\ndata: c\n\n", parsed{data: "a\nb\nc"}},
		{"blank lines kept", Event{Data: []byte("a\n\nb\n")},
			"data: a\ndata: \ndata: b\ndata: \n\n", parsed{data: "a\n\nb\n"}},
		{"data that looks like a field", Event{Data: []byte("x\nevent: fake\n: comment")},
			"data: x\ndata: event: fake\ndata: : comment\n\n", parsed{data: "x\nevent: fake\n: comment"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ss Streams
			s, rec := open(t, &ss)
			s.Event(tt.ev)
			if err := s.Flush(); err != nil {
				t.Fatalf("flush: %v", err)
			}
			if got := rec.Body.String(); got != tt.wire {
				t.Fatalf("got %q, want %q", got, tt.wire)
			}
			got := parse(rec.Body.String())
			if len(got) != 1 || got[0] != tt.want {
				t.Fatalf("got %+v, want one event %+v", got, tt.want)
			}
		})
	}
}

func TestStream_JSONEvent(t *testing.T) {
	var ss Streams
	s, rec := open(t, &ss)
	v := map[string]string{"text": "<a>\nline two"}
	if err := s.JSONEvent("entry", "3", v); err != nil {
		t.Fatalf("json event: %v", err)
	}
	if err := s.JSONEvent("bad", "", func() {}); err == nil {
		t.Fatalf("got no error for a value JSON cannot encode")
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	want := "id: 3\nevent: entry\ndata: {\"text\":\"<a>\\nline two\"}\n\n"
	if got := rec.Body.String(); got != want {
		t.Fatalf("got %q, want %q (and nothing of the failed event)", got, want)
	}
}

func TestStream_ErrorEvent(t *testing.T) {
	var ss Streams
	s, rec := open(t, &ss)
	s.ErrorEvent(httpjson.Errorf(http.StatusGone, "log_trimmed", "gone").WithDetail("first_index", 5))
	if err := s.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	got := parse(rec.Body.String())
	if len(got) != 1 || got[0].typ != "error" {
		t.Fatalf("got %+v, want one error event", got)
	}
	e := httpjson.ReadError(0, []byte(got[0].data))
	if e.Code != "log_trimmed" || e.Message != "gone" || e.Details["first_index"] != float64(5) {
		t.Fatalf("got %+v, want the error with its detail", e)
	}
}

func TestStream_Heartbeat(t *testing.T) {
	var ss Streams
	s, rec := open(t, &ss)
	s.Heartbeat()
	if err := s.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if got, want := rec.Body.String(), ": ping\n\n"; got != want {
		t.Fatalf("got %q, want the comment %q", got, want)
	}
	if got := parse(rec.Body.String()); len(got) != 0 {
		t.Fatalf("got events %+v, want a heartbeat to be no event", got)
	}
}

// noFlusher hides the recorder's Flush, as a careless middleware would.
type noFlusher struct{ http.ResponseWriter }

func TestStream_BeginWithoutFlush(t *testing.T) {
	var ss Streams
	s, err := ss.Open(noFlusher{httptest.NewRecorder()}, httptest.NewRequest(http.MethodGet, "/", nil))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	if err := s.Begin(); !errors.Is(err, http.ErrNotSupported) {
		t.Fatalf("got %v, want http.ErrNotSupported", err)
	}
}

func TestStreams_Stop(t *testing.T) {
	var ss Streams
	rec := httptest.NewRecorder()
	s, err := ss.Open(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	ss.Stop()
	select {
	case <-s.Done():
	default:
		t.Fatalf("Stop did not close Done")
	}
	s.Heartbeat()
	if err := s.Flush(); !errors.Is(err, ErrStopped) {
		t.Fatalf("got %v, want ErrStopped from a stopped stream", err)
	}
	if rec.Body.Len() != 0 {
		t.Fatalf("got %q written after Stop, want nothing", rec.Body.String())
	}
	if _, err := ss.Open(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil)); !errors.Is(err, httpjson.ErrShuttingDown) {
		t.Fatalf("got %v, want ErrShuttingDown from Open after Stop", err)
	}

	waited := make(chan struct{})
	go func() {
		ss.Wait()
		close(waited)
	}()
	s.Close() // the handler returns
	<-waited  // a Wait that never returns fails the test by its timeout
}

func TestStreams_Concurrent(t *testing.T) {
	var ss Streams
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := ss.Open(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
			if err != nil {
				return // Stop came first
			}
			defer s.Close()
			if s.Begin() != nil {
				return
			}
			for s.Flush() == nil {
				s.Heartbeat()
			}
		}()
	}
	ss.Stop()
	ss.Wait()
	wg.Wait()
}

func TestStream_StreamError(t *testing.T) {
	var ss Streams
	s, rec := open(t, &ss)
	s.StreamError(httpjson.Errorf(http.StatusServiceUnavailable, "watch_overflow", "behind"))
	if err := s.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	got := parse(rec.Body.String())
	if len(got) != 1 || got[0].typ != StreamErrorType || got[0].typ == "error" {
		t.Fatalf("got %+v, want one %s event", got, StreamErrorType)
	}
	if e := httpjson.ReadError(0, []byte(got[0].data)); e.Code != "watch_overflow" || e.Message != "behind" {
		t.Fatalf("got %+v, want the error", e)
	}
}

func TestStream_RetryAndPosition(t *testing.T) {
	var ss Streams
	s, rec := open(t, &ss)
	s.Retry(2500 * time.Millisecond)
	s.Retry(0) // at least 1 ms: "retry: 0" would make a browser reconnect in a loop
	s.Position("abc-7")
	if err := s.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if got, want := rec.Body.String(), "retry: 2500\n\nretry: 1\n\nid: abc-7\n\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// Neither dispatches an event (a position only moves the last id).
	if got := parse(rec.Body.String()); len(got) != 0 {
		t.Fatalf("got events %+v, want none", got)
	}
}
