// Package ws serves websocket connections for the modules that push to
// clients over them (objectsync's subscriptions: a full object, then
// JSON-Patch diffs): the websocket counterpart of internal/sse.
//
// It owns the parts of a connection that do not depend on what it carries:
//
//   - the upgrade, which requires the hub's one subprotocol (such as
//     "shoal.objects.v1") and refuses everything else before upgrading, in
//     the API's JSON error shape (see httpjson);
//   - the limits: open connections per hub, inbound message size, a write
//     deadline per message, and a ping/pong keepalive that drops a peer
//     that stopped answering;
//   - a bounded send queue per connection, so that a slow client never
//     blocks the sender; a frame that does not fit is refused
//     (ErrQueueFull) and the module decides what to do (collapse pending
//     diffs into one full state with Replace, or close);
//   - the writes: the hub's flushers (a goroutine each, for a share of the
//     connections) write the queues with non-blocking system calls, each
//     connection's frames at once in one call, at most once per
//     Config.BatchInterval on a busy connection; a connection whose socket
//     does not take a write whole gets a writer goroutine of its own until
//     its queue is empty (flush.go, wire.go). The data frames are framed
//     here; coder/websocket does the handshake, the reads and the control
//     frames;
//   - the read loop that hands each text message to the module's handler;
//   - the set of open connections, which the module's Stop closes with
//     "going away" and waits for (http.Server's Shutdown neither waits for
//     nor closes hijacked connections).
//
// A module creates one Hub when it is provisioned, accepts connections in
// its HTTP handler, queues frames it encoded once (the same bytes may be
// queued on any number of connections) and stops the hub in its Stop.
//
// This package must never decide what a connection carries (JSON, patches
// and subscriptions are the module's business), never modify or copy a
// frame it was given, never block a sender on a slow client, never log
// message contents, and never keep a connection open past its Hub's Stop.
package ws
