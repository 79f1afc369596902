package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"shoal/client"
)

func init() {
	registerCommand("files", "write, read and list the files of the replicated directory", func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		return runFiles(ctx, args, stdinOf(ctx), stdout, stderr)
	})
	registerCommand("replication", "show the state of directory replication", runReplication)
}

// runFiles is the files command group; tests call it with their own
// context and stdin.
func runFiles(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runGroup(ctx, "files", "Write, read and list the files of the replication module's directory (the same bytes on every node)", []subcommand{
		{"put", "replace a file with the content of FILE or stdin", runFilesWrite("put", stdin)},
		{"append", "append the content of FILE or stdin to a file", runFilesWrite("append", stdin)},
		{"get", "print a file's content", runFilesGet},
		{"ls", "list files, sorted by path", runFilesLs},
		{"rm", "delete a file", runFilesRm},
	}, args, stdout, stderr)
}

// runReplication is the replication command group.
func runReplication(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runGroup(ctx, "replication", "Inspect directory replication", []subcommand{
		{"status", "show the node's role, the leader, the in-sync set and the followers", runReplicationStatus},
	}, args, stdout, stderr)
}

// between wants from min to max positional arguments; synopsis names them.
func between(min, max int, synopsis string) argCheck {
	return func(pos []string) string {
		if len(pos) < min || len(pos) > max {
			return fmt.Sprintf("want %s, got %d arguments", synopsis, len(pos))
		}
		return ""
	}
}

// openInput returns the content to send: the file named by pos[i] (FILE,
// or @FILE as the value-taking commands write it), or stdin when there is
// no such argument or it is "-". size is the file's size, -1 for stdin or
// anything but a regular file. close releases it.
func openInput(pos []string, i int, stdin io.Reader) (r io.Reader, name string, size int64, close func(), err error) {
	if len(pos) <= i || pos[i] == "-" {
		return stdin, "stdin", -1, func() {}, nil
	}
	name = pos[i]
	if strings.HasPrefix(name, "@") && len(name) > 1 {
		if _, err := os.Stat(name); err != nil { // a file really called "@x" wins
			name = name[1:]
		}
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, "", -1, nil, err // *PathError: "open NAME: reason"
	}
	size = -1
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	return f, name, size, func() { _ = f.Close() }, nil // read-only: nothing to report on close
}

func runFilesWrite(op string, stdin io.Reader) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	summary := "Replace the file PATH with the content of FILE, or of stdin without FILE\n" +
		"or with -. Any node takes the write; it is answered once durable.\n" +
		"A replace is safe to repeat."
	if op == "append" {
		summary = "Append the content of FILE, or of stdin without FILE or with -, to the\n" +
			"file PATH (created if absent). Any node takes the write; it is answered\n" +
			"once durable. An append is not idempotent: after an error whose outcome\n" +
			"is unknown it may or may not be applied."
	}
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		c := newClientCmdline("files "+op, "PATH [FILE|@FILE|-]", summary+"\nA terminal shows the progress of the upload on stderr.", requestTimeout, stdout, stderr)
		out := c.outputFlag("one line of text")
		return c.run(ctx, args, between(1, 2, "PATH [FILE|@FILE|-]"), func(ctx context.Context, cl *client.Client, pos []string) int {
			in, _, size, done, err := openInput(pos, 1, stdin)
			if err != nil {
				return c.fail(err)
			}
			defer done()
			bar := c.progress(op + " " + pos[0])
			defer bar.done()
			in = bar.reader(in, size)
			write := cl.PutFile
			if op == "append" {
				write = cl.AppendFile
			}
			fi, err := write(ctx, pos[0], in)
			if err != nil {
				return c.fail(err)
			}
			if out.json() {
				return c.encodeJSON(fi)
			}
			fmt.Fprintf(stdout, "%s: %d bytes, sha256 %s\n", fi.Path, fi.Size, fi.SHA256)
			return exitOK
		})
	}
}

func runFilesGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("files get", "PATH", "Write the node's copy of the file PATH to stdout, as it is. The bytes\n"+
		"are checked against the SHA-256 the node announces. Exit code 1 if the\n"+
		"node has no such file. When stdout is redirected and stderr is a\n"+
		"terminal, the progress of the download shows there.", requestTimeout, stdout, stderr)
	return c.run(ctx, args, exactlyOne("path"), func(ctx context.Context, cl *client.Client, pos []string) int {
		var bar *progress
		w := stdout
		if !isTerminal(stdout) { // the content on a terminal leaves no room for a progress line
			bar = c.progress("get " + pos[0])
			w = bar.writer(stdout)
		}
		_, err := cl.GetFile(ctx, pos[0], w)
		bar.done()
		if err != nil {
			return c.fail(err)
		}
		return exitOK
	})
}

func runFilesLs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("files ls", "[PREFIX]", "List the files of the node's copy whose path starts with PREFIX (all\n"+
		"without one), sorted by path.", requestTimeout, stdout, stderr)
	out := c.outputFlag("aligned columns")
	return c.run(ctx, args, atMostOne("prefix"), func(ctx context.Context, cl *client.Client, pos []string) int {
		prefix := ""
		if len(pos) == 1 {
			prefix = pos[0]
		}
		files, err := cl.ListFiles(ctx, prefix)
		if err != nil {
			return c.fail(err)
		}
		return printList(c.cmdline, out.json(), files, "PATH\tSIZE\tSHA256\tMTIME", func(f client.FileEntry) string {
			return fmt.Sprintf("%s\t%d\t%s\t%s", f.Path, f.Size, f.SHA256, f.Mtime.UTC().Format(time.RFC3339Nano))
		})
	})
}

func runFilesRm(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("files rm", "PATH", "Delete the file PATH (and the directories it leaves empty) on every\n"+
		"node. Exit code 1 if there is no such file.", requestTimeout, stdout, stderr)
	return c.run(ctx, args, exactlyOne("path"), func(ctx context.Context, cl *client.Client, pos []string) int {
		if err := cl.DeleteFile(ctx, pos[0]); err != nil {
			return c.fail(err)
		}
		fmt.Fprintf(stdout, "deleted %s\n", pos[0])
		return exitOK
	})
}

func runReplicationStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("replication status", "", "Show the node's replication role, the replication leader, the in-sync\n"+
		"set and, per follower, its state and lag (asked of the leader when a\n"+
		"follower serves it).", requestTimeout, stdout, stderr)
	out := c.outputFlag("aligned field: value lines")
	return c.run(ctx, args, noArgs, func(ctx context.Context, cl *client.Client, _ []string) int {
		s, err := cl.ReplicationStatus(ctx)
		if err != nil {
			return c.fail(err)
		}
		if out.json() {
			return c.printJSON(s.Raw)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "node:\t%s\n", orDash(s.Node))
		fmt.Fprintf(tw, "role:\t%s\n", orDash(s.Role))
		fmt.Fprintf(tw, "leader:\t%s (term %d)\n", orDash(s.Leader), s.Term)
		fmt.Fprintf(tw, "in sync:\t%s\n", joinOrDash(s.InSync))
		fmt.Fprintf(tw, "position:\t%d\n", s.Position)
		if f := s.Following; f != nil {
			fmt.Fprintf(tw, "following:\t%s, %s, %d bytes applied, since %s\n", orDash(f.Leader), orDash(f.State), f.AppliedBytes, f.Since.UTC().Format(time.RFC3339))
		}
		if err := tw.Flush(); err != nil {
			return c.fail(fmt.Errorf("write output: %w", err))
		}
		if len(s.Followers) > 0 {
			fmt.Fprintln(stdout)
			tw = tabwriter.NewWriter(stdout, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "FOLLOWER\tSTATE\tIN SYNC\tACKED BYTES\tLAG BYTES\tLAG SECONDS")
			for _, f := range s.Followers {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%.3f\n", f.Node, orDash(f.State), yesOrDash(f.InSync), f.AckedBytes, f.LagBytes, f.LagSeconds)
			}
			if code := c.flush(tw); code != exitOK {
				return code
			}
		}
		if len(s.Counters) > 0 {
			names := make([]string, 0, len(s.Counters))
			for k := range s.Counters {
				names = append(names, k)
			}
			slices.Sort(names)
			parts := make([]string, len(names))
			for i, k := range names {
				parts[i] = fmt.Sprintf("%s=%d", k, s.Counters[k])
			}
			fmt.Fprintf(stdout, "\ncounters: %s\n", strings.Join(parts, " "))
		}
		return exitOK
	})
}
