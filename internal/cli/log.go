package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"shoal/client"
)

func runLog(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runGroup(ctx, "log", "Publish to, read and follow the logs of the log module", []subcommand{
		{"list", "list the logs", runLogList},
		{"publish", "append one JSON entry to a log", runLogPublish},
		{"read", "print entries of a log, one JSON object per line", runLogRead},
		{"tail", "follow a log, printing entries as they are committed", runLogTail},
	}, args, stdout, stderr)
}

func runLogList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("log list", "", "List the logs with their first and last index.", requestTimeout, stdout, stderr)
	asJSON := c.fs.Bool("json", false, "print JSON instead of a table")
	return c.run(ctx, args, noArgs, func(ctx context.Context, cl *client.Client, _ []string) int {
		logs, err := cl.Logs(ctx)
		if err != nil {
			return c.fail(err)
		}
		return printList(c.cmdline, *asJSON, logs, "NAME\tFIRST\tLAST\tENTRIES", func(l client.LogInfo) string {
			return fmt.Sprintf("%s\t%d\t%d\t%d", l.Name, l.FirstIndex, l.LastIndex, l.Entries)
		})
	})
}

func runLogPublish(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("log publish", "NAME JSON", "Append the JSON value JSON to the log NAME and print its index.\n"+
		"With --id, publishing the same id again returns the first index and\n"+
		"appends nothing. Put -- before a JSON value that starts with a dash.", requestTimeout, stdout, stderr)
	id := c.fs.String("id", "", "deduplication id of the entry")
	return c.run(ctx, args, nil, func(ctx context.Context, cl *client.Client, pos []string) int {
		if len(pos) != 2 {
			return c.usageError("a log name and one JSON value are required, got %d arguments", len(pos))
		}
		name, data := pos[0], []byte(pos[1])
		if err := validJSON(data); err != nil {
			return c.usageError("the entry is not valid JSON: %s", err.Error())
		}
		res, err := cl.Publish(ctx, name, *id, data)
		if err != nil {
			return c.fail(err)
		}
		if res.Duplicate {
			fmt.Fprintf(stdout, "index %d (duplicate)\n", res.Index)
		} else {
			fmt.Fprintf(stdout, "index %d\n", res.Index)
		}
		return exitOK
	})
}

// validJSON checks that data is exactly one JSON value, with a message
// that says where it goes wrong.
func validJSON(data []byte) error {
	if json.Valid(data) {
		return nil
	}
	var v any
	err := json.Unmarshal(data, &v)
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("%w (at byte %d)", err, syntax.Offset)
	case err != nil:
		return err
	default:
		return errors.New("not a single JSON value")
	}
}

func runLogRead(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("log read", "NAME", "Print entries of the log NAME from index --from, one JSON object per\nline: {\"index\",\"id\",\"data\",\"time\"}.", requestTimeout, stdout, stderr)
	from := c.fs.Uint64("from", 0, "index of the first entry to print")
	limit := c.fs.Uint64("limit", 0, "print at most this many entries (0: the node's page size)")
	consistent := c.fs.Bool("consistent", false, "read through the leader, seeing every committed entry")
	return c.run(ctx, args, exactlyOne("log name"), func(ctx context.Context, cl *client.Client, pos []string) int {
		res, err := cl.Read(ctx, pos[0], *from, *limit, *consistent)
		if err != nil {
			return c.fail(err)
		}
		enc := newLineEncoder(stdout)
		for _, e := range res.Entries {
			if err := enc.Encode(e); err != nil {
				return c.fail(fmt.Errorf("write output: %w", err))
			}
		}
		return exitOK
	})
}

func runLogTail(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("log tail", "NAME", "Follow the log NAME, printing each entry as one JSON line as it is\n"+
		"committed. Reconnects on its own after a dropped connection, without\n"+
		"gaps or repeats. Stops with exit code 0 on an interrupt (Ctrl-C).", 0, stdout, stderr)
	from := c.fs.Uint64("from", 0, "index of the first entry to print (0: the node's default)")
	return c.run(ctx, args, exactlyOne("log name"), func(ctx context.Context, cl *client.Client, pos []string) int {
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		enc := newLineEncoder(stdout)
		err := cl.Tail(ctx, pos[0], *from, func(e client.LogEntry) error {
			if err := enc.Encode(e); err != nil {
				return fmt.Errorf("write output: %w", err)
			}
			return nil
		})
		if err == nil || (ctx.Err() != nil && errors.Is(err, context.Canceled)) {
			return exitOK // interrupted: the normal way to stop following
		}
		return c.fail(err)
	})
}

// newLineEncoder writes one compact JSON value per line, without HTML
// escaping so that data prints as it was published.
func newLineEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}
