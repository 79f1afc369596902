package cli

import (
	"bytes"
	"context"
	"encoding/json"
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
	c := newCmdline("status", "", "Show the node's view of itself and the cluster.", stdout, stderr)
	cf := c.clientFlags(requestTimeout)
	asJSON := c.fs.Bool("json", false, "print the node's JSON answer instead of a summary")
	pos, cl, code, ok := c.start(args, cf)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return c.usageError("unexpected argument %q", pos[0])
	}
	ctx, cancel := cf.context(ctx)
	defer cancel()
	s, err := cl.Status(ctx)
	if err != nil {
		return c.fail(err)
	}
	if *asJSON {
		return c.printJSON(s.Raw)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "node:\t%s\n", s.Node)
	fmt.Fprintf(tw, "leader:\t%s\n", orDash(s.Leader))
	fmt.Fprintf(tw, "version:\t%s\n", orDash(s.Version))
	fmt.Fprintf(tw, "raft:\t%s, term %d, commit %d, applied %d\n", orDash(s.Raft.State), s.Raft.Term, s.Raft.CommitIndex, s.Raft.AppliedIndex)
	fmt.Fprintf(tw, "voters:\t%s\n", joinOrDash(s.Raft.Voters))
	fmt.Fprintf(tw, "non-voters:\t%s\n", joinOrDash(s.Raft.NonVoters))
	fmt.Fprintf(tw, "members:\t%d\n", s.Members)
	fmt.Fprintf(tw, "modules:\t%s\n", joinOrDash(s.Modules))
	for _, name := range s.SectionNames() {
		fmt.Fprintf(tw, "%s:\t%s\n", name, compact(s.Sections[name]))
	}
	return c.flush(tw)
}

func runMembers(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCmdline("members", "", "List the members of the cluster as the node sees them.", stdout, stderr)
	cf := c.clientFlags(requestTimeout)
	asJSON := c.fs.Bool("json", false, "print JSON instead of a table")
	pos, cl, code, ok := c.start(args, cf)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return c.usageError("unexpected argument %q", pos[0])
	}
	ctx, cancel := cf.context(ctx)
	defer cancel()
	ms, err := cl.Members(ctx)
	if err != nil {
		return c.fail(err)
	}
	if *asJSON {
		return c.encodeJSON(ms)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDR\tSTATUS\tSUFFRAGE\tLEADER")
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Name, m.Addr, orDash(m.Status), orDash(m.RaftSuffrage), yesOrDash(m.Leader))
	}
	return c.flush(tw)
}

func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCmdline("health", "", "Check that the node is ready to serve: print one line, exit 0 when\n"+
		"ready and 1 otherwise. Needs no shell, so it can be a container healthcheck.", stdout, stderr)
	cf := c.clientFlags(5 * time.Second)
	live := c.fs.Bool("live", false, "check only that the process answers (liveness), not readiness")
	pos, cl, code, ok := c.start(args, cf)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return c.usageError("unexpected argument %q", pos[0])
	}
	ctx, cancel := cf.context(ctx)
	defer cancel()
	if *live {
		if err := cl.Live(ctx); err != nil {
			return c.fail(err)
		}
		fmt.Fprintln(stdout, "live")
		return exitOK
	}
	if err := cl.Ready(ctx); err != nil {
		line := errorLine(err)
		if checks := client.ReadyChecks(err); len(checks) > 0 {
			names := make([]string, 0, len(checks))
			for k := range checks {
				names = append(names, k)
			}
			sort.Strings(names)
			parts := make([]string, len(names))
			for i, k := range names {
				parts[i] = k + ": " + checks[k]
			}
			line += " [" + strings.Join(parts, "; ") + "]"
		}
		fmt.Fprintln(stderr, line)
		return exitFailure
	}
	fmt.Fprintln(stdout, "ready")
	return exitOK
}

func runJoin(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCmdline("join", "ADDR...", "Make the node join a cluster through the gossip addresses (host:port)\nof one or more existing members.", stdout, stderr)
	cf := c.clientFlags(requestTimeout)
	addrs, cl, code, ok := c.start(args, cf)
	if !ok {
		return code
	}
	if len(addrs) == 0 {
		return c.usageError("at least one address is required")
	}
	ctx, cancel := cf.context(ctx)
	defer cancel()
	if err := cl.Join(ctx, addrs); err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(stdout, "joined through %s\n", strings.Join(addrs, ", "))
	return exitOK
}

func runLeave(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCmdline("leave", "", "Make the node leave the cluster gracefully.", stdout, stderr)
	cf := c.clientFlags(requestTimeout)
	pos, cl, code, ok := c.start(args, cf)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return c.usageError("unexpected argument %q", pos[0])
	}
	ctx, cancel := cf.context(ctx)
	defer cancel()
	if err := cl.Leave(ctx); err != nil {
		return c.fail(err)
	}
	fmt.Fprintln(stdout, "left the cluster")
	return exitOK
}

func runRaft(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runGroup(ctx, "raft", "Inspect and administer the Raft configuration", []subcommand{
		{"peers", "list the servers of the Raft configuration", runRaftPeers},
		{"remove", "remove a server from the Raft configuration", runRaftRemove},
		{"transfer-leadership", "make the leader hand leadership to another voter", runRaftTransfer},
	}, args, stdout, stderr)
}

func runRaftPeers(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCmdline("raft peers", "", "List the servers of the Raft configuration.", stdout, stderr)
	cf := c.clientFlags(requestTimeout)
	asJSON := c.fs.Bool("json", false, "print JSON instead of a table")
	pos, cl, code, ok := c.start(args, cf)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return c.usageError("unexpected argument %q", pos[0])
	}
	ctx, cancel := cf.context(ctx)
	defer cancel()
	peers, err := cl.RaftPeers(ctx)
	if err != nil {
		return c.fail(err)
	}
	if *asJSON {
		return c.encodeJSON(peers)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tSUFFRAGE\tLEADER")
	for _, p := range peers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.ID, p.Address, orDash(p.Suffrage), yesOrDash(p.Leader))
	}
	return c.flush(tw)
}

func runRaftRemove(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCmdline("raft remove", "NAME", "Remove the server NAME from the Raft configuration.", stdout, stderr)
	cf := c.clientFlags(requestTimeout)
	pos, cl, code, ok := c.start(args, cf)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return c.usageError("exactly one server name is required")
	}
	ctx, cancel := cf.context(ctx)
	defer cancel()
	if err := cl.RemovePeer(ctx, pos[0]); err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(stdout, "removed %s from the raft configuration\n", pos[0])
	return exitOK
}

func runRaftTransfer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCmdline("raft transfer-leadership", "", "Make the leader hand leadership to another voter.", stdout, stderr)
	cf := c.clientFlags(requestTimeout)
	pos, cl, code, ok := c.start(args, cf)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return c.usageError("unexpected argument %q", pos[0])
	}
	ctx, cancel := cf.context(ctx)
	defer cancel()
	if err := cl.TransferLeadership(ctx); err != nil {
		return c.fail(err)
	}
	fmt.Fprintln(stdout, "leadership transferred")
	return exitOK
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

// compact returns raw JSON on one line.
func compact(raw json.RawMessage) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return string(raw)
	}
	return buf.String()
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
