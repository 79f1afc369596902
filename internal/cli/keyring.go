package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"shoal/client"
	"shoal/internal/keyring"
)

func runKeygen(_ context.Context, args []string, stdout, stderr io.Writer) int {
	c := newCmdline("keygen", "", "Print a new cluster secret (32 random bytes, base64) for --cluster-secret.", stdout, stderr)
	if _, code, ok := c.parse(args); !ok {
		return code
	}
	s, err := keyring.Generate()
	if err != nil {
		fmt.Fprintf(stderr, "shoal keygen: %v\n", err)
		return exitFailure
	}
	fmt.Fprintln(stdout, s)
	return exitOK
}

func runKeyring(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runGroup(ctx, "keyring", "Manage the cluster secrets of every member (rotation without downtime:\n"+
		"install the new secret, use it, then remove the old one)", []subcommand{
		{"list", "list every member's keys, by ID", runKeyringList},
		{"install", "install a secret on every member (KEY, - for stdin or @FILE)", keyringChange("install")},
		{"use", "make an installed key primary on every member (the secret or its ID)", keyringChange("use")},
		{"remove", "remove a key from every member (the secret or its ID; not the primary)", keyringChange("remove")},
	}, args, stdout, stderr)
}

func runKeyringList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("keyring list", "", "List the cluster keys of every alive member, by ID.", requestTimeout, stdout, stderr)
	out := c.outputFlag("aligned columns")
	return c.run(ctx, args, noArgs, func(ctx context.Context, cl *client.Client, _ []string) int {
		res, err := cl.Keyring(ctx)
		return printKeyring(c.cmdline, out.json(), res, err)
	})
}

func keyringChange(op string) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		c := newClientCmdline("keyring "+op, "KEY", "Run `"+op+"` with KEY on every alive member; - reads KEY from stdin,\n@FILE from the file FILE (keeping the secret out of the shell history).", requestTimeout, stdout, stderr)
		out := c.outputFlag("aligned columns")
		return c.run(ctx, args, exactlyOne("key"), func(ctx context.Context, cl *client.Client, pos []string) int {
			b, err := readValue(pos[0], false, stdinOf(ctx))
			if err != nil {
				return c.fail(fmt.Errorf("read the key: %w", err))
			}
			key := strings.TrimSpace(string(b))
			var res client.Keyring
			switch op {
			case "install":
				res, err = cl.KeyringInstall(ctx, key)
			case "use":
				res, err = cl.KeyringUse(ctx, key)
			default:
				res, err = cl.KeyringRemove(ctx, key)
			}
			return printKeyring(c.cmdline, out.json(), res, err)
		})
	}
}

// printKeyring prints every member's answer: its keys (the primary marked
// with *) or its error. It exits 1 if any member failed.
func printKeyring(c *cmdline, asJSON bool, res client.Keyring, err error) int {
	var partial *client.KeyringError
	if errors.As(err, &partial) {
		res = partial.Result
	} else if err != nil {
		return c.fail(err)
	}
	if asJSON {
		if code := c.encodeJSON(res); code != exitOK {
			return code
		}
	} else {
		names := make([]string, 0, len(res.Nodes))
		for n := range res.Nodes {
			names = append(names, n)
		}
		sort.Strings(names)
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tKEYS (* primary)")
		for _, n := range names {
			nk := res.Nodes[n]
			if nk.Error != "" {
				fmt.Fprintf(tw, "%s\terror: %s\n", n, nk.Error)
				continue
			}
			var ids []string
			for _, k := range nk.Keys {
				id := k.ID
				if k.Primary {
					id += "*"
				}
				ids = append(ids, id)
			}
			fmt.Fprintf(tw, "%s\t%s\n", n, strings.Join(ids, " "))
		}
		if code := c.flush(tw); code != exitOK {
			return code
		}
	}
	if res.Failed > 0 {
		fmt.Fprintf(c.stderr, "shoal %s: failed on %d member(s)\n", c.path, res.Failed)
		return exitFailure
	}
	return exitOK
}
