package locks

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the module's Prometheus collectors, one set per instance.
// The gauges and the expiry counter describe this node's copy of the
// replicated state (every node counts the same expiries); the request
// counters and the wait histogram count the requests this node served.
type metrics struct {
	semaphores prometheus.Gauge
	locks      prometheus.Gauge
	holders    prometheus.Gauge
	waiters    prometheus.Gauge

	acquireGranted prometheus.Counter
	acquireBusy    prometheus.Counter
	acquireFailed  prometheus.Counter
	releases       prometheus.Counter
	expiredHolders prometheus.Counter
	expiredWaiters prometheus.Counter
	timeouts       prometheus.Counter
	waitSeconds    prometheus.Histogram
	capRefusals    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	acquires := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_locks_acquires_total",
		Help: "Acquire requests served by this node, by result (granted, busy: full or held, error).",
	}, []string{"result"})
	expiries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_locks_expiries_total",
		Help: "Leases (what=holder) and blocking waits (what=waiter) expired by the leader, as applied on this node.",
	}, []string{"what"})
	m := &metrics{
		semaphores:     gauge("shoal_locks_semaphores", "Semaphores held in this node's state."),
		locks:          gauge("shoal_locks_locks", "Read/write locks held or waited for in this node's state."),
		holders:        gauge("shoal_locks_holders", "Live holders of semaphore slots and locks in this node's state."),
		waiters:        gauge("shoal_locks_waiters", "Queued blocking acquires in this node's state."),
		acquireGranted: acquires.WithLabelValues("granted"),
		acquireBusy:    acquires.WithLabelValues("busy"),
		acquireFailed:  acquires.WithLabelValues("error"),
		releases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_locks_releases_total",
			Help: "Successful release requests served by this node.",
		}),
		expiredHolders: expiries.WithLabelValues("holder"),
		expiredWaiters: expiries.WithLabelValues("waiter"),
		timeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_locks_timeouts_total",
			Help: "Blocking acquires on this node that gave up: the wait ran out or the client went away.",
		}),
		waitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "shoal_locks_wait_seconds",
			Help:    "Time blocking acquires on this node spent queued, whatever the outcome.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
	}
	m.capRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_locks_cap_refusals_total",
		Help: "Creates and acquires through this node refused by the cluster's cap, by kind (semaphore: --locks-max-semaphores, lock: --locks-max-locks).",
	}, []string{"kind"})
	for _, k := range []kind{kindSemaphore, kindLock} {
		m.capRefusals.WithLabelValues(k.String())
	}
	for _, c := range []prometheus.Collector{m.semaphores, m.locks, m.holders, m.waiters, acquires, m.releases, expiries, m.timeouts, m.waitSeconds, m.capRefusals} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register locks metrics: %w", err)
		}
	}
	return m, nil
}
