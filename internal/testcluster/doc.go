// Package testcluster starts real shoal clusters inside a test process: N
// agents built by the same agent.New that main uses, with real memberlist,
// real Raft and real bolt files in t.TempDir(), on 127.0.0.1 with ephemeral
// ports and fast timings. It can stop, kill, restart and partition any node,
// and waits by polling with deadlines (Eventually), never by sleeping.
//
// It must never fake consensus or gossip, never use fixed ports and never
// write outside the test's temporary directories.
package testcluster
