package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"shoal/internal/httpjson"
)

// Errors of the locks module, for errors.Is. They match any *Error with
// the same code.
var (
	// ErrSemaphoreFull: every slot is held and none freed up within the wait.
	ErrSemaphoreFull = httpjson.Errorf(http.StatusConflict, "semaphore_full", "the semaphore is full")
	// ErrLockBusy: the lock is held in a conflicting mode (or a writer
	// waits) and did not free up within the wait.
	ErrLockBusy = httpjson.Errorf(http.StatusConflict, "lock_busy", "the lock is busy")
	// ErrNotHolder: the holder holds nothing (released or expired): a
	// lease that answers this on renew is lost.
	ErrNotHolder = httpjson.Errorf(http.StatusNotFound, "not_holder", "not a holder")
	// ErrSemaphoreNotFound: no semaphore has that name.
	ErrSemaphoreNotFound = httpjson.Errorf(http.StatusNotFound, "semaphore_not_found", "no such semaphore")
	// ErrLimitConflict: the semaphore exists with another limit.
	ErrLimitConflict = httpjson.Errorf(http.StatusConflict, "limit_conflict", "the semaphore exists with a different limit")
	// ErrSemaphoreDeleted: the semaphore was deleted while the acquire waited.
	ErrSemaphoreDeleted = httpjson.Errorf(http.StatusGone, "semaphore_deleted", "the semaphore was deleted")
	// ErrModeConflict: the holder holds the lock in the other mode.
	ErrModeConflict = httpjson.Errorf(http.StatusConflict, "mode_conflict", "the holder holds the lock in the other mode")
	// ErrLeaseLost is reported by a LeaseKeeper whose lease could not be
	// renewed before it ran out (see Lease.ValidUntil).
	ErrLeaseLost = errors.New("lease lost")
)

// LockMode is how a read/write lock is held.
type LockMode string

// The lock modes.
const (
	ReadLock  LockMode = "read"
	WriteLock LockMode = "write"
)

// AcquireOptions are the parameters of an acquire.
type AcquireOptions struct {
	// TTL is the lease: the slot is released if not renewed within it.
	TTL time.Duration
	// Wait is how long the node may queue the request (FIFO) when every
	// slot is held; zero answers at once.
	Wait time.Duration
	// CreateLimit, for semaphores, creates the semaphore with this limit
	// if it does not exist; zero requires it to exist.
	CreateLimit int
	// Retries, MinWait and MaxWait make the node retry a busy answer up
	// to Retries times after a random pause in [MinWait, MaxWait].
	Retries          int
	MinWait, MaxWait time.Duration
}

// Lease is a granted slot or lock.
type Lease struct {
	// Token is the fencing token: strictly increasing across every grant
	// of the cluster. Pass it to the resource you protect and have it
	// refuse a token lower than one it has seen.
	Token uint64
	// ExpiresAt is when the leader will expire the lease if it is not
	// renewed, on the leader's clock.
	ExpiresAt time.Time
	// ValidUntil is how long this client may rely on the lease: the time
	// the acquire or renew was sent plus its TTL, on this client's clock.
	// It does not depend on how long the answer took to arrive, nor on
	// any clock agreement with the cluster. After a long blocking wait it
	// may already have passed: renew to start a fresh window.
	ValidUntil time.Time
}

// Holder is one holder of a semaphore slot or lock.
type Holder struct {
	Holder    string    `json:"holder"`
	Mode      LockMode  `json:"mode,omitempty"` // locks only
	Token     uint64    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Semaphore is a semaphore's state. Lists leave Holders empty.
type Semaphore struct {
	Name    string   `json:"name"`
	Limit   int      `json:"limit"`
	Active  int      `json:"active"`
	Holders []Holder `json:"holders,omitempty"`
	Waiting int      `json:"waiting"`
}

// LockInfo is a read/write lock's state; Mode is "unlocked", "read" or
// "write". Lists leave Holders empty.
type LockInfo struct {
	Name    string   `json:"name"`
	Mode    string   `json:"mode"`
	Active  int      `json:"active"`
	Holders []Holder `json:"holders,omitempty"`
	Waiting int      `json:"waiting"`
}

func semaphorePath(name string) string { return "/v1/semaphores/" + escape(name) }
func lockPath(name string) string      { return "/v1/locks/" + escape(name) }

// CreateSemaphore creates the semaphore name with limit slots. created is
// false if it already existed with that limit; another limit is
// ErrLimitConflict.
func (c *Client) CreateSemaphore(ctx context.Context, name string, limit int) (created bool, err error) {
	req, err := c.newRequest(ctx, http.MethodPut, semaphorePath(name), nil, map[string]int{"limit": limit})
	if err != nil {
		return false, fmt.Errorf("create semaphore %q: %w", name, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return false, fmt.Errorf("create semaphore %q: %w", name, err)
	}
	defer closeBody(resp.Body)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("create semaphore %q: %w", name, readError(resp))
	}
	return resp.StatusCode == http.StatusCreated, nil
}

// SetSemaphoreLimit creates the semaphore or changes its limit. Lowering
// the limit releases no one: it only holds back new grants.
func (c *Client) SetSemaphoreLimit(ctx context.Context, name string, limit int) error {
	q := url.Values{"update": {"true"}}
	if _, err := c.do(ctx, http.MethodPut, semaphorePath(name), q, map[string]int{"limit": limit}, nil); err != nil {
		return fmt.Errorf("set limit of semaphore %q: %w", name, err)
	}
	return nil
}

// DeleteSemaphore deletes a semaphore: its holders are released and its
// waiters fail with ErrSemaphoreDeleted.
func (c *Client) DeleteSemaphore(ctx context.Context, name string) error {
	if _, err := c.do(ctx, http.MethodDelete, semaphorePath(name), nil, nil, nil); err != nil {
		return fmt.Errorf("delete semaphore %q: %w", name, err)
	}
	return nil
}

// Semaphore returns a semaphore's state. With consistent set, the read
// sees every write committed before it.
func (c *Client) Semaphore(ctx context.Context, name string, consistent bool) (Semaphore, error) {
	var s Semaphore
	if _, err := c.do(ctx, http.MethodGet, semaphorePath(name), consistentQuery(consistent), nil, &s); err != nil {
		return Semaphore{}, fmt.Errorf("read semaphore %q: %w", name, err)
	}
	return s, nil
}

// Semaphores lists the semaphores, by name.
func (c *Client) Semaphores(ctx context.Context) ([]Semaphore, error) {
	var out struct {
		Semaphores []Semaphore `json:"semaphores"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/semaphores", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list semaphores: %w", err)
	}
	return out.Semaphores, nil
}

// AcquireSemaphore acquires a slot of semaphore name for holder. Acquiring
// again while holding renews the lease and returns the same token. A full
// semaphore is ErrSemaphoreFull (after the wait and retries, if any).
func (c *Client) AcquireSemaphore(ctx context.Context, name, holder string, opts AcquireOptions) (Lease, error) {
	lease, err := c.acquire(ctx, semaphorePath(name), holder, "", opts)
	if err != nil {
		return Lease{}, fmt.Errorf("acquire semaphore %q: %w", name, err)
	}
	return lease, nil
}

// RenewSemaphore extends holder's lease on semaphore name to ttl from now.
// ErrNotHolder means the lease is lost.
func (c *Client) RenewSemaphore(ctx context.Context, name, holder string, ttl time.Duration) (Lease, error) {
	lease, err := c.renew(ctx, semaphorePath(name), holder, ttl)
	if err != nil {
		return Lease{}, fmt.Errorf("renew semaphore %q: %w", name, err)
	}
	return lease, nil
}

// ReleaseSemaphore releases holder's slot (and drops a wait of the same
// holder). ErrNotHolder means it held nothing.
func (c *Client) ReleaseSemaphore(ctx context.Context, name, holder string) error {
	if _, err := c.do(ctx, http.MethodPost, semaphorePath(name)+"/release", nil, map[string]string{"holder": holder}, nil); err != nil {
		return fmt.Errorf("release semaphore %q: %w", name, err)
	}
	return nil
}

// AcquireLock acquires the read/write lock name for holder in mode. A
// waiting writer holds back new readers. opts.CreateLimit must be zero.
func (c *Client) AcquireLock(ctx context.Context, name, holder string, mode LockMode, opts AcquireOptions) (Lease, error) {
	lease, err := c.acquire(ctx, lockPath(name), holder, mode, opts)
	if err != nil {
		return Lease{}, fmt.Errorf("acquire lock %q: %w", name, err)
	}
	return lease, nil
}

// RenewLock extends holder's lease on lock name to ttl from now.
func (c *Client) RenewLock(ctx context.Context, name, holder string, ttl time.Duration) (Lease, error) {
	lease, err := c.renew(ctx, lockPath(name), holder, ttl)
	if err != nil {
		return Lease{}, fmt.Errorf("renew lock %q: %w", name, err)
	}
	return lease, nil
}

// ReleaseLock releases holder's hold of lock name.
func (c *Client) ReleaseLock(ctx context.Context, name, holder string) error {
	if _, err := c.do(ctx, http.MethodPost, lockPath(name)+"/release", nil, map[string]string{"holder": holder}, nil); err != nil {
		return fmt.Errorf("release lock %q: %w", name, err)
	}
	return nil
}

// Lock returns a lock's state (an unheld lock is "unlocked").
func (c *Client) Lock(ctx context.Context, name string, consistent bool) (LockInfo, error) {
	var l LockInfo
	if _, err := c.do(ctx, http.MethodGet, lockPath(name), consistentQuery(consistent), nil, &l); err != nil {
		return LockInfo{}, fmt.Errorf("read lock %q: %w", name, err)
	}
	return l, nil
}

// Locks lists the locks held or waited for, by name.
func (c *Client) Locks(ctx context.Context) ([]LockInfo, error) {
	var out struct {
		Locks []LockInfo `json:"locks"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/locks", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list locks: %w", err)
	}
	return out.Locks, nil
}

func consistentQuery(consistent bool) url.Values {
	if !consistent {
		return nil
	}
	return url.Values{"consistent": {"true"}}
}

// leaseJSON is the answer to an acquire or renew.
type leaseJSON struct {
	Token     uint64    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (c *Client) acquire(ctx context.Context, path, holder string, mode LockMode, opts AcquireOptions) (Lease, error) {
	in := map[string]any{"holder": holder, "ttl": opts.TTL.String()}
	if mode != "" {
		in["mode"] = string(mode)
	}
	if opts.Wait > 0 {
		in["wait"] = opts.Wait.String()
	}
	if opts.CreateLimit > 0 {
		in["create_limit"] = opts.CreateLimit
	}
	if opts.Retries > 0 {
		in["retries"] = opts.Retries
		if opts.MinWait > 0 || opts.MaxWait > 0 {
			in["min_wait"] = opts.MinWait.String()
			in["max_wait"] = max(opts.MaxWait, opts.MinWait).String()
		}
	}
	sent := time.Now()
	var out leaseJSON
	if _, err := c.do(ctx, http.MethodPost, path+"/acquire", nil, in, &out); err != nil {
		return Lease{}, err
	}
	return Lease{Token: out.Token, ExpiresAt: out.ExpiresAt, ValidUntil: sent.Add(opts.TTL)}, nil
}

func (c *Client) renew(ctx context.Context, path, holder string, ttl time.Duration) (Lease, error) {
	sent := time.Now()
	var out leaseJSON
	if _, err := c.do(ctx, http.MethodPost, path+"/renew", nil, map[string]string{"holder": holder, "ttl": ttl.String()}, &out); err != nil {
		return Lease{}, err
	}
	return Lease{Token: out.Token, ExpiresAt: out.ExpiresAt, ValidUntil: sent.Add(ttl)}, nil
}

// LeaseKeeper renews a lease in the background. Create it with
// KeepSemaphore or KeepLock; its methods are safe for concurrent use.
type LeaseKeeper struct {
	renew func(ctx context.Context) (Lease, error)
	ttl   time.Duration

	mu    sync.Mutex
	lease Lease
	err   error

	lost   chan struct{} // closed when the lease is lost
	stop   chan struct{} // closed by Stop
	done   chan struct{} // closed when the renew loop returned
	once   sync.Once
	cancel context.CancelFunc
}

// KeepSemaphore renews holder's lease on semaphore name every ttl/3 until
// Stop, starting from lease (as AcquireSemaphore or RenewSemaphore
// returned it). If a renew answers ErrNotHolder, or the lease's ValidUntil
// passes without a successful renew, the lease is lost: Lost is closed and
// Err says why. A lease whose ValidUntil has already passed (after a long
// blocking wait) is lost at once: renew it first.
func (c *Client) KeepSemaphore(name, holder string, ttl time.Duration, lease Lease) *LeaseKeeper {
	return newLeaseKeeper(ttl, lease, func(ctx context.Context) (Lease, error) {
		return c.RenewSemaphore(ctx, name, holder, ttl)
	})
}

// KeepLock is KeepSemaphore for a read/write lock.
func (c *Client) KeepLock(name, holder string, ttl time.Duration, lease Lease) *LeaseKeeper {
	return newLeaseKeeper(ttl, lease, func(ctx context.Context) (Lease, error) {
		return c.RenewLock(ctx, name, holder, ttl)
	})
}

func newLeaseKeeper(ttl time.Duration, lease Lease, renew func(context.Context) (Lease, error)) *LeaseKeeper {
	ctx, cancel := context.WithCancel(context.Background())
	k := &LeaseKeeper{renew: renew, ttl: ttl, lease: lease, cancel: cancel,
		lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go k.run(ctx)
	return k
}

// Lost is closed when the lease is lost.
func (k *LeaseKeeper) Lost() <-chan struct{} { return k.lost }

// Err returns why the lease was lost, or nil.
func (k *LeaseKeeper) Err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}

// Lease returns the lease as last renewed.
func (k *LeaseKeeper) Lease() Lease {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lease
}

// Stop stops renewing (the lease is not released) and waits for the
// renew loop to return.
func (k *LeaseKeeper) Stop() {
	k.once.Do(func() {
		close(k.stop)
		k.cancel()
	})
	<-k.done
}

func (k *LeaseKeeper) fail(err error) {
	k.mu.Lock()
	k.err = err
	k.mu.Unlock()
	close(k.lost)
}

// run renews at one third of the TTL after each successful renew (at once
// if the lease's window is already mostly used up), retrying failed renews
// until the lease's ValidUntil.
func (k *LeaseKeeper) run(ctx context.Context) {
	defer close(k.done)
	for {
		lease := k.Lease()
		next := time.Until(lease.ValidUntil.Add(-k.ttl * 2 / 3))
		if !k.sleep(next) {
			return
		}
		backoff := 50 * time.Millisecond
		for {
			if !time.Now().Before(lease.ValidUntil) {
				k.fail(fmt.Errorf("%w: not renewed before %s", ErrLeaseLost, lease.ValidUntil.Format(time.RFC3339Nano)))
				return
			}
			rctx, cancel := context.WithDeadline(ctx, lease.ValidUntil)
			renewed, err := k.renew(rctx)
			cancel()
			if err == nil {
				k.mu.Lock()
				k.lease = renewed
				k.mu.Unlock()
				break
			}
			select {
			case <-k.stop:
				return
			default:
			}
			if errors.Is(err, ErrNotHolder) || errors.Is(err, ErrSemaphoreNotFound) {
				k.fail(fmt.Errorf("%w: %w", ErrLeaseLost, err))
				return
			}
			if !k.sleep(min(backoff, time.Until(lease.ValidUntil))) {
				return
			}
			backoff = min(2*backoff, time.Second)
		}
	}
}

// sleep waits d (no wait if d <= 0); false if Stop was called.
func (k *LeaseKeeper) sleep(d time.Duration) bool {
	if d <= 0 {
		select {
		case <-k.stop:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-k.stop:
		return false
	case <-t.C:
		return true
	}
}
