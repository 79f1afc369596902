package kv

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"shoal/client"
	"shoal/internal/testcluster"
)

// TestGoClient_ConditionsTTLAndResume drives the Go client against a
// real node: KVPutWith's TTL and preconditions, and KVWatchFrom resuming
// after the id it returned, then resyncing on an id it cannot resume.
func TestGoClient_ConditionsTTLAndResume(t *testing.T) {
	n := startNode(t, newFakeNet(), "n1", testConfig())
	cl, err := client.New(n.serve().URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	v1, err := cl.KVPutWith(ctx, "g/k", "1", client.KVPutOptions{IfAbsent: true, TTL: time.Hour})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := cl.KVPutWith(ctx, "g/k", "x", client.KVPutOptions{IfAbsent: true}); !errors.Is(err, client.ErrPreconditionFailed) {
		t.Fatalf("create again: got %v, want ErrPreconditionFailed", err)
	}
	e, err := cl.KVGet(ctx, "g/k")
	if err != nil || e.ExpiresAt.IsZero() || e.Version != v1 {
		t.Fatalf("get: %+v %v, want the version and an expiry", e, err)
	}
	_, err = cl.KVPutWith(ctx, "g/k", "2", client.KVPutOptions{IfMatch: v1})
	if err != nil {
		t.Fatalf("If-Match current: %v", err)
	}
	if _, err := cl.KVPutWith(ctx, "g/k", "3", client.KVPutOptions{IfMatch: v1}); !errors.Is(err, client.ErrPreconditionFailed) {
		t.Fatalf("If-Match stale: got %v, want ErrPreconditionFailed", err)
	}
	if _, err := cl.KVPutWith(ctx, "g/k", "3", client.KVPutOptions{TTL: time.Millisecond}); err == nil {
		t.Fatalf("a TTL below 1s was accepted")
	}

	// Watch until two changes, stop, change twice more, resume.
	// KVWatchFrom returns the id of the last event fn accepted: the event
	// fn stopped on comes again after a resume, unless the caller resumes
	// from that event's ID itself, as here.
	var got []string
	stoppedAt := ""
	collect := func(want int) func(client.KVEvent) error {
		return func(ev client.KVEvent) error {
			if ev.Type == "synced" {
				return nil
			}
			got = append(got, ev.Type+" "+ev.Entry.Key+"="+ev.Entry.Value)
			if len(got) == want {
				stoppedAt = ev.ID
				return errStop
			}
			return nil
		}
	}
	var id string
	watchErr := make(chan error, 1)
	go func() {
		var err error
		id, err = cl.KVWatchFrom(ctx, "g/", "", collect(2))
		watchErr <- err
	}()
	waitWatchers(t, n, 1)
	n.put("g/a", "1")
	n.put("g/k", "4")
	if err := <-watchErr; !errors.Is(err, errStop) || id == "" || stoppedAt == "" || id == stoppedAt {
		t.Fatalf("first watch: %v (id %q, stopped at %q)", err, id, stoppedAt)
	}
	n.put("g/b", "1")
	n.del("g/a")
	if _, err = cl.KVWatchFrom(ctx, "g/", stoppedAt, collect(4)); !errors.Is(err, errStop) {
		t.Fatalf("resumed watch: %v", err)
	}
	want := "[new_key g/a=1 key_changed g/k=4 new_key g/b=1 key_removed g/a=]"
	if fmt.Sprint(got) != want {
		t.Fatalf("got %v, want %s", got, want)
	}

	// An id of another run: resync, then the state.
	got = nil
	var reason string
	_, err = cl.KVWatchFrom(ctx, "g/", "0000000000000000-3", func(ev client.KVEvent) error {
		switch ev.Type {
		case "resync":
			reason = ev.Reason
		case "new_key":
			got = append(got, ev.Entry.Key+"="+ev.Entry.Value)
			if len(got) == 2 {
				return errStop
			}
		}
		return nil
	})
	if !errors.Is(err, errStop) || reason != "unknown_event_id" || fmt.Sprint(got) != "[g/b=1 g/k=4]" {
		t.Fatalf("resync: %v, reason %q, state %v", err, reason, got)
	}
}

var errStop = errors.New("stop")

// waitWatchers waits until the node has n open watches (each has
// subscribed by then).
func waitWatchers(t *testing.T, node *testNode, n int) {
	t.Helper()
	testcluster.Eventually(t, 30*time.Second, func() error {
		if got := testutil.ToFloat64(node.kv.m.watchers); int(got) != n {
			return fmt.Errorf("%v watches open, want %d", got, n)
		}
		return nil
	})
}
