// Package objectsync is shoal's "objectsync" module: JSON objects shared
// over websockets, cluster-wide (after Seapig). A client subscribes to an
// object id or a wildcard pattern on any node and holds the object's
// current state: the full object first, then RFC 6902 patches as it
// changes, caught up with patches only after a lost link while its
// version is still in the object's history. Objects are written by
// masters: clients that claim an id and then send the whole object (set)
// or patches (patch), or by producers: clients that register id patterns
// and are asked, by the leader, to build an object when the first
// subscriber anywhere wants it or when one of its dependencies moves.
// Objects nobody wants are dropped after a linger. Read-only shoal:*
// objects describe each node (introspect.go). docs/objectsync.md has the
// protocol, the REST mirror and the guarantees.
//
// Files: objectsync.go (the module, its lifecycle and state machine
// glue), command.go, state.go and snapshot.go (the replicated state),
// write.go (the write path and master claims), fanout.go (subscribers),
// ws.go and http.go (the websocket and the REST mirror), produce.go and
// leader.go (demand, producers, linger), introspect.go, and web/ (the
// browser client and the viewer page, embedded and served by http.go).
// internal/document is the JSON arithmetic shared with the Go client
// (objectsync/client); internal/protocol the wire messages.
//
// How a write flows: the node that takes a set computes the RFC 6902 diff
// against its current state once and submits {id, base, new version,
// patch} to Raft (the whole object when there is no base or the patch
// would not be smaller). Every node's state machine applies the patch
// deterministically to canonical JSON (see internal/document), refusing
// it if its base is no longer the current state, then encodes one frame
// and queues the same bytes on each of its own subscribers (fanout.go). A
// subscriber whose queue is full has its pending updates collapsed into
// full states.
//
// Determinism: the state machine reads no clock, no randomness and no
// local configuration. Times come from modules.Command.Time; the history
// length and the size limit travel in each write command; identity of a
// state is the Raft index of the command that made it.
//
// This package must never: acknowledge a write before Raft committed it;
// block the FSM goroutine on a subscriber; send a subscriber a patch that
// does not start at the state it holds; keep a websocket or SSE watch open
// past Stop; leave a goroutine running after Stop; import another module.
package objectsync
