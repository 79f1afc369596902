// Package moduletest runs one module instance in a unit test without a
// node: a modules.Host whose parts the test chooses (Raft and gossip are
// fakes, or absent), a function-field modules.Raft, the module's routes on
// a test server, and a helper for its metrics. Its logs go to t.Log.
//
// It is for tests of a module's own logic only (state machines, handlers,
// codecs). Anything that depends on real consensus or gossip is tested on a
// real in-process cluster with internal/testcluster instead, which never
// fakes either.
//
// This package must never be imported by non-test code, never fake a
// whole cluster, and never write outside the test's temporary directories.
package moduletest
