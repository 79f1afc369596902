// Package segment is the on-disk entry store of the log module: one Store
// per log, holding the log's entries in append-only segment files with a
// sparse index in memory, so that a node's memory grows with the number of
// logs and segments, never with the entries or bytes they retain.
//
// A Store numbers entries with consecutive offsets (the log module's
// per-log index). Every change it makes (an appended batch, a trim) is
// written with the Raft index of the command that made it, and a Store
// knows the Raft index of the last change it holds (Applied), even after a
// crash: recovery derives it from the last complete record on disk. The
// log module skips a replayed command at or below Applied, so a restart
// never duplicates and never loses an entry.
//
// Durability rests on the Raft log, not on this package: appends are not
// fsynced one by one. A Store fsyncs when it seals a segment, before it
// deletes trimmed segments, after it cut a torn tail, and when asked by
// Sync, which the module must call before Raft may compact its log past
// the Store's applied index (when a snapshot is persisted).
//
// Snapshots copy no entries: Snapshot hard-links the segment files into a
// directory and returns a Manifest; Install builds a store from a
// manifest's files fetched from elsewhere (a peer). The on-disk format,
// the recovery rules and why this is safe are in docs/log-storage.md.
//
// Threading: one goroutine (the module's FSM goroutine) writes: Append,
// AppendTrim, Trim, Snapshot, Close and Delete. Sync may run on another
// goroutine at the same time (a snapshot's Persist). Readers (First, Next,
// Applied, Stats, Read, OffsetAtTime, OffsetForBytes) run concurrently
// with the writer and with each other; a read never blocks the writer for
// longer than a few field copies, because files are read outside the lock
// through reference-counted segment handles. Install and RemoveLeftovers
// work on directories no open Store uses.
//
// This package must never: serve a record it has not verified (length and
// CRC32C); serve an entry past a torn or corrupt tail; decide anything by
// the clock (callers pass command times); keep entries in memory beyond
// the byte-bounded Cache; import the log module or any other module.
package segment
