// Package sse serves Server-Sent Events (text/event-stream) for the modules
// that stream to clients: kv's watches and logstream's log streams.
//
// It owns the parts of a stream that do not depend on what is streamed:
// the response header, the framing of id:, event:, data: and retry:
// lines, error events in the API's error shape (see httpjson) named
// stream_error (StreamError; "error" is what a browser's EventSource fires
// for a lost connection), the heartbeat comment,
// a write deadline per flush so a client that stops reading is dropped,
// and the set of open streams that a module's Stop ends (http.Server's
// Shutdown neither waits for nor closes them).
//
// A module opens a stream from its handler with Streams.Open, queues
// events on it and flushes; what to send, and when, stays in the module.
//
// This package must never decide what a stream carries, start goroutines
// of its own, or keep a stream writing past its Streams' Stop.
package sse
