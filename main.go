// Command shoal is the shoal cluster agent and its command-line client in
// one binary: `shoal agent` runs a node, the other commands talk to one.
package main

import (
	"os"

	"shoal/internal/cli"

	_ "shoal/modules/all" // the modules this binary ships
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
