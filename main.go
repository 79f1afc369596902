// Command shoal is the shoal cluster agent and its command-line client in
// one binary: `shoal agent` runs a node, the other commands talk to one.
package main

import (
	"os"

	"shoal/internal/cli"

	// The modules this binary ships; each registers itself in init.
	_ "shoal/kv"
	_ "shoal/locks"
	_ "shoal/logstream"
	_ "shoal/objectsync"
	_ "shoal/replication"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
