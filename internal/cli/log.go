package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"shoal/client"
)

func runLog(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runGroup(ctx, "log", "Publish to, read and follow the logs of the log module", logCommands(), args, stdout, stderr)
}

func logCommands() []subcommand {
	return []subcommand{
		{"list", "list the logs", runLogList},
		{"publish", "append one JSON entry to a log", runLogPublish},
		{"read", "print entries of a log, one JSON object per line", runLogRead},
		{"tail", "follow a log, printing entries as they are committed", runLogTail},
		{"set", "set a log's retention, creating the log if absent", runLogSet},
		{"rm", "delete a log and its entries", runLogRm},
	}
}

func runLogList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("log list", "", "List the logs with their first and last index, size and retention.", requestTimeout, stdout, stderr)
	out := c.outputFlag("aligned columns")
	return c.run(ctx, args, noArgs, func(ctx context.Context, cl *client.Client, _ []string) int {
		logs, err := cl.Logs(ctx)
		if err != nil {
			return c.fail(err)
		}
		return printList(c.cmdline, out.json(), logs, "NAME\tFIRST\tLAST\tENTRIES\tBYTES\tMAX ENTRIES\tMAX BYTES\tMAX AGE", logRow)
	})
}

// logRow is a log's row in log list and log set: unset limits print "-",
// and so does a size of 0 (an empty log, or a node that does not report
// sizes).
func logRow(l client.LogInfo) string {
	return fmt.Sprintf("%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s", l.Name, l.FirstIndex, l.LastIndex, l.Entries,
		limitText(l.Bytes, formatBytes(l.Bytes)), limitText(l.MaxEntries, strconv.FormatInt(l.MaxEntries, 10)),
		limitText(l.MaxBytes, formatBytes(l.MaxBytes)), limitText(int64(l.MaxAge), humanDuration(time.Duration(l.MaxAge))))
}

func limitText(n int64, s string) string {
	if n <= 0 {
		return "-"
	}
	return s
}

func runLogPublish(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("log publish", "NAME JSON|-|@FILE", "Append the JSON value JSON to the log NAME and print its index.\n"+
		"- reads the value from stdin, @FILE from the file FILE; --raw takes JSON\n"+
		"literally. With --id, publishing the same id again returns the first\n"+
		"index and appends nothing. Put -- before a JSON value that starts with a\n"+
		"dash.", requestTimeout, stdout, stderr)
	id := c.fs.String("id", "", "deduplication id of the entry")
	raw := c.rawFlag()
	out := c.outputFlag("one line of text")
	return c.run(ctx, args, nil, func(ctx context.Context, cl *client.Client, pos []string) int {
		if len(pos) != 2 {
			return c.usageError("a log name and one JSON value are required, got %d arguments", len(pos))
		}
		name := pos[0]
		data, err := readValue(pos[1], *raw, stdinOf(ctx))
		if err != nil {
			return c.fail(fmt.Errorf("read the entry: %w", err))
		}
		data = bytes.TrimSpace(data)
		if err := validJSON(data); err != nil {
			return c.usageError("the entry from %s is not valid JSON: %s", valueSource(pos[1], *raw), err.Error())
		}
		res, err := cl.Publish(ctx, name, *id, data)
		if err != nil {
			return c.fail(err)
		}
		switch {
		case out.json():
			return c.encodeJSON(res)
		case res.Duplicate:
			fmt.Fprintf(stdout, "index %d (duplicate)\n", res.Index)
		default:
			fmt.Fprintf(stdout, "index %d\n", res.Index)
		}
		return exitOK
	})
}

func runLogSet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("log set", "NAME [--max-entries N] [--max-bytes SIZE] [--max-age DURATION]",
		"Set the retention of the log NAME, creating the log if it does not exist,\n"+
			"and print the log. Only the limits given change; 0 removes a limit. The\n"+
			"oldest entries beyond any limit are trimmed.", requestTimeout, stdout, stderr)
	var r client.LogRetention
	c.fs.Func("max-entries", "keep at most `N` entries (0: no limit)", func(s string) error {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return errors.New("want a number of entries, 0 or more")
		}
		r.MaxEntries = &n
		return nil
	})
	c.fs.Func("max-bytes", "keep at most `SIZE` on disk: bytes, or with KiB, MiB, GiB, TiB, KB, MB, GB, TB (0: no limit)", func(s string) error {
		n, err := parseBytes(s)
		if err != nil {
			return err
		}
		if n > math.MaxInt64 {
			return fmt.Errorf("%q is too large", s)
		}
		v := int64(n)
		r.MaxBytes = &v
		return nil
	})
	c.fs.Func("max-age", "trim entries older than `DURATION` (24h, 90m; 0: no limit)", func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return errors.New("want a duration such as 24h or 90m, 0 or more")
		}
		r.MaxAge = &d
		return nil
	})
	out := c.outputFlag("aligned columns")
	return c.run(ctx, args, exactlyOne("log name"), func(ctx context.Context, cl *client.Client, pos []string) int {
		info, err := cl.ConfigureLog(ctx, pos[0], r)
		if err != nil {
			return c.fail(err)
		}
		if out.json() {
			return c.encodeJSON(info)
		}
		return printList(c.cmdline, false, []client.LogInfo{info}, "NAME\tFIRST\tLAST\tENTRIES\tBYTES\tMAX ENTRIES\tMAX BYTES\tMAX AGE", logRow)
	})
}

func runLogRm(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("log rm", "NAME", "Delete the log NAME and all its entries. Exit code 1 with log_not_found\n"+
		"if there is no such log.", requestTimeout, stdout, stderr)
	return c.run(ctx, args, exactlyOne("log name"), func(ctx context.Context, cl *client.Client, pos []string) int {
		if err := cl.DeleteLog(ctx, pos[0]); err != nil {
			return c.fail(err)
		}
		fmt.Fprintf(stdout, "deleted log %s\n", pos[0])
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
	c := newClientCmdline("log read", "NAME", "Print entries of the log NAME from index --from, one JSON object per\n"+
		"line: {\"index\",\"id\",\"data\",\"time\"}; -o table prints a table instead.", requestTimeout, stdout, stderr)
	from := c.fs.Uint64("from", 0, "index of the first entry to print")
	limit := c.fs.Uint64("limit", 0, "print at most this many entries (0: the node's page size)")
	consistent := c.fs.Bool("consistent", false, "read through the leader, seeing every committed entry")
	out := &outputFormat{name: formatJSON, allowed: []string{formatJSON, formatTable}}
	c.fs.Var(out, "o", "output `FORMAT`: json (one object per line, the API's field names) or table")
	c.fs.Var(jsonAlias{out}, "json", "same as -o json (the default)")
	return c.run(ctx, args, exactlyOne("log name"), func(ctx context.Context, cl *client.Client, pos []string) int {
		res, err := cl.Read(ctx, pos[0], *from, *limit, *consistent)
		if err != nil {
			return c.fail(err)
		}
		if !out.json() {
			return printList(c.cmdline, false, res.Entries, "INDEX\tTIME\tID\tDATA", entryRow)
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

// entryRow is an entry's row in log read -o table: the data is the entry
// itself, printed on one line.
func entryRow(e client.LogEntry) string {
	t := "-"
	if !e.Time.IsZero() {
		t = e.Time.UTC().Format(time.RFC3339Nano)
	}
	var data bytes.Buffer
	if err := json.Compact(&data, e.Data); err != nil {
		data.Reset()
		data.Write(e.Data)
	}
	return fmt.Sprintf("%d\t%s\t%s\t%s", e.Index, t, orDash(e.ID), strings.ReplaceAll(data.String(), "\t", `\t`))
}

func runLogTail(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("log tail", "NAME", "Follow the log NAME, printing each entry as one JSON line as it is\n"+
		"committed. Reconnects on its own after a dropped connection, without\n"+
		"gaps or repeats, saying so on stderr, and gives up (exit 1) when the node\n"+
		"stays unreachable longer than --retry-for. Stops with exit code 0 on an\n"+
		"interrupt (Ctrl-C).", 0, stdout, stderr)
	from := c.fs.Uint64("from", 0, "index of the first entry to print (0: the node's default)")
	c.jsonOnlyOutput()
	retry := c.retryFlag()
	return c.run(ctx, args, exactlyOne("log name"), func(ctx context.Context, cl *client.Client, pos []string) int {
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		enc := newLineEncoder(stdout)
		opts := client.TailOptions{From: *from, OnRetry: func(r client.TailRetry) error {
			if r.Attempt == 1 {
				retry.reset()
			}
			return retry.retry(r.Err, r.Delay)
		}}
		err := cl.TailWithOptions(ctx, pos[0], opts, func(e client.LogEntry) error {
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
