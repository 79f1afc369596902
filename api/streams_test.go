package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"shoal/internal/agent"
	"shoal/internal/moduletest"
	"shoal/internal/testcluster"
)

// TestStreams_Limits: a client may hold --http-max-streams-per-client
// event streams on a node, and the node --http-max-streams in all; one
// more is refused with 429 too_many_streams (and counted), and a closed
// stream frees its slot.
func TestStreams_Limits(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.WithModules("log"), testcluster.WithConfig(func(i int, cfg *agent.Config) {
		cfg.MaxStreams, cfg.MaxStreamsPerClient = 3, 2
	}))
	url := c.Leader().URL()
	if r := call(t, http.MethodPost, url+"/v1/logs/orders", `{"id":"a","data":1}`, nil); r.status >= 300 {
		t.Fatalf("publish: %v", r)
	}
	open := func(token string) (*http.Response, context.CancelFunc) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/logs/orders/stream?from=1", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token) // no token is configured: it only names the client
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		return resp, func() { resp.Body.Close(); cancel() }
	}
	want := func(resp *http.Response, status int) {
		t.Helper()
		if resp.StatusCode != status {
			t.Fatalf("got %d, want %d", resp.StatusCode, status)
		}
	}
	r1, close1 := open("")
	defer close1()
	want(r1, http.StatusOK)
	r2, close2 := open("")
	defer close2()
	want(r2, http.StatusOK)
	// A third from the same client (address): refused.
	r3, close3 := open("")
	want(r3, http.StatusTooManyRequests)
	if r3.Header.Get("Retry-After") == "" {
		t.Fatalf("a refused stream has no Retry-After")
	}
	close3()
	// Another client gets one more, up to the node's 3.
	r4, close4 := open("other-client")
	defer close4()
	want(r4, http.StatusOK)
	r5, close5 := open("third-client")
	want(r5, http.StatusTooManyRequests)
	close5()
	// A closed stream frees its slot.
	close1()
	testcluster.Eventually(t, 10*time.Second, func() error {
		r, cl := open("third-client")
		defer cl()
		if r.StatusCode != http.StatusOK {
			return errStatus(r.StatusCode)
		}
		return nil
	})
	reg := c.Leader().Agent().Registry()
	if moduletest.MetricValue(t, reg, "shoal_http_streams_refused_total", "scope", "client") < 1 ||
		moduletest.MetricValue(t, reg, "shoal_http_streams_refused_total", "scope", "node") < 1 {
		t.Fatalf("refusals not counted")
	}
}

type errStatus int

func (e errStatus) Error() string { return http.StatusText(int(e)) }
