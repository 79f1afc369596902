package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

// scenario is one benchmark subcommand. run parses its own flags from args
// and writes its report to out; it must stop everything it started before
// it returns, also when ctx is cancelled (Ctrl-C).
type scenario struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, out io.Writer) error
}

// scenarios holds the registered subcommands; register fills it from the
// init functions of the scenario files, so it is complete before main runs
// and read-only afterwards.
var scenarios []scenario

// register adds a scenario. It panics on an empty or duplicate name or a
// nil run function, like database/sql.Register: that is a programming
// error found on the first run.
func register(s scenario) {
	if s.name == "" || s.run == nil {
		panic("bench: register: scenario needs a name and a run function")
	}
	if slices.ContainsFunc(scenarios, func(o scenario) bool { return o.name == s.name }) {
		panic("bench: register: duplicate scenario " + s.name)
	}
	scenarios = append(scenarios, s)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	i := slices.IndexFunc(scenarios, func(s scenario) bool { return s.name == args[0] })
	if i < 0 {
		fmt.Fprintf(stderr, "bench: unknown scenario %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	s := scenarios[i]

	// The first Ctrl-C or SIGTERM cancels ctx: the scenario stops its
	// load, then its processes, and removes its directory. Later signals
	// are absorbed so that the cleanup (bounded in time) is not cut short.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	err := s.run(ctx, args[1:], stdout)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case ctx.Err() != nil:
		fmt.Fprintf(stderr, "bench %s: interrupted: %v\n", s.name, err)
		return 130
	default:
		fmt.Fprintf(stderr, "bench %s: %v\n", s.name, err)
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: bench <scenario> [flags]   (bench <scenario> -h for its flags)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "scenarios:")
	names := make([]string, 0, len(scenarios))
	for _, s := range scenarios {
		names = append(names, s.name)
	}
	slices.Sort(names)
	for _, n := range names {
		i := slices.IndexFunc(scenarios, func(s scenario) bool { return s.name == n })
		fmt.Fprintf(w, "  %-13s %s\n", n, strings.TrimSpace(scenarios[i].summary))
	}
}
