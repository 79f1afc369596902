// Package faultnet injects network partitions into shoal nodes that share one
// test process.
//
// The in-process test cluster runs several nodes on 127.0.0.1, each on its own
// ports, so a partition cannot be made with firewalls. Instead every node owns
// a [Gate] listing the peer addresses (host:port) it must not exchange traffic
// with, and routes its outbound traffic through it:
//
//   - HTTP clients use [Gate.DialContext] as http.Transport.DialContext;
//   - the cluster port (Raft) dials peers with [Gate.DialContext];
//   - memberlist uses the transport from [WrapTransport].
//
// Blocking an address refuses new dials to it, closes the connections the gate
// dialed to it, silently drops gossip packets to it and drops gossip packets
// received from it. A partition between nodes A and B is made symmetric by
// blocking B on A's gate and A on B's gate; that is the test-cluster helper's
// job, not this package's.
//
// # Why outbound filtering is enough for TCP
//
// Inbound TCP connections are never filtered: their source address carries an
// ephemeral port, which cannot be matched to a peer's advertised address.
// It is not needed either. Raft sends every RPC over a connection the sender
// dialed, and memberlist's streams are likewise dialed by the side that
// initiates the exchange, so when both sides block each other no connection
// between them can be opened or kept. Gossip packets (UDP) are different: a
// packet's source is the peer's gossip bind address, so inbound packets are
// filtered too.
//
// # What this package must never do
//
// It must never change behaviour when no partition is configured: production
// nodes pass a nil *Gate, which blocks nothing, and every method is nil-safe.
// It must never resolve host names (addresses are compared as written, with IP
// literals normalised), never sleep or delay traffic, and never hold global
// state: each node has its own Gate.
package faultnet
