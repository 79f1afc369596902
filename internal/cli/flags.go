package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"

	"shoal/client"
	"shoal/internal/httpjson"
)

// defaultAddr is the API address client commands use when neither --addr
// nor SHOAL_ADDR is set.
const defaultAddr = "http://127.0.0.1:7480"

// cmdline is the flag set and usage text of one command invocation.
type cmdline struct {
	fs       *flag.FlagSet
	path     string // "log publish"
	synopsis string // "NAME [--id ID] JSON"
	summary  string
	stdout   io.Writer
	stderr   io.Writer
	env      []string // flags that fall back to SHOAL_* variables
}

func newCmdline(path, synopsis, summary string, stdout, stderr io.Writer) *cmdline {
	fs := flag.NewFlagSet("shoal "+path, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse reports errors itself, in one line
	fs.Usage = func() {}
	return &cmdline{fs: fs, path: path, synopsis: synopsis, summary: summary, stdout: stdout, stderr: stderr}
}

// parse parses args, flags and positional arguments in any order ("--"
// ends the flags), fills unset client flags from the environment and
// returns the positional arguments. When ok is false the command must
// return code at once: help was printed (0) or the arguments were wrong (2).
func (c *cmdline) parse(args []string) (pos []string, code int, ok bool) {
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.usage(c.stdout)
				return nil, exitOK, false
			}
			return nil, c.usageError("%s", err.Error()), false
		}
		rest := c.fs.Args()
		consumed := args[:len(args)-len(rest)]
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(c.env) > 0 {
		if err := bindEnv(c.fs, envPrefix, c.env); err != nil {
			return nil, c.usageError("%s", err.Error()), false
		}
	}
	return pos, exitOK, true
}

// usage prints the command's synopsis, summary and flags to w.
func (c *cmdline) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage:\n  shoal %s", c.path)
	if hasFlags(c.fs) {
		fmt.Fprint(w, " [flags]")
	}
	if c.synopsis != "" {
		fmt.Fprintf(w, " %s", c.synopsis)
	}
	fmt.Fprintf(w, "\n\n%s\n", c.summary)
	if !hasFlags(c.fs) {
		return
	}
	fmt.Fprint(w, "\nFlags:\n")
	c.fs.VisitAll(func(f *flag.Flag) {
		typ, text := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if typ != "" {
			fmt.Fprintf(w, " %s", typ)
		}
		fmt.Fprintf(w, "\n      %s", strings.ReplaceAll(text, "\n", "\n      "))
		if !isZeroValue(f) {
			if typ == "string" {
				fmt.Fprintf(w, " (default %q)", f.DefValue)
			} else {
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
		}
		if slices.Contains(c.env, f.Name) {
			fmt.Fprintf(w, " [env %s]", EnvName(envPrefix, f.Name))
		}
		fmt.Fprintln(w)
	})
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// isZeroValue reports whether f's default is its type's zero value, which
// the usage text does not print (as flag.PrintDefaults does).
func isZeroValue(f *flag.Flag) bool {
	t := reflect.TypeOf(f.Value)
	var z reflect.Value
	if t.Kind() == reflect.Pointer {
		z = reflect.New(t.Elem())
	} else {
		z = reflect.Zero(t)
	}
	v, ok := z.Interface().(flag.Value)
	return ok && f.DefValue == v.String()
}

// usageError prints a usage error and returns the usage exit code.
func (c *cmdline) usageError(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "shoal %s: %s\nRun 'shoal %s -h' for usage.\n", c.path, fmt.Sprintf(format, args...), c.path)
	return exitUsage
}

// fail prints err as the one error line of a failed command and returns
// the failure exit code. API errors end with their code in parentheses.
func (c *cmdline) fail(err error) int {
	fmt.Fprintln(c.stderr, errorLine(err))
	return exitFailure
}

func errorLine(err error) string {
	var e *httpjson.Error
	if errors.As(err, &e) && e.Code != "" {
		return fmt.Sprintf("shoal: %s (%s)", err, e.Code)
	}
	return fmt.Sprintf("shoal: %s", err)
}

// clientFlags are the flags every client command takes.
type clientFlags struct {
	addr    string
	token   string
	timeout time.Duration
}

// clientFlags registers --addr and --token (falling back to SHOAL_ADDR and
// SHOAL_TOKEN) and, when timeout is positive, --timeout with that default.
func (c *cmdline) clientFlags(timeout time.Duration) *clientFlags {
	cf := &clientFlags{}
	c.fs.StringVar(&cf.addr, "addr", defaultAddr, "HTTP API address of the node")
	c.fs.StringVar(&cf.token, "token", "", "bearer token for the API")
	c.env = append(c.env, "addr", "token")
	if timeout > 0 {
		c.fs.DurationVar(&cf.timeout, "timeout", timeout, "give up after this long")
	}
	return cf
}

// client returns a client for the flags; a bad --addr is reported as a
// usage error, and ok is false.
func (c *cmdline) client(cf *clientFlags) (cl *client.Client, code int, ok bool) {
	cl, err := client.New(cf.addr, client.WithToken(cf.token))
	if err != nil {
		return nil, c.usageError("--addr: %s", err.Error()), false
	}
	return cl, exitOK, true
}

// context returns ctx bounded by --timeout when the command has one.
func (cf *clientFlags) context(ctx context.Context) (context.Context, context.CancelFunc) {
	if cf.timeout > 0 {
		return context.WithTimeout(ctx, cf.timeout)
	}
	return context.WithCancel(ctx)
}

// start parses args and builds the client of a client command. When ok is
// false the command must return code at once.
func (c *cmdline) start(args []string, cf *clientFlags) (pos []string, cl *client.Client, code int, ok bool) {
	pos, code, ok = c.parse(args)
	if !ok {
		return nil, nil, code, false
	}
	cl, code, ok = c.client(cf)
	return pos, cl, code, ok
}
