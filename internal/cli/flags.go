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
	if len(args) == 1 && args[0] == describeArg {
		describeFlags(c.stdout, c.fs)
		return nil, exitOK, false
	}
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
		dashes := "--"
		if len(f.Name) == 1 {
			dashes = "-"
		}
		fmt.Fprintf(w, "  %s%s", dashes, f.Name)
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
	return "shoal: " + errorText(err)
}

// errorText is errorLine without its "shoal: " prefix, for lines that
// carry their own ("shoal kv watch: ..."). Durations in the message are
// rounded for people.
func errorText(err error) string {
	msg := roundDurations(err.Error())
	// The API's advice names its query parameter; the CLI's is a command.
	msg = strings.ReplaceAll(msg, "use ?update", "use 'shoal sem create --update'")
	var e *httpjson.Error
	if errors.As(err, &e) && e.Code != "" {
		return fmt.Sprintf("%s (%s)", msg, e.Code)
	}
	return msg
}

// clientCmdline is the command line of a client command: the flags every
// client command takes, --addr and --token (falling back to SHOAL_ADDR and
// SHOAL_TOKEN) and --timeout where it has one, beside its own flags, which
// it adds to fs before run.
type clientCmdline struct {
	*cmdline
	addr    string
	token   string
	timeout time.Duration // 0: no --timeout
	// TLS for an https:// --addr: a CA bundle to trust, a client
	// certificate to present.
	caCert, clientCert, clientKey string
}

// newClientCmdline returns the command line of a client command. timeout
// is the default of its --timeout; 0 leaves the flag out, for a command
// that blocks or follows for as long as it is meant to and bounds its own
// requests.
func newClientCmdline(path, synopsis, summary string, timeout time.Duration, stdout, stderr io.Writer) *clientCmdline {
	c := &clientCmdline{cmdline: newCmdline(path, synopsis, summary, stdout, stderr)}
	c.fs.StringVar(&c.addr, "addr", defaultAddr, "HTTP API address of the node")
	c.fs.StringVar(&c.token, "token", "", "bearer token for the API")
	c.fs.StringVar(&c.caCert, "ca-cert", "", "PEM CA bundle to trust for an https:// --addr (default: the system's)")
	c.fs.StringVar(&c.clientCert, "client-cert", "", "PEM client certificate, for a node started with --tls-client-ca")
	c.fs.StringVar(&c.clientKey, "client-key", "", "PEM private key of --client-cert")
	c.env = append(c.env, "addr", "token", "ca-cert", "client-cert", "client-key")
	if timeout > 0 {
		c.fs.DurationVar(&c.timeout, "timeout", timeout, "give up after this long")
	}
	return c
}

// argCheck checks the positional arguments of a command: it returns the
// usage error for wrong ones and "" for right ones.
type argCheck func(pos []string) string

// noArgs refuses every positional argument.
func noArgs(pos []string) string {
	if len(pos) > 0 {
		return fmt.Sprintf("unexpected argument %q", pos[0])
	}
	return ""
}

// exactlyOne wants one positional argument, a what ("key", "log name").
func exactlyOne(what string) argCheck {
	return func(pos []string) string {
		if len(pos) != 1 {
			return "exactly one " + what + " is required"
		}
		return ""
	}
}

// atMostOne wants no positional argument or one, a what ("prefix").
func atMostOne(what string) argCheck {
	return func(pos []string) string {
		if len(pos) > 1 {
			return fmt.Sprintf("at most one %s is allowed, got %d arguments", what, len(pos))
		}
		return ""
	}
}

// run runs the command: it parses args, builds the client, checks the
// positional arguments with check (nil: do checks them), and calls do
// with ctx bounded by --timeout, if the command has one. It returns do's
// exit code, or at once 0 after help and the usage exit code for wrong
// arguments or a bad --addr.
func (c *clientCmdline) run(ctx context.Context, args []string, check argCheck,
	do func(ctx context.Context, cl *client.Client, pos []string) int) int {
	pos, code, ok := c.parse(args)
	if !ok {
		return code
	}
	opts := []client.Option{client.WithToken(c.token)}
	if c.caCert != "" || c.clientCert != "" || c.clientKey != "" {
		tcfg, err := client.LoadTLS(c.caCert, c.clientCert, c.clientKey)
		if err != nil {
			return c.usageError("%s", err.Error())
		}
		opts = append(opts, client.WithTLS(tcfg))
	}
	cl, err := client.New(c.addr, opts...)
	if err != nil {
		return c.usageError("--addr: %s", err.Error())
	}
	if check != nil {
		if msg := check(pos); msg != "" {
			return c.usageError("%s", msg)
		}
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	return do(ctx, cl, pos)
}
