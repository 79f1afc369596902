// Package modules is shoal's plugin host: the interface every module
// implements, the optional capabilities a module may add (HTTP routes, Raft
// commands, gossip, status, readiness, leadership), the one registry of
// module factories, and the Manager that runs enabled modules through their
// lifecycle in a fixed order.
//
// A module reaches the node only through its Host handle: logger, metrics
// registry, data directory, configuration, the shared Raft log and the
// shared gossip channel. Modules never import each other, and this package
// never imports a module: module packages register themselves from init and
// main blank-imports the ones it ships.
//
// The shared Raft log and gossip channel are multiplexed by a one-byte Tag
// that each module owns; tags are constants in tags.go and are never reused.
package modules
