package cli

import (
	"bytes"
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

func init() {
	registerCommand("objects", "read, write and watch the JSON objects of objectsync", func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		return runObjects(ctx, args, stdinOf(ctx), stdout, stderr)
	})
}

// runObjects is the objects command group; tests call it with their own
// context and stdin.
func runObjects(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runGroup(ctx, "objects", "Read, write and watch the JSON objects of the objectsync module (state in Raft)", []subcommand{
		{"get", "print an object: id, version, object", runObjectsGet},
		{"put", "write a whole object at a version", runObjectsPut(stdin)},
		{"patch", "apply an RFC 6902 patch from one version to the next", runObjectsPatch(stdin)},
		{"rm", "remove an object", runObjectsRm},
		{"ls", "list ids and versions", runObjectsLs},
		{"watch", "print one JSON line per change of an object", runObjectsWatch},
	}, args, stdout, stderr)
}

// jsonArg returns arg as JSON, or a usage error message naming what.
func jsonArg(what, arg string) (json.RawMessage, string) {
	if !json.Valid([]byte(arg)) {
		return nil, fmt.Sprintf("%s %q is not JSON (a number, an array of numbers or an object of dependency versions)", what, arg)
	}
	return json.RawMessage(arg), ""
}

// readJSON reads the JSON document named by pos[i] (a file, or stdin
// without it or with "-").
func readJSON(pos []string, i int, stdin io.Reader) (json.RawMessage, error) {
	in, name, _, done, err := openInput(pos, i, stdin)
	if err != nil {
		return nil, err
	}
	defer done()
	b, err := io.ReadAll(in)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	b = bytes.TrimSpace(b)
	if !json.Valid(b) {
		return nil, fmt.Errorf("read %s: the content is not one JSON document", name)
	}
	return b, nil
}

func runObjectsGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("objects get", "ID", "Print the object ID as the node holds it: {\"id\",\"version\",\"object\"}.\n"+
		"Exit code 1 if the node holds no such object.", requestTimeout, stdout, stderr)
	onlyObject := c.fs.Bool("object", false, "print only the object, not the id and version")
	c.jsonOnlyOutput()
	return c.run(ctx, args, exactlyOne("id"), func(ctx context.Context, cl *client.Client, pos []string) int {
		o, err := cl.GetObject(ctx, pos[0])
		if err != nil {
			return c.fail(err)
		}
		if *onlyObject {
			return c.printJSON(o.Object)
		}
		return c.encodeJSON(o)
	})
}

func runObjectsPut(stdin io.Reader) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		c := newClientCmdline("objects put", "ID VERSION [FILE|@FILE|-]", "Write the object ID at VERSION (JSON: 4, [1,2], {\"dep\":3}), its content\n"+
			"the JSON object in FILE, or stdin without FILE or with -. VERSION must\n"+
			"follow the current one; the write fails while a websocket master holds\n"+
			"the id.", requestTimeout, stdout, stderr)
		out := c.outputFlag("one line of text")
		return c.run(ctx, args, between(2, 3, "ID VERSION [FILE|@FILE|-]"), func(ctx context.Context, cl *client.Client, pos []string) int {
			version, msg := jsonArg("version", pos[1])
			if msg != "" {
				return c.usageError("%s", msg)
			}
			obj, err := readJSON(pos, 2, stdin)
			if err != nil {
				return c.fail(err)
			}
			o, err := cl.PutObject(ctx, pos[0], version, obj)
			if err != nil {
				return c.fail(err)
			}
			if out.json() {
				return c.encodeJSON(o)
			}
			fmt.Fprintf(stdout, "%s at version %s\n", o.ID, o.Version)
			return exitOK
		})
	}
}

func runObjectsPatch(stdin io.Reader) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		c := newClientCmdline("objects patch", "ID FROM TO [FILE|@FILE|-]", "Apply the RFC 6902 patch (a JSON array of operations) in FILE, or stdin\n"+
			"without FILE or with -, to the object ID, moving it from version FROM to\n"+
			"version TO (both JSON). Fails with version_mismatch if FROM is not the\n"+
			"current version.", requestTimeout, stdout, stderr)
		out := c.outputFlag("one line of text")
		return c.run(ctx, args, between(3, 4, "ID FROM TO [FILE|@FILE|-]"), func(ctx context.Context, cl *client.Client, pos []string) int {
			if _, msg := jsonArg("from version", pos[1]); msg != "" {
				return c.usageError("%s", msg)
			}
			if _, msg := jsonArg("to version", pos[2]); msg != "" {
				return c.usageError("%s", msg)
			}
			patch, err := readJSON(pos, 3, stdin)
			if err != nil {
				return c.fail(err)
			}
			o, err := cl.PatchObject(ctx, pos[0], pos[1], pos[2], patch)
			if err != nil {
				return c.fail(err)
			}
			if out.json() {
				return c.encodeJSON(o)
			}
			fmt.Fprintf(stdout, "%s at version %s\n", o.ID, o.Version)
			return exitOK
		})
	}
}

func runObjectsRm(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("objects rm", "ID", "Remove the object ID; its subscribers get removed.", requestTimeout, stdout, stderr)
	return c.run(ctx, args, exactlyOne("id"), func(ctx context.Context, cl *client.Client, pos []string) int {
		if err := cl.DeleteObject(ctx, pos[0]); err != nil {
			return c.fail(err)
		}
		fmt.Fprintf(stdout, "removed %s\n", pos[0])
		return exitOK
	})
}

func runObjectsLs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("objects ls", "[PATTERN]", "List the ids and versions of the node's objects that match PATTERN ('*'\n"+
		"matches any run of characters; all without one).", requestTimeout, stdout, stderr)
	out := c.outputFlag("aligned columns")
	return c.run(ctx, args, atMostOne("pattern"), func(ctx context.Context, cl *client.Client, pos []string) int {
		pattern := ""
		if len(pos) == 1 {
			pattern = pos[0]
		}
		objs, err := cl.ListObjects(ctx, pattern)
		if err != nil {
			return c.fail(err)
		}
		return printList(c.cmdline, out.json(), objs, "ID\tVERSION", func(o client.Object) string {
			return fmt.Sprintf("%s\t%s", o.ID, o.Version)
		})
	})
}

func runObjectsWatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("objects watch", "ID", "Follow the object ID on the node, printing one JSON line per event:\n"+
		"object (the full state, first), patch, removed. A dropped watch is\n"+
		"reopened and starts with the full object again, saying so on stderr;\n"+
		"it gives up (exit 1) when the node stays unreachable longer than\n"+
		"--retry-for. Stops with exit code 0 on an interrupt (Ctrl-C).", 0, stdout, stderr)
	c.jsonOnlyOutput()
	retry := c.retryFlag()
	return c.run(ctx, args, exactlyOne("id"), func(ctx context.Context, cl *client.Client, pos []string) int {
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		return followWatch(ctx, c.cmdline, retry, func(ctx context.Context, received func()) error {
			enc := newLineEncoder(stdout)
			return cl.WatchObject(ctx, pos[0], func(ev client.ObjectEvent) error {
				received()
				if err := enc.Encode(ev); err != nil {
					return &outputError{err}
				}
				return nil
			})
		}, func(err error) bool { return errors.Is(err, client.ErrObjectWatchClosed) || retryableWatch(err) })
	})
}
