package logstream_test

// Real-cluster tests of the log module: three in-process nodes with real
// memberlist, Raft and bolt stores, driven over HTTP through the client
// package (and raw HTTP where the wire format itself is under test). This
// file holds the shared helpers; the tests are in *_cluster_test.go.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"shoal/client"
	"shoal/internal/testcluster"
	"shoal/logstream" // registers the "log" module in this test binary
)

// harness is a real three-node cluster running only the log module, and
// one HTTP client shared by every API client of the test.
type harness struct {
	*testcluster.Cluster
	t  *testing.T
	hc *http.Client
}

// newHarness starts the cluster and waits until it has a leader and three
// voters. Everything is stopped in t.Cleanup.
func newHarness(t *testing.T, opts ...testcluster.Option) *harness {
	t.Helper()
	c := testcluster.New(t, 3, append([]testcluster.Option{testcluster.WithModules("log")}, opts...)...)
	tr := &http.Transport{MaxIdleConnsPerHost: 32, IdleConnTimeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return &harness{Cluster: c, t: t, hc: &http.Client{Transport: tr}}
}

// withLogConfig sets the log module's configuration on every node: the
// defaults, changed by edit.
func withLogConfig(edit func(*logstream.Config)) testcluster.Option {
	cfg := logstream.DefaultConfig()
	edit(&cfg)
	return testcluster.WithModuleConfig("log", &cfg)
}

// client returns an API client for node n. Tail reconnects quickly, so a
// test does not wait seconds for a restarted node.
func (h *harness) client(n *testcluster.Node) *client.Client {
	c, err := client.New(n.URL(), client.WithHTTPClient(h.hc),
		client.WithReconnectBackoff(10*time.Millisecond, 300*time.Millisecond))
	if err != nil {
		// New does no I/O; it fails only on a malformed address.
		return nil
	}
	return c
}

// others returns the nodes other than the given ones.
func (h *harness) others(not ...*testcluster.Node) []*testcluster.Node {
	var out []*testcluster.Node
	for _, n := range h.Nodes() {
		if !slices.Contains(not, n) {
			out = append(out, n)
		}
	}
	return out
}

// dataFor is the data every test publishes with id, so that a read can
// check each entry's data against its id.
func dataFor(id string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"id": id}) // a map of strings always encodes
	return b
}

// retryable reports whether a failed publish may be sent again with the
// same id: the node could not be reached or dropped the connection (it was
// killed or is restarting), or it answered 503 (no leader, leader
// unreachable, leadership lost with the outcome unknown, shutting down) or
// 504. Whatever became of the first attempt, the id makes the retry safe.
func retryable(err error) bool {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Status == http.StatusServiceUnavailable || e.Status == http.StatusGatewayTimeout
	}
	return !errors.Is(err, context.Canceled)
}

// publisher publishes entries with ids the way a careful client does: each
// attempt goes to the next live node in turn, and a failed attempt whose
// outcome may be unknown is retried with the same id until one is
// acknowledged. It records every acknowledgement. Safe for concurrent use.
type publisher struct {
	h     *harness
	log   string
	nodes []*testcluster.Node // nil: every live node

	mu         sync.Mutex
	turn       int
	acked      map[string]uint64 // id → acknowledged index
	retries    int               // attempts that failed and were retried
	duplicates int               // acknowledgements flagged duplicate
}

func (h *harness) publisher(log string, only ...*testcluster.Node) *publisher {
	return &publisher{h: h, log: log, nodes: only, acked: map[string]uint64{}}
}

// nextNode picks the next live node in turn, nil if none is up.
func (p *publisher) nextNode() *testcluster.Node {
	var up []*testcluster.Node
	for _, n := range p.h.Up() {
		if p.nodes == nil || slices.Contains(p.nodes, n) {
			up = append(up, n)
		}
	}
	if len(up) == 0 {
		return nil
	}
	p.mu.Lock()
	p.turn++
	turn := p.turn
	p.mu.Unlock()
	return up[turn%len(up)]
}

// publish publishes (id, dataFor(id)) until a node acknowledges it, a node
// refuses it for good, or ctx ends.
func (p *publisher) publish(ctx context.Context, id string) (client.PublishResult, error) {
	delay := 5 * time.Millisecond
	lastErr := errors.New("no live node")
	for {
		if n := p.nextNode(); n != nil {
			actx, cancel := context.WithTimeout(ctx, 20*time.Second)
			res, err := p.h.client(n).Publish(actx, p.log, id, dataFor(id))
			cancel()
			if err == nil {
				return res, p.record(id, res)
			}
			if ctx.Err() == nil && !retryable(err) {
				return res, fmt.Errorf("publish %s through %s: %w", id, n.Name, err)
			}
			lastErr = fmt.Errorf("through %s: %w", n.Name, err)
			p.mu.Lock()
			p.retries++
			p.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return client.PublishResult{}, fmt.Errorf("publish %s: %w; last attempt: %w", id, ctx.Err(), lastErr)
		case <-time.After(delay): // retry backoff
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// publishAll publishes the ids one after the other.
func (p *publisher) publishAll(ctx context.Context, ids []string) error {
	for _, id := range ids {
		if _, err := p.publish(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// record checks an acknowledgement against earlier ones of the same id.
func (p *publisher) record(id string, res client.PublishResult) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if res.Duplicate {
		p.duplicates++
	}
	if prev, ok := p.acked[id]; ok && prev != res.Index {
		return fmt.Errorf("id %s was acknowledged at index %d, then at index %d", id, prev, res.Index)
	}
	p.acked[id] = res.Index
	return nil
}

func (p *publisher) ackedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// inIndexOrder returns the acknowledged ids by index, checking that the
// acknowledged indexes are exactly 1..N: no two ids share an index and
// none is missing.
func (p *publisher) inIndexOrder() ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]string, len(p.acked))
	for id, index := range p.acked {
		if index < 1 || index > uint64(len(ids)) {
			return nil, fmt.Errorf("id %s acknowledged at index %d, outside 1..%d", id, index, len(ids))
		}
		if ids[index-1] != "" {
			return nil, fmt.Errorf("ids %s and %s both acknowledged at index %d", ids[index-1], id, index)
		}
		ids[index-1] = id
	}
	return ids, nil
}

// ids returns prefix-000, prefix-001, ... (n of them).
func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

// readAll reads a whole log from index 1 on, page by page, from the
// node's local state.
func readAll(ctx context.Context, cl *client.Client, log string) ([]client.LogEntry, error) {
	var all []client.LogEntry
	from := uint64(1)
	for {
		res, err := cl.Read(ctx, log, from, 1000, false)
		if err != nil {
			return nil, err
		}
		if len(res.Entries) == 0 {
			return all, nil
		}
		all = append(all, res.Entries...)
		from = res.Next
	}
}

// checkEntries reports the first way entries differ from want: entry i
// must have index first+i, id want[i] and data dataFor(want[i]).
func checkEntries(entries []client.LogEntry, want []string, first uint64) error {
	for i := range min(len(entries), len(want)) {
		e := entries[i]
		switch {
		case e.Index != first+uint64(i):
			return fmt.Errorf("entry %d has index %d, want %d", i, e.Index, first+uint64(i))
		case e.ID != want[i]:
			return fmt.Errorf("index %d has id %q, want %q", e.Index, e.ID, want[i])
		case string(e.Data) != string(dataFor(want[i])):
			return fmt.Errorf("index %d has data %s, want %s", e.Index, e.Data, dataFor(want[i]))
		}
	}
	if len(entries) != len(want) {
		return fmt.Errorf("%d entries, want %d", len(entries), len(want))
	}
	return nil
}

// waitLog waits until node n's own copy of the log holds exactly want,
// at indexes 1..len(want).
func (h *harness) waitLog(n *testcluster.Node, log string, want []string) {
	h.t.Helper()
	testcluster.Eventually(h.t, 45*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := readAll(ctx, h.client(n), log)
		if err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
		if err := checkEntries(got, want, 1); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
		return nil
	})
}

// rawResponse is a response read whole.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

// errorBody decodes the API's error shape.
func (r rawResponse) errorBody() (code string, fields map[string]any) {
	var wire struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(r.body, &wire); err != nil || wire.Error == nil {
		return "", nil
	}
	code, _ = wire.Error["code"].(string)
	return code, wire.Error
}

// raw sends one request to node n and reads the whole answer.
func (h *harness) raw(ctx context.Context, n *testcluster.Node, method, path string, body io.Reader, header http.Header) (rawResponse, error) {
	req, err := http.NewRequestWithContext(ctx, method, n.URL()+path, body)
	if err != nil {
		return rawResponse{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		return rawResponse{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return rawResponse{}, fmt.Errorf("read the answer to %s %s: %w", method, path, err)
	}
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// mustRaw is raw that fails the test on a transport error.
func (h *harness) mustRaw(n *testcluster.Node, method, path, body string, header http.Header) rawResponse {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r, err := h.raw(ctx, n, method, path, rd, header)
	if err != nil {
		h.t.Fatalf("%s %s on %s: %v", method, path, n.Name, err)
	}
	return r
}

// wantError checks a response's status and error code and returns the
// other fields of the error.
func wantError(t *testing.T, what string, r rawResponse, status int, code string) map[string]any {
	t.Helper()
	got, fields := r.errorBody()
	if r.status != status || got != code {
		t.Fatalf("%s: got %d %q (%s), want %d %q", what, r.status, got, r.body, status, code)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: Content-Type %q, want application/json", what, ct)
	}
	return fields
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	id, event, data string
}

// sseStream is an open event stream, read by its own goroutine.
type sseStream struct {
	t      *testing.T
	header http.Header
	cancel context.CancelFunc
	events chan sseEvent // closed when the stream ends
	pings  atomic.Int64  // ": ping" comments seen
	done   chan struct{}
}

// openStream opens GET /v1/logs/{log}/stream?query on node n, which must
// answer 200. The stream is closed at cleanup at the latest.
func (h *harness) openStream(n *testcluster.Node, log, query string, header http.Header) *sseStream {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.URL()+"/v1/logs/"+log+"/stream?"+query, nil)
	if err != nil {
		cancel()
		h.t.Fatalf("new stream request: %v", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		cancel()
		h.t.Fatalf("open stream on %s: %v", n.Name, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body) // for the message only
		resp.Body.Close()
		cancel()
		h.t.Fatalf("open stream on %s: %d %s", n.Name, resp.StatusCode, b)
	}
	s := &sseStream{t: h.t, header: resp.Header, cancel: cancel, events: make(chan sseEvent, 4096), done: make(chan struct{})}
	go s.read(resp.Body)
	h.t.Cleanup(s.close)
	return s
}

func (s *sseStream) read(body io.ReadCloser) {
	defer close(s.done)
	defer close(s.events)
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if ev != (sseEvent{}) {
				s.events <- ev
			}
			ev = sseEvent{}
			continue
		}
		if line == ": ping" {
			s.pings.Add(1)
			continue
		}
		field, value, _ := strings.Cut(line, ": ")
		switch field {
		case "id":
			ev.id = value
		case "event":
			ev.event = value
		case "data":
			ev.data = value
		case "retry": // the reconnection hint at the start
		default:
			s.events <- sseEvent{event: "unparsed", data: line}
		}
	}
}

// close ends the stream from the client side and waits for the reader.
func (s *sseStream) close() {
	s.cancel()
	<-s.done
}

// streamEntry is the data of an "entry" event.
type streamEntry struct {
	Index uint64          `json:"index"`
	ID    string          `json:"id"`
	Data  json.RawMessage `json:"data"`
	Time  string          `json:"time"`
}

// nextEntry waits for the next event, which must be the entry at index
// with id want.
func (s *sseStream) nextEntry(index uint64, want string) {
	s.t.Helper()
	var ev sseEvent
	select {
	case e, ok := <-s.events:
		if !ok {
			s.t.Fatalf("the stream ended; want the entry at index %d", index)
		}
		ev = e
	case <-time.After(30 * time.Second):
		s.t.Fatalf("no event in 30s; want the entry at index %d", index)
	}
	var e streamEntry
	if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
		s.t.Fatalf("event %+v: data is not an entry: %v", ev, err)
	}
	if ev.event != "entry" || ev.id != fmt.Sprint(index) || e.Index != index || e.ID != want ||
		string(e.Data) != string(dataFor(want)) {
		s.t.Fatalf("got event %+v, want the entry at index %d with id %s", ev, index, want)
	}
	if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil {
		s.t.Fatalf("entry %d: time %q: %v", index, e.Time, err)
	}
}
