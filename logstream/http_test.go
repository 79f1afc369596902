package logstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shoal/internal/httpjson"
	"shoal/internal/moduletest"
	"shoal/modules"
)

// call sends a request and returns the status, headers and body.
func call(t *testing.T, method, url, body string) (int, http.Header, string) {
	t.Helper()
	return callWith(t, method, url, body, nil)
}

// callWith is call with request headers.
func callWith(t *testing.T, method, url, body string, header http.Header) (int, http.Header, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
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

// want checks status and the exact JSON body (compared as values).
func want(t *testing.T, what string, status int, body string, wantStatus int, wantBody string) {
	t.Helper()
	var got, exp any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("%s: body %q is not JSON: %v", what, body, err)
	}
	if err := json.Unmarshal([]byte(wantBody), &exp); err != nil {
		t.Fatalf("%s: bad expectation %q: %v", what, wantBody, err)
	}
	got = dropUnasked(got, exp)
	if status != wantStatus || fmt.Sprint(got) != fmt.Sprint(exp) {
		t.Fatalf("%s: got %d %s, want %d %s", what, status, body, wantStatus, wantBody)
	}
}

// dropUnasked removes from got the members describing a log's files
// ("log", "bytes", "segments") where exp does not ask for them: their
// values depend on the segment format, which other tests pin.
func dropUnasked(got, exp any) any {
	switch g := got.(type) {
	case map[string]any:
		e, _ := exp.(map[string]any)
		for _, k := range []string{"log", "bytes", "segments"} {
			if _, asked := e[k]; !asked {
				delete(g, k)
			}
		}
		for k, v := range g {
			g[k] = dropUnasked(v, e[k])
		}
	case []any:
		e, _ := exp.([]any)
		for i := range g {
			var ei any
			if i < len(e) {
				ei = e[i]
			}
			g[i] = dropUnasked(g[i], ei)
		}
	}
	return got
}

// errorCode returns the code of an error body, checking its shape.
func errorCode(t *testing.T, body string) (string, map[string]any) {
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
	return code, e.Error
}

func TestPublish_CreatesAndDeduplicates(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	url := srv.URL + "/v1/logs/orders"

	s, _, b := call(t, "POST", url, `{"id":"a","data":{"x": 1}}`)
	want(t, "first", s, b, 201, `{"index":1}`)
	s, _, b = call(t, "POST", url, `{"data":[1, 2]}`)
	want(t, "without id", s, b, 201, `{"index":2}`)
	s, _, b = call(t, "POST", url, `{"id":"a","data":"changed"}`)
	want(t, "duplicate", s, b, 200, `{"index":1,"duplicate":true}`)
	s, _, b = call(t, "POST", url, `{"entries":[{"id":"b","data":1},{"id":"a","data":2},{"data":null}]}`)
	want(t, "batch", s, b, 201, `{"indexes":[3,1,4],"duplicates":[false,true,false]}`)
	s, _, b = call(t, "POST", url, `{"entries":[{"id":"b","data":1},{"id":"a","data":2}]}`)
	want(t, "all-duplicate batch", s, b, 200, `{"indexes":[3,1],"duplicates":[true,true]}`)

	// The window is measured in command time.
	n.advance(DefaultDedupWindow)
	s, _, b = call(t, "POST", url, `{"id":"a","data":3}`)
	want(t, "after the window", s, b, 201, `{"index":5}`)

	s, _, b = call(t, "GET", url, "")
	want(t, "read", s, b, 200, `{"next":6,"entries":[
		{"index":1,"id":"a","data":{"x":1},"time":"2025-01-02T03:04:05Z"},
		{"index":2,"id":"","data":[1,2],"time":"2025-01-02T03:04:05Z"},
		{"index":3,"id":"b","data":1,"time":"2025-01-02T03:04:05Z"},
		{"index":4,"id":"","data":null,"time":"2025-01-02T03:04:05Z"},
		{"index":5,"id":"a","data":3,"time":"2025-01-02T03:14:05Z"}]}`)
	if !strings.Contains(b, `"data":{"x":1}`) {
		t.Fatalf("data is not stored compacted: %s", b)
	}

	for result, wantN := range map[string]float64{"created": 5, "duplicate": 4} {
		if got := moduletest.MetricValue(t, n.reg, "shoal_log_publish_total", "result", result); got != wantN {
			t.Errorf("publish_total{result=%s}: got %v, want %v", result, got, wantN)
		}
	}
	if got := moduletest.MetricValue(t, n.reg, "shoal_log_publish_bytes"); got != 5 {
		t.Errorf("publish_bytes samples: got %v, want 5", got)
	}
}

func TestPublish_RejectsBadRequests(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	long := strings.Repeat("x", 129)
	var big strings.Builder
	big.WriteString(`{"entries":[`)
	for i := range 1001 {
		if i > 0 {
			big.WriteString(",")
		}
		big.WriteString(`{"data":1}`)
	}
	big.WriteString(`]}`)
	tests := []struct {
		name, path, body, code string
	}{
		{"name too long", long, `{"data":1}`, "invalid_log_name"},
		{"name with a bad byte", "a%20b", `{"data":1}`, "invalid_log_name"},
		{"empty body", "a", ``, "bad_json"},
		{"not JSON", "a", `{"data":`, "bad_json"},
		{"unknown field", "a", `{"data":1,"extra":2}`, "bad_json"},
		{"trailing data", "a", `{"data":1} {}`, "bad_json"},
		{"no data", "a", `{"id":"x"}`, "missing_data"},
		{"no data in a batch entry", "a", `{"entries":[{"data":1},{"id":"y"}]}`, "missing_data"},
		{"id too long", "a", `{"id":"` + strings.Repeat("i", 257) + `","data":1}`, "invalid_id"},
		{"id of wrong type", "a", `{"id":7,"data":1}`, "bad_json"},
		{"empty batch", "a", `{"entries":[]}`, "invalid_batch"},
		{"batch too large", "a", big.String(), "invalid_batch"},
		{"batch mixed with data", "a", `{"entries":[{"data":1}],"data":2}`, "invalid_batch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, h, b := call(t, "POST", srv.URL+"/v1/logs/"+tt.path, tt.body)
			code, _ := errorCode(t, b)
			if s != 400 || code != tt.code {
				t.Fatalf("got %d %s, want 400 %s", s, b, tt.code)
			}
			if ct := h.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("content type %q", ct)
			}
		})
	}
	if st := n.log.Status().(Status); st.Logs != 0 {
		t.Fatalf("a refused publish created a log")
	}
}

func TestPublish_ReturnsRaftErrors(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	noLeader := &httpjson.Error{Status: 503, Code: "no_leader", Message: "there is no leader", RetryAfter: time.Second}
	n.raft.ApplyFunc = func(context.Context, byte, []byte) (modules.Applied, error) { return modules.Applied{}, noLeader }
	s, h, b := call(t, "POST", srv.URL+"/v1/logs/a", `{"data":1}`)
	if code, _ := errorCode(t, b); s != 503 || code != "no_leader" || h.Get("Retry-After") != "1" {
		t.Fatalf("got %d %v %s", s, h, b)
	}
	n.raft.ApplyFunc = func(context.Context, byte, []byte) (modules.Applied, error) {
		return modules.Applied{Index: 1, Result: []byte{9}}, nil
	}
	s, _, b = call(t, "POST", srv.URL+"/v1/logs/a", `{"data":1}`)
	if code, _ := errorCode(t, b); s != 500 || code != "internal" {
		t.Fatalf("bad result: got %d %s, want 500 internal", s, b)
	}
}

func TestRead_PagesAndErrors(t *testing.T) {
	n := newTestNode(t, Config{MaxEntries: 5, DedupWindow: time.Minute, StreamHeartbeat: time.Second})
	srv := n.serve(t)
	for i := 1; i <= 8; i++ { // indexes 1-8; 4-8 retained
		call(t, "POST", srv.URL+"/v1/logs/r", fmt.Sprintf(`{"data":%d}`, i))
	}
	page := func(query string) (int, string, []uint64, uint64) {
		t.Helper()
		s, h, b := call(t, "GET", srv.URL+"/v1/logs/r"+query, "")
		var resp struct {
			Entries []struct {
				Index uint64 `json:"index"`
				Data  int    `json:"data"`
			} `json:"entries"`
			Next uint64 `json:"next"`
		}
		var idx []uint64
		if s == 200 {
			if err := json.Unmarshal([]byte(b), &resp); err != nil {
				t.Fatalf("decode %s: %v", b, err)
			}
			for _, e := range resp.Entries {
				if e.Data != int(e.Index) {
					t.Fatalf("entry %d holds %d", e.Index, e.Data)
				}
				idx = append(idx, e.Index)
			}
			if h.Get(httpjson.HeaderAppliedIndex) != "8" {
				t.Fatalf("applied index header: %q", h.Get(httpjson.HeaderAppliedIndex))
			}
		}
		return s, b, idx, resp.Next
	}
	tests := []struct {
		query string
		index []uint64
		next  uint64
	}{
		{"", []uint64{4, 5, 6, 7, 8}, 9},
		{"?limit=2", []uint64{4, 5}, 6},
		{"?from=6&limit=2", []uint64{6, 7}, 8},
		{"?from=8&limit=1000", []uint64{8}, 9},
		{"?from=9", nil, 9},
		{"?from=50", nil, 50},
	}
	for _, tt := range tests {
		s, b, idx, next := page(tt.query)
		if s != 200 || fmt.Sprint(idx) != fmt.Sprint(tt.index) || next != tt.next {
			t.Fatalf("%s: got %d %v next %d (%s), want %v next %d", tt.query, s, idx, next, b, tt.index, tt.next)
		}
	}
	if _, b, _, _ := page("?from=9"); !strings.Contains(b, `"entries":[]`) {
		t.Fatalf("an empty page must have an empty list: %s", b)
	}

	s, _, b := call(t, "GET", srv.URL+"/v1/logs/r?from=3", "")
	code, e := errorCode(t, b)
	if s != 410 || code != "log_trimmed" || e["first_index"] != float64(4) {
		t.Fatalf("trimmed: got %d %s", s, b)
	}
	s, _, b = call(t, "GET", srv.URL+"/v1/logs/nope", "")
	if code, _ := errorCode(t, b); s != 404 || code != "log_not_found" {
		t.Fatalf("unknown log: got %d %s", s, b)
	}
	for _, q := range []string{"?from=0", "?from=x", "?from=-1", "?limit=0", "?limit=1001", "?limit=x", "?consistent=maybe"} {
		s, _, b := call(t, "GET", srv.URL+"/v1/logs/r"+q, "")
		if code, e := errorCode(t, b); s != 400 || code != "invalid_parameter" || e["parameter"] == nil {
			t.Fatalf("%s: got %d %s, want 400 invalid_parameter", q, s, b)
		}
	}
	s, _, b = call(t, "GET", srv.URL+"/v1/logs/bad%20name", "")
	if code, _ := errorCode(t, b); s != 400 || code != "invalid_log_name" {
		t.Fatalf("bad name: got %d %s", s, b)
	}
}

func TestRead_Consistent(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	call(t, "POST", srv.URL+"/v1/logs/c", `{"data":1}`)
	if s, _, b := call(t, "GET", srv.URL+"/v1/logs/c?consistent=true", ""); s != 200 || n.readIndexCalls() != 1 {
		t.Fatalf("got %d %s after %d read barriers, want 200 after 1", s, b, n.readIndexCalls())
	}
	if s, _, _ := call(t, "GET", srv.URL+"/v1/logs/c?consistent=false", ""); s != 200 || n.readIndexCalls() != 1 {
		t.Fatalf("consistent=false ran the barrier")
	}
	n.raft.ReadIndexFunc = func(context.Context) error {
		return &httpjson.Error{Status: 503, Code: "no_leader", Message: "there is no leader"}
	}
	s, _, b := call(t, "GET", srv.URL+"/v1/logs/c?consistent=true", "")
	if code, _ := errorCode(t, b); s != 503 || code != "no_leader" {
		t.Fatalf("failed barrier: got %d %s", s, b)
	}
	s, _, b = call(t, "GET", srv.URL+"/v1/logs?consistent=1", "")
	if code, _ := errorCode(t, b); s != 503 || code != "no_leader" {
		t.Fatalf("failed barrier on list: got %d %s", s, b)
	}
}

func TestList_SortedByName(t *testing.T) {
	n := newTestNode(t, Config{MaxEntries: 2, DedupWindow: time.Minute, StreamHeartbeat: time.Second})
	srv := n.serve(t)
	s, h, b := call(t, "GET", srv.URL+"/v1/logs", "")
	want(t, "empty", s, b, 200, `{"logs":[]}`)
	if h.Get(httpjson.HeaderAppliedIndex) != "0" {
		t.Fatalf("applied index header: %q", h.Get(httpjson.HeaderAppliedIndex))
	}
	for _, name := range []string{"zeta", "alpha", "Mid", "alpha", "alpha"} {
		call(t, "POST", srv.URL+"/v1/logs/"+name, `{"data":0}`)
	}
	s, _, b = call(t, "GET", srv.URL+"/v1/logs/", "")
	want(t, "list", s, b, 200, `{"logs":[
		{"name":"Mid","first_index":1,"last_index":1,"entries":1},
		{"name":"alpha","first_index":2,"last_index":3,"entries":2},
		{"name":"zeta","first_index":1,"last_index":1,"entries":1}]}`)
	if got := n.log.Status().(Status); got.Logs != 3 || got.Entries != 4 {
		t.Fatalf("status: got %+v", got)
	}
}

func TestErrors_AreSentinels(t *testing.T) {
	for _, err := range []error{ErrInvalidLogName, ErrLogNotFound, ErrLogTrimmed, ErrMissingData, ErrInvalidID, ErrInvalidBatch, ErrInvalidParameter} {
		rebuilt := httpjson.ReadError(httpjson.As(err).Status, []byte(`{"error":{"code":"`+httpjson.As(err).Code+`","message":"m"}}`))
		if !errors.Is(rebuilt, err) {
			t.Errorf("%s does not survive a round trip", httpjson.As(err).Code)
		}
	}
}

func TestConfigureAndDelete(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	s, _, b := call(t, "PUT", srv.URL+"/v1/logs/orders", `{"max_entries":3,"max_age":"72h"}`)
	want(t, "create with limits", s, b, 200, `{"name":"orders","first_index":1,"last_index":0,"entries":0,"max_entries":3,"max_age":"72h0m0s"}`)
	for i := range 5 {
		publish(t, srv.URL+"/v1/logs/orders", fmt.Sprintf(`{"data":%d}`, i))
	}
	s, _, b = call(t, "PUT", srv.URL+"/v1/logs/orders", `{"max_bytes":0}`)
	want(t, "a second change keeps the others", s, b, 200, `{"name":"orders","first_index":3,"last_index":5,"entries":3,"max_entries":3,"max_bytes":0,"max_age":"72h0m0s"}`)
	s, _, b = call(t, "GET", srv.URL+"/v1/logs", "")
	want(t, "list shows the limits", s, b, 200, `{"logs":[{"name":"orders","first_index":3,"last_index":5,"entries":3,"max_entries":3,"max_bytes":0,"max_age":"72h0m0s"}]}`)
	for _, bad := range []string{`{"max_age":"soon"}`, `{"max_age":"-1h"}`, `{"max_entries":-1}`, `{"max_bytes":4611686018427387905}`, `{"max_entries":1,"other":2}`, `[]`} {
		s, _, b = call(t, "PUT", srv.URL+"/v1/logs/orders", bad)
		if s != 400 {
			t.Fatalf("PUT %s: got %d %s, want 400", bad, s, b)
		}
	}

	stream := openSSE(t, srv.URL+"/v1/logs/orders/stream?from=3", nil)
	for range 3 {
		stream.nextEntry(t)
	}
	s, _, b = call(t, "DELETE", srv.URL+"/v1/logs/orders", "")
	if s != 204 || b != "" {
		t.Fatalf("DELETE: got %d %q, want 204 and no body", s, b)
	}
	ev, ok := stream.next(t)
	if !ok || ev.event != "deleted" || !strings.Contains(ev.data, `"log":"orders"`) {
		t.Fatalf("stream of a deleted log: got %+v (open %v), want a deleted event", ev, ok)
	}
	stream.expectEnd(t)
	s, _, b = call(t, "DELETE", srv.URL+"/v1/logs/orders", "")
	if code, _ := errorCode(t, b); s != 404 || code != "log_not_found" {
		t.Fatalf("DELETE again: got %d %s", s, b)
	}
	s, _, b = call(t, "GET", srv.URL+"/v1/logs/orders", "")
	if code, _ := errorCode(t, b); s != 404 || code != "log_not_found" {
		t.Fatalf("GET a deleted log: got %d %s", s, b)
	}
	// Only the marker that says this node deleted it is left (see
	// RestoreAt): the directory and every segment are gone.
	if entries, _ := os.ReadDir(filepath.Join(n.dir, "logs")); len(entries) != 1 || entries[0].Name() != "orders@1.gone" {
		t.Fatalf("files left after delete: %v", entries)
	}
}
