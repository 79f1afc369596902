package kv

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the module's Prometheus collectors, one set per instance.
// Labels are bounded: message types, results and handler kinds, never
// keys or peers.
type metrics struct {
	keys       prometheus.Gauge
	tombstones prometheus.Gauge
	synced     prometheus.Gauge
	watchers   prometheus.Gauge

	writes        *prometheus.CounterVec // op
	broadcastSent *prometheus.CounterVec // kind: entry, notice
	broadcastRecv *prometheus.CounterVec // kind
	merged        *prometheus.CounterVec // via: broadcast, antientropy, sync
	dropped       *prometheus.CounterVec // reason
	collected     prometheus.Counter
	expired       prometheus.Counter
	watchStarts   *prometheus.CounterVec // start: new, resumed, resync

	rounds        *prometheus.CounterVec // result: in_sync, repaired, failed, refused
	roundDuration prometheus.Histogram
	aeBytes       *prometheus.CounterVec // direction
	hooks         *prometheus.CounterVec // hook: before_gossip, after_gossip, after_sync
	syncs         *prometheus.CounterVec // result: completed, failed, self
	lag           prometheus.Histogram

	handlerRuns     *prometheus.CounterVec // kind, result
	handlerDuration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		keys:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "shoal_kv_keys", Help: "Live keys held on this node."}),
		tombstones: prometheus.NewGauge(prometheus.GaugeOpts{Name: "shoal_kv_tombstones", Help: "Tombstones (deleted keys not yet collected) held on this node."}),
		synced:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "shoal_kv_synced", Help: "1 once this node has completed a full sync with a peer (or is the cluster's first), 0 while it catches up."}),
		watchers:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "shoal_kv_watchers", Help: "Open watch streams on this node."}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_kv_writes_total", Help: "Writes through this node's API, by op (put, delete; precondition_failed: refused by If-Match or If-None-Match).",
		}, []string{"op"}),
		broadcastSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_kv_broadcasts_sent_total", Help: "Writes spread by gossip (pushed to a few members, piggybacked for the rest), by kind: entry (the whole entry) or notice (version only; peers pull the value).",
		}, []string{"kind"}),
		broadcastRecv: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_kv_broadcasts_received_total", Help: "Gossip broadcasts received, by kind (entry, notice).",
		}, []string{"kind"}),
		merged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_kv_merged_total", Help: "Remote versions that were newer and applied, by how they came (broadcast, antientropy, sync).",
		}, []string{"via"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_kv_messages_dropped_total", Help: "Gossip messages dropped, by reason (malformed, inbox_full, outbox_full, not_running, send_failed).",
		}, []string{"reason"}),
		collected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_kv_tombstones_collected_total", Help: "Tombstones removed after --kv-tombstone-ttl.",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_kv_expired_total", Help: "Values this node replaced with their tombstone when their TTL ran out.",
		}),
		watchStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_kv_watch_starts_total", Help: "Watch streams opened, by start: new (no Last-Event-ID), resumed (replayed from the event history), resync (the history could not cover the Last-Event-ID; the state was sent).",
		}, []string{"start"}),
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_kv_antientropy_rounds_total", Help: "Anti-entropy rounds this node started, by result (in_sync, repaired, failed, refused).",
		}, []string{"result"}),
		roundDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "shoal_kv_antientropy_round_duration_seconds", Help: "Duration of the anti-entropy rounds this node started and completed.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		aeBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_kv_antientropy_bytes_total", Help: "Bytes of anti-entropy and full-sync messages, by direction (sent, received).",
		}, []string{"direction"}),
		hooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_kv_gossip_hooks_total", Help: "Pokan's gossip hooks: before_gossip and after_gossip around each anti-entropy round this node starts, after_sync after each full sync.",
		}, []string{"hook"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_kv_syncs_total", Help: "Full syncs of this node, by result (completed, failed, self: became the source itself).",
		}, []string{"result"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "shoal_kv_convergence_lag_seconds", Help: "Time from a remote version's timestamp to its arrival here (clock skew included).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 20),
		}),
		handlerRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_kv_handler_runs_total", Help: "Event handler runs, by kind (script, webhook) and result (success, failure, timeout, dropped).",
		}, []string{"kind", "result"}),
		handlerDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shoal_kv_handler_duration_seconds", Help: "Duration of event handler runs, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"kind"}),
	}
	// Initialise every label value the code uses, so each series reads 0
	// before its first event rather than being absent (the values must
	// match the literals in gossip.go, kv.go, watch.go, antientropy.go and
	// handlers.go).
	for _, vec := range []struct {
		v      *prometheus.CounterVec
		values []string
	}{
		{m.writes, []string{"put", "delete", "precondition_failed"}},
		{m.broadcastSent, []string{"entry", "notice"}},
		{m.broadcastRecv, []string{"entry", "notice"}},
		{m.merged, []string{"broadcast", "antientropy", "sync"}},
		{m.dropped, []string{"malformed", "inbox_full", "outbox_full", "not_running", "send_failed"}},
		{m.watchStarts, []string{"new", "resumed", "resync"}},
		{m.rounds, []string{"in_sync", "repaired", "failed", "refused"}},
		{m.aeBytes, []string{"sent", "received"}},
		{m.hooks, []string{"before_gossip", "after_gossip", "after_sync"}},
		{m.syncs, []string{"completed", "failed", "self"}},
	} {
		for _, l := range vec.values {
			vec.v.WithLabelValues(l)
		}
	}
	for _, kind := range []string{kindScript, kindWebhook} {
		m.handlerDuration.WithLabelValues(kind)
		for _, result := range []string{"success", "failure", "timeout", "dropped"} {
			m.handlerRuns.WithLabelValues(kind, result)
		}
	}
	for _, c := range []prometheus.Collector{m.keys, m.tombstones, m.synced, m.watchers, m.writes, m.broadcastSent,
		m.broadcastRecv, m.merged, m.dropped, m.collected, m.expired, m.watchStarts, m.rounds, m.roundDuration, m.aeBytes, m.hooks, m.syncs,
		m.lag, m.handlerRuns, m.handlerDuration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register kv metrics: %w", err)
		}
	}
	return m, nil
}
