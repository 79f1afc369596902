package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"shoal/client"
)

func init() {
	register(scenario{
		name:    "files",
		summary: "shoal directory replication (initial sync, re-sync after 1% changed, live 4 KiB appends) vs an rsync daemon and a raw TCP copy, 3-node cluster",
		run:     runFiles,
	})
}

// filesPrefix is the directory of the replicated tree the scenario
// writes; filesLivePrefix the one of the live appends.
const (
	filesPrefix     = "bench"
	filesLivePrefix = "live"
)

// treeFile is one file of the generated tree: its slash-separated path
// (under filesPrefix), size and hex SHA-256.
type treeFile struct {
	path string
	size int64
	sum  string
}

func runFiles(ctx context.Context, args []string, out io.Writer) (err error) {
	fs := flag.NewFlagSet("bench files", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	totalFlag := fs.String("total", "1GiB", "bytes of the tree (with KiB, MiB or GiB)")
	nFiles := fs.Int("files", 1000, "files in the tree (equal sizes)")
	changedPct := fs.Float64("changed", 1, "percent of the files rewritten (same size, new content) for the re-sync")
	clients := fs.Int("clients", 16, "concurrent clients of the live appends (closed loop, each to its own file, through the leader)")
	duration := fs.Duration("duration", 20*time.Second, "duration of the live appends")
	appendSize := fs.Int("append-size", 4096, "bytes of each live append")
	peerFsync := fs.Bool("peer-fsync", false, "make the peers durable like shoal's followers: the raw receivers fsync every file, rsync runs with --fsync")
	rounds := fs.Int("rounds", 3, "rounds of the initial sync (raw TCP, rsync, shoal in turn); the medians are reported")
	syncTimeout := fs.Duration("sync-timeout", 15*time.Minute, "how long one sync may take before the run fails")
	repo := fs.String("repo", "..", "shoal repository to build the binary from")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: bench files [flags]\n\nStart a 3-node shoal cluster (--modules replication) on 127.0.0.1 and measure\n(a) the initial sync of a tree to both followers against a raw TCP copy and an rsync daemon\n(2 destinations each), (b) the re-sync of a follower after some files changed while it was\nstopped (and rsync on the changed tree), and the catch-up of a wiped follower, (c) live\nappends through the API with min-acks 1.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	total, err := parseBytes(*totalFlag)
	switch {
	case err != nil:
		return fmt.Errorf("-total: %w", err)
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *nFiles < 1 || total < int64(*nFiles):
		return errors.New("-files must be at least 1 and -total at least one byte per file")
	case *changedPct <= 0 || *changedPct > 100:
		return errors.New("-changed must be in (0, 100]")
	case *rounds < 1:
		return errors.New("-rounds must be at least 1")
	case *clients < 1 || *duration <= 0 || *appendSize < 1 || *syncTimeout <= 0:
		return errors.New("-clients, -duration, -append-size and -sync-timeout must be positive")
	}
	nChanged := max(1, int(float64(*nFiles)**changedPct/100+0.5))

	e, err := newEnv(out)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "stopping processes and removing", e.dir)
		if cerr := e.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := checkFreeSpace(e.dir, 9*total+(2<<30)); err != nil {
		return err
	}

	fmt.Fprintln(out, "building shoal from", *repo)
	shoalBin, err := buildShoal(ctx, e, *repo)
	if err != nil {
		return err
	}
	rsyncBin, err := findDebianBinary(ctx, out, "rsync", "rsync")
	if err != nil {
		return err
	}

	// The tree, once, in src/ (served by rsync, read by the raw sender)
	// and hard-linked into stage/ (renamed into the leader's directory).
	src := e.path("src")
	fmt.Fprintf(out, "generating %d files, %s in all\n", *nFiles, fmtBytes(total))
	tree, err := generateTree(src, total, *nFiles)
	if err != nil {
		return err
	}

	sc, err := startShoalCluster(e, shoalBin, "shoal", clusterSize, clusterSize, "--modules", "replication")
	if err != nil {
		return err
	}
	if err := sc.wait(ctx, readyTimeout); err != nil {
		return err
	}
	// currentLeader finds the followers again before each step.
	var followers []*shoalNode
	leader, _, err := replicationReady(ctx, sc, readyTimeout)
	if err != nil {
		return err
	}
	m := describeMachine(ctx, e.dir)
	m.print(out, [][2]string{{"shoal", sc.version(ctx)}, {"rsync", versionLine(ctx, rsyncBin, "--version")}})
	fmt.Fprintf(out, "tree:    %d files × %s = %s; shoal: 3 nodes, --modules replication, replication leader %s, defaults otherwise (min-acks auto = 1 of 3, fsync on)\n\n",
		*nFiles, fmtBytes(tree[0].size), fmtBytes(total), leader.name)
	e.markLogs()

	var rows []filesRow

	// (a) initial sync, in -rounds rounds of raw TCP, rsync and shoal
	// one after the other; each phase starts from no dirty pages (the
	// writeback of the previous phase's 2 copies would otherwise slow the
	// next one down) and the medians are reported.
	rd, err := startRsyncDaemon(ctx, e, rsyncBin, src)
	if err != nil {
		return err
	}
	rawDsts := []string{e.path("raw", "r1"), e.path("raw", "r2")}
	rsyncDsts := []string{e.path("rsync", "d1"), e.path("rsync", "d2")}
	stage := e.path("stage")
	var rawTimes, rsyncTimes, shoalTimes []time.Duration
	var rsyncBytes, shoalBytes int64
	for round := range *rounds {

		// raw TCP: two receivers.
		syscall.Sync()
		took, err := rawCopy(ctx, src, tree, rawDsts, *peerFsync)
		if err != nil {
			return err
		}
		if round == 0 {
			if err := checkTree(rawDsts, tree); err != nil {
				return fmt.Errorf("raw copy: %w", err)
			}
		}
		_ = os.RemoveAll(e.path("raw"))
		rawTimes = append(rawTimes, took)

		// rsync daemon: two pulls into empty destinations (the last
		// round's stay for the re-sync).
		_ = os.RemoveAll(e.path("rsync"))
		syscall.Sync()
		took, n, err := rd.pull(ctx, rsyncDsts, *peerFsync)
		if err != nil {
			return err
		}
		if round == 0 {
			if err := checkTree(rsyncDsts, tree); err != nil {
				return fmt.Errorf("rsync: %w", err)
			}
		}
		rsyncTimes, rsyncBytes = append(rsyncTimes, took), n

		// shoal: the tree appears in the leader's directory in one rename
		// (fresh hard links of src/); both followers are running,
		// streaming and hold nothing under the prefix. Timed until both
		// followers' copies match the tree.
		// The replication leader may have changed (a Raft election under
		// load): the tree goes into the current one's directory.
		if leader, followers, err = currentLeader(ctx, out, sc, leader); err != nil {
			return err
		}
		if round > 0 {
			if err := clearTree(ctx, e, leader, followers, *syncTimeout); err != nil {
				return err
			}
		}
		if err := linkTree(src, stage, tree); err != nil {
			return err
		}
		before, err := leaderCounters(ctx, leader)
		if err != nil {
			return err
		}
		syscall.Sync()
		start := time.Now()
		if err := os.Rename(filepath.Join(stage, filesPrefix), filepath.Join(replDir(e, leader), filesPrefix)); err != nil {
			return fmt.Errorf("move the tree into the leader's directory: %w", err)
		}
		if err := waitCopies(ctx, e, leader, followers, tree, *syncTimeout); err != nil {
			return fmt.Errorf("shoal initial sync: %w", err)
		}
		took = time.Since(start)
		after, _ := leaderCounters(ctx, leader)
		shoalTimes, shoalBytes = append(shoalTimes, took), int64(after.sent-before.sent)
		fmt.Fprintf(out, "round %d: raw TCP %v, rsync %v, shoal %v\n", round+1, rawTimes[round].Round(time.Millisecond),
			rsyncTimes[round].Round(time.Millisecond), took.Round(time.Millisecond))
	}
	rawTook, rsyncTook, shoalTook := median(rawTimes), median(rsyncTimes), median(shoalTimes)
	rows = append(rows,
		filesRow{"initial sync: raw TCP, 2 receivers", 2 * total, rawTook, 0},
		filesRow{"initial sync: rsync daemon, 2 pulls", 2 * total, rsyncTook, rsyncBytes},
		filesRow{"initial sync: shoal, leader → 2 followers", 2 * total, shoalTook, shoalBytes})

	// (b) re-sync: one follower stopped, nChanged files rewritten through
	// the API (and in src/ for rsync), the follower restarted.
	if leader, followers, err = currentLeader(ctx, out, sc, leader); err != nil {
		return err
	}
	f := followers[0]
	if err := stopFollower(ctx, out, leader, f); err != nil {
		return err
	}
	changed := pickChanged(tree, nChanged)
	if err := rewriteFiles(ctx, leader, src, tree, changed); err != nil {
		return err
	}
	resync, err := catchUp(ctx, e, sc, leader, f, tree, *syncTimeout)
	if err != nil {
		return fmt.Errorf("shoal re-sync: %w", err)
	}
	var changedBytes int64
	for _, i := range changed {
		changedBytes += tree[i].size
	}
	rows = append(rows, filesRow{fmt.Sprintf("re-sync, %d files changed: shoal, 1 follower, from its restart", nChanged), changedBytes, resync.took, resync.moved})
	if resync.ready > 0 {
		rows = append(rows, filesRow{fmt.Sprintf("re-sync, %d files changed: shoal, 1 follower, from ready", nChanged), changedBytes, resync.took - resync.ready, resync.moved})
	}
	if resync.ready > 0 {
		fmt.Fprintf(out, "shoal re-sync done in %v from the restart, %v after the node answered ready (%s moved)\n",
			resync.took.Round(time.Millisecond), (resync.took - resync.ready).Round(time.Millisecond), fmtBytes(resync.moved))
	} else {
		fmt.Fprintf(out, "shoal re-sync done in %v from the restart, before the node answered ready (%s moved)\n",
			resync.took.Round(time.Millisecond), fmtBytes(resync.moved))
	}

	syscall.Sync()
	rsyncResync, rsyncResyncBytes, err := rd.pull(ctx, rsyncDsts, *peerFsync)
	if err != nil {
		return err
	}
	if err := checkTree(rsyncDsts, tree); err != nil {
		return fmt.Errorf("rsync re-sync: %w", err)
	}
	rows = append(rows, filesRow{fmt.Sprintf("re-sync, %d files changed: rsync, 2 pulls", nChanged), 2 * changedBytes, rsyncResync, rsyncResyncBytes})
	_ = os.RemoveAll(e.path("rsync"))

	// Catch-up of a wiped follower (the catch-up path from empty, one
	// follower: with both followers down the leader has no quorum).
	if leader, followers, err = currentLeader(ctx, out, sc, leader); err != nil {
		return err
	}
	f = followers[0]
	if err := stopFollower(ctx, out, leader, f); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(replDir(e, f), filesPrefix)); err != nil {
		return err
	}
	wiped, err := catchUp(ctx, e, sc, leader, f, tree, *syncTimeout)
	if err != nil {
		return fmt.Errorf("shoal catch-up of a wiped follower: %w", err)
	}
	rows = append(rows, filesRow{"catch-up of a wiped follower: shoal, from its restart", total, wiped.took, wiped.moved})
	if wiped.ready > 0 {
		rows = append(rows, filesRow{"catch-up of a wiped follower: shoal, from ready", total, wiped.took - wiped.ready, wiped.moved})
	}
	fmt.Fprintf(out, "shoal catch-up of a wiped follower done in %v\n\n", wiped.took.Round(time.Millisecond))

	fmt.Fprintf(out, "initial sync: medians of %d round(s); raw TCP and rsync fsync every file: %v (-peer-fsync)\n", *rounds, *peerFsync)
	printFilesTable(out, rows)
	aMBs := func(r filesRow) float64 { return float64(r.bytes) / r.took.Seconds() / 1e6 }
	shoalMBs, rawMBs, rsyncMBs := aMBs(rows[2]), aMBs(rows[0]), aMBs(rows[1])
	fmt.Fprintf(out, "\nshoal/raw TCP:  %.2f (target ≥ 0.70: %s)\n", shoalMBs/rawMBs, metStr(shoalMBs/rawMBs >= 0.70))
	fmt.Fprintf(out, "shoal/rsync:    %.2f (target > 1: %s)\n", shoalMBs/rsyncMBs, metStr(shoalMBs > rsyncMBs))
	speedup := shoalTook.Seconds() / resync.took.Seconds()
	fmt.Fprintf(out, "re-sync speed-up over the initial sync (re-sync from the restart): %.1f× (target ≥ 10×: %s)\n", speedup, metStr(speedup >= 10))
	if resync.ready > 0 {
		sp := shoalTook.Seconds() / (resync.took - resync.ready).Seconds()
		fmt.Fprintf(out, "re-sync speed-up over the initial sync (re-sync from ready):   %.1f× (target ≥ 10×: %s)\n", sp, metStr(sp >= 10))
	}
	fmt.Fprintf(out, "re-sync: shoal moved %s for %s changed (catch-up counters); rsync received %s for 2 × %s\n",
		fmtBytes(resync.moved), fmtBytes(changedBytes), fmtBytes(rsyncResyncBytes), fmtBytes(changedBytes))

	// (c) live appends.
	if leader, followers, err = currentLeader(ctx, out, sc, leader); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nlive appends: %d clients × %s appends to their own files through the leader for %v (min-acks 1 = the default with 3 servers)\n",
		*clients, fmtBytes(int64(*appendSize)), *duration)
	live, err := liveAppends(ctx, leader, *clients, *appendSize, *duration)
	if err != nil {
		return err
	}
	live.print(out, *appendSize)
	if err := waitLiveConverged(ctx, leader, followers, 60*time.Second); err != nil {
		fmt.Fprintf(out, "live appends: followers did not converge: %v\n", err)
	} else {
		fmt.Fprintln(out, "live appends: both followers hold byte-identical copies afterwards")
	}
	fmt.Fprintln(out)
	e.printNotable(out)
	return nil
}

// filesRow is one line of the scenario's table: bytes delivered (to all
// destinations), time, and bytes the system reports it moved (0: not
// reported).
type filesRow struct {
	name  string
	bytes int64
	took  time.Duration
	moved int64
}

func printFilesTable(out io.Writer, rows []filesRow) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tdelivered\ttime\tMB/s\tbytes moved (reported)\t")
	for _, r := range rows {
		moved := "—"
		if r.moved > 0 {
			moved = fmtBytes(r.moved)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.3fs\t%.0f\t%s\t\n", r.name, fmtBytes(r.bytes), r.took.Seconds(),
			float64(r.bytes)/r.took.Seconds()/1e6, moved)
	}
	_ = tw.Flush()
	fmt.Fprintln(out, "(MB/s = bytes delivered to all destinations / time, 1 MB = 10^6 bytes; shoal's followers fsync every file)")
}

func metStr(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// parseBytes parses a byte count with an optional KiB, MiB or GiB suffix.
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	for suf, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if rest, ok := strings.CutSuffix(s, suf); ok {
			s, mult = rest, m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("want a positive byte count such as 256MiB, got %q", s)
	}
	return n * mult, nil
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// checkFreeSpace refuses to start when the run directory's file system
// has less than need bytes free.
func checkFreeSpace(dir string, need int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("free space of %s: %w", dir, err)
	}
	if free := int64(st.Bavail) * st.Bsize; free < need {
		return fmt.Errorf("%s has %s free, the run needs about %s: lower -total", dir, fmtBytes(free), fmtBytes(need))
	}
	return nil
}

// generateTree writes n files of total/n bytes (the last takes the
// remainder) of pseudo-random, incompressible content under
// dir/filesPrefix, 100 per directory.
func generateTree(dir string, total int64, n int) ([]treeFile, error) {
	size := total / int64(n)
	rng := rand.NewChaCha8([32]byte{'s', 'h', 'o', 'a', 'l'})
	buf := make([]byte, 1<<20)
	tree := make([]treeFile, n)
	for i := range n {
		f := treeFile{path: fmt.Sprintf("%s/d%03d/f%05d.bin", filesPrefix, i/100, i), size: size}
		if i == n-1 {
			f.size = total - size*int64(n-1)
		}
		sum, err := writeRandom(filepath.Join(dir, filepath.FromSlash(f.path)), f.size, rng, buf)
		if err != nil {
			return nil, err
		}
		f.sum = sum
		tree[i] = f
	}
	return tree, nil
}

// writeRandom creates path with size bytes from rng and returns its hex
// SHA-256.
func writeRandom(path string, size int64, rng *rand.ChaCha8, buf []byte) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return "", err
	}
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for left := size; left > 0; {
		b := buf[:min(int64(len(buf)), left)]
		_, _ = rng.Read(b)
		h.Write(b)
		if _, err := f.Write(b); err != nil {
			_ = f.Close()
			return "", err
		}
		left -= int64(len(b))
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// linkTree hard-links the files of tree from src into dst.
func linkTree(src, dst string, tree []treeFile) error {
	for _, f := range tree {
		to := filepath.Join(dst, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(to), 0o750); err != nil {
			return err
		}
		if err := os.Link(filepath.Join(src, filepath.FromSlash(f.path)), to); err != nil {
			return fmt.Errorf("link the tree: %w", err)
		}
	}
	return nil
}

// sizesMatch reports whether dir holds every file of tree with its size.
func sizesMatch(dir string, tree []treeFile) bool {
	for _, f := range tree {
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f.path)))
		if err != nil || fi.Size() != f.size {
			return false
		}
	}
	return true
}

// checkTree verifies, by reading every file, that each dir holds tree.
func checkTree(dirs []string, tree []treeFile) error {
	for _, dir := range dirs {
		for _, f := range tree {
			in, err := os.Open(filepath.Join(dir, filepath.FromSlash(f.path)))
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, in)
			_ = in.Close()
			if err != nil {
				return err
			}
			if hex.EncodeToString(h.Sum(nil)) != f.sum {
				return fmt.Errorf("%s: %s differs from the source", dir, f.path)
			}
		}
	}
	return nil
}

// replDir is a node's replicated directory (the default, under its data
// directory).
func replDir(e *env, n *shoalNode) string {
	return e.path("data", "shoal-"+n.name, "modules", "replication", "files")
}

// replicationReady waits until a replication leader serves and every
// other node streams from it in the in-sync set; it returns the leader
// and the followers.
func replicationReady(ctx context.Context, sc *shoalCluster, timeout time.Duration) (*shoalNode, []*shoalNode, error) {
	var leader *shoalNode
	var followers []*shoalNode
	var procs []*proc
	for _, n := range sc.nodes {
		procs = append(procs, n.proc)
	}
	err := pollReady(ctx, timeout, "replication not ready", procs, func(ctx context.Context) error {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		st, err := sc.nodes[0].client.ReplicationStatus(rctx)
		if err != nil {
			return err
		}
		leader, followers = nil, nil
		for _, n := range sc.nodes {
			if n.name == st.Leader {
				leader = n
			} else {
				followers = append(followers, n)
			}
		}
		if leader == nil {
			return fmt.Errorf("no replication leader (%q)", st.Leader)
		}
		ls, err := leader.client.ReplicationStatus(rctx)
		if err != nil {
			return err
		}
		if ls.Role != "leader" {
			return fmt.Errorf("%s: role %s", leader.name, ls.Role)
		}
		for _, f := range followers {
			i := slices.IndexFunc(ls.Followers, func(x client.ReplicationFollower) bool { return x.Node == f.name })
			if i < 0 || ls.Followers[i].State != "streaming" || !ls.Followers[i].InSync {
				return fmt.Errorf("follower %s not streaming in sync", f.name)
			}
		}
		return nil
	})
	return leader, followers, err
}

// counters are the leader's replication counters the scenario reports.
type counters struct{ sent, catchupSent uint64 }

func leaderCounters(ctx context.Context, leader *shoalNode) (counters, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := leader.client.ReplicationStatus(rctx)
	if err != nil {
		return counters{}, err
	}
	c := counters{catchupSent: st.Counters["catchup_sent_bytes"]}
	for k, v := range st.Counters {
		if strings.HasPrefix(k, "sent_bytes") {
			c.sent += v
		}
	}
	if c.sent == 0 {
		// No per-stream counter in the status: the followers' acked
		// positions stand for the bytes streamed.
		for _, f := range st.Followers {
			c.sent += f.AckedBytes
		}
	}
	return c, nil
}

// errLeaderChanged: the replication leader changed during a timed sync.
var errLeaderChanged = errors.New("the replication leader changed")

// waitCopies polls until every node of nodes holds tree: the sizes on its
// disk first (cheap), then its listing through the API (size and
// SHA-256 of every file, and nothing else under filesPrefix).
func waitCopies(ctx context.Context, e *env, leader *shoalNode, nodes []*shoalNode, tree []treeFile, timeout time.Duration) error {
	var procs []*proc
	for _, n := range nodes {
		procs = append(procs, n.proc)
	}
	done := make([]bool, len(nodes))
	polls := 0
	return pollEvery(ctx, timeout, 20*time.Millisecond, procs, func(ctx context.Context) error {
		// About once a second: has the replication leader changed? A
		// new leader's copy wins, and files the old one had not yet
		// streamed are gone from every node (outside writes are not
		// acknowledged: docs/replication.md): the sync can never end.
		if polls++; polls%50 == 0 && leader != nil {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			st, err := leader.client.ReplicationStatus(rctx)
			cancel()
			if err == nil && st.Leader != "" && st.Leader != leader.name {
				return fmt.Errorf("%w: %s took over from %s during the sync", errLeaderChanged, st.Leader, leader.name)
			}
		}
		for i, n := range nodes {
			if done[i] {
				continue
			}
			if !sizesMatch(replDir(e, n), tree) {
				return fmt.Errorf("%s: not all files there yet", n.name)
			}
			if err := listingMatches(ctx, n, tree); err != nil {
				return err
			}
			done[i] = true
		}
		return nil
	})
}

func listingMatches(ctx context.Context, n *shoalNode, tree []treeFile) error {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ls, err := n.client.ListFiles(rctx, filesPrefix+"/")
	if err != nil {
		return fmt.Errorf("%s: %w", n.name, err)
	}
	if len(ls) != len(tree) {
		return fmt.Errorf("%s lists %d files, want %d", n.name, len(ls), len(tree))
	}
	for i, f := range tree { // both sorted by path
		if ls[i].Path != f.path || int64(ls[i].Size) != f.size || ls[i].SHA256 != f.sum {
			return fmt.Errorf("%s: %s differs", n.name, f.path)
		}
	}
	return nil
}

// pollEvery is pollReady with another interval.
func pollEvery(ctx context.Context, timeout, every time.Duration, procs []*proc, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		last := check(ctx)
		if last == nil || errors.Is(last, errLeaderChanged) {
			return last
		}
		for _, p := range procs {
			if err := p.exitErr(); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not done after %v: %w", timeout, last)
		case <-time.After(every):
		}
	}
}

// currentLeader waits until replication is ready (see replicationReady)
// and reports it when the leader is no longer was.
func currentLeader(ctx context.Context, out io.Writer, sc *shoalCluster, was *shoalNode) (*shoalNode, []*shoalNode, error) {
	leader, followers, err := replicationReady(ctx, sc, readyTimeout)
	if err != nil {
		return nil, nil, err
	}
	if leader != was {
		fmt.Fprintf(out, "the replication leader is now %s (was %s)\n", leader.name, was.name)
	}
	return leader, followers, nil
}

// stopFollower stops f (SIGTERM, SIGKILL after stopTimeout) and waits
// until the leader has taken it out of the in-sync set, so that writes no
// longer wait for it and it cannot lead.
func stopFollower(ctx context.Context, out io.Writer, leader, f *shoalNode) error {
	t := time.Now()
	stopAll([]*proc{f.proc})
	how := "exited after SIGTERM"
	if ee, ok := f.proc.err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			how = "killed (SIGKILL) after " + stopTimeout.String()
		}
	}
	fmt.Fprintf(out, "stopped %s in %v: %s\n", f.name, time.Since(t).Round(time.Millisecond), how)
	return pollReady(ctx, 60*time.Second, "stopped follower still in the in-sync set", []*proc{leader.proc}, func(ctx context.Context) error {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		st, err := leader.client.ReplicationStatus(rctx)
		if err != nil {
			return err
		}
		if slices.Contains(st.InSync, f.name) {
			return fmt.Errorf("%s in %v", f.name, st.InSync)
		}
		return nil
	})
}

// pickChanged returns n indexes of tree spread evenly over it.
func pickChanged(tree []treeFile, n int) []int {
	var out []int
	for i := range n {
		out = append(out, i*len(tree)/n)
	}
	return out
}

// rewriteFiles gives the files changed new random content of the same
// size: through the API on the leader (a PUT, then appends of at most
// 2 MiB, under --max-body-bytes) and in src by a rename, for rsync. It
// updates tree's hashes.
func rewriteFiles(ctx context.Context, leader *shoalNode, src string, tree []treeFile, changed []int) error {
	rng := rand.NewChaCha8([32]byte{'c', 'h', 'a', 'n', 'g', 'e', 'd'})
	buf := make([]byte, 1<<20)
	const chunk = 2 << 20
	for _, i := range changed {
		f := &tree[i]
		p := filepath.Join(src, filepath.FromSlash(f.path))
		sum, err := writeRandom(p+".new", f.size, rng, buf)
		if err != nil {
			return err
		}
		content, err := os.ReadFile(p + ".new")
		if err != nil {
			return err
		}
		if err := os.Rename(p+".new", p); err != nil {
			return err
		}
		for off := 0; off == 0 || off < len(content); off += chunk {
			part := content[off:min(off+chunk, len(content))]
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			var fi client.FileInfo
			if off == 0 {
				fi, err = leader.client.PutFile(wctx, f.path, bytes.NewReader(part))
			} else {
				fi, err = leader.client.AppendFile(wctx, f.path, bytes.NewReader(part))
			}
			cancel()
			if err != nil {
				return err
			}
			if off+len(part) == len(content) && fi.SHA256 != sum {
				return fmt.Errorf("rewrite %s: the leader reports SHA-256 %s, want %s", f.path, fi.SHA256, sum)
			}
		}
		f.sum = sum
	}
	return nil
}

// catchUpResult is one timed catch-up of a restarted follower.
type catchUpResult struct {
	took  time.Duration // from the restart
	ready time.Duration // from the restart until the node answered ready (0: not seen before the copy matched)
	moved int64         // the leader's catchup_sent_bytes counter's increase
}

// catchUp restarts the stopped follower f and times until its copy
// matches tree (from just before its process starts: the time includes
// its start, joining the cluster and connecting to the leader).
func catchUp(ctx context.Context, e *env, sc *shoalCluster, leader, f *shoalNode, tree []treeFile, timeout time.Duration) (catchUpResult, error) {
	before, err := leaderCounters(ctx, leader)
	if err != nil {
		return catchUpResult{}, err
	}
	syscall.Sync()
	start := time.Now()
	if err := sc.restart(e, []*shoalNode{f}); err != nil {
		return catchUpResult{}, err
	}
	// When the node answers ready (its API serves, it has joined): the
	// catch-up proper starts about then.
	var ready time.Duration
	readyDone := make(chan struct{})
	rctx, stopReady := context.WithCancel(ctx)
	go func() {
		defer close(readyDone)
		for rctx.Err() == nil {
			c, cancel := context.WithTimeout(rctx, time.Second)
			err := f.client.Ready(c)
			cancel()
			if err == nil {
				ready = time.Since(start)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	err = waitCopies(ctx, e, leader, []*shoalNode{f}, tree, timeout)
	took := time.Since(start)
	stopReady()
	<-readyDone
	if err != nil {
		return catchUpResult{}, err
	}
	// The counter is updated when the catch-up ends; give it a moment.
	var after counters
	for range 50 {
		if after, err = leaderCounters(ctx, leader); err == nil && after.catchupSent > before.catchupSent {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return catchUpResult{took: took, ready: ready, moved: int64(after.catchupSent - before.catchupSent)}, nil
}

// liveResult is the outcome of the live appends.
type liveResult struct {
	ok, failed int
	took       time.Duration
	lat        []time.Duration // sorted
	firstErr   error
}

// liveAppends runs clients closed-loop appenders of size bytes, each to
// its own file, through the leader for d.
func liveAppends(ctx context.Context, leader *shoalNode, clients, size int, d time.Duration) (liveResult, error) {
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
	var mu sync.Mutex
	var res liveResult
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			var lat []time.Duration
			ok, failed := 0, 0
			var first error
			path := fmt.Sprintf("%s/c%03d.log", filesLivePrefix, c)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				t := time.Now()
				_, err := leader.client.AppendFile(wctx, path, bytes.NewReader(body))
				cancel()
				if err != nil {
					failed++
					if first == nil {
						first = err
					}
					continue
				}
				ok++
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			defer mu.Unlock()
			res.ok += ok
			res.failed += failed
			res.lat = append(res.lat, lat...)
			if res.firstErr == nil {
				res.firstErr = first
			}
		})
	}
	wg.Wait()
	res.took = time.Since(start)
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	slices.Sort(res.lat)
	if res.ok == 0 {
		return res, fmt.Errorf("live appends: none succeeded: %v", res.firstErr)
	}
	return res, nil
}

func (r liveResult) print(out io.Writer, size int) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "appends\terrors\tappends/s\tMB/s\tp50\tp99\tmax\t")
	fmt.Fprintf(tw, "%d\t%d\t%.0f\t%.1f\t%s\t%s\t%s\t\n", r.ok, r.failed, float64(r.ok)/r.took.Seconds(),
		float64(r.ok)*float64(size)/r.took.Seconds()/1e6,
		ms(percentile(r.lat, 0.50)), ms(percentile(r.lat, 0.99)), ms(r.lat[len(r.lat)-1]))
	_ = tw.Flush()
	if r.firstErr != nil {
		fmt.Fprintf(out, "first error: %v\n", r.firstErr)
	}
}

// waitLiveConverged waits until the followers list the live files with
// the leader's sizes and hashes.
func waitLiveConverged(ctx context.Context, leader *shoalNode, followers []*shoalNode, timeout time.Duration) error {
	return pollReady(ctx, timeout, "live files differ", nil, func(ctx context.Context) error {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		want, err := leader.client.ListFiles(rctx, filesLivePrefix+"/")
		if err != nil {
			return err
		}
		for _, f := range followers {
			got, err := f.client.ListFiles(rctx, filesLivePrefix+"/")
			if err != nil {
				return err
			}
			if !slices.EqualFunc(got, want, func(a, b client.FileEntry) bool {
				return a.Path == b.Path && a.Size == b.Size && a.SHA256 == b.SHA256
			}) {
				return fmt.Errorf("%s differs from %s", f.name, leader.name)
			}
		}
		return nil
	})
}

// median returns the median of ds (the lower one of an even count).
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// clearTree moves the tree out of the leader's directory (a delete of
// every file, as the leader's watcher sees it), removes it, and waits
// until no node lists a file under the prefix.
func clearTree(ctx context.Context, e *env, leader *shoalNode, followers []*shoalNode, timeout time.Duration) error {
	old := e.path("old-tree")
	if err := os.Rename(filepath.Join(replDir(e, leader), filesPrefix), old); err != nil {
		return fmt.Errorf("move the tree out of the leader's directory: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	nodes := append([]*shoalNode{leader}, followers...)
	return pollReady(ctx, timeout, "the tree is still listed", nil, func(ctx context.Context) error {
		for _, n := range nodes {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			ls, err := n.client.ListFiles(rctx, filesPrefix+"/")
			cancel()
			if err != nil {
				return err
			}
			if len(ls) > 0 {
				return fmt.Errorf("%s lists %d files", n.name, len(ls))
			}
		}
		return nil
	})
}
