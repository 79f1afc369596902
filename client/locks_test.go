package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"shoal/client"
	"shoal/internal/httpjson"
	"shoal/internal/testcluster"
	"shoal/locks"
)

// newLocksNode starts a real one-node cluster with the locks module (short
// TTLs allowed) and returns a client for it.
func newLocksNode(t *testing.T) *client.Client {
	t.Helper()
	cfg := locks.DefaultConfig()
	cfg.MinTTL = 10 * time.Millisecond
	c := testcluster.New(t, 1, testcluster.WithModules("locks"), testcluster.WithModuleConfig("locks", &cfg))
	return newClient(t, c.Leader().URL())
}

func TestLocksClient_Semaphores(t *testing.T) {
	cl := newLocksNode(t)
	ctx := context.Background()
	created, err := cl.CreateSemaphore(ctx, "jobs", 2)
	if err != nil || !created {
		t.Fatalf("create: %v, %v", created, err)
	}
	if created, err = cl.CreateSemaphore(ctx, "jobs", 2); err != nil || created {
		t.Fatalf("create again: %v, %v", created, err)
	}
	if _, err = cl.CreateSemaphore(ctx, "jobs", 3); !errors.Is(err, client.ErrLimitConflict) {
		t.Fatalf("create with another limit: %v", err)
	}
	if err := cl.SetSemaphoreLimit(ctx, "jobs", 1); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	lease, err := cl.AcquireSemaphore(ctx, "jobs", "h1", client.AcquireOptions{TTL: time.Minute})
	if err != nil || lease.Token == 0 || lease.ValidUntil.Before(before.Add(time.Minute)) || lease.ValidUntil.After(time.Now().Add(time.Minute)) {
		t.Fatalf("acquire: %+v, %v", lease, err)
	}
	_, err = cl.AcquireSemaphore(ctx, "jobs", "h2", client.AcquireOptions{TTL: time.Minute, Wait: 20 * time.Millisecond, Retries: 2, MinWait: time.Millisecond, MaxWait: 2 * time.Millisecond})
	if !errors.Is(err, client.ErrSemaphoreFull) {
		t.Fatalf("acquire of a full semaphore: %v", err)
	}
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 409 {
		t.Fatalf("error %v is not a 409 *client.Error", err)
	}
	renewed, err := cl.RenewSemaphore(ctx, "jobs", "h1", 2*time.Minute)
	if err != nil || renewed.Token != lease.Token || !renewed.ExpiresAt.After(lease.ExpiresAt) {
		t.Fatalf("renew: %+v, %v (was %+v)", renewed, err, lease)
	}
	s, err := cl.Semaphore(ctx, "jobs", true)
	if err != nil || s.Limit != 1 || s.Active != 1 || len(s.Holders) != 1 || s.Holders[0].Holder != "h1" || s.Holders[0].Token != lease.Token {
		t.Fatalf("semaphore: %+v, %v", s, err)
	}
	list, err := cl.Semaphores(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "jobs" || list[0].Active != 1 {
		t.Fatalf("list: %+v, %v", list, err)
	}
	if err := cl.ReleaseSemaphore(ctx, "jobs", "h1"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ReleaseSemaphore(ctx, "jobs", "h1"); !errors.Is(err, client.ErrNotHolder) {
		t.Fatalf("release twice: %v", err)
	}
	if _, err := cl.AcquireSemaphore(ctx, "made", "h", client.AcquireOptions{TTL: time.Second, CreateLimit: 4}); err != nil {
		t.Fatalf("acquire with create limit: %v", err)
	}
	if err := cl.DeleteSemaphore(ctx, "made"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Semaphore(ctx, "made", false); !errors.Is(err, client.ErrSemaphoreNotFound) {
		t.Fatalf("read of a deleted semaphore: %v", err)
	}
}

func TestLocksClient_Locks(t *testing.T) {
	cl := newLocksNode(t)
	ctx := context.Background()
	opts := client.AcquireOptions{TTL: time.Minute}
	if _, err := cl.AcquireLock(ctx, "cfg", "r1", client.ReadLock, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.AcquireLock(ctx, "cfg", "r2", client.ReadLock, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.AcquireLock(ctx, "cfg", "w", client.WriteLock, opts); !errors.Is(err, client.ErrLockBusy) {
		t.Fatalf("writer beside readers: %v", err)
	}
	if _, err := cl.AcquireLock(ctx, "cfg", "r1", client.WriteLock, opts); !errors.Is(err, client.ErrModeConflict) {
		t.Fatalf("reader asks for write: %v", err)
	}
	l, err := cl.Lock(ctx, "cfg", true)
	if err != nil || l.Mode != "read" || l.Active != 2 || l.Holders[0].Mode != client.ReadLock {
		t.Fatalf("lock: %+v, %v", l, err)
	}
	if _, err := cl.RenewLock(ctx, "cfg", "r1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := cl.ReleaseLock(ctx, "cfg", "r1"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ReleaseLock(ctx, "cfg", "r2"); err != nil {
		t.Fatal(err)
	}
	list, err := cl.Locks(ctx)
	if err != nil || len(list) != 0 {
		t.Fatalf("locks after releases: %+v, %v", list, err)
	}
}

func TestLeaseKeeper_RenewsUntilStoppedAndReportsLoss(t *testing.T) {
	cl := newLocksNode(t)
	ctx := context.Background()
	// Long enough that a loaded machine (CI beside the e2e suite) still
	// renews within the window: a lease lost there was seen with 300 ms.
	ttl := 2 * time.Second
	lease, err := cl.AcquireSemaphore(ctx, "k", "h", client.AcquireOptions{TTL: ttl, CreateLimit: 1})
	if err != nil {
		t.Fatal(err)
	}
	k := cl.KeepSemaphore("k", "h", ttl, lease)
	defer k.Stop()
	// The keeper renews: the lease's window moves past the first one.
	testcluster.Eventually(t, 10*time.Second, func() error {
		if !k.Lease().ValidUntil.After(lease.ValidUntil) {
			return errors.New("not renewed yet")
		}
		return nil
	})
	if k.Lease().Token != lease.Token {
		t.Fatalf("renew changed the token")
	}
	// Deleting the semaphore takes the slot away: the keeper reports it.
	if err := cl.DeleteSemaphore(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-k.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("the keeper did not report the lost lease")
	}
	if err := k.Err(); !errors.Is(err, client.ErrLeaseLost) || !errors.Is(err, client.ErrSemaphoreNotFound) {
		t.Fatalf("keeper error: %v", err)
	}
}

// TestLeaseKeeper_LostWhenRenewsFailUntilValidUntil uses a node that
// answers every renew with 503: the lease is lost once its window ends.
func TestLeaseKeeper_LostWhenRenewsFailUntilValidUntil(t *testing.T) {
	var renews atomic.Int32
	srv := httptest.NewServer(httpjson.Handle(func(w http.ResponseWriter, r *http.Request) error {
		renews.Add(1)
		return &httpjson.Error{Status: 503, Code: "no_leader", Message: "no leader"}
	}))
	defer srv.Close()
	cl := newClient(t, srv.URL)
	start := time.Now()
	k := cl.KeepSemaphore("s", "h", 200*time.Millisecond, client.Lease{Token: 1, ValidUntil: start.Add(200 * time.Millisecond)})
	defer k.Stop()
	select {
	case <-k.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("the keeper did not give up")
	}
	if time.Since(start) < 200*time.Millisecond {
		t.Fatalf("lost before the lease's window ended")
	}
	if err := k.Err(); !errors.Is(err, client.ErrLeaseLost) || renews.Load() < 2 {
		t.Fatalf("keeper error %v after %d renews", err, renews.Load())
	}
}
