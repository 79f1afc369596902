package logstream_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"shoal/client"
	"shoal/internal/httpjson"
	"shoal/internal/testcluster"
	"shoal/logstream"
)

// TestCluster_TailOnFollowerSeesEveryEntryAcrossItsRestart tails a log
// through a follower with the Go client from index 1, before the log
// exists. Entries published on the other nodes arrive live and in order;
// the follower is stopped (its stream ends), entries are published while
// it is down, and after it restarts the client has resumed where it left
// off: every entry exactly once, no gap.
func TestCluster_TailOnFollowerSeesEveryEntryAcrossItsRestart(t *testing.T) {
	h := newHarness(t, withLogConfig(func(c *logstream.Config) { c.StreamHeartbeat = 200 * time.Millisecond }))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	f := h.Followers()[0]
	p := h.publisher("events", h.others(f)...)

	got := make(chan client.LogEntry, 1000)
	tailCtx, stopTail := context.WithCancel(ctx)
	defer stopTail()
	tailDone := make(chan error, 1)
	go func() {
		tailDone <- h.client(f).Tail(tailCtx, "events", 1, func(e client.LogEntry) error {
			got <- e
			return nil
		})
	}()
	var want []string
	expect := func(more []string) {
		t.Helper()
		for _, id := range more {
			want = append(want, id)
			select {
			case e := <-got:
				if err := checkEntries([]client.LogEntry{e}, []string{id}, uint64(len(want))); err != nil {
					t.Fatalf("tail through %s: %v", f.Name, err)
				}
			case err := <-tailDone:
				t.Fatalf("tail through %s ended: %v", f.Name, err)
			case <-time.After(30 * time.Second):
				t.Fatalf("tail through %s: no entry in 30s, want index %d", f.Name, len(want))
			}
		}
	}

	live := ids("live", 20)
	if err := p.publishAll(ctx, live); err != nil {
		t.Fatal(err)
	}
	expect(live)

	h.Stop(f.Index)
	down := ids("down", 20)
	if err := p.publishAll(ctx, down); err != nil {
		t.Fatal(err)
	}
	h.Restart(f.Index)
	after := ids("after", 10)
	if err := p.publishAll(ctx, after); err != nil {
		t.Fatal(err)
	}
	expect(append(down, after...))

	stopTail()
	if err := <-tailDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("tail ended with %v, want context.Canceled", err)
	}
	select {
	case e := <-got:
		t.Fatalf("an entry after the last one published: %+v", e)
	default:
	}
}

// TestCluster_StreamResumesOnAnotherNodeWithLastEventID reads part of a
// log's event stream from one follower, hangs up, and reconnects to the
// other follower with Last-Event-ID: the sequence continues exactly, the
// entries published in between included, then live ones, with heartbeats.
func TestCluster_StreamResumesOnAnotherNodeWithLastEventID(t *testing.T) {
	h := newHarness(t, withLogConfig(func(c *logstream.Config) { c.StreamHeartbeat = 100 * time.Millisecond }))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := h.publisher("events")
	if err := p.publishAll(ctx, ids("a", 30)); err != nil {
		t.Fatal(err)
	}
	fs := h.Followers()

	first := h.openStream(fs[0], "events", "from=1", nil)
	if ct := first.header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("stream Content-Type %q, want text/event-stream", ct)
	}
	if n, err := strconv.ParseUint(first.header.Get(httpjson.HeaderAppliedIndex), 10, 64); err != nil || n == 0 {
		t.Fatalf("stream %s %q, want the applied Raft index", httpjson.HeaderAppliedIndex, first.header.Get(httpjson.HeaderAppliedIndex))
	}
	want := ids("a", 30)
	for i := range 10 {
		first.nextEntry(uint64(i+1), want[i])
	}
	first.close()

	more := ids("b", 10)
	if err := p.publishAll(ctx, more); err != nil {
		t.Fatal(err)
	}
	want = append(want, more...)

	// The client sends from=1 as well; Last-Event-ID wins.
	second := h.openStream(fs[1], "events", "from=1", http.Header{"Last-Event-Id": {"10"}})
	for i := 10; i < len(want); i++ {
		second.nextEntry(uint64(i+1), want[i])
	}
	live := ids("c", 5)
	if err := p.publishAll(ctx, live); err != nil {
		t.Fatal(err)
	}
	for i, id := range live {
		second.nextEntry(uint64(len(want)+i+1), id)
	}
	testcluster.Eventually(t, 10*time.Second, func() error {
		if second.pings.Load() == 0 {
			return errors.New("no heartbeat comment yet")
		}
		return nil
	})
}

// TestCluster_ConsistentReadOnFollowerSeesPublish publishes on the leader
// and at once reads with ?consistent=true on a follower: the read always
// includes the entry just acknowledged.
func TestCluster_ConsistentReadOnFollowerSeesPublish(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader := h.Leader()
	fs := h.Followers()
	p := h.publisher("orders", leader)
	for i, id := range ids("c", 30) {
		res, err := p.publish(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		f := fs[i%len(fs)]
		rr, err := h.client(f).Read(ctx, "orders", res.Index, 1, true)
		if err != nil {
			t.Fatalf("consistent read on %s: %v", f.Name, err)
		}
		if err := checkEntries(rr.Entries, []string{id}, res.Index); err != nil {
			t.Fatalf("consistent read on %s right after publish %d: %v", f.Name, res.Index, err)
		}
		if rr.Next != res.Index+1 || rr.AppliedIndex == 0 {
			t.Fatalf("consistent read on %s: next %d, applied index %d", f.Name, rr.Next, rr.AppliedIndex)
		}
	}
}

// TestCluster_BadRequestsOnARealNode sends malformed and refused requests
// to a leader and a follower of a cluster whose logs keep 5 entries.
func TestCluster_BadRequestsOnARealNode(t *testing.T) {
	h := newHarness(t, withLogConfig(func(c *logstream.Config) { c.MaxEntries = 5 }))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader := h.Leader()
	f := h.Followers()[0]

	for _, n := range []*testcluster.Node{leader, f} {
		for _, tc := range []struct {
			what, path, body string
			code             string
		}{
			{"bad JSON", "/v1/logs/orders", `{"id":"x","data":`, "bad_json"},
			{"not an object", "/v1/logs/orders", `[1]`, "bad_json"},
			{"unknown field", "/v1/logs/orders", `{"id":"x","data":1,"extra":1}`, "bad_json"},
			{"empty body", "/v1/logs/orders", ``, "bad_json"},
			{"no data", "/v1/logs/orders", `{"id":"x"}`, "missing_data"},
			{"long id", "/v1/logs/orders", `{"id":"` + strings.Repeat("i", 257) + `","data":1}`, "invalid_id"},
			{"empty batch", "/v1/logs/orders", `{"entries":[]}`, "invalid_batch"},
			{"batch and id", "/v1/logs/orders", `{"id":"x","entries":[{"data":1}]}`, "invalid_batch"},
			{"bad name", "/v1/logs/a*b", `{"data":1}`, "invalid_log_name"},
			{"long name", "/v1/logs/" + strings.Repeat("n", 129), `{"data":1}`, "invalid_log_name"},
		} {
			r := h.mustRaw(n, http.MethodPost, tc.path, tc.body, nil)
			wantError(t, tc.what+" on "+n.Name, r, http.StatusBadRequest, tc.code)
		}
	}
	big := make([]client.Entry, 1001)
	for i := range big {
		big[i] = client.Entry{Data: json.RawMessage("1")}
	}
	if _, err := h.client(f).PublishBatch(ctx, "orders", big); !errors.Is(err, logstream.ErrInvalidBatch) {
		t.Fatalf("batch of 1001: got %v, want invalid_batch", err)
	}

	// 5 MiB: over the agent's default limit of 4 MiB.
	huge := append(append([]byte(`"`), bytes.Repeat([]byte("x"), 5<<20)...), '"')
	_, err := h.client(f).Publish(ctx, "orders", "huge", huge)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusRequestEntityTooLarge || ce.Code != "body_too_large" {
		t.Fatalf("5 MiB publish: got %v, want 413 body_too_large", err)
	}

	// Limits are inclusive: a 256-byte id and a 128-byte name are fine.
	okName, okID := strings.Repeat("n", 128), strings.Repeat("i", 256)
	if _, err := h.publisher(okName).publish(ctx, okID); err != nil {
		t.Fatalf("publish with a 128-byte name and a 256-byte id: %v", err)
	}

	// Unknown log.
	for _, n := range []*testcluster.Node{leader, f} {
		wantError(t, "read of an unknown log", h.mustRaw(n, http.MethodGet, "/v1/logs/nope?from=1", "", nil),
			http.StatusNotFound, "log_not_found")
	}
	if _, err := h.client(f).Read(ctx, "nope", 1, 0, true); !errors.Is(err, logstream.ErrLogNotFound) {
		t.Fatalf("consistent read of an unknown log: got %v, want log_not_found", err)
	}

	// Bad query parameters.
	for _, tc := range []struct{ query, param string }{
		{"from=0", "from"}, {"from=x", "from"}, {"limit=0", "limit"}, {"limit=1001", "limit"}, {"consistent=maybe", "consistent"},
	} {
		r := h.mustRaw(f, http.MethodGet, "/v1/logs/orders?"+tc.query, "", nil)
		if fields := wantError(t, tc.query, r, http.StatusBadRequest, "invalid_parameter"); fields["parameter"] != tc.param {
			t.Fatalf("%s: parameter %v, want %s", tc.query, fields["parameter"], tc.param)
		}
	}
	r := h.mustRaw(f, http.MethodGet, "/v1/logs/orders/stream", "", http.Header{"Last-Event-Id": {"x"}})
	wantError(t, "stream with a bad Last-Event-ID", r, http.StatusBadRequest, "invalid_parameter")

	// Retention: 8 published, 5 kept, so 1..3 are gone.
	p := h.publisher("kept")
	published := ids("r", 8)
	if err := p.publishAll(ctx, published); err != nil {
		t.Fatal(err)
	}
	for _, n := range h.Nodes() {
		testcluster.Eventually(t, 20*time.Second, func() error {
			rr, err := h.client(n).Read(ctx, "kept", 4, 0, false)
			if err != nil {
				return err
			}
			return checkEntries(rr.Entries, published[3:], 4)
		})
		for _, path := range []string{"/v1/logs/kept?from=1", "/v1/logs/kept?from=3", "/v1/logs/kept/stream?from=2"} {
			fields := wantError(t, path+" on "+n.Name, h.mustRaw(n, http.MethodGet, path, "", nil), http.StatusGone, "log_trimmed")
			if fields["first_index"] != float64(4) {
				t.Fatalf("%s on %s: first_index %v, want 4", path, n.Name, fields["first_index"])
			}
		}
		// Without from, a read starts at the first retained entry.
		r := h.mustRaw(n, http.MethodGet, "/v1/logs/kept", "", nil)
		var page struct {
			Entries []client.LogEntry `json:"entries"`
			Next    uint64            `json:"next"`
		}
		if err := json.Unmarshal(r.body, &page); err != nil || r.status != http.StatusOK {
			t.Fatalf("read without from on %s: %d %s", n.Name, r.status, r.body)
		}
		if err := checkEntries(page.Entries, published[3:], 4); err != nil || page.Next != 9 {
			t.Fatalf("read without from on %s: next %d: %v", n.Name, page.Next, err)
		}
	}
	_, err = h.client(f).Read(ctx, "kept", 1, 0, true)
	if !errors.As(err, &ce) || ce.Status != http.StatusGone || ce.Details["first_index"] != float64(4) {
		t.Fatalf("consistent read of a trimmed index: got %v, want 410 with first_index 4", err)
	}
	// A trimmed entry's id is still remembered within the dedup window.
	res, err := p.publish(ctx, published[0])
	if err != nil {
		t.Fatal(err)
	}
	if !res.Duplicate || res.Index != 1 {
		t.Fatalf("publish of the trimmed entry's id: got %+v, want index 1, duplicate", res)
	}
	logs, err := h.client(f).Logs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range logs {
		logs[i].Bytes = 0 // the segment format's business
	}
	if got := fmt.Sprint(logs); !strings.Contains(got, "{kept 4 8 5 0 0 0 0}") {
		t.Fatalf("GET /v1/logs: %s, want kept with first 4, last 8, 5 entries", got)
	}
}
