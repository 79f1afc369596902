package ws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"shoal/internal/httpjson"
	"shoal/internal/testlog"
)

const testProtocol = "shoal.test.v1"

// batchProtocol is the tests' BatchSubprotocol (batchConfig).
const batchProtocol = "shoal.test.v1.batch"

// testConfig is DefaultConfig with the test subprotocol, a close timeout
// short enough for a failing test to fail soon, and the keepalive out of
// the way (tests of it set their own).
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Subprotocol = testProtocol
	cfg.CloseTimeout = 2 * time.Second
	cfg.PingInterval = time.Hour
	cfg.MetricPrefix = "shoal_test_ws"
	return cfg
}

// batchConfig is testConfig with batchProtocol as the BatchSubprotocol.
func batchConfig() Config {
	cfg := testConfig()
	cfg.BatchSubprotocol = batchProtocol
	return cfg
}

// server is a hub behind a real HTTP server, on 127.0.0.1:0.
type server struct {
	hub      *Hub
	srv      *httptest.Server
	reg      *prometheus.Registry
	url      string     // ws://.../ws
	accepted chan *Conn // every connection Accept returned
}

// newServer starts a hub with cfg (its logger and registry filled in)
// whose handler accepts every request on /ws with opts. Cleanup stops the
// hub, then the server.
func newServer(t *testing.T, cfg Config, opts AcceptOptions) *server {
	t.Helper()
	return startServer(t, cfg, opts, false)
}

// newTLSServer is newServer over TLS (wss://; the client of s.srv trusts
// its certificate): a connection without non-blocking writes.
func newTLSServer(t *testing.T, cfg Config, opts AcceptOptions) *server {
	t.Helper()
	return startServer(t, cfg, opts, true)
}

func startServer(t *testing.T, cfg Config, opts AcceptOptions, useTLS bool) *server {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := &server{reg: prometheus.NewRegistry(), accepted: make(chan *Conn, 64)}
	cfg.Logger, cfg.Registerer = logger, s.reg
	hub, err := NewHub(cfg)
	if err != nil {
		t.Fatalf("new hub: %v", err)
	}
	s.hub = hub
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := hub.Accept(w, r, opts)
		if err != nil {
			return // Accept answered
		}
		s.accepted <- c
	})
	if useTLS {
		s.srv = httptest.NewTLSServer(mux)
	} else {
		s.srv = httptest.NewServer(mux)
	}
	s.url = "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/ws"
	t.Cleanup(s.srv.Close)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hub.Stop(ctx); err != nil {
			t.Errorf("stop hub: %v", err)
		}
	})
	return s
}

// next returns the next connection the server accepted.
func (s *server) next(t *testing.T) *Conn {
	t.Helper()
	select {
	case c := <-s.accepted:
		return c
	case <-time.After(10 * time.Second):
		t.Fatalf("no connection accepted within 10s")
		return nil
	}
}

// client is a real websocket client (coder/websocket's Dial).
type client struct {
	ws   *websocket.Conn
	msgs chan []byte   // messages read, when reading
	err  error         // why reading stopped, once done is closed
	done chan struct{} // closed when the read loop ends
	once sync.Once
}

// dial connects to s offering protocols, and fails the test if it cannot.
// The client does not read until read is called.
func dial(t *testing.T, s *server, protocols ...string) *client {
	t.Helper()
	ws, resp, err := dialRaw(t, s, protocols...)
	if err != nil {
		t.Fatalf("dial: %v (response %v)", err, resp)
	}
	ws.SetReadLimit(-1)
	c := &client{ws: ws, msgs: make(chan []byte, 4096), done: make(chan struct{})}
	t.Cleanup(func() {
		_ = ws.CloseNow()
		c.once.Do(func() { close(c.done) }) // never read: nothing to wait for
		<-c.done
	})
	return c
}

// dialRaw dials s; the caller owns what it returns.
func dialRaw(t *testing.T, s *server, protocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return websocket.Dial(ctx, s.url, &websocket.DialOptions{HTTPClient: s.srv.Client(), Subprotocols: protocols})
}

// read starts the client's read loop, which answers pings and the close
// handshake and collects messages until the connection ends.
func (c *client) read() {
	c.once.Do(func() {
		go func() {
			defer close(c.done)
			for {
				_, msg, err := c.ws.Read(context.Background())
				if err != nil {
					c.err = err
					return
				}
				c.msgs <- msg
			}
		}()
	})
}

// receive returns the client's next message.
func (c *client) receive(t *testing.T) []byte {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-c.done:
		t.Fatalf("connection ended while waiting for a message: %v", c.err)
	case <-time.After(10 * time.Second):
		t.Fatalf("no message within 10s")
	}
	return nil
}

// receiveInOrder receives messages until it has had frames 0 to n-1 (see
// frame and seq), in order, and fails the test otherwise; a message may
// hold several, one per line (a batching connection). It returns how many
// messages there were, and how many held more than one frame.
func (c *client) receiveInOrder(t *testing.T, n int) (messages, joined int) {
	t.Helper()
	for got := 0; got < n; {
		lines := strings.Split(string(c.receive(t)), "\n")
		messages++
		if len(lines) > 1 {
			joined++
		}
		for _, l := range lines {
			if s := seq([]byte(l)); s != got {
				t.Fatalf("got frame %d (%.6q), want %d", s, l, got)
			}
			got++
		}
	}
	return messages, joined
}

// closed waits for the client's read loop to end and returns the close
// status and reason the server sent.
func (c *client) closed(t *testing.T) (StatusCode, string) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("connection not closed within 10s")
	}
	var ce websocket.CloseError
	if !errors.As(c.err, &ce) {
		t.Fatalf("got read error %v, want a close frame", c.err)
	}
	return ce.Code, ce.Reason
}

// write sends a text message from the client.
func (c *client) write(t *testing.T, typ websocket.MessageType, msg []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, typ, msg); err != nil {
		t.Fatalf("client write: %v", err)
	}
}

// eventually polls f until it returns nil, failing the test with f's last
// error when timeout passes. (testcluster has the same helper; importing
// it here would tie this leaf package to the whole agent.)
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v: %v", timeout, err)
		}
		time.Sleep(wait) // polling interval, not a wait for an event
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}

// closesWith waits until the hub counted want closes with reason.
func (s *server) closesWith(t *testing.T, reason string, want float64) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		if got := testutil.ToFloat64(s.hub.m.closes.WithLabelValues(reason)); got != want {
			return fmt.Errorf("got %v closes with reason %s, want %v", got, reason, want)
		}
		return nil
	})
}

// wantJSONError checks that resp is the API's JSON error with status and
// code, and returns it.
func wantJSONError(t *testing.T, resp *http.Response, status int, code string) *httpjson.Error {
	t.Helper()
	if resp == nil {
		t.Fatalf("got no response, want %d %s", status, code)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != status {
		t.Fatalf("got status %d (%s), want %d", resp.StatusCode, body, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("got Content-Type %q, want application/json", ct)
	}
	var shape map[string]map[string]any
	if err := json.Unmarshal(body, &shape); err != nil || shape["error"] == nil {
		t.Fatalf("body %q is not the JSON error shape: %v", body, err)
	}
	e := httpjson.ReadError(resp.StatusCode, body)
	if e.Code != code {
		t.Fatalf("got code %q (%s), want %q", e.Code, e.Message, code)
	}
	return e
}
