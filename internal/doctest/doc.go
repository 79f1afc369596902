// Package doctest checks that shoal's documentation (README.md and
// docs/*.md) agrees with what runs: it runs the documents' examples
// against a real node, so that they cannot drift from what the code does,
// and it checks that every metric they name is on a fresh node's /metrics
// (metrics_test.go). Its tests start real nodes with internal/testcluster
// and build the shoal binary once for the CLI examples.
//
// # The convention
//
// An example runs only when the line right before its fence is a marker:
//
//	<!-- doctest: NAME [OPTION ...] -->
//	```sh
//	curl -s -XPOST localhost:7480/v1/logs/orders -d '{"id":"o-1","data":1}'
//	```
//
// NAME is unique within its document. A ```sh block runs as one script. A
// ```console block runs each "$ " line (continued by a trailing "\") as a
// command of its own, and the lines after it, up to the next "$ ", are
// that command's expected output (none shown: not checked). The expected
// output of a ```sh block is the fence that follows, with its own marker:
//
//	<!-- doctest-output: NAME -->
//	```json
//	{"index":1}
//	```
//
// Options: cluster=N (the document needs N nodes, 1 to 3; node i answers
// on the documented port 7480+10*i, as in the README's 3-node cluster; 2
// starts 3 nodes, as Raft keeps an odd number of voters),
// eventually=DURATION (run the block again until it passes, for reads of
// what gossip still carries to another node), exit=N (the expected exit
// status, 0 by default; in a console block, of every command; 22 is
// curl's for an HTTP error, for an example that shows an error answer).
//
// # How a block runs
//
// Every block of a document runs in order against the same nodes, as a
// reader would run them, with bash -euo pipefail in a temporary directory.
// Before it runs, localhost:PORT and 127.0.0.1:PORT for the documented
// ports (7480, 7490, 7500) become the test nodes' addresses and "/tmp/"
// becomes the test's temporary directory. A preamble defines three shell
// functions, so that the documents keep showing what a reader types: curl
// (adds --fail-with-body, so an HTTP error fails the block, and a time
// limit), shoal (the binary the test built, SHOAL_ADDR pointing at node 0)
// and go ("go run . ARGS" is "shoal ARGS", for the README's tour).
//
// # How output is matched
//
// Only stdout is compared, loosely, by Match: blank lines are ignored; a
// line that is only "..." (or "…") stands for any number of lines; a line
// that starts a JSON value is compared as JSON; any other line as text.
//
//   - Digits never have to match (indexes, times, ports, versions, tokens
//     differ from run to run), nor node names (n1, node2: any "n" or "node"
//     followed by digits).
//   - Text: runs of blanks are one space; "..." inside a line matches any
//     characters.
//   - JSON: an object must have exactly the keys shown, unless it has a
//     "..." member (then at least those); an array must have exactly the
//     elements shown, unless it ends with "..." (then at least those);
//     numbers match any number; strings and booleans must be equal (digits
//     and node names aside); "..." as a value, or as a string, matches
//     anything.
//
// This package must never start a node by hand (only through
// internal/testcluster), use fixed ports, or write outside the test's
// temporary directories.
package doctest
