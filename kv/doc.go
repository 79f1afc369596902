// Package kv is shoal's "kv" module: an eventually consistent key-value
// store replicated by gossip, not by Raft, in the manner of Pokan. Any node
// accepts a write; every node holds every key; a node that was away
// catches up by itself; applications react to changes through events
// (watch streams, handler scripts, webhooks).
//
// Routes (mounted under /v1 by the API; every path under /v1/kv/ is a key):
//
//	PUT    /v1/kv/{key...}[?ttl=]           body = the value; answers once it is on this node's disk
//	GET    /v1/kv/{key...}[?raw]            the entry (or just the value) from this node's copy
//	DELETE /v1/kv/{key...}                  writes a tombstone; idempotent
//	GET    /v1/kv?prefix=&limit=&after=     a page of live entries in key order
//	GET    /v1/kv?prefix=&watch=true        Server-Sent Events: new_key, key_changed, key_removed, synced
//	                                        (resync, stream_error); resumes from Last-Event-ID
//
// Every route refuses query parameters it does not know (400
// unknown_parameter). GET and PUT answer the version as an ETag; PUT and
// DELETE take If-Match and If-None-Match, checked against this node's
// copy only: a guard on one node, not a compare-and-set across the
// cluster (412 precondition_failed when it fails).
//
// # Expiry
//
// A value written with ?ttl= carries its absolute expiry (the version's
// time plus the TTL). Reads check it, so an expired value is never served;
// each node's loop replaces it, by its own clock, with the tombstone
// entry.expiredTombstone derives from the entry alone, so every node makes
// the same one and none needs to send it; a value received already
// expired is merged as that tombstone. It is newer than the value, so
// nothing resurrects it, and equal everywhere, so nothing flaps.
//
// # Watch history
//
// The bus numbers every event and keeps the last historyEvents of them
// (historyBytes at most), so a watch that reconnects with Last-Event-ID
// gets what it missed from there, or a resync event and the state when
// the history does not reach back that far.
//
// # Versions and conflicts
//
// Every write gets a Version: a hybrid logical clock timestamp (Unix ms and
// a counter) and the writing node's name. Versions are totally ordered, and
// the newest wins on every node (last writer wins): a node applies a
// received version only if it is newer than the one it holds, so merging is
// idempotent and commutative and at-least-once delivery is harmless. The
// clock (hlc) observes every version a node receives or loads, so a write
// made after a node has seen another version of the key is newer than it,
// however far the two nodes' wall clocks disagree. Concurrent writes (where
// neither node had seen the other's) are ordered by timestamp, so a node
// whose clock runs ahead wins those; see docs/kv.md.
//
// # Propagation
//
// A write is persisted, applied, answered and spread at once on the
// node's gossip channel (Gossip.Spread): pushed in a UDP packet to every
// member (up to originFanout), and piggybacked on gossip, keyed by the key
// so a newer write replaces an older one still queued, for a member a push
// missed. Every node that receives by broadcast a version newer than its
// own piggybacks it once more, before its own fsync (durability is the
// writer's); a node that holds the version already does not, which ends
// the spread. In a cluster larger than the writer's pushes reach, each of
// those nodes also pushes it to relayFanout members, an epidemic as Serf's
// user events are, with hops of a round trip instead of a gossip interval.
// A write too large for a gossip packet is spread as a notice (key and
// version); a node that lacks that version pulls the entry from the node
// that sent the notice, over TCP.
//
// Anti-entropy repairs whatever broadcasts miss. Each node keeps a Merkle
// tree over its keyspace: 4096 leaves (keys are placed by a hash), three
// levels of fanout 16 above them, each node's hash the XOR of the hashes of
// the (key, version, tombstone) entries below it, updated in O(depth) per
// change. Every --kv-gossip-interval a synced node starts a round with one
// random peer. Digests, summaries and the empty push that ends a round go
// in one UDP packet when they fit a gossip packet (Gossip.SendBestEffort:
// a lost one is a round that times out); pushes with entries and full
// syncs over TCP (Gossip.SendTo):
//
//	A → B  digest: A's root hash
//	B → A  done, if it matches; else B's 16 level-1 hashes
//	A → B  A's level-2 hashes under the differing level-1 nodes
//	B → A  B's leaf hashes under (at most 8 of) the differing level-2 nodes
//	A → B  summary: A's (key, version) lists of the differing leaves
//	B → A  push: the entries A lacks, and the keys B wants
//	A → B  push: the wanted entries (done)
//
// The trees compared hold only settled entries: an entry settles
// settleGrace after the earlier of its version's time and its arrival.
// Younger entries are broadcast's to deliver; without the grace, two
// nodes' trees never match while writes stream in, and every round
// descends to the leaves for nothing (see store.settled). A node whose
// rounds bring it nothing new doubles the gap between its rounds, up to
// maxPace intervals, and returns to one round an interval when a round
// (or a sync) brings it an entry it lacked, or its peers change. Not on a
// write or a difference: under a steady load of writes, entries settle
// while a digest is on its way, two trees rarely match, and rounds that
// sped up on every difference ran at full pace for nothing.
//
// An idle round thus exchanges one hash each way, whatever the number of
// keys; a round never carries more than 128 leaves of summaries, and later
// rounds repair the rest. Entries travel in chunks of at most 1 MiB.
//
// # Full sync and the no-resurrection rule
//
// A node starts unsynced, every time it starts (new, restarted or after a
// long partition). An unsynced node neither starts nor answers rounds; it
// asks one peer after another for its full state (syncreq), and a synced
// peer streams every entry, tombstones included, from one read
// transaction. When the last chunk has arrived, the node removes every
// entry it holds that is older than the tombstone horizon (now minus
// --kv-tombstone-ttl) and that the source did not send: such an entry was
// deleted while the node was away and its tombstone has been collected
// since, so keeping it would resurrect it. Then the node is synced and
// emits the synced event. A running node that completes no round for
// longer than the TTL (a partition) becomes unsynced and syncs the same
// way when it can reach a peer again.
//
// Only synced nodes serve, so old entries of a returning node never reach
// the others. When no peer is up for a while, or every peer is unsynced
// too (a new cluster, or one restarted as a whole), the node that synced
// last (then the lowest name) becomes the source of truth. An unsynced
// node asks its peers one at a time, the next as soon as one refuses, and
// a refusal counts for longer the more peers there are, so that a new
// cluster of any size finds its source of truth in about one round trip
// per member.
//
// The rule's limit: a partition longer than the TTL in which both sides
// keep several nodes (so both stay synced) may, when it heals, bring back
// keys one side deleted, or drop none; keep the TTL longer than any outage
// to be survived with data, as with Cassandra's gc_grace_seconds.
//
// # Persistence
//
// Entries live in a bolt file (kv.db in the module's data directory); in
// memory the node keeps only each key's version and the tree. Both are
// written last-writer-wins (a record is replaced only by a newer version),
// so the disk and memory always end at the newest version whatever the
// interleaving. A write is fsynced before it is applied and acknowledged;
// merges are persisted in batches, one transaction per batch of received
// messages. Tombstones are collected TTL after their timestamp.
//
// # Events
//
// new_key (no live value before), key_changed (a newer version replaced a
// live value) and key_removed (a live value was deleted) fire on a node
// when a change becomes visible there: once per change, never for a
// version that loses, in the order of the changes. Watchers and handlers
// get them from bounded queues; nothing on the gossip path waits for them.
//
// This package must never: acknowledge a write before it is on disk; block
// a gossip callback (NotifyMsg only queues); let an unsynced node serve
// anti-entropy or a full sync; fire an event for a losing version; serve a
// watch past Stop; import another module.
package kv
