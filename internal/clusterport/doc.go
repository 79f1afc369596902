// Package clusterport is the node-to-node port: one TCP listener whose
// connections each say, in a short header, what they carry (Raft today),
// which node sent them and which node they are for.
//
// The header exists because an address is not an identity. After a
// restart that hands the nodes each other's addresses, a Raft
// configuration may name a peer at an address where another node, or the
// dialing node itself, now listens. Before this header, such a node
// answered Raft RPCs meant for someone else: a candidate asked itself for
// a vote and counted it twice, and two leaders were elected in one term.
// Now every connection names its intended receiver, and a node refuses a
// connection meant for another node, or one that claims to come from
// itself, before a single RPC is read.
//
// What this package must never do: hand a connection to a consumer before
// its header was read and checked; block the accept loop on a slow peer
// (each header is read on its own goroutine, under a deadline); keep a
// goroutine running after Close returns; log or echo more of a peer's
// header than the bounded names it holds.
//
// The header does not authenticate the sender: a peer could claim any
// name. Authentication belongs to the transport under the header (mutual
// TLS on the cluster port), which this package will carry unchanged.
package clusterport
