// Command bench compares shoal with a peer system on one machine: it
// starts both clusters side by side on 127.0.0.1, drives them in
// alternating rounds with the same closed-loop load, and prints one table
// with the ratio shoal/peer.
//
// Usage (from the repository root or from bench/):
//
//	bench/run log [-duration 10s] [-rounds 2] [-clients 64] [-targets all|leader] [-peers etcd,jetstream]
//	bench/run files [-total 1GiB] [-files 1000] [-peer-fsync]   (replication vs rsync and raw TCP)
//	bench/run objects [-subscribers 1000] [-duration 30s] [-idle 1000]  (objectsync vs centrifuge)
//	bench/run log-retention [-entries 10000000] [-size 256] [-nodes 1,3] [-repo ..]  (issue #15: RSS, disk, restart of a full log vs a JetStream stream)
//	bench/run kv [-sizes 16,64] [-shapes nonvoters,clients] [-parts convergence,antientropy,gossipsim]  (kv propagation vs Serf; docs/scaling.md)
//	cd bench && go run . log
//
// Each scenario is a subcommand in its own file that registers itself from
// init (log.go is the first: log publish against etcd put and NATS
// JetStream publish, whose server is built once with go install into the
// user's cache directory; see jetstream.go). A scenario owns
// a run (see env.go): a temporary directory for binaries, data and process
// logs, and a process group that stops every child it started, in reverse
// order, when the scenario returns, fails or is interrupted.
//
// This program must never: send traffic anywhere but 127.0.0.1 (every
// address it dials or hands to a child is a loopback address it picked);
// leave a child process or a temporary directory behind; loop without a
// deadline; or live in shoal's module (the peers' client libraries stay
// in bench/go.mod).
package main
