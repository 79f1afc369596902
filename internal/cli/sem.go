package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"shoal/client"
)

func init() {
	registerCommand("sem", "create, acquire, release and inspect semaphores; run a command under one", runSem)
	registerCommand("lock", "acquire, release and inspect read/write locks; run a command under one", runLock)
}

func runSem(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runGroup(ctx, "sem", "Create, acquire, release and inspect semaphores of the locks module", []subcommand{
		{"create", "create a semaphore (or change its limit with --update)", runSemCreate},
		{"delete", "delete a semaphore, releasing its holders", runSemDelete},
		{"list", "list the semaphores", runSemList},
		{"info", "show a semaphore's limit, holders and waiters", runSemInfo},
		{"acquire", "acquire a slot and print its fencing token", semAcquire(semKind)},
		{"renew", "extend a held slot's lease", semRenew(semKind)},
		{"release", "release a held slot", semRelease(semKind)},
		{"run", "run a command while holding a slot", semRun(semKind)},
	}, args, stdout, stderr)
}

func runLock(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runGroup(ctx, "lock", "Acquire, release and inspect read/write locks of the locks module", []subcommand{
		{"list", "list the locks held or waited for", runLockList},
		{"info", "show a lock's mode, holders and waiters", runLockInfo},
		{"acquire", "acquire a lock and print its fencing token", semAcquire(lockKind)},
		{"renew", "extend a held lock's lease", semRenew(lockKind)},
		{"release", "release a held lock", semRelease(lockKind)},
		{"run", "run a command while holding a lock", semRun(lockKind)},
	}, args, stdout, stderr)
}

// heldKind is what a command acquires: a semaphore slot or a lock.
type heldKind int

const (
	semKind heldKind = iota
	lockKind
)

func (k heldKind) group() string {
	if k == lockKind {
		return "lock"
	}
	return "sem"
}

func (k heldKind) noun() string {
	if k == lockKind {
		return "lock"
	}
	return "semaphore"
}

// held binds a kind to a client and a name.
type held struct {
	kind heldKind
	cl   *client.Client
	name string
	mode client.LockMode // locks
}

func (h held) acquire(ctx context.Context, holder string, opts client.AcquireOptions) (client.Lease, error) {
	if h.kind == lockKind {
		return h.cl.AcquireLock(ctx, h.name, holder, h.mode, opts)
	}
	return h.cl.AcquireSemaphore(ctx, h.name, holder, opts)
}

func (h held) renew(ctx context.Context, holder string, ttl time.Duration) (client.Lease, error) {
	if h.kind == lockKind {
		return h.cl.RenewLock(ctx, h.name, holder, ttl)
	}
	return h.cl.RenewSemaphore(ctx, h.name, holder, ttl)
}

func (h held) release(ctx context.Context, holder string) error {
	if h.kind == lockKind {
		return h.cl.ReleaseLock(ctx, h.name, holder)
	}
	return h.cl.ReleaseSemaphore(ctx, h.name, holder)
}

func (h held) keep(holder string, ttl time.Duration, lease client.Lease) *client.LeaseKeeper {
	if h.kind == lockKind {
		return h.cl.KeepLock(h.name, holder, ttl, lease)
	}
	return h.cl.KeepSemaphore(h.name, holder, ttl, lease)
}

// cliHint rewrites the API's advice in err's message into the CLI's
// words: the API says "use ?update", the command's flag is --update.
func cliHint(err error) error {
	var e *client.Error
	if !errors.As(err, &e) || !strings.Contains(e.Message, "?update") {
		return err
	}
	return &hintError{err: err, msg: strings.ReplaceAll(err.Error(), "use ?update", "use --update")}
}

// hintError is an error whose message was reworded for the command line;
// it still matches what it wraps with errors.Is and errors.As.
type hintError struct {
	err error
	msg string
}

func (e *hintError) Error() string { return e.msg }
func (e *hintError) Unwrap() error { return e.err }

// busy reports whether err means "every slot is taken".
func busy(err error) bool {
	return errors.Is(err, client.ErrSemaphoreFull) || errors.Is(err, client.ErrLockBusy)
}

func runSemCreate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("sem create", "NAME -n LIMIT", "Create the semaphore NAME with LIMIT slots. It succeeds if NAME exists\n"+
		"with that limit; with --update it changes the limit of an existing one\n"+
		"(lowering it releases no one: it only holds back new grants).", requestTimeout, stdout, stderr)
	limit := c.fs.Int("n", 0, "the limit: how many holders at once (required)")
	update := c.fs.Bool("update", false, "change the limit if the semaphore exists")
	return c.run(ctx, args, exactlyOne("semaphore name"), func(ctx context.Context, cl *client.Client, pos []string) int {
		if *limit < 1 {
			return c.usageError("-n must be at least 1")
		}
		name := pos[0]
		if *update {
			if err := cl.SetSemaphoreLimit(ctx, name, *limit); err != nil {
				return c.fail(err)
			}
			fmt.Fprintf(stdout, "semaphore %s has limit %d\n", name, *limit)
			return exitOK
		}
		created, err := cl.CreateSemaphore(ctx, name, *limit)
		if err != nil {
			return c.fail(cliHint(err))
		}
		if created {
			fmt.Fprintf(stdout, "created semaphore %s with limit %d\n", name, *limit)
		} else {
			fmt.Fprintf(stdout, "semaphore %s exists with limit %d\n", name, *limit)
		}
		return exitOK
	})
}

func runSemDelete(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("sem delete", "NAME", "Delete the semaphore NAME: its holders are released and its waiters fail.", requestTimeout, stdout, stderr)
	return c.run(ctx, args, exactlyOne("semaphore name"), func(ctx context.Context, cl *client.Client, pos []string) int {
		if err := cl.DeleteSemaphore(ctx, pos[0]); err != nil {
			return c.fail(err)
		}
		fmt.Fprintf(stdout, "deleted semaphore %s\n", pos[0])
		return exitOK
	})
}

func runSemList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("sem list", "", "List the semaphores with their limit, holders and waiters.", requestTimeout, stdout, stderr)
	out := c.outputFlag("aligned columns")
	return c.run(ctx, args, noArgs, func(ctx context.Context, cl *client.Client, _ []string) int {
		list, err := cl.Semaphores(ctx)
		if err != nil {
			return c.fail(err)
		}
		return printList(c.cmdline, out.json(), list, "NAME\tLIMIT\tACTIVE\tWAITING", func(s client.Semaphore) string {
			return fmt.Sprintf("%s\t%d\t%d\t%d", s.Name, s.Limit, s.Active, s.Waiting)
		})
	})
}

func runSemInfo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("sem info", "NAME", "Show the limit, holders (with their fencing tokens) and waiters of the\nsemaphore NAME.", requestTimeout, stdout, stderr)
	out := c.outputFlag("aligned field: value lines")
	consistent := c.fs.Bool("consistent", false, "read through the leader, seeing every committed change")
	return c.run(ctx, args, exactlyOne("semaphore name"), func(ctx context.Context, cl *client.Client, pos []string) int {
		s, err := cl.Semaphore(ctx, pos[0], *consistent)
		if err != nil {
			return c.fail(err)
		}
		if out.json() {
			return c.encodeJSON(s)
		}
		summary := fmt.Sprintf("name:\t%s\nlimit:\t%d\nactive:\t%d\nwaiting:\t%d\n", s.Name, s.Limit, s.Active, s.Waiting)
		return printHeld(c.cmdline, summary, s.Holders, false)
	})
}

func runLockList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("lock list", "", "List the locks that are held or waited for.", requestTimeout, stdout, stderr)
	out := c.outputFlag("aligned columns")
	return c.run(ctx, args, noArgs, func(ctx context.Context, cl *client.Client, _ []string) int {
		list, err := cl.Locks(ctx)
		if err != nil {
			return c.fail(err)
		}
		return printList(c.cmdline, out.json(), list, "NAME\tMODE\tACTIVE\tWAITING", func(l client.LockInfo) string {
			return fmt.Sprintf("%s\t%s\t%d\t%d", l.Name, l.Mode, l.Active, l.Waiting)
		})
	})
}

func runLockInfo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := newClientCmdline("lock info", "NAME", "Show the mode, holders (with their fencing tokens) and waiters of the\nlock NAME.", requestTimeout, stdout, stderr)
	out := c.outputFlag("aligned field: value lines")
	consistent := c.fs.Bool("consistent", false, "read through the leader, seeing every committed change")
	return c.run(ctx, args, exactlyOne("lock name"), func(ctx context.Context, cl *client.Client, pos []string) int {
		l, err := cl.Lock(ctx, pos[0], *consistent)
		if err != nil {
			return c.fail(err)
		}
		if out.json() {
			return c.encodeJSON(l)
		}
		summary := fmt.Sprintf("name:\t%s\nmode:\t%s\nactive:\t%d\nwaiting:\t%d\n", l.Name, l.Mode, l.Active, l.Waiting)
		return printHeld(c.cmdline, summary, l.Holders, true)
	})
}

// printHeld prints what info shows of a semaphore or lock: summary, lines
// of "field:\tvalue" that it aligns, then the table of holders (with their
// modes for a lock), if there are any.
func printHeld(c *cmdline, summary string, holders []client.Holder, modes bool) int {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, summary)
	if err := tw.Flush(); err != nil {
		return c.fail(fmt.Errorf("write output: %w", err))
	}
	if len(holders) == 0 {
		return exitOK
	}
	tw = tabwriter.NewWriter(c.stdout, 0, 4, 3, ' ', 0)
	if modes {
		fmt.Fprintln(tw, "\nHOLDER\tMODE\tTOKEN\tEXPIRES")
	} else {
		fmt.Fprintln(tw, "\nHOLDER\tTOKEN\tEXPIRES")
	}
	for _, h := range holders {
		if modes {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", h.Holder, h.Mode, h.Token, h.ExpiresAt.Format(time.RFC3339Nano))
		} else {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", h.Holder, h.Token, h.ExpiresAt.Format(time.RFC3339Nano))
		}
	}
	return c.flush(tw)
}

// leaseOutput is what acquire and renew print with --json.
type leaseOutput struct {
	Token      uint64    `json:"token"`
	ExpiresAt  time.Time `json:"expires_at"`
	ValidUntil time.Time `json:"valid_until"`
}

func printLease(c *cmdline, lease client.Lease, asJSON bool) int {
	if asJSON {
		return c.encodeJSON(leaseOutput{Token: lease.Token, ExpiresAt: lease.ExpiresAt, ValidUntil: lease.ValidUntil})
	}
	fmt.Fprintf(c.stdout, "token %d, valid until %s (expires on the leader at %s)\n",
		lease.Token, lease.ValidUntil.Format(time.RFC3339Nano), lease.ExpiresAt.Format(time.RFC3339Nano))
	return exitOK
}

// holderFlags are the flags of acquire, renew and release.
type holderFlags struct {
	holder string
	ttl    time.Duration
	read   bool
}

func (c *cmdline) holderFlags(k heldKind, withTTL bool) *holderFlags {
	hf := &holderFlags{}
	c.fs.StringVar(&hf.holder, "holder", "", "the holder id, unique per worker (required)")
	if withTTL {
		c.fs.DurationVar(&hf.ttl, "ttl", 30*time.Second, "the lease: released unless renewed within it")
	}
	if k == lockKind && withTTL {
		c.fs.BoolVar(&hf.read, "read", false, "take the lock for reading (shared) instead of writing")
	}
	return hf
}

func (hf *holderFlags) target(k heldKind, cl *client.Client, name string) held {
	return held{kind: k, cl: cl, name: name, mode: lockMode(k, hf.read)}
}

// check checks the arguments of acquire, renew and release: one name and
// --holder.
func (hf *holderFlags) check(k heldKind) argCheck {
	oneName := exactlyOne(k.noun() + " name")
	return func(pos []string) string {
		if msg := oneName(pos); msg != "" {
			return msg
		}
		if hf.holder == "" {
			return "--holder is required"
		}
		return ""
	}
}

// lockMode is the mode a command takes a lock in: reading with --read,
// otherwise writing. Semaphores have no mode.
func lockMode(k heldKind, read bool) client.LockMode {
	switch {
	case k != lockKind:
		return ""
	case read:
		return client.ReadLock
	default:
		return client.WriteLock
	}
}

func semAcquire(k heldKind) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		summary := "Acquire a slot of the semaphore NAME for --holder and print its fencing\ntoken. Acquiring again while holding renews the lease, same token."
		if k == lockKind {
			summary = "Acquire the lock NAME for --holder (for writing, or with --read for\nreading) and print its fencing token."
		}
		// No --timeout: the request is bounded by --wait plus requestTimeout.
		c := newClientCmdline(k.group()+" acquire", "NAME --holder H", summary+"\n"+
			"Exit code 1 with "+busyCode(k)+" if it is not acquired within --wait.", 0, stdout, stderr)
		hf := c.holderFlags(k, true)
		wait := c.fs.Duration("wait", 0, "queue for a slot up to this long (0: answer at once)")
		limit := 0
		if k == semKind {
			c.fs.IntVar(&limit, "n", 0, "create the semaphore with this limit if it does not exist")
		}
		retries := c.fs.Int("retries", 0, "retries of a busy answer, done by the node")
		minWait := c.fs.Duration("min-wait", 0, "shortest random pause between retries (0: the node's default)")
		maxWait := c.fs.Duration("max-wait", 0, "longest random pause between retries (0: the node's default)")
		out := c.outputFlag("one line of text")
		return c.run(ctx, args, hf.check(k), func(ctx context.Context, cl *client.Client, pos []string) int {
			ctx, cancel := context.WithTimeout(ctx, *wait+requestTimeout)
			defer cancel()
			lease, err := hf.target(k, cl, pos[0]).acquire(ctx, hf.holder, client.AcquireOptions{
				TTL: hf.ttl, Wait: *wait, CreateLimit: limit, Retries: *retries, MinWait: *minWait, MaxWait: *maxWait})
			if err != nil {
				return c.fail(err)
			}
			return printLease(c.cmdline, lease, out.json())
		})
	}
}

func busyCode(k heldKind) string {
	if k == lockKind {
		return "lock_busy"
	}
	return "semaphore_full"
}

func semRenew(k heldKind) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		c := newClientCmdline(k.group()+" renew", "NAME --holder H", "Extend --holder's lease on the "+k.noun()+" NAME to --ttl from now.\n"+
			"Exit code 1 with not_holder if the lease is lost.", requestTimeout, stdout, stderr)
		hf := c.holderFlags(k, true)
		out := c.outputFlag("one line of text")
		return c.run(ctx, args, hf.check(k), func(ctx context.Context, cl *client.Client, pos []string) int {
			lease, err := hf.target(k, cl, pos[0]).renew(ctx, hf.holder, hf.ttl)
			if err != nil {
				return c.fail(err)
			}
			return printLease(c.cmdline, lease, out.json())
		})
	}
}

func semRelease(k heldKind) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		c := newClientCmdline(k.group()+" release", "NAME --holder H", "Release --holder's hold of the "+k.noun()+" NAME.\n"+
			"Exit code 1 with not_holder if it held nothing.", requestTimeout, stdout, stderr)
		hf := c.holderFlags(k, false)
		return c.run(ctx, args, hf.check(k), func(ctx context.Context, cl *client.Client, pos []string) int {
			if err := hf.target(k, cl, pos[0]).release(ctx, hf.holder); err != nil {
				return c.fail(err)
			}
			fmt.Fprintln(stdout, "released")
			return exitOK
		})
	}
}

// runOptions are the settings of sem run and lock run.
type runOptions struct {
	target    held
	holder    string
	ttl       time.Duration
	wait      time.Duration // 0: no limit
	try       bool
	limit     int
	killGrace time.Duration
	command   []string
}

func semRun(k heldKind) func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		synopsis := "NAME [-n LIMIT] -- COMMAND [ARGS...]"
		what := "a slot of the semaphore NAME (created with -n LIMIT if it does not exist)"
		if k == lockKind {
			synopsis = "NAME [--read] -- COMMAND [ARGS...]"
			what = "the lock NAME (for writing, or with --read for reading)"
		}
		c := newClientCmdline(k.group()+" run", synopsis, "Acquire "+what+",\n"+
			"run COMMAND while renewing the lease in the background, and release on\n"+
			"exit. The exit code is COMMAND's. Signals (INT, TERM, HUP, QUIT, USR1,\n"+
			"USR2) are passed on to COMMAND. If the lease is lost, COMMAND is sent\n"+
			"TERM (KILL after --kill-grace) and run exits with 1. COMMAND finds the\n"+
			"fencing token in SHOAL_FENCING_TOKEN and the holder in SHOAL_HOLDER.", 0, stdout, stderr)
		o := runOptions{}
		c.fs.StringVar(&o.holder, "holder", "", "holder id (default: host, pid and a random suffix)")
		c.fs.DurationVar(&o.ttl, "ttl", 15*time.Second, "the lease, renewed every third of it")
		c.fs.DurationVar(&o.wait, "wait", 0, "give up if not acquired within this long (0: wait as long as it takes)")
		c.fs.BoolVar(&o.try, "try", false, "make one attempt and give up at once if busy")
		c.fs.DurationVar(&o.killGrace, "kill-grace", 2*time.Second, "after the lease is lost, how long COMMAND has between TERM and KILL")
		read := false
		if k == semKind {
			c.fs.IntVar(&o.limit, "n", 0, "create the semaphore with this limit if it does not exist")
		} else {
			c.fs.BoolVar(&read, "read", false, "take the lock for reading (shared) instead of writing")
		}
		return c.run(ctx, args, nil, func(ctx context.Context, cl *client.Client, pos []string) int {
			if len(pos) < 2 {
				return c.usageError("a %s name and a command are required", k.noun())
			}
			if o.ttl <= 0 || o.wait < 0 || o.limit < 0 || o.killGrace < 0 {
				return c.usageError("--ttl must be positive; --wait, -n and --kill-grace must not be negative")
			}
			o.target = held{kind: k, cl: cl, name: pos[0], mode: lockMode(k, read)}
			o.command = pos[1:]
			if o.holder == "" {
				host, _ := os.Hostname()
				o.holder = fmt.Sprintf("%s-%d-%08x", host, os.Getpid(), rand.Uint32())
			}
			sigs := make(chan os.Signal, 4)
			signal.Notify(sigs, forwardedSignals...)
			defer signal.Stop(sigs)
			return runHeld(ctx, c.cmdline, o, sigs)
		})
	}
}

// runHeld acquires, runs the command under the lease and releases. sigs
// delivers the signals to pass on to the command.
func runHeld(ctx context.Context, c *cmdline, o runOptions, sigs <-chan os.Signal) int {
	lease, err := acquireForRun(ctx, o, sigs, c.stderr)
	if err != nil {
		return c.fail(err)
	}
	keeper := o.target.keep(o.holder, o.ttl, lease)
	defer keeper.Stop()
	release := func() error {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
		defer cancel()
		return o.target.release(rctx, o.holder)
	}

	cmd := exec.Command(o.command[0], o.command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, c.stdout, c.stderr
	cmd.Env = append(os.Environ(), "SHOAL_FENCING_TOKEN="+strconv.FormatUint(lease.Token, 10), "SHOAL_HOLDER="+o.holder)
	cmd.WaitDelay = time.Second // a grandchild holding the output open does not hold us
	prepareChild(cmd)
	if err := cmd.Start(); err != nil {
		if rerr := release(); rerr != nil {
			fmt.Fprintln(c.stderr, errorLine(fmt.Errorf("release after a failed start: %w", rerr)))
		}
		c.fail(fmt.Errorf("start %s: %w", o.command[0], err))
		return 127
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	lost := keeper.Lost()
	var kill <-chan time.Time
	leaseLost := false
	for {
		select {
		case err := <-exited:
			keeper.Stop()
			if leaseLost {
				_ = release() // it may still be held if only the renews failed
				return c.fail(fmt.Errorf("%s %q: %w; the command was stopped", o.target.kind.noun(), o.target.name, keeper.Err()))
			}
			if rerr := release(); rerr != nil {
				fmt.Fprintln(c.stderr, errorLine(fmt.Errorf("release after the command exited: %w", rerr)))
			}
			return exitCode(cmd, err)
		case sig := <-sigs:
			signalChild(cmd, sig)
		case <-ctx.Done():
			signalChild(cmd, terminateSignal)
			ctx = context.WithoutCancel(ctx)
		case <-lost:
			lost, leaseLost = nil, true
			fmt.Fprintln(c.stderr, errorLine(fmt.Errorf("lease on %s %q lost: stopping the command: %w", o.target.kind.noun(), o.target.name, keeper.Err())))
			signalChild(cmd, terminateSignal)
			t := time.NewTimer(o.killGrace)
			defer t.Stop()
			kill = t.C
		case <-kill:
			kill = nil
			killChild(cmd)
		}
	}
}

// acquireForRun acquires for a run: blocking waits of at most 30s at
// a time until --wait runs out (or forever), retrying errors that may be
// passing (no leader, a node restarting). A signal before the command
// starts gives up. It returns a lease with a fresh validity window.
func acquireForRun(ctx context.Context, o runOptions, sigs <-chan os.Signal, stderr io.Writer) (lease client.Lease, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// On a terminal, a line says what the run waits for, blanked before
	// the command starts.
	bar := newProgress(stderr, fmt.Sprintf("waiting for %s %q", o.target.kind.noun(), o.target.name))
	defer bar.done()
	interrupted := make(chan os.Signal, 1)
	done, watching := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watching)
		select {
		case sig := <-sigs:
			interrupted <- sig
			cancel()
		case <-done:
		}
	}()
	defer func() {
		close(done)
		<-watching
		select {
		case sig := <-interrupted:
			if err == nil { // acquired just as the signal came: give it back
				rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
				_ = o.target.release(rctx, o.holder)
				rcancel()
			}
			lease, err = client.Lease{}, fmt.Errorf("interrupted by %s before the command started", sig)
		default:
		}
	}()
	var deadline time.Time
	if o.wait > 0 {
		deadline = time.Now().Add(o.wait)
	}
	backoff, warned := 100*time.Millisecond, false
	for {
		chunk := 30 * time.Second
		if !deadline.IsZero() {
			chunk = min(chunk, time.Until(deadline))
		}
		if o.try {
			chunk = 0
		}
		sent := time.Now()
		actx, acancel := context.WithTimeout(ctx, chunk+requestTimeout)
		lease, err := o.target.acquire(actx, o.holder, client.AcquireOptions{TTL: o.ttl, Wait: max(chunk, 0), CreateLimit: o.limit})
		acancel()
		if err == nil {
			if time.Since(sent) > o.ttl/3 {
				// The wait used up much of the lease's window (valid from
				// when the acquire was sent): start a fresh one.
				rctx, rcancel := context.WithTimeout(ctx, o.ttl/2)
				lease, err = o.target.renew(rctx, o.holder, o.ttl)
				rcancel()
				if err != nil {
					return client.Lease{}, fmt.Errorf("renew right after a long wait: %w", err)
				}
			}
			return lease, nil
		}
		if ctx.Err() != nil {
			return client.Lease{}, fmt.Errorf("interrupted while waiting to acquire: %w", err)
		}
		if o.try || (!deadline.IsZero() && !time.Now().Before(deadline)) || !retryable(err) {
			return client.Lease{}, err
		}
		if busy(err) {
			bar.status("taken by other holders")
		} else {
			if !warned {
				warned = true
				bar.done()
				fmt.Fprintln(stderr, errorLine(fmt.Errorf("%w (retrying)", err)))
			}
			bar.status(errorText(err))
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}

// retryable reports whether an acquire error may go away by itself.
func retryable(err error) bool {
	if busy(err) {
		return true
	}
	var e *client.Error
	if errors.As(err, &e) {
		return e.Status >= 500
	}
	return true // transport errors: the node may be restarting
}

// exitCode is the exit code to pass on for the command's Wait error.
func exitCode(cmd *exec.Cmd, err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		if code := signalExitCode(ee); code > 0 {
			return code
		}
		return ee.ExitCode()
	case errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil:
		// It exited, but something it started still held its output.
		return cmd.ProcessState.ExitCode()
	default:
		return exitFailure
	}
}
