// Package api is shoal's HTTP API: one chi router with every route under
// /v1, the middleware every request goes through (request id, slog access
// log, Prometheus metrics, panic recovery, body-size limit, bearer auth), the node's own endpoints (health, status, members, cluster and Raft
// administration, the internal endpoints followers use to reach the leader)
// and the mount point of each module's routes.
//
// Handlers return errors; httpjson writes every failure in the one JSON
// shape. The package never applies Raft commands for modules and never
// decides module semantics: modules mount their own routes.
package api
