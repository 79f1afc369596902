package objectsync

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"shoal/internal/testcluster"
)

func TestCluster_REST(t *testing.T) {
	cfg := testConfig()
	cfg.MaxSize = 2048
	c := newCluster(t, cfg)
	n0, n1 := c.Node(0), c.Node(1)

	putObject(t, n0, "doc-1", 1, `{"b":2,"a":1}`)
	putObject(t, n0, "doc-2", []int{1, 0}, `{}`)
	putObject(t, n0, "other", map[string]int{"dep": 3}, `{}`)

	r := must(t, n1, "GET", "/v1/objects/doc-1?consistent=true", "", nil, 200)
	if got := strings.TrimSpace(string(r.body)); got != `{"id":"doc-1","version":1,"object":{"a":1,"b":2}}` {
		t.Fatalf("got %s", got)
	}
	if r.header.Get("X-Shoal-Applied-Index") == "" {
		t.Fatalf("no applied index header")
	}
	r = must(t, n1, "GET", "/v1/objects?pattern=doc-*&consistent=true", "", nil, 200)
	if got := strings.TrimSpace(string(r.body)); got != `{"objects":[{"id":"doc-1","version":1},{"id":"doc-2","version":[1,0]}]}` {
		t.Fatalf("got %s", got)
	}

	q := "?from=" + url.QueryEscape("1") + "&to=" + url.QueryEscape("2")
	must(t, n1, "PATCH", "/v1/objects/doc-1"+q, PatchContentType, []byte(`[{"op":"add","path":"/c","value":[true]}]`), 200)
	r = must(t, n0, "GET", "/v1/objects/doc-1?consistent=true", "", nil, 200)
	if got := strings.TrimSpace(string(r.body)); got != `{"id":"doc-1","version":2,"object":{"a":1,"b":2,"c":[true]}}` {
		t.Fatalf("got %s", got)
	}

	refusals := []struct {
		method, path, ctype, body string
		status                    int
		code                      string
	}{
		{"GET", "/v1/objects/nope", "", "", 404, "object_not_found"},
		{"PUT", "/v1/objects/doc-1", "application/json", `{"version":2,"object":{}}`, 409, "stale_version"},
		{"PUT", "/v1/objects/doc-1", "application/json", `{"version":"x","object":{}}`, 400, "invalid_version"},
		{"PUT", "/v1/objects/doc-1", "application/json", `{"version":3,"object":"str"}`, 400, "invalid_object"},
		{"PUT", "/v1/objects/doc-1", "application/json", `{"version":3}`, 400, "bad_json"},
		{"PUT", "/v1/objects/doc-1", "application/json", `{"version":3,"object":{"a":"` + strings.Repeat("z", 3000) + `"}}`, 413, "too_large"},
		{"PUT", "/v1/objects/a*b", "application/json", `{"version":3,"object":{}}`, 400, "invalid_id"},
		{"PUT", "/v1/objects/shoal:stats", "application/json", `{"version":3,"object":{}}`, 400, "reserved_id"},
		{"PATCH", "/v1/objects/doc-1" + q, "application/json", `[]`, 415, "unsupported_media_type"},
		{"PATCH", "/v1/objects/doc-1" + q, PatchContentType, `[]`, 409, "version_mismatch"},
		{"PATCH", "/v1/objects/doc-1?from=2&to=3", PatchContentType, `[{"op":"remove","path":"/zz"}]`, 409, "patch_failed"},
		{"PATCH", "/v1/objects/doc-1?from=2&to=3", PatchContentType, `{"op":"remove"}`, 400, "bad_patch"},
		{"PATCH", "/v1/objects/doc-1?from=2", PatchContentType, `[]`, 400, "invalid_version"},
		{"DELETE", "/v1/objects/nope", "", "", 404, "object_not_found"},
		{"POST", "/v1/objects/deps/bad%20name/bump", "", "", 400, "invalid_name"},
		{"GET", "/v1/objects?pattern=" + url.QueryEscape("a\x01"), "", "", 400, "invalid_pattern"},
	}
	for _, rf := range refusals {
		var body []byte
		if rf.body != "" {
			body = []byte(rf.body)
		}
		r := send(rf.method, n1.URL()+rf.path, rf.ctype, body)
		if r.status != rf.status || r.code() != rf.code {
			t.Fatalf("%s %s: got %s, want %d %s", rf.method, rf.path, r, rf.status, rf.code)
		}
	}

	// An id with a slash, percent-encoded.
	putObject(t, n0, "a%2Fb", 1, `{"slash":true}`)
	r = must(t, n1, "GET", "/v1/objects/a%2Fb?consistent=true", "", nil, 200)
	if !strings.Contains(string(r.body), `"id":"a/b"`) {
		t.Fatalf("got %s", r.body)
	}

	must(t, n1, "DELETE", "/v1/objects/doc-2", "", nil, 204)
	must(t, n0, "GET", "/v1/objects/doc-2?consistent=true", "", nil, 404)

	for want := 1; want <= 2; want++ {
		r = must(t, n1, "POST", "/v1/objects/deps/list-of-bicycles/bump", "", nil, 200)
		if got := strings.TrimSpace(string(r.body)); got != fmt.Sprintf(`{"name":"list-of-bicycles","version":%d}`, want) {
			t.Fatalf("got %s", got)
		}
	}
	r = must(t, n0, "GET", "/v1/objects/deps/list-of-bicycles?consistent=true", "", nil, 200)
	if got := strings.TrimSpace(string(r.body)); got != `{"name":"list-of-bicycles","version":2}` {
		t.Fatalf("got %s", got)
	}
}

type sseEvent struct{ id, typ, data string }

// watch opens an SSE watch and returns its events as they come.
func watch(t *testing.T, n *testcluster.Node, id, lastEventID string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", n.URL()+"/v1/objects/"+id+"/watch", nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("watch: %v", err)
	}
	if resp.StatusCode != 200 {
		cancel()
		t.Fatalf("watch: status %d", resp.StatusCode)
	}
	out := make(chan sseEvent, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
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
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.typ = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return out
}

func nextEvent(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	tm := time.NewTimer(20 * time.Second)
	defer tm.Stop()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("watch ended")
		}
		return ev
	case <-tm.C:
		t.Fatalf("no event within 20s")
	}
	return sseEvent{}
}

func TestCluster_Watch(t *testing.T) {
	c := newCluster(t, nil)
	for v := 1; v <= 3; v++ {
		putObject(t, c.Node(0), "w", v, padded(v))
	}
	must(t, c.Node(2), "GET", "/v1/objects/w?consistent=true", "", nil, 200)
	ev := watch(t, c.Node(2), "w", "")
	if e := nextEvent(t, ev); e.typ != "object" || e.id != "3" {
		t.Fatalf("got %+v, want the object at 3", e)
	}
	putObject(t, c.Node(1), "w", 4, padded(4))
	e := nextEvent(t, ev)
	if e.typ != "patch" || e.id != "4" {
		t.Fatalf("got %+v, want the patch to 4", e)
	}
	var m struct {
		From, To json.RawMessage
	}
	if err := json.Unmarshal([]byte(e.data), &m); err != nil || string(m.From) != "3" {
		t.Fatalf("patch data %s: %v", e.data, err)
	}
	// Resume from 2: the patches 2→3 and 3→4 only.
	ev2 := watch(t, c.Node(1), "w", "2")
	for _, want := range []string{"3", "4"} {
		if e := nextEvent(t, ev2); e.typ != "patch" || e.id != want {
			t.Fatalf("got %+v, want the patch to %s", e, want)
		}
	}
	must(t, c.Node(0), "DELETE", "/v1/objects/w", "", nil, 204)
	for _, ch := range []<-chan sseEvent{ev, ev2} {
		if e := nextEvent(t, ch); e.typ != "removed" {
			t.Fatalf("got %+v, want removed", e)
		}
	}
}
