package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"shoal/client"
)

func init() {
	registerCommand("acl", "create, list, read and revoke scoped API tokens", runACL)
}

// runACL is the acl command group; its one subgroup, token, holds the
// commands.
func runACL(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runGroup(ctx, "acl", "Manage the scoped API tokens of the acl module (kept in Raft; managing them\n"+
		"takes the operator rule or the node's --token)", []subcommand{
		{"token", "create, list, read and revoke API tokens", runACLToken},
	}, args, stdout, stderr)
}

func runACLToken(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runGroup(ctx, "acl token", "Create, list, read and revoke API tokens. A token is named by its accessor id\n"+
		"(not secret) or its name; its secret is shown once, when it is created", []subcommand{
		{"create", "create a token and print its secret, once", runACLTokenCreate},
		{"list", "list the tokens, without their secrets", runACLTokenList},
		{"read", "show one token, without its secret", runACLTokenRead},
		{"revoke", "revoke a token, on every node", runACLTokenRevoke},
	}, args, stdout, stderr)
}

// ruleFlags is the repeatable --rule flag.
type ruleFlags []string

func (r *ruleFlags) String() string {
	if r == nil {
		return ""
	}
	return strings.Join(*r, " ")
}

func (r *ruleFlags) Set(s string) error {
	*r = append(*r, s)
	return nil
}

func runACLTokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("acl token create", "--name NAME --rule RULE [--rule RULE ...] [--ttl DURATION]",
		"Create a token through Raft and print it with its secret, which is shown only\n"+
			"this once (the cluster keeps its hash): store it at once. A rule is \"operator\"\n"+
			"or MODULE:ACTION:PATTERN: MODULE kv, logs, locks, objects, files, cluster or *;\n"+
			"ACTION read, write or admin (each implies the ones before); PATTERN * or a\n"+
			"literal name prefix (kv:write:config/ covers config/a and config/b/c).", requestTimeout, stdout, stderr)
	out := c.outputFlag("aligned field: value lines")
	name := c.fs.String("name", "", "the token's `NAME`, unique in the cluster (letters, digits, '.', '_', '-')")
	var rules ruleFlags
	c.fs.Var(&rules, "rule", "a `RULE` the token grants; repeat the flag for more (1 to 64)")
	ttl := c.fs.Duration("ttl", 0, "the token expires this long after its creation, such as 720h (0: never)")
	return c.run(ctx, args, noArgs, func(ctx context.Context, cl *client.Client, _ []string) int {
		switch {
		case *name == "":
			return c.usageError("--name is required")
		case len(rules) == 0:
			return c.usageError("at least one --rule is required")
		case *ttl < 0:
			return c.usageError("--ttl must not be negative (0: the token never expires)")
		}
		tok, err := cl.CreateToken(ctx, client.TokenRequest{Name: *name, Rules: rules, TTL: *ttl})
		if err != nil {
			return c.fail(err)
		}
		if out.json() {
			return c.encodeJSON(tok)
		}
		if code := printToken(c.cmdline, tok.Token, tok.SecretID); code != exitOK {
			return code
		}
		fmt.Fprint(stdout, "\nThe secret is shown only this once: store it now. Clients pass it as\n"+
			"--token or SHOAL_TOKEN; the accessor names the token in 'shoal acl token'.\n")
		return exitOK
	})
}

func runACLTokenList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("acl token list", "", "List the cluster's tokens in name order, without their secrets. Expired\n"+
		"tokens the leader has not removed yet are listed, marked (expired).", requestTimeout, stdout, stderr)
	out := c.outputFlag("aligned columns")
	return c.run(ctx, args, noArgs, func(ctx context.Context, cl *client.Client, _ []string) int {
		list, err := cl.Tokens(ctx)
		if err != nil {
			return c.fail(err)
		}
		now := time.Now()
		return printList(c.cmdline, out.json(), list, "ACCESSOR\tNAME\tRULES\tCREATED\tEXPIRES", func(t client.Token) string {
			return fmt.Sprintf("%s\t%s\t%s\t%s\t%s", t.AccessorID, t.Name, joinOrDash(t.Rules), tokenTime(t.Created), tokenExpiry(t.Expires, now))
		})
	})
}

func runACLTokenRead(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("acl token read", "ACCESSOR|NAME", "Show the token with that accessor id or name, without its secret. Exit\n"+
		"code 1 with token_not_found if there is none.", requestTimeout, stdout, stderr)
	out := c.outputFlag("aligned field: value lines")
	return c.run(ctx, args, exactlyOne("accessor id or token name"), func(ctx context.Context, cl *client.Client, pos []string) int {
		tok, err := cl.Token(ctx, pos[0])
		if err != nil {
			return c.fail(err)
		}
		if out.json() {
			return c.encodeJSON(tok)
		}
		return printToken(c.cmdline, tok, "")
	})
}

func runACLTokenRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("acl token revoke", "ACCESSOR|NAME", "Revoke the token with that accessor id or name, through Raft: every node\n"+
		"refuses it once it applied the revocation. Exit code 1 with token_not_found\n"+
		"if there is none.", requestTimeout, stdout, stderr)
	return c.run(ctx, args, exactlyOne("accessor id or token name"), func(ctx context.Context, cl *client.Client, pos []string) int {
		if err := cl.RevokeToken(ctx, pos[0]); err != nil {
			return c.fail(err)
		}
		fmt.Fprintf(stdout, "revoked token %s\n", pos[0])
		return exitOK
	})
}

// printToken prints one token as aligned "field: value" lines, with its
// secret when secret is not empty.
func printToken(c *cmdline, t client.Token, secret string) int {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "accessor:\t%s\n", t.AccessorID)
	if secret != "" {
		fmt.Fprintf(tw, "secret:\t%s\n", secret)
	}
	fmt.Fprintf(tw, "name:\t%s\n", t.Name)
	fmt.Fprintf(tw, "rules:\t%s\n", joinOrDash(t.Rules))
	fmt.Fprintf(tw, "created:\t%s\n", tokenTime(t.Created))
	fmt.Fprintf(tw, "expires:\t%s\n", tokenExpiry(t.Expires, time.Now()))
	return c.flush(tw)
}

func tokenTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// tokenExpiry is when a token expires as the tables show it: "never", or
// the time, marked "(expired)" once it has passed by this machine's clock.
func tokenExpiry(t *time.Time, now time.Time) string {
	switch {
	case t == nil:
		return "never"
	case !t.After(now):
		return tokenTime(*t) + " (expired)"
	}
	return tokenTime(*t)
}
