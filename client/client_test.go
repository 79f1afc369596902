package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"shoal/client"
	"shoal/internal/httpjson"
)

func newClient(t *testing.T, addr string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(addr, opts...)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	return c
}

func TestNew_Addr(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "http://127.0.0.1:7480", want: "http://127.0.0.1:7480"},
		{in: "127.0.0.1:7480", want: "http://127.0.0.1:7480"},
		{in: "https://shoal.example/base/", want: "https://shoal.example/base"},
		{in: "", wantErr: true},
		{in: "ftp://x", wantErr: true},
		{in: "http://", wantErr: true},
		{in: "http://h:1/?q=1", wantErr: true},
	}
	for _, tt := range tests {
		c, err := client.New(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("New(%q): got nil error, want one", tt.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("New(%q): %v", tt.in, err)
			continue
		}
		if got := c.Addr(); got != tt.want {
			t.Errorf("New(%q).Addr() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestClient_Status(t *testing.T) {
	_, srv := newFakeNode(t, "")
	s, err := newClient(t, srv.URL).Status(context.Background())
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if s.Node != "n1" || s.Leader != "n2" || s.Members != 4 || s.Version != "v1.2.3" {
		t.Fatalf("got %+v", s)
	}
	r := s.Raft
	if r.State != "follower" || r.Term != 7 || r.CommitIndex != 42 || r.AppliedIndex != 41 ||
		!slices.Equal(r.Voters, []string{"n1", "n2", "n3"}) || !slices.Equal(r.NonVoters, []string{"n4"}) {
		t.Fatalf("got raft %+v", r)
	}
	if !slices.Equal(s.Modules, []string{"log", "kv"}) {
		t.Fatalf("got modules %v", s.Modules)
	}
	if got := s.SectionNames(); !slices.Equal(got, []string{"kv", "log"}) {
		t.Fatalf("got sections %v, want [kv log]", got)
	}
	if string(s.Sections["log"]) != `{"logs":2}` {
		t.Fatalf("got log section %s", s.Sections["log"])
	}
	if !strings.Contains(string(s.Raw), `"last_contact":"1ms"`) {
		t.Fatalf("raw body lost fields: %s", s.Raw)
	}
	// Marshalling puts the sections back beside the known fields.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var back client.Status
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	if back.Node != "n1" || string(back.Sections["kv"]) != `{"keys":10}` {
		t.Fatalf("round trip: got %+v", back)
	}
}

func TestClient_MembersAndPeers(t *testing.T) {
	_, srv := newFakeNode(t, "")
	c := newClient(t, srv.URL)
	ms, err := c.Members(context.Background())
	if err != nil {
		t.Fatalf("members: %v", err)
	}
	want := client.Member{Name: "n1", Addr: "10.0.0.1:7946", Status: "alive", HTTPAddr: "10.0.0.1:7480", RaftSuffrage: "voter", Leader: true}
	if len(ms) != 3 || ms[0] != want || ms[1].RaftSuffrage != "nonvoter" || ms[2].RaftSuffrage != "" {
		t.Fatalf("got %+v", ms)
	}
	ps, err := c.RaftPeers(context.Background())
	if err != nil {
		t.Fatalf("peers: %v", err)
	}
	if len(ps) != 2 || ps[0] != (client.RaftPeer{ID: "n1", Address: "10.0.0.1:7947", Suffrage: "voter", Leader: true}) {
		t.Fatalf("got %+v", ps)
	}
}

func TestClient_Admin(t *testing.T) {
	f, srv := newFakeNode(t, "")
	c := newClient(t, srv.URL)
	ctx := context.Background()
	if err := c.Join(ctx, []string{"10.0.0.5:7946", "10.0.0.6:7946"}); err != nil {
		t.Fatalf("join: %v", err)
	}
	if err := c.Leave(ctx); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if err := c.RemovePeer(ctx, "n/3 x"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if err := c.TransferLeadership(ctx); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Equal(f.joined, []string{"10.0.0.5:7946", "10.0.0.6:7946"}) || !f.left ||
		!slices.Equal(f.removed, []string{"n/3 x"}) || f.transfer != 1 {
		t.Fatalf("server saw joined=%v left=%v removed=%v transfer=%d", f.joined, f.left, f.removed, f.transfer)
	}
}

func TestClient_Errors(t *testing.T) {
	_, srv := newFakeNode(t, "")
	c := newClient(t, srv.URL)
	ctx := context.Background()

	err := c.RemovePeer(ctx, "ghost")
	if !errors.Is(err, httpjson.Errorf(404, "not_found", "anything")) || !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("got %v, want not_found", err)
	}
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 404 || e.Message != `no raft peer "ghost"` {
		t.Fatalf("got %#v", e)
	}
	if !strings.HasPrefix(err.Error(), `remove raft peer "ghost": `) {
		t.Fatalf("error lacks context: %q", err)
	}

	_, err = c.Publish(ctx, "full", "", json.RawMessage(`1`))
	if !errors.Is(err, httpjson.Errorf(409, "log_full", "")) {
		t.Fatalf("got %v, want log_full", err)
	}
	if errors.Is(err, client.ErrNotFound) {
		t.Fatalf("log_full must not match not_found")
	}

	err = c.Join(ctx, nil)
	if !errors.Is(err, httpjson.BadRequest("no_addrs", "")) {
		t.Fatalf("got %v, want no_addrs", err)
	}
}

func TestClient_NonJSONError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	t.Cleanup(srv.Close)
	_, err := newClient(t, srv.URL).Status(context.Background())
	var e *client.Error
	if !errors.As(err, &e) || e.Code != "http_502" || e.Status != 502 || e.RetryAfter.Seconds() != 3 {
		t.Fatalf("got %v (%#v), want http_502 with retry-after 3s", err, e)
	}
}

func TestClient_Token(t *testing.T) {
	_, srv := newFakeNode(t, "s3cret")
	if _, err := newClient(t, srv.URL).Members(context.Background()); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("without token: got %v, want unauthorized", err)
	}
	if _, err := newClient(t, srv.URL, client.WithToken("wrong")).Members(context.Background()); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("wrong token: got %v, want unauthorized", err)
	}
	if _, err := newClient(t, srv.URL, client.WithToken("s3cret")).Members(context.Background()); err != nil {
		t.Fatalf("with token: %v", err)
	}
}

func TestClient_WithHTTPClient(t *testing.T) {
	_, srv := newFakeNode(t, "")
	var calls int
	var mu sync.Mutex
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		return http.DefaultTransport.RoundTrip(r)
	})}
	if err := newClient(t, srv.URL, client.WithHTTPClient(hc)).Live(context.Background()); err != nil {
		t.Fatalf("live: %v", err)
	}
	if calls != 1 {
		t.Fatalf("got %d calls through the custom client, want 1", calls)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestClient_Health(t *testing.T) {
	f, srv := newFakeNode(t, "")
	c := newClient(t, srv.URL)
	ctx := context.Background()
	if err := c.Live(ctx); err != nil {
		t.Fatalf("live: %v", err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}
	if checks := client.ReadyChecks(nil); checks != nil {
		t.Fatalf("checks of nil: %v", checks)
	}
	f.mu.Lock()
	f.ready = false
	f.mu.Unlock()
	err := c.Ready(ctx)
	if !errors.Is(err, client.ErrNotReady) {
		t.Fatalf("got %v, want not_ready", err)
	}
	checks := client.ReadyChecks(err)
	if checks["leader"] != "no leader elected" || checks["log"] != "ok" {
		t.Fatalf("got checks %v", checks)
	}
}

func TestClient_PublishAndRead(t *testing.T) {
	_, srv := newFakeNode(t, "")
	c := newClient(t, srv.URL)
	ctx := context.Background()
	const name = "orders/eu west"

	res, err := c.Publish(ctx, name, "a", json.RawMessage(`{"n":1}`))
	if err != nil || res != (client.PublishResult{Index: 1}) {
		t.Fatalf("publish: got %+v, %v", res, err)
	}
	res, err = c.Publish(ctx, name, "a", json.RawMessage(`{"n":1}`))
	if err != nil || res != (client.PublishResult{Index: 1, Duplicate: true}) {
		t.Fatalf("duplicate publish: got %+v, %v", res, err)
	}
	res, err = c.Publish(ctx, name, "", json.RawMessage(`"no id"`))
	if err != nil || res.Index != 2 {
		t.Fatalf("publish without id: got %+v, %v", res, err)
	}
	idx, err := c.PublishBatch(ctx, name, []client.Entry{
		{ID: "b", Data: json.RawMessage(`2`)},
		{Data: json.RawMessage(`3`)},
	})
	if err != nil || !slices.Equal(idx.Indexes, []uint64{3, 4}) || !slices.Equal(idx.Duplicates, []bool{false, false}) {
		t.Fatalf("batch: got %+v, %v", idx, err)
	}

	rr, err := c.Read(ctx, name, 2, 2, false)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if len(rr.Entries) != 2 || rr.Entries[0].Index != 2 || string(rr.Entries[0].Data) != `"no id"` ||
		rr.Entries[1].ID != "b" || rr.Next != 4 || rr.AppliedIndex != 104 || rr.Entries[0].Time.Year() != 2025 {
		t.Fatalf("got %+v", rr)
	}
	rr, err = c.Read(ctx, name, 1, 0, true)
	if err != nil || len(rr.Entries) != 4 || rr.AppliedIndex != 1004 {
		t.Fatalf("consistent read: got %+v, %v", rr, err)
	}
	if _, err := c.Read(ctx, "nope", 1, 0, false); !errors.Is(err, client.ErrLogNotFound) {
		t.Fatalf("read of unknown log: got %v, want log_not_found", err)
	}

	logs, err := c.Logs(ctx)
	if err != nil || len(logs) != 1 || logs[0] != (client.LogInfo{Name: name, FirstIndex: 1, LastIndex: 4, Entries: 4}) {
		t.Fatalf("logs: got %+v, %v", logs, err)
	}
}

// TestClient_Concurrent shares one Client between many goroutines, as the
// load generator does.
func TestClient_Concurrent(t *testing.T) {
	_, srv := newFakeNode(t, "")
	c := newClient(t, srv.URL)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			for range 10 {
				if _, err := c.Publish(context.Background(), "load", "", json.RawMessage(`0`)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("publish: %v", err)
	}
	rr, err := c.Read(context.Background(), "load", 1, 1000, false)
	if err != nil || len(rr.Entries) != 640 {
		t.Fatalf("got %d entries, %v; want 640", len(rr.Entries), err)
	}
}
