package acl

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the module's collectors, one set per instance. Both describe
// this node's copy of the replicated state: every node counts the same
// commands.
type metrics struct {
	tokens   prometheus.Gauge
	commands map[byte]prometheus.Counter
}

// opNames label shoal_acl_commands_total; every op has a series from the
// start.
var opNames = map[byte]string{opCreate: "create", opRevoke: "revoke", opExpire: "expire"}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	commands := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_acl_commands_total",
		Help: "ACL commands applied on this node, by op (create, revoke, expire), whatever their outcome.",
	}, []string{"op"})
	m := &metrics{
		tokens: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_acl_tokens",
			Help: "ACL tokens in this node's state, expired ones not yet removed included.",
		}),
		commands: map[byte]prometheus.Counter{},
	}
	for op, name := range opNames {
		m.commands[op] = commands.WithLabelValues(name)
	}
	for _, c := range []prometheus.Collector{m.tokens, commands} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register acl metrics: %w", err)
		}
	}
	return m, nil
}
