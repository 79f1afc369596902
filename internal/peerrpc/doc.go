// Package peerrpc is how nodes call each other: requests and answers
// between named nodes over the cluster port, and long-lived byte streams.
//
// A client keeps one connection per peer and pipelines calls on it: many
// calls are in flight at once, each framed with an id, answered in any
// order, so a busy follower forwarding writes pays no round trip of
// connection set-up and no HTTP parsing per batch. A server runs each call
// in its own goroutine, bounded per connection.
//
// Every failed call says which of two things happened, because a caller
// that retries must know: ErrNotDelivered (the request never left this
// node: no connection, or the call was still queued when it gave up; a
// retry cannot apply it twice) or ErrOutcomeUnknown (the request was
// written, and no answer came: the peer may have acted on it). An error the
// peer's handler returned crosses the wire through the error codec the
// caller configures, so a caller can match it as if the call were local.
//
// Streams are separate cluster port connections, one per stream, handed to
// the method's handler after a one-frame handshake: a stream never waits
// behind calls, and calls never wait behind a stream.
//
// What this package must never do: block a caller beyond its context (a
// peer that stops reading costs a write deadline, not a hang); keep a
// goroutine after Close returns; report a written request as not
// delivered; read a frame larger than MaxFrame.
//
// Authentication is the cluster port's: a call's From is the name the
// connection's header (and, with mutual TLS, the peer's certificate)
// carries.
package peerrpc
