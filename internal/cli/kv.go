package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"shoal/client"
)

func init() {
	registerCommand("kv", "read, write and watch the gossip key-value store", runKV)
}

// runKV is the kv command group; tests call it with a context they cancel.
func runKV(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runGroup(ctx, "kv", "Read, write and watch the keys of the kv module (eventually consistent, replicated by gossip)", []subcommand{
		{"put", "write a value", runKVPut},
		{"get", "print a key's value", runKVGet},
		{"del", "delete a key", runKVDel},
		{"ls", "list keys, in key order", runKVLs},
		{"watch", "print one JSON line per change as it reaches the node", runKVWatch},
	}, args, stdout, stderr)
}

func runKVPut(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("kv put", "KEY VALUE|-|@FILE", "Write VALUE under KEY on the node and print the version it got. The\n"+
		"node answers once the write is on its disk; the others get it by gossip.\n"+
		"- reads the value from stdin, @FILE from the file FILE (as consul kv put\n"+
		"does); --raw takes VALUE literally, for a value that starts with @.\n"+
		"Put -- before a value that starts with a dash.", requestTimeout, stdout, stderr)
	raw := c.rawFlag()
	out := c.outputFlag("one line of text")
	return c.run(ctx, args, nil, func(ctx context.Context, cl *client.Client, pos []string) int {
		if len(pos) != 2 {
			return c.usageError("a key and a value are required, got %d arguments", len(pos))
		}
		value, err := readValue(pos[1], *raw, stdinOf(ctx))
		if err != nil {
			return c.fail(fmt.Errorf("read the value: %w", err))
		}
		v, err := cl.KVPut(ctx, pos[0], string(value))
		if err != nil {
			return c.fail(err)
		}
		if out.json() {
			return c.encodeJSON(kvWriteResult{Key: pos[0], Version: v})
		}
		fmt.Fprintf(stdout, "version %s\n", v)
		return exitOK
	})
}

// kvWriteResult is what kv put and kv del print with -o json: the API's
// answer to a write.
type kvWriteResult struct {
	Key     string           `json:"key"`
	Version client.KVVersion `json:"version"`
}

func runKVGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("kv get", "KEY", "Print the value of KEY as the node holds it, followed by a newline.\n"+
		"Exit code 1 if the node has no value for it.", requestTimeout, stdout, stderr)
	out := c.outputFlag("the value alone")
	return c.run(ctx, args, exactlyOne("key"), func(ctx context.Context, cl *client.Client, pos []string) int {
		e, err := cl.KVGet(ctx, pos[0])
		if err != nil {
			return c.fail(err)
		}
		if out.json() {
			return c.encodeJSON(e)
		}
		fmt.Fprintln(stdout, e.Value)
		return exitOK
	})
}

func runKVDel(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("kv del", "KEY", "Delete KEY. Deleting a key that does not exist succeeds too.", requestTimeout, stdout, stderr)
	out := c.outputFlag("one line of text")
	return c.run(ctx, args, exactlyOne("key"), func(ctx context.Context, cl *client.Client, pos []string) int {
		v, err := cl.KVDelete(ctx, pos[0])
		if err != nil {
			return c.fail(err)
		}
		if out.json() {
			return c.encodeJSON(kvWriteResult{Key: pos[0], Version: v})
		}
		fmt.Fprintf(stdout, "deleted %s (version %s)\n", pos[0], v)
		return exitOK
	})
}

func runKVLs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("kv ls", "[PREFIX]", "List the keys that start with PREFIX (all keys without one), one per\n"+
		"line in key order, following pages until the end or --limit.", requestTimeout, stdout, stderr)
	out := c.outputFlag("one key per line")
	limit := c.fs.Int("limit", 0, "print at most this many keys (0: all)")
	return c.run(ctx, args, atMostOne("prefix"), func(ctx context.Context, cl *client.Client, pos []string) int {
		if *limit < 0 {
			return c.usageError("--limit must not be negative")
		}
		opts := client.KVListOptions{Limit: 1000}
		if len(pos) == 1 {
			opts.Prefix = pos[0]
		}
		enc := newLineEncoder(stdout)
		printed := 0
		for {
			if *limit > 0 {
				opts.Limit = min(1000, *limit-printed)
			}
			page, err := cl.KVList(ctx, opts)
			if err != nil {
				return c.fail(err)
			}
			for _, e := range page.Items {
				var werr error
				if out.json() {
					werr = enc.Encode(e)
				} else {
					_, werr = fmt.Fprintln(stdout, e.Key)
				}
				if werr != nil {
					return c.fail(fmt.Errorf("write output: %w", werr))
				}
				printed++
			}
			if page.Next == "" || (*limit > 0 && printed >= *limit) {
				return exitOK
			}
			opts.After = page.Next
		}
	})
}

// kvWatchLine is one line of kv watch's output.
type kvWatchLine struct {
	Event     string            `json:"event"`
	Key       string            `json:"key,omitempty"`
	Value     *string           `json:"value,omitempty"`
	Version   *client.KVVersion `json:"version,omitempty"`
	UpdatedAt *time.Time        `json:"updated_at,omitempty"`
	ExpiresAt *time.Time        `json:"expires_at,omitempty"`
	Node      string            `json:"node,omitempty"`
	Keys      *int              `json:"keys,omitempty"`
	Reason    string            `json:"reason,omitempty"`
}

func watchLine(ev client.KVEvent) kvWatchLine {
	l := kvWatchLine{Event: ev.Type}
	switch ev.Type {
	case "synced":
		keys := ev.Keys
		l.Node, l.Keys = ev.Node, &keys
		return l
	case "resync":
		l.Node, l.Reason = ev.Node, ev.Reason
		return l
	}
	e := ev.Entry
	l.Key, l.Version, l.UpdatedAt = e.Key, &e.Version, &e.UpdatedAt
	if !e.ExpiresAt.IsZero() {
		l.ExpiresAt = &e.ExpiresAt
	}
	if !ev.Removed {
		l.Value = &e.Value
	}
	return l
}

func runKVWatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("kv watch", "[PREFIX]", "Follow the changes of the keys that start with PREFIX on the node,\n"+
		"printing one JSON line per event: new_key, key_changed, key_removed, and\n"+
		"synced once the node holds the cluster's data. A dropped watch is\n"+
		"reopened after the last event received, saying so on stderr; a node\n"+
		"that cannot replay what was missed sends resync (drop what you hold:\n"+
		"the keys follow as new_key). It gives up (exit 1) when the node stays\n"+
		"unreachable longer than --retry-for. Stops with exit code 0 on an\n"+
		"interrupt (Ctrl-C).", 0, stdout, stderr)
	c.jsonOnlyOutput()
	retry := c.retryFlag()
	return c.run(ctx, args, atMostOne("prefix"), func(ctx context.Context, cl *client.Client, pos []string) int {
		prefix := ""
		if len(pos) == 1 {
			prefix = pos[0]
		}
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		enc := newLineEncoder(stdout)
		last := "" // the id to resume after
		return followWatch(ctx, c.cmdline, retry, func(ctx context.Context, received func()) error {
			var err error
			last, err = cl.KVWatchFrom(ctx, prefix, last, func(ev client.KVEvent) error {
				received()
				if err := enc.Encode(watchLine(ev)); err != nil {
					return &outputError{err}
				}
				return nil
			})
			return err
		}, retryableWatch)
	})
}

// followWatch runs watch again and again until ctx ends (exit 0), an
// error that retrying cannot fix (exit 1), or the retrier gives up (exit
// 1). Each reconnect is reported on stderr; the backoff starts over once
// the watch delivers again.
func followWatch(ctx context.Context, c *cmdline, retry *retrier,
	watch func(ctx context.Context, received func()) error, retryable func(error) bool) int {
	delay := 100 * time.Millisecond
	for {
		received := false
		err := watch(ctx, func() {
			if !received {
				received = true
				retry.reset()
			}
		})
		if ctx.Err() != nil {
			return exitOK // interrupted: the normal way to stop following
		}
		if !retryable(err) {
			return c.fail(err)
		}
		if received {
			delay = 100 * time.Millisecond
		}
		if gerr := retry.retry(err, delay); gerr != nil {
			return c.fail(gerr)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return exitOK
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// retryableWatch reports whether a watch that ended with err should be
// reopened: a closed or overflowing watch, a network failure or a 5xx
// are; other API errors (a bad prefix, a bad token) and output errors are
// not.
func retryableWatch(err error) bool {
	var he *client.Error
	switch {
	case errors.Is(err, client.ErrWatchClosed), errors.Is(err, client.ErrWatchOverflow):
		return true
	case errors.As(err, &he):
		return he.Status >= 500 || he.Status == http.StatusRequestTimeout || he.Status == http.StatusTooManyRequests
	default:
		var oe *outputError
		return !errors.As(err, &oe)
	}
}

// outputError is a failure to write the command's own output.
type outputError struct{ err error }

func (e *outputError) Error() string { return "write output: " + e.err.Error() }
func (e *outputError) Unwrap() error { return e.err }
