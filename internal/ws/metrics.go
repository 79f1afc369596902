package ws

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Why a connection closed: the values of the closes metric's reason
// label, a fixed set.
const (
	closedByCaller      = "closed"             // Conn.Close
	closedGoingAway     = "going_away"         // Hub.Stop
	closedByPeer        = "peer_closed"        // the peer sent a close frame
	closedPeerGone      = "peer_gone"          // the connection broke without one
	closedHandlerError  = "handler_error"      // the message handler returned an error
	closedTooBig        = "message_too_big"    // an inbound message over MaxMessageBytes
	closedBinary        = "unsupported_data"   // a binary message
	closedUnexpected    = "unexpected_message" // a message on a connection without a handler
	closedPingTimeout   = "ping_timeout"       // no pong within PingTimeout
	closedWriteTimeout  = "write_timeout"      // a frame not written within WriteTimeout
	closedWriteFailed   = "write_failed"       // a frame write failed otherwise
	closedProtocolError = "protocol_error"     // the upgrade negotiated something else
	closedRevoked       = "revoked"            // the credential it was opened with was revoked
)

// Why an upgrade was refused: the values of the refused metric's reason
// label.
const (
	refusedNotWebsocket  = "not_websocket"
	refusedSubprotocol   = "no_subprotocol"
	refusedFull          = "full"
	refusedShuttingDown  = "shutting_down"
	refusedHandshake     = "bad_handshake" // coder/websocket refused it (version, key, origin, method)
	refusedNotHijackable = "not_hijackable"
	refusedStreamLimit   = "stream_limit" // the node's or the client's limit of streams and websockets
)

// Why a queued or offered frame was not sent: the values of the dropped
// metric's reason label.
const (
	droppedOverflow = "overflow" // Send found the queue full
	droppedReplaced = "replaced" // discarded by Replace
	droppedClosed   = "closed"   // still queued when the connection closed
)

type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector

	open     prometheus.Gauge
	sent     prometheus.Counter
	received prometheus.Counter
	dropped  *prometheus.CounterVec
	closes   *prometheus.CounterVec
	refused  *prometheus.CounterVec
	// flowWaits counts the writer's waits for a client to read its flow
	// window (Config.FlowWindow).
	flowWaits prometheus.Counter
	// writes counts write rounds (the frames that waited together, in
	// one system call); writers counts the writer goroutines started for
	// writes that block (see flusher).
	writes  prometheus.Counter
	writers prometheus.Counter
}

// newMetrics creates the hub's metrics named prefix_..., and registers
// them with reg unless it is nil.
func newMetrics(reg prometheus.Registerer, prefix string) (*metrics, error) {
	name := func(s string) string { return prefix + "_" + s }
	if reg == nil {
		name = func(s string) string { return "ws_" + s } // never registered, never seen
	}
	m := &metrics{
		reg: reg,
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: name("connections"), Help: "Open websocket connections.",
		}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: name("messages_sent_total"), Help: "Websocket messages written to clients.",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: name("messages_received_total"), Help: "Websocket messages read from clients and handed to the handler.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("frames_dropped_total"), Help: "Frames not sent, by reason: overflow (refused by a full send queue), replaced (discarded by Replace), closed (queued when the connection closed).",
		}, []string{"reason"}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("closes_total"), Help: "Websocket connections closed, by reason.",
		}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("refused_total"), Help: "Websocket upgrades refused, by reason.",
		}, []string{"reason"}),
		flowWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: name("flow_waits_total"), Help: "Times a connection's writer waited for its client to read what it had been sent (the flow window).",
		}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: name("writes_total"), Help: "Write rounds: the frames that waited for a connection together, written in one system call (messages_sent_total / writes_total is the frames per write).",
		}),
		writers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: name("writer_starts_total"), Help: "Writer goroutines started for a connection whose writes block: its socket did not take a write whole, its flow window was full, or it is TLS.",
		}),
	}
	// Initialise the label values, so they read 0 rather than being absent
	// until the first event.
	for _, r := range []string{droppedOverflow, droppedReplaced, droppedClosed} {
		m.dropped.WithLabelValues(r)
	}
	for _, r := range []string{closedByCaller, closedGoingAway, closedByPeer, closedPeerGone, closedHandlerError,
		closedTooBig, closedBinary, closedUnexpected, closedPingTimeout, closedWriteTimeout, closedWriteFailed, closedProtocolError, closedRevoked} {
		m.closes.WithLabelValues(r)
	}
	for _, r := range []string{refusedNotWebsocket, refusedSubprotocol, refusedFull, refusedShuttingDown, refusedHandshake, refusedNotHijackable, refusedStreamLimit} {
		m.refused.WithLabelValues(r)
	}
	m.collectors = []prometheus.Collector{m.open, m.sent, m.received, m.dropped, m.closes, m.refused, m.flowWaits, m.writes, m.writers}
	if reg == nil {
		return m, nil
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("register websocket metrics %s_*: %w", prefix, err)
		}
	}
	return m, nil
}

// unregister removes what newMetrics registered, so that a new hub can
// register the same names (a module provisioned again in tests).
func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
