package testlog

import (
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// Writer returns a writer that sends each write to t.Log, without its
// trailing newline, until the test's cleanup runs. Later writes are
// dropped: t.Log panics once a test has completed, and libraries may still
// log from goroutines that outlive their Shutdown (memberlist's probes).
// Call it before creating the objects that log, so that its cleanup runs
// after theirs. It is safe for concurrent use.
func Writer(t testing.TB) io.Writer {
	w := &writer{t: t}
	t.Cleanup(w.close)
	return w
}

// Logger returns a text logger of records at level and above, written to
// Writer(t).
func Logger(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(Writer(t), &slog.HandlerOptions{Level: level}))
}

type writer struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *writer) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
}
