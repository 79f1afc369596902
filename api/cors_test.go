package api_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"shoal/internal/agent"
	"shoal/internal/testcluster"
)

// TestBrowsers checks what a page in a browser can and cannot do: a page
// on an allowed origin gets its preflight answered and reads and writes
// with the token; a page on any other origin cannot write, whatever
// Content-Type (or none) it sends, and the write never reaches the log;
// tools that are not browsers are unaffected; an EventSource carries the
// token in the query, which nothing else may.
func TestBrowsers(t *testing.T) {
	const token, allowed, evil = "s3cret", "https://console.example", "https://evil.example"
	c := testcluster.New(t, 1, testcluster.WithModules("log"), testcluster.WithToken(token),
		testcluster.WithConfig(func(i int, cfg *agent.Config) { cfg.CORSOrigins = []string{allowed} }))
	url := c.Leader().URL()
	auth := http.Header{"Authorization": {"Bearer " + token}}
	with := func(h http.Header, kv ...string) http.Header {
		out := h.Clone()
		if out == nil {
			out = http.Header{}
		}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}

	// Preflights.
	r := call(t, http.MethodOptions, url+"/v1/logs/orders", "", http.Header{"Origin": {allowed}, "Access-Control-Request-Method": {"POST"},
		"Access-Control-Request-Headers": {"authorization,content-type"}})
	if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != allowed ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") || !strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight from an allowed origin: %v %v", r, r.header)
	}
	wantError(t, call(t, http.MethodOptions, url+"/v1/logs/orders", "", http.Header{"Origin": {evil}, "Access-Control-Request-Method": {"POST"}}),
		http.StatusForbidden, "origin_not_allowed")

	// Writes from another origin, the ways a page can send them without
	// a preflight, are refused before the handler (and so before auth).
	for name, h := range map[string]http.Header{
		"fetch, no Content-Type":       {"Origin": {evil}, "Sec-Fetch-Site": {"cross-site"}},
		"form post":                    {"Origin": {evil}, "Content-Type": {"application/x-www-form-urlencoded"}},
		"no-cors text/plain":           {"Origin": {evil}, "Sec-Fetch-Site": {"cross-site"}, "Sec-Fetch-Mode": {"no-cors"}, "Content-Type": {"text/plain"}},
		"with a stolen-looking header": with(auth, "Origin", evil, "Sec-Fetch-Site", "cross-site", "Content-Type", "application/json"),
	} {
		t.Run(name, func(t *testing.T) {
			wantError(t, call(t, http.MethodPost, url+"/v1/logs/orders", `{"id":"evil","data":1}`, h), http.StatusForbidden, "origin_not_allowed")
		})
	}
	wantError(t, call(t, http.MethodGet, url+"/v1/logs/orders", "", auth), http.StatusNotFound, "log_not_found")

	// The allowed origin writes and reads, and may read the answers.
	r = call(t, http.MethodPost, url+"/v1/logs/orders", `{"id":"ok","data":1}`,
		with(auth, "Origin", allowed, "Sec-Fetch-Site", "cross-site", "Content-Type", "application/json"))
	if r.status != http.StatusCreated && r.status != http.StatusOK || r.header.Get("Access-Control-Allow-Origin") != allowed {
		t.Fatalf("a write from the allowed origin: %v %v", r, r.header)
	}
	// Not a browser (curl, the CLI): as before.
	if r := call(t, http.MethodPost, url+"/v1/logs/orders", `{"id":"curl","data":2}`, auth); r.status >= 300 {
		t.Fatalf("a write from curl: %v", r)
	}
	// A GET from another origin is served (it changes nothing) but gets
	// no CORS header, so the browser keeps the answer from the page.
	if r := call(t, http.MethodGet, url+"/v1/logs/orders", "", with(auth, "Origin", evil)); r.status != http.StatusOK || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("a read from another origin: %v %v", r, r.header)
	}

	// ?token= opens an EventSource, and nothing else.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/logs/orders/stream?from=1&token="+token, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("an EventSource with ?token=: %d", resp.StatusCode)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	if err != nil || line == "" {
		t.Fatalf("the stream sent nothing: %v", err)
	}
	wantError(t, call(t, http.MethodGet, url+"/v1/logs/orders?token="+token, "", nil), http.StatusUnauthorized, "unauthorized")
	wantError(t, call(t, http.MethodPost, url+"/v1/logs/orders?token="+token, `{"id":"q","data":1}`, nil), http.StatusUnauthorized, "unauthorized")
}

// TestBrowsers_WebSocketOrigins: a WebSocket is not subject to CORS, so
// the API checks a handshake's Origin itself, against the same list: a
// page of the node's own origin or of --cors-origins opens the objects
// websocket; any other page is refused before the hub.
func TestBrowsers_WebSocketOrigins(t *testing.T) {
	const token, allowed, evil = "s3cret", "https://console.example", "https://evil.example"
	c := testcluster.New(t, 1, testcluster.WithModules("objectsync"), testcluster.WithToken(token),
		testcluster.WithConfig(func(i int, cfg *agent.Config) { cfg.CORSOrigins = []string{allowed} }))
	url := c.Leader().URL()
	handshake := func(origin string) response {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/objects/ws?token="+token, nil)
		req.Header = http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-WebSocket-Version": {"13"},
			"Sec-WebSocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Sec-WebSocket-Protocol": {"shoal.objects.v1"}}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("handshake from %q: %v", origin, err)
		}
		defer resp.Body.Close() // after a 101 it is the connection: closing ends it
		r := response{status: resp.StatusCode, header: resp.Header}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			r.body, _ = io.ReadAll(resp.Body)
		}
		return r
	}
	for _, origin := range []string{allowed, url, ""} { // url: a page of the node itself
		if r := handshake(origin); r.status != http.StatusSwitchingProtocols {
			t.Errorf("a handshake from %q: got %v, want 101", origin, r)
		}
	}
	wantError(t, handshake(evil), http.StatusForbidden, "origin_not_allowed")
}
