// Package cli is the shoal command line: Main parses the arguments of the
// one shoal binary, runs the chosen command and returns its exit code.
//
// The client commands (status, members, health, join, leave, raft, log)
// talk to a node's HTTP API through package client; their global flags
// --addr and --token fall back to SHOAL_ADDR and SHOAL_TOKEN. Other files of
// this package add commands with RegisterCommand (the agent command that
// runs a node lives in agent.go), and BindEnv gives any flag set the same
// SHOAL_* environment fallback.
//
// Exit codes: 0 success, 1 a failed operation, 2 a usage error. Errors are
// one line on stderr: "shoal: <what failed>: <message> (<code>)".
//
// Habits every command keeps (docs/cli.md): data prints as a table, or
// with -o json (alias --json) in the API's field names; values and data
// given as "-" come from stdin and as "@FILE" from a file (--raw keeps
// them literal); long operations draw a progress line on stderr only when
// it is a terminal; following commands report each reconnect on stderr and
// give up after --retry-for. "shoal completion" builds its scripts by
// asking every command to describe itself (describeArg), so they follow
// the command table and flag sets.
//
// This package must never call os.Exit or read os.Args: it returns the
// exit code to main, so every command runs inside tests. Only log tail
// installs a signal handler, and only while it runs.
package cli
