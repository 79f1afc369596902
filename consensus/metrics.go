package consensus

import (
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// The label values of applySeconds and autopilotActions, initialised
// at registration so every series reads 0 before its first event (an
// alert on rate() or absent() sees it from the start). They must match
// the literals the callers pass: observeApply's path in node.go and
// batch.go, autopilot.change's action in autopilot.go and addresses.go.
var (
	// applyPaths: local (on the leader), forwarded (to it from this
	// follower), batch (a follower's forwarded batch, on the leader),
	// none (no leader reached before the timeout).
	applyPaths   = []string{"local", "forwarded", "batch", "none"}
	applyResults = []string{"ok", "error"}
	// autopilotActionNames: move(..., action) also counts action+"_remove"
	// when it must remove a server before adding it back.
	autopilotActionNames = []string{"add_nonvoter", "promote", "demote", "remove_left", "reap_dead",
		"update_address", "update_address_remove", "park_address", "park_address_remove"}
)

type metrics struct {
	reg              prometheus.Registerer
	collectors       []prometheus.Collector
	applySeconds     *prometheus.HistogramVec
	autopilotActions *prometheus.CounterVec
	forwardBatch     prometheus.Histogram
	// forwardsAbandoned counts forwarded batches answered "outcome
	// unknown" because the leader changed while they were with it.
	forwardsAbandoned prometheus.Counter
	// commitNotices counts the notices this node committed as leader
	// (commitnotice.go).
	commitNotices prometheus.Counter
}

func newMetrics(n *Node, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reg: reg,
		applySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoal_raft_apply_seconds",
			Help:    "Time from submitting a command to its commit and apply, by path (local on the leader, forwarded from a follower) and result.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"path", "result"}),
		forwardBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "shoal_raft_forward_batch_size",
			Help:    "Writes per batch a follower forwarded to the leader.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		forwardsAbandoned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_raft_forward_batches_abandoned_total",
			Help: "Forwarded write batches answered outcome_unknown at once because the leader changed while they were with the old one.",
		}),
		commitNotices: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_raft_commit_notices_total",
			Help: "Commit notices this node committed as leader: empty entries that tell followers the last write is committed when no other entry follows it.",
		}),
		autopilotActions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_raft_autopilot_actions_total",
			Help: "Raft configuration changes made by autopilot, by action.",
		}, []string{"action"}),
	}
	for _, p := range applyPaths {
		for _, r := range applyResults {
			if p == "none" && r == "ok" {
				continue // never: "none" is a write that timed out
			}
			m.applySeconds.WithLabelValues(p, r)
		}
	}
	for _, a := range autopilotActionNames {
		m.autopilotActions.WithLabelValues(a)
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.collectors = []prometheus.Collector{
		m.applySeconds, m.autopilotActions, m.forwardBatch, m.forwardsAbandoned, m.commitNotices, n.electionsWon,
		gauge("shoal_raft_state", "Raft state: 0 follower, 1 candidate, 2 leader, 3 shutdown.", func() float64 {
			return float64(n.raft.State())
		}),
		gauge("shoal_raft_leader", "1 if this node is the leader.", func() float64 {
			if n.raft.State() == raft.Leader {
				return 1
			}
			return 0
		}),
		gauge("shoal_raft_term", "Current Raft term.", func() float64 { return float64(n.raft.CurrentTerm()) }),
		gauge("shoal_raft_commit_index", "Highest log index known to be committed.", func() float64 { return float64(n.raft.CommitIndex()) }),
		gauge("shoal_raft_applied_index", "Highest log index applied by the FSM.", func() float64 { return float64(n.fsm.Applied()) }),
		gauge("shoal_raft_last_index", "Last index in the local log.", func() float64 { return float64(n.raft.LastIndex()) }),
		gauge("shoal_raft_last_contact_seconds", "Seconds since the leader was last heard from (0 on the leader).", func() float64 {
			if n.raft.State() == raft.Leader {
				return 0
			}
			lc := n.raft.LastContact()
			if lc.IsZero() {
				return -1
			}
			return time.Since(lc).Seconds()
		}),
	}
	if reg == nil {
		return m, nil
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors[:i] {
				reg.Unregister(done)
			}
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observeApply(path string, start time.Time, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.applySeconds.WithLabelValues(path, result).Observe(time.Since(start).Seconds())
}

// unregister removes the gauges that read the stopped raft instance.
func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
