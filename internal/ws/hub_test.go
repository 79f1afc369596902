package ws

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"shoal/internal/httpjson"
)

func TestConfig_Validate(t *testing.T) {
	valid := testConfig()
	tests := []struct {
		name   string
		change func(*Config)
		want   string // substring of the error; "" for valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no subprotocol", func(c *Config) { c.Subprotocol = "" }, "subprotocol"},
		{"subprotocol with a comma", func(c *Config) { c.Subprotocol = "a,b" }, "subprotocol"},
		{"subprotocol with a space", func(c *Config) { c.Subprotocol = "a b" }, "subprotocol"},
		{"batch subprotocol", func(c *Config) { c.BatchSubprotocol = "shoal.test.v2" }, ""},
		{"batch subprotocol with a space", func(c *Config) { c.BatchSubprotocol = "a b" }, "batch subprotocol"},
		{"batch subprotocol the same", func(c *Config) { c.BatchSubprotocol = strings.ToUpper(testProtocol) }, "batch subprotocol"},
		{"zero max conns", func(c *Config) { c.MaxConns = 0 }, "max conns"},
		{"zero max message", func(c *Config) { c.MaxMessageBytes = 0 }, "max message bytes"},
		{"zero send queue", func(c *Config) { c.SendQueue = 0 }, "send queue"},
		{"zero write timeout", func(c *Config) { c.WriteTimeout = 0 }, "write timeout"},
		{"negative ping interval", func(c *Config) { c.PingInterval = -time.Second }, "ping interval"},
		{"zero ping timeout", func(c *Config) { c.PingTimeout = 0 }, "ping timeout"},
		{"zero close timeout", func(c *Config) { c.CloseTimeout = 0 }, "close timeout"},
		{"zero retry after", func(c *Config) { c.RetryAfter = 0 }, "retry after"},
		{"bad origin pattern", func(c *Config) { c.OriginPatterns = []string{"[a-"} }, "origin pattern"},
		{"good origin pattern", func(c *Config) { c.OriginPatterns = []string{"*.example.com"} }, ""},
		{"registry without prefix", func(c *Config) { c.Registerer = prometheus.NewRegistry(); c.MetricPrefix = "" }, "metric prefix"},
		{"registry with a bad prefix", func(c *Config) { c.Registerer = prometheus.NewRegistry(); c.MetricPrefix = "9x" }, "metric prefix"},
		{"registry with a dashed prefix", func(c *Config) { c.Registerer = prometheus.NewRegistry(); c.MetricPrefix = "a-b" }, "metric prefix"},
		{"no registry, no prefix", func(c *Config) { c.MetricPrefix = "" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.change(&cfg)
			err := cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrInvalidConfig about %q", err, tt.want)
			}
		})
	}
	if err := DefaultConfig().Validate(); err == nil {
		t.Fatalf("DefaultConfig without a subprotocol validated; want the caller to name one")
	}
}

func TestNewHub_Metrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := testConfig()
	cfg.Registerer = reg
	hub, err := NewHub(cfg)
	if err != nil {
		t.Fatalf("new hub: %v", err)
	}
	names := []string{"shoal_test_ws_connections", "shoal_test_ws_messages_sent_total", "shoal_test_ws_messages_received_total",
		"shoal_test_ws_frames_dropped_total", "shoal_test_ws_closes_total", "shoal_test_ws_refused_total",
		"shoal_test_ws_writes_total", "shoal_test_ws_writer_starts_total"}
	n, err := testutil.GatherAndCount(reg, names...)
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	// 1 gauge, 4 counters, 3 dropped, 13 close and 7 refusal reasons,
	// all present from the start.
	if want := 1 + 4 + 3 + 13 + 7; n != want {
		t.Fatalf("got %d series, want %d", n, want)
	}
	if _, err := NewHub(cfg); err == nil {
		t.Fatalf("a second hub registered the same names; want an error")
	}
	if err := hub.Stop(context.Background()); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if n, _ := testutil.GatherAndCount(reg); n != 0 {
		t.Fatalf("got %d series after Stop, want none", n)
	}
	again, err := NewHub(cfg)
	if err != nil {
		t.Fatalf("new hub on the same registry after Stop: %v", err)
	}
	if err := again.Stop(context.Background()); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

func TestAccept_Refusals(t *testing.T) {
	cfg := testConfig()
	cfg.OriginPatterns = []string{"allowed.example"}
	s := newServer(t, cfg, AcceptOptions{})
	upgrade := map[string]string{
		"Connection":            "Upgrade",
		"Upgrade":               "websocket",
		"Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key":     "dGhlIHNhbXBsZSBub25jZQ==",
	}
	with := func(extra map[string]string) map[string]string {
		h := map[string]string{}
		for k, v := range upgrade {
			h[k] = v
		}
		for k, v := range extra {
			if v == "" {
				delete(h, k)
			} else {
				h[k] = v
			}
		}
		return h
	}
	tests := []struct {
		name       string
		method     string
		header     map[string]string
		wantStatus int
		wantCode   string
		reason     string // refused metric label
	}{
		{"plain GET", http.MethodGet, nil, 426, "websocket_required", refusedNotWebsocket},
		{"no subprotocol", http.MethodGet, upgrade, 400, "subprotocol_required", refusedSubprotocol},
		{"Connection without Upgrade", http.MethodGet, with(map[string]string{"Sec-WebSocket-Protocol": testProtocol, "Connection": "keep-alive"}), 426, "websocket_required", refusedHandshake},
		{"another subprotocol", http.MethodGet, with(map[string]string{"Sec-WebSocket-Protocol": "chat, shoal.test.v2"}), 400, "subprotocol_required", refusedSubprotocol},
		{"subprotocol in another case", http.MethodGet, with(map[string]string{"Sec-WebSocket-Protocol": "SHOAL.TEST.V1"}), 400, "subprotocol_required", refusedSubprotocol},
		{"old version", http.MethodGet, with(map[string]string{"Sec-WebSocket-Protocol": testProtocol, "Sec-WebSocket-Version": "8"}), 400, "bad_handshake", refusedHandshake},
		{"no key", http.MethodGet, with(map[string]string{"Sec-WebSocket-Protocol": testProtocol, "Sec-WebSocket-Key": ""}), 400, "bad_handshake", refusedHandshake},
		{"POST", http.MethodPost, with(map[string]string{"Sec-WebSocket-Protocol": testProtocol}), 405, "method_not_allowed", refusedHandshake},
		{"foreign origin", http.MethodGet, with(map[string]string{"Sec-WebSocket-Protocol": testProtocol, "Origin": "http://evil.example"}), 403, "origin_forbidden", refusedHandshake},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := testutil.ToFloat64(s.hub.m.refused.WithLabelValues(tt.reason))
			req, err := http.NewRequest(tt.method, s.srv.URL+"/ws", nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := s.srv.Client().Do(req)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			e := wantJSONError(t, resp, tt.wantStatus, tt.wantCode)
			if tt.wantCode == "subprotocol_required" && e.Details["subprotocol"] != testProtocol {
				t.Fatalf("got details %v, want the subprotocol named", e.Details)
			}
			if tt.wantStatus == 426 && resp.Header.Get("Upgrade") != "websocket" {
				t.Fatalf("got Upgrade %q on a 426, want websocket", resp.Header.Get("Upgrade"))
			}
			if got := testutil.ToFloat64(s.hub.m.refused.WithLabelValues(tt.reason)); got != before+1 {
				t.Fatalf("got %v refusals for %s, want %v", got, tt.reason, before+1)
			}
			if n := s.hub.Len(); n != 0 {
				t.Fatalf("got %d open connections, want none", n)
			}
		})
	}
}

func TestAccept_SubprotocolRequired(t *testing.T) {
	s := newServer(t, testConfig(), AcceptOptions{})
	// The real client, offering nothing, then something else.
	for _, offer := range [][]string{nil, {"chat"}} {
		ws, resp, err := dialRaw(t, s, offer...)
		if err == nil {
			_ = ws.CloseNow()
			t.Fatalf("offering %v: got a connection, want a refusal", offer)
		}
		wantJSONError(t, resp, http.StatusBadRequest, "subprotocol_required")
	}
	// Offered among others, it is chosen.
	ws, _, err := dialRaw(t, s, "chat", testProtocol)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer ws.CloseNow()
	if got := ws.Subprotocol(); got != testProtocol {
		t.Fatalf("got subprotocol %q, want %q", got, testProtocol)
	}
	s.next(t)
	if n := len(s.accepted); n != 0 {
		t.Fatalf("got %d more accepted connections, want 1 in all (the refused ones never upgraded)", n)
	}
}

func TestAccept_SubprotocolSpelledTwice(t *testing.T) {
	s := newServer(t, testConfig(), AcceptOptions{})
	// coder/websocket picks the first spelling that matches ignoring case;
	// the hub speaks its own exact name only and closes the connection.
	ws, _, err := dialRaw(t, s, strings.ToUpper(testProtocol), testProtocol)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(-1)
	cl := &client{ws: ws, msgs: make(chan []byte, 1), done: make(chan struct{})}
	t.Cleanup(func() { _ = ws.CloseNow(); <-cl.done })
	cl.read()
	if status, _ := cl.closed(t); status != StatusProtocolError {
		t.Fatalf("got close %d, want 1002", status)
	}
	s.closesWith(t, closedProtocolError, 1)
	if n := s.hub.Len(); n != 0 {
		t.Fatalf("got %d connections, want none", n)
	}
}

func TestHub_MaxConns(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConns = 2
	cfg.RetryAfter = 3 * time.Second
	s := newServer(t, cfg, AcceptOptions{})
	first := dial(t, s, testProtocol)
	first.read()
	second := dial(t, s, testProtocol)
	second.read()

	ws, resp, err := dialRaw(t, s, testProtocol)
	if err == nil {
		_ = ws.CloseNow()
		t.Fatalf("a third connection was accepted; want a refusal")
	}
	e := wantJSONError(t, resp, http.StatusServiceUnavailable, "too_many_connections")
	if !errors.Is(e, ErrFull) {
		t.Fatalf("got %v, want ErrFull", e)
	}
	if got := resp.Header.Get("Retry-After"); got != "3" {
		t.Fatalf("got Retry-After %q, want 3", got)
	}
	if got := testutil.ToFloat64(s.hub.m.refused.WithLabelValues(refusedFull)); got != 1 {
		t.Fatalf("got %v full refusals, want 1", got)
	}

	// A closed connection frees its slot.
	if err := first.ws.Close(StatusNormalClosure, "done"); err != nil {
		t.Fatalf("client close: %v", err)
	}
	eventually(t, 10*time.Second, func() error {
		if n := s.hub.Len(); n != 1 {
			return fmt.Errorf("%d connections open, want 1", n)
		}
		return nil
	})
	third := dial(t, s, testProtocol)
	third.read()
	eventually(t, 10*time.Second, func() error {
		if n := s.hub.Len(); n != 2 {
			return fmt.Errorf("%d connections open, want 2", n)
		}
		return nil
	})
}

func TestHub_Stop(t *testing.T) {
	const n = 3
	started := make(chan struct{}, n)
	cancelled := make(chan error, n)
	var closed atomic.Int32
	s := newServer(t, testConfig(), AcceptOptions{
		OnMessage: func(ctx context.Context, c *Conn, msg []byte) error {
			started <- struct{}{}
			<-ctx.Done()
			cancelled <- context.Cause(ctx)
			return ctx.Err()
		},
		OnClose: func(c *Conn) { closed.Add(1) },
	})
	var clients []*client
	var conns []*Conn
	for range n {
		cl := dial(t, s, testProtocol)
		cl.read()
		cl.write(t, websocket.MessageText, []byte(`{"op":"wait"}`))
		clients = append(clients, cl)
		conns = append(conns, s.next(t))
	}
	for range n {
		<-started
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.hub.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	// Stop returned: everything is over, nothing left to poll for.
	if got := s.hub.Len(); got != 0 {
		t.Fatalf("got %d open connections after Stop, want 0", got)
	}
	if got := closed.Load(); got != n {
		t.Fatalf("OnClose ran %d times, want %d", got, n)
	}
	for i, cl := range clients {
		status, reason := cl.closed(t)
		if status != StatusGoingAway || reason != goingAwayReason {
			t.Fatalf("client %d: got close %d %q, want %d %q", i, status, reason, StatusGoingAway, goingAwayReason)
		}
	}
	for range n {
		var ce *CloseError
		if err := <-cancelled; !errors.As(err, &ce) || ce.Status != StatusGoingAway {
			t.Fatalf("got handler context cause %v, want going away", err)
		}
	}
	for _, c := range conns {
		select {
		case <-c.Done():
		default:
			t.Fatalf("conn %d: Done not closed after Stop", c.ID())
		}
		if err := c.Send([]byte("late")); !errors.Is(err, ErrClosed) {
			t.Fatalf("got %v from Send after Stop, want ErrClosed", err)
		}
	}
	if got := testutil.ToFloat64(s.hub.m.closes.WithLabelValues(closedGoingAway)); got != n {
		t.Fatalf("got %v going-away closes, want %d", got, n)
	}

	ws, resp, err := dialRaw(t, s, testProtocol)
	if err == nil {
		_ = ws.CloseNow()
		t.Fatalf("a connection was accepted after Stop")
	}
	e := wantJSONError(t, resp, http.StatusServiceUnavailable, "shutting_down")
	if !errors.Is(e, httpjson.ErrShuttingDown) || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("got %v (Retry-After %q), want ErrShuttingDown with Retry-After", e, resp.Header.Get("Retry-After"))
	}
}

func TestHub_StopBoundedByContext(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	s := newServer(t, testConfig(), AcceptOptions{
		OnMessage: func(ctx context.Context, c *Conn, msg []byte) error {
			close(entered)
			<-release // ignores ctx: the bug Stop must survive
			return nil
		},
	})
	cl := dial(t, s, testProtocol)
	cl.read()
	cl.write(t, websocket.MessageText, []byte("x"))
	c := s.next(t)
	<-entered

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.hub.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want Stop to give up with the context's error", err)
	}
	if got := s.hub.Len(); got != 1 {
		t.Fatalf("got %d connections, want the stuck one still counted", got)
	}
	close(release)
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("the connection did not end once its handler returned")
	}
	if got := s.hub.Len(); got != 0 {
		t.Fatalf("got %d connections, want 0", got)
	}
}
