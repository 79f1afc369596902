package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/client"
	"shoal/internal/testcluster"
)

// TestSemRun_NeverMoreThanTheLimit runs `shoal sem run -n 2` five times at
// once through the three nodes of a real cluster. Each command appends
// "start" and "stop" to one file (appends are atomic and ordered, so the
// file is the order in which the commands really ran, no clocks needed):
// at no point are more than two between their start and stop.
func TestSemRun_NeverMoreThanTheLimit(t *testing.T) {
	c := locksCluster(t, 3)
	trace := filepath.Join(t.TempDir(), "trace")
	script := fmt.Sprintf(`echo start >> %[1]s; sleep 0.3; echo stop >> %[1]s`, trace)
	var wg sync.WaitGroup
	codes := make([]int, 5)
	errs := make([]string, 5)
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := c.Nodes()[i%3]
			codes[i], _, errs[i] = runMain("sem", "run", "pair", "-n", "2", "--ttl", "5s", "--addr", node.URL(), "--", "sh", "-c", script)
		}()
	}
	wg.Wait()
	for i, code := range codes {
		if code != 0 {
			t.Fatalf("run %d: exit code %d: %s", i, code, errs[i])
		}
	}
	lines := readLines(t, trace)
	running, most := 0, 0
	for _, l := range lines {
		switch l {
		case "start":
			running++
		case "stop":
			running--
		}
		most = max(most, running)
		if running > 2 {
			t.Fatalf("%d commands ran at once: %v", running, lines)
		}
	}
	if len(lines) != 10 {
		t.Fatalf("trace %v: want 5 starts and 5 stops", lines)
	}
	t.Logf("at most %d ran at once", most)
}

// TestSemRun_LeaseLossKillsTheCommand deletes the semaphore under a
// running command: the next renew finds the lease gone, the command is
// stopped before it finishes, and run exits non-zero.
func TestSemRun_LeaseLossKillsTheCommand(t *testing.T) {
	c := locksCluster(t, 3)
	f := c.Followers()[0]
	marks := filepath.Join(t.TempDir(), "marks")
	script := fmt.Sprintf(`echo started >> %[1]s; sleep 60; echo finished >> %[1]s`, marks)
	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		// A lease of 2 s: with 600 ms, on a loaded machine, an acquire
		// that took over a third of it was renewed at once and could find
		// the lease already gone, and the command never started.
		code, stdout, stderr := runMain("sem", "run", "lossy", "-n", "1", "--ttl", "2s", "--kill-grace", "1s", "--addr", f.URL(), "--", "sh", "-c", script)
		done <- result{code, stdout, stderr}
	}()
	testcluster.Eventually(t, 30*time.Second, func() error {
		select {
		case r := <-done:
			t.Fatalf("run exited with %d before the command started; stderr %q", r.code, r.stderr)
		default:
		}
		if len(readLines(t, marks)) == 0 {
			return fmt.Errorf("the command has not started")
		}
		return nil
	})
	cl, err := client.New(c.Leader().URL())
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.DeleteSemaphore(context.Background(), "lossy"); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop the command after its lease was lost")
	}
	if r.code == 0 || !strings.Contains(r.stderr, "lost") {
		t.Fatalf("exit code %d, stderr %q: want non-zero and a lost lease", r.code, r.stderr)
	}
	if got := readLines(t, marks); len(got) != 1 || time.Since(start) > 50*time.Second {
		t.Fatalf("the command was not stopped: marks %v after %s", got, time.Since(start))
	}
}

// TestLockRun_ReadersShareWritersExclude runs two readers and a writer
// under `shoal lock run` against a real cluster: the readers overlap, the
// writer runs alone.
func TestLockRun_ReadersShareWritersExclude(t *testing.T) {
	c := locksCluster(t, 3)
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace")
	// Each reader waits (bounded) until the other one has started, which
	// can only happen if both hold the read lock at once.
	reader := func(me, other string) string {
		return fmt.Sprintf(`echo start-%[1]s >> %[3]s; touch %[4]s/%[1]s; i=0; while [ ! -e %[4]s/%[2]s ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; echo stop-%[1]s >> %[3]s`,
			me, other, trace, dir)
	}
	var wg sync.WaitGroup
	codes := make([]int, 3)
	stderrs := make([]string, 3)
	for i, script := range []string{reader("r1", "r2"), reader("r2", "r1")} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _, stderrs[i] = runMain("lock", "run", "doc", "--read", "--addr", c.Nodes()[i].URL(), "--", "sh", "-c", script)
		}()
	}
	// The writer comes once both readers run; it must wait for them.
	testcluster.Eventually(t, 30*time.Second, func() error {
		if lines := readLines(t, trace); len(lines) < 2 {
			return fmt.Errorf("readers started: %v", lines)
		}
		return nil
	})
	codes[2], _, stderrs[2] = runMain("lock", "run", "doc", "--addr", c.Nodes()[2].URL(), "--", "sh", "-c", fmt.Sprintf(`echo start-w >> %[1]s; echo stop-w >> %[1]s`, trace))
	wg.Wait()
	for i, code := range codes {
		if code != 0 {
			t.Fatalf("run %d: exit code %d: %s", i, code, stderrs[i])
		}
	}
	lines := readLines(t, trace)
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "start-r") || !strings.HasPrefix(lines[1], "start-r") || lines[4] != "start-w" {
		t.Fatalf("trace %v: want both readers to start before either stops, and the writer after both", lines)
	}
	if _, err := os.Stat(filepath.Join(dir, "r1")); err != nil {
		t.Fatal(err)
	}
}
