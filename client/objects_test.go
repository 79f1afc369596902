package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/client"
	"shoal/internal/testcluster"
	"shoal/objectsync"
)

// newObjectsNode starts a real one-node cluster with the objectsync module
// (objects kept without subscribers for the test's length) and returns a
// client for it.
func newObjectsNode(t *testing.T) *client.Client {
	t.Helper()
	cfg := objectsync.DefaultConfig()
	cfg.Linger = 10 * time.Minute
	c := testcluster.New(t, 1, testcluster.WithModules("objectsync"), testcluster.WithModuleConfig("objectsync", &cfg))
	return newClient(t, c.Leader().URL())
}

func TestObjects_PutGetPatchListDelete(t *testing.T) {
	cl := newObjectsNode(t)
	ctx := context.Background()
	ids := []string{"plain", "a/b c", "q?x=1#f%", "ünï", "..", "."}
	for _, id := range ids {
		o, err := cl.PutObject(ctx, id, json.RawMessage(`1`), json.RawMessage(`{"n": 1, "s": "<x>"}`))
		if err != nil {
			t.Fatalf("put %q: %v", id, err)
		}
		if o.ID != id || string(o.Version) != "1" {
			t.Fatalf("put %q: got %+v", id, o)
		}
		got, err := cl.GetObject(ctx, id)
		if err != nil {
			t.Fatalf("get %q: %v", id, err)
		}
		// Canonical JSON: keys sorted, no spaces, HTML not escaped.
		if got.ID != id || string(got.Version) != "1" || string(got.Object) != `{"n":1,"s":"<x>"}` {
			t.Fatalf("get %q: got %s %s %s", id, got.ID, got.Version, got.Object)
		}
	}

	o, err := cl.PatchObject(ctx, "a/b c", "1", "2", json.RawMessage(`[{"op":"replace","path":"/n","value":2}]`))
	if err != nil || string(o.Version) != "2" {
		t.Fatalf("patch: %+v, %v", o, err)
	}
	if got, err := cl.GetObject(ctx, "a/b c"); err != nil || string(got.Object) != `{"n":2,"s":"<x>"}` || string(got.Version) != "2" {
		t.Fatalf("get after patch: %s %s, %v", got.Version, got.Object, err)
	}
	if _, err := cl.PatchObject(ctx, "a/b c", "1", "3", json.RawMessage(`[]`)); !errors.Is(err, client.ErrVersionMismatch) {
		t.Fatalf("patch from an old version: %v, want version_mismatch", err)
	}
	if _, err := cl.PatchObject(ctx, "a/b c", "2", "3", json.RawMessage(`[{"op":"remove","path":"/nope"}]`)); !errors.Is(err, client.ErrPatchFailed) {
		t.Fatalf("a patch that does not apply: %v, want patch_failed", err)
	}
	// Array versions travel as JSON in the query.
	if _, err := cl.PutObject(ctx, "arr", json.RawMessage(`[1,2]`), json.RawMessage(`{"a":[]}`)); err != nil {
		t.Fatal(err)
	}
	if o, err := cl.PatchObject(ctx, "arr", "[1,2]", "[1,3]", json.RawMessage(`[{"op":"add","path":"/a/-","value":"x"}]`)); err != nil || string(o.Version) != "[1,3]" {
		t.Fatalf("patch with array versions: %+v, %v", o, err)
	}
	if got, err := cl.GetObject(ctx, "arr"); err != nil || string(got.Object) != `{"a":["x"]}` {
		t.Fatalf("get arr: %s, %v", got.Object, err)
	}
	ids = append(ids, "arr")
	if _, err := cl.PutObject(ctx, "plain", json.RawMessage(`1`), json.RawMessage(`{}`)); !errors.Is(err, client.ErrStaleVersion) {
		t.Fatalf("put at the same version: %v, want stale_version", err)
	}
	if _, err := cl.GetObject(ctx, "missing"); !errors.Is(err, client.ErrObjectNotFound) {
		t.Fatalf("get of a missing object: %v, want object_not_found", err)
	}
	if _, err := cl.GetObject(ctx, "a*b"); !errors.Is(err, client.ErrInvalidID) {
		t.Fatalf("get of an id with '*': %v, want invalid_id", err)
	}
	if _, err := cl.GetObject(ctx, ""); !errors.Is(err, client.ErrInvalidID) {
		t.Fatalf("get of the empty id: %v, want invalid_id", err)
	}

	list, err := cl.ListObjects(ctx, "")
	if err != nil || len(list) != len(ids) {
		t.Fatalf("list: %+v, %v; want %d objects", list, err, len(ids))
	}
	list, err = cl.ListObjects(ctx, "a/*")
	if err != nil || len(list) != 1 || list[0].ID != "a/b c" || string(list[0].Version) != "2" || list[0].Object != nil {
		t.Fatalf("list a/*: %+v, %v", list, err)
	}

	if err := cl.DeleteObject(ctx, "plain"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.GetObject(ctx, "plain"); !errors.Is(err, client.ErrObjectNotFound) {
		t.Fatalf("get after delete: %v, want object_not_found", err)
	}
}

// events collects watch events for testcluster.Eventually.
type events struct {
	mu  sync.Mutex
	evs []client.ObjectEvent
}

func (e *events) add(ev client.ObjectEvent) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
	return nil
}

// wait waits until there are n events and returns them.
func (e *events) wait(t *testing.T, n int) []client.ObjectEvent {
	t.Helper()
	var out []client.ObjectEvent
	testcluster.Eventually(t, 10*time.Second, func() error {
		e.mu.Lock()
		defer e.mu.Unlock()
		if len(e.evs) < n {
			return fmt.Errorf("%d events, want %d: %+v", len(e.evs), n, e.evs)
		}
		out = append([]client.ObjectEvent(nil), e.evs...)
		return nil
	})
	return out
}

func TestObjects_Watch(t *testing.T) {
	cl := newObjectsNode(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id := "watched/1"
	if _, err := cl.PutObject(ctx, id, json.RawMessage(`1`), json.RawMessage(`{"n":1,"text":"a text long enough that a patch is smaller than the object"}`)); err != nil {
		t.Fatal(err)
	}
	var evs events
	done := make(chan error, 1)
	go func() { done <- cl.WatchObject(ctx, id, evs.add) }()
	first := evs.wait(t, 1)[0]
	if first.Type != "object" || first.ID != id || string(first.Version) != "1" || !strings.Contains(string(first.Object), `"n":1`) {
		t.Fatalf("first event %+v, want the object at version 1", first)
	}
	if _, err := cl.PatchObject(ctx, id, "1", "2", json.RawMessage(`[{"op":"replace","path":"/n","value":2}]`)); err != nil {
		t.Fatal(err)
	}
	second := evs.wait(t, 2)[1]
	if second.Type != "patch" || string(second.From) != "1" || string(second.Version) != "2" || !strings.Contains(string(second.Patch), `"value":2`) {
		t.Fatalf("second event %+v, want the patch from 1 to 2", second)
	}
	if err := cl.DeleteObject(ctx, id); err != nil {
		t.Fatal(err)
	}
	if third := evs.wait(t, 3)[2]; third.Type != "removed" || third.ID != id {
		t.Fatalf("third event %+v, want removed", third)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("watch ended with %v, want context.Canceled", err)
	}

	// A callback's error ends the watch and is returned as is.
	if _, err := cl.PutObject(context.Background(), id, json.RawMessage(`3`), json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	if err := cl.WatchObject(context.Background(), id, func(client.ObjectEvent) error { return stop }); err != stop {
		t.Fatalf("watch with a failing callback: %v, want %v", err, stop)
	}
	if err := cl.WatchObject(context.Background(), "a*b", evs.add); !errors.Is(err, client.ErrInvalidID) {
		t.Fatalf("watch of an invalid id: %v, want invalid_id", err)
	}
}
