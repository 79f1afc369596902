package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"shoal/internal/httpjson"
)

// maxEventSize bounds one Server-Sent Events line.
const maxEventSize = 16 << 20

// backoff is the reconnect delay of Tail: min, doubling up to max.
type backoff struct {
	min, max time.Duration
}

func (b backoff) next(d time.Duration) time.Duration {
	d *= 2
	if d > b.max {
		d = b.max
	}
	return d
}

// fnError marks an error returned by the caller's callback, so Tail
// returns it instead of reconnecting.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// Tail follows the log called name from index from (0 lets the node choose
// where to start), calling fn with each entry in index order. It blocks
// until ctx is done (it then returns an error wrapping ctx.Err()), fn
// returns an error (Tail returns that error as is), or the node refuses the
// stream with an error that retrying cannot fix (a 4xx other than 408 and
// 429, such as an unknown log or a bad token).
//
// A stream that drops, fails, or stays silent longer than the idle timeout
// (see WithTailIdleTimeout) is reopened with backoff, asking the node to
// resume after the last entry fn received (Last-Event-ID), so fn sees no
// gap and no entry twice.
//
// fn runs on Tail's goroutine and the stream is not read while it runs, so
// fn should return promptly; a node may drop a stream that falls behind,
// and Tail then reconnects where fn left off.
func (c *Client) Tail(ctx context.Context, name string, from uint64, fn func(LogEntry) error) error {
	return c.TailWithOptions(ctx, name, TailOptions{From: from}, fn)
}

// TailOptions are the settings of TailWithOptions.
type TailOptions struct {
	// From is the index of the first entry (0 lets the node choose).
	From uint64
	// OnRetry, when not nil, is called before each reconnect, on Tail's
	// goroutine, with what ended the stream and how long Tail waits. If it
	// returns an error, Tail stops and returns that error, wrapped. It must
	// not block for long: the wait starts after it returns.
	OnRetry func(TailRetry) error
}

// TailRetry describes one reconnect of a Tail, for TailOptions.OnRetry.
type TailRetry struct {
	// Attempt counts the failed attempts since the stream last delivered
	// anything: 1 for the first.
	Attempt int
	// Delay is how long Tail waits before the next attempt.
	Delay time.Duration
	// Err is why the stream ended: a network error, an API error (5xx,
	// 408, 429), or ErrStreamEnded when the node closed it.
	Err error
}

// ErrStreamEnded is the TailRetry.Err of a stream the node closed
// cleanly (on shutdown, say).
var ErrStreamEnded = errors.New("the node ended the stream")

// TailWithOptions is Tail with options: where to start, and a hook that
// sees (and may stop) each reconnect.
func (c *Client) TailWithOptions(ctx context.Context, name string, opts TailOptions, fn func(LogEntry) error) error {
	t := &tailer{c: c, name: name, from: opts.From, fn: fn}
	delay := c.backoff.min
	attempt := 0
	for {
		progressed, err := t.stream(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("tail log %q: %w", name, ctx.Err())
		}
		var fe *fnError
		if errors.As(err, &fe) {
			return fe.err
		}
		if !retryable(err) {
			return fmt.Errorf("tail log %q: %w", name, err)
		}
		if progressed {
			delay, attempt = c.backoff.min, 0
		}
		attempt++
		wait := delay
		var he *httpjson.Error
		if errors.As(err, &he) && he.RetryAfter > wait {
			wait = min(he.RetryAfter, c.backoff.max)
		}
		if opts.OnRetry != nil {
			cause := err
			if cause == nil {
				cause = ErrStreamEnded
			}
			if herr := opts.OnRetry(TailRetry{Attempt: attempt, Delay: wait, Err: cause}); herr != nil {
				return fmt.Errorf("tail log %q: %w", name, herr)
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("tail log %q: %w", name, ctx.Err())
		case <-timer.C:
		}
		delay = c.backoff.next(delay)
	}
}

// retryable reports whether a failed stream should be reopened: network
// failures, dropped streams and 5xx/408/429 answers are; other API errors
// and protocol errors are not.
func retryable(err error) bool {
	if err == nil {
		return true // the node ended the stream cleanly, e.g. on shutdown
	}
	var pe *protocolError
	if errors.As(err, &pe) {
		return false
	}
	var he *httpjson.Error
	if errors.As(err, &he) {
		return he.Status >= 500 || he.Status == http.StatusRequestTimeout || he.Status == http.StatusTooManyRequests
	}
	return true
}

// protocolError is a stream the client cannot make sense of; reconnecting
// would not help.
type protocolError struct{ err error }

func (e *protocolError) Error() string { return e.err.Error() }
func (e *protocolError) Unwrap() error { return e.err }

// tailer is the state of one Tail call across reconnects. It is used by
// one goroutine.
type tailer struct {
	c    *Client
	name string
	from uint64
	fn   func(LogEntry) error
	last uint64 // index of the last entry given to fn; 0 before the first
}

// event is one Server-Sent Event being assembled.
type event struct {
	id, typ string
	data    []string
}

// stream opens the stream once and reads it until it ends. progressed
// reports that the node answered 200 and sent at least one line, so the
// reconnect backoff starts over.
func (t *tailer) stream(ctx context.Context) (progressed bool, err error) {
	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var idle *time.Timer
	if t.c.idleTail > 0 {
		idle = time.AfterFunc(t.c.idleTail, cancel)
		defer idle.Stop()
	}

	from := t.from
	if t.last > 0 {
		from = t.last + 1
	}
	q := url.Values{}
	if from > 0 { // 0: the node starts at the log's first index
		q.Set("from", strconv.FormatUint(from, 10))
	}
	req, err := t.c.newRequest(connCtx, http.MethodGet, logPath(t.name)+"/stream", q, nil)
	if err != nil {
		return false, &protocolError{err}
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if t.last > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(t.last, 10))
	}
	resp, err := t.c.hc.Do(req)
	if err != nil {
		return false, err
	}
	if resp.StatusCode != http.StatusOK {
		defer closeBody(resp.Body)
		return false, readError(resp)
	}
	defer resp.Body.Close() // no draining: the stream may never end

	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventSize)
	var ev event
	for sc.Scan() {
		progressed = true
		if idle != nil {
			idle.Reset(t.c.idleTail)
		}
		line := sc.Text()
		if line == "" {
			if err := t.dispatch(ev); err != nil {
				return progressed, err
			}
			ev = event{}
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // comment or heartbeat
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.id = value
		case "event":
			ev.typ = value
		case "data":
			ev.data = append(ev.data, value)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return progressed, &protocolError{fmt.Errorf("stream line longer than %d bytes", maxEventSize)}
		}
		return progressed, fmt.Errorf("read stream: %w", err)
	}
	return progressed, nil // the node closed the stream; an unfinished event is dropped and resent after Last-Event-ID
}

// dispatch handles one complete event: entries go to fn unless already
// delivered; a "stream_error" event (or "error", from nodes of earlier
// releases) carries an API error in its data.
func (t *tailer) dispatch(ev event) error {
	if ev.data == nil {
		return nil
	}
	data := strings.Join(ev.data, "\n")
	switch ev.typ {
	case "", "entry", "message":
	case "stream_error", "error":
		return &protocolError{httpjson.ReadError(0, []byte(data))}
	default:
		return nil // an event type this client does not know
	}
	var e LogEntry
	if err := json.Unmarshal([]byte(data), &e); err != nil {
		return &protocolError{fmt.Errorf("decode entry event %q: %w", ev.id, err)}
	}
	if e.Index == 0 {
		n, err := strconv.ParseUint(ev.id, 10, 64)
		if err != nil {
			return &protocolError{fmt.Errorf("entry event without an index (id %q)", ev.id)}
		}
		e.Index = n
	}
	if t.last > 0 && e.Index <= t.last {
		return nil // already delivered before a reconnect
	}
	if err := t.fn(e); err != nil {
		return &fnError{err}
	}
	t.last = e.Index
	return nil
}
