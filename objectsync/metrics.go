package objectsync

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the module's Prometheus collectors, one set per instance.
// objects describes this node's copy of the replicated state; the rest
// count what this node did for its own clients.
type metrics struct {
	objects       prometheus.Gauge
	subscriptions prometheus.Gauge
	frames        *prometheus.CounterVec
	// framesByType holds frames' children, looked up once: the fan-out
	// counts every delivery, thousands a second.
	framesByType  map[string]prometheus.Counter
	collapses     prometheus.Counter
	resumes       *prometheus.CounterVec
	writes        *prometheus.CounterVec
	errorsDropped prometheus.Counter
	capRefusals   *prometheus.CounterVec
}

// frameQueued counts a frame of type kind queued to a subscriber.
func (m *metrics) frameQueued(kind string) {
	if c, ok := m.framesByType[kind]; ok {
		c.Inc()
		return
	}
	m.frames.WithLabelValues(kind).Inc()
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		objects: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_objectsync_objects", Help: "Objects in this node's copy of the state.",
		}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_objectsync_subscriptions", Help: "Ids and patterns subscribed to on this node (websockets and SSE watches).",
		}),
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_objectsync_frames_total", Help: "Frames queued to this node's subscribers, by type (object, patch, removed).",
		}, []string{"type"}),
		collapses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_objectsync_collapses_total", Help: "Times a slow subscriber's full queue was collapsed into a full state.",
		}),
		resumes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_objectsync_resumes_total", Help: "Subscriptions with have_version, by what caught them up (patches, full).",
		}, []string{"by"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_objectsync_writes_total", Help: "Object writes this node submitted, by form (patch, full), refused (error), or superseded by a later set of the same master before being submitted.",
		}, []string{"result"}),
		errorsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_objectsync_error_frames_dropped_total", Help: "Error frames not sent because the subscriber's queue was full.",
		}),
	}
	m.framesByType = map[string]prometheus.Counter{}
	for _, l := range []string{"object", "patch", "removed"} {
		m.framesByType[l] = m.frames.WithLabelValues(l)
	}
	for _, l := range []string{"patches", "full"} {
		m.resumes.WithLabelValues(l)
	}
	for _, l := range []string{"patch", "full", "error", "superseded"} {
		m.writes.WithLabelValues(l)
	}
	if reg == nil {
		return m, nil
	}
	m.capRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_objectsync_cap_refusals_total",
		Help: "Writes and bumps through this node refused by the cluster's cap, by kind (object: --objectsync-max-objects, dependency: --objectsync-max-dependencies).",
	}, []string{"kind"})
	for _, k := range []string{"object", "dependency"} {
		m.capRefusals.WithLabelValues(k)
	}
	for _, c := range []prometheus.Collector{m.objects, m.subscriptions, m.frames, m.collapses, m.resumes, m.writes, m.errorsDropped, m.capRefusals} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register objectsync metrics: %w", err)
		}
	}
	return m, nil
}
