package membership

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Message kinds, the values of the kind label.
const (
	kindBroadcast = "broadcast"
	kindDirect    = "direct"
	kindState     = "state"
)

// Results of a push, the values of the result label.
const (
	pushSent     = "sent"
	pushFailed   = "failed"
	pushDeferred = "deferred" // over the push budget: piggybacked instead
)

// Reasons a received message is dropped, the values of the reason label.
const (
	dropNoHandler = "no_handler"
	dropMalformed = "malformed"
)

// metrics are one node's membership metrics. They exist even without a
// registry, so the code never checks for nil.
type metrics struct {
	members         *prometheus.GaugeVec
	eventsDropped   prometheus.Counter
	received        *prometheus.CounterVec
	dropped         *prometheus.CounterVec
	broadcastsQueue prometheus.GaugeFunc
	reconnects      prometheus.Counter
	pushes          *prometheus.CounterVec
	sentBytes       *prometheus.CounterVec
	receivedBytes   *prometheus.CounterVec

	reg        prometheus.Registerer
	registered []prometheus.Collector
}

func newMetrics(queued func() float64) *metrics {
	mt := &metrics{
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoal_membership_members",
			Help: "Members in this node's table, by status.",
		}, []string{"status"}),
		eventsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_membership_events_dropped_total",
			Help: "Membership events dropped because a subscriber's buffer was full.",
		}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_membership_messages_received_total",
			Help: "Gossip messages received for a channel, by kind (broadcast, direct, state).",
		}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_membership_messages_dropped_total",
			Help: "Received gossip messages dropped, by reason (no_handler, malformed).",
		}, []string{"reason"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_membership_reconnects_total",
			Help: "Failed members reached again by the reconnect loop (gossip healed).",
		}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_membership_pushes_total",
			Help: "Pushes of a spread message to one member, by result (sent; failed; deferred: over the push budget, piggybacked instead).",
		}, []string{"result"}),
		sentBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_membership_sent_bytes_total",
			Help: "Bytes of gossip sent, by transport (udp: gossip, probes, broadcasts; tcp: joins, push/pull, direct messages).",
		}, []string{"transport"}),
		receivedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_membership_received_bytes_total",
			Help: "Bytes of gossip received, by transport (udp, tcp).",
		}, []string{"transport"}),
		broadcastsQueue: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_membership_broadcast_queue_messages",
			Help: "Broadcasts queued for piggybacking, over all channels.",
		}, queued),
	}
	for _, st := range []Status{StatusAlive, StatusSuspect, StatusDead, StatusLeft} {
		mt.members.WithLabelValues(string(st))
	}
	for _, k := range []string{kindBroadcast, kindDirect, kindState} {
		mt.received.WithLabelValues(k)
	}
	for _, r := range []string{dropNoHandler, dropMalformed} {
		mt.dropped.WithLabelValues(r)
	}
	for _, r := range []string{pushSent, pushFailed, pushDeferred} {
		mt.pushes.WithLabelValues(r)
	}
	for _, tr := range []string{transportUDP, transportTCP} {
		mt.sentBytes.WithLabelValues(tr)
		mt.receivedBytes.WithLabelValues(tr)
	}
	return mt
}

// traffic returns the byte counters a meteredTransport adds to.
func (mt *metrics) traffic() trafficCounters {
	return trafficCounters{
		udpSent:     mt.sentBytes.WithLabelValues(transportUDP),
		udpReceived: mt.receivedBytes.WithLabelValues(transportUDP),
		tcpSent:     mt.sentBytes.WithLabelValues(transportTCP),
		tcpReceived: mt.receivedBytes.WithLabelValues(transportTCP),
	}
}

// register registers every metric on reg (nil: none).
func (mt *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	mt.reg = reg
	for _, c := range []prometheus.Collector{mt.members, mt.eventsDropped, mt.received, mt.dropped, mt.broadcastsQueue, mt.reconnects, mt.pushes, mt.sentBytes, mt.receivedBytes} {
		if err := reg.Register(c); err != nil {
			mt.unregister()
			return fmt.Errorf("register metrics: %w", err)
		}
		mt.registered = append(mt.registered, c)
	}
	return nil
}

// unregister removes what register registered, so the registry can be
// reused by a new Membership after Shutdown.
func (mt *metrics) unregister() {
	for _, c := range mt.registered {
		mt.reg.Unregister(c)
	}
	mt.registered = nil
}
