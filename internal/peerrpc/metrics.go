package peerrpc

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// serverMetrics count the calls a node serves. The method label is
// bounded: only methods with a handler are counted by name.
type serverMetrics struct {
	reg      prometheus.Registerer
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newServerMetrics(reg prometheus.Registerer) (*serverMetrics, error) {
	m := &serverMetrics{
		reg: reg,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_peerrpc_served_calls_total",
			Help: "Calls from other nodes this node served, by method and result (ok, error, no_method).",
		}, []string{"method", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoal_peerrpc_served_call_seconds",
			Help:    "Time from reading a call from another node to writing its answer, by method.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
		}, []string{"method"}),
	}
	// A call to a method without a handler is counted as ("unknown",
	// "no_method"); the methods with a handler are initialised by Handle.
	m.calls.WithLabelValues("unknown", "no_method")
	if reg == nil {
		return m, nil
	}
	if err := reg.Register(m.calls); err != nil {
		return nil, fmt.Errorf("register peer rpc metrics: %w", err)
	}
	if err := reg.Register(m.duration); err != nil {
		reg.Unregister(m.calls)
		return nil, fmt.Errorf("register peer rpc metrics: %w", err)
	}
	return m, nil
}

// handled initialises method's series, so they read 0 before its first
// call. Handle calls it: those methods are known when they are
// registered. The methods served through HandlePrefix are known only
// when called.
func (m *serverMetrics) handled(method string) {
	for _, result := range []string{"ok", "error"} {
		m.calls.WithLabelValues(method, result)
	}
	m.duration.WithLabelValues(method)
}

func (m *serverMetrics) served(method string, start time.Time, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.calls.WithLabelValues(method, result).Inc()
	m.duration.WithLabelValues(method).Observe(time.Since(start).Seconds())
}

func (m *serverMetrics) unregister() {
	if m.reg != nil {
		m.reg.Unregister(m.calls)
		m.reg.Unregister(m.duration)
	}
}
