package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"shoal/client"
)

func init() {
	register(scenario{
		name:    "locks",
		summary: "shoal semaphore (limit 1) acquire+release vs etcd concurrency.Mutex Lock+Unlock, 3-node clusters side by side",
		run:     runLocks,
	})
}

// runLocks compares one lock pair (acquire, then release) on both
// systems: clients share a few names, so pairs contend as real users of a
// mutex do. shoal needs one Raft entry per call; etcd's Mutex needs a
// lease-bound key put, a range read to learn its place, possibly a watch
// for its predecessor, and a delete.
func runLocks(ctx context.Context, args []string, out io.Writer) (err error) {
	fs := flag.NewFlagSet("bench locks", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	duration := fs.Duration("duration", 10*time.Second, "measured time of each system in each round")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured load before each measured phase")
	rounds := fs.Int("rounds", 2, "rounds; each runs shoal then etcd")
	clients := fs.Int("clients", 16, "concurrent clients (closed loop)")
	names := fs.Int("names", 8, "lock names the clients share (client i uses name i mod names)")
	repo := fs.String("repo", "..", "shoal repository to build the binary from")
	opTimeout := fs.Duration("op-timeout", 10*time.Second, "timeout of one pair (counted as an error)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: bench locks [flags]\n\nStart a 3-node shoal cluster and a 3-member etcd cluster on 127.0.0.1 and compare\nacquire+release pairs: a shoal semaphore with limit 1 vs an etcd concurrency.Mutex.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *duration <= 0 || *warmup < 0 || *opTimeout <= 0:
		return errors.New("-duration and -op-timeout must be positive, -warmup not negative")
	case *rounds < 1 || *clients < 1 || *names < 1:
		return errors.New("-rounds, -clients and -names must be at least 1")
	}

	e, err := newEnv(out)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "stopping clusters and removing", e.dir)
		if cerr := e.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	fmt.Fprintln(out, "building shoal from", *repo)
	shoalBin, err := buildShoal(ctx, e, *repo)
	if err != nil {
		return err
	}
	etcdBin, err := findEtcd(ctx, out)
	if err != nil {
		return err
	}
	sc, err := startShoal(e, shoalBin, clusterSize)
	if err != nil {
		return err
	}
	ec, err := startEtcd(e, etcdBin, clusterSize)
	if err != nil {
		return err
	}
	if err := sc.wait(ctx, readyTimeout); err != nil {
		return err
	}
	if err := ec.wait(ctx, readyTimeout); err != nil {
		return err
	}
	m := describeMachine(ctx, e.dir)
	m.print(out, [][2]string{{"shoal", sc.version(ctx)}, {"etcd", etcdVersion(ctx, etcdBin)}})
	fmt.Fprintf(out, "load:    %d clients over %d names, %d round(s) × (%v warm-up + %v measured) per system; one op = acquire + release\n\n",
		*clients, *names, *rounds, *warmup, *duration)

	nonce := make([]byte, 4)
	_, _ = rand.Read(nonce)
	run := hex.EncodeToString(nonce)

	per, err := shoalTargets(ctx, sc, *clients, "all")
	if err != nil {
		return err
	}
	for i := range *names {
		if _, err := sc.nodes[0].client.CreateSemaphore(ctx, lockName(run, i), 1); err != nil {
			return fmt.Errorf("create semaphore: %w", err)
		}
	}
	cli, err := ec.client()
	if err != nil {
		return err
	}
	defer cli.Close()
	mutexes, closeSessions, err := etcdMutexes(ctx, cli, *clients, *names, run)
	if err != nil {
		return err
	}
	defer closeSessions()

	shoal := &contender{
		name: "shoal",
		op: func(ctx context.Context, w int) error {
			name, holder := lockName(run, w%*names), fmt.Sprintf("%s-w%d", run, w)
			c := per[w].client
			if _, err := c.AcquireSemaphore(ctx, name, holder, client.AcquireOptions{TTL: 30 * time.Second, Wait: *opTimeout}); err != nil {
				return err
			}
			return c.ReleaseSemaphore(ctx, name, holder)
		},
		pids:  pidsOf(shoalProcs(sc)),
		alive: shoalAlive(sc),
	}
	etcd := &contender{
		name: "etcd",
		op: func(ctx context.Context, w int) error {
			if err := mutexes[w].Lock(ctx); err != nil {
				return err
			}
			return mutexes[w].Unlock(ctx)
		},
		pids: pidsOf(etcdProcs(ec)),
	}
	e.markLogs()
	cs := []*contender{shoal, etcd}
	cmp := comparison{load: load{clients: *clients, opTimeout: *opTimeout}, warmup: *warmup, duration: *duration, rounds: *rounds}
	if err := cmp.run(ctx, out, cs); err != nil {
		return err
	}
	fmt.Fprintln(out)
	st := printTable(out, cs)
	printRatio(out, "shoal", "etcd", st, 1)
	fmt.Fprintln(out, "(target for locks: shoal ≥ 2.00× etcd's pairs/s)")
	fmt.Fprintln(out)
	e.printNotable(out)
	return nil
}

func lockName(run string, i int) string { return fmt.Sprintf("bench-%s-%d", run, i) }

// etcdMutexes gives each worker its own session (one lease, kept alive by
// the client) and a Mutex on its name, as an etcd application would.
func etcdMutexes(ctx context.Context, cli *clientv3.Client, clients, names int, run string) ([]*concurrency.Mutex, func(), error) {
	sessions := make([]*concurrency.Session, 0, clients)
	closeAll := func() {
		for _, s := range sessions {
			_ = s.Close()
		}
	}
	mutexes := make([]*concurrency.Mutex, clients)
	for w := range clients {
		s, err := concurrency.NewSession(cli, concurrency.WithTTL(30), concurrency.WithContext(ctx))
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("etcd session: %w", err)
		}
		sessions = append(sessions, s)
		mutexes[w] = concurrency.NewMutex(s, "/bench-locks/"+lockName(run, w%names))
	}
	return mutexes, closeAll, nil
}
