// Package browsertest drives a headless Chromium from tests (through
// chromedp): one tab per Browser, with what its console printed, for the
// tests of the console pages and of objectsync's browser client. A test
// without a Chromium on the machine is skipped, not failed.
package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Chromium returns the path of a Chromium or Chrome binary
// ($SHOAL_CHROMIUM first), or "". When $SHOAL_CHROMIUM_INSTALLING names a
// file, an installation is under way (CI installs Debian's chromium beside
// the other tests): it waits, up to five minutes, until that file is gone.
func Chromium() string {
	if f := os.Getenv("SHOAL_CHROMIUM_INSTALLING"); f != "" {
		for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			if _, err := os.Stat(f); err != nil {
				break
			}
		}
	}
	if p := os.Getenv("SHOAL_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Browser is one headless Chromium tab and what its console printed.
type Browser struct {
	// T is the test that failures go to; a subtest may set its own.
	T   *testing.T
	ctx context.Context

	mu     sync.Mutex
	errors []string // console errors and uncaught exceptions since reset
}

// New starts a headless Chromium with one tab, stopped when the test
// ends; it skips the test if there is no Chromium.
func New(t *testing.T) *Browser {
	path := Chromium()
	if path == "" {
		t.Skip("no chromium binary found (install it with apt-get install -y chromium, or set SHOAL_CHROMIUM): skipping the browser tests")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests often run as root in containers
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	b := &Browser{T: t, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil { // start the browser, no timeout
		cancelTab()
		cancelAlloc()
		t.Fatalf("start %s: %v", path, err)
	}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleError, chromedp.ConsoleException:
				b.mu.Lock()
				b.errors = append(b.errors, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				b.mu.Unlock()
			case chromedp.ConsoleWarning:
				t.Logf("browser console: %s", m)
			}
		}
	}()
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser process to exit
		<-done
	})
	return b
}

// Context is the tab's context, for chromedp calls of the test's own.
func (b *Browser) Context() context.Context { return b.ctx }

// Run runs actions with a bound.
func (b *Browser) Run(within time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, within)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// MustRun runs actions, failing the test if they fail.
func (b *Browser) MustRun(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.T.Helper()
	// Generous: a loaded CI machine (three test binaries, the e2e suite)
	// once took over 15 s to type a token and click.
	if err := b.Run(45*time.Second, actions...); err != nil {
		b.T.Fatalf("%s: %v", what, err)
	}
}

// Wait waits until the JavaScript expression is truthy, for at most
// within, and returns how long that took.
func (b *Browser) Wait(what, expr string, within time.Duration) time.Duration {
	b.T.Helper()
	start := time.Now()
	err := b.Run(within+time.Second, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(10*time.Millisecond)))
		return err
	}))
	if err != nil {
		b.T.Fatalf("%s: not true within %v (%s): %v", what, within, expr, err)
	}
	return time.Since(start)
}

// Eval evaluates a JavaScript expression into v (awaiting a promise), for
// at most 10 s.
func (b *Browser) Eval(expr string, v any) {
	b.T.Helper()
	b.EvalWithin(10*time.Second, expr, v)
}

// EvalWithin is Eval with another bound.
func (b *Browser) EvalWithin(within time.Duration, expr string, v any) {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, within)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.T.Fatalf("evaluate %s: %v", expr, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		b.T.Fatalf("evaluate %s: decode %s: %v", expr, raw, err)
	}
}

// ResetErrors forgets the console errors seen so far.
func (b *Browser) ResetErrors() {
	b.mu.Lock()
	b.errors = nil
	b.mu.Unlock()
}

// Errors returns the console errors and uncaught exceptions since the
// last reset.
func (b *Browser) Errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.errors)
}

// ExpectError waits for the browser to report an error containing substr
// (it arrives asynchronously, after the request that caused it) and drops
// it, so that CheckErrors does not count an error the test provoked.
func (b *Browser) ExpectError(substr string) {
	b.T.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		b.mu.Lock()
		n := len(b.errors)
		b.errors = slices.DeleteFunc(b.errors, func(e string) bool { return strings.Contains(e, substr) })
		found := len(b.errors) < n
		b.mu.Unlock()
		if found {
			return
		}
		if time.Now().After(deadline) {
			b.T.Fatalf("the browser reported no error containing %q", substr)
		}
	}
}

// CheckErrors fails the test if the page printed errors or threw since
// the last reset.
func (b *Browser) CheckErrors(page string) {
	b.T.Helper()
	if errs := b.Errors(); len(errs) > 0 {
		b.T.Errorf("page %s: the browser console has errors:\n%s", page, strings.Join(errs, "\n"))
	}
}
