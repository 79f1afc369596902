package clusterport

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reg      prometheus.Registerer
	inbound  *prometheus.CounterVec
	outbound *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reg: reg,
		inbound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_clusterport_inbound_connections_total",
			Help: "Connections accepted on the cluster port, by kind and result (accepted, or why they were refused).",
		}, []string{"kind", "result"}),
		outbound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_clusterport_outbound_connections_total",
			Help: "Connections this node opened to peers' cluster ports, by kind and result (accepted, refused with a reason, failed).",
		}, []string{"kind", "result"}),
	}
	// Initialise the label sets an operator alerts on, so they read 0
	// rather than being absent until the first refusal: every result
	// port.go counts, for every kind it can be counted with.
	for _, k := range []Kind{KindRaft, KindRPC, KindStream} {
		for _, r := range []Reason{accepted, ReasonWrongNode, ReasonSelf, ReasonUnknownKind, ReasonImpostor, ReasonTLS} {
			m.inbound.WithLabelValues(k.String(), r.String())
			m.outbound.WithLabelValues(k.String(), r.String())
		}
		// Inbound: the accept answer could not be written (failed), or no
		// consumer took the connection in time (not_accepted).
		for _, r := range []string{"failed", "not_accepted"} {
			m.inbound.WithLabelValues(k.String(), r)
		}
		// Outbound: a peer's bad_header refusal, one this node does not
		// know (refused), a failed handshake (failed) or dial (dial_failed).
		for _, r := range []string{ReasonBadHeader.String(), "refused", "failed", "dial_failed"} {
			m.outbound.WithLabelValues(k.String(), r)
		}
	}
	// Inbound refusals before a valid header was read (bad_header, tls) or
	// naming a kind this node does not know have the kind "unknown".
	for _, r := range []Reason{ReasonBadHeader, ReasonTLS, ReasonUnknownKind} {
		m.inbound.WithLabelValues(kindLabel(0), r.String())
	}
	if reg == nil {
		return m, nil
	}
	if err := reg.Register(m.inbound); err != nil {
		return nil, fmt.Errorf("register cluster port metrics: %w", err)
	}
	if err := reg.Register(m.outbound); err != nil {
		reg.Unregister(m.inbound)
		return nil, fmt.Errorf("register cluster port metrics: %w", err)
	}
	return m, nil
}

// kindLabel keeps the label bounded: a garbage header's kind byte is not
// a label value of its own.
func kindLabel(k Kind) string {
	switch k {
	case KindRaft, KindRPC, KindStream:
		return k.String()
	default:
		return "unknown"
	}
}

// reasonLabel is a peer's refusal reason as a label: one this node does
// not know (a newer peer's) is "refused", not a label of its own.
func reasonLabel(r Reason) string {
	switch r {
	case ReasonWrongNode, ReasonSelf, ReasonUnknownKind, ReasonBadHeader, ReasonImpostor, ReasonTLS:
		return r.String()
	default:
		return "refused"
	}
}

func (m *metrics) accepted(k Kind, result string) {
	m.inbound.WithLabelValues(kindLabel(k), result).Inc()
}
func (m *metrics) dialed(k Kind, result string) {
	m.outbound.WithLabelValues(kindLabel(k), result).Inc()
}

func (m *metrics) unregister() {
	if m.reg != nil {
		m.reg.Unregister(m.inbound)
		m.reg.Unregister(m.outbound)
	}
}
