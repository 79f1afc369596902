// Package agent assembles one shoal node: configuration in, running node
// out. It is the only place that wires the layers together — listeners,
// consensus (Raft), membership (gossip), the enabled modules and the HTTP
// API — and the only place that stops them, in reverse order.
//
// main.go and the in-process test-cluster helper both call New, so tests run
// exactly the wiring that ships. The package holds no global state: several
// agents live in one test process, each with its own logger, Prometheus
// registry and module instances.
package agent
