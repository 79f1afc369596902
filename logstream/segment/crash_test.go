package segment

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// The crash test runs this test binary as a child that applies a
// deterministic history to a store until it is killed with SIGKILL, at a
// random point, many times over the same directory.

// crashChildEnv names the store directory of a crash child; unset, the
// child test is skipped.
const crashChildEnv = "SHOAL_SEGMENT_CRASH_CHILD_DIR"

// crashRetain is the count retention of the crash history.
const crashRetain = 500

// crashCommand is the command at Raft index r of the crash history, for a
// store whose next offset is next: n entries, and a trim to keep the
// newest crashRetain.
func crashCommand(r, next uint64) (n int, trim uint64) {
	n = 1 + int(r%7)
	if end := next + uint64(n); end > crashRetain {
		trim = end - crashRetain
	}
	return n, trim
}

// crashModelAt is the log the crash history makes up to Raft index a.
func crashModelAt(a uint64) (first, next uint64) {
	first, next = 1, 1
	for r := uint64(1); r <= a; r++ {
		n, trim := crashCommand(r, next)
		next += uint64(n)
		first = max(first, trim)
	}
	return first, next
}

// TestCrashChild is the child process of TestCrash_KillNine. It prints
// "applied N" after the command at N was written (its write returned), and
// runs until it is killed or its parent goes away (stdin closes).
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("run by TestCrash_KillNineNeverLosesOrDuplicates")
	}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0) // the parent is gone
	}()
	s, err := Open(dir, smallConfig())
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	for r := s.Applied() + 1; ; r++ {
		n, trim := crashCommand(r, s.Next())
		if _, err := s.AppendTrim(r, batchAt(s.Next(), n, int64(r)), trim); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		if r%3 == 0 {
			fmt.Println("applied", r)
		}
	}
}

// TestCrash_KillNineNeverLosesOrDuplicates kills a writing child process
// with SIGKILL at random points (during appends, rolls and trims that
// delete segments) and reopens the store each time: it must open, hold
// exactly the history's log at its applied index (no entry lost,
// duplicated or out of place), and its applied index must not be below
// any command the child reported written.
func TestCrash_KillNineNeverLosesOrDuplicates(t *testing.T) {
	kills := 40
	if testing.Short() {
		kills = 8
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	cfg := smallConfig()
	cfg.Metrics = new(Metrics)
	for kill := range kills {
		reported := runCrashChild(t, dir, 1+rng.IntN(60))
		s := openStore(t, dir, cfg)
		a := s.Applied()
		if a < reported {
			t.Fatalf("kill %d: applied %d after the crash, but the child had written %d", kill, a, reported)
		}
		first, next := crashModelAt(a)
		if s.First() != first || s.Next() != next {
			t.Fatalf("kill %d: first %d next %d at applied %d, want %d and %d", kill, s.First(), s.Next(), a, first, next)
		}
		checkEntries(t, readAll(t, s, 128), first, next)
		mustClose(t, s)
	}
	s := openStore(t, dir, cfg)
	defer mustClose(t, s)
	if s.Applied() < 100 {
		t.Fatalf("the children applied only %d commands", s.Applied())
	}
	t.Logf("%d kills, %d commands applied, %d torn tails cut, %d segments now", kills, s.Applied(), cfg.Metrics.TornTails.Load(), s.Stats().Segments)
}

// runCrashChild starts a child on dir, waits until it has reported lines
// progress lines, kills it with SIGKILL and returns the last command it
// reported written.
func runCrashChild(t *testing.T, dir string, lines int) uint64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var reported uint64
	sc := bufio.NewScanner(out)
	for seen := 0; seen < lines && sc.Scan(); {
		line := sc.Text()
		if strings.HasPrefix(line, "error") {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("child: %s", line)
		}
		if v, ok := strings.CutPrefix(line, "applied "); ok {
			r, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("child printed %q", line)
			}
			reported = r
			seen++
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // killed: the error says so
	return reported
}
