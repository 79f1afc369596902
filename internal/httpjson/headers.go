package httpjson

// HeaderAppliedIndex is the response header in which a node reports the
// Raft index it had applied when it served a read (the log and locks
// modules set it on their reads and streams): the state served includes
// every command up to that index. A client that has seen a state, its own
// write included, at index i reads at least as new a state from any node
// that reports i or more, so it can tell whether a read elsewhere, on a
// follower that may lag, already includes that write.
const HeaderAppliedIndex = "X-Shoal-Applied-Index"
