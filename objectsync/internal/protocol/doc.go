// Package protocol is the wire protocol of objectsync's websocket
// (subprotocol "shoal.objects.v1": one JSON object per text frame; or
// "shoal.objects.v2", where a server frame may carry several, one per
// line), told apart by its "type". It holds the message shapes shared by the module
// and its Go client, and the one decoder of client messages, which checks
// every field a type requires so that the module only ever sees a
// well-formed request.
//
// This package must never look at object contents beyond checking that
// they are JSON (the module canonicalises them), and never panic on any
// input.
package protocol
