package cli

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
)

// Version is the version of the binary, set at build time with
// -ldflags "-X shoal/internal/cli.Version=v1.2.3".
var Version = "dev"

// Exit codes returned by Main.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// command is one top-level command of the binary.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
	// opaque marks a command added with RegisterCommand: completion does
	// not run it to describe its flags (it may not know describeArg).
	opaque bool
}

// registered holds the commands added by RegisterCommand, usually from
// init functions of other files of this package. It holds functions, never
// instances, so several nodes in one process share nothing through it.
var (
	registeredMu sync.Mutex
	registered   []command
)

// RegisterCommand adds a top-level command to the binary: run receives the
// arguments after the command name and returns the exit code. It is meant
// to be called from init, like database/sql.Register; it panics when name
// is empty or already taken, or run is nil. It is safe for concurrent use.
func RegisterCommand(name, summary string, run func(args []string, stdout, stderr io.Writer) int) {
	if name == "" || strings.ContainsAny(name, " \t") || strings.HasPrefix(name, "-") {
		panic(fmt.Sprintf("cli: RegisterCommand: invalid command name %q", name))
	}
	if run == nil {
		panic(fmt.Sprintf("cli: RegisterCommand: nil run function for %q", name))
	}
	addCommand(command{name: name, summary: summary, opaque: true, run: func(_ context.Context, args []string, stdout, stderr io.Writer) int {
		return run(args, stdout, stderr)
	}})
}

// registerCommand is RegisterCommand for the commands of this package: they
// take the context Main's caller gave (tests pass stdin in it) and describe
// themselves to completion.
func registerCommand(name, summary string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) int) {
	addCommand(command{name: name, summary: summary, run: run})
}

// addCommand registers c; it panics if its name is taken.
func addCommand(c command) {
	name := c.name
	registeredMu.Lock()
	defer registeredMu.Unlock()
	if name == "help" || slices.ContainsFunc(builtinCommands(), func(c command) bool { return c.name == name }) ||
		slices.ContainsFunc(registered, func(c command) bool { return c.name == name }) {
		panic(fmt.Sprintf("cli: RegisterCommand: command %q registered twice", name))
	}
	registered = append(registered, c)
}

// builtinCommands returns the commands defined in this package's own files.
func builtinCommands() []command {
	return []command{
		{name: "status", summary: "show the node's view of the cluster", run: runStatus},
		{name: "members", summary: "list the members of the cluster", run: runMembers},
		{name: "health", summary: "check that the node is ready (exit 0) or not (exit 1)", run: runHealth},
		{name: "join", summary: "make the node join a cluster through existing members", run: runJoin},
		{name: "leave", summary: "make the node leave the cluster gracefully", run: runLeave},
		{name: "raft", summary: "inspect and administer the Raft configuration", run: runRaft},
		{name: "log", summary: "publish to, read and follow logs", run: runLog},
		{name: "version", summary: "print the version of this binary", run: runVersion},
		{name: "keygen", summary: "print a new cluster secret", run: runKeygen},
		{name: "keyring", summary: "manage the cluster secrets of every member", run: runKeyring},
		{name: "snapshot", summary: "back up and restore the cluster's raft state", run: runSnapshot},
		{name: "completion", summary: "print a shell completion script (bash, zsh or fish)", run: runCompletion},
	}
}

// commands returns every command, sorted by name.
func commands() []command {
	registeredMu.Lock()
	all := append(builtinCommands(), registered...)
	registeredMu.Unlock()
	slices.SortFunc(all, func(a, b command) int { return strings.Compare(a.name, b.name) })
	return all
}

// Main runs the shoal command line with args (without the program name)
// and returns the exit code: 0 on success, 1 when the operation failed, 2
// on a usage error. It blocks until the command is done; log tail and
// registered commands such as agent run until interrupted.
func Main(args []string, stdout, stderr io.Writer) int {
	return run(context.Background(), args, stdout, stderr)
}

// run is Main with a context, so tests can stop long-running commands.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			return run(ctx, []string{rest[0], "-h"}, stdout, stderr)
		}
		printUsage(stdout)
		return exitOK
	case "-version", "--version":
		return runVersion(ctx, rest, stdout, stderr)
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, rest, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "shoal: unknown command %q\nRun 'shoal help' for a list of commands.\n", name)
	return exitUsage
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, "shoal runs and administers a shoal cluster.\n\nUsage:\n  shoal <command> [arguments]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	_ = tw.Flush() // the writer is the caller's terminal; nothing to do on failure
	fmt.Fprint(w, "\nRun 'shoal <command> -h' for the flags of a command.\n"+
		"Client commands read --addr and --token from SHOAL_ADDR and SHOAL_TOKEN when not given,\n"+
		"print data as a table or with -o json (the API's field names), and read values\n"+
		"given as - from stdin and as @FILE from a file.\n"+
		"'shoal completion bash|zsh|fish' prints a shell completion script.\n")
}

// subcommand is one command of a group such as "raft" or "log".
type subcommand struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// runGroup dispatches args to one of subs; group is the group's name.
func runGroup(ctx context.Context, group, summary string, subs []subcommand, args []string, stdout, stderr io.Writer) int {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage:\n  shoal %s <command> [arguments]\n\n%s.\n\nCommands:\n", group, summary)
		tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
		for _, s := range subs {
			fmt.Fprintf(tw, "  %s\t%s\n", s.name, s.summary)
		}
		_ = tw.Flush() // see printUsage
		fmt.Fprintf(w, "\nRun 'shoal %s <command> -h' for the flags of a command.\n", group)
	}
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	if len(args) == 1 && args[0] == describeArg {
		for _, s := range subs {
			fmt.Fprintf(stdout, "sub %s\t%s\n", s.name, s.summary)
		}
		return exitOK
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			return runGroup(ctx, group, summary, subs, []string{args[1], "-h"}, stdout, stderr)
		}
		usage(stdout)
		return exitOK
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "shoal %s: unknown command %q\nRun 'shoal %s help' for a list of commands.\n", group, args[0], group)
	return exitUsage
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	cl := newCmdline("version", "", "Print the version of this binary.", stdout, stderr)
	pos, code, ok := cl.parse(args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return cl.usageError("unexpected argument %q", pos[0])
	}
	fmt.Fprintf(stdout, "shoal %s (%s %s/%s)\n", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
