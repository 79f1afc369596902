package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
)

// Values of commands that take a value or data (kv put, log publish,
// keyring install) are read as consul's kv put reads them: "-" reads
// stdin, "@FILE" reads the file FILE, anything else is the value itself.
// --raw takes the argument literally, as curl's --data-raw does, for a
// value that starts with "@" or is "-" (piping it on stdin works too).

// valueSource says where a value argument comes from, for the messages.
func valueSource(arg string, raw bool) string {
	switch {
	case raw:
		return "the argument"
	case arg == "-":
		return "stdin"
	case strings.HasPrefix(arg, "@"):
		return arg[1:]
	default:
		return "the argument"
	}
}

// readValue returns the value an argument stands for: stdin for "-", the
// content of FILE for "@FILE", the argument itself otherwise or when raw
// is set. It reads stdin or the file whole.
func readValue(arg string, raw bool, stdin io.Reader) ([]byte, error) {
	switch {
	case raw:
		return []byte(arg), nil
	case arg == "-":
		if stdin == nil {
			stdin = os.Stdin
		}
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return b, nil
	case strings.HasPrefix(arg, "@"):
		if arg == "@" {
			return nil, fmt.Errorf("%q names no file: write @FILE, or --raw for a literal @", arg)
		}
		b, err := os.ReadFile(arg[1:])
		if err != nil {
			return nil, err // *PathError: "open FILE: reason"
		}
		return b, nil
	default:
		return []byte(arg), nil
	}
}

// rawFlag adds --raw to c: take the value argument literally.
func (c *cmdline) rawFlag() *bool {
	return c.fs.Bool("raw", false, "take the value argument literally, even when it is - or starts with @")
}

// stdinKey is the context key of the stdin commands read values from.
type stdinKey struct{}

// contextWithStdin returns ctx carrying r as the stdin of the commands run with
// it; tests use it instead of os.Stdin.
func contextWithStdin(ctx context.Context, r io.Reader) context.Context {
	return context.WithValue(ctx, stdinKey{}, r)
}

// stdinOf returns the stdin ctx carries, os.Stdin by default.
func stdinOf(ctx context.Context) io.Reader {
	if r, ok := ctx.Value(stdinKey{}).(io.Reader); ok {
		return r
	}
	return os.Stdin
}
