package testlog

import (
	"log/slog"
	"strings"
	"testing"
)

// recorder is the part of testing.TB that Writer uses, recording what is
// logged and keeping the cleanups for the test to run.
type recorder struct {
	testing.TB
	logged   []string
	cleanups []func()
}

func (r *recorder) Log(args ...any)  { r.logged = append(r.logged, args[0].(string)) }
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) runCleanups() {
	for _, f := range r.cleanups {
		f()
	}
}

func TestWriter_DropsOutputAfterCleanup(t *testing.T) {
	r := &recorder{TB: t}
	w := Writer(r)
	if _, err := w.Write([]byte("during the test\n")); err != nil {
		t.Fatalf("write: %v", err)
	}
	r.runCleanups()
	if n, err := w.Write([]byte("after the test\n")); err != nil || n != 15 {
		t.Fatalf("got %d, %v, want the write accepted and dropped", n, err)
	}
	if got, want := strings.Join(r.logged, "|"), "during the test"; got != want {
		t.Fatalf("got logged %q, want %q", got, want)
	}
}

func TestLogger_Level(t *testing.T) {
	r := &recorder{TB: t}
	l := Logger(r, slog.LevelInfo)
	l.Debug("hidden")
	l.Info("shown", "k", "v")
	if len(r.logged) != 1 || !strings.Contains(r.logged[0], "msg=shown k=v") {
		t.Fatalf("got %q, want the info record only", r.logged)
	}
}
