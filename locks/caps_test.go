package locks

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The caps on semaphores and locks: creating one past a cap is 409, with
// nothing changed; existing ones keep working; releasing the last holder
// of a lock, or deleting a semaphore, makes room. Without caps the
// commands are sent as before.
func TestHTTP_Caps(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxSemaphores, cfg.MaxLocks = 2, 1
	n := newTestNode(t, cfg)
	srv := n.serve(t)
	sem := func(name string) string { return srv.URL + "/v1/semaphores/" + name }
	lock := func(name string) string { return srv.URL + "/v1/locks/" + name }
	for _, name := range []string{"a", "b"} {
		if s, b := call(t, "PUT", sem(name), `{"limit":1}`); s != 201 {
			t.Fatalf("create %s: %d %s", name, s, b)
		}
	}
	s, b := call(t, "PUT", sem("c"), `{"limit":1}`)
	wantError(t, "a third semaphore", s, b, 409, "too_many_semaphores")
	s, b = call(t, "POST", sem("c")+"/acquire", `{"holder":"h","ttl":"10s","create_limit":1}`)
	wantError(t, "a third semaphore by acquire", s, b, 409, "too_many_semaphores")
	if s, b := call(t, "POST", sem("a")+"/acquire", `{"holder":"h","ttl":"10s"}`); s != 200 {
		t.Fatalf("acquire an existing semaphore: %d %s", s, b)
	}
	if s, b := call(t, "POST", lock("x")+"/acquire", `{"holder":"h","ttl":"10s"}`); s != 200 {
		t.Fatalf("a first lock: %d %s", s, b)
	}
	s, b = call(t, "POST", lock("y")+"/acquire", `{"holder":"h","ttl":"10s"}`)
	wantError(t, "a second lock", s, b, 409, "too_many_locks")
	if s, b := call(t, "POST", lock("x")+"/acquire", `{"holder":"r","mode":"read","ttl":"10s","wait":"0s"}`); s != 409 {
		t.Fatalf("the existing lock, busy: %d %s", s, b)
	}
	if s, b := call(t, "POST", lock("x")+"/release", `{"holder":"h"}`); s != 200 {
		t.Fatalf("release: %d %s", s, b)
	}
	if s, b := call(t, "POST", lock("y")+"/acquire", `{"holder":"h","ttl":"10s"}`); s != 200 {
		t.Fatalf("a lock once the other is gone: %d %s", s, b)
	}
	if s, b := call(t, "DELETE", sem("b"), ""); s != 200 {
		t.Fatalf("delete: %d %s", s, b)
	}
	if s, b := call(t, "PUT", sem("c"), `{"limit":1}`); s != 201 {
		t.Fatalf("a semaphore once another was deleted: %d %s", s, b)
	}
	for kind, want := range map[string]float64{"semaphore": 2, "lock": 1} {
		if got := testutil.ToFloat64(n.locks.m.capRefusals.WithLabelValues(kind)); got != want {
			t.Fatalf("shoal_locks_cap_refusals_total{kind=%q} = %v, want %v", kind, got, want)
		}
	}
	if got := n.opsApplied(opCreate); got != 4 {
		t.Fatalf("%d creates applied, want 4 (a refused one is applied and changes nothing)", got)
	}
}

// Without caps, creates and acquires are the commands of before, which a
// node of the previous release applies.
func TestCapped_NoCapsNoWrapper(t *testing.T) {
	l := &Locks{cfg: Config{}}
	payload := encodeCreate(createCmd{name: "a", limit: 1})
	if op, p := l.capped(opCreate, payload); op != opCreate || string(p) != string(payload) {
		t.Fatalf("no caps: op %d", op)
	}
	l.cfg.MaxLocks = 3
	op, p := l.capped(opAcquire, payload)
	c, inner, rest, err := decodeCapped(p)
	if op != opCapped || err != nil || inner != opAcquire || c != (caps{locks: 3}) || string(rest) != string(payload) {
		t.Fatalf("capped: op %d, %+v %d %v", op, c, inner, err)
	}
}
