package logstream

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"shoal/logstream/segment"
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
	installs         prometheus.Counter
	segmentsServed   prometheus.Counter
	trims            prometheus.Counter
	capRefusals      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, sm *segment.Metrics, cache *segment.Cache) (*metrics, error) {
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
	m.installs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shoal_log_snapshot_installs_total",
		Help: "Logs whose files this node fetched from a peer's snapshot.",
	})
	m.segmentsServed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shoal_log_snapshot_segments_served_total",
		Help: "Segment files this node sent to peers installing a snapshot.",
	})
	m.trims = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shoal_log_retention_trims_total",
		Help: "Trims this node submitted as leader for retention by bytes or age.",
	})
	m.capRefusals = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shoal_log_cap_refusals_total",
		Help: "Publishes and PUTs through this node refused because the cluster holds --log-max-logs logs.",
	})
	collectors := []prometheus.Collector{publish, m.publishBytes, m.entries, m.logs, m.streams, m.installs, m.segmentsServed, m.trims, m.capRefusals,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_log_disk_bytes",
			Help: "Size of this node's log segment files.",
		}, func() float64 { return float64(sm.DiskBytes.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_log_segments",
			Help: "Number of this node's log segment files.",
		}, func() float64 { return float64(sm.Segments.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shoal_log_fsyncs_total",
			Help: "fsyncs of log segment files and directories.",
		}, func() float64 { return float64(sm.Fsyncs.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shoal_log_torn_tails_total",
			Help: "Torn segment tails recovery cut at start (a power loss, never a kill -9).",
		}, func() float64 { return float64(sm.TornTails.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_log_cache_bytes",
			Help: "Memory held by the read cache of recent entries.",
		}, func() float64 {
			if cache == nil {
				return 0
			}
			return float64(cache.Bytes())
		}),
		readCounter{sm},
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register log metrics: %w", err)
		}
	}
	return m, nil
}

// readCounter exports the stores' read counters as one counter labelled
// by source.
type readCounter struct{ sm *segment.Metrics }

var readsDesc = prometheus.NewDesc("shoal_log_reads_total",
	"Entries read for requests and streams on this node, by source (cache, or disk through the page cache).", []string{"source"}, nil)

func (r readCounter) Describe(ch chan<- *prometheus.Desc) { ch <- readsDesc }

func (r readCounter) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(readsDesc, prometheus.CounterValue, float64(r.sm.CacheHits.Load()), "cache")
	ch <- prometheus.MustNewConstMetric(readsDesc, prometheus.CounterValue, float64(r.sm.DiskReads.Load()), "disk")
}
