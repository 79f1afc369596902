package logstream

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"shoal/internal/moduletest"
	"shoal/internal/testcluster"
)

// sseEvent is one parsed Server-Sent Event, or a comment line.
type sseEvent struct {
	id, event, data string
	comment         string
}

// sseStream is a client of one event stream.
type sseStream struct {
	resp   *http.Response
	events chan sseEvent // closed at the end of the stream
	retry  atomic.Value  // the last "retry:" field, a string
}

// openSSE opens an event stream; the body is closed at cleanup.
func openSSE(t *testing.T, url string, header http.Header) *sseStream {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	s := &sseStream{resp: resp, events: make(chan sseEvent, 10000)}
	if resp.StatusCode != 200 {
		close(s.events)
		return s
	}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			field, value, _ := strings.Cut(line, ": ")
			switch field {
			case "":
				if strings.HasPrefix(line, ":") {
					s.events <- sseEvent{comment: strings.TrimPrefix(strings.TrimPrefix(line, ":"), " ")}
					continue
				}
				if ev != (sseEvent{}) {
					s.events <- ev
				}
				ev = sseEvent{}
			case "id":
				ev.id = value
			case "event":
				ev.event = value
			case "data":
				ev.data = value
			case "retry":
				s.retry.Store(value)
			default:
				s.events <- sseEvent{event: "unparsed", data: line}
			}
		}
	}()
	return s
}

// next returns the next event, skipping comments; ok is false at the end
// of the stream.
func (s *sseStream) next(t *testing.T) (ev sseEvent, ok bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			if ok && ev.comment != "" {
				continue
			}
			return ev, ok
		case <-timeout:
			t.Fatalf("no event within 10s")
		}
	}
}

// nextEntry returns the next event, which must be an entry.
func (s *sseStream) nextEntry(t *testing.T) entryJSON {
	t.Helper()
	ev, ok := s.next(t)
	if !ok || ev.event != "entry" {
		t.Fatalf("got %+v (open %v), want an entry event", ev, ok)
	}
	var e entryJSON
	if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
		t.Fatalf("entry data %q: %v", ev.data, err)
	}
	if ev.id != strconv.FormatUint(e.Index, 10) {
		t.Fatalf("event id %q for entry %d", ev.id, e.Index)
	}
	return e
}

// expectEnd waits for the end of the stream.
func (s *sseStream) expectEnd(t *testing.T) {
	t.Helper()
	if ev, ok := s.next(t); ok {
		t.Fatalf("got %+v, want the end of the stream", ev)
	}
}

func publish(t *testing.T, url, body string) {
	t.Helper()
	if s, _, b := call(t, "POST", url, body); s != 201 && s != 200 {
		t.Fatalf("publish: %d %s", s, b)
	}
}

func TestStream_FromIndexThenLive(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	url := srv.URL + "/v1/logs/s"
	for i := 1; i <= 3; i++ {
		publish(t, url, fmt.Sprintf(`{"id":"e%d","data":{"n":%d}}`, i, i))
	}
	s := openSSE(t, url+"/stream?from=2", nil)
	if ct := s.resp.Header.Get("Content-Type"); s.resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("got %d %q", s.resp.StatusCode, ct)
	}
	e := s.nextEntry(t)
	if e.Index != 2 || e.ID != "e2" || string(e.Data) != `{"n":2}` || e.Time != "2025-01-02T03:04:05Z" {
		t.Fatalf("got %+v", e)
	}
	if r, _ := s.retry.Load().(string); r != "2000" {
		t.Fatalf("retry hint: got %q, want 2000", r)
	}
	if e := s.nextEntry(t); e.Index != 3 {
		t.Fatalf("got %d, want 3", e.Index)
	}
	publish(t, url, `{"entries":[{"data":4},{"data":5}]}`)
	publish(t, url, `{"id":"e1","data":"duplicate: not appended"}`)
	publish(t, url, `{"data":6}`)
	for want := uint64(4); want <= 6; want++ {
		if e := s.nextEntry(t); e.Index != want || string(e.Data) != strconv.FormatUint(want, 10) {
			t.Fatalf("got %+v, want entry %d", e, want)
		}
	}
	if got := moduletest.MetricValue(t, n.reg, "shoal_log_streams"); got != 1 {
		t.Fatalf("streams gauge: got %v, want 1", got)
	}

	// Without from, a stream starts at the first retained index.
	all := openSSE(t, url+"/stream", nil)
	if e := all.nextEntry(t); e.Index != 1 {
		t.Fatalf("default from: got %d, want 1", e.Index)
	}
}

func TestStream_LastEventIDResumesWithoutGapOrDuplicate(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	url := srv.URL + "/v1/logs/r"
	const total = 300
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= total; i++ {
			body := fmt.Sprintf(`{"data":%d}`, i)
			resp, err := http.Post(url, "application/json", strings.NewReader(body))
			if err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
			resp.Body.Close()
		}
	}()
	var got []uint64
	last := ""
	for len(got) < total {
		h := http.Header{}
		if last != "" {
			h.Set("Last-Event-ID", last)
		}
		// from=1 is ignored once Last-Event-ID is set.
		s := openSSE(t, url+"/stream?from=1", h)
		if s.resp.StatusCode != 200 {
			t.Fatalf("reconnect after %s: status %d", last, s.resp.StatusCode)
		}
		for range 37 {
			if len(got) == total {
				break
			}
			e := s.nextEntry(t)
			got = append(got, e.Index)
			last = strconv.FormatUint(e.Index, 10)
		}
		s.resp.Body.Close()
	}
	wg.Wait()
	for i, index := range got {
		if index != uint64(i+1) {
			t.Fatalf("event %d has index %d: a gap or a duplicate around %v", i, index, got[max(0, i-3):i+1])
		}
	}
	// Closed streams are untracked once their handlers notice.
	testcluster.Eventually(t, 10*time.Second, func() error {
		if got := moduletest.MetricValue(t, n.reg, "shoal_log_streams"); got != 0 {
			return fmt.Errorf("%v streams open", got)
		}
		return nil
	})
}

func TestStream_WaitsForUnknownLog(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	s := openSSE(t, srv.URL+"/v1/logs/later/stream", nil)
	if s.resp.StatusCode != 200 {
		t.Fatalf("status %d", s.resp.StatusCode)
	}
	publish(t, srv.URL+"/v1/logs/other", `{"data":"elsewhere"}`)
	publish(t, srv.URL+"/v1/logs/later", `{"data":"here"}`)
	if e := s.nextEntry(t); e.Index != 1 || string(e.Data) != `"here"` {
		t.Fatalf("got %+v", e)
	}
}

func TestStream_Heartbeat(t *testing.T) {
	n := newTestNode(t, Config{MaxEntries: 10, DedupWindow: time.Minute, StreamHeartbeat: 10 * time.Millisecond})
	srv := n.serve(t)
	s := openSSE(t, srv.URL+"/v1/logs/quiet/stream", nil)
	select {
	case ev := <-s.events:
		if ev.comment != "ping" {
			t.Fatalf("got %+v, want a ping comment", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat")
	}
}

func TestStream_StopEndsStreams(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	publish(t, srv.URL+"/v1/logs/a", `{"data":1}`)
	live := openSSE(t, srv.URL+"/v1/logs/a/stream", nil)
	waiting := openSSE(t, srv.URL+"/v1/logs/missing/stream", nil)
	live.nextEntry(t)
	testcluster.Eventually(t, 10*time.Second, func() error {
		if got := moduletest.MetricValue(t, n.reg, "shoal_log_streams"); got != 2 {
			return fmt.Errorf("%v streams open, want 2", got)
		}
		return nil
	})
	n.stop()
	live.expectEnd(t)
	waiting.expectEnd(t)
	if got := moduletest.MetricValue(t, n.reg, "shoal_log_streams"); got != 0 {
		t.Fatalf("streams gauge after stop: %v", got)
	}
	s, h, b := call(t, "GET", srv.URL+"/v1/logs/a/stream", "")
	if code, _ := errorCode(t, b); s != 503 || code != "shutting_down" || h.Get("Retry-After") == "" {
		t.Fatalf("stream after stop: got %d %s", s, b)
	}
}

func TestStream_FallsBehindRetention(t *testing.T) {
	n := newTestNode(t, Config{MaxEntries: 3, DedupWindow: time.Minute, StreamHeartbeat: time.Minute})
	srv := n.serve(t)
	url := srv.URL + "/v1/logs/t"
	publish(t, url, `{"entries":[{"data":1},{"data":2}]}`)
	s := openSSE(t, url+"/stream?from=1", nil)
	s.nextEntry(t)
	s.nextEntry(t)
	// The stream waits at 3; five more entries trim it away (3 retained: 5-7).
	publish(t, url, `{"entries":[{"data":3},{"data":4},{"data":5},{"data":6},{"data":7}]}`)
	ev, ok := s.next(t)
	if !ok || ev.event != "stream_error" {
		t.Fatalf("got %+v, want an error event", ev)
	}
	code, e := errorCode(t, ev.data)
	if code != "log_trimmed" || e["first_index"] != float64(5) {
		t.Fatalf("error event: %s", ev.data)
	}
	s.expectEnd(t)

	// Starting below the first index is refused before the stream opens.
	for _, h := range []http.Header{nil, {"Last-Event-ID": {"3"}}} {
		q := "?from=2"
		if h != nil {
			q = ""
		}
		st, _, b := callWith(t, "GET", url+"/stream"+q, "", h)
		if code, e := errorCode(t, b); st != 410 || code != "log_trimmed" || e["first_index"] != float64(5) {
			t.Fatalf("start below first: got %d %s", st, b)
		}
	}
}

func TestStream_RestoreWakesStreams(t *testing.T) {
	src := newTestNode(t, DefaultConfig())
	for i := range 4 {
		mustAppend(t, src, "x", 2, 0, ent("", strconv.Itoa(i+1)))
	}
	snap := persist(t, src.log) // log x holds 3 and 4

	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	ahead := openSSE(t, srv.URL+"/v1/logs/x/stream?from=4", nil)
	behind := openSSE(t, srv.URL+"/v1/logs/x/stream?from=1", nil)
	testcluster.Eventually(t, 10*time.Second, func() error {
		if got := moduletest.MetricValue(t, n.reg, "shoal_log_streams"); got != 2 {
			return fmt.Errorf("%v streams open, want 2", got)
		}
		return nil
	})
	if err := n.log.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if e := ahead.nextEntry(t); e.Index != 4 || string(e.Data) != "4" {
		t.Fatalf("got %+v, want entry 4", e)
	}
	if ev, ok := behind.next(t); !ok || ev.event != "stream_error" || !strings.Contains(ev.data, `"first_index":3`) {
		t.Fatalf("got %+v, want a log_trimmed error", ev)
	}
}

func TestStream_RejectsBadParameters(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	tests := []struct {
		path   string
		header http.Header
		code   string
	}{
		{"/v1/logs/a/stream?from=0", nil, "invalid_parameter"},
		{"/v1/logs/a/stream?from=x", nil, "invalid_parameter"},
		{"/v1/logs/a/stream", http.Header{"Last-Event-ID": {"abc"}}, "invalid_parameter"},
		{"/v1/logs/a/stream", http.Header{"Last-Event-ID": {"18446744073709551615"}}, "invalid_parameter"},
		{"/v1/logs/a%3Bb/stream", nil, "invalid_log_name"},
	}
	for _, tt := range tests {
		s, _, b := callWith(t, "GET", srv.URL+tt.path, "", tt.header)
		if code, _ := errorCode(t, b); s != 400 || code != tt.code {
			t.Fatalf("%s %v: got %d %s, want 400 %s", tt.path, tt.header, s, b, tt.code)
		}
	}
	if got := moduletest.MetricValue(t, n.reg, "shoal_log_streams"); got != 0 {
		t.Fatalf("refused streams are counted: %v", got)
	}
}
