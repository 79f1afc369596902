// Package membership is a shoal node's view of who is in the cluster. It
// wraps hashicorp/memberlist (SWIM gossip over UDP and TCP): it joins and
// leaves the cluster, keeps a table of every member it has seen with its
// status and advertised Meta (HTTP and Raft addresses, modules, version,
// bootstrap intent), publishes membership changes to subscribers, and
// multiplexes the one gossip channel between modules by a one-byte tag.
//
// # Wire format
//
// Every user message memberlist carries for shoal is a frame that starts
// with a tag byte:
//
//	[tag][payload]        a Channel.Broadcast or Spread, piggybacked on
//	                      gossip; or a Spread's push, a UDP packet of its own
//	[0][tag][payload]     a Channel.SendTo, sent over TCP
//
// Tag 0 (modules.TagNone) is reserved by this package, so module tags are
// 1..255. The push/pull state (memberlist's Delegate.LocalState) is a
// sequence of frames [tag][uvarint length][state], one per channel whose
// handler is a StateHandler. Frames with a tag that has no handler are
// skipped; a malformed buffer is rejected as a whole.
//
// # What this package must never do
//
//   - Block a memberlist callback: events are delivered to subscribers
//     without waiting (a full subscriber loses the event and must reconcile
//     from Members), and handlers are documented as non-blocking.
//   - Call back into memberlist while holding its own table lock, or take a
//     memberlist lock from an event callback (memberlist calls them with its
//     node lock held).
//   - Hold package-level state: several nodes live in one test process, each
//     with its own logger and Prometheus registry.
//   - Decide cluster membership for Raft. It reports what gossip sees; the
//     consensus layer decides who votes.
package membership
