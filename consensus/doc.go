// Package consensus runs shoal's Raft: one hashicorp/raft instance per node
// with raft-boltdb/v2 as log and stable store (fsync on), a file snapshot
// store and a TCP transport, and one FSM shared by every module.
//
// The FSM multiplexes: every command is an envelope [tag][op][payload] and is
// dispatched on the tag to the module that owns it; a snapshot is the set of
// every module's snapshot; restore hands each module its part. On top of Raft
// the package provides what users of Consul and rqlite expect: writes that
// reach a follower are forwarded to the leader, linearizable reads by read
// index, bootstrap-expect formation, and an autopilot that follows gossip
// membership (add as non-voter, promote once caught up, remove on leave or
// after a long death if quorum stays safe).
//
// When a majority of the voters is lost for good, a recovery (recover.go:
// Config.Recover, or a peers.json in the Raft directory) rewrites a
// survivor's configuration before raft starts, keeping its data; it is
// applied only when asked for, once, and only to a node that has state.
//
// It must never acknowledge a write before Raft has committed it, never
// bootstrap a node that has Raft state, and never remove a server because it
// restarted: a node that stops without leaving stays in the configuration.
package consensus
