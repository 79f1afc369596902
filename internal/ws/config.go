package ws

import (
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrInvalidConfig is wrapped by every error Config.Validate returns.
var ErrInvalidConfig = errors.New("invalid websocket hub config")

// Config is a Hub's configuration. DefaultConfig holds the defaults; the
// caller sets Subprotocol (and, with a Registerer, MetricPrefix).
type Config struct {
	// Subprotocol is the one websocket subprotocol the hub speaks, such as
	// "shoal.objects.v1". A client must offer it in Sec-WebSocket-Protocol
	// (matched exactly, case included); one that does not is refused with
	// 400 subprotocol_required before the upgrade. It must be an HTTP
	// token (RFC 9110): letters, digits and !#$%&'*+-.^_`|~.
	Subprotocol string
	// BatchSubprotocol, if set, is a second subprotocol the hub speaks,
	// preferred when a client offers both: the same messages, but the
	// frames that wait in a connection's queue together (a client or a
	// machine slower than the changes) go out as one text message, one
	// frame per line, so that a busy connection costs one write for
	// several frames instead of one each. Frames must then never hold a
	// raw newline (compact JSON never does). Same rules as Subprotocol.
	BatchSubprotocol string
	// BatchInterval is the shortest time between the starts of two
	// writes to a connection (0: none): a frame queued sooner after the
	// previous write waits for the rest of the interval, and the frames
	// queued meanwhile go out with it, in one system call (one message on
	// a connection of the BatchSubprotocol). A frame that finds the
	// connection quiet for longer goes out at once, as does a queue that
	// fills to half meanwhile (no overflow for pacing's sake), so the
	// interval costs latency only on a connection that receives more than
	// one frame per interval, and saves a write system call (the larger
	// part of a delivery's cost) for each frame it joins.
	BatchInterval time.Duration
	// MaxConns is how many connections the hub holds open at once,
	// upgrades in progress included. One more is refused with 503
	// too_many_connections and Retry-After.
	MaxConns int
	// MaxMessageBytes is the largest inbound message; a bigger one closes
	// the connection with 1009 (message too big).
	MaxMessageBytes int64
	// SendQueue is how many frames may wait for a connection's writer;
	// Send refuses a frame that does not fit (ErrQueueFull).
	SendQueue int
	// FlowWindow bounds the bytes written to a client that it has not
	// shown it read (0: no bound). Socket buffers hold megabytes, so a
	// client that reads more slowly than it is sent to would otherwise
	// fall behind without bound while its queue stays empty. Once half
	// the window is out, the writer pings; the pong comes back after the
	// client has read everything before the ping, and acknowledges it.
	// With a whole window unacknowledged the writer waits, frames queue,
	// and a full queue is the caller's to handle (Replace).
	FlowWindow int64
	// WriteTimeout bounds a write round (what the writer took off the
	// queue at once: at most 32 KiB, or one larger frame): a client that
	// does not read it in that long is disconnected, after between one and
	// one and a quarter of it (the hub's write watchdog looks every
	// quarter).
	WriteTimeout time.Duration
	// PingInterval is how often a connection is pinged, and PingTimeout
	// how long its pong may take; a connection without a pong in time is
	// closed as dead. The pong is read by the read loop, so a message
	// handler that blocks for longer than PingTimeout gets its own
	// connection closed.
	PingInterval time.Duration
	PingTimeout  time.Duration
	// CloseTimeout bounds the close handshake (our close frame out, the
	// peer's back) and a write in flight when a close is asked for; then
	// the TCP connection is closed regardless.
	CloseTimeout time.Duration
	// RetryAfter is sent as Retry-After with the 503 a full hub answers.
	RetryAfter time.Duration
	// OriginPatterns are the cross-origin hosts allowed to connect, as
	// path.Match patterns matched against the Origin header's host (or
	// "scheme://host" if a pattern has "://"). A request from the same
	// host, or with no Origin (not a browser), is always allowed.
	OriginPatterns []string
	// MetricPrefix starts every metric name, such as
	// "shoal_objectsync_ws"; required when Registerer is set.
	MetricPrefix string
	// Logger receives the hub's logs (connections opened and closed at
	// debug, failing handlers at warn; never message contents); nil
	// discards them.
	Logger *slog.Logger
	// Registerer is the node's Prometheus registry (never the default
	// one); nil disables metrics. Stop unregisters what NewHub registered.
	Registerer prometheus.Registerer
}

// DefaultConfig returns the defaults: 1024 connections, 64 KiB messages,
// 256 queued frames per connection, 10 s per write, a ping every 30 s
// answered within 10 s, 5 s to close, Retry-After 5 s.
func DefaultConfig() Config {
	return Config{
		MaxConns:        1024,
		MaxMessageBytes: 64 << 10,
		SendQueue:       256,
		WriteTimeout:    10 * time.Second,
		PingInterval:    30 * time.Second,
		PingTimeout:     10 * time.Second,
		CloseTimeout:    5 * time.Second,
		RetryAfter:      5 * time.Second,
	}
}

// Validate reports the first setting that cannot work, wrapping
// ErrInvalidConfig.
func (c Config) Validate() error {
	if !isToken(c.Subprotocol) {
		return fmt.Errorf("%w: subprotocol %q is not an HTTP token", ErrInvalidConfig, c.Subprotocol)
	}
	if c.BatchSubprotocol != "" && (!isToken(c.BatchSubprotocol) || strings.EqualFold(c.BatchSubprotocol, c.Subprotocol)) {
		return fmt.Errorf("%w: batch subprotocol %q is not an HTTP token other than the subprotocol", ErrInvalidConfig, c.BatchSubprotocol)
	}
	positive := []struct {
		name string
		v    int64
	}{
		{"max conns", int64(c.MaxConns)},
		{"max message bytes", c.MaxMessageBytes},
		{"send queue", int64(c.SendQueue)},
		{"write timeout", int64(c.WriteTimeout)},
		{"ping interval", int64(c.PingInterval)},
		{"ping timeout", int64(c.PingTimeout)},
		{"close timeout", int64(c.CloseTimeout)},
		{"retry after", int64(c.RetryAfter)},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return fmt.Errorf("%w: %s must be positive, got %d", ErrInvalidConfig, p.name, p.v)
		}
	}
	for _, p := range c.OriginPatterns {
		// path.Match checks the whole pattern; coder/websocket would only
		// find a bad one on the first cross-origin request, and log it.
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("%w: origin pattern %q: %w", ErrInvalidConfig, p, err)
		}
	}
	if c.BatchInterval < 0 {
		return fmt.Errorf("%w: batch interval must not be negative, got %s", ErrInvalidConfig, c.BatchInterval)
	}
	if c.FlowWindow < 0 {
		return fmt.Errorf("%w: flow window must not be negative, got %d", ErrInvalidConfig, c.FlowWindow)
	}
	if c.Registerer != nil && !validMetricPrefix(c.MetricPrefix) {
		return fmt.Errorf("%w: metric prefix %q is not a Prometheus metric name", ErrInvalidConfig, c.MetricPrefix)
	}
	return nil
}

// validMetricPrefix reports whether s is a Prometheus metric name without
// colons ([a-zA-Z_][a-zA-Z0-9_]*), which stays one with a suffix added.
func validMetricPrefix(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
