package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
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

// Websockets count against the same limits as event streams: a client
// with two streams open gets no third, websocket or not, and another
// client still does; closing one frees its slot.
func TestStreams_WebsocketsShareTheLimits(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.WithModules("objectsync"), testcluster.WithConfig(func(i int, cfg *agent.Config) {
		cfg.MaxStreams, cfg.MaxStreamsPerClient = 10, 2
	}))
	url := c.Leader().URL()
	dial := func(client string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, url+"/v1/objects/ws", nil)
		req.Header = http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-WebSocket-Version": {"13"},
			"Sec-WebSocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Sec-WebSocket-Protocol": {"shoal.objects.v1"},
			"Authorization": {"Bearer " + client}} // no token configured: the header only names the client
		return http.DefaultClient.Do(req)
	}
	var open []*http.Response
	defer func() {
		for _, r := range open {
			r.Body.Close()
		}
	}()
	for i := range 2 {
		r, err := dial("a")
		if err != nil || r.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("websocket %d of client a: %v %v", i, r, err)
		}
		open = append(open, r)
	}
	r, err := dial("a")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(b), "too_many_streams") {
		t.Fatalf("a third websocket of client a: %d %s", r.StatusCode, b)
	}
	if r, err := dial("b"); err != nil || r.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("client b: %v %v", r, err)
	} else {
		open = append(open, r)
	}
	open[0].Body.Close() // client a closes one
	testcluster.Eventually(t, 10*time.Second, func() error {
		r, err := dial("a")
		if err != nil {
			return err
		}
		if r.StatusCode != http.StatusSwitchingProtocols {
			r.Body.Close()
			return fmt.Errorf("after a close: %d", r.StatusCode)
		}
		open = append(open, r)
		return nil
	})
}
