package cli

import (
	"errors"
	"fmt"
	"io"
	"time"

	"shoal/client"
)

// defaultRetryFor is the default --retry-for of the following commands
// (log tail, kv watch, objects watch).
const defaultRetryFor = time.Minute

// retrier reports and bounds the reconnects of a following command: each
// retry is one line on stderr, and once the node has been unreachable for
// longer than limit the command gives up. It is used by one goroutine.
type retrier struct {
	path    string // "log tail"
	stderr  io.Writer
	limit   time.Duration // 0: retry forever
	note    string        // appended to each retry line
	attempt int           // failed attempts in the current outage
	since   time.Time     // first failure of the current outage
	now     func() time.Time
}

// retryFlag adds --retry-for to c and returns the retrier it sets.
func (c *cmdline) retryFlag() *retrier {
	r := &retrier{path: c.path, stderr: c.stderr, now: time.Now}
	c.fs.DurationVar(&r.limit, "retry-for", defaultRetryFor, "give up (exit 1) after the node has been unreachable this long (0 = retry forever)")
	return r
}

// retry reports on stderr that the command reconnects after delay because
// of err, or returns the error to give up with once the outage has lasted
// the limit (a failure after it, so the last wait may overshoot it by one
// backoff step, 5s at most).
func (r *retrier) retry(err error, delay time.Duration) error {
	now := r.now()
	if r.attempt == 0 {
		r.since = now
	}
	r.attempt++
	if r.limit > 0 && now.Sub(r.since) >= r.limit {
		return fmt.Errorf("gave up after %s and %d failed attempts (--retry-for %s): %w",
			humanDuration(now.Sub(r.since)), r.attempt, humanDuration(r.limit), err)
	}
	fmt.Fprintf(r.stderr, "shoal %s: %s, retrying in %s (attempt %d)%s\n", r.path, retryReason(err), humanDuration(delay), r.attempt, r.note)
	return nil
}

// reset starts a new outage: the node answered again.
func (r *retrier) reset() { r.attempt = 0 }

// retryReason says why a stream ended, in words for the retry line.
func retryReason(err error) string {
	var he *client.Error
	switch {
	case err == nil:
		return "the node ended the stream"
	case errors.Is(err, client.ErrWatchClosed), errors.Is(err, client.ErrObjectWatchClosed):
		return "the node closed the watch"
	case errors.As(err, &he):
		return "the node answered: " + errorText(err)
	default:
		return "connection lost: " + errorText(err)
	}
}
