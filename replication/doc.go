// Package replication is shoal's "replication" module: the replication
// leader keeps the authoritative copy of a directory (--replication-dir)
// and streams every change to all followers, which keep a byte-identical
// copy on their own disk, as LavinMQ's clustering does for its message
// store.
//
// Roles (roles.go). The replication leader is the node Raft records as
// such: the Raft leader claims it for itself when it is in the in-sync set
// recorded in Raft (insync.go), and otherwise for a live member of the set,
// never for a node outside it. Every other node follows the recorded leader:
// it opens a module stream to it over the cluster port (authenticated by
// the port, so no password travels), catches up by checksums, then applies
// live actions and acknowledges the bytes it applied (docs/replication.md
// has the protocol byte for byte).
//
// Durability. A write is acknowledged to its client only when it is on the
// leader's disk (fsynced with --replication-fsync) and every member of the
// in-sync set, and at least --replication-min-acks followers, acknowledged
// it. A follower with no ack progress for --replication-ack-timeout leaves
// the in-sync set, and that removal is committed through Raft before any
// later write is acknowledged without it. So every acknowledged write is
// on every member of the in-sync set, and a new leader taken from the set
// loses none.
//
// Outside writers. Processes on the leader's machine may also write into
// the directory; the leader notices their changes (fsnotify and a periodic
// scan, watch.go) and streams growth as appends and other changes as
// replaces, without acknowledging anything to them. Hooks (hooks.go) tell a
// co-located application when this node gains or loses leadership.
//
// Routes (mounted under /v1 by the API):
//
//	PUT    /v1/files/{path...}          replace the file with the body
//	POST   /v1/files/{path...}?append   append the body
//	DELETE /v1/files/{path...}          delete the file
//	GET    /v1/files/{path...}          this node's copy (Range, ETag = sha256)
//	GET    /v1/files?prefix=            list path, size, sha256, mtime
//	GET    /v1/replication/status       leader, in-sync set, followers' progress
//
// This package must never: touch a file outside its directory (paths are
// checked where they enter, and every file operation goes through an
// os.Root); acknowledge a write that the in-sync set has not acknowledged;
// block writes on the leader while a follower catches up; block the FSM
// goroutine or a library callback; leave a goroutine running after Stop;
// import another module.
package replication
