// Package locks is shoal's "locks" module: distributed counting semaphores
// and read/write locks whose whole state (names, limits, holders, leases,
// fencing tokens and the queues of blocking acquires) lives in the shared
// Raft state machine and its snapshots, so it survives any minority
// failure, leader changes and full-cluster restarts.
//
// Semantics, in short (docs/locks.md has the long form):
//
//   - A semaphore has a limit n ≥ 1; a lock has readers (many) or one
//     writer. A holder (a client-chosen id) holds a slot under a lease
//     (TTL), until it releases it, the lease expires, or the semaphore is
//     deleted. Acquiring again while holding renews the lease and returns
//     the same token.
//   - Every grant gets a fencing token: the Raft index of the command that
//     granted it (the following numbers when one command grants several),
//     strictly increasing across the module's whole history.
//   - Blocking acquires queue in FIFO order; the head of the queue blocks
//     everyone behind it, so a waiting writer holds back new readers.
//   - Lease expiry is decided by the leader and committed as a command; a
//     new leader first re-arms every lease to at least its full TTL (see
//     leader.go), so a leader change never shortens a lease.
//
// Routes (mounted under /v1 by the API):
//
//	GET    /v1/semaphores                 list semaphores
//	PUT    /v1/semaphores/{name}          create {"limit":n}; ?update changes the limit
//	GET    /v1/semaphores/{name}          limit, holders, waiting
//	DELETE /v1/semaphores/{name}          release all, fail waiters with 410
//	POST   /v1/semaphores/{name}/acquire  {"holder","ttl","wait","create_limit","retries","min_wait","max_wait"}
//	POST   /v1/semaphores/{name}/release  {"holder"}
//	POST   /v1/semaphores/{name}/renew    {"holder","ttl"}
//	GET    /v1/locks                      list locks held or waited for
//	GET    /v1/locks/{name}               mode, holders, waiting
//	POST   /v1/locks/{name}/acquire       {"holder","mode":"read|write","ttl","wait",...}
//	POST   /v1/locks/{name}/release       {"holder"}
//	POST   /v1/locks/{name}/renew         {"holder","ttl"}
//
// Determinism: the state machine (ApplyCommand, Snapshot, Restore) reads no
// clock, no randomness and no local configuration. Lease times come from
// modules.Command.Time (the leader's append time); TTLs, waits and limits
// travel in the commands; the TTL bounds of Config are checked by the node
// that accepts a request and never reach the state machine.
//
// This package must never: answer an acquire before Raft committed it;
// expire a lease from a follower or from local time alone (only committed
// opExpire commands expire, and only once their command time reaches the
// deadline); block the FSM goroutine on a waiting request; leave a
// goroutine running after Stop; import another module.
package locks
