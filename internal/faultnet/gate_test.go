package faultnet

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func dial(t *testing.T, g *Gate, addr string) (net.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return g.DialContext(ctx, "tcp", addr)
}

func TestGate_DialRefusesBlockedAndAllowsOthers(t *testing.T) {
	a, b := echoServer(t), echoServer(t)
	g := NewGate()
	g.Block(a)

	if !g.Blocked(a) {
		t.Fatalf("Blocked(%s) = false, want true", a)
	}
	if _, err := dial(t, g, a); !errors.Is(err, ErrBlocked) {
		t.Fatalf("dial blocked %s: got %v, want ErrBlocked", a, err)
	}
	c, err := dial(t, g, b)
	if err != nil {
		t.Fatalf("dial unblocked %s: %v", b, err)
	}
	defer c.Close()
	if err := roundTrip(c, "hello"); err != nil {
		t.Fatalf("round trip to %s: %v", b, err)
	}
}

func TestGate_BlockKillsOpenConn(t *testing.T) {
	a, b := echoServer(t), echoServer(t)
	g := NewGate()
	ca, err := dial(t, g, a)
	if err != nil {
		t.Fatalf("dial %s: %v", a, err)
	}
	defer ca.Close()
	cb, err := dial(t, g, b)
	if err != nil {
		t.Fatalf("dial %s: %v", b, err)
	}
	defer cb.Close()
	if err := roundTrip(ca, "ping"); err != nil {
		t.Fatalf("round trip before block: %v", err)
	}

	// A Read pending when Block happens must return promptly.
	readErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 1)
		_ = ca.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := ca.Read(buf)
		readErr <- err
	}()
	g.Block(a)
	select {
	case err := <-readErr:
		if !errors.Is(err, ErrBlocked) {
			t.Fatalf("pending read: got %v, want ErrBlocked", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pending read not interrupted by Block")
	}
	if _, err := ca.Write([]byte("x")); !errors.Is(err, ErrBlocked) {
		t.Fatalf("write after block: got %v, want ErrBlocked", err)
	}
	var opErr *net.OpError
	if _, err := ca.Read(make([]byte, 1)); !errors.As(err, &opErr) || !errors.Is(err, ErrBlocked) {
		t.Fatalf("read after block: got %v, want *net.OpError wrapping ErrBlocked", err)
	}
	// The conn to the other address is untouched.
	if err := roundTrip(cb, "still here"); err != nil {
		t.Fatalf("round trip to unblocked %s: %v", b, err)
	}
}

func TestGate_UnblockAndHealRestoreDialing(t *testing.T) {
	a, b := echoServer(t), echoServer(t)
	tests := []struct {
		name    string
		restore func(g *Gate)
	}{
		{"unblock", func(g *Gate) { g.Unblock(a) }},
		{"heal", func(g *Gate) { g.Heal() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGate()
			g.Block(a, b)
			if _, err := dial(t, g, a); !errors.Is(err, ErrBlocked) {
				t.Fatalf("dial while blocked: got %v, want ErrBlocked", err)
			}
			tt.restore(g)
			if g.Blocked(a) {
				t.Fatalf("Blocked(%s) = true after %s", a, tt.name)
			}
			c, err := dial(t, g, a)
			if err != nil {
				t.Fatalf("dial after %s: %v", tt.name, err)
			}
			defer c.Close()
			if err := roundTrip(c, "back"); err != nil {
				t.Fatalf("round trip after %s: %v", tt.name, err)
			}
		})
	}
}

func TestGate_NilPassesEverything(t *testing.T) {
	a := echoServer(t)
	var g *Gate
	g.Block(a)
	g.Unblock(a)
	g.Block(a)
	g.Heal()
	g.Block(a)
	if g.Blocked(a) {
		t.Fatalf("nil gate: Blocked(%s) = true, want false", a)
	}
	c, err := dial(t, g, a)
	if err != nil {
		t.Fatalf("nil gate dial: %v", err)
	}
	defer c.Close()
	if err := roundTrip(c, "nil"); err != nil {
		t.Fatalf("nil gate round trip: %v", err)
	}
}

func TestGate_CloseStopsTracking(t *testing.T) {
	a := echoServer(t)
	g := NewGate()
	c, err := dial(t, g, a)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if got := g.tracked(); got != 1 {
		t.Fatalf("tracked after dial = %d, want 1", got)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := g.tracked(); got != 0 {
		t.Fatalf("tracked after close = %d, want 0", got)
	}
	// Closing a conn severed by Block must not panic or double-count.
	c, err = dial(t, g, a)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	g.Block(a)
	_ = c.Close()
	if got := g.tracked(); got != 0 {
		t.Fatalf("tracked after block and close = %d, want 0", got)
	}
}

func TestGate_NormalizesAddresses(t *testing.T) {
	tests := []struct {
		block, query string
		want         bool
	}{
		{"127.0.0.1:7000", "127.0.0.1:7000", true},
		{"127.0.0.1:7000", "[::ffff:127.0.0.1]:7000", true},
		{"[::1]:7000", "[0:0:0:0:0:0:0:1]:7000", true},
		{"Node-A:7000", "node-a:7000", true},
		{"127.0.0.1:7000", "127.0.0.1:7001", false},
		{"localhost:7000", "127.0.0.1:7000", false}, // names are never resolved
	}
	for _, tt := range tests {
		g := NewGate()
		g.Block(tt.block)
		if got := g.Blocked(tt.query); got != tt.want {
			t.Errorf("Block(%q); Blocked(%q) = %v, want %v", tt.block, tt.query, got, tt.want)
		}
	}
}

func TestGate_HTTPTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	g := NewGate()
	tr := &http.Transport{DialContext: g.DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	get := func() error {
		resp, err := client.Get(srv.URL)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	if err := get(); err != nil {
		t.Fatalf("get before block: %v", err)
	}
	g.Block(addr)
	if err := get(); !errors.Is(err, ErrBlocked) {
		t.Fatalf("get while blocked: got %v, want ErrBlocked", err)
	}
	g.Heal()
	if err := get(); err != nil {
		t.Fatalf("get after heal: %v", err)
	}
}
