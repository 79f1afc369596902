package locks

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"shoal/internal/httpjson"
	"shoal/internal/moduletest"
	"shoal/internal/testcluster"
	"shoal/modules"
)

// call sends a request and returns the status and body.
func call(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	return callCtx(t, context.Background(), method, url, body)
}

func callCtx(t *testing.T, ctx context.Context, method, url, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		t.Errorf("new request: %v", err)
		return 0, ""
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("read body: %v", err)
	}
	return resp.StatusCode, string(b)
}

// errorCode returns the code of an error body, checking its shape.
func errorCode(t *testing.T, body string) string {
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
	return code
}

func wantError(t *testing.T, what string, status int, body string, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus || errorCode(t, body) != wantCode {
		t.Fatalf("%s: got %d %s, want %d %s", what, status, body, wantStatus, wantCode)
	}
}

func decodeBody[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return v
}

func TestHTTP_SemaphoreLifecycle(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	u := srv.URL + "/v1/semaphores/jobs"

	s, b := call(t, "PUT", u, `{"limit":2}`)
	if s != 201 {
		t.Fatalf("create: %d %s", s, b)
	}
	if s, b = call(t, "PUT", u, `{"limit":2}`); s != 200 {
		t.Fatalf("create again: %d %s", s, b)
	}
	s, b = call(t, "PUT", u, `{"limit":3}`)
	wantError(t, "create with another limit", s, b, 409, "limit_conflict")
	if s, b = call(t, "PUT", u+"?update", `{"limit":3}`); s != 200 {
		t.Fatalf("update: %d %s", s, b)
	}
	s, b = call(t, "POST", u+"/acquire", `{"holder":"h1","ttl":"15s"}`)
	lease := decodeBody[leaseResponse](t, b)
	if s != 200 || lease.Token == 0 || lease.ExpiresAt != "2025-01-02T03:04:20Z" {
		t.Fatalf("acquire: %d %s", s, b)
	}
	s, b = call(t, "POST", u+"/acquire", `{"holder":"h1","ttl":"30s"}`)
	if again := decodeBody[leaseResponse](t, b); s != 200 || again.Token != lease.Token || again.ExpiresAt != "2025-01-02T03:04:35Z" {
		t.Fatalf("acquire again: %d %s, want token %d renewed", s, b, lease.Token)
	}
	n.advance(5 * time.Second)
	s, b = call(t, "POST", u+"/renew", `{"holder":"h1","ttl":"1m"}`)
	if r := decodeBody[leaseResponse](t, b); s != 200 || r.Token != lease.Token || r.ExpiresAt != "2025-01-02T03:05:10Z" {
		t.Fatalf("renew: %d %s", s, b)
	}
	s, b = call(t, "GET", u, "")
	info := decodeBody[semaphoreJSON](t, b)
	if s != 200 || info.Name != "jobs" || info.Limit != 3 || info.Active != 1 || info.Waiting != 0 ||
		len(info.Holders) != 1 || info.Holders[0] != (holderJSON{Holder: "h1", Token: lease.Token, ExpiresAt: "2025-01-02T03:05:10Z"}) {
		t.Fatalf("info: %d %s", s, b)
	}
	call(t, "PUT", srv.URL+"/v1/semaphores/alpha", `{"limit":1}`)
	s, b = call(t, "GET", srv.URL+"/v1/semaphores", "")
	list := decodeBody[struct{ Semaphores []semaphoreSummary }](t, b)
	if s != 200 || len(list.Semaphores) != 2 || list.Semaphores[0].Name != "alpha" || list.Semaphores[1] != (semaphoreSummary{Name: "jobs", Limit: 3, Active: 1}) {
		t.Fatalf("list: %d %s", s, b)
	}
	if s, b = call(t, "POST", u+"/release", `{"holder":"h1"}`); s != 200 || !strings.Contains(b, `"released":true`) {
		t.Fatalf("release: %d %s", s, b)
	}
	s, b = call(t, "POST", u+"/release", `{"holder":"h1"}`)
	wantError(t, "release again", s, b, 404, "not_holder")
	s, b = call(t, "POST", u+"/renew", `{"holder":"h1","ttl":"1m"}`)
	wantError(t, "renew after release", s, b, 404, "not_holder")
	if s, b = call(t, "DELETE", u, ""); s != 200 {
		t.Fatalf("delete: %d %s", s, b)
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", "", ""}, {"DELETE", "", ""},
		{"POST", "/acquire", `{"holder":"h","ttl":"1s"}`},
		{"POST", "/release", `{"holder":"h"}`},
		{"POST", "/renew", `{"holder":"h","ttl":"1s"}`},
	} {
		s, b = call(t, c.method, u+c.path, c.body)
		wantError(t, c.method+" "+c.path+" of a deleted semaphore", s, b, 404, "semaphore_not_found")
	}
	s, b = call(t, "POST", u+"/acquire", `{"holder":"h","ttl":"1s","create_limit":4}`)
	if s != 200 {
		t.Fatalf("acquire with create_limit: %d %s", s, b)
	}
	s, b = call(t, "POST", u+"/acquire", `{"holder":"g","ttl":"1s","create_limit":5}`)
	wantError(t, "acquire with another create_limit", s, b, 409, "limit_conflict")
	if got := moduletest.MetricValue(t, n.reg, "shoal_locks_acquires_total", "result", "granted"); got != 3 {
		t.Fatalf("acquires_total{granted} = %v, want 3", got)
	}
}

func TestHTTP_BadInputs(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxWait = time.Minute
	n := newTestNode(t, cfg)
	srv := n.serve(t)
	call(t, "PUT", srv.URL+"/v1/semaphores/s", `{"limit":1}`)
	huge := strings.Repeat("h", 257)
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"limit 0", "PUT", "/v1/semaphores/z", `{"limit":0}`, 400, "invalid_limit"},
		{"limit negative", "PUT", "/v1/semaphores/z", `{"limit":-3}`, 400, "invalid_limit"},
		{"limit missing", "PUT", "/v1/semaphores/z", `{}`, 400, "invalid_limit"},
		{"limit too big", "PUT", "/v1/semaphores/z", `{"limit":1000001}`, 400, "invalid_limit"},
		{"limit not a number", "PUT", "/v1/semaphores/z", `{"limit":"3"}`, 400, "bad_json"},
		{"bad update", "PUT", "/v1/semaphores/z?update=maybe", `{"limit":1}`, 400, "invalid_parameter"},
		{"bad name", "PUT", "/v1/semaphores/a%20b", `{"limit":1}`, 400, "invalid_name"},
		{"long name", "GET", "/v1/semaphores/" + strings.Repeat("n", 129), ``, 400, "invalid_name"},
		{"unknown name", "GET", "/v1/semaphores/nope", ``, 404, "semaphore_not_found"},
		{"acquire unknown", "POST", "/v1/semaphores/nope/acquire", `{"holder":"h","ttl":"1s"}`, 404, "semaphore_not_found"},
		{"negative ttl", "POST", "/v1/semaphores/s/acquire", `{"holder":"h","ttl":"-5s"}`, 400, "invalid_ttl"},
		{"ttl below min", "POST", "/v1/semaphores/s/acquire", `{"holder":"h","ttl":"10ms"}`, 400, "invalid_ttl"},
		{"ttl above max", "POST", "/v1/semaphores/s/acquire", `{"holder":"h","ttl":"25h"}`, 400, "invalid_ttl"},
		{"ttl missing", "POST", "/v1/semaphores/s/acquire", `{"holder":"h"}`, 400, "invalid_ttl"},
		{"ttl not a duration", "POST", "/v1/semaphores/s/acquire", `{"holder":"h","ttl":"soon"}`, 400, "invalid_duration"},
		{"ttl a number", "POST", "/v1/semaphores/s/acquire", `{"holder":"h","ttl":15}`, 400, "invalid_duration"},
		{"ttl no unit", "POST", "/v1/semaphores/s/acquire", `{"holder":"h","ttl":"15"}`, 400, "invalid_duration"},
		{"wait bad", "POST", "/v1/semaphores/s/acquire", `{"holder":"h","ttl":"1s","wait":"5 s"}`, 400, "invalid_duration"},
		{"wait negative", "POST", "/v1/semaphores/s/acquire", `{"holder":"h","ttl":"1s","wait":"-1s"}`, 400, "invalid_wait"},
		{"wait too long", "POST", "/v1/semaphores/s/acquire", `{"holder":"h","ttl":"1s","wait":"2m"}`, 400, "invalid_wait"},
		{"holder empty", "POST", "/v1/semaphores/s/acquire", `{"holder":"","ttl":"1s"}`, 400, "invalid_holder"},
		{"holder missing", "POST", "/v1/semaphores/s/acquire", `{"ttl":"1s"}`, 400, "invalid_holder"},
		{"holder huge", "POST", "/v1/semaphores/s/acquire", `{"holder":"` + huge + `","ttl":"1s"}`, 400, "invalid_holder"},
		{"holder control", "POST", "/v1/semaphores/s/acquire", `{"holder":"a\nb","ttl":"1s"}`, 400, "invalid_holder"},
		{"huge holder release", "POST", "/v1/semaphores/s/release", `{"holder":"` + huge + `"}`, 400, "invalid_holder"},
		{"create_limit 0", "POST", "/v1/semaphores/s/acquire", `{"holder":"h","ttl":"1s","create_limit":0}`, 400, "invalid_limit"},
		{"mode on a semaphore", "POST", "/v1/semaphores/s/acquire", `{"holder":"h","ttl":"1s","mode":"read"}`, 400, "invalid_mode"},
		{"retries negative", "POST", "/v1/semaphores/s/acquire", `{"holder":"h","ttl":"1s","retries":-1}`, 400, "invalid_retry"},
		{"retries too many", "POST", "/v1/semaphores/s/acquire", `{"holder":"h","ttl":"1s","retries":1001}`, 400, "invalid_retry"},
		{"min above max", "POST", "/v1/semaphores/s/acquire", `{"holder":"h","ttl":"1s","min_wait":"2s","max_wait":"1s"}`, 400, "invalid_retry"},
		{"unknown field", "POST", "/v1/semaphores/s/acquire", `{"holder":"h","ttl":"1s","lease":"x"}`, 400, "bad_json"},
		{"not json", "POST", "/v1/semaphores/s/acquire", `{"holder":`, 400, "bad_json"},
		{"release with ttl", "POST", "/v1/semaphores/s/release", `{"holder":"h","ttl":"1s"}`, 400, "bad_json"},
		{"renew bad ttl", "POST", "/v1/semaphores/s/renew", `{"holder":"h","ttl":"0s"}`, 400, "invalid_ttl"},
		{"lock bad mode", "POST", "/v1/locks/l/acquire", `{"holder":"h","ttl":"1s","mode":"exclusive"}`, 400, "invalid_mode"},
		{"lock create_limit", "POST", "/v1/locks/l/acquire", `{"holder":"h","ttl":"1s","create_limit":1}`, 400, "invalid_limit"},
		{"lock release unknown", "POST", "/v1/locks/l/release", `{"holder":"h"}`, 404, "not_holder"},
		{"bad consistent", "GET", "/v1/semaphores?consistent=often", ``, 400, "invalid_parameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, b := call(t, tt.method, srv.URL+tt.path, tt.body)
			wantError(t, tt.name, s, b, tt.status, tt.code)
		})
	}
	if got := n.holders(kindSemaphore, "s"); len(got) != 0 {
		t.Fatalf("a refused request left a holder: %v", got)
	}
}

// waitQueued polls until name has want waiters.
func waitQueued(t *testing.T, n *testNode, k kind, name string, want int) {
	t.Helper()
	testcluster.Eventually(t, 10*time.Second, func() error {
		if got := len(n.queue(k, name)); got != want {
			return fmt.Errorf("%d waiters, want %d", got, want)
		}
		return nil
	})
}

type response struct {
	status int
	body   string
}

// goCall sends a request in the background.
func goCall(t *testing.T, ctx context.Context, method, url, body string) <-chan response {
	ch := make(chan response, 1)
	go func() {
		s, b := callCtx(t, ctx, method, url, body)
		ch <- response{s, b}
	}()
	return ch
}

func recv(t *testing.T, ch <-chan response) response {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatalf("no response")
		return response{}
	}
}

func TestHTTP_BlockingAcquireIsGrantedInOrder(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	u := srv.URL + "/v1/semaphores/s"
	call(t, "PUT", u, `{"limit":1}`)
	call(t, "POST", u+"/acquire", `{"holder":"h0","ttl":"10s"}`)
	var waits []<-chan response
	for i := 1; i <= 3; i++ {
		waits = append(waits, goCall(t, context.Background(), "POST", u+"/acquire", fmt.Sprintf(`{"holder":"w%d","ttl":"10s","wait":"1m"}`, i)))
		waitQueued(t, n, kindSemaphore, "s", i)
	}
	if st := n.locks.Status().(Status); st.WaitingRequests != 3 || st.Waiters != 3 {
		t.Fatalf("status %+v", st)
	}
	prev := "h0"
	var last uint64
	for i, ch := range waits {
		if s, b := call(t, "POST", u+"/release", fmt.Sprintf(`{"holder":%q}`, prev)); s != 200 {
			t.Fatalf("release %s: %d %s", prev, s, b)
		}
		r := recv(t, ch)
		lease := decodeBody[leaseResponse](t, r.body)
		if r.status != 200 || lease.Token <= last {
			t.Fatalf("waiter %d: %d %s (last token %d)", i+1, r.status, r.body, last)
		}
		last = lease.Token
		prev = fmt.Sprint("w", i+1)
		if got := n.holderIDs(kindSemaphore, "s"); !slices.Equal(got, []string{prev}) {
			t.Fatalf("holders %v, want [%s]", got, prev)
		}
	}
	if got := moduletest.MetricValue(t, n.reg, "shoal_locks_wait_seconds"); got != 3 {
		t.Fatalf("wait_seconds samples %v, want 3", got)
	}
}

func TestHTTP_WaitTimesOutWithoutAGhost(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	u := srv.URL + "/v1/semaphores/s"
	call(t, "PUT", u, `{"limit":1}`)
	call(t, "POST", u+"/acquire", `{"holder":"h0","ttl":"10s"}`)
	s, b := call(t, "POST", u+"/acquire", `{"holder":"w","ttl":"10s","wait":"50ms"}`)
	wantError(t, "timed-out wait", s, b, 409, "semaphore_full")
	if q, h := n.queue(kindSemaphore, "s"), n.holderIDs(kindSemaphore, "s"); len(q) != 0 || !slices.Equal(h, []string{"h0"}) {
		t.Fatalf("after the timeout: queue %v, holders %v", q, h)
	}
	call(t, "POST", u+"/release", `{"holder":"h0"}`)
	if h := n.holderIDs(kindSemaphore, "s"); len(h) != 0 {
		t.Fatalf("ghost holder after the release: %v", h)
	}
	if got := moduletest.MetricValue(t, n.reg, "shoal_locks_timeouts_total"); got != 1 {
		t.Fatalf("timeouts_total = %v", got)
	}
}

// TestHTTP_GrantRacingTheCancelIsReleased makes the release that grants
// the waiter commit just before the waiter's cancel.
func TestHTTP_GrantRacingTheCancelIsReleased(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	u := srv.URL + "/v1/semaphores/s"
	call(t, "PUT", u, `{"limit":1}`)
	call(t, "POST", u+"/acquire", `{"holder":"h0","ttl":"10s"}`)
	raced := make(chan bool, 1)
	n.mu.Lock()
	n.before = func(op byte, _ []byte) {
		// The next command after the waiter queued is its cancel.
		if op == opAcquire {
			n.before = func(op byte, _ []byte) {
				raced <- op == opCancel
				n.applyLocked(opRelease, encodeRelease(releaseCmd{kind: kindSemaphore, name: "s", holder: "h0"}))
			}
		}
	}
	n.mu.Unlock()
	s, b := call(t, "POST", u+"/acquire", `{"holder":"w","ttl":"10s","wait":"50ms"}`)
	wantError(t, "wait whose grant raced its cancel", s, b, 409, "semaphore_full")
	if !<-raced {
		t.Fatalf("the release did not run right before the cancel")
	}
	if h, q := n.holderIDs(kindSemaphore, "s"), n.queue(kindSemaphore, "s"); len(h) != 0 || len(q) != 0 {
		t.Fatalf("ghost left: holders %v, queue %v", h, q)
	}
}

func TestHTTP_ClientGoneLeavesNothing(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	u := srv.URL + "/v1/semaphores/s"
	call(t, "PUT", u, `{"limit":1}`)
	call(t, "POST", u+"/acquire", `{"holder":"h0","ttl":"10s"}`)
	ctx, cancel := context.WithCancel(context.Background())
	ch := goCall(t, ctx, "POST", u+"/acquire", `{"holder":"w","ttl":"10s","wait":"1m"}`)
	waitQueued(t, n, kindSemaphore, "s", 1)
	cancel()
	recv(t, ch)
	waitQueued(t, n, kindSemaphore, "s", 0)
	testcluster.Eventually(t, 10*time.Second, func() error {
		if st := n.locks.Status().(Status); st.WaitingRequests != 0 {
			return fmt.Errorf("%d waiting requests", st.WaitingRequests)
		}
		return nil
	})
	call(t, "POST", u+"/release", `{"holder":"h0"}`)
	if h := n.holderIDs(kindSemaphore, "s"); len(h) != 0 {
		t.Fatalf("holder of a gone client: %v", h)
	}
}

func TestHTTP_DeleteFailsWaitersWith410(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	u := srv.URL + "/v1/semaphores/s"
	call(t, "PUT", u, `{"limit":1}`)
	call(t, "POST", u+"/acquire", `{"holder":"h0","ttl":"10s"}`)
	ch := goCall(t, context.Background(), "POST", u+"/acquire", `{"holder":"w","ttl":"10s","wait":"1m"}`)
	waitQueued(t, n, kindSemaphore, "s", 1)
	s, b := call(t, "DELETE", u, "")
	if s != 200 || !strings.Contains(b, `"released":1`) || !strings.Contains(b, `"failed_waiters":1`) {
		t.Fatalf("delete: %d %s", s, b)
	}
	r := recv(t, ch)
	wantError(t, "waiter of a deleted semaphore", r.status, r.body, 410, "semaphore_deleted")
}

func TestHTTP_StopEndsWaitsAndCancelsThem(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	u := srv.URL + "/v1/semaphores/s"
	call(t, "PUT", u, `{"limit":1}`)
	call(t, "POST", u+"/acquire", `{"holder":"h0","ttl":"10s"}`)
	ch := goCall(t, context.Background(), "POST", u+"/acquire", `{"holder":"w","ttl":"10s","wait":"1m"}`)
	waitQueued(t, n, kindSemaphore, "s", 1)
	n.stop()
	r := recv(t, ch)
	wantError(t, "wait during stop", r.status, r.body, 503, "shutting_down")
	if q := n.queue(kindSemaphore, "s"); len(q) != 0 {
		t.Fatalf("queue after stop: %v", q)
	}
	s, b := call(t, "POST", u+"/acquire", `{"holder":"x","ttl":"10s"}`)
	wantError(t, "acquire after stop", s, b, 503, "shutting_down")
}

func TestHTTP_ServerSideRetries(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	u := srv.URL + "/v1/semaphores/s"
	call(t, "PUT", u, `{"limit":1}`)
	call(t, "POST", u+"/acquire", `{"holder":"h0","ttl":"10s"}`)
	before := n.opsApplied(opAcquire)
	s, b := call(t, "POST", u+"/acquire", `{"holder":"w","ttl":"10s","retries":3,"min_wait":"1ms","max_wait":"5ms"}`)
	wantError(t, "retries on a full semaphore", s, b, 409, "semaphore_full")
	if got := n.opsApplied(opAcquire) - before; got != 4 {
		t.Fatalf("%d attempts, want 4 (1 + 3 retries)", got)
	}
	// The holder goes away during the retries: a later attempt succeeds.
	n.mu.Lock()
	n.before = func(op byte, _ []byte) {
		n.before = func(op byte, _ []byte) {
			n.applyLocked(opRelease, encodeRelease(releaseCmd{kind: kindSemaphore, name: "s", holder: "h0"}))
		}
	}
	n.mu.Unlock()
	s, b = call(t, "POST", u+"/acquire", `{"holder":"w","ttl":"10s","retries":5,"min_wait":"1ms","max_wait":"2ms"}`)
	if s != 200 {
		t.Fatalf("retry after the holder left: %d %s", s, b)
	}
}

func TestHTTP_UnknownOutcomeIsCancelled(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	u := srv.URL + "/v1/semaphores/s"
	call(t, "PUT", u, `{"limit":1}`)
	lost := &httpjson.Error{Status: 503, Code: "leadership_lost", Message: "outcome unknown", RetryAfter: time.Second}
	apply := n.raft.ApplyFunc
	n.raft.ApplyFunc = func(ctx context.Context, op byte, payload []byte) (modules.Applied, error) {
		a, err := apply(ctx, op, payload)
		if innerOp(op, payload) == opAcquire && err == nil {
			return modules.Applied{}, lost // committed, but the caller cannot know
		}
		return a, err
	}
	s, b := call(t, "POST", u+"/acquire", `{"holder":"h","ttl":"10s"}`)
	wantError(t, "acquire with an unknown outcome", s, b, 503, "leadership_lost")
	if got := n.opsApplied(opCancel); got != 1 {
		t.Fatalf("%d cancels, want 1", got)
	}
	if h := n.holderIDs(kindSemaphore, "s"); len(h) != 0 {
		t.Fatalf("ghost holder after an unknown outcome: %v", h)
	}
}

func TestHTTP_Locks(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	srv := n.serve(t)
	u := srv.URL + "/v1/locks/cfg"
	s, b := call(t, "GET", u, "")
	if info := decodeBody[lockJSON](t, b); s != 200 || info.Mode != "unlocked" || len(info.Holders) != 0 {
		t.Fatalf("idle lock: %d %s", s, b)
	}
	for _, h := range []string{"r1", "r2"} {
		if s, b := call(t, "POST", u+"/acquire", fmt.Sprintf(`{"holder":%q,"mode":"read","ttl":"10s"}`, h)); s != 200 {
			t.Fatalf("read acquire %s: %d %s", h, s, b)
		}
	}
	s, b = call(t, "POST", u+"/acquire", `{"holder":"w","ttl":"10s"}`)
	wantError(t, "writer while readers hold", s, b, 409, "lock_busy")
	ch := goCall(t, context.Background(), "POST", u+"/acquire", `{"holder":"w","mode":"write","ttl":"10s","wait":"1m"}`)
	waitQueued(t, n, kindLock, "cfg", 1)
	s, b = call(t, "POST", u+"/acquire", `{"holder":"r3","mode":"read","ttl":"10s"}`)
	wantError(t, "reader behind a waiting writer", s, b, 409, "lock_busy")
	s, b = call(t, "GET", u, "")
	if info := decodeBody[lockJSON](t, b); s != 200 || info.Mode != "read" || info.Active != 2 || info.Waiting != 1 || info.Holders[0].Mode != "read" {
		t.Fatalf("read-held lock: %s", b)
	}
	call(t, "POST", u+"/release", `{"holder":"r1"}`)
	call(t, "POST", u+"/release", `{"holder":"r2"}`)
	if r := recv(t, ch); r.status != 200 {
		t.Fatalf("writer: %d %s", r.status, r.body)
	}
	s, b = call(t, "GET", srv.URL+"/v1/locks", "")
	if list := decodeBody[struct{ Locks []lockSummary }](t, b); s != 200 || len(list.Locks) != 1 || list.Locks[0] != (lockSummary{Name: "cfg", Mode: "write", Active: 1}) {
		t.Fatalf("list: %d %s", s, b)
	}
	s, b = call(t, "POST", u+"/acquire", `{"holder":"w","mode":"read","ttl":"10s"}`)
	wantError(t, "writer asks for read", s, b, 409, "mode_conflict")
	if s, b = call(t, "POST", u+"/renew", `{"holder":"w","ttl":"20s"}`); s != 200 {
		t.Fatalf("renew: %d %s", s, b)
	}
	call(t, "POST", u+"/release", `{"holder":"w"}`)
	s, b = call(t, "GET", srv.URL+"/v1/locks", "")
	if s != 200 || !strings.Contains(b, `"locks":[]`) {
		t.Fatalf("list after release: %d %s", s, b)
	}
}
