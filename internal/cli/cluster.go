package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"shoal/client"
)

// requestTimeout is the default --timeout of one-shot client commands.
const requestTimeout = 30 * time.Second

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("status", "", "Show the node's view of itself and the cluster.", requestTimeout, stdout, stderr)
	out := c.outputFlag("aligned field: value lines")
	return c.run(ctx, args, noArgs, func(ctx context.Context, cl *client.Client, _ []string) int {
		s, err := cl.Status(ctx)
		if err != nil {
			return c.fail(err)
		}
		if out.json() {
			return c.printJSON(s.Raw)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "node:\t%s\n", s.Node)
		if s.Role == "client" {
			// A light member has no Raft state of its own.
			fmt.Fprintf(tw, "role:\tclient (no raft state; shoal members and shoal raft peers show the servers)\n")
			fmt.Fprintf(tw, "version:\t%s\n", orDash(s.Version))
		} else {
			fmt.Fprintf(tw, "leader:\t%s\n", orDash(s.Leader))
			fmt.Fprintf(tw, "version:\t%s\n", orDash(s.Version))
			fmt.Fprintf(tw, "raft:\t%s, term %d, commit %d, applied %d\n", orDash(s.Raft.State), s.Raft.Term, s.Raft.CommitIndex, s.Raft.AppliedIndex)
			fmt.Fprintf(tw, "voters:\t%s\n", joinOrDash(s.Raft.Voters))
			fmt.Fprintf(tw, "non-voters:\t%s\n", joinOrDash(s.Raft.NonVoters))
		}
		fmt.Fprintf(tw, "members:\t%d\n", s.Members)
		fmt.Fprintf(tw, "modules:\t%s\n", joinOrDash(s.Modules))
		for _, name := range s.SectionNames() {
			for _, l := range sectionLines(name, s.Sections[name]) {
				fmt.Fprintf(tw, "%s:\t%s\n", l[0], l[1])
			}
		}
		return c.flush(tw)
	})
}

func runMembers(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("members", "", "List the members of the cluster as the node sees them.", requestTimeout, stdout, stderr)
	out := c.outputFlag("aligned columns")
	return c.run(ctx, args, noArgs, func(ctx context.Context, cl *client.Client, _ []string) int {
		ms, err := cl.Members(ctx)
		if err != nil {
			return c.fail(err)
		}
		return printList(c.cmdline, out.json(), ms, "NAME\tADDR\tSTATUS\tROLE\tSUFFRAGE\tLEADER\tPROBLEM", func(m client.Member) string {
			return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s", m.Name, m.Addr, orDash(m.Status), orDash(m.Role), orDash(m.RaftSuffrage), yesOrDash(m.Leader), orDash(m.Problem))
		})
	})
}

func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("health", "", "Check that the node is ready to serve: print one line, exit 0 when\n"+
		"ready and 1 otherwise. Needs no shell, so it can be a container healthcheck.\n"+
		"With --wait, wait until the node is ready (the cluster formed or joined,\n"+
		"a leader elected, the node caught up), showing on a terminal what it\n"+
		"still waits for.", 5*time.Second, stdout, stderr)
	live := c.fs.Bool("live", false, "check only that the process answers (liveness), not readiness")
	wait := c.fs.Duration("wait", 0, "wait up to this long for the node to be ready (or live with --live), asking every 500ms (raises --timeout to it)")
	return c.run(ctx, args, noArgs, func(ctx context.Context, cl *client.Client, _ []string) int {
		if *wait < 0 {
			return c.usageError("--wait must not be negative")
		}
		check, what := cl.Ready, "ready"
		if *live {
			check, what = cl.Live, "live"
		}
		var err error
		if *wait > 0 {
			err = waitFor(ctx, c.cmdline, *wait, "waiting for the node to be "+what, check)
		} else {
			err = check(ctx)
		}
		if err != nil {
			fmt.Fprintln(stderr, errorLine(err)+readyChecks(err))
			return exitFailure
		}
		fmt.Fprintln(stdout, what)
		return exitOK
	})
}

// waitFor calls check every 500ms until it succeeds or wait runs out (it
// then returns check's last error), showing on a terminal what it waits
// for. Each check is bounded by the smaller of 5s and what is left. wait
// replaces the command's --timeout, but a cancel of ctx still stops it.
func waitFor(parent context.Context, c *cmdline, wait time.Duration, label string, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), wait)
	defer cancel()
	stop := context.AfterFunc(parent, func() {
		if !errors.Is(parent.Err(), context.DeadlineExceeded) {
			cancel()
		}
	})
	defer stop()
	bar := c.progress(label)
	defer bar.done()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		err := check(cctx)
		ccancel()
		if err == nil {
			return nil
		}
		if reasons := readyChecks(err); reasons != "" {
			bar.status(strings.Trim(reasons, " []"))
		} else {
			bar.status(errorText(err))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up waiting after %s: %w", humanDuration(wait), err)
		case <-tick.C:
		}
	}
}

// readyChecks returns the failed readiness checks that err carries as
// " [name: reason; ...]", sorted by name, or "" if it carries none.
func readyChecks(err error) string {
	checks := client.ReadyChecks(err)
	if len(checks) == 0 {
		return ""
	}
	names := make([]string, 0, len(checks))
	for k := range checks {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = k + ": " + checks[k]
	}
	return " [" + strings.Join(parts, "; ") + "]"
}

func runJoin(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("join", "ADDR...", "Make the node join a cluster through the gossip addresses (host:port)\n"+
		"of one or more existing members. With --wait, wait until the node is\n"+
		"ready in the cluster it joined, showing on a terminal what it still\n"+
		"waits for.", requestTimeout, stdout, stderr)
	wait := c.fs.Duration("wait", 0, "after joining, wait up to this long for the node to be ready (0: do not wait)")
	atLeastOne := func(addrs []string) string {
		if len(addrs) == 0 {
			return "at least one address is required"
		}
		return ""
	}
	return c.run(ctx, args, atLeastOne, func(ctx context.Context, cl *client.Client, addrs []string) int {
		if *wait < 0 {
			return c.usageError("--wait must not be negative")
		}
		if err := cl.Join(ctx, addrs); err != nil {
			return c.fail(err)
		}
		fmt.Fprintf(stdout, "joined through %s\n", strings.Join(addrs, ", "))
		if *wait > 0 {
			if err := waitFor(ctx, c.cmdline, *wait, "waiting for the node to be ready", cl.Ready); err != nil {
				fmt.Fprintln(stderr, errorLine(err)+readyChecks(err))
				return exitFailure
			}
			fmt.Fprintln(stdout, "ready")
		}
		return exitOK
	})
}

func runLeave(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("leave", "", "Make the node leave the cluster gracefully.", requestTimeout, stdout, stderr)
	return c.run(ctx, args, noArgs, func(ctx context.Context, cl *client.Client, _ []string) int {
		if err := cl.Leave(ctx); err != nil {
			return c.fail(err)
		}
		fmt.Fprintln(stdout, "left the cluster")
		return exitOK
	})
}

func runRaft(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runGroup(ctx, "raft", "Inspect and administer the Raft configuration", []subcommand{
		{"peers", "list the servers of the Raft configuration", runRaftPeers},
		{"remove", "remove a server from the Raft configuration", runRaftRemove},
		{"transfer-leadership", "make the leader hand leadership to another voter", runRaftTransfer},
	}, args, stdout, stderr)
}

func runRaftPeers(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("raft peers", "", "List the servers of the Raft configuration.", requestTimeout, stdout, stderr)
	out := c.outputFlag("aligned columns")
	return c.run(ctx, args, noArgs, func(ctx context.Context, cl *client.Client, _ []string) int {
		peers, err := cl.RaftPeers(ctx)
		if err != nil {
			return c.fail(err)
		}
		return printList(c.cmdline, out.json(), peers, "ID\tADDRESS\tSUFFRAGE\tLEADER", func(p client.RaftPeer) string {
			return fmt.Sprintf("%s\t%s\t%s\t%s", p.ID, p.Address, orDash(p.Suffrage), yesOrDash(p.Leader))
		})
	})
}

func runRaftRemove(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("raft remove", "NAME", "Remove the server NAME from the Raft configuration.", requestTimeout, stdout, stderr)
	return c.run(ctx, args, exactlyOne("server name"), func(ctx context.Context, cl *client.Client, pos []string) int {
		if err := cl.RemovePeer(ctx, pos[0]); err != nil {
			return c.fail(err)
		}
		fmt.Fprintf(stdout, "removed %s from the raft configuration\n", pos[0])
		return exitOK
	})
}

func runRaftTransfer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("raft transfer-leadership", "", "Make the leader hand leadership to another voter.", requestTimeout, stdout, stderr)
	return c.run(ctx, args, noArgs, func(ctx context.Context, cl *client.Client, _ []string) int {
		if err := cl.TransferLeadership(ctx); err != nil {
			return c.fail(err)
		}
		fmt.Fprintln(stdout, "leadership transferred")
		return exitOK
	})
}

// printJSON prints a JSON document indented, ending in a newline; a body
// that is not JSON after all is printed as it came.
func (c *cmdline) printJSON(raw []byte) int {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		buf.Reset()
		buf.Write(bytes.TrimSpace(raw))
	}
	buf.WriteByte('\n')
	if _, err := c.stdout.Write(buf.Bytes()); err != nil {
		return c.fail(fmt.Errorf("write output: %w", err))
	}
	return exitOK
}

// encodeJSON prints v as indented JSON.
func (c *cmdline) encodeJSON(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return c.fail(fmt.Errorf("encode output: %w", err))
	}
	return c.printJSON(b)
}

func (c *cmdline) flush(tw *tabwriter.Writer) int {
	if err := tw.Flush(); err != nil {
		return c.fail(fmt.Errorf("write output: %w", err))
	}
	return exitOK
}

// printList prints items as indented JSON when asJSON is set, otherwise as
// a table: the header row, then one row per item, columns separated by
// tabs.
func printList[T any](c *cmdline, asJSON bool, items []T, header string, row func(T) string) int {
	if asJSON {
		return c.encodeJSON(items)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, it := range items {
		fmt.Fprintln(tw, row(it))
	}
	return c.flush(tw)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func joinOrDash(list []string) string {
	if len(list) == 0 {
		return "-"
	}
	return strings.Join(list, ", ")
}

func yesOrDash(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}
