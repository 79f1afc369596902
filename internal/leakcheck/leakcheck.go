// Package leakcheck fails a test binary when goroutines outlive its tests:
// every goroutine must have an owner that stops it.
//
// It is goleak with a settle window. Some libraries finish work already in
// flight on their own timers after their Shutdown returns: memberlist
// answers a probe it had sent only when that probe's ack timer fires, up to
// one probe interval later, and goleak's own retries last about half a
// second. A goroutine that is still there after the window has no owner
// that will stop it: that is a leak.
package leakcheck

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Settle is how long goroutines get to end after the last test.
const Settle = 10 * time.Second

// VerifyTestMain runs the tests, then fails the binary if any goroutine
// besides those opts ignore is still running Settle after they passed.
func VerifyTestMain(m *testing.M, opts ...goleak.Option) {
	code := m.Run()
	if code == 0 {
		if err := Find(Settle, opts...); err != nil {
			fmt.Fprintf(os.Stderr, "leakcheck: goroutines outlived the tests by %s: %v\n", Settle, err)
			code = 1
		}
	}
	os.Exit(code)
}

// Find polls for unexpected goroutines until there are none or within has
// passed, and returns goleak's report of those left.
func Find(within time.Duration, opts ...goleak.Option) error {
	deadline := time.Now().Add(within)
	for {
		err := goleak.Find(opts...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
