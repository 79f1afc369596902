// Package acl is the "acl" module: scoped API tokens, kept in the shared
// Raft log, in the manner of Consul's ACL tokens. It decides what a token
// may do; it does not, by itself, guard any request: the API's auth
// middleware does that with what this package offers (see "Wiring").
//
// # Model
//
// A token has an accessor id (a UUID, not secret, which names it in the
// API), a unique name, 1 to 64 rules, a creation time and an optional
// expiry. Its secret (32 random bytes, base64url without padding) is
// made by the node that takes the create request and shown once, in the
// answer; only its SHA-256 travels in the Raft command and is stored, so
// neither the log, snapshots nor backups hold a usable credential.
//
// A rule is one of:
//
//	operator                  node administration: join, leave, raft peers,
//	                          leadership transfer, snapshot save/restore, the
//	                          gossip keyring, and ACL management
//	MODULE:ACTION:PATTERN     MODULE: kv, logs, locks, objects, files,
//	                          cluster (status, members, metrics) or * (all of
//	                          those, never operator)
//	                          ACTION: read < write < admin (each implies the
//	                          ones before)
//	                          PATTERN: * or a literal name prefix
//
// Patterns are prefixes, as in Consul's key_prefix rules: "config/"
// matches the keys config/a and config/b/c; "orders" matches the log
// orders and also orders-eu (write "orders" only if that is intended,
// there is no exact-match form); "*" is the empty prefix and matches
// every name. '*' anywhere else is refused ("config/*" is written
// "config/"). cluster rules take "*", as cluster resources have no names.
// A rule prints back canonically (Rule.String), which ParseRule reads as
// the same rule; commands and snapshots hold only canonical rules.
//
// A request maps to a Resource (ResourceOf): a module, an action and a
// name, from the route table in resource.go, which lists every route the
// API serves. A list with a prefix (kv's and files' ?prefix=, objects'
// ?pattern= up to its first '*') is a read of that prefix, so a rule's
// prefix must cover the requested prefix; an unrestricted list is a read
// of "" and needs "*". Creating, configuring or deleting a whole log or
// semaphore is admin; writing data is write. The objects websocket reads
// and writes whatever its messages name, so it needs objects:write:*.
//
// Token.Allows grants a resource when any rule does; Authenticate finds a
// token by its secret in this node's state and refuses an expired one by
// this node's clock. The leader's expiry loop removes expired tokens from
// the state (opExpire, decided by the command's time so every node
// agrees); OnRevoke callbacks hear of every token that leaves the state.
//
// # Wiring, still to do
//
// api/, internal/cli, client/ and docs/ do not use this package yet. The
// middleware (api/middleware.go authenticate) should, for a request
// inside the authenticated group:
//
//  1. Take the bearer secret as today (header, or ?token= for a stream).
//  2. If it equals --token (constant-time, as now), allow everything:
//     --token stays the bootstrap management token, with every right,
//     including operator, and is the only way in on a fresh cluster
//     (create the first tokens with it).
//  3. Else tok, ok := acl.Authenticate(secret); !ok → 401 unauthorized.
//  4. res, ok := acl.ResourceOfRequest(r) (the escaped path and raw query,
//     as chi routes them; the console's /ui/api/ calls arrive rewritten);
//     !ok (an unmapped route, or a malformed name) → 403; otherwise
//     !tok.Allows(res) → 403 forbidden ({"error":{"code":"forbidden"}}).
//  5. Register acl.OnRevoke to close the streams (SSE, websockets) the
//     revoked accessor opened: keep the accessor id in the request context
//     and index open streams by it; the callback must only hand the id to
//     a goroutine, it runs on the FSM goroutine.
//
// api may import this package (acl imports nothing of api's) for
// ResourceOf, Resource and Token; it finds the node's module through an
// interface it declares (Authenticate, OnRevoke) by a type assertion on
// Deps.Modules, so a node without the acl module keeps today's behaviour
// (--token only). Decisions left to the wiring: whether scoped tokens
// work when --token is empty (today that turns authentication off; the
// simplest rule is that ACLs need --token); and whether a secret unknown
// here is retried once after a Raft read barrier (Authenticate reads this
// node's state, so a token created through another node is refused here
// for the moment until this node applied its create).
//
// Still to do beside the middleware: rate limits and stream limits per
// token (by accessor id), the CLI (shoal acl token create, list, read,
// revoke), the docs (docs/acl.md, the metrics shoal_acl_tokens and
// shoal_acl_commands_total{op}, the acl section of /v1/status, the
// --acl-expiry-interval and --acl-max-ttl flags, the module in
// "shoal status" examples), and moving Tag to modules/tags.go as
// TagACL = 6.
//
// # What it must never do
//
// Store, log or commit a secret; let a follower decide an expiry (only
// the command's time does); or let "*" rules reach operator resources.
package acl
