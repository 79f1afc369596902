// Package logstream is shoal's "log" module: named, append-only logs kept
// in the shared Raft state machine, with exactly-once publishing by
// client-chosen id, paginated reads and Server-Sent Event streams.
//
// A log is created by its first append. Its entries are numbered from 1
// with no gaps (a per-log index, unrelated to the Raft index); the oldest
// entries are trimmed once a log holds more than --log-max-entries. An
// entry published with an id that was published to the same log within
// --log-dedup-window returns the original index instead of appending again,
// on every node and across leader changes and restarts, because the dedup
// table is part of the replicated state and of its snapshots.
//
// Routes (mounted under /v1 by the API):
//
//	POST /v1/logs/{name}         publish one entry or a batch; answers once committed
//	GET  /v1/logs                list logs with their first and last index
//	GET  /v1/logs/{name}         read a page of entries (?from=&limit=&consistent=)
//	GET  /v1/logs/{name}/stream  Server-Sent Events from ?from= or Last-Event-ID on
//
// An entry published without an id (or with "") is stored with an empty id
// and never deduplicated: the server does not invent ids.
//
// Determinism: the state machine (ApplyCommand, Snapshot, Restore) reads no
// clock, no randomness and no local configuration. Entry times and dedup
// expiry use modules.Command.Time, and the retention limit and dedup window
// are stamped into every command by the node that submitted it, so nodes
// with different flags still hold identical state.
//
// This package must never: acknowledge a publish before Raft committed it;
// block the FSM goroutine on a reader or a stream (streams are woken by
// closing a channel); serve a stream past Stop; import another module.
package logstream
