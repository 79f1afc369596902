// Package client is the Go client of shoal's objectsync module: it keeps
// a websocket to one node of a cluster (trying the next on failure, with
// back-off), holds the current state of every object it subscribes to
// (by id or wildcard pattern), applies the server's RFC 6902 patches, and
// resumes after a lost link with have_version so that the server sends
// only the patches it missed while they are in the object's history. It
// also acts as a master: claim an id, then set whole objects or send
// patches; SetWait waits until the write is committed and seen.
//
// States are kept in the canonical JSON of objectsync (sorted keys,
// numbers as doubles), so a subscriber's bytes equal the server's and the
// master's.
//
// This package must never apply a patch to a state it does not start
// from (it counts that as a violation and drops the state instead), and
// never leave a goroutine running after Close.
package client
