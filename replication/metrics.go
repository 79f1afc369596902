package replication

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the module's Prometheus collectors, one set per instance.
// The follower label takes the names of the cluster's servers: bounded.
type metrics struct {
	sentBytes       *prometheus.CounterVec
	ackedBytes      *prometheus.GaugeVec
	lagBytes        *prometheus.GaugeVec
	lagSeconds      *prometheus.GaugeVec
	catchupSent     prometheus.Counter
	catchupReceived prometheus.Counter
	catchupFiles    prometheus.Counter
	catchupSeconds  prometheus.Histogram
	inSync          prometheus.Gauge
	mismatches      prometheus.Counter
	refused         *prometheus.CounterVec
	writes          *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		sentBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shoal_replication_sent_bytes_total",
			Help: "Live action bytes this leader sent, by follower."}, []string{"follower"}),
		ackedBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shoal_replication_acked_bytes",
			Help: "Stream position each follower acknowledged in this leader's term."}, []string{"follower"}),
		lagBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shoal_replication_lag_bytes",
			Help: "Stream bytes each follower has not acknowledged."}, []string{"follower"}),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shoal_replication_lag_seconds",
			Help: "Age of the oldest action each follower has not acknowledged."}, []string{"follower"}),
		catchupSent: prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_replication_catchup_sent_bytes_total",
			Help: "File bytes this node sent to catching-up followers."}),
		catchupReceived: prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_replication_catchup_received_bytes_total",
			Help: "File bytes this node received while catching up."}),
		catchupFiles: prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_replication_catchup_files_total",
			Help: "Files this leader sent (whole or tail) to catching-up followers."}),
		catchupSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shoal_replication_catchup_seconds",
			Help: "Duration of followers' catch-ups served by this leader.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}),
		inSync: prometheus.NewGauge(prometheus.GaugeOpts{Name: "shoal_replication_in_sync_members",
			Help: "Members of the in-sync set, the leader included, as this node's state has it."}),
		mismatches: prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_replication_checksum_mismatches_total",
			Help: "Checksum or offset mismatches between a follower's copy and the leader's."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shoal_replication_refused_streams_total",
			Help: "Replication streams this node refused, by reason."}, []string{"reason"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shoal_replication_writes_total",
			Help: "Client writes this node served, by op and result."}, []string{"op", "result"}),
	}
	// Initialise the label values known in advance, so they read 0 rather
	// than being absent until the first event: the refusal reasons (serve.go)
	// and each write op's "ok". A failed write's result is its error code,
	// and the follower label is a server's name: neither is known here.
	for _, r := range []string{"bad_header", "not_leader"} {
		m.refused.WithLabelValues(r)
	}
	for _, op := range []writeOp{opWriteReplace, opWriteAppend, opWriteDelete} {
		m.writes.WithLabelValues(op.String(), "ok")
	}
	for _, c := range []prometheus.Collector{m.sentBytes, m.ackedBytes, m.lagBytes, m.lagSeconds, m.catchupSent,
		m.catchupReceived, m.catchupFiles, m.catchupSeconds, m.inSync, m.mismatches, m.refused, m.writes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register replication metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Replication) sent(follower string, n int) {
	if m.m != nil {
		m.m.sentBytes.WithLabelValues(follower).Add(float64(n))
	}
}

func (m *Replication) received(n int) {
	m.catchupReceived.Add(int64(n))
	if m.m != nil {
		m.m.catchupReceived.Add(float64(n))
	}
}

func (m *Replication) mismatch() {
	m.mismatches.Add(1)
	if m.m != nil {
		m.m.mismatches.Inc()
	}
}

func (m *Replication) observeCatchup(d time.Duration, files int) {
	if m.m != nil {
		m.m.catchupSeconds.Observe(d.Seconds())
		m.m.catchupFiles.Add(float64(files))
	}
}

// updateGaugesLocked refreshes the per-follower gauges; the caller holds
// l.mu.
func (l *leadership) updateGaugesLocked(st syncState, now time.Time) {
	mt := l.m.m
	if mt == nil {
		return
	}
	mt.inSync.Set(float64(len(st.inSync)))
	for n, p := range l.peers {
		mt.ackedBytes.WithLabelValues(n).Set(float64(p.acked))
		mt.lagBytes.WithLabelValues(n).Set(float64(l.ackPos - min(p.acked, l.ackPos)))
		lag := 0.0
		if !p.pendingSince.IsZero() {
			lag = now.Sub(p.pendingSince).Seconds()
		}
		mt.lagSeconds.WithLabelValues(n).Set(lag)
	}
}
