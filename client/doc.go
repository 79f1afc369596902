// Package client is the Go client for shoal's HTTP API: cluster status,
// membership and Raft administration, health checks, and the log module
// (publish, read, list, retention and deletion, and a resuming
// Server-Sent Events tail whose reconnects a caller may watch and bound).
//
// A Client is safe for concurrent use by many goroutines and keeps its
// connections alive, so one Client should be shared by all the goroutines
// of a process (the load generator runs 64 of them on one Client).
//
// Every response outside 2xx is returned as an *httpjson.Error (also
// reachable as client.Error) rebuilt from the API's error shape
// {"error":{"code","message"}}, wrapped with the operation that failed;
// errors.Is matches it against any sentinel with the same code.
//
// This package must never import the server side of shoal (api, consensus,
// the modules): it speaks only the wire format, so that it stays usable from
// any program and never drags Raft or memberlist into a client binary.
package client
