// Package logging builds shoal's slog loggers and adapts the loggers of the
// libraries shoal embeds (memberlist's *log.Logger, raft's hclog.Logger) into
// the same slog handler, so a node's output is one stream in one format.
//
// It holds no global state: every node gets its own logger.
package logging
