package locks

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"shoal/internal/httpjson"
)

// How long a request that gives up keeps trying to commit its cancel: a
// cancel that never commits leaves a wait until its deadline, or a grant
// until its TTL, so this only bounds how long the client waits for its
// answer. Shorter while the node stops.
const (
	cancelTimeout       = 10 * time.Second
	cancelTimeoutOnStop = 2 * time.Second
)

// handleAcquire serves POST /v1/{semaphores,locks}/{name}/acquire.
//
// Each attempt submits opAcquire under a fresh nonce that names the
// request. A grant answers at once. A queued request waits on this node
// for its local state machine to report the grant or failure of its
// waiter (waiters live in the replicated state, so they survive a leader
// change); when the wait runs out, the client goes away or the node stops,
// it commits opCancel for its nonce, which also releases the slot if the
// grant won the race, so no holder is left that no client knows about.
// The same cancel follows any failure whose outcome is unknown. A busy
// answer is retried after a random pause in [min_wait, max_wait], up to
// retries times.
func (l *Locks) handleAcquire(k kind) httpjson.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		name, err := nameParam(r, k)
		if err != nil {
			return err
		}
		p, err := decodeAcquireBody(k, r.Body, l.cfg)
		if err != nil {
			return err
		}
		if !l.track() {
			return ErrShuttingDown
		}
		defer l.untrack()
		for attempt := 0; ; attempt++ {
			res, err := l.acquireOnce(r, k, name, p)
			if err == nil {
				l.m.acquireGranted.Inc()
				httpjson.WriteJSON(w, http.StatusOK, leaseResponse{Token: res.token, ExpiresAt: formatTime(res.expires)})
				return nil
			}
			busy := errors.Is(err, busyError(k))
			if busy && attempt < p.retries {
				if err := l.pause(r, randomBetween(p.minWait, p.maxWait)); err != nil {
					return err
				}
				continue
			}
			if busy {
				l.m.acquireBusy.Inc()
			} else {
				l.m.acquireFailed.Inc()
			}
			if attempt > 0 {
				return fmt.Errorf("acquire %s %s after %d attempts: %w", k, name, attempt+1, err)
			}
			return fmt.Errorf("acquire %s %s: %w", k, name, err)
		}
	}
}

// acquireOnce makes one attempt.
func (l *Locks) acquireOnce(r *http.Request, k kind, name string, p acquireParams) (acquireResult, error) {
	c := acquireCmd{kind: k, name: name, holder: p.holder, mode: p.mode, ttl: p.ttl, wait: p.wait,
		createLimit: p.createLimit, nonce: newNonce()}
	var w *watch
	if c.wait > 0 {
		// Registered before submitting, so no outcome can be missed.
		w = l.watch(c.nonce)
		defer l.unwatch(c.nonce)
	}
	deadline := time.Now().Add(c.wait)
	// The command is submitted under the module's context, not the
	// request's, so that a client going away mid-submit does not leave
	// its outcome unknown to us.
	op, payload := l.capped(opAcquire, encodeAcquire(c))
	applied, err := l.host.Raft().Apply(l.ctx, op, payload)
	l.countCap(err)
	if err != nil {
		if !refused(err) {
			l.cancelRequest(c) // it may have been committed
		}
		if l.ctx.Err() != nil {
			return acquireResult{}, ErrShuttingDown
		}
		return acquireResult{}, err
	}
	res, err := decodeAcquireResult(applied.Result)
	if err != nil {
		l.cancelRequest(c)
		return acquireResult{}, fmt.Errorf("raft index %d: %w", applied.Index, err)
	}
	if err := r.Context().Err(); err != nil {
		l.cancelRequest(c) // nobody is left to use the slot
		return acquireResult{}, err
	}
	if res.granted {
		return res, nil
	}
	return l.await(r, c, w, deadline)
}

// await waits for the queued request c to be granted or to fail.
func (l *Locks) await(r *http.Request, c acquireCmd, w *watch, deadline time.Time) (acquireResult, error) {
	l.waiting.Add(1)
	defer l.waiting.Add(-1)
	start := time.Now()
	defer func() { l.m.waitSeconds.Observe(time.Since(start).Seconds()) }()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		select {
		case <-w.ready:
			o := l.take(w)
			if o.kind == outRecheck {
				l.mu.RLock()
				pending, found := l.st.lookupWait(c.kind, c.name, c.holder, c.nonce)
				l.mu.RUnlock()
				if pending {
					continue
				}
				o = found
			}
			switch o.kind {
			case outGranted:
				if err := r.Context().Err(); err != nil {
					l.cancelRequest(c)
					return acquireResult{}, err
				}
				return acquireResult{granted: true, token: o.token, expires: o.expires}, nil
			case outTimedOut:
				l.m.timeouts.Inc()
				return acquireResult{}, busyError(c.kind).WithMessage("%s %q: not acquired within the wait of %s", c.kind, c.name, c.wait)
			case outDeleted:
				return acquireResult{}, ErrDeleted.WithMessage("semaphore %q was deleted while %q waited", c.name, c.holder)
			case outSuperseded:
				return acquireResult{}, ErrSuperseded.WithMessage("a newer acquire of %q took over this one's place in the queue of %s %q", c.holder, c.kind, c.name)
			case outCancelled:
				return acquireResult{}, busyError(c.kind).WithMessage("the wait of %q for %s %q was ended by a release of the same holder", c.holder, c.kind, c.name)
			}
		case <-timer.C:
			// A grant that arrived with the timer is taken, not wasted.
			select {
			case <-w.ready:
				if o := l.take(w); o.kind == outGranted && r.Context().Err() == nil {
					return acquireResult{granted: true, token: o.token, expires: o.expires}, nil
				}
			default:
			}
			l.m.timeouts.Inc()
			l.cancelRequest(c)
			return acquireResult{}, busyError(c.kind).WithMessage("%s %q: not acquired within the wait of %s", c.kind, c.name, c.wait)
		case <-r.Context().Done():
			l.m.timeouts.Inc()
			l.cancelRequest(c)
			return acquireResult{}, r.Context().Err()
		case <-l.stopCh:
			l.cancelRequest(c)
			return acquireResult{}, ErrShuttingDown
		}
	}
}

// cancelRequest commits opCancel for the request c, retrying (a cancel is
// idempotent) until it commits or cancelTimeout passes. It blocks: the
// request's handler calls it, so Stop waits for it too.
func (l *Locks) cancelRequest(c acquireCmd) {
	timeout := cancelTimeout
	select {
	case <-l.stopCh:
		timeout = cancelTimeoutOnStop
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	payload := encodeCancel(cancelCmd{kind: c.kind, name: c.name, holder: c.holder, nonce: c.nonce})
	retry := minRetry
	for {
		applied, err := l.host.Raft().Apply(ctx, opCancel, payload)
		if err == nil {
			if res, err := decodeByteResult(applied.Result, byte(cancelReleased), "cancel result"); err == nil && cancelResult(res) == cancelReleased {
				l.logger.Debug("released a grant its request had given up on", "kind", c.kind.String(), "name", c.name)
			}
			return
		}
		if ctx.Err() != nil || !sleep(ctx, retry) {
			l.logger.Warn("could not cancel an abandoned acquire; its wait ends at its deadline, a grant at its ttl",
				"kind", c.kind.String(), "name", c.name, "err", err)
			return
		}
		retry = min(2*retry, maxRetry)
	}
}

// pause waits d between retries.
func (l *Locks) pause(r *http.Request, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-r.Context().Done():
		return r.Context().Err()
	case <-l.stopCh:
		return ErrShuttingDown
	}
}

// refused reports whether err is the state machine's deterministic refusal
// of an acquire, which changed nothing.
func refused(err error) bool {
	for _, e := range []error{ErrNotFound, ErrLimitConflict, ErrFull, ErrLockBusy, ErrModeConflict, ErrQueueFull} {
		if errors.Is(err, e) {
			return true
		}
	}
	return errors.Is(err, ErrMalformedCommand) || errors.Is(err, ErrUnknownOp)
}

// newNonce returns a random non-zero request nonce.
func newNonce() uint64 {
	for {
		if n := rand.Uint64(); n != 0 {
			return n
		}
	}
}

// randomBetween returns a random duration in [lo, hi].
func randomBetween(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo+1)
}
