package logstream

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the module's Prometheus collectors, one set per instance.
// Publish counters count the requests this node served; the gauges
// describe this node's copy of the replicated state and its open streams.
type metrics struct {
	publishCreated   prometheus.Counter
	publishDuplicate prometheus.Counter
	publishBytes     prometheus.Histogram
	entries          prometheus.Gauge
	logs             prometheus.Gauge
	streams          prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	publish := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_log_publish_total",
		Help: "Entries published through this node, by result (created or duplicate).",
	}, []string{"result"})
	m := &metrics{
		publishCreated:   publish.WithLabelValues("created"),
		publishDuplicate: publish.WithLabelValues("duplicate"),
		publishBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "shoal_log_publish_bytes",
			Help:    "Data size of the entries created through this node.",
			Buckets: prometheus.ExponentialBuckets(64, 4, 8),
		}),
		entries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_log_entries",
			Help: "Entries retained across all logs on this node.",
		}),
		logs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_log_logs",
			Help: "Logs held on this node.",
		}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_log_streams",
			Help: "Open log event streams on this node.",
		}),
	}
	for _, c := range []prometheus.Collector{publish, m.publishBytes, m.entries, m.logs, m.streams} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register log metrics: %w", err)
		}
	}
	return m, nil
}
